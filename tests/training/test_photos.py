"""photo_model (photos.py): real photographs of many sources as the REAL class, the choice by leaving each real source
out, an operating point that rarely accuses, "uncertain" for what it does not know, rules.PHOTO_RULE, and predict.py's
routing and verdicts; end to end on the sample data (the backbone at a tiny input size, so the suite stays fast)."""
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import predict
import pytest
import torch
from classes import load_real_photos
from conftest import REPO, train_sample_full_size
from PIL import Image, ImageDraw
from realfake import FAKE, REAL
from realfake.models.checkpoints import load_model
from realfake.project import ProjectError
from realfake.rules import (
    PHOTO_FAKES_CALLED_REAL,
    PHOTO_VALIDATION_CALLED_FAKE,
    photo_decision,
)
from realfake.training import photos


def run(args):
    return subprocess.run([sys.executable, str(REPO / "code" / args[0]), *args[1:]], cwd=REPO, capture_output=True,
                          text=True, timeout=900)


@pytest.fixture(scope="module")
def sample_photo_model(sample_root, tmp_path_factory):
    return train_sample_full_size("photos", tmp_path_factory.mktemp("photos"))[0]


def test_the_real_photographs_loader_uses_or_lists_every_file(sample_root, tmp_path):
    root = tmp_path / "reals"
    (root / "mine").mkdir(parents=True)
    Image.new("RGB", (300, 180), "green").save(root / "mine" / "wide.jpg")
    Image.new("L", (90, 120), 80).save(root / "mine" / "grey.png")
    (root / "mine" / "broken.jpg").write_bytes(b"not an image")
    sets = load_real_photos(root, verbose=False)
    data = sets["mine"]
    assert data.report.found == 3 and data.report.loaded == 2
    assert data.report.skipped == [("broken.jpg", "not an image")]
    assert sorted(data.sources) == ["mine/grey.png", "mine/wide.jpg"] and (data.labels == REAL).all()
    assert data.images.shape[1:] == (3, 224, 224)
    sample = load_real_photos(sample_root / "reals-photos", verbose=False)
    assert set(sample) == {"camera", "scans"} and all(s.report.loaded == s.report.found for s in sample.values())
    with pytest.raises(ProjectError, match="real photographs not found: expected one folder per source"):
        load_real_photos(tmp_path / "nowhere")


def test_native_decoding_keeps_the_pixels_of_a_large_image(tmp_path):
    from realfake.data.imagefiles import decode_files
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "big.png")
    Image.fromarray(pixels[:100, :150]).save(tmp_path / "small.png")
    native, ok, _, _, _ = decode_files([tmp_path / "big.png", tmp_path / "small.png"], "native", workers=1)
    assert ok == [0, 1] and native.shape == (2, 3, 224, 224)
    top, left = (300 - 224) // 2, (400 - 224) // 2
    assert np.array_equal(native[0].permute(1, 2, 0).numpy(), pixels[top:top + 224, left:left + 224])
    resized, _, _, _, _ = decode_files([tmp_path / "big.png"], "full", workers=1)
    assert not torch.equal(resized[0], native[0])          # "full" resizes the whole image instead


def test_the_operating_point_meets_its_targets_on_validation_with_sources_weighted_equally():
    rng = np.random.default_rng(0)
    sources = np.array(["big"] * 900 + ["small"] * 100 + ["fakes"] * 500)
    labels = np.r_[np.full(1000, REAL), np.full(500, FAKE)]
    logits = np.r_[rng.normal(2, 1, 900), rng.normal(0.5, 1, 100), rng.normal(-2, 1, 500)]
    point = photos.operating_point(labels, logits, sources, np.zeros(1500))
    reals = labels == REAL
    called_fake = logits < point["fake below"]
    shares = [called_fake[reals & (sources == s)].mean() for s in ("big", "small")]
    assert np.mean(shares) <= PHOTO_VALIDATION_CALLED_FAKE
    assert np.mean(shares) > PHOTO_VALIDATION_CALLED_FAKE - 0.01         # the largest such threshold, not any
    assert shares[1] > shares[0]                 # the small source counts as much as the large one
    assert (logits[~reals] >= point["real from"]).mean() <= PHOTO_FAKES_CALLED_REAL
    assert point["real from"] >= point["fake below"]
    verdict = photos.verdicts(logits, np.r_[np.zeros(1499), 9.0], {**point, "distance limit": 1.0})
    assert verdict[-1] == "uncertain" and set(verdict) == {"fake", "uncertain", "real"}


