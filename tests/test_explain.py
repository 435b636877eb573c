"""predict.py and the explanations (Grad-CAM maps, SRM gates)."""
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from classes import StrongCNN, load_cifake, load_model
from explain import cam_maps, gate_statistics, overlay, srm_gates
from project import REPO_ROOT
from train import split_train_val, train_model


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


def test_predict_scores_every_mode_and_lists_the_broken_file(sample_model, image_folder, tmp_path):
    model, _ = sample_model
    result = predict(image_folder, "-mf", model, "--csv", tmp_path / "s.csv", "--json", tmp_path / "s.json",
                     "--preprocess", "multi_crop")
    assert result.returncode == 1                                   # one file failed
    assert "broken.jpg" in result.stderr and "corrupt image data" in result.stderr
    table = pd.read_csv(tmp_path / "s.csv")
    assert len(table) == 10 and set(table.columns) >= {"path", "p_real", "label", "model", "threshold", "preprocess"}
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


def test_predict_explain_writes_overlays(sample_model, image_folder, tmp_path):
    model, _ = sample_model
    result = predict(image_folder / "nested", image_folder / "m_RGB.jpg", "-mf", model, "--explain", tmp_path / "x")
    assert result.returncode == 0, result.stderr
    assert len(list((tmp_path / "x").glob("*.png"))) == 2


@pytest.mark.parametrize("method", ["gradcam", "gradcam++"])
def test_cam_maps_of_a_trained_model(sample_model, sample_root, method):
    from evaluate import predict_scores
    model, _ = load_model(sample_model[0])
    images = load_cifake(sample_root / "CIFAKE", "test", verbose=False).images[::25]   # both classes
    predicted = (predict_scores(model, images) >= 0.5).astype(int)
    maps = cam_maps(model, images, method=method, target=predicted)                      # evidence for the call
    assert maps.shape == (16, 32, 32) and np.isfinite(maps).all()
    assert maps.min() >= 0 and maps.max() <= 1 and maps.std() > 0.01   # not constant
    assert overlay(images[0], maps[0]).shape == (32, 32, 3)


def test_srm_gates_one_value_per_channel_in_open_unit_interval(sample_root):
    train, val = split_train_val(load_cifake(sample_root / "CIFAKE", "train", verbose=False))
    model, _ = train_model(train.subset(range(0, len(train), 3)), val, epochs=1, attn=True, progress=False)
    gates = srm_gates(model, val.images)
    assert gates.shape == (len(val), 6) and ((gates > 0) & (gates < 1)).all()
    table = gate_statistics(gates, val.labels.numpy())
    assert len(table) == 6 and table[["gate on Real", "gate on Fake"]].stack().between(0, 1).all()
    assert np.allclose(table["fake minus real"], table["gate on Fake"] - table["gate on Real"])


def test_cam_maps_explain_a_view_averaging_model_one_view_at_a_time():
    torch.manual_seed(0)
    model = StrongCNN(test_flip=True, test_shift=1).eval()
    images = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    maps = cam_maps(model, images)
    assert (model.test_flip, model.test_shift) == (True, 1)         # switched back afterwards
    model.test_flip, model.test_shift = False, 0
    assert np.allclose(maps, cam_maps(model, images), atol=1e-6)
