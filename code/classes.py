"""The study's own code, as the study describes it: its three datasets and its network.

Datasets: CIFAKE (`load_cifake`), the AGIRI test split and folders in its layout (`load_agiri`) and CIFAR-100
(`load_cifar100`), and the benchmark's development generators against CIFAKE's test reals (`development_sets`), each
read into one in-memory form, a `realfake.data.datasets.ImageSet` (uint8 images
N x 3 x 32 x 32, labels REAL = 1 / FAKE = 0, content classes where the dataset has them, the source of every image,
and a `LoadReport` that accounts for every file found).

Network: `CIFAKE_CNN`, the PyTorch CIFAR-10 tutorial net with one logit, optionally with an `SRMLayer` (style-based
channel attention) after its first block. P(real) = sigmoid(logit). The stronger networks, the batcher and the
checkpoints live in the `realfake` package beside this file.
"""
import pickle
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from realfake import REAL
from realfake.data.datasets import (
    AGIRI_MAX_PIXELS,
    ImageSet,
    LoadReport,
    generator_fakes,
    generator_folders,
    load_image_files,
    load_image_folders,
)
from realfake.data.imagefiles import (
    DECODINGS,
    IMAGE_SIZE,
)
from realfake.data.inputs import INPUTS, input_config
from realfake.project import DOWNLOAD_HINT, ProjectError, config_path, shown

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


# ----------------------------------------------------------------------------------------------
# The datasets

def parse_cifar10_class(filename):
    """CIFAKE's content class from a file name: 'N.jpg' is class 0 (airplane), 'N (k).jpg' is class k-1;
    -1 for a name that follows neither pattern."""
    match = re.fullmatch(r"\d+(?: \((\d+)\))?\.\w+", filename)
    if match is None:
        return -1
    k = int(match.group(1) or 1)
    return k - 1 if 1 <= k <= len(CIFAR10_CLASSES) else -1


def load_cifake(root=None, split="train", use_cache=True, verbose=True):
    """CIFAKE `root/{train,test}/{REAL,FAKE}/*.jpg` (32 x 32 JPEG), with CIFAR-10 content classes."""
    root = config_path("CIFAKE_dir") if root is None else Path(root)
    return load_image_folders(root, split, "CIFAKE", "CIFAKE/{train,test}/{REAL,FAKE}/*.jpg",
                              parse_class=parse_cifar10_class, class_names=CIFAR10_CLASSES,
                              use_cache=use_cache, verbose=verbose)


def load_agiri(root=None, preprocess="resize", use_cache=True, verbose=True, name="AGIRI", split="test"):
    """AGIRI's `root/<split>/{fake,real}/*` (images of any size, mode and format; split "test", or "train" where
    `get_data.py agiri --train` kept it) at 32 x 32 (224 x 224 with preprocess "full"); any folder in that layout (the
    faces stand-in) with its own `name`, or, where `root` has no test/ but fake/ and real/ folders of its own, those
    (the AGIRI train subset, 224 px, re-saved)."""
    root = config_path("AGIRI_dir") if root is None else Path(root)
    if preprocess not in DECODINGS:
        raise ProjectError(f"unknown preprocessing '{preprocess}' (choose from {', '.join(DECODINGS)})")
    flat = not (root / split).is_dir() and all((root / side).is_dir() for side in ("fake", "real"))
    split = "" if flat else split
    return load_image_folders(root, split, name, f"{root.name}/{split + '/' if split else ''}{{fake,real}}/*",
                              preprocess=preprocess, max_pixels=AGIRI_MAX_PIXELS, use_cache=use_cache,
                              verbose=verbose)


def has_agiri_train(root=None):
    """Whether `root` (config.json's AGIRI_dir) holds AGIRI's own train/ and test/ folders (get_data.py agiri --train):
    the full-size detector then trains on train/ and holds out test/, not a fold of the 224 px subset."""
    root = config_path("AGIRI_dir") if root is None else Path(root)
    return all((root / split / side).is_dir() for split in ("train", "test") for side in ("fake", "real"))


def load_real_photos(root=None, preprocess="full", verbose=True):
    """Real photographs of any size, one source per sub-folder of `root` (config key reals_photos_dir: ImageNet
    samples, BSDS500; a folder added there is one more source), decoded as the full-size model takes them. Returns
    ({source: ImageSet of REAL images, `sources` relative to `root`}); every file found is loaded or listed in its
    source's report with the reason."""
    root = config_path("reals_photos_dir") if root is None else Path(root)
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")) if root.is_dir() else []
    if not folders:
        found = sorted(p.name for p in root.iterdir()) if root.is_dir() else "nothing (folder missing)"
        raise ProjectError(f"real photographs not found: expected one folder per source in {shown(root)} "
                           f"(reals-photos/<source>/*), found {found}; {DOWNLOAD_HINT}")
    sets = {}
    for folder in folders:
        data = load_image_files(folder, folder.name, REAL, verbose=verbose, preprocess=preprocess, relative=True)
        sets[folder.name] = replace(data, sources=[f"{folder.name}/{s}" for s in data.sources])
    return sets


def development_sets(cifake_root, ddpm32_root, generators_root, held_out=()):
    """(fakes, reals): {generator: its images} for every generator of generator_folders, and CIFAKE's 10,000 test
    reals to rank them against. For the generators named in `held_out`, only the half that generator:NAME training
    never sees."""
    reals = load_cifake(cifake_root, "test", verbose=False)
    fakes = {name: generator_fakes(folder, name, "test" if name in held_out else None)
             for name, folder in generator_folders(ddpm32_root, generators_root).items()}
    return fakes, reals.subset(reals.labels == REAL)


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
    or on one of data/inputs.INPUTS."""

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
