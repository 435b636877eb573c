"""evaluation/scoring.py: test files that copy training files are found by content, multi-crop scores average
logits, and the CIFAR-100 transfer tables match hand-computed values."""
import numpy as np
import pytest
import torch

from classes import load_cifake
from realfake.evaluation.scoring import leaked_test_images


class MeanPixel(torch.nn.Module):
    """A stand-in model whose logit is the mean normalised pixel value."""
    def forward(self, x):
        return x.mean((1, 2, 3))


def test_leak_detection_by_file_content(sample_root):
    test = load_cifake(sample_root / "CIFAKE", "test", verbose=False)
    train = load_cifake(sample_root / "CIFAKE", "train", verbose=False)
    assert leaked_test_images(test, train).sum() == 0
    assert leaked_test_images(test, test).all()


def test_multi_crop_scores_are_the_sigmoid_of_each_images_mean_logit():
    from realfake.models.inference import predict_logits, predict_scores
    levels = torch.tensor([0, 255, 255, 0, 0, 0], dtype=torch.uint8)       # 2 images x 3 crops
    images = levels[:, None, None, None].expand(6, 3, 32, 32).contiguous()
    model = MeanPixel()
    assert predict_logits(model, images, crops_per_image=3) == pytest.approx([1 / 3, -1])   # pixel 0 -> -1, 255 -> +1
    sigmoid = lambda v: 1 / (1 + np.exp(-v))
    assert predict_scores(model, images, crops_per_image=3) == pytest.approx([sigmoid(1 / 3), sigmoid(-1)])
    model.temperature = 2.0                                                  # a calibrated model divides first
    assert predict_scores(model, images, crops_per_image=3) == pytest.approx([sigmoid(1 / 6), sigmoid(-0.5)])


def test_cifar100_transfer_tables_against_hand_computed_values():
    from types import SimpleNamespace

    from realfake.evaluation.scoring import cifar100_transfer
    data = SimpleNamespace(classes=np.array([0, 0, 1, 1]), class_names=["apple", "bee"],
                           coarse=np.array([0, 0, 0, 1]), coarse_names=["plants", "insects"])
    scores = {"a": np.array([0.9, 0.1, 0.6, 0.8]), "b": np.array([0.2, 0.3, 0.9, 0.1])}
    t = cifar100_transfer(scores, data, threshold=0.5)
    assert t["overall"].to_dict() == {"a": 0.75, "b": 0.25}
    assert t["coarse"].loc["plants"].tolist() == pytest.approx([2 / 3, 1 / 3]) and t["coarse"].loc["insects"].tolist() == [1, 0]
    assert t["fine"].loc["apple"].tolist() == [0.5, 0.0] and t["fine"].loc["bee"].tolist() == [1.0, 0.5]
    assert list(t["coarse"].index) == ["plants", "insects"]                 # worst first, by the first model
