"""data/inputs.py: each input transform keeps shape and dtype, is deterministic, and has the property it is named
for."""
import pytest
import torch
from conftest import batch

from realfake.data import inputs


@pytest.mark.parametrize("name", list(inputs.INPUTS))
def test_input_transforms_keep_shape_and_dtype_and_are_deterministic(name):
    x = batch()
    y = inputs.INPUTS[name](x)
    assert y.shape == x.shape and y.dtype == torch.float32 and torch.isfinite(y).all()
    assert torch.equal(y, inputs.INPUTS[name](x.clone()))


def test_input_transform_properties():
    x = batch()
    gray = inputs.gray(x)
    assert torch.equal(gray[:, 0], gray[:, 1]) and torch.equal(gray[:, 1], gray[:, 2])        # equal channels
    standard = inputs.standardise(x)
    assert standard.mean((2, 3)).abs().max() < 1e-4 and (standard.std((2, 3), unbiased=False) - 1).abs().max() < 1e-3
    blocks = x[..., ::2, ::2].repeat_interleave(2, 2).repeat_interleave(2, 3)                 # 2x nearest upsampling
    assert inputs.npr(blocks).abs().max() == 0 and inputs.npr(x).abs().max() > 0.01
    assert inputs.highpass(blocks).abs().max() < 1e-6                                    # constant 2 x 2 blocks
    checker = (torch.arange(32)[:, None] + torch.arange(32)[None, :]) % 2 * 2.0 - 1            # all high frequency
    assert torch.allclose(inputs.highpass(checker.expand(1, 3, 32, 32)), checker.expand(1, 3, 32, 32))
    rolled = torch.roll(x, shifts=(5, 11), dims=(2, 3))                                      # a circular shift
    assert torch.allclose(inputs.spectrum(rolled), inputs.spectrum(x), atol=1e-4)
    assert not torch.allclose(inputs.spectrum(x.flip(1)), inputs.spectrum(x))
