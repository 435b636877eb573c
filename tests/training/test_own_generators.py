"""training/own_generators.py: each generator the project trains learns, samples uint8 32 x 32 images
deterministically, saves them as CIFAKE's JPEGs and is found again in its cache; a recipe trains on them as the source own:NAME."""
import json
from dataclasses import replace

import pytest
import torch
from PIL import Image

from classes import load_cifake
from realfake import FAKE, REAL
from realfake.data.splits import split_train_val
from realfake.models import generators
from realfake.project import ProjectError
from realfake.training import own_generators
from realfake.training.pools import training_pool
from realfake.training.recipes import RECIPES

SHORT = {"gan": dict(steps=6, batch_size=16, lr=2e-4, width=8), "vae": dict(steps=6, batch_size=16, lr=1e-3, width=8),
         "flow": dict(steps=6, batch_size=16, lr=1e-3, width=8)}


@pytest.fixture(scope="module")
def reals(sample_root):
    train = load_cifake(sample_root / "CIFAKE", "train", verbose=False)
    return train.images[train.labels == REAL][:200]


@pytest.mark.parametrize("name", list(generators.MODELS))
def test_each_generator_trains_samples_deterministically_and_is_cached(name, reals, tmp_path, monkeypatch):
    train = lambda: own_generators.train_generator(name, reals, seed=1, settings=SHORT[name], progress=False)
    first, again = own_generators.draw(train(), 20, seed=1), own_generators.draw(train(), 20, seed=1)
    assert first.shape == (20, 3, 32, 32) and first.dtype == torch.uint8 and torch.equal(first, again)
    assert first.float().std() > 1                                        # not one flat colour
    folder = own_generators.own_generator(name, reals, settings=SHORT[name], samples=12, root=tmp_path, progress=False)
    files = sorted((folder / "fake").iterdir())
    assert len(files) == 12 and all(Image.open(f).format == "JPEG" and Image.open(f).size == (32, 32) for f in files)
    facts = json.loads((folder / "settings.json").read_text())
    assert facts["samples"] == 12 and facts["settings"] == SHORT[name] and (folder / "model.pt").is_file()
    monkeypatch.setattr(own_generators, "train_generator",
                        lambda *a, **k: pytest.fail("trained again despite the cache"))
    assert own_generators.own_generator(name, reals, settings=SHORT[name], samples=12, root=tmp_path) == folder
    other = own_generators.own_folder(name, reals[:100], settings=SHORT[name], samples=12, root=tmp_path)
    assert other != folder                                                 # other training images, another folder


def test_an_own_generator_not_made_is_named_with_its_command_and_its_audit_skipped(reals, tmp_path, capsys):
    """reproduce.py audits the own generators it finds; each one missing is a line in the report, never a silent gap."""
    from realfake.publishing.reporting import Report
    from realfake.publishing.sections import audits
    missing = own_generators.not_made(own_generators.made_folders(reals, tmp_path), sample=True)
    assert len(missing) == len(generators.MODELS) and "python code/owngen.py --only gan --sample" in missing[0]
    made = own_generators.own_folder("vae", reals, root=tmp_path)
    made.mkdir(parents=True)
    (made / "settings.json").write_text("{}")
    assert own_generators.made_folders(reals, tmp_path) == {"vae": made}
    missing = own_generators.not_made(own_generators.made_folders(reals, tmp_path))
    assert [line.split()[1] for line in missing] == ["gan", "flow"] and "--sample" not in missing[0]
    report = Report(tmp_path / "out", "")
    audits(report, {}, missing)
    text = "\n".join(report.lines)
    assert text.count("- skipped: own ") == 2 and capsys.readouterr().out.count("skipped the audit of own") == 2


def test_the_flow_is_invertible_and_its_likelihood_learns(reals):
    torch.manual_seed(0)
    flow = generators.Flow(width=8)
    for layer in [*flow.before, *flow.after]:                              # away from the identity it starts as
        torch.nn.init.normal_(layer.net[-1].weight, std=0.05)
    z = torch.randn(4, 12, 16, 16)
    back = z
    for layer in flow.after:
        back, _ = layer(back)
    for layer in reversed(flow.after):
        back, _ = layer(back, reverse=True)
    assert torch.allclose(back, z, atol=1e-4)
    generator = torch.Generator().manual_seed(0)
    before = generators.Flow(8).loss(reals[:64], generator).item()
    trained = own_generators.train_generator("flow", reals, settings=dict(SHORT["flow"], steps=30), progress=False)
    assert trained.loss(reals[:64], torch.Generator().manual_seed(0)).item() < before - 0.2   # bits per dimension


def test_steps_and_samples_are_capped_by_the_training_images():
    assert own_generators.settings_for("gan", 100)["steps"] == -(-own_generators.MAX_PASSES * 100 // 64)
    assert own_generators.settings_for("gan", 10 ** 6) == own_generators.OWN_GENERATORS["gan"]
    with pytest.raises(ProjectError, match="unknown own generator 'pixelcnn'"):
        own_generators.own_generator("pixelcnn", torch.zeros(4, 3, 32, 32, dtype=torch.uint8))


def test_a_recipe_trains_on_own_generators(sample_root, monkeypatch, tmp_path):
    train, _ = split_train_val(load_cifake(sample_root / "CIFAKE", "train", verbose=False))
    monkeypatch.setattr(own_generators, "settings_for", lambda name, n: SHORT[name])
    monkeypatch.setattr(own_generators, "OWN_DIR", tmp_path)
    monkeypatch.setattr(own_generators.own_generator, "__defaults__", (0, None, 30, tmp_path, False))
    recipe = replace(RECIPES["fast"], train_fakes=("cifake", "own:gan", "own:vae"), balance="sources")
    pool, source_of = training_pool(train, recipe, progress=False)
    assert [(source_of == k).sum() for k in (1, 2)] == [30, 30] and (pool.labels[source_of >= 0] == FAKE).all()
    with pytest.raises(ProjectError, match="train_fakes"):
        replace(RECIPES["fast"], train_fakes=("own:pixelcnn",))
