"""generalise.py: each input transform, augmentation and fake-maker for shape, dtype, determinism and one property
each; the patch network's receptive field; every new recipe option trains on the sample data."""
from dataclasses import replace

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import generalise
from classes import FAKE, REAL, build_model, generator_folders, load_cifake
from project import ProjectError
from pools import epoch_rows, source_counts, training_pool
from training import RECIPES, split_train_val, train_model


def batch(n=4, seed=0):
    """Normalised images in [-1, 1] with smooth content and fine detail."""
    g = torch.Generator().manual_seed(seed)
    smooth = torch.nn.functional.interpolate(torch.rand(n, 3, 8, 8, generator=g), size=32, mode="bilinear")
    return (smooth + 0.1 * torch.rand(n, 3, 32, 32, generator=g)).clamp(0, 1) * 2 - 1


def uint8_images(n=8, seed=0):
    return ((batch(n, seed) + 1) * 127.5).round().to(torch.uint8)


@pytest.mark.parametrize("name", list(generalise.INPUTS))
def test_input_transforms_keep_shape_and_dtype_and_are_deterministic(name):
    x = batch()
    y = generalise.INPUTS[name](x)
    assert y.shape == x.shape and y.dtype == torch.float32 and torch.isfinite(y).all()
    assert torch.equal(y, generalise.INPUTS[name](x.clone()))


def test_input_transform_properties():
    x = batch()
    gray = generalise.gray(x)
    assert torch.equal(gray[:, 0], gray[:, 1]) and torch.equal(gray[:, 1], gray[:, 2])        # equal channels
    standard = generalise.standardise(x)
    assert standard.mean((2, 3)).abs().max() < 1e-4 and (standard.std((2, 3), unbiased=False) - 1).abs().max() < 1e-3
    blocks = x[..., ::2, ::2].repeat_interleave(2, 2).repeat_interleave(2, 3)                 # 2x nearest upsampling
    assert generalise.npr(blocks).abs().max() == 0 and generalise.npr(x).abs().max() > 0.01
    assert generalise.highpass(blocks).abs().max() < 1e-6                                    # constant 2 x 2 blocks
    checker = (torch.arange(32)[:, None] + torch.arange(32)[None, :]) % 2 * 2.0 - 1            # all high frequency
    assert torch.allclose(generalise.highpass(checker.expand(1, 3, 32, 32)), checker.expand(1, 3, 32, 32))
    rolled = torch.roll(x, shifts=(5, 11), dims=(2, 3))                                      # a circular shift
    assert torch.allclose(generalise.spectrum(rolled), generalise.spectrum(x), atol=1e-4)
    assert not torch.allclose(generalise.spectrum(x.flip(1)), generalise.spectrum(x))


def test_networks_take_an_input_transform_and_refuse_an_unknown_one():
    for arch in ("cnn", "strong", "patch"):
        model = build_model(arch, input="npr").eval()
        assert model.config["input"] == "npr" and model(batch()).shape == (4,)
        assert "input" not in build_model(arch).config                  # plain RGB: older checkpoints keep their keys
    with pytest.raises(ProjectError, match="unknown input transform 'fft'"):
        build_model("cnn", input="fft")


def test_colour_jitter_is_seeded_bounded_and_zero_strength_leaves_images_alone():
    x = batch(16)
    jitter = lambda strength, seed: generalise.jitter_colour(x, strength, torch.Generator().manual_seed(seed))
    assert torch.equal(jitter(0.3, 1), jitter(0.3, 1)) and not torch.equal(jitter(0.3, 1), jitter(0.3, 2))
    assert jitter(0.3, 1).shape == x.shape and jitter(0.3, 1).abs().max() <= 1
    assert torch.allclose(jitter(0.0, 1), x, atol=1e-6)


