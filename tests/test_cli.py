"""The command-line scripts, run as a user runs them: from the repo root and from code/."""
import json
import subprocess
import sys

import pytest

import get_data
import robustness
from project import REPO_ROOT, ProjectError


def run(args, cwd):
    script, *rest = args
    path = f"code/{script}" if cwd == "." else script
    return subprocess.run([sys.executable, path, *rest], cwd=REPO_ROOT / cwd, capture_output=True, text=True,
                          timeout=600)


@pytest.mark.parametrize("cwd", [".", "code"])
def test_train_cli_with_sample_data(sample_root, tmp_path, cwd):
    model = tmp_path / "cli_model.pth"
    result = run(["train.py", "--sample", "-ep", "1", "-lr", "0.01", "--attn", "--shift", "1", "-mf", str(model)],
                 cwd)
    assert result.returncode == 0, result.stderr
    assert "sample data" in result.stdout and "epoch 1/1" in result.stdout
    sidecar = json.loads(model.with_suffix(".json").read_text())
    assert sidecar["attn"] is True and sidecar["sample_data"] is True and sidecar["epochs"] == 1
    assert sidecar["amp"] is False                             # the original recipe trains in float32
    assert sidecar["optimizer"] == "sgd" and sidecar["shift"] == 1       # a flag overrides the recipe's value
    assert {"seed", "lr", "momentum", "batch_size", "dataset", "history", "threshold", "device", "torch",
            "git_commit", "wall_seconds", "validation"} <= sidecar.keys()


def test_train_cli_strong_widths(sample_root, tmp_path):
    model = tmp_path / "narrow.pth"
    result = run(["train.py", "--sample", "--arch", "strong", "--recipe", "strong", "-ep", "1", "--widths", "8,16,24",
                  "-mf", str(model)], ".")
    assert result.returncode == 0, result.stderr
    sidecar = json.loads(model.with_suffix(".json").read_text())
    assert sidecar["widths"] == [8, 16, 24] and sidecar["parameters"] < 20_000
    bad = run(["train.py", "--sample", "--widths", "8,16,24"], ".")       # the base CNN has no widths
    assert bad.returncode != 0 and "--widths" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.parametrize("cwd", [".", "code"])
def test_test_cli_with_sample_data_writes_json_and_plot(sample_model, tmp_path, cwd):
    path, _ = sample_model
    out, plot = tmp_path / "r.json", tmp_path / "sweep.png"
    result = run(["test.py", "--sample", "-mf", str(path), "-thr", "0.4", "--json", str(out), "--plot", str(plot)], cwd)
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert {"model", "dataset", "n", "threshold", "accuracy", "auroc", "ap", "per_class", "sweep"} <= report.keys()
    low, high = report["interval95"]["auroc"]
    assert low <= report["auroc"] <= high and "95% bootstrap interval" in result.stdout
    assert report["n"] == 400 and report["threshold"] == 0.4 and 0 <= report["accuracy"] <= 1
    assert report["deduplicated"]["removed"] == 0 and len(report["sweep"]) == 9
    assert plot.stat().st_size > 1000
    for line in ("accuracy", "precision", "called Fake", "threshold sweep", "byte-identical"):
        assert line in result.stdout


def test_test_cli_val_threshold_and_bad_inputs(sample_model, tmp_path):
    path, history = sample_model
    result = run(["test.py", "--sample", "-mf", str(path), "-thr", "val", "--json", str(tmp_path / "r.json")], ".")
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "r.json").read_text())["threshold"] == pytest.approx(history["threshold"])
    for args, message in ((["-thr", "1.5"], "-thr must be in [0, 1]"), (["-thr", "half"], "-thr must be a number"),
                          (["-mf", str(tmp_path / "nope.pth")], "not found")):
        bad = run(["test.py", "--sample", "-mf", str(path), *args], ".")
        assert bad.returncode != 0 and message in bad.stderr and "Traceback" not in bad.stderr


def test_test_cli_perturb_one_model(sample_model, tmp_path):
    path, _ = sample_model
    out, plot = tmp_path / "robust.json", tmp_path / "robust.png"
    result = run(["test.py", "--sample", "--perturb", "-mf", str(path), "--json", str(out), "--plot", str(plot)], ".")
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert report["n"] == 400 and report["threshold"] == 0.5 and plot.stat().st_size > 1000
    assert {r["model"] for r in report["results"]} == {path.stem}
    assert [r["perturbation"] for r in report["results"]] == list(robustness.PERTURBATIONS)
    assert all(0 <= r["accuracy"] <= 1 and 0 <= r["auroc"] <= 1 for r in report["results"])


