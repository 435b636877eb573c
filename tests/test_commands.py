"""The command-line scripts, run as a user runs them: from the repo root and from code/."""
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import run
from PIL import Image

from classes import load_cifake
from realfake.evaluation import robustness
from realfake import rules
from realfake.project import REPO_ROOT, ProjectError
from realfake.publishing import publish
from realfake.studies import variants, zeroshot
from realfake.training import own_generators
from realfake.training.loop import train_model


@pytest.fixture(scope="module")
def generator_folders(sample_root, tmp_path_factory):
    """A user's generator output as test.py --fakes meets it: sample fakes in nested folders, one larger image, and
    (in `broken`) one file that is no image; a folder of real images; an empty folder."""
    base = tmp_path_factory.mktemp("generator")
    fakes = sorted((sample_root / "CIFAKE" / "test" / "FAKE").iterdir())[:60]
    clean, broken, reals, empty = (base / name for name in ("clean", "broken", "reals", "empty"))
    for folder in (clean / "run1", clean / "run2", broken, reals, empty):
        folder.mkdir(parents=True)
    for i, file in enumerate(fakes):
        (clean / f"run{1 + i % 2}" / file.name).write_bytes(file.read_bytes())
        (broken / file.name).write_bytes(file.read_bytes())
    Image.open(fakes[0]).resize((64, 64)).save(clean / "run1" / "large.png")
    (broken / "broken.jpg").write_bytes(b"\xff\xd8 not an image")
    for file in sorted((sample_root / "CIFAKE" / "test" / "REAL").iterdir())[:50]:
        (reals / file.name).write_bytes(file.read_bytes())
    return {"clean": clean, "broken": broken, "reals": reals, "empty": empty}


AGIRI_SUBSET = REPO_ROOT / "data" / "agiri-subset224"


def predict(*args):
    return subprocess.run([sys.executable, "code/predict.py", *map(str, args)], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    """Images of every mode and a few formats, one unreadable file."""
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8))
    for mode in ("RGB", "L", "LA", "RGBA", "P", "CMYK", "1"):
        rgb.convert(mode).save(folder / f"m_{mode}.{'jpg' if mode in ('RGB', 'L', 'CMYK') else 'png'}")
    Image.fromarray(rng.integers(0, 65535, (40, 40), dtype=np.uint16)).save(folder / "deep.png")
    rgb.save(folder / "sub.webp")
    (folder / "nested").mkdir()
    rgb.resize((20, 20)).save(folder / "nested" / "tiny.jpg")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return folder


@pytest.mark.parametrize("cwd", [".", "code"])
def test_train_cli_with_sample_data(sample_root, tmp_path, cwd):
    model = tmp_path / "cli_model.pth"
    result = run(["train.py", "--sample", "-ep", "1", "-lr", "0.01", "--attn", "--batch-size", "64", "-mf", str(model)],
                 cwd)
    assert result.returncode == 0, result.stderr
    assert "sample data" in result.stdout and "epoch 1/1" in result.stdout
    sidecar = json.loads(model.with_suffix(".json").read_text())
    assert sidecar["attn"] is True and sidecar["sample_data"] is True and sidecar["epochs"] == 1
    assert sidecar["amp"] is False                             # the original recipe trains in float32
    assert sidecar["optimizer"] == "sgd" and sidecar["batch_size"] == 64  # a flag overrides the recipe's value
    assert sidecar["recipe"] == "original" and sidecar["lr"] == 0.01 and not sidecar["git_commit"].startswith("/")
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


@pytest.mark.parametrize("epochs", ["0", "-1"])
def test_train_cli_refuses_no_epochs_in_one_line(tmp_path, epochs):
    model = tmp_path / "never.pth"
    bad = run(["train.py", "--sample", "-ep", epochs, "-mf", str(model)], ".")
    assert bad.returncode != 0 and "must be at least 1" in bad.stderr and "Traceback" not in bad.stderr
    assert bad.stderr.strip().count("\n") == 0 and not model.exists()


@pytest.mark.parametrize("flags, named", [
    (["--arch", "pretrained", "-ep", "3", "-lr", "0.1", "--recipe", "fast", "--fakes", "x"],
     "--arch pretrained does not read --recipe, --epochs, --lr, --fakes"),
    (["--arch", "strong", "--finetune", "1", "--image-size", "64"], "--arch strong does not read --image-size, --finetune")])
def test_train_refuses_flags_its_architecture_does_not_read(flags, named):
    import train
    with pytest.raises(ProjectError, match=named):
        train.refuse_unread_flags(train.cli_parser().parse_args(flags))
    train.refuse_unread_flags(train.cli_parser().parse_args(["--arch", "pretrained", "--seed", "1", "--finetune", "1"]))
    bad = run(["train.py", "--sample", *flags], ".")
    assert bad.returncode == 1 and named in bad.stderr and bad.stderr.strip().count("\n") == 0