def test_patch_shuffle_moves_whole_tiles_in_about_half_of_the_images():
    x = batch(40)
    y = generalise.shuffle_patches(x, 8, torch.Generator().manual_seed(0))
    assert y.shape == x.shape and torch.equal(y, generalise.shuffle_patches(x, 8, torch.Generator().manual_seed(0)))
    tiles = lambda t: t.reshape(40, 3, 4, 8, 4, 8).permute(0, 2, 4, 1, 3, 5).reshape(40, 16, -1)
    assert torch.equal(tiles(y).sort(1).values, tiles(x).sort(1).values)      # the same tiles, reordered
    changed = sum(not torch.equal(y[i], x[i]) for i in range(40))
    assert 10 <= changed <= 30


def test_the_patch_network_sees_only_a_9_by_9_patch_per_position():
    model = build_model("patch").eval()
    x = batch(1)
    moved = x.clone()
    moved[0, :, 0, 0] += 1
    positions = lambda t: model.head(model.features(t))[0, 0]
    changed = (positions(moved) - positions(x)).abs() > 0
    assert changed[:5, :5].any() and not changed[5:].any() and not changed[:, 5:].any()


def test_resampled_fakes_are_seeded_jpeg_and_lose_fine_detail():
    x = uint8_images(24)
    made = generalise.resample_fakes(x, seed=1)
    assert made.shape == x.shape and made.dtype == torch.uint8
    assert torch.equal(made, generalise.resample_fakes(x, seed=1)) and not torch.equal(made, x)
    detail = lambda t: (t.float()[..., 1:] - t.float()[..., :-1]).abs().mean()
    assert detail(made) < detail(x)


def test_the_autoencoder_learns_and_its_fakes_are_cached(tmp_path, monkeypatch):
    x = uint8_images(64)
    error = lambda model: (generalise.reconstruct(model, x).float() - x.float()).abs().mean()
    torch.manual_seed(0)
    untrained = generalise.Autoencoder().eval()
    monkeypatch.setitem(generalise.AUTOENCODER, "epochs", 100)          # 100 steps: about a quarter of the error here
    trained = generalise.train_autoencoder(x, progress=False)
    assert error(trained) < 0.5 * error(untrained)
    for decoder in ("nearest", "transposed"):
        made = generalise.autoencoder_fakes(x[:8], decoder=decoder, progress=False)
        assert made.shape == (8, 3, 32, 32) and made.dtype == torch.uint8
    calls = []
    monkeypatch.setitem(generalise.FAKE_MAKERS, "resample", lambda images, **kw: calls.append(1) or images + 1)
    first = generalise.make_fakes("resample", x, folder=tmp_path)
    again = generalise.make_fakes("resample", x, folder=tmp_path)
    assert torch.equal(first, again) and len(calls) == 1 and len(list(tmp_path.iterdir())) == 1


@pytest.fixture(scope="module")
def sample_split(sample_root):
    return split_train_val(load_cifake(sample_root / "CIFAKE", "train", verbose=False))


@pytest.mark.parametrize("change, arch", [
    (dict(input="gray"), "cnn"), (dict(input="standardise"), "cnn"), (dict(input="npr"), "cnn"),
    (dict(input="spectrum"), "strong"), (dict(colour_jitter=0.3), "cnn"), (dict(patch_shuffle=8), "cnn"),
    (dict(), "patch"), (dict(train_fakes=("cifake", "resample", "autoencoder_tconv")), "cnn"),
    (dict(train_fakes=("cifake", "generator:ddpm-retrained")), "cnn"),
    (dict(train_fakes=("cifake", "generator:gan-small:all", "generator:ddpm-cifar10-32:all"), balance="sources",
          fake_shares=(2, 1, 1)), "cnn")])
def test_every_new_recipe_option_trains_on_the_sample_data(sample_split, sample_root, change, arch, device):
    train, val = sample_split
    recipe = replace(RECIPES["fast"], epochs=1, batch_size=64, amp=False, **change)
    model, history = train_model(train, val, recipe, arch, device=device, progress=False,
                                 generator_dirs=sample_generators(sample_root))
    assert np.isfinite(history["epochs"][0]["train_loss"]) and 0 <= history["val_at_threshold"]["auroc"] <= 1
    assert model.config.get("input", "rgb") == change.get("input", "rgb")


