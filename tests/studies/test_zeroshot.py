"""studies/zeroshot.py: the score follows from its model (the patch mixture, the own flow) and is deterministic; P(real)
keeps the score's order; the fit is cached; the scorer reads folders and refuses one without images in one line."""
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from classes import load_cifake
from realfake import REAL, project
from realfake.data.splits import split_train_val
from realfake.models import generators
from realfake.project import ProjectError
from realfake.studies import zeroshot
from realfake.training import own_generators

SMALL = dict(components=2, fit_images=120, max_iter=20)


@pytest.fixture(scope="module")
def splits(sample_root):
    return split_train_val(load_cifake(sample_root / "CIFAKE", "train", verbose=False))


@pytest.fixture(scope="module")
def detector(splits):
    train, _ = splits
    return zeroshot.fit_detector(train.images[train.labels == REAL], seed=0, settings=SMALL)


def test_an_image_of_one_patch_repeated_scores_that_patch(detector, splits):
    patch = splits[0].images[0, :, :8, :8]
    tiled = patch.repeat(1, 4, 4)[None]                                  # 3 x 32 x 32: the same 8 x 8 block 16 times
    alone = detector.model.score_samples(patch.reshape(1, -1).numpy() / 255)
    assert zeroshot.patches(tiled).shape == (1, 16, 192)
    assert np.allclose(detector.likelihood(tiled), alone)
    line = detector.line[0] + detector.line[1] * zeroshot.png_bytes(tiled)
    assert np.allclose(detector.score(tiled), (alone - line) / detector.spread)


def test_the_fit_and_the_score_are_deterministic(detector, splits):
    train, val = splits
    again = zeroshot.fit_detector(train.images[train.labels == REAL], seed=0, settings=SMALL)
    assert np.array_equal(detector.score(val.images[:50]), again.score(val.images[:50]))
    two_sided = zeroshot.Detector(detector.model, detector.line, detector.spread, "two-sided")
    assert np.allclose(two_sided.score(val.images[:50]), -np.abs(detector.score(val.images[:50])))
    with pytest.raises(ProjectError, match="unknown zero-shot score"):
        zeroshot.Detector(detector.model, score_kind="sideways")


def test_p_real_keeps_the_order_of_the_score_and_the_threshold_comes_from_validation(detector, splits):
    from dataclasses import replace
    _, val = splits
    calibrated = zeroshot.calibrate(replace(detector), val)
    score, p = calibrated.score(val.images), calibrated.p_real(val.images)
    assert calibrated.logistic[0] > 0 and np.all(np.diff(p[np.argsort(score)]) >= 0) and 0 < p.min() <= p.max() < 1
    flipped = replace(val, labels=1 - val.labels)                          # its fakes score above its reals
    with pytest.raises(ProjectError, match="ranks this validation split's fakes above its reals"):
        zeroshot.calibrate(replace(detector), flipped)


def test_the_fit_is_kept_and_read_back(splits, tmp_path, monkeypatch):
    train, val = splits
    first = zeroshot.detector_for(train, val, settings=SMALL, cache=tmp_path)
    monkeypatch.setattr(zeroshot, "fit_detector", lambda *a, **k: pytest.fail("fitted again despite the cache"))
    again = zeroshot.detector_for(train, val, score_kind="two-sided", settings=SMALL, cache=tmp_path)
    assert len(list(tmp_path.iterdir())) == 1 and again.score_kind == "two-sided"
    assert first.facts["fit images"] == SMALL["fit_images"] and first.facts["fit seconds"] > 0


def test_the_scorer_reads_folders_and_refuses_one_without_images(sample_root, tmp_path):
    (tmp_path / "empty").mkdir()
    run = lambda *args: subprocess.run([sys.executable, "code/zeroshot.py", "--sample", *args], capture_output=True,
                                       text=True, timeout=600, cwd=project.REPO_ROOT)
    result = run(str(tmp_path / "empty"))
    assert result.returncode == 1 and result.stderr.strip().count("\n") == 0
    assert result.stderr.startswith("error: no image found in") and "Traceback" not in result.stderr
    mine = tmp_path / "mine"
    mine.mkdir()
    for i in range(3):
        Image.fromarray(np.full((48, 40, 3), 60 * i, np.uint8)).save(mine / f"{i}.png")
    (mine / "broken.jpg").write_bytes(b"not an image")
    result = run(str(mine), "--csv", str(tmp_path / "scores.csv"))
    assert result.returncode == 1 and "3 images scored" in result.stdout and "broken.jpg" in result.stderr
    assert (tmp_path / "scores.csv").read_text().count("\n") == 4


def test_the_flow_detector_scores_with_the_projects_own_flow(splits, tmp_path, monkeypatch):
    train, val = splits
    reals = train.images[train.labels == REAL]
    tiny = dict(steps=3, batch_size=8, lr=1e-3, width=8)
    folder = own_generators.own_generator("flow", reals, settings=tiny, samples=4, root=tmp_path, progress=False)
    monkeypatch.setattr(zeroshot, "own_generator", lambda name, images: folder)
    detector = zeroshot.fit_detector(reals, seed=0, settings=SMALL, model="flow")
    flow = generators.Flow(8)
    flow.load_state_dict(torch.load(folder / "model.pt", weights_only=True))
    with torch.inference_mode():
        expected = flow.eval().log_likelihood(val.images[:20]).double().numpy()
    assert np.allclose(detector.likelihood(val.images[:20]), expected)
    assert np.array_equal(detector.score(val.images[:20]), detector.score(val.images[:20]))
    with pytest.raises(ProjectError, match="unknown zero-shot model 'pixelcnn'"):
        zeroshot.detector_for(train, val, model="pixelcnn")