@pytest.mark.parametrize("flags, message", [(["--lr", "-1"], "lr must be above 0"),
                                            (["--momentum", "1.5"], "momentum must be in [0, 1)")])
def test_train_cli_refuses_out_of_range_recipe_values_before_loading_data(sample_root, flags, message):
    bad = run(["train.py", "--sample", "-ep", "1", *flags], ".")
    assert bad.returncode == 1 and message in bad.stderr and "Traceback" not in bad.stderr
    assert bad.stderr.strip().count("\n") == 0 and "training on" not in bad.stdout


@pytest.mark.parametrize("cwd", [".", "code"])
def test_test_cli_with_sample_data_writes_json_and_plot(sample_model, tmp_path, cwd):
    path, _ = sample_model
    out, plot = tmp_path / "r.json", tmp_path / "sweep.png"
    result = run(["test.py", "--sample", "-mf", str(path), "-thr", "0.4", "--json", str(out), "--plot", str(plot)], cwd)
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert {"model", "dataset", "n", "threshold", "accuracy", "auroc", "ap", "per_class", "sweep"} <= report.keys()
    assert 0 <= report["ece"] <= 1 and report["temperature"] > 0 and "expected calibration error" in result.stdout
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


def test_test_cli_fakes_against_cifake_reals_lists_the_broken_file(sample_model, generator_folders, tmp_path):
    path, history = sample_model
    out = tmp_path / "fakes.json"
    result = run(["test.py", "--sample", "-mf", str(path), "--fakes", str(generator_folders["broken"]),
                  "--json", str(out)], ".")
    assert result.returncode == 1, result.stderr                       # a file was skipped
    assert "broken.jpg" in result.stderr and "Traceback" not in result.stderr
    report = json.loads(out.read_text())
    assert {"model", "dataset", "n", "threshold", "accuracy", "auroc", "ap", "per_class", "sweep", "ece",
            "interval95", "temperature", "n_fake", "n_real", "skipped", "fakes_caught", "reals_kept",
            "audit"} <= report.keys()
    assert report["n_fake"] == 60 and report["n_real"] == 200 and report["n"] == 260      # CIFAKE test/REAL
    assert [Path(f).name for f, _ in report["skipped"]] == ["broken.jpg"]
    assert report["threshold"] == pytest.approx(history["threshold"])                    # the validation threshold
    assert set(report["interval95"]) == {"accuracy", "auroc", "ap", "fakes_caught", "reals_kept"}
    for key in ("auroc", "ap", "fakes_caught", "reals_kept"):
        low, high = report["interval95"][key]
        assert low <= report[key] <= high
    assert report["fakes_caught"] == report["per_class"]["Fake"]["recall"]
    assert {"metadata_auroc", "colour_auroc", "flag"} <= report["audit"].keys()
    lines = result.stdout.splitlines()
    assert next(i for i, l in enumerate(lines) if l.startswith("audit")) < next(
        i for i, l in enumerate(lines) if l.startswith("AUROC"))                      # the audit comes first
    assert "fakes caught" in result.stdout and "reals kept" in result.stdout


def test_test_cli_fakes_against_own_reals_notes_other_sizes(sample_model, generator_folders, tmp_path):
    path, _ = sample_model
    out = tmp_path / "own.json"
    result = run(["test.py", "-mf", str(path), "--fakes", str(generator_folders["clean"]), "--reals",
                  str(generator_folders["reals"]), "-thr", "0.5", "--json", str(out)], "code")
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert report["n_fake"] == 61 and report["n_real"] == 50 and report["skipped"] == [] and report["threshold"] == 0.5
    assert report["not_32x32"] == 1 and "1 of 111 images are not 32x32" in result.stdout


def test_train_cli_fakes_adds_each_folder_as_a_source_and_records_it(generator_folders, tmp_path):
    model = tmp_path / "mine.pth"
    result = run(["train.py", "--sample", "--recipe", "fast", "-ep", "1", "--no-amp", "--fakes",
                  str(generator_folders["broken"]), str(generator_folders["clean"]), "-mf", str(model)], ".")
    assert result.returncode == 0, result.stderr
    assert "broken.jpg" in result.stdout and "audit (cross-validated" in result.stdout
    sidecar = json.loads(model.with_suffix(".json").read_text())
    broken, clean = sidecar["fakes"]
    assert (broken["files"], broken["loaded"], broken["skipped"]) == (61, 60, 1) and clean["files"] == 61
    assert len(broken["digest"]) == 16 and broken["digest"] != clean["digest"] and sidecar["balance"] == "sources"
    shares = sidecar["fakes_per_epoch"]
    assert len(shares) == 3 and len(set(shares.values())) == 1          # CIFAKE and each folder: equal shares
    empty = run(["train.py", "--sample", "--fakes", str(generator_folders["empty"])], ".")
    assert empty.returncode == 1 and "0 files found" in empty.stderr and "--fakes" in empty.stderr
    assert "Traceback" not in empty.stderr and empty.stderr.strip().count("\n") == 0


