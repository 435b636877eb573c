"""Where every dataset of the study comes from, and how its files are made from the files published there.

Each `Dataset` names its config.json folder, its origin (a Kaggle dataset, or archives: public GitHub repositories
pinned to a commit, the official CIFAR-100 file), its terms and what uses it. An `ArchiveSource` takes the files
matching its patterns from the archive and converts them into a sub-folder of the dataset:

- `copy_published`: files kept as published; the manifest decides which and under what name (each file is
  placed where the manifest lists its SHA-256), so a seeded selection (600 of 1,000 ImageNet samples) or a
  renamed file (BSDS500's `train/2092.jpg` -> `train_2092.jpg`) is reproduced exactly;
- `jpeg_numbered`: 32x32 PNG samples saved once with PIL as JPEG at quality 75 (CIFAKE's own tables), named by
  their running number;
- `GridTiles`: sample grids cut on their tile geometry (rows, columns, padding) into 32x32 tiles, each saved once
  as JPEG at quality 75.

Whatever a conversion makes that the manifest does not list (a grid of an epoch the dataset leaves out) is not
part of the dataset; get_data.py says how many.
"""
import re
import shutil
from dataclasses import dataclass
from typing import Callable

from PIL import Image

from realfake.data.manifest import file_digest
from realfake.project import ProjectError

JPEG_QUALITY = 75                      # PIL's quality-75 tables and 4:2:0 subsampling are CIFAKE's own
TILE = 32                              # the development generators' sample size