def sample_generators(sample_root):
    return generator_folders(sample_root / "ddpm-cifar10-32", sample_root / "generators32")


def pooled_epoch(train, recipe, sample_root, epoch=1):
    pool, source_of = training_pool(train, recipe, sample_generators(sample_root), progress=False)
    return pool.subset(epoch_rows(source_of, recipe, epoch))


def test_pooled_training_sets_are_balanced_whatever_the_fakes(sample_split, sample_root):
    train, _ = sample_split
    n_real = int((train.labels == REAL).sum())
    oracle = pooled_epoch(train, RECIPES["fast_oracle_gan"], sample_root)
    assert int((oracle.labels == FAKE).sum()) == int((oracle.labels == REAL).sum()) == n_real
    assert {s.split("/")[0] for s in oracle.sources if not s.startswith("train/")} == {"fake"}   # gan-small's files
    made = pooled_epoch(train, replace(RECIPES["fast"], train_fakes=("cifake", "resample")), sample_root)
    assert len(made) == 4 * n_real and int((made.labels == FAKE).sum()) == 2 * n_real     # reals oversampled
    pool, source_of = training_pool(train, RECIPES["fast"])
    assert pool is train and np.array_equal(epoch_rows(source_of, RECIPES["fast"], 1), np.arange(len(train)))


def test_balanced_sources_get_their_share_of_every_epoch(sample_split, sample_root):
    train, _ = sample_split
    n_real = int((train.labels == REAL).sum())
    recipe = replace(RECIPES["fast"], train_fakes=("cifake", "generator:gan-small:all", "generator:ddpm-retrained"),
                     balance="sources", fake_shares=(2, 1, 1))
    pool, source_of = training_pool(train, recipe, sample_generators(sample_root), progress=False)
    assert np.bincount(source_of[source_of >= 0]).tolist() == [n_real, 20, 20]    # all of gan-small, half of ddpm
    epochs = [epoch_rows(source_of, recipe, epoch) for epoch in (1, 2)]
    for rows in epochs:
        counted = np.bincount(source_of[rows] + 1, minlength=4)                    # reals, then each source
        assert counted.tolist() == [n_real, n_real // 2, n_real // 4, n_real // 4]
    assert not np.array_equal(epochs[0], epochs[1])                                 # redrawn each epoch
    assert np.array_equal(epochs[0], epoch_rows(source_of, recipe, 1))              # seeded
    assert source_counts([0.5, 0.25, 0.25], 7).sum() == 7 and source_counts([1 / 3] * 3, 10).tolist() == [4, 3, 3]


def test_a_user_folder_is_a_source_of_its_own(sample_split, tmp_path):
    train, _ = sample_split
    (tmp_path / "run").mkdir()
    for i, image in enumerate(train.images[:6]):
        Image.fromarray(image.permute(1, 2, 0).numpy()).resize((64, 64)).save(tmp_path / "run" / f"{i}.png")
    (tmp_path / "run" / "broken.jpg").write_bytes(b"not an image")
    recipe = replace(RECIPES["fast"], train_fakes=("cifake", f"folder:{tmp_path}"), balance="sources")
    pool, source_of = training_pool(train, recipe, progress=False)
    mine = pool.subset(source_of == 1)
    assert len(mine) == 6 and (mine.labels == FAKE).all() and [Path(s).name for s, _ in mine.report.skipped] == [
        "broken.jpg"]


def test_recipes_refuse_unknown_transfer_options():
    for change, message in ((dict(input="fft"), "input must be one of"), (dict(patch_shuffle=5), "patch_shuffle"),
                            (dict(train_fakes=("diffusion",)), "train_fakes"), (dict(train_fakes=()), "train_fakes"),
                            (dict(colour_jitter=1.5), "colour_jitter")):
        with pytest.raises(ProjectError, match=message):
            replace(RECIPES["fast"], **change)
