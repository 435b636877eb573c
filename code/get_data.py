"""Download the study's three datasets from Kaggle into data/ (the folders config.json names).

    python code/get_data.py                  # all three: cifake, cifar100, agiri (only its test/ folder)
    python code/get_data.py cifake           # one of them

Each download goes to a temporary folder inside data/, is checked (expected folders and image
counts), and only then moved into place, so a failed download never leaves half a dataset.
Kaggle may ask for credentials (~/.kaggle/kaggle.json or KAGGLE_USERNAME / KAGGLE_KEY).
Without network access it stops at once with the manual steps.
"""
import argparse
import shutil
import socket
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from realfake.project import ProjectError, config_path

KAGGLE_HOST = ("www.kaggle.com", 443)
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}


def count_images(folder):
    return sum(1 for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


def _child(folder, name):
    """The sub-folder of `folder` called `name`, ignoring case, or None."""
    return next((p for p in Path(folder).iterdir() if p.is_dir() and p.name.lower() == name.lower()), None) \
        if Path(folder).is_dir() else None


def check_cifake(root):
    """Problems with a CIFAKE folder: [] when train/test REAL/FAKE hold 50k/50k/10k/10k images."""
    expected = {("train", "REAL"): 50_000, ("train", "FAKE"): 50_000, ("test", "REAL"): 10_000, ("test", "FAKE"): 10_000}
    problems = []
    for (split, label), n in expected.items():
        folder = Path(root) / split / label
        found = count_images(folder) if folder.is_dir() else 0
        if found != n:
            problems.append(f"{split}/{label}: {found} images, expected {n}")
    return problems


def check_cifar100(root):
    return [f"missing file '{n}'" for n in ("train", "test", "meta") if not (Path(root) / n).is_file()]


def check_agiri(root):
    test = _child(root, "test")
    if test is None:
        return ["missing folder test/"]
    return [f"test/{c}/ missing or empty" for c in ("fake", "real") if not _child(test, c) or not count_images(_child(test, c))]


# name -> (Kaggle handle, config.json key, the sub-folder to keep (None: all), the check of a finished copy)
DATASETS = {
    "cifake": ("birdy654/cifake-real-and-ai-generated-synthetic-images", "CIFAKE_dir", None, check_cifake),
    "cifar100": ("fedesoriano/cifar100", "CIFAR100_dir", None, check_cifar100),
    "agiri": ("tristanzhang32/ai-generated-images-vs-real-images", "AGIRI_dir", "test", check_agiri),
}


def manual_steps(name):
    handle, key, part, _ = DATASETS[name]
    what = "its test/ folder" if part else "its contents"
    return (f"download https://www.kaggle.com/datasets/{handle} by hand and put {what} in "
            f"{config_path(key)}" + (f"/{part}" if part else ""))


def kaggle_reachable(timeout=5.0):
    try:
        socket.create_connection(KAGGLE_HOST, timeout=timeout).close()
        return True
    except OSError:
        return False


def find_dataset_root(folder, check):
    """The folder at or below `folder` (up to two levels) for which `check` finds no problem, or None."""
    candidates = [Path(folder)] + [p for p in Path(folder).glob("*") if p.is_dir()] + \
                 [p for p in Path(folder).glob("*/*") if p.is_dir()]
    return next((c for c in candidates if not check(c)), None)


def download(name, downloader=None, reachable=kaggle_reachable):
    """Download one dataset into its config.json folder; returns that folder. Raises ProjectError with
    the manual steps when Kaggle cannot be reached or the download does not check out."""
    handle, key, part, check = DATASETS[name]
    target = config_path(key)
    if target.exists() and not check(target):
        print(f"{name}: already in place at {target}")
        return target
    if not reachable():
        raise ProjectError(f"{name}: cannot reach {KAGGLE_HOST[0]} (offline?); {manual_steps(name)}")
    if downloader is None:
        import kagglehub
        downloader = kagglehub.dataset_download
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".download-{name}-", dir=target.parent) as tmp:
        print(f"{name}: downloading {handle} ...")
        try:
            fetched = Path(downloader(handle, output_dir=tmp))
        except Exception as e:
            raise ProjectError(f"{name}: download failed ({type(e).__name__}: {e}); {manual_steps(name)}") from None
        staged = Path(tmp) / "staged"
        staged.mkdir()
        if part:                                   # keep only e.g. AGIRI's test/ folder
            source = _child(fetched, part) or next((p for p in fetched.glob(f"*/{part}") if p.is_dir()), None)
            if source is None:
                raise ProjectError(f"{name}: the download has no {part}/ folder; {manual_steps(name)}")
            shutil.move(str(source), staged / part)
            root = staged
        else:
            root = find_dataset_root(fetched, check)
        problems = check(root) if root is not None else ["expected layout not found"]
        if problems:
            raise ProjectError(f"{name}: the download does not check out ({'; '.join(problems)}); {manual_steps(name)}")
        if target.exists():                        # an incomplete earlier copy: replace it whole
            shutil.rmtree(target)
        shutil.move(str(root), target)
    print(f"{name}: ready at {target}")
    return target


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("datasets", nargs="*", metavar="DATASET", help=f"any of {', '.join(DATASETS)} (default: all)")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.datasets) - set(DATASETS))
    if unknown:
        parser.error(f"unknown dataset {', '.join(unknown)} (choose from {', '.join(DATASETS)})")
    failed = []
    for name in args.datasets or DATASETS:
        try:
            download(name)
        except ProjectError as e:
            print(f"error: {e}", file=sys.stderr)
            failed.append(name)
    if failed:
        sys.exit(f"not downloaded: {', '.join(failed)} (see the steps above)")


if __name__ == "__main__":
    main()