def test_a_left_out_source_never_enters_training(sample_root, monkeypatch):
    from realfake.models.backbone import build_backbone
    pool = photos.Pool(sample_root / "agiri-subset224", sample_root / "reals-photos", "full", build_backbone(), 32)
    trained_on = []
    real_probe = photos.Probe

    def recording_probe(pool, index, *args):
        trained_on.append(index.copy())
        return real_probe(pool, index, *args)
    monkeypatch.setattr(photos, "Probe", recording_probe)
    held, rest = photos.agiri_held_out(pool)
    assert not np.isin(held, rest).any() and not np.isin(pool.groups[rest], pool.groups[held]).any()
    result = photos.leave_source_out(pool, rest, photos.options()[0])
    assert set(result) == {photos.AGIRI_REALS, "camera", "scans"}
    per_source = (photos.INNER_FOLDS + 1)
    assert len(trained_on) == 3 * per_source
    for k, source in enumerate(sorted(result)):
        left_out = rest[(pool.source[rest] == source) & (pool.labels[rest] == REAL)]
        for index in trained_on[k * per_source:(k + 1) * per_source]:
            assert not np.isin(left_out, index).any() and not np.isin(held, index).any()
        assert result[source]["n"] == len(left_out)


def test_train_photos_on_the_sample_data_records_each_source_and_applies_the_rule(sample_photo_model):
    sidecar = json.loads(sample_photo_model.with_suffix(".json").read_text())
    assert set(sidecar["options"]) == {o.name for o in photos.options()} and sidecar["choice"] in sidecar["options"]
    assert sidecar["sources"] == {"AGIRI fakes": 24, "AGIRI reals": 20, "camera": 16, "scans": 14}
    chosen = sidecar["options"][sidecar["choice"]]
    figures = {"AGIRI held-out AUROC, JPEG fakes": sidecar["held-out"]["AUROC, JPEG fakes"],
               "left-out sources called fake": {s: r["fake"] for s, r in chosen["left-out sources"].items()},
               "faces reals called fake": sidecar["faces"]["reals"]["fake"],
               "called real": {**{s: r["real"] for s, r in chosen["left-out sources"].items()},
                               "faces (CelebA-HQ)": sidecar["faces"]["reals"]["real"]}}
    assert sidecar["decision"] == photo_decision(figures)
    assert sidecar["band (P(real))"][0] <= sidecar["band (P(real))"][1]
    model, checkpoint = load_model(sample_photo_model)
    assert model.ood_components == photos.OOD_COMPONENTS and checkpoint["threshold"] == sidecar["band (P(real))"][0]
    assert model.band.tolist() == pytest.approx(sidecar["band (P(real))"])
    assert float(model.ood_limit) == pytest.approx(sidecar["operating point (logits)"]["distance limit"])


def strange_images(folder):
    """Inputs unlike any photograph: noise, flat colour, a line drawing."""
    folder.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)).save(folder / "noise.png")
    Image.new("RGB", (256, 256), (200, 30, 30)).save(folder / "flat.png")
    drawing = Image.new("RGB", (256, 256), "white")
    pen = ImageDraw.Draw(drawing)
    for k in range(12):
        pen.line([(10 + 20 * k, 10), (240 - 15 * k, 240)], fill="black", width=3)
    pen.ellipse([60, 60, 190, 190], outline="blue", width=4)
    drawing.save(folder / "drawing.png")
    return folder


def test_predict_calls_inputs_unlike_any_photograph_uncertain(sample_photo_model, tmp_path):
    out = tmp_path / "verdicts.csv"
    result = run(["predict.py", str(strange_images(tmp_path / "strange")), "-mf", str(sample_photo_model),
                  "--csv", str(out)])
    assert result.returncode == 0, result.stderr[-2000:]
    table = pd.read_csv(out)
    assert len(table) == 3 and (table["verdict"] == "uncertain").all(), table
    assert "3 uncertain" in result.stdout