def test_train_cli_refuses_a_fake_source_of_too_few_images(generator_folders, tmp_path):
    """One image given as a source would be repeated to fill its share of every epoch: refused in one line, naming
    the count, before any training (a folder of 61 files is accepted by the test above)."""
    one = next((generator_folders["clean"] / "run1").glob("*.jpg"))
    for source, count in ((one, "1 file found"), (generator_folders["clean"] / "run2", "30 files found")):
        result = run(["train.py", "--sample", "--recipe", "fast", "-ep", "1", "--fakes", str(source),
                      "-mf", str(tmp_path / "never.pth")], ".")
        assert result.returncode == 1 and count in result.stderr and "at least 50" in result.stderr
        assert "Traceback" not in result.stderr and result.stderr.strip().count("\n") == 0
        assert not (tmp_path / "never.pth").exists()


@pytest.mark.real_data
@pytest.mark.skipif(not (AGIRI_SUBSET / "fake").is_dir(), reason="the AGIRI train subset is not in data/ "
                    "(../shared/data/agiri-subset224.tar.gz)")
def test_test_cli_scores_the_agiri_subset_as_a_user_would(tmp_path):
    out = tmp_path / "agiri.json"
    result = run(["test.py", "-mf", "base_model", "--fakes", "data/agiri-subset224/fake", "--reals",
                  "data/agiri-subset224/real", "--json", str(out)], ".")
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert (report["n_fake"], report["n_real"], report["skipped"]) == (969, 800, [])
    assert report["audit"]["flag"] and "WARNING: metadata alone separates the two sets" in result.stdout
    assert report["not_32x32"] == 969 + 800 and all(v is not None for v in report["interval95"].values())


@pytest.mark.parametrize("n_fakes", [1, 3])
def test_test_cli_fakes_with_a_handful_of_fakes_says_what_it_cannot_estimate(sample_model, generator_folders,
                                                                              tmp_path, n_fakes):
    path, _ = sample_model
    few = tmp_path / "few"
    few.mkdir()
    for file in sorted(generator_folders["broken"].glob("*.jpg"))[:n_fakes]:
        (few / file.name).write_bytes(file.read_bytes())
    out = tmp_path / "few.json"
    target = few / next(few.iterdir()).name if n_fakes == 1 else few          # one file named, or a folder
    result = run(["test.py", "-mf", str(path), "--fakes", str(target), "--reals", str(generator_folders["reals"]),
                  "--json", str(out)], ".")
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    report = json.loads(out.read_text())
    assert report["n_fake"] == n_fakes and report["audit"]["metadata_auroc"] is None
    assert "audit not run: a shortcut test needs at least 5" in result.stdout and "nan" not in result.stdout
    assert report["interval95"]["auroc"] is None and report["interval95"]["reals_kept"] is not None
    assert "no interval: under 5 images of a class" in result.stdout


@pytest.mark.parametrize("side", ["fakes", "reals"])
def test_test_cli_fakes_refuses_an_empty_folder_in_one_line(sample_model, generator_folders, side):
    path, _ = sample_model
    folders = {"fakes": generator_folders["clean"], "reals": generator_folders["reals"]}
    folders[side] = generator_folders["empty"]
    bad = run(["test.py", "-mf", str(path), "--fakes", str(folders["fakes"]), "--reals", str(folders["reals"])], ".")
    assert bad.returncode == 1 and "no file found in" in bad.stderr and f"--{side}" in bad.stderr
    assert "Traceback" not in bad.stderr and bad.stderr.strip().count("\n") == 0


@pytest.mark.parametrize("cwd", [".", "code"])
def test_robustness_cli_one_model(sample_model, tmp_path, cwd):
    path, _ = sample_model
    out, plot = tmp_path / "robust.json", tmp_path / "robust.png"
    result = run(["robustness.py", "--sample", "-mf", str(path), "--json", str(out), "--plot", str(plot)], cwd)
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert report["n"] == 400 and report["threshold"] == 0.5 and plot.stat().st_size > 1000
    assert {r["model"] for r in report["results"]} == {path.stem}
    assert [r["perturbation"] for r in report["results"]] == list(robustness.PERTURBATIONS)
    assert all(0 <= r["accuracy"] <= 1 and 0 <= r["auroc"] <= 1 for r in report["results"])


def test_predict_scores_every_mode_and_lists_the_broken_file(sample_model, image_folder, tmp_path):
    model, _ = sample_model
    result = predict(image_folder, "-mf", model, "--csv", tmp_path / "s.csv", "--json", tmp_path / "s.json",
                     "--preprocess", "multi_crop")
    assert result.returncode == 1                                   # one file failed
    assert "broken.jpg" in result.stderr and "corrupt image data" in result.stderr
    table = pd.read_csv(tmp_path / "s.csv")
    assert len(table) == 10 and set(table.columns) >= {"path", "p_real", "label", "model", "threshold", "preprocess",
                                                       "in_domain"}
    assert table["p_real"].between(0, 1).all() and set(table["label"]) <= {"Real", "Fake"}
    assert (table["preprocess"] == "multi_crop").all() and any("tiny.jpg" in p for p in table["path"])
    assert len(json.loads((tmp_path / "s.json").read_text())) == 10


