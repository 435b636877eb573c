"""Datasets in memory: the `ImageSet` every loader returns and the `LoadReport` that accounts for every file found,
the generic folder loaders that `classes.py`'s CIFAKE and AGIRI loaders stand on, a folder of any images
(`load_image_files`), and the development generators' folders and families. Image files are decoded by
imagefiles.py."""
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from realfake import FAKE, LABEL_NAMES, REAL
from realfake.data.imagefiles import crops_per_image, decode_files, decode_folder, find_image_files, list_files
from realfake.project import DOWNLOAD_HINT, ProjectError, shown

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


def load_image_files(folder, name, label=FAKE, verbose=True, preprocess="resize", relative=False):
    """Every file below `folder` (any format, size and depth: a user's generator output) as images of one class,
    resized to 32 x 32 (or decoded as `preprocess` says). Unreadable files are listed in the report with their reason;
    `sources` are the files' paths (`relative`: below `folder`), the digests identify the files."""
    folder = Path(folder)
    files = find_image_files([folder])
    images, ok, failed, digests, _ = decode_files(files, preprocess, AGIRI_MAX_PIXELS, desc=name)
    below = lambda i: files[i].relative_to(folder).as_posix() if relative else str(files[i])
    report = LoadReport(found=len(files), loaded=len(ok), skipped=[(below(i), r) for i, r in failed])
    result = ImageSet(name, images, torch.full((len(ok),), label, dtype=torch.int64), [below(i) for i in ok],
                      report, digests=digests[ok])
    if verbose:
        print(f"{name} ({preprocess}): {report.summary()}")
    return result
