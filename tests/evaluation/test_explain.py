"""evaluation/explain.py: Grad-CAM maps and SRM gates."""
from dataclasses import replace

import numpy as np
import pytest
import torch

from classes import load_cifake
from realfake.data.splits import split_train_val
from realfake.evaluation.explain import cam_maps, gate_statistics, overlay, srm_gates
from realfake.models.checkpoints import load_model
from realfake.models.networks import StrongCNN
from realfake.training.loop import train_model
from realfake.training.recipes import RECIPES

pytest.importorskip("pytorch_grad_cam", reason="grad-cam is not installed (pip install -r requirements.txt)")


@pytest.mark.parametrize("method", ["gradcam", "gradcam++"])
def test_cam_maps_of_a_trained_model(sample_model, sample_root, method):
    from realfake.models.inference import predict_scores
    model, _ = load_model(sample_model[0])
    images = load_cifake(sample_root / "CIFAKE", "test", verbose=False).images[::25]   # both classes
    predicted = (predict_scores(model, images) >= 0.5).astype(int)
    maps = cam_maps(model, images, method=method, target=predicted)                      # evidence for the call
    assert maps.shape == (16, 32, 32) and np.isfinite(maps).all()
    assert maps.min() >= 0 and maps.max() <= 1 and maps.std() > 0.01   # not constant
    assert overlay(images[0], maps[0]).shape == (32, 32, 3)


def test_srm_gates_one_value_per_channel_in_open_unit_interval(sample_root):
    train, val = split_train_val(load_cifake(sample_root / "CIFAKE", "train", verbose=False))
    model, _ = train_model(train.subset(range(0, len(train), 3)), val, replace(RECIPES["original"], epochs=1), arch_kwargs={"attn": True},
                           progress=False)
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


def test_pick_examples_leaves_out_empty_groups():
    from realfake.evaluation.explain import pick_examples
    picks = pick_examples(np.array([1, 1, 0, 0]), np.array([0.9, 0.8, 0.7, 0.6]), per_group=1)
    assert picks == {("Real", "correct"): [0], ("Fake", "wrong"): [2]}       # every image called real