def test_predict_exit_zero_when_all_read_and_threshold_flag(sample_model, image_folder, tmp_path):
    model, _ = sample_model
    result = predict(image_folder / "m_RGB.jpg", image_folder / "nested", "-mf", model, "-thr", "0",
                     "--json", tmp_path / "s.json")
    assert result.returncode == 0, result.stderr
    rows = json.loads((tmp_path / "s.json").read_text())
    assert len(rows) == 2 and all(r["label"] == "Real" and r["threshold"] == 0 for r in rows)
    missing = predict(tmp_path / "nothing_here", "-mf", model)
    assert missing.returncode != 0 and "no such file" in missing.stderr and "Traceback" not in missing.stderr
    (tmp_path / "empty").mkdir()
    empty = predict(tmp_path / "empty", "-mf", model)
    assert empty.returncode == 1 and "no image found" in empty.stderr and "Traceback" not in empty.stderr


def test_predict_explain_writes_overlays(sample_model, image_folder, tmp_path):
    pytest.importorskip("pytorch_grad_cam", reason="grad-cam is not installed")
    model, _ = sample_model
    result = predict(image_folder / "nested", image_folder / "m_RGB.jpg", "-mf", model, "--explain", tmp_path / "x")
    assert result.returncode == 0, result.stderr
    assert len(list((tmp_path / "x").glob("*.png"))) == 2


def test_make_sample_data_cli(tmp_path):
    result = run(["make_sample_data.py", "--out", str(tmp_path), "--n-train", "20", "--n-test", "10"], ".")
    assert result.returncode == 0 and "stand-in" in result.stdout
    assert len(list((tmp_path / "CIFAKE" / "train" / "FAKE").glob("*.jpg"))) == 20
    assert {p.name for p in (tmp_path / "CIFAR100").iterdir()} >= {"train", "test", "meta"}


def test_reproduce_sample_writes_a_stamped_report(sample_results):
    tmp_path = sample_results
    report = (tmp_path / "report.md").read_text()
    assert report.startswith("> **SAMPLE DATA**")
    for section in ("## CIFAKE test (400 images)", "### Calibration", "## Robustness on CIFAKE test",
                    "## CIFAR-100 (300 images", "### Per coarse class", "## AGIRI test: every file accounted for",
                    "## DDPM faces vs CelebA-HQ (a stand-in for AGIRI) (48 images)",
                    "## Another generator at 32 x 32: 20 DDPM samples against the 200 real CIFAKE test images",
                    "## AGIRI train subset, 224 px, re-saved (44 images)", "## Transfer at a glance",
                    "## Beside the original study"):
        assert section in report
    figures = ("roc_cifake.png", "robustness.png", "cifar100_coarse.png", "sweep_base_model.png", "reliability.png")
    for figure in figures:
        assert (tmp_path / figure).stat().st_size > 1000 and f"]({figure})" in report
    results = json.loads((tmp_path / "results.json").read_text())
    assert set(results["transfer"]) == {"base_model", "attn_model", "mini_model", "strong_model", "strong_aug_model"}
    assert {"faces AUROC (resize)", "faces AUROC (best crop)", "DDPM-32 AUROC", "CIFAR-100 share called real",
            "AGIRI train subset AUROC (resize)", "AGIRI train subset AUROC, JPEG fakes (resize)"} <= set(
        results["transfer"]["strong_model"])
    subset = results["agiri_subset"]
    assert (subset["n_fake"], subset["n_real"], subset["fake formats"]) == (24, 20, {"JPEG": 12, "PNG": 12})
    assert len(subset["models"]) == 5 * 3 * 2                     # models x preprocessings x (all, JPEG fakes only)
    jpeg_only = subset["models"]["base_model center_crop JPEG fakes only"]
    assert (jpeg_only["n_fake"], jpeg_only["n_real"]) == (12, 20)
    assert jpeg_only["auroc, 95% low"] <= jpeg_only["auroc"] <= jpeg_only["auroc, 95% high"]
    assert results["sample_data"] is True and results["methods"]["ece bins"] > 0
    assert set(results["cifake_test"]["accuracy by content class"]["cat"]) == set(results["transfer"])
    assert results["models"]["strong_model"]["recipe"]["name"] == "strong"
    assert results["explanations"]["n"] > 0 and len(results["explanations"]["srm_gates"]) == 6
    assert set(results["explanations"]["centre share"]["base_model gradcam"]) == {"Real", "Fake"}
    for figure in ("gradcam_base_model.png", "gradcam_strong_model.png", "srm_gates.png"):
        assert (tmp_path / figure).stat().st_size > 1000
    assert "null" in (tmp_path / "results.json").read_text() and "NaN" not in (tmp_path / "results.json").read_text()
    seeds = json.loads((tmp_path / "seeds.json").read_text())
    assert [run["seed"] for run in seeds["models"]["attn_model"]["runs"]] == [0, 1]
    assert 0 <= seeds["models"]["base_model"]["accuracy min"] <= seeds["models"]["base_model"]["accuracy max"] <= 1
    card = json.loads((tmp_path / "card.json").read_text())
    assert card["models"]["strong_model"]["cifake_test"]["ece"] >= 0 and "## strong_aug_model" in (
        tmp_path / "README.md").read_text()
    validation = results["validation"]["strong_model"]
    assert validation["validation images drawn"] == 200 and validation["copies of training images"] == 0
    assert validation["AUROC, copies in"] == validation["AUROC, copies out"]       # the sample has no copies
    assert "## Validation without copies of training images" in report
    assert results["ddpm32"]["ap base rate"] == pytest.approx(200 / 220)
    assert results["faces"]["ap base rate"] == pytest.approx(40 / 48)
    transfer = results["fullsize"]["transfer"]["faces"]
    assert transfer["auroc, 95% low"] <= transfer["auroc"] <= transfer["auroc, 95% high"]
    assert transfer["ap base rate"] == pytest.approx(40 / 48)
    assert set(results["fullsize"]["held-out"]["format test"]) == {"PNG fakes saved as JPEG", "reals saved again as JPEG"}
    photos = results["photos"]
    assert photos["decision"]["gives verdicts"] is (
        photos["held-out"]["AUROC, JPEG fakes"] >= rules.PHOTO_AUROC_AT_LEAST
        and max(photos["left-out sources called fake"].values()) <= rules.PHOTO_CALLED_FAKE_AT_MOST
        and photos["faces"]["reals"]["fake"] <= rules.PHOTO_CALLED_FAKE_AT_MOST)
    assert set(photos["left-out sources"]) == {"AGIRI reals", "camera", "scans"} and "old model" in photos
    assert card["full_size_model"]["model"] == "photo_model" and "agiri_model" in card


