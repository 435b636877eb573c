"""Shared fixtures: code/ on the import path, the device, generated sample data, a quickly trained sample model.

The device is the CPU unless CIFAKE_TEST_DEVICE says otherwise (`python code/bench.py gpu` sets cuda); the scripts
run as subprocesses pick their own with --device auto.
"""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "code"))     # classes.py and the realfake package, as the commands import them

import torch  # noqa: E402

torch.set_num_threads(2)
DEVICE = os.environ.get("CIFAKE_TEST_DEVICE", "cpu")


def pytest_configure(config):
    config.addinivalue_line("markers", "real_data: needs the real CIFAKE in data/CIFAKE (skipped without it)")


@pytest.fixture(scope="session")
def device():
    return torch.device(DEVICE)


@pytest.fixture(scope="session")
def sample_root():
    """The generated sample data, written where `--sample` looks for it (config.json's sample_dir)."""
    from realfake.data.sample import make_sample_data
    return make_sample_data()


@pytest.fixture(scope="session")
def sample_model(sample_root, tmp_path_factory, device):
    """A CNN trained on the sample CIFAKE, saved like train.py saves: (path, history). The fast recipe at batch 32
    for 8 epochs, in float32 on every CPU: seeds 0-4 all end at 99.5-100% validation accuracy here, where the
    original recipe's constant lr swings between 52% and 90% from epoch to epoch."""
    from dataclasses import replace

    from classes import load_cifake
    from realfake.data.splits import split_train_val
    from realfake.models.checkpoints import save_model
    from realfake.training.loop import train_model
    from realfake.training.recipes import RECIPES
    train, val = split_train_val(load_cifake(sample_root / "CIFAKE", "train", verbose=False))
    model, history = train_model(train, val, replace(RECIPES["fast"], batch_size=32, epochs=8, amp=False),
                                 device=device, progress=False)
    path = tmp_path_factory.mktemp("models") / "sample_model.pth"
    save_model(model, path, history["threshold"], {"history": history["epochs"]})
    return path, history


PAPER_LEAVE_OUT = ("fast balanced", "fast pooled", "fast balanced, no CIFAKE", "fast balanced, CIFAKE x1/2",
                   "fast_spectrum balanced", "strong balanced, 4 epochs", "fast balanced + own",
                   "pretrained probe balanced")                                            # all the paper reads


@pytest.fixture(scope="session")
def sample_results(sample_root, tmp_path_factory):
    """A results folder as `python code/variants.py --sample`, `python code/zeroshot.py --sample`, `python
    code/reproduce.py --sample` and `python code/seeds.py --sample` write it (variants.json, the report,
    results.json, seeds.json and the figures; sample models in data/sample/models), after `python code/matrix.py
    --sample` with two seeds for the rows it trains (matrix.json, also where the transfer_mixed notebook reads it)."""
    import shutil

    from realfake.studies import matrix
    out = tmp_path_factory.mktemp("results")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(matrix, "SEEDS", (0, 1))          # each sample run costs seconds: two seeds show the spread
        matrix.run_matrix(out / "matrix.json", sample=True, device="cpu")
    (sample_root / "results").mkdir(exist_ok=True)
    shutil.copy(out / "matrix.json", sample_root / "results" / "matrix.json")
    variants = str(out / "variants.json")
    for script, *args in (("variants.py", "--sample", "--seeds", "2", "--only", "fast", "--out", variants),
                          ("variants.py", "--sample", "--seeds", "1", "--out", variants),       # every other variant
                          *(("variants.py", "--sample", "--seeds", "1", "--protocol", protocol, "--out", variants,
                             *(["--only", *PAPER_LEAVE_OUT] if protocol == "logo" else
                               ["--only", "fast balanced", "fast pooled", "pretrained probe balanced"]
                               if protocol == "lofo" else
                               ["--only", "fast", "pretrained probe"] if protocol == "floor" else []))
                            for protocol in ("floor", "logo", "lofo", "oracle", "own")),
                          ("zeroshot.py", "--sample", "--seeds", "1", "--out", variants),
                          ("reproduce.py", "--sample", "--out", str(out)),
                          ("seeds.py", "--sample", "--seeds", "2", "--out", str(out / "seeds.json"))):
        result = subprocess.run([sys.executable, str(REPO / "code" / script), *args], cwd=REPO, capture_output=True,
                                text=True, timeout=900)
        assert result.returncode == 0, f"{script}: {result.stderr[-3000:]}"
    return out


def batch(n=4, seed=0):
    """Normalised images in [-1, 1] with smooth content and fine detail."""
    g = torch.Generator().manual_seed(seed)
    smooth = torch.nn.functional.interpolate(torch.rand(n, 3, 8, 8, generator=g), size=32, mode="bilinear")
    return (smooth + 0.1 * torch.rand(n, 3, 32, 32, generator=g)).clamp(0, 1) * 2 - 1


def run(args, cwd):
    script, *rest = args
    path = f"code/{script}" if cwd == "." else script
    return subprocess.run([sys.executable, path, *rest], cwd=REPO / cwd, capture_output=True, text=True,
                          timeout=600)


def train_sample_full_size(dataset, folder):
    """`train.py --arch pretrained --dataset DATASET --sample` at a tiny input size, saved in `folder`: (path, the
    finished process)."""
    path = folder / f"{dataset}_sample.pth"
    result = run(["train.py", "--arch", "pretrained", "--dataset", dataset, "--sample", "--image-size", "32", "--device",
                  "cpu", "-mf", str(path)], ".")
    assert result.returncode == 0, result.stderr[-2000:]
    return path, result


def images(n=6, seed=0):
    """uint8 images N x 3 x 32 x 32 with smooth content."""
    rng = np.random.default_rng(seed)
    smooth = rng.integers(0, 256, (n, 3, 8, 8), dtype=np.uint8)
    return torch.nn.functional.interpolate(torch.from_numpy(smooth).float(), size=32, mode="bilinear").to(torch.uint8)