def test_make_sample_data_cli(tmp_path):
    result = run(["make_sample_data.py", "--out", str(tmp_path), "--n-train", "20", "--n-test", "10"], ".")
    assert result.returncode == 0 and "stand-in" in result.stdout
    assert len(list((tmp_path / "CIFAKE" / "train" / "FAKE").glob("*.jpg"))) == 20
    assert {p.name for p in (tmp_path / "CIFAR100").iterdir()} >= {"train", "test", "meta"}


# -- get_data: everything up to the network call ---------------------------------------------------

def test_get_data_offline_stops_at_once_with_manual_steps(monkeypatch, tmp_path):
    monkeypatch.setattr(get_data, "config_path", lambda key: tmp_path / key)
    with pytest.raises(ProjectError) as e:
        get_data.download("cifar100", downloader=lambda *a, **k: pytest.fail("must not download"),
                          reachable=lambda: False)
    assert "kaggle.com/datasets/fedesoriano/cifar100" in str(e.value) and str(tmp_path) in str(e.value)
    assert not (tmp_path / "CIFAR100_dir").exists()


def test_get_data_cli_offline_is_quick_and_clear():
    result = subprocess.run([sys.executable, "-c", "import sys; sys.path.insert(0, 'code'); import get_data;"
                             "get_data.kaggle_reachable = lambda: False; get_data.main(['cifar100', 'agiri'])"],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "by hand" in result.stderr and "not downloaded: cifar100, agiri" in result.stderr


def fake_kaggle(tmp_path, build):
    """A stand-in for kagglehub.dataset_download that builds a tree under output_dir."""
    def download(handle, output_dir):
        build(tmp_path / "fetched")
        return str(tmp_path / "fetched")
    return download


def test_get_data_moves_a_checked_download_into_place(monkeypatch, tmp_path):
    from make_sample_data import make_cifar100, source_photos
    import numpy as np
    target = tmp_path / "data" / "CIFAR100"
    monkeypatch.setattr(get_data, "config_path", lambda key: target)
    build = lambda d: make_cifar100(d / "nested", np.random.default_rng(0), source_photos(), 1, 1)
    assert get_data.download("cifar100", fake_kaggle(tmp_path, build), reachable=lambda: True) == target
    assert {p.name for p in target.iterdir()} >= {"train", "test", "meta"}
    assert not list(target.parent.glob(".download-*"))             # the temporary folder is gone


def test_get_data_rejects_an_incomplete_download(monkeypatch, tmp_path):
    target = tmp_path / "data" / "CIFAKE"
    monkeypatch.setattr(get_data, "config_path", lambda key: target)
    build = lambda d: (d / "train" / "REAL").mkdir(parents=True)
    with pytest.raises(ProjectError, match="does not check out"):
        get_data.download("cifake", fake_kaggle(tmp_path, build), reachable=lambda: True)
    assert not target.exists()                                      # nothing half-done left in place


def test_get_data_keeps_only_agiri_test_folder(monkeypatch, tmp_path):
    from PIL import Image
    target = tmp_path / "data" / "agiri"
    monkeypatch.setattr(get_data, "config_path", lambda key: target)

    def build(d):
        for split in ("train", "test"):
            for c in ("fake", "real"):
                (d / split / c).mkdir(parents=True)
                Image.new("RGB", (8, 8)).save(d / split / c / "a.png")
    get_data.download("agiri", fake_kaggle(tmp_path, build), reachable=lambda: True)
    assert [p.name for p in target.iterdir()] == ["test"]


def test_reproduce_sample_writes_a_stamped_report(sample_root, tmp_path):
    result = run(["reproduce.py", "--sample", "--out", str(tmp_path)], ".")
    assert result.returncode == 0, result.stderr
    report = (tmp_path / "report.md").read_text()
    assert report.startswith("> **SAMPLE DATA**")
    for section in ("## CIFAKE test (400 images)", "## Robustness on CIFAKE test", "## CIFAR-100 test (300 images",
                    "### Per coarse class", "## AGIRI test: every file accounted for", "## Beside the original study"):
        assert section in report
    for figure in ("roc_cifake.png", "robustness.png", "cifar100_coarse.png", "sweep_base_model.png"):
        assert (tmp_path / figure).stat().st_size > 1000 and f"]({figure})" in report


def test_regenerating_sample_data_keeps_results_and_models(tmp_path):
    """reproduce.py --sample may generate the data after creating its report folder: it must survive."""
    from make_sample_data import make_sample_data
    for folder in ("results", "models"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "kept.txt").write_text("x")
    make_sample_data(tmp_path, n_train=10, n_test=5, cifar100_per_class=(1, 1), agiri_per_class=4)
    assert (tmp_path / "results" / "kept.txt").exists() and (tmp_path / "models" / "kept.txt").exists()
