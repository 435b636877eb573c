"""data/perturb.py: each perturbation maps uint8 images to uint8 images, deterministically; colour jitter and patch
shuffling are seeded and do what they say."""
import io

import torch
from conftest import batch, images
from PIL import Image

from realfake.data import perturb


def test_colour_jitter_is_seeded_bounded_and_zero_strength_leaves_images_alone():
    x = batch(16)
    jitter = lambda strength, seed: perturb.jitter_colour(x, strength, torch.Generator().manual_seed(seed))
    assert torch.equal(jitter(0.3, 1), jitter(0.3, 1)) and not torch.equal(jitter(0.3, 1), jitter(0.3, 2))
    assert jitter(0.3, 1).shape == x.shape and jitter(0.3, 1).abs().max() <= 1
    assert torch.allclose(jitter(0.0, 1), x, atol=1e-6)


def test_patch_shuffle_moves_whole_tiles_in_about_half_of_the_images():
    x = batch(40)
    y = perturb.shuffle_patches(x, 8, torch.Generator().manual_seed(0))
    assert y.shape == x.shape and torch.equal(y, perturb.shuffle_patches(x, 8, torch.Generator().manual_seed(0)))
    tiles = lambda t: t.reshape(40, 3, 4, 8, 4, 8).permute(0, 2, 4, 1, 3, 5).reshape(40, 16, -1)
    assert torch.equal(tiles(y).sort(1).values, tiles(x).sort(1).values)      # the same tiles, reordered
    changed = sum(not torch.equal(y[i], x[i]) for i in range(40))
    assert 10 <= changed <= 30


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
