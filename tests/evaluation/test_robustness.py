"""evaluation/robustness.py: every perturbation of the table maps images to images, deterministically."""
import pytest
import torch
from conftest import images

from realfake.evaluation import robustness


@pytest.mark.parametrize("name", list(robustness.PERTURBATIONS))
def test_perturbation_shape_and_range(name):
    x = images()
    y = robustness.PERTURBATIONS[name](x)
    assert y.shape == x.shape and y.dtype == torch.uint8
    assert torch.equal(y, robustness.PERTURBATIONS[name](x))          # deterministic
    if name != "none":
        assert not torch.equal(y, x)