def test_reproduce_tables_the_variants_beside_the_shipped_models(sample_results):
    results = json.loads((sample_results / "results.json").read_text())
    generators = results["generators"]
    rows = generators["rows"]
    assert set(rows) == set(variants.VARIANTS) | {"base_model", "attn_model", "mini_model", "strong_model",
                                                  "strong_aug_model"}
    assert generators["n_real"] == 200 and generators["n_fake"] == {"ddpm-cifar10-32": 20, "ddpm-retrained": 40,
                                                                    "gan-small": 20, "gan-mix": 16, "glow": 16,
                                                                    "pixelcnnpp": 16}
    fast = rows["fast"]
    assert fast["seeds"] == 2 and fast["protocol"] == "CIFAKE only" and fast["arch"] == "cnn"
    runs = [r for r in json.loads((sample_results / "variants.json").read_text())["runs"]
            if r["variant"] == "fast" and "benchmark" not in r]
    assert [r["seed"] for r in runs] == [0, 1]
    assert fast["gan-small AUROC"] == pytest.approx(np.mean([r["generators"]["gan-small"]["auroc"] for r in runs]))
    assert fast["mean development AUROC"] == pytest.approx(np.mean([fast[f"{g} AUROC"] for g in (
        "ddpm-cifar10-32", "ddpm-retrained", "gan-small")]))
    oracle = rows["fast_oracle_gan"]
    assert oracle["protocol"] == "oracle: half of gan-small vs CIFAKE reals" and "gan-small: share" not in str(oracle)
    share = (fast["gan-small AUROC"] - 0.5) / (oracle["gan-small AUROC"] - 0.5)
    assert fast["gan-small: share of the oracle's margin"] == pytest.approx(share)
    assert rows["strong_model"]["protocol"] == "CIFAKE only (shipped)" and rows["strong_model"]["seeds"] == 1
    oracle_runs = [r for r in json.loads((sample_results / "variants.json").read_text())["runs"]
                   if r["variant"] == "fast_oracle_gan" and "benchmark" not in r]
    assert all(r["generators"]["gan-small"]["n_fake"] == 10 for r in oracle_runs)          # the held-out half only
    assert rows["fast_npr"]["seeds"] == 1 and rows["strong/general"]["arch"] == "strong"
    decision = generators["decision"]
    assert set(decision["variants"]) == {n for n, r in rows.items() if r["protocol"] == "CIFAKE only"}
    assert decision == json.loads(json.dumps(rules.variant_shipping_decision(rows)))   # the rule, from these rows
    assert generators["recipes"]["general"]["input"] == "spectrum"
    report = (sample_results / "report.md").read_text()
    assert "## Other generators at 32 x 32" in report and "## Time per step (seconds)" in report
    assert "gan-small vs CIFAKE test/REAL" in results["audit"] and (sample_results / "generators.png").is_file()