def save_jpeg(image, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    image.convert("RGB").save(path, "JPEG", quality=JPEG_QUALITY)


def open_image(file):
    try:
        with Image.open(file) as img:
            img.load()
            return img
    except Exception as e:
        raise ProjectError(f"{file.name}: not a readable image ({type(e).__name__}: {e}); the source has changed "
                           "or the download is damaged: run get_data.py again") from None


def copy_published(files, out, expected):
    """Copy each source file whose digest a manifest entry (`expected`: {path: Entry}) records, to that path."""
    wanted = {entry.digest: path for path, entry in expected.items()}
    algorithms = sorted({digest.split(":")[0] for digest in wanted})
    for file in files:
        path = next((wanted[d] for d in (file_digest(file, a) for a in algorithms) if d in wanted), None)
        if path is not None:
            (out / path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(file, out / path)


def running_number(file):
    digits = re.findall(r"\d+", file.stem)
    if not digits:
        raise ProjectError(f"{file.name}: no running number in the name; the source's naming has changed")
    return int(digits[-1])


def jpeg_numbered(files, out, expected=None):
    """Each 32x32 sample as `<running number, 5 digits>.jpg`."""
    for file in files:
        image = open_image(file)
        if image.size != (TILE, TILE):
            raise ProjectError(f"{file.name}: {image.size[0]}x{image.size[1]}, expected a {TILE}x{TILE} sample")
        save_jpeg(image, out / f"{running_number(file):05d}.jpg")


@dataclass(frozen=True)
class GridTiles:
    """A rows x cols grid of TILE-pixel tiles with `padding` pixels around and between them (torchvision's
    make_grid), cut row by row into `<name>_<k>.jpg`; `name(stem)` gives the grid's name (None: not a sample grid)."""
    rows: int
    cols: int
    padding: int
    name: Callable

    def size(self):
        return (self.cols * (TILE + self.padding) + self.padding, self.rows * (TILE + self.padding) + self.padding)

    def tiles(self, image):
        step = TILE + self.padding
        for r in range(self.rows):
            for c in range(self.cols):
                x, y = self.padding + c * step, self.padding + r * step
                yield image.crop((x, y, x + TILE, y + TILE))

    def __call__(self, files, out, expected=None):
        digits = len(str(self.rows * self.cols))          # 100 tiles: began_000 .. began_099
        for file in files:
            name = self.name(file.stem)
            if name is None:
                continue
            image = open_image(file)
            if image.size != self.size():
                raise ProjectError(f"{file.name}: a {image.size[0]}x{image.size[1]} grid, expected "
                                   f"{self.size()[0]}x{self.size()[1]} ({self.rows}x{self.cols} tiles of {TILE} px, "
                                   f"padding {self.padding})")
            for k, tile in enumerate(self.tiles(image)):
                save_jpeg(tile, out / f"{name}_{k:0{digits}d}.jpg")


def glow_name(stem):
    """chrischute/glow saves `epoch_<N>.png`: the tiles are `ep<NNN>_<k>`."""
    match = re.fullmatch(r"epoch_(\d+)", stem)
    return f"ep{int(match[1]):03d}" if match else None


def pixelcnnpp_name(stem):
    """pixel-cnn-pp saves `pcnn_lr:<lr>_nr-resnet<R>_nr-filters<F>_<epoch>.png`: the tiles are `r<R>_ep<NNN>_<k>`."""
    match = re.fullmatch(r"pcnn_.*nr-resnet(\d+)_.*_(\d+)", stem)
    return f"r{match[1]}_ep{int(match[2]):03d}" if match else None


@dataclass(frozen=True)
class ArchiveSource:
    """The files matching `patterns` in a .tar.gz archive (paths below its top folder; fnmatch, so `*` also crosses
    folders), converted into the dataset's sub-folder `into`."""
    url: str
    patterns: tuple
    convert: Callable                  # convert(files, out_folder, the manifest's entries of that folder)
    into: str = ""
    label: str = ""                    # how the README and messages name it

    @property
    def host(self):
        return self.url.split("/")[2]

    def __str__(self):
        return f"{self.label or self.url} ({', '.join(self.patterns)})"


def github(repo, commit, patterns, convert, into=""):
    """A public GitHub repository at a commit (as ../shared/data/README.md and the repository index give it)."""
    return ArchiveSource(f"https://github.com/{repo}/archive/{commit}.tar.gz", patterns, convert, into,
                         f"github.com/{repo} @ {commit[:7]}")


@dataclass(frozen=True)
class Dataset:
    name: str
    key: str                           # config.json key of its folder
    title: str
    terms: str                         # licence or terms, as the source states them
    used_by: str
    kaggle: str | None = None          # Kaggle handle
    keep: tuple = ()                   # Kaggle: the top-level folders kept (empty: all)
    sources: tuple = ()                # ArchiveSources
    not_downloadable: str = ""         # why there is no download, and what to do instead
    layout: tuple = ()                 # without a manifest: the folders that must hold images

    @property
    def host(self):
        return "www.kaggle.com" if self.kaggle else (self.sources[0].host if self.sources else None)

    @property
    def downloadable(self):
        return bool(self.kaggle or self.sources)

    def origin(self):
        if self.kaggle:
            return f"https://www.kaggle.com/datasets/{self.kaggle}"
        return "; ".join(str(s) for s in self.sources) or self.not_downloadable


EVALUATION_ONLY = "none stated: evaluation only, never commit"
DATASETS = {d.name: d for d in (
    Dataset("cifake", "CIFAKE_dir", "CIFAKE: train and test, REAL and FAKE, 32x32 JPEG",
            "MIT (cite Krizhevsky & Hinton 2009; Bird & Lotfi 2024)",
            "every 32 px model: train.py, test.py, the notebooks, reproduce.py",
            kaggle="birdy654/cifake-real-and-ai-generated-synthetic-images"),
    Dataset("cifar100", "CIFAR100_dir", "CIFAR-100, the official Python pickles (train, test, meta)",
            "none stated by its authors (cite Krizhevsky & Hinton 2009)",
            "transfer_cifar100 notebook, test.py, reproduce.py",
            sources=(ArchiveSource("https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
                                   ("train", "test", "meta"), copy_published,
                                   label="cs.toronto.edu/~kriz/cifar-100-python.tar.gz"),)),
    Dataset("cifar100-sample10k", "CIFAR100_dir", "CIFAR-100, a pooled sample in the pickle format (test, meta)",
            "as cifar100", "the CIFAR-100 figures in this repo",
            not_downloadable="drawn from all 60,000 images with seed 0 by an algorithm that was not recorded, so it "
                             "cannot be rebuilt; `get_data.py cifar100` gives the official files (figures on the "
                             "official test split differ a little)"),
    Dataset("agiri", "AGIRI_dir", "AGIRI's test/ folder (train/ too with --train)",
            "see its Kaggle page; evaluation only, never commit",
            "test.py -mf agiri_model, transfer_mixed notebook; with --train, train.py --dataset agiri",
            kaggle="tristanzhang32/ai-generated-images-vs-real-images", keep=("test",),
            layout=("test/fake", "test/real")),
    Dataset("agiri-subset224", "agiri_subset_dir", "AGIRI train subset, 224 px, re-saved (fake, real)",
            EVALUATION_ONLY, "train.py --dataset agiri/photos, test.py, matrix.py, reproduce.py",
            sources=(github("dhairyachaturvedi10/fake-image-detector", "6ebbefa8e7cba69a3d7916a86ec38ad733799bd1",
                                  ("model/my_dataset/FAKE/tristan_*", "model/my_dataset/REAL/tristan_*"),
                                  copy_published),)),
    Dataset("reals-photos", "reals_photos_dir", "real photographs: ImageNet samples and BSDS500, as published",
            "ImageNet: non-commercial research and education; BSDS500: research use",
            "train.py --dataset photos, reproduce.py",
            sources=(github("EliSchwartz/imagenet-sample-images", "bc69043e2862758a1906c6a24a792bb28c6bb2ff",
                                  ("*.JPEG",), copy_published, into="imagenet-samples"),
                     github("BIDS/BSDS500", "a04b7c6",
                                  ("BSDS500/data/images/*.jpg",), copy_published, into="bsds500"))),
    Dataset("faces", "faces_dir", "DDPM faces and CelebA-HQ faces, 256x256 JPEG",
            "research use (CelebA-HQ: non-commercial research)",
            "the full-size detectors' transfer figures, reproduce.py",
            sources=(github("FrankCCCCC/edit_detect", "80c22dcb97ac67baf287718a2b565d57b7643dd2",
                                  ("fake_images/celeba_hq_256_ddpm/*.jpg",), copy_published, into="test/fake"),
                     github("FrankCCCCC/edit_detect", "80c22dcb97ac67baf287718a2b565d57b7643dd2",
                                  ("real_images/*.jpg",), copy_published, into="test/real"))),
    Dataset("ddpm32", "ddpm32_dir", "DDPM CIFAR-10 samples, 32x32 JPEG",
            EVALUATION_ONLY, "transfer_generators notebook, variants.py, reproduce.py",
            sources=(github("FrankCCCCC/edit_detect", "62afa0600f76637395213aeb7e79dcf00a0df252",
                                  ("fake_images/cifar10_ddpm/*.jpg",), copy_published, into="fake"),)),
    Dataset("generators32", "generators32_dir", "five more 32x32 generators, JPEG at quality 75",
            "gan-mix, glow, pixelcnnpp: MIT; ddpm-retrained, gan-small: " + EVALUATION_ONLY,
            "variants.py --protocol logo/lofo, matrix.py, transfer_generators notebook",
            sources=(github("muneer-kayali/CIFAR10-Diffusion-Model", "6bcf7e56df1c7de9c59e1156b72ba53499c23507",
                                  ("samples_20250505_191454/epoch_600_large/*.png",), jpeg_numbered,
                                  into="ddpm-retrained/fake"),
                     github("miaojiang1987/fid_score", "a5a21b7", ("output/*.png",), jpeg_numbered,
                                  into="gan-small/fake"),
                     github("pfnet-research/chainer-gan-lib", "cf9efba5b166c07bfd56be1bd4aa9a662dd54bd1",
                                  ("images/*.png",), GridTiles(10, 10, 0, lambda stem: stem), into="gan-mix/fake"),
                     github("chrischute/glow", "faffa5ba02f878902a211db76c0bd4ea074b39f7",
                                  ("samples/epoch_*.png",), GridTiles(8, 8, 2, glow_name), into="glow/fake"),
                     github("pclucas14/pixel-cnn-pp", "7cb4436", ("images/pcnn_*.png",),
                                  GridTiles(5, 5, 0, pixelcnnpp_name), into="pixelcnnpp/fake"))),
)}
STUDY = tuple(name for name, d in DATASETS.items() if d.downloadable)   # what `get_data.py all` fetches
