"""perturb.py: the image operations, and the train-time augmentation."""
import io

import numpy as np
import torch
from PIL import Image

import perturb


def images(n=6, seed=0):
    rng = np.random.default_rng(seed)
    smooth = rng.integers(0, 256, (n, 3, 8, 8), dtype=np.uint8)
    return torch.nn.functional.interpolate(torch.from_numpy(smooth).float(), size=32, mode="bilinear").to(torch.uint8)


def test_jpeg_round_trip_changes_the_bytes_and_stronger_compression_loses_more():
    x = images(1)
    original = io.BytesIO()
    Image.fromarray(x[0].permute(1, 2, 0).numpy()).save(original, "PNG")
    errors = [(perturb.jpeg(x, q).float() - x.float()).abs().mean() for q in (90, 75, 50)]
    assert 0 < errors[0] < errors[2]
    assert perturb.jpeg(x, 75).numpy().tobytes() != x.numpy().tobytes()


def test_noise_is_seeded_and_blur_smooths():
    x = images()
    assert torch.equal(perturb.noise(x, 4, seed=1), perturb.noise(x, 4, seed=1))
    assert not torch.equal(perturb.noise(x, 4, seed=1), perturb.noise(x, 4, seed=2))
    edges = lambda t: (t.float()[..., 1:] - t.float()[..., :-1]).abs().mean()
    assert edges(perturb.blur(x, 1.0)) < edges(perturb.blur(x, 0.5)) < edges(x)


def test_augment_changes_about_half_and_is_seeded():
    x = images(40)
    a = perturb.augment(x, ("jpeg",), seed=3)
    changed = sum(not torch.equal(a[i], x[i]) for i in range(len(x)))
    assert 10 <= changed <= 30 and torch.equal(a, perturb.augment(x, ("jpeg",), seed=3))


def test_rescale_keeps_shape_and_nearest_round_trip_of_a_blocky_image_is_exact():
    x = images(3)
    blocky = x[..., ::2, ::2].repeat_interleave(2, 2).repeat_interleave(2, 3)
    assert torch.equal(perturb.rescale(blocky, 16, down="nearest", up="nearest"), blocky)
    assert perturb.rescale(x, 24).shape == x.shape and perturb.rescale(x, 24).dtype == torch.uint8