def test_reproduce_tables_the_benchmark_per_unseen_generator(sample_results):
    results = json.loads((sample_results / "results.json").read_text())
    bench = results["benchmark"]
    generators = ["ddpm-cifar10-32", "ddpm-retrained", "gan-mix", "gan-small", "glow", "pixelcnnpp"]
    assert bench["generators"] == generators and bench["families"]["glow"] == "flow"
    rows = bench["rows"]
    from conftest import PAPER_LEAVE_OUT
    no_fakes = {f"zeroshot: {model}, {kind}" for model in zeroshot.MODELS.values() for kind in zeroshot.SCORES}
    assert set(rows) == {"CIFAKE only (floor)", "floor: pretrained probe", *(f"logo: {v}" for v in PAPER_LEAVE_OUT),
                         "lofo: fast balanced", "lofo: pretrained probe balanced",
                         "lofo: fast pooled", "oracle: base CNN on half of it", "strong_model (shipped)",
                         *(f"own: {v}" for v in variants.OWN), *no_fakes}
    runs = [r for r in json.loads((sample_results / "variants.json").read_text())["runs"] if "benchmark" in r]
    logo = [r for r in runs if r["benchmark"] == "logo" and r["variant"] == "fast balanced"]
    assert sorted(r["held_out"] for r in logo) == sorted(generators)
    for record in logo:                                    # never trained on what it is scored on
        held_out = record["held_out"]
        assert record["unseen"] == [held_out] and not any(held_out in s for s in record["train_fakes"])
        shares = record["fake shares"]
        assert len(shares) == 6 and max(shares.values()) - min(shares.values()) <= 1       # equal shares
    probe = [r for r in runs if r["variant"] == "pretrained probe balanced" and r["benchmark"] == "logo"]
    assert sorted(r["held_out"] for r in probe) == sorted(generators) and {r["arch"] for r in probe} == {"pretrained"}
    for record in probe:                                   # the frozen backbone, the same leave-one-out draw
        held_out = record["held_out"]
        assert record["unseen"] == [held_out] and not any(held_out in s for s in record["train_fakes"])
    families = [r for r in runs if r["variant"] == "pretrained probe balanced" and r["benchmark"] == "lofo"]
    assert sorted(r["held_out"] for r in families) == sorted(set(bench["families"].values()))
    for record in families:                                # a whole family unseen: none of it in training
        assert not any(g in s for g in record["unseen"] for s in record["train_fakes"])
        assert max(record["fake shares"].values()) - min(record["fake shares"].values()) <= 1
    assert "logo: pretrained probe balanced" in bench["decision"]["gains"]      # under GENERAL_RULE, as written
    glow = next(r for r in logo if r["held_out"] == "glow")
    assert rows["logo: fast balanced"]["glow AUROC"] == pytest.approx(glow["generators"]["glow"]["auroc"])
    assert rows["logo: fast balanced"]["mean AUROC"] == pytest.approx(np.mean([
        r["generators"][r["held_out"]]["auroc"] for r in logo]))
    lofo = {r["held_out"]: r["unseen"] for r in runs if r["benchmark"] == "lofo" and r["variant"] == "fast balanced"}
    assert lofo == {"diffusion": ["ddpm-cifar10-32", "ddpm-retrained"], "GAN": ["gan-mix", "gan-small"],
                    "flow": ["glow"], "autoregressive": ["pixelcnnpp"]}
    oracle = [r for r in runs if r["benchmark"] == "oracle"]
    assert all(r["generators"][r["held_out"]]["n_fake"] < results["benchmark"]["n_fake"][r["held_out"]]
               for r in oracle)                            # scored on the half it never saw
    own = [r for r in runs if r["benchmark"] == "own"]
    assert len(own) == len(variants.OWN) and all(r["unseen"] == generators for r in own)
    both = next(r for r in own if r["variant"] == "CIFAKE + own gan, vae, flow")
    assert both["train_fakes"] == ["cifake", "own:gan", "own:vae", "own:flow"]
    assert max(both["fake shares"].values()) - min(both["fake shares"].values()) <= 1
    zero = [r for r in runs if r["benchmark"] == "zeroshot"]
    assert {f"zeroshot: {r['variant']}" for r in zero} == no_fakes and all(r["unseen"] == generators for r in zero)
    table = publish.benchmark_table(bench)
    assert set(table.loc[sorted(no_fakes), "CIFAKE share of fakes"]) == {"none seen"}
    verdict = bench["no outside generator"]
    assert set(verdict["gains"]) == {*(f"own: {v}" for v in variants.OWN), *no_fakes}
    assert verdict["ships"] == [n for n, gain in sorted(verdict["gains"].items()) if gain >= 0.05]
    decision = bench["decision"]
    assert decision == json.loads(json.dumps(rules.general_decision(bench["rows"])))
    assert (sample_results / "benchmark.png").is_file() and "## The generalisation benchmark" in (
        sample_results / "report.md").read_text()


