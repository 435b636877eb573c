"""The study's shared code, in the order of the study: the datasets, the batcher, the networks (checkpoints:
checkpoints.py).

Datasets: CIFAKE, AGIRI and CIFAR-100 are each read into one in-memory form, an `ImageSet` (uint8 images
N x 3 x 32 x 32, labels REAL = 1 / FAKE = 0, content classes where the dataset has them, the source of every
image, and a `LoadReport` that accounts for every file found). Image files are decoded by `imagefiles.py`.

Networks: `CIFAKE_CNN`, the PyTorch CIFAR-10 tutorial net with one logit (optionally with an `SRMLayer` after its
first block), `StrongCNN`, the stronger small detector (full size: backbone.py). P(real) = sigmoid(logit).
"""
import pickle
import re
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

from backbone import PretrainedDetector
from generalise import INPUTS, PatchCNN, highpass, input_config
from imagefiles import (DECODINGS, IMAGE_SIZE, crops_per_image, decode_files, decode_folder, find_image_files,
                        list_files)
from project import DOWNLOAD_HINT, ProjectError, config_path, shown

# ----------------------------------------------------------------------------------------------
# Conventions

REAL, FAKE = 1, 0                       # the CIFAKE paper's and the original study's convention
LABEL_NAMES = {FAKE: "Fake", REAL: "Real"}
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
AGIRI_MAX_PIXELS = 500_000_000          # AGIRI holds genuine >100 MP photos: PIL's bomb guard stops at 179 MP


# ----------------------------------------------------------------------------------------------
# The in-memory form of a dataset

@dataclass
class LoadReport:
    """Every file found is either loaded or listed in `skipped` with its reason."""
    found: int
    loaded: int
    skipped: list = field(default_factory=list)     # [(source, reason), ...]

    def summary(self):
        reasons = {}
        for _, reason in self.skipped:
            reasons[reason] = reasons.get(reason, 0) + 1
        detail = ", ".join(f"{n} {r}" for r, n in sorted(reasons.items())) or "none"
        return f"loaded {self.loaded} of {self.found} images, skipped {len(self.skipped)} ({detail})"


@dataclass
class ImageSet:
    """A dataset split in memory: uint8 `images` N x 3 x 32 x 32 (224 x 224 decoded "full"; K crops: rows iK..iK+K-1)"""
    name: str
    images: torch.Tensor
    labels: torch.Tensor                 # int64, REAL = 1, FAKE = 0
    sources: list                        # file path relative to the dataset root, or pickle row
    report: LoadReport
    classes: torch.Tensor = None         # content class per image (CIFAR-10 class, CIFAR-100 fine class)
    class_names: tuple = None
    coarse: torch.Tensor = None          # CIFAR-100 coarse (super-)class
    coarse_names: tuple = None
    digests: np.ndarray = None           # uint64 hash of each source file's bytes (finds duplicates)
    crops_per_image: int = 1

    def __len__(self):
        return len(self.labels)

    def subset(self, index):
        """The images at `index` (a sequence of ints or a boolean mask), as a new ImageSet."""
        index = torch.as_tensor(index)
        if index.dtype == torch.bool:
            index = index.nonzero().squeeze(1)
        k = self.crops_per_image
        rows = (index[:, None] * k + torch.arange(k)).reshape(-1)
        pick = lambda t: None if t is None else t[index]
        return replace(self, images=self.images[rows], labels=self.labels[index],
                       sources=[self.sources[i] for i in index.tolist()],
                       classes=pick(self.classes), coarse=pick(self.coarse),
                       digests=None if self.digests is None else self.digests[index.numpy()])

    def join(self, other, name):
        """This set then `other`, as one ImageSet called `name` (content classes dropped, load reports added)."""
        report = LoadReport(self.report.found + other.report.found, self.report.loaded + other.report.loaded,
                            self.report.skipped + other.report.skipped)
        return ImageSet(name, torch.cat([self.images, other.images]), torch.cat([self.labels, other.labels]),
                        self.sources + other.sources, report, digests=np.concatenate([self.digests, other.digests]),
                        crops_per_image=self.crops_per_image)


# ----------------------------------------------------------------------------------------------
# The three datasets

def parse_cifar10_class(filename):
    """CIFAKE's content class from a file name: 'N.jpg' is class 0 (airplane), 'N (k).jpg' is class k-1;
    -1 for a name that follows neither pattern."""
    match = re.fullmatch(r"\d+(?: \((\d+)\))?\.\w+", filename)
    if match is None:
        return -1
    k = int(match.group(1) or 1)
    return k - 1 if 1 <= k <= len(CIFAR10_CLASSES) else -1


