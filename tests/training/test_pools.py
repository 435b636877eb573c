"""training/pools.py: every recipe option trains on the sample data, pooled and balanced sources get their shares,
and a user's folder is a source of its own."""
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from classes import load_cifake
from realfake import FAKE, REAL
from realfake.data.datasets import generator_folders
from realfake.data.splits import split_train_val
from realfake.project import ProjectError
from realfake.training.loop import train_model
from realfake.training.pools import epoch_rows, source_counts, training_pool
from realfake.training.recipes import RECIPES


@pytest.fixture(scope="module")
def sample_split(sample_root):
    return split_train_val(load_cifake(sample_root / "CIFAKE", "train", verbose=False))


def sample_generators(sample_root):
    return generator_folders(sample_root / "ddpm-cifar10-32", sample_root / "generators32")


def pooled_epoch(train, recipe, sample_root, epoch=1):
    pool, source_of = training_pool(train, recipe, sample_generators(sample_root), progress=False)
    return pool.subset(epoch_rows(source_of, recipe, epoch))


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