def test_regenerating_sample_data_keeps_results_and_models(tmp_path):
    """reproduce.py --sample may generate the data after creating its report folder: it must survive."""
    from realfake.data.sample import make_sample_data
    for folder in ("results", "models"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "kept.txt").write_text("x")
    make_sample_data(tmp_path, n_train=10, n_test=5, cifar100_per_class=(1, 1), agiri_per_class=4)
    assert (tmp_path / "results" / "kept.txt").exists() and (tmp_path / "models" / "kept.txt").exists()


def test_bench_fast_trains_each_seed_and_reports_the_mean(sample_root, monkeypatch, capsys):
    import bench
    seeds_seen = []

    def recording_train_model(train, val, recipe, **kwargs):
        seeds_seen.append(recipe.seed)
        return train_model(train, val, recipe, **kwargs)

    monkeypatch.setattr(bench, "train_model", recording_train_model)
    runs = bench.bench_fast(sample_root / "CIFAKE", recipes=("fast",), seeds=(0, 1))
    assert seeds_seen == [0, 1] and len(runs["fast"]) == 2
    assert all(seconds > 0 and 0.0 <= accuracy <= 1.0 for seconds, accuracy in runs["fast"])
    out = capsys.readouterr().out
    assert "fast recipe (3 epochs, batch 256), seed 1:" in out and "fast recipe, mean of 2 seeds" in out


def test_bench_recipes_times_both_strong_recipes_and_torchrun(sample_root, monkeypatch, tmp_path):
    """bench.py recipes on the sample data with tiny networks: strong timed over one epoch and scaled to all of its
    epochs, strong_fast in full, both scored; then train.py in one process and in two under torchrun."""
    import bench

    from realfake.training.recipes import FAST_STRONG, SHIPPED_MODELS, ModelSpec
    tiny = lambda spec, epochs: ModelSpec(replace(spec.recipe, epochs=epochs, compile=False), "strong",
                                          {"widths": (8, 16, 24)})
    strong = tiny(SHIPPED_MODELS["strong_model"], 4)
    monkeypatch.setattr(bench, "SHIPPED_MODELS", {**SHIPPED_MODELS, "strong_model": strong})
    monkeypatch.setattr(bench, "FAST_STRONG", tiny(FAST_STRONG, 2))
    readme = tmp_path / "README.md"
    readme.write_text("<!-- results:speed -->\n<!-- /results:speed -->\n")
    rows = bench.bench_recipes(sample_root / "CIFAKE", output=tmp_path / "recipes.json", timed_epochs=1, readme=readme)
    strong, fast = rows["strong"], rows["strong_fast"]
    assert strong["timed epochs"] == 1 and strong["epochs"] == 4 and fast["timed epochs"] == fast["epochs"] == 2
    assert strong["seconds in all"] == pytest.approx(strong["seconds besides epochs"] + 4 * strong["seconds per epoch"])
    assert strong["parameters"] == 281_697                      # scored by the shipped strong_model
    # scored, not a proof of learning: two epochs of a tiny network on the sample land near chance (0.4955 on
    # an AMD EPYC); learning is tested in tests/training
    assert all(0 <= row["test AUROC"] <= 1 for row in (strong, fast))
    assert rows["sample data, torchrun, 2 processes"]["seconds in all"] > 0
    assert json.loads((tmp_path / "recipes.json").read_text())["rows"].keys() == rows.keys()
    table = readme.read_text()
    assert "| strong " in table and "4 (1 timed)" in table and "of strong)" in table and "x one process)" in table


def test_bench_nofake_times_own_generators_and_the_zero_shot_detector(sample_root, monkeypatch, capsys):
    import bench
    monkeypatch.setattr(own_generators, "SAMPLES", 20)
    monkeypatch.setattr(zeroshot, "PATCH_MODEL", dict(components=2, fit_images=100, max_iter=10))
    monkeypatch.setattr(own_generators, "OWN_GENERATORS", {name: dict(settings, width=8)
                                                   for name, settings in own_generators.OWN_GENERATORS.items()})
    bench.bench_nofake(load_cifake(sample_root / "CIFAKE", "train", verbose=False), steps=2)
    out = capsys.readouterr().out
    assert "baseline: one epoch" in out and out.count("x the baseline epoch") == 4
    assert "own generators, all three:" in out and "zero-shot fit (100 images)" in out and "images/s" in out


def test_bench_steps_times_each_lever_against_the_shipped_network(monkeypatch, capsys):
    import bench
    monkeypatch.setattr(bench.torch, "compile", lambda model: model)    # compiling is tested in test_training
    threads = torch.get_num_threads()
    rows = bench.bench_steps(batch_size=4, steps=1)
    assert torch.get_num_threads() == threads                           # the thread count is restored
    assert len(rows) == 7 and all(seconds > 0 for seconds in rows.values())
    out = capsys.readouterr().out
    assert "shipped widths, eager: " in out and "(1.00x)" in out and "to compile and warm up" in out


