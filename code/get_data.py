"""Every dataset the study uses, from its public origin into data/ (the folders config.json names), checked file by
file against the manifest committed with the code.

    python code/get_data.py all                  # every dataset below that can be downloaded
    python code/get_data.py cifake faces         # some of them
    python code/get_data.py agiri --train        # AGIRI's train/ folder as well as its test/
    python code/get_data.py --check cifar100     # check a folder already in data/ (e.g. an archive unpacked by hand)
    python code/get_data.py --list               # the datasets: origin, size, terms, what uses them

Kaggle datasets come through kagglehub (it may ask for credentials: ~/.kaggle/kaggle.json or KAGGLE_USERNAME /
KAGGLE_KEY); the others from their archives, converted as realfake/data/sources.py says. Each download goes to a
temporary folder beside its target and is moved into place only when every file matches the manifest; a
mismatch names the files and leaves nothing behind. Without network access it stops at once with the manual step.
"""
import argparse
import fnmatch
import hashlib
import shutil
import socket
import sys
import tarfile
import tempfile
import urllib.request
import zlib
from pathlib import Path, PurePosixPath

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tqdm.auto import tqdm

from realfake.data.manifest import MANIFEST_DIR, compare, dataset_files, describe, has_manifest, read_manifest, \
    write_manifest
from realfake.data.sources import DATASETS, STUDY
from realfake.project import ProjectError, config_path, shown

TIMEOUT_S = 30                          # a connection that stalls this long fails, never hangs


def reachable(host, timeout=5.0):
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def manual_steps(dataset, train=False):
    target = shown(config_path(dataset.key))
    if dataset.kaggle:
        keep = dataset.keep + (("train",) if train else ())
        what = f"its {' and '.join(f'{k}/' for k in keep)} folder{'s' if len(keep) > 1 else ''}" if keep else "it"
        return f"download {dataset.origin()} by hand and put {what} in {target}"
    return (f"download {' and '.join(s.url for s in dataset.sources)} by hand, or unpack an archive of the dataset "
            f"into {target}, then run `python code/get_data.py --check {dataset.name}`")


# ----------------------------------------------------------------------------------------------
# Checks

def layout_folders(dataset, train=False):
    return dataset.layout + (tuple(p.replace("test/", "train/") for p in dataset.layout) if train else ())


def layout_problems(dataset, folder, train=False):
    """A dataset without a manifest (AGIRI: the project holds no copy of it): its image folders must exist and hold
    files."""
    problems = []
    for sub in layout_folders(dataset, train):
        found = child(folder, sub)
        if not (found and dataset_files(found)):       # every file counts: the loader uses it or lists why not
            problems.append(f"{sub}/ {'is empty' if found else 'is missing'}")
    return problems


def inspect(name, folder, train=False):
    """(ok, what was found) for dataset `name` in `folder`. Where another dataset shares its config.json folder
    (cifar100 and its pooled sample), a folder holding that one says so."""
    dataset = DATASETS[name]
    if not has_manifest(name):
        problems = layout_problems(dataset, folder, train)
        if problems:
            return False, "; ".join(problems)
        counts = {sub: len(dataset_files(child(folder, sub))) for sub in layout_folders(dataset, train)}
        found = ", ".join(f"{k}: {v} files" for k, v in counts.items())
        return True, (f"the expected folders ({found}); no manifest to check the files against (the project holds "
                      "no copy of this dataset)")
    result = compare(folder, read_manifest(name))
    if not result.ok:
        for sibling in (d.name for d in DATASETS.values() if d.key == dataset.key and d.name != name):
            if has_manifest(sibling) and compare(folder, read_manifest(sibling), progress=False).ok:
                return False, f"it holds {sibling} ({DATASETS[sibling].title}), not {name}"
    return result.ok, result.summary()


def check(name, folder=None, train=False):
    """(ok, a one-line message) for the folder config.json names for dataset `name` (or `folder`)."""
    folder = Path(folder) if folder else config_path(DATASETS[name].key)
    if not folder.is_dir():
        return False, f"{name}: {shown(folder)} does not exist; run `python code/get_data.py {name}`"
    ok, found = inspect(name, folder, train)
    return ok, f"{name}: {shown(folder)}: {found}"


# ----------------------------------------------------------------------------------------------
# Fetching

