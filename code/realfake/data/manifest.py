"""Manifests: the name, size and digest of every file of a dataset, committed, so that a download or a folder
unpacked by hand can be checked file by file.

A manifest is `manifests/<dataset>.tsv.gz` (split into `<dataset>.<k>.tsv.gz` parts of MANIFEST_PART_LINES lines
when long, so no committed file is large): a tab-separated table `path  bytes  digest`, the path relative to the
dataset's folder, the digest `sha256:<hex>` (or `md5:<hex>` where the only published facts are the MD5 sums of
the official files, whose size is then `-`). `compare` says which files are missing, unexpected or different.
"""
import gzip
import hashlib
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from realfake.project import ProjectError, shown

MANIFEST_DIR = Path(__file__).resolve().parent / "manifests"
MANIFEST_PART_LINES = 30_000            # about 1.3 MB gzipped: CIFAKE's 120,000 files make four parts
HEADER = ("path", "bytes", "digest")
HEADER_LINE = "\t".join(HEADER)
IGNORED_NAMES = {".cache", ".DS_Store", "Thumbs.db"}   # what the project or an OS writes beside the images
SHOWN_PER_KIND = 10                     # names listed per kind of problem; the rest are counted


@dataclass(frozen=True)
class Entry:
    path: str                           # relative to the dataset folder, "/"-separated
    size: int | None                    # None where the source publishes none
    digest: str                         # "sha256:<hex>" or "md5:<hex>"


def file_digest(path, algorithm="sha256"):
    with open(path, "rb") as f:
        return f"{algorithm}:{hashlib.file_digest(f, algorithm).hexdigest()}"


def dataset_files(folder):
    """Every file under `folder` (paths relative to it, sorted), leaving out the project's caches and OS litter."""
    folder = Path(folder)
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                  if p.is_file() and not IGNORED_NAMES & set(p.relative_to(folder).parts))


def manifest_files(name, directory=None):
    directory = Path(directory or MANIFEST_DIR)
    return sorted(directory.glob(f"{name}.tsv.gz")) + \
        sorted(directory.glob(f"{name}.[0-9]*.tsv.gz"), key=lambda p: int(p.name.split(".")[-3]))


def has_manifest(name, directory=None):
    return bool(manifest_files(name, directory))


def read_manifest(name, directory=None):
    """{path: Entry} of dataset `name`, from all its parts."""
    files = manifest_files(name, directory)
    if not files:
        raise ProjectError(f"no manifest for '{name}' in {shown(directory or MANIFEST_DIR)}")
    entries = {}
    for file in files:
        with gzip.open(file, "rt", encoding="utf-8", newline="\n") as f:
            header, *lines = f.read().splitlines()
        if tuple(header.split("\t")) != HEADER:
            raise ProjectError(f"{shown(file)}: not a manifest (first line {header!r}, expected {HEADER_LINE!r})")
        for line in lines:
            path, size, digest = line.split("\t")
            entries[path] = Entry(path, None if size == "-" else int(size), digest)
    return entries


def describe(folder, algorithm="sha256", progress=True):
    """{path: Entry} of every file in `folder`, as a manifest records it."""
    folder = Path(folder)
    paths = dataset_files(folder)
    return {p: Entry(p, (folder / p).stat().st_size, file_digest(folder / p, algorithm))
            for p in tqdm(paths, desc=f"hashing {folder.name}", unit="file", disable=not progress or len(paths) < 1000)}


def write_manifest(name, entries, directory=None):
    """Write `entries` ({path: Entry}) as dataset `name`'s manifest, replacing any earlier one; returns the files."""
    directory = Path(directory or MANIFEST_DIR)
    directory.mkdir(parents=True, exist_ok=True)
    for old in manifest_files(name, directory):
        old.unlink()
    lines = [f"{e.path}\t{'-' if e.size is None else e.size}\t{e.digest}" for _, e in sorted(entries.items())]
    parts = [lines[i:i + MANIFEST_PART_LINES] for i in range(0, len(lines), MANIFEST_PART_LINES)] or [[]]
    written = []
    for k, part in enumerate(parts, start=1):
        file = directory / (f"{name}.tsv.gz" if len(parts) == 1 else f"{name}.{k}.tsv.gz")
        # mtime=0: the same entries give the same bytes, so a re-written manifest shows no change in git
        with open(file, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
            gz.write((HEADER_LINE + "\n" + "".join(line + "\n" for line in part)).encode("utf-8"))
        written.append(file)
    return written


@dataclass
class Comparison:
    missing: list                       # in the manifest, not in the folder
    unexpected: list                    # in the folder, not in the manifest
    different: list                     # in both, another size or digest
    checked: int                        # files compared

    @property
    def ok(self):
        return not (self.missing or self.unexpected or self.different)

    def summary(self):
        if self.ok:
            return f"all {self.checked} files match the manifest"
        def listed(kind, paths):
            more = f" and {len(paths) - SHOWN_PER_KIND} more" if len(paths) > SHOWN_PER_KIND else ""
            return f"{len(paths)} {kind} ({', '.join(paths[:SHOWN_PER_KIND])}{more})"
        return "; ".join(listed(kind, paths) for kind, paths in
                         (("missing", self.missing), ("not in the manifest", self.unexpected),
                          ("different from the manifest", self.different)) if paths)


def compare(folder, entries, progress=True):
    """Compare the files in `folder` with a manifest's `entries`: sizes first, digests of every file."""
    folder = Path(folder)
    present = set(dataset_files(folder)) if folder.is_dir() else set()
    missing = sorted(set(entries) - present)
    unexpected = sorted(present - set(entries))
    both = sorted(present & set(entries))
    different = []
    for path in tqdm(both, desc=f"checking {folder.name}", unit="file", disable=not progress or len(both) < 1000):
        entry, file = entries[path], folder / path
        if entry.size is not None and file.stat().st_size != entry.size:
            different.append(path)
        elif file_digest(file, entry.digest.split(":")[0]) != entry.digest:
            different.append(path)
    return Comparison(missing, unexpected, different, len(both))