def _class_dirs(split_dir, dataset, layout, labels):
    """{label: folder} for a split folder's class folders (real, fake: any case), which must all exist."""
    if not split_dir.is_dir():
        parent = split_dir.parent
        found = sorted(p.name for p in parent.iterdir()) if parent.is_dir() else "nothing (folder missing)"
        raise ProjectError(f"{dataset} not found: expected folder {shown(split_dir)} ({layout}), found {found}; "
                           f"{DOWNLOAD_HINT}")
    by_name = {re.sub(r"^\d+_", "", p.name.lower()): p for p in split_dir.iterdir() if p.is_dir()}   # 0_real too
    wanted = {label: LABEL_NAMES[label].lower() for label in labels}
    if not set(wanted.values()) <= by_name.keys():
        raise ProjectError(f"{dataset}: expected folders {' and '.join(n.upper() for n in wanted.values())} in "
                           f"{shown(split_dir)} ({layout}), found {sorted(by_name) or 'none'}; {DOWNLOAD_HINT}")
    return {label: by_name[name] for label, name in sorted(wanted.items())}


def load_image_folders(root, split, dataset, layout, preprocess="resize", max_pixels=Image.MAX_IMAGE_PIXELS,
                       parse_class=None, class_names=None, use_cache=True, verbose=True, labels=(REAL, FAKE)):
    """Read `root/split/{real,fake}/**` (`root/{real,fake}` for split "") into an ImageSet, through the cache."""
    root = Path(root)
    dirs = _class_dirs(root / split, dataset, layout, labels)
    listed = [(label, f) for label, d in dirs.items() for f in list_files(d, f"{split}/{d.name}".lstrip("/"))]
    files = [f for _, f in listed]
    cache_key = f"{split or 'all'}-{preprocess}" if use_cache else None
    decoded = decode_folder(root, files, preprocess, max_pixels, cache_key, desc=f"{dataset}/{split}")
    sources, ok = [rel for rel, _, _ in files], decoded["ok"]
    skipped = [(sources[i], reason) for i, reason in zip(decoded["failed"].tolist(), decoded["reasons"].tolist())]
    report = LoadReport(found=len(files), loaded=len(ok), skipped=skipped)
    kept = [sources[i] for i in ok.tolist()]
    classes = torch.tensor([parse_class(rel.rpartition("/")[2]) for rel in kept]) if parse_class else None
    result = ImageSet(name=f"{dataset}/{split}" if split else dataset, images=torch.from_numpy(decoded["images"]),
                      labels=torch.tensor([listed[i][0] for i in ok.tolist()], dtype=torch.int64), sources=kept,
                      report=report, classes=classes, class_names=class_names, digests=decoded["digests"][ok],
                      crops_per_image=crops_per_image(preprocess))
    if verbose:
        print(f"{result.name} ({preprocess}): {report.summary()}")
    return result


def load_cifake(root=None, split="train", use_cache=True, verbose=True):
    """CIFAKE `root/{train,test}/{REAL,FAKE}/*.jpg` (32 x 32 JPEG), with CIFAR-10 content classes."""
    root = config_path("CIFAKE_dir") if root is None else Path(root)
    return load_image_folders(root, split, "CIFAKE", "CIFAKE/{train,test}/{REAL,FAKE}/*.jpg",
                              parse_class=parse_cifar10_class, class_names=CIFAR10_CLASSES,
                              use_cache=use_cache, verbose=verbose)


def load_agiri(root=None, preprocess="resize", use_cache=True, verbose=True, name="AGIRI"):
    """The AGIRI test split `root/test/{fake,real}/*` (images of any size, mode and format) at 32 x 32 (224 x 224 with
    preprocess "full"); any folder in that layout (the faces stand-in) with its own `name`, or, where `root` has no
    test/ but fake/ and real/ folders of its own, those (the AGIRI train subset, 224 px, re-saved)."""
    root = config_path("AGIRI_dir") if root is None else Path(root)
    if preprocess not in DECODINGS:
        raise ProjectError(f"unknown preprocessing '{preprocess}' (choose from {', '.join(DECODINGS)})")
    flat = not (root / "test").is_dir() and all((root / side).is_dir() for side in ("fake", "real"))
    split = "" if flat else "test"
    return load_image_folders(root, split, name, f"{root.name}/{split + '/' if split else ''}{{fake,real}}/*",
                              preprocess=preprocess, max_pixels=AGIRI_MAX_PIXELS, use_cache=use_cache,
                              verbose=verbose)