def test_predict_flags_images_that_are_not_32x32_and_defaults_to_the_model_cards_choice(tmp_path):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(tmp_path / "small.png")
    only_small = predict(tmp_path / "small.png", "--json", tmp_path / "a.json")
    assert only_small.returncode == 0, only_small.stderr
    default = json.loads((REPO_ROOT / "models" / "card.json").read_text())["default_model"]["model"]
    import predict as predict_script
    assert predict_script.default_model_name() == default
    assert f"scored with {default}" in only_small.stdout and "not 32x32" not in only_small.stdout
    assert json.loads((tmp_path / "a.json").read_text())[0]["in_domain"] is True
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(tmp_path / "large.png")
    both = predict(tmp_path / "small.png", tmp_path / "large.png", "--csv", tmp_path / "b.csv")
    assert both.returncode == 0, both.stderr
    assert "1 of 2 images are not 32x32" in both.stdout
    table = pd.read_csv(tmp_path / "b.csv")
    assert table.set_index(table["path"].str.rsplit("/", n=1).str[-1])["in_domain"].to_dict() == {
        "small.png": True, "large.png": False}


def test_predict_falls_back_to_the_strong_model_without_a_card_choice(tmp_path):
    import predict as predict_script
    assert predict_script.default_model_name(tmp_path / "missing.json") == "strong_model"
    (tmp_path / "card.json").write_text(json.dumps({"default_model": {"model": "general_model"}}))
    assert predict_script.default_model_name(tmp_path / "card.json") == "general_model"


def test_reproduce_only_reruns_the_named_sections_and_keeps_the_others(sample_results, tmp_path):
    import shutil
    out = shutil.copytree(sample_results, tmp_path / "results")
    before = json.loads((out / "results.json").read_text())
    (out / "variants.json").write_text(json.dumps({"runs": []}))               # the variants' rows disappear
    result = run(["reproduce.py", "--sample", "--out", str(out), "--only", "generators"], ".")
    assert result.returncode == 0, result.stderr
    after = json.loads((out / "results.json").read_text())
    for key in ("cifake_test", "robustness", "explanations", "audit", "faces"):
        assert after[key] == before[key]
    assert set(after["generators"]["rows"]) == set(before["transfer"])             # shipped models only now
    assert after["sections"]["generators"] == after["commit"]
    report = (out / "report.md").read_text()
    for section in ("## CIFAKE test (400 images)", "## Robustness on CIFAKE test", "## Other generators at 32 x 32"):
        assert report.count(section) == 1
    assert "--only generators" in report and "[generators:" in result.stdout and "[robustness:" not in result.stdout
    empty = tmp_path / "empty"
    empty.mkdir()
    bad = run(["reproduce.py", "--sample", "--out", str(empty), "--only", "faces"], ".")
    assert bad.returncode == 1 and "without --only" in bad.stderr and "Traceback" not in bad.stderr


def test_reproduce_keeps_the_last_figures_of_a_section_it_cannot_compute_and_says_so(sample_results, tmp_path):
    import shutil
    out = shutil.copytree(sample_results, tmp_path / "results")
    before = json.loads((out / "results.json").read_text())
    (out / "matrix.json").unlink()                                       # the matrix section cannot run now
    result = run(["reproduce.py", "--sample", "--out", str(out), "--only", "matrix"], ".")
    assert result.returncode == 0, result.stderr
    after = json.loads((out / "results.json").read_text())
    assert after["matrix"] == before["matrix"] and after["sections"]["matrix"] == before["sections"]["matrix"]
    assert f"kept from commit {before['sections']['matrix']}" in result.stdout
    report = (out / "report.md").read_text()
    assert "## matrix: skipped" in report and "the last run's" in report and report.count("## The transfer matrix") == 1
    shutil.rmtree(out)
    out.mkdir()
    (out / "results.json").write_text(json.dumps({k: v for k, v in before.items() if k != "matrix"}))
    result = run(["reproduce.py", "--sample", "--out", str(out), "--only", "matrix"], ".")
    after = json.loads((out / "results.json").read_text())
    assert "matrix" not in after and after["sections"]["matrix"] is None and "matrix (no results)" in result.stdout


def test_the_gpu_check_has_a_cpu_figure_for_each_full_training_and_refuses_without_cuda(monkeypatch):
    import bench
    reference = bench.cpu_reference()
    for training in ("base CNN, original recipe, 10 epochs", "strong net, strong recipe, 30 epochs"):
        seconds, accuracy = reference[training]                # the shipped model's training time and test accuracy
        assert seconds > 0 and 0.5 < accuracy <= 1, training
    monkeypatch.setattr(bench.torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit, match="needs a CUDA GPU"):
        bench.bench_gpu(REPO_ROOT / "data" / "CIFAKE")
