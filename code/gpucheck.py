"""The GPU check (`python code/bench.py gpu`): three trainings, test.py and predict.py on the 20,000 test images, each
beside the CPU figure it is compared with, then the suite's tests that need no dataset on CUDA. It needs the packages
that bench.py's docstring lists (tests that need grad-cam, nbclient, tabulate or typst skip without them)."""
import json
import os
import subprocess
import sys
import tarfile
from dataclasses import replace
from pathlib import Path

import pandas as pd
import torch

from classes import load_cifake
from evaluate import score_at_threshold, score_dataset
from project import REPO_ROOT, fast_bfloat16, shown, timed
from training import RECIPES, split_train_val, train_model

FAST_JSON = REPO_ROOT / "notes" / "logs" / "bench_fast.json"    # written by `bench.py fast`, read here


def unpack_archives(folder, data_dir):
    """Unpack every CIFAKE archive in `folder` into `data_dir` (they unpack to CIFAKE/<split>/...)."""
    archives = sorted(Path(folder).glob("cifake-*.tar.gz"))
    if not archives:
        sys.exit(f"no cifake-*.tar.gz in {folder}: copy ../shared/data/cifake-*.tar.gz there first")
    for archive in archives:
        with tarfile.open(archive) as tar:
            tar.extractall(data_dir, filter="data")


def cpu_reference():
    """The CPU figures of this repo's README, from the files they are generated from: {run: (seconds, accuracy)}."""
    sidecar = lambda name: json.loads((REPO_ROOT / "models" / f"{name}.json").read_text())
    results = REPO_ROOT / "notes" / "results" / "results.json"
    test_accuracy = json.loads(results.read_text())["cifake_test"]["models"] if results.is_file() else {}
    reference = {f"{name}, {recipe}": (sidecar(model)["wall_seconds"], test_accuracy.get(model, {}).get("accuracy"))
                 for name, recipe, model in (("base CNN", "original recipe, 10 epochs", "base_model"),
                                             ("strong net", "strong recipe, 30 epochs", "strong_model"))}
    if FAST_JSON.is_file():
        fast = json.loads(FAST_JSON.read_text())["runs"]["fast"][0]
        reference["base CNN, fast recipe"] = (fast["seconds"], fast["accuracy"])
    return reference


def bench_gpu(root, output=None):
    """The GPU check: the base CNN trained with the original recipe (10 epochs) and the fast recipe and the strong
    net with the strong recipe (30 epochs), each timed and scored on CIFAKE test; test.py and predict.py on the 20,000
    test images, on CUDA and on this machine's CPU; last, the suite's tests that need no dataset with CUDA wherever a
    test takes a device. One table beside the CPU figures of the README (test accuracy at 0.5), written to `output`
    after every row, so a run cut short keeps the rows it finished."""
    if not torch.cuda.is_available():
        sys.exit(f"bench.py gpu needs a CUDA GPU, and torch {torch.__version__} finds none on this machine")
    device = torch.device("cuda")
    print(f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}, CUDA {torch.version.cuda}, "
          f"bfloat16 {'on' if fast_bfloat16(device) else 'off'}", flush=True)
    rows = []

    def record(row):
        rows.append(row)
        print(row, flush=True)
        if output:
            Path(output).write_text(json.dumps({"device": torch.cuda.get_device_name(0), "torch": torch.__version__,
                                                "rows": rows}, indent=2, default=str) + "\n")

    train, val = split_train_val(load_cifake(root, "train"))
    test = load_cifake(root, "test")
    reference = cpu_reference()
    for name, recipe, arch in (("base CNN, original recipe, 10 epochs", replace(RECIPES["original"], epochs=10), "cnn"),
                               ("base CNN, fast recipe", RECIPES["fast"], "cnn"),
                               ("strong net, strong recipe, 30 epochs", RECIPES["strong"], "strong")):
        seconds, (model, history) = timed(lambda: train_model(train, val, recipe, arch, device=device, progress=False))
        accuracy = score_at_threshold(test.labels.numpy(), score_dataset(model, test, device), 0.5)["accuracy"]
        cpu_seconds, cpu_accuracy = reference.get(name, (None, None))
        record({"run": name, "gpu_seconds": seconds, "cpu_seconds": cpu_seconds, "gpu_result": accuracy,
                "gpu_validation_last_epoch": history["epochs"][-1]["val_accuracy"], "cpu_result": cpu_accuracy,
                "cpu_source": "README (2-core CPU)"})
    for name, command in (("test.py -mf base_model", ["code/test.py", "-mf", "base_model", "--data", str(root)]),
                          ("predict.py on the test images", ["code/predict.py", str(Path(root) / "test"), "-mf",
                                                             "base_model", "--csv", os.devnull])):
        times = {}
        for where in ("cuda", "cpu"):
            call = [sys.executable, *command, "--device", where]
            times[where], run = timed(lambda: subprocess.run(call, cwd=REPO_ROOT, capture_output=True, text=True))
            if run.returncode != 0:
                sys.exit(f"{name} failed on {where}: {run.stderr.strip().splitlines()[-1]}")
        record({"run": name, "gpu_seconds": times["cuda"], "cpu_seconds": times["cpu"], "gpu_result": "ran",
                "cpu_source": "this machine's CPU, same run"})
    suite = [sys.executable, "-m", "pytest", "-q", "-rfE", "-m", "not real_data", "tests"]     # -rfE: names failures
    seconds, run = timed(lambda: subprocess.run(suite, cwd=REPO_ROOT, env=dict(os.environ, CIFAKE_TEST_DEVICE="cuda")))
    record({"run": "test suite without datasets", "gpu_seconds": seconds,
            "gpu_result": "passed" if run.returncode == 0 else f"failed (exit {run.returncode})"})
    table = pd.DataFrame(rows).set_index("run")
    table["speed-up"] = table["cpu_seconds"] / table["gpu_seconds"]
    print(table.to_string(float_format=lambda v: f"{v:.4g}"))
    if output:
        print(f"wrote {shown(output)}")
    return table