def load_fakes(root, name, use_cache=True, verbose=True):
    """A folder of generated 32 x 32 images only, `root/fake/*` (the DDPM CIFAR-10 samples): pair it with real
    images from elsewhere (`ImageSet.join`)."""
    return load_image_folders(root, "", name, f"{Path(root).name}/fake/*", use_cache=use_cache, verbose=verbose,
                              labels=(FAKE,))


def fixed_half(n, part, seed=0):
    """The sorted indices of one half ("train" or "test") of n items, from a seeded permutation: the same every run."""
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[:n // 2] if part == "train" else order[n // 2:])


# The development generators' families; a folder added to generators32 later is a family of its own.
GENERATOR_FAMILIES = {"ddpm-cifar10-32": "diffusion", "ddpm-retrained": "diffusion", "gan-small": "GAN",
                      "gan-mix": "GAN", "glow": "flow", "pixelcnnpp": "autoregressive"}


def family_of(generator):
    return GENERATOR_FAMILIES.get(generator, generator)


def generator_folders(ddpm32_root, generators_root):
    """{generator: its folder, which holds fake/}: the DDPM-32 samples, then every folder of generators32 with a
    fake/ folder (a generator added there is one more, with nothing else to change)."""
    root = Path(generators_root)
    found = sorted(p for p in root.iterdir() if (p / "fake").is_dir()) if root.is_dir() else []
    return {"ddpm-cifar10-32": Path(ddpm32_root), **{p.name: p for p in found}}


def generator_fakes(folder, name, part=None, verbose=False):
    """A generator's images, `folder/fake/*`, or one fixed half of them: part "train" or "test"."""
    fakes = load_fakes(folder, name, verbose=verbose)
    return fakes if part is None else fakes.subset(fixed_half(len(fakes), part))


def development_sets(cifake_root, ddpm32_root, generators_root, held_out=()):
    """(fakes, reals): {generator: its images} for every generator of generator_folders, and CIFAKE's 10,000 test
    reals to rank them against. For the generators named in `held_out`, only the half that generator:NAME training
    never sees."""
    reals = load_cifake(cifake_root, "test", verbose=False)
    fakes = {name: generator_fakes(folder, name, "test" if name in held_out else None)
             for name, folder in generator_folders(ddpm32_root, generators_root).items()}
    return fakes, reals.subset(reals.labels == REAL)


def load_image_files(folder, name, label=FAKE, verbose=True):
    """Every file below `folder` (any format, size and depth: a user's generator output) as images of one class,
    resized to 32 x 32. Unreadable files are listed in the report with their reason; the digests identify the
    files."""
    files = find_image_files([folder])
    images, ok, failed, digests, _ = decode_files(files, "resize", AGIRI_MAX_PIXELS, desc=name)
    report = LoadReport(found=len(files), loaded=len(ok), skipped=[(str(files[i]), r) for i, r in failed])
    result = ImageSet(name, images, torch.full((len(ok),), label, dtype=torch.int64), [str(files[i]) for i in ok],
                      report, digests=digests[ok])
    if verbose:
        print(f"{name}: {report.summary()}")
    return result


def load_cifar100(root=None, split="test", verbose=True):
    """CIFAR-100 Python pickles (`root/{train,test,meta}`): every image real, with fine and coarse classes."""
    root = config_path("CIFAR100_dir") if root is None else Path(root)
    layout = "CIFAR100/{train,test,meta} (the Python-version pickles)"
    missing = [n for n in (split, "meta") if not (root / n).is_file()]
    if missing:
        found = sorted(p.name for p in root.iterdir()) if root.is_dir() else "nothing (folder missing)"
        raise ProjectError(f"CIFAR-100 not found: expected {', '.join(shown(root / n) for n in missing)} ({layout}), "
                           f"found {found}; {DOWNLOAD_HINT}")

    def unpickle(name, keys):
        try:
            with open(root / name, "rb") as f:
                table = pickle.load(f, encoding="bytes")
        except Exception as e:
            raise ProjectError(f"CIFAR-100: {shown(root / name)} is not a readable pickle ({type(e).__name__}); "
                               f"re-download it ({DOWNLOAD_HINT})") from None
        absent = [k.decode() for k in keys if not isinstance(table, dict) or k not in table]
        if absent:
            raise ProjectError(f"CIFAR-100: {shown(root / name)} lacks the keys {absent}; is it the Python pickle?")
        return table

    table = unpickle(split, (b"data", b"fine_labels", b"coarse_labels"))
    meta = unpickle("meta", (b"fine_label_names", b"coarse_label_names"))
    data = np.asarray(table[b"data"], dtype=np.uint8)
    if data.ndim != 2 or data.shape[1] != 3 * IMAGE_SIZE * IMAGE_SIZE:
        raise ProjectError(f"CIFAR-100: {shown(root / split)} holds data of shape {data.shape}, expected N x 3072")
    n = len(data)
    names = table.get(b"filenames") or [f"{split}[{i}]".encode() for i in range(n)]
    decode = lambda names: tuple(x.decode() if isinstance(x, bytes) else str(x) for x in names)
    result = ImageSet(
        name=f"CIFAR-100/{split}",
        images=torch.from_numpy(data.reshape(n, 3, IMAGE_SIZE, IMAGE_SIZE).copy()),  # R, G, B planes, row-major
        labels=torch.full((n,), REAL, dtype=torch.int64),
        sources=list(decode(names)),
        report=LoadReport(found=n, loaded=n),
        classes=torch.tensor(table[b"fine_labels"], dtype=torch.int64),
        class_names=decode(meta[b"fine_label_names"]),
        coarse=torch.tensor(table[b"coarse_labels"], dtype=torch.int64),
        coarse_names=decode(meta[b"coarse_label_names"]))
    if verbose:
        print(f"{result.name}: {result.report.summary()}")
    return result

# ----------------------------------------------------------------------------------------------
# Batching: the whole split lives on the device, normalised once; batches are slices

def normalise(images):
    """uint8 0..255 -> float32 in [-1, 1], as the original study's Normalize((0.5,)*3, (0.5,)*3)."""
    return images.float().div_(127.5).sub_(1.0)


class Batcher:
    """Yields (images, labels) batches of a split held on `device`.

    shuffle=True draws a new order each epoch from a seeded generator (the last partial batch is kept);
    shuffle=False goes in order, for evaluation. flip=True mirrors a random half of each batch; shift=K moves
    each image by its own random offset of up to K pixels in each direction (reflection fills the border), which
    keeps pixel-level traces intact while the network sees them at new positions."""

    def __init__(self, images, labels, batch_size, device="cpu", shuffle=False, seed=0, flip=False, shift=0):
        self.images = normalise(images.to(device))
        self.labels = labels.to(device, torch.float32)
        self.batch_size, self.shuffle, self.flip, self.shift = batch_size, shuffle, flip, shift
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self):
        return -(-len(self.labels) // self.batch_size)

    def __iter__(self):
        n = len(self.labels)
        order = torch.randperm(n, generator=self.generator).to(self.images.device) if self.shuffle else None
        for start in range(0, n, self.batch_size):
            if order is None:                         # in order: batches are views, no copy
                x, y = self.images[start:start + self.batch_size], self.labels[start:start + self.batch_size]
            else:                                     # gather one batch at a time: cheaper than permuting all
                index = order[start:start + self.batch_size]
                x, y = self.images.index_select(0, index), self.labels.index_select(0, index)
            if self.flip:
                mirror = (torch.rand(len(x), generator=self.generator) < 0.5).to(x.device)
                x = torch.where(mirror[:, None, None, None], x.flip(3), x)
            if self.shift:
                x = self.translate(x)
            yield x, y

    def translate(self, x):
        """Crop each image of the reflection-padded batch at its own random offset."""
        k, (n, _, h, w) = self.shift, x.shape
        padded = F.pad(x, (k, k, k, k), mode="reflect")
        dy, dx = (torch.randint(0, 2 * k + 1, (2, n, 1), generator=self.generator)).to(x.device)
        rows = (dy + torch.arange(h, device=x.device))[:, None, :, None]       # n x 1 x h x 1
        cols = (dx + torch.arange(w, device=x.device))[:, None, None, :]       # n x 1 x 1 x w
        batch = torch.arange(n, device=x.device)[:, None, None, None]
        channel = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
        return padded[batch, channel, rows, cols]


# ----------------------------------------------------------------------------------------------
# Networks

class SRMLayer(nn.Module):
    """Style-based recalibration (Lee et al. 2019): each channel's mean and standard deviation go
    through a channel-wise fully connected layer and batch norm into a sigmoid gate on that channel.
    The last gates (N x C, detached) are kept in `self.gate` for analysis."""

    def __init__(self, channels):
        super().__init__()
        self.cfc = nn.Conv1d(channels, channels, kernel_size=2, groups=channels, bias=False)
        self.bn = nn.BatchNorm1d(channels)
        self.gate = None

    def forward(self, x):
        flat = x.flatten(2)
        style = torch.stack([flat.mean(2), (flat.var(2, unbiased=False) + 1e-5).sqrt()], dim=2)  # N x C x 2
        gate = torch.sigmoid(self.bn(self.cfc(style)))                                           # N x C x 1
        self.gate = gate.detach().squeeze(2)
        return x * gate.unsqueeze(3)


class CIFAKE_CNN(nn.Module):
    """The PyTorch CIFAR-10 tutorial net with a single logit (61,241 parameters; +24 with attention), on the image
    or on one of generalise.INPUTS."""

    def __init__(self, attn=False, input="rgb"):
        super().__init__()
        self.config, self.input = {"arch": "cnn", "attn": bool(attn), **input_config(input)}, input
        self.conv1 = nn.Conv2d(3, 6, 5)
        self.srm = SRMLayer(6) if attn else nn.Identity()
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 1)

    def forward(self, x):
        x = self.srm(F.max_pool2d(F.relu(self.conv1(INPUTS[self.input](x))), 2))
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = F.relu(self.fc1(x.flatten(1)))
        x = F.relu(self.fc2(x))
        return self.fc3(x).squeeze(1)