def child(folder, path):
    """`folder/path`, each part matched ignoring case, or None."""
    here = Path(folder)
    for part in PurePosixPath(path).parts:
        here = next((p for p in here.iterdir() if p.is_dir() and p.name.lower() == part.lower()), None) \
            if here.is_dir() else None
        if here is None:
            return None
    return here


def download_file(url, path):
    with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response, open(path, "wb") as f:
        total = int(response.headers.get("Content-Length") or 0) or None
        with tqdm(total=total, unit="B", unit_scale=True, desc=url.rsplit("/", 3)[-3]) as bar:
            while chunk := response.read(1 << 20):
                f.write(chunk)
                bar.update(len(chunk))


def extract(archive, patterns, out):
    """The regular files of a .tar.gz whose path below its top folder matches a pattern, into `out`; returns them."""
    files = []
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar:
            inner = PurePosixPath(*PurePosixPath(member.name).parts[1:])
            if not member.isfile() or ".." in inner.parts or not any(fnmatch.fnmatchcase(str(inner), p)
                                                                    for p in patterns):
                continue
            file = out / inner
            file.parent.mkdir(parents=True, exist_ok=True)
            with tar.extractfile(member) as source, open(file, "wb") as f:
                shutil.copyfileobj(source, f)
            files.append(file)
    return sorted(files)


def fetch_archive(url, folder):
    """Download `url` into `folder` (once: sources sharing an archive share the download); returns the file."""
    archive = Path(folder) / f"archive-{hashlib.sha1(url.encode()).hexdigest()[:12]}.tar.gz"
    if not archive.exists():
        download_file(url, archive)
    return archive


def build_from_archives(dataset, tmp, train=False, fetch=None):
    """Fetch and convert every source of `dataset` into tmp/staged; returns (staged folder, files not in it)."""
    fetch = fetch or fetch_archive
    entries = read_manifest(dataset.name)
    staged = tmp / "staged"
    staged.mkdir()
    left_out = 0
    for k, source in enumerate(dataset.sources):
        raw = tmp / f"source{k}"
        files = extract(fetch(source.url, tmp), source.patterns, raw)
        if not files:
            raise ProjectError(f"{dataset.name}: nothing in {source} matches {', '.join(source.patterns)}; "
                               f"{manual_steps(dataset)}")
        out = staged / source.into
        prefix = f"{source.into}/" if source.into else ""
        expected = {p[len(prefix):]: e for p, e in entries.items() if p.startswith(prefix)}
        made_before = set(dataset_files(out)) if out.is_dir() else set()
        source.convert(files, out, expected)
        for path in set(dataset_files(out)) - made_before - set(expected):   # made, but not part of the dataset
            (out / path).unlink()
            left_out += 1
        shutil.rmtree(raw)
    return staged, left_out


def fetch_kaggle(handle, folder):
    import kagglehub
    return Path(kagglehub.dataset_download(handle, output_dir=str(folder)))


def build_from_kaggle(dataset, tmp, train=False, fetch=None):
    """Download `dataset` from Kaggle and return the folder holding it (only its kept folders, where it keeps some)."""
    fetched = (fetch or fetch_kaggle)(dataset.kaggle, tmp / "kaggle")
    keep = dataset.keep + (("train",) if train else ())
    if not keep:          # its root: the folder, or one up to two levels below, holding the manifest's top folders
        tops = {PurePosixPath(p).parts[0] for p in read_manifest(dataset.name)}
        candidates = [fetched, *sorted(p for p in fetched.glob("*") if p.is_dir()),
                      *sorted(p for p in fetched.glob("*/*") if p.is_dir())]
        return next((c for c in candidates if all((c / t).exists() for t in tops)), fetched), 0
    staged = tmp / "staged"
    staged.mkdir()
    for part in keep:
        source = child(fetched, part) or next((p for p in fetched.glob(f"*/{part}") if p.is_dir()), None)
        if source is None:
            raise ProjectError(f"{dataset.name}: the download has no {part}/ folder; {manual_steps(dataset, train)}")
        shutil.move(str(source), staged / part)
    return staged, 0