def test_predict_gives_no_verdict_from_a_full_size_model_that_fails_the_rule(sample_photo_model, sample_root,
                                                                          tmp_path, monkeypatch):
    from realfake.evaluation.scoring import score_files
    model, checkpoint = load_model(sample_photo_model)
    files = sorted((sample_root / "reals-photos" / "camera").iterdir())
    table, _, _ = score_files(model, files, checkpoint["threshold"], "full", model_name="photo_model")
    assert set(table["verdict"]) <= {"fake", "uncertain", "real"} and len(table) == 16
    p, band = table["p_real"], model.band.tolist()
    assert (table["verdict"][p < band[0]] != "real").all() and (table["verdict"][p >= band[1]] != "fake").all()
    silent, _, _ = score_files(model, files, checkpoint["threshold"], "full", model_name="photo_model",
                               gives_verdicts=False)
    assert (silent["verdict"] == "uncertain").all() and np.allclose(silent["p_real"], table["p_real"])
    card = tmp_path / "card.json"
    entry = {"model": "photo_model", "ships": True, "gives verdicts": False}
    card.write_text(json.dumps({"full_size_model": entry}))
    assert predict.full_size_model(card) == ("photo_model", False)
    card.write_text(json.dumps({"full_size_model": {**entry, "gives verdicts": True}}))
    assert predict.full_size_model(card) == ("photo_model", True)
    card.write_text(json.dumps({"full_size_model": {"model": "agiri_model", "ships": True}}))
    assert predict.full_size_model(card) == ("agiri_model", True)     # an older card: its shipping rule decides
    card.write_text(json.dumps({"full_size_model": {"model": "agiri_model", "ships": False}}))
    assert predict.full_size_model(card) == (None, False)


def test_a_32_px_model_is_uncertain_about_images_of_other_sizes(sample_model, tmp_path):
    from realfake.evaluation.scoring import score_files
    path, _ = sample_model
    model, checkpoint = load_model(path)
    Image.new("RGB", (32, 32), "red").save(tmp_path / "small.png")
    Image.new("RGB", (48, 40), "red").save(tmp_path / "other.png")
    table, _, _ = score_files(model, [tmp_path / "small.png", tmp_path / "other.png"], checkpoint["threshold"])
    assert table["verdict"].tolist() == [table["label"][0].lower(), "uncertain"]


def test_the_photo_notice_quotes_unseen_sources_and_says_why_no_verdict():
    from realfake.publishing.publish import photo_notice
    entry = {"model": "photo_model", "gives verdicts": False, "band (P(real))": [0.2, 0.5],
             "decision": {"checks": {"(a) AUROC": True, "(b) left-out sources": False, "(c) faces reals": False}},
             "unseen real sources called fake": {"bsds500": 0.036, "imagenet-samples": 0.177,
                                                 "faces (CelebA-HQ)": 0.229}}
    notice = photo_notice(entry, 5, 0)
    assert "fails rules.PHOTO_RULE ((b) left-out sources, (c) faces reals): every verdict is uncertain" in notice
    assert "(3 sources: each left out in turn, and CelebA-HQ's faces) it called 4% to 23% fake" in notice
    notice = photo_notice({**entry, "gives verdicts": True}, 5, 2)
    assert "uncertain where P(real) lies between 0.20 and 0.50" in notice and "2 of 5 images are under 224 px" in notice


def test_test_py_scores_photo_models_fold_with_its_three_verdicts(sample_photo_model, tmp_path):
    out = tmp_path / "held.json"
    result = run(["test.py", "--sample", "-mf", str(sample_photo_model), "--json", str(out)])
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(out.read_text())
    sidecar = json.loads(sample_photo_model.with_suffix(".json").read_text())
    assert report["JPEG fakes"]["auroc"] == pytest.approx(sidecar["held-out"]["AUROC, JPEG fakes"], abs=1e-6)
    for side in ("reals", "fakes"):
        assert sum(report["verdicts"][side].values()) == pytest.approx(1)
        assert report["verdicts"][side] == pytest.approx(sidecar["held-out"][side], abs=1e-6)
    assert "reals: " in result.stdout and "uncertain" in result.stdout
