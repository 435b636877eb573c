"""studies/variants.py: the leave-one-out benchmark never trains on what it holds out, and a study keeps what it
measured and refuses unknown variants."""
import json
from dataclasses import replace

import pytest
from conftest import run

from realfake.studies import variants
from realfake.training import recipes


def test_leave_out_never_trains_on_the_held_out_generator(sample_root, monkeypatch):
    data = variants.load_data(True)
    assert variants.held_out_sets("lofo", list(data["generator_dirs"]))["GAN"] == ["gan-mix", "gan-small"]
    recipe = variants.leave_out_recipe("fast balanced, no CIFAKE", ["glow", "gan-mix"], 0)
    assert recipe.train_fakes == ("generator:glow:all", "generator:gan-mix:all") and recipe.fake_shares == (1.0, 1.0)
    strong = variants.leave_out_recipe("strong balanced, 4 epochs", ["glow"], 1)
    assert (strong.epochs, strong.test_shift, strong.seed, strong.fake_shares) == (4, 0, 1, (1.0, 1.0))
    assert variants.LEAVE_OUT["strong balanced, 4 epochs"][1] == "strong"
    leaky = replace(recipes.RECIPES["fast"], train_fakes=("cifake", "generator:glow:all"))
    monkeypatch.setattr(variants, "leave_out_recipe", lambda name, train_on, seed: leaky)
    with pytest.raises(AssertionError, match="images of the held-out glow are in its training set"):
        variants.run_benchmark("logo", "fast balanced", "glow", ["glow"], 0, data, "cpu")


def test_variants_keeps_what_it_measured_and_refuses_unknown_names(sample_root, tmp_path, monkeypatch):
    trained = []
    monkeypatch.setattr(variants, "load_data", lambda sample: {})
    monkeypatch.setattr(variants, "run_variant", lambda name, seed, data, device: trained.append(
        (name, seed)) or {"variant": name, "seed": seed})
    out = tmp_path / "variants.json"
    variants.run_study("changes", out, ["fast"], seeds=1, sample=True)
    variants.run_study("changes", out, ["fast", "fast_gray"], seeds=2, sample=True)
    assert trained == [("fast", 0), ("fast", 1), ("fast_gray", 0), ("fast_gray", 1)]      # seed 0 of fast kept
    variants.run_study("changes", out, ["fast_gray"], seeds=1, redo=True, sample=True)
    assert trained[-1] == ("fast_gray", 0) and len(json.loads(out.read_text())["runs"]) == 4   # replaced, not added
    bad = run(["variants.py", "--sample", "--only", "fast_fft"], ".")
    assert bad.returncode == 1 and "unknown variant(s) fast_fft" in bad.stderr and "Traceback" not in bad.stderr
