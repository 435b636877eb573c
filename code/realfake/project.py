"""Where things are and what runs them: the repo root, config.json, the device, seeding.

Every script and notebook resolves paths through this module, so `python code/train.py` from the
repo root, `python train.py` from `code/` and a notebook whose working directory is `code/` all
find the same files.
"""
import json
import os
import platform
import random
import subprocess
import time
from pathlib import Path

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parents[2]          # code/realfake/project.py -> the repo
CONFIG_FILE = REPO_ROOT / "config.json"
DOWNLOAD_HINT = "run `python code/get_data.py` (or use --sample for the generated sample data)"
STAND_IN_NOTE = ("sample data: generated stand-in images (real photo crops; 'fake' = crops re-rendered by a "
                 "fixed upsampler, not AI-generated)")


class ProjectError(Exception):
    """A problem the user can fix (missing data, bad file, bad flag); the CLIs print it as one line."""


def load_config(path=CONFIG_FILE):
    """config.json as a dict; raises ProjectError if it is missing or not valid JSON."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ProjectError(f"{path} not found: the repo's config.json is missing (restore it with git)") from None
    except json.JSONDecodeError as e:
        raise ProjectError(f"{path} is not valid JSON ({e})") from None


def absolute(path):
    """`path` made absolute without resolving symbolic links: data/CIFAKE may be a link to the data elsewhere."""
    return Path(os.path.normpath(os.path.abspath(path)))


def shown(path):
    """A path as messages and reports show it: relative to the repo root when inside it (no machine's paths)."""
    path = absolute(path)
    return str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)


def config_path(key, config=None):
    """The absolute path stored under `key` in config.json (relative entries are taken from the repo root)."""
    config = load_config() if config is None else config
    value = config.get(key)
    if not isinstance(value, str) or not value:
        raise ProjectError(f"config.json: key '{key}' is missing or not a path string")
    return absolute(REPO_ROOT / value)


def dataset_dir(key, sample=False):
    """A dataset folder from config.json (`CIFAKE_dir`, `CIFAR100_dir`, `AGIRI_dir`), or with sample=True its
    generated stand-in under sample_dir (data/sample/CIFAKE, ...). Only a path: nothing is generated here."""
    real = config_path(key)
    return config_path("sample_dir") / real.name if sample else real


def cifake_root(data=None, sample=False):
    """The CIFAKE folder: `data` if given (a --data flag), the generated sample with `sample`, else config.json's."""
    return absolute(data) if data else dataset_dir("CIFAKE_dir", sample)


def model_path(name_or_path, config=None):
    """A model file from a config key (`base_model`), a bare name (`my_model` -> models/my_model.pth) or a path."""
    config = load_config() if config is None else config
    if name_or_path in config:
        return config_path(name_or_path, config)
    path = Path(name_or_path)
    if path.suffix == ".pth" or len(path.parts) > 1:
        return absolute(path)
    return REPO_ROOT / "models" / f"{name_or_path}.pth"


def model_file(name, sample=False):
    """Where a shipped model lives: models/ for real data, data/sample/models/ for the sample data."""
    return config_path("sample_dir") / "models" / f"{name}.pth" if sample else model_path(name)


def pick_device(name="auto"):
    """torch.device for `name`; 'auto' takes CUDA, then Apple MPS, then the CPU."""
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def fast_bfloat16(device):
    """Whether bfloat16 autocast speeds up training on `device`: CUDA with bf16 support, or a CPU with native
    bf16 instructions (AVX512-BF16 or AMX). oneDNN also "supports" bf16 on plain AVX-512 by emulating it, which
    made a StrongCNN training step 2.4x slower than float32 on an Ice Lake Xeon, so that is not enough."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return torch.backends.mkldnn.is_available() and (torch.cpu._is_avx512_bf16_supported()
                                                         or torch.cpu._is_amx_tile_supported())
    return False


def machine_description(device="cpu"):
    """The hardware a figure was measured on, for reports: e.g. 'cpu: AMD EPYC, 2 cores' or 'cuda: NVIDIA H100'."""
    device = torch.device(device)
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                 if line.startswith("model name")]
        cpu = names[0] if names else cpu
    return f"{device.type}: {cpu}, {os.cpu_count()} cores"


def timed(fn):
    """(seconds, fn()): the wall time of one call."""
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def seed_everything(seed):
    """Python's, NumPy's and PyTorch's generators (every device's) from one seed."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.backends.cudnn.deterministic = True          # same weights for the same seed on CUDA too


def git_commit(root=REPO_ROOT):
    """The repo's current commit (with '-dirty' if a tracked file's content changed), or None outside git. A copy
    that lost the executable bit (an archive, another machine) holds the commit's code, so modes are not compared."""
    try:
        run = lambda *a: subprocess.run(["git", "-c", "core.fileMode=false", *a], cwd=root, capture_output=True,
                                        text=True, timeout=10)
        commit = run("rev-parse", "HEAD").stdout.strip()
        dirty = run("status", "--porcelain", "--untracked-files=no").stdout.strip()
        return (commit + ("-dirty" if dirty else "")) or None
    except (OSError, subprocess.SubprocessError):
        return None


def atomic_write_bytes(path, data):
    """Write `data` to `path` through a temporary file and a rename, so a crash never leaves half a file."""
    atomic_write_files({path: data})


def atomic_write_files(contents):
    """Write {path: bytes}: every file to a temporary name first, then each renamed into place, so a failure while
    writing leaves none of them changed (a model and its sidecar land together or not at all)."""
    staged = []
    try:
        for path, data in contents.items():
            path = Path(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            staged.append((tmp, path))
            tmp.write_bytes(data)
        for tmp, path in staged:
            os.replace(tmp, path)
    finally:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)


def check_writable(path):
    """Refuse, in one line and before any work, a destination file that could not be written: `path` may be a str
    or a Path; its folder must exist (or be creatable) and be writable, and `path` must not be a folder."""
    path = Path(path)
    if path.is_dir():
        raise ProjectError(f"{shown(path)} is a folder: give a file name such as {shown(path / 'my_model.pth')}")
    folder = next(p for p in (path.parent, *path.parent.parents) if p.exists())
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise ProjectError(f"cannot write {shown(path)}: {shown(folder)} is not a writable folder")
    return path
