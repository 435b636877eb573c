"""Shared fixtures: code/ on the import path, generated sample data, and a quickly trained sample model."""
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "code"))     # scripts and notebooks import `classes` from code/

import torch  # noqa: E402

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def sample_root():
    """The generated sample data, written where `--sample` looks for it (config.json's sample_dir)."""
    from make_sample_data import make_sample_data
    return make_sample_data()


@pytest.fixture(scope="session")
def sample_model(sample_root, tmp_path_factory):
    """A CNN trained for a few epochs on the sample CIFAKE, saved like train.py saves: (path, history)."""
    from classes import load_cifake, save_model
    from train import split_train_val, train_model
    train, val = split_train_val(load_cifake(sample_root / "CIFAKE", "train", verbose=False))
    model, history = train_model(train, val, epochs=6, lr=0.01, progress=False)
    path = tmp_path_factory.mktemp("models") / "sample_model.pth"
    save_model(model, path, history["threshold"], {"history": history["epochs"]})
    return path, history