def conv_bn(c_in, c_out, stride=1):
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class ResidualBlock(nn.Module):
    """Two 3x3 conv + batch-norm layers with an identity shortcut."""

    def __init__(self, channels):
        super().__init__()
        self.body = nn.Sequential(conv_bn(channels, channels), nn.Conv2d(channels, channels, 3, 1, 1, bias=False),
                                  nn.BatchNorm2d(channels))

    def forward(self, x):
        return F.relu(x + self.body(x))


class StrongCNN(nn.Module):
    """A compact residual detector (281,697 parameters as shipped): the image and its high-frequency residual, two
    layers at full 32 x 32 resolution (where pixel-level generation traces live), then two halvings; mean and max
    pooling feed one logit. In eval mode it averages its logits over test-time views: test_shift=k adds the image
    moved k pixels each way (reflection-padded), test_flip its mirrors (with test_shift=1: 10 views). `input`: one of
    generalise.INPUTS, taken before the residual."""

    def __init__(self, widths=(32, 64, 112), test_flip=False, test_shift=0, input="rgb"):
        super().__init__()
        self.config = {"arch": "strong", "widths": list(widths), "test_flip": bool(test_flip),
                       "test_shift": int(test_shift), **input_config(input)}
        self.test_flip, self.test_shift, self.input = bool(test_flip), int(test_shift), input
        w1, w2, w3 = widths
        self.features = nn.Sequential(
            conv_bn(6, w1), conv_bn(w1, w1),                                        # 32 x 32
            conv_bn(w1, w2, stride=2), ResidualBlock(w2),                           # 16 x 16
            conv_bn(w2, w3, stride=2), conv_bn(w3, w3))                             # 8 x 8
        self.head = nn.Linear(2 * w3, 1)

    def forward(self, x):
        if self.training:
            return self.logit(x)
        return torch.stack([self.logit(view) for view in self.views(x)]).mean(0)

    def views(self, x):
        """The test-time views of a batch: the images, their k-pixel shifts, and the mirrors of all."""
        views = [x]
        if self.test_shift:
            k, (h, w) = self.test_shift, x.shape[2:]
            padded = F.pad(x, (k, k, k, k), mode="reflect")
            views += [padded[:, :, dy:dy + h, dx:dx + w] for dy, dx in ((0, k), (2 * k, k), (k, 0), (k, 2 * k))]
        return views + [view.flip(3) for view in views] if self.test_flip else views

    def logit(self, x):
        x = INPUTS[self.input](x)
        x = self.features(torch.cat([x, highpass(x)], dim=1))   # the residual: what a generator's upsampling leaves
        return self.head(torch.cat([x.mean((2, 3)), x.amax((2, 3))], dim=1)).squeeze(1)


@contextmanager
def single_view(model):
    """Test-time view averaging off for a while (a no-op for models without it): for cheap monitoring during
    training, and for heat maps, which should explain the image as it is."""
    saved = {name: getattr(model, name) for name in ("test_flip", "test_shift") if hasattr(model, name)}
    for name, value in saved.items():
        setattr(model, name, type(value)(0))
    try:
        yield model
    finally:
        for name, value in saved.items():
            setattr(model, name, value)


ARCHITECTURES = {"cnn": CIFAKE_CNN, "strong": StrongCNN, "patch": PatchCNN, "pretrained": PretrainedDetector}


def build_model(arch="cnn", **kwargs):
    """A network by architecture name (`cnn` takes attn=..., `strong` widths=..., `patch` width=...; all input=...)."""
    if arch not in ARCHITECTURES:
        raise ProjectError(f"unknown architecture '{arch}' (choose from {', '.join(ARCHITECTURES)})")
    return ARCHITECTURES[arch](**kwargs)


def count_parameters(model):
    return sum(p.numel() for p in model.parameters())