def download(name, train=False, fetch=None, is_reachable=None):
    """Fetch dataset `name` into its config.json folder, checked against its manifest; returns the folder. Raises
    ProjectError (one line: what, where from, the manual step) when it cannot."""
    dataset = DATASETS[name]
    if not dataset.downloadable:
        raise ProjectError(f"{name} ({dataset.title}) cannot be downloaded: {dataset.not_downloadable}")
    if train and not dataset.keep:
        raise ProjectError(f"--train applies to agiri only (AGIRI's train/ folder), not to {name}")
    target = config_path(dataset.key)
    if target.exists():
        ok, message = check(name, target, train)
        if ok:
            print(message)
            return target
        raise ProjectError(f"{message}; move or delete {shown(target)} and run again (nothing was changed)")
    if not (is_reachable or reachable)(dataset.host):
        raise ProjectError(f"{name}: cannot reach {dataset.host} (offline?); {manual_steps(dataset, train)}")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".download-{name}-", dir=target.parent) as tmp:
        print(f"{name}: downloading {dataset.origin()} ...")
        try:
            build = build_from_kaggle if dataset.kaggle else build_from_archives
            staged, left_out = build(dataset, Path(tmp), train, fetch)
        except (OSError, EOFError, zlib.error, tarfile.TarError) as e:       # unreachable, cut short or damaged
            raise ProjectError(f"{name}: download failed ({type(e).__name__}: {e}); {manual_steps(dataset, train)}") \
                from None
        ok, found = inspect(name, staged, train)
        if not ok:
            raise ProjectError(f"{name}: the download does not match: {found}; nothing was moved into {shown(target)}")
        if left_out:
            print(f"{name}: {left_out} converted files are not part of the dataset (not in its manifest) and were "
                  "left out")
        shutil.move(str(staged), target)
    print(f"{name}: ready at {shown(target)}")
    return target


# ----------------------------------------------------------------------------------------------
# The README's table

def size_of(name):
    if not has_manifest(name):
        return "not recorded (no copy here)"
    entries = read_manifest(name).values()
    sizes = [e.size for e in entries if e.size is not None]
    megabytes = sum(sizes) / 1e6
    megabytes = f", {megabytes:,.{0 if megabytes >= 10 else 1}f} MB" if len(sizes) == len(entries) else ""
    return f"{len(entries):,} files{megabytes}"


def table():
    """The markdown table of every dataset: command, size (from its manifest), terms, what uses it."""
    rows = ["| dataset | command | size | licence / terms | used by |", "|---|---|---|---|---|"]
    for name, d in DATASETS.items():
        command = f"`python code/get_data.py {name}`" if d.downloadable else "not downloadable (see data/README.md)"
        if name == "agiri":
            command += " (`--train`: its train/ too)"
        rows.append(f"| {name}: {d.title} | {command} | {size_of(name)} | {d.terms} | {d.used_by} |")
    return "\n".join(rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("datasets", nargs="*", metavar="DATASET", help=f"'all' or any of {', '.join(DATASETS)}")
    parser.add_argument("--train", action="store_true", help="agiri: keep its train/ folder as well as test/")
    parser.add_argument("--check", action="store_true", help="check the folders already in data/, download nothing")
    parser.add_argument("--list", action="store_true", help="print the table of datasets (as in the README)")
    parser.add_argument("--write-manifest", action="store_true",
                        help=f"record the files now in data/ as the datasets' manifests (in {shown(MANIFEST_DIR)})")
    args = parser.parse_args(argv)
    if args.list:
        print(table())
        return
    names = list(STUDY) if args.datasets == ["all"] else args.datasets
    unknown = sorted(set(names) - set(DATASETS))
    if unknown or not names:
        parser.error(f"name datasets: 'all' or any of {', '.join(DATASETS)}" +
                     (f" (unknown: {', '.join(unknown)})" if unknown else ""))
    failed = []
    for name in names:
        try:
            if args.write_manifest:
                files = write_manifest(name, describe(config_path(DATASETS[name].key)))
                print(f"{name}: manifest written ({', '.join(f.name for f in files)})")
            elif args.check:
                ok, message = check(name, train=args.train)
                print(message, file=sys.stdout if ok else sys.stderr)
                if not ok:
                    failed.append(name)
            else:
                download(name, args.train)
        except ProjectError as e:
            print(f"error: {e}", file=sys.stderr)
            failed.append(name)
    if failed:
        sys.exit(f"{'not as expected' if args.check else 'not done'}: {', '.join(failed)}")


if __name__ == "__main__":
    main()
