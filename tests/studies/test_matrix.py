"""The transfer matrix (code/matrix.py) on the sample data: every cell comes from a recorded run, the table and the
figure from the cells, and tiny CIFAKE- and AGIRI-trained models fill their rows."""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from realfake import project
from realfake.models import checkpoints
from realfake.publishing import sections
from realfake.publishing.publish import readme_tables
from realfake.publishing.reporting import Report
from realfake.studies import matrix


@pytest.fixture(scope="module")
def sample_matrix(sample_results):
    """matrix.py --sample with two seeds for the rows it trains, as the sample results hold it (conftest.py)."""
    out = sample_results / "matrix.json"
    return out, json.loads(out.read_text())


def test_every_row_is_trained_or_loaded_and_scored_on_every_column(sample_matrix):
    _, result = sample_matrix
    runs = pd.DataFrame(result["runs"])
    for backbone in matrix.BACKBONES:
        for trained_on in matrix.TRAINING_SETS:
            row = runs[(runs["backbone"] == backbone) & (runs["trained on"] == trained_on)]
            shipped = matrix.SHIPPED_ROWS.get((backbone, trained_on))
            if shipped:                       # a shipped model: one run, the model file named
                assert len(row) == 1 and row.iloc[0]["model"] == f"{shipped}.pth"
            else:                             # trained here, once per seed (each run is cheap on the sample)
                assert sorted(row["seed"]) == [0, 1] and set(row["model"]) == {"trained by matrix.py"}
            for column in matrix.COLUMNS:     # a CIFAKE-trained and an AGIRI-trained model fill their rows
                assert row[column].between(0, 1).all(), (backbone, trained_on, column)
    held = json.loads((project.model_file("agiri_model", True)).with_suffix(".json").read_text())["held_out"]["files"]
    sets = result["scoring sets"]
    assert sets["agiri"]["n_real"] + sets["agiri"]["n_fake"] == len(held)        # agiri_model's own held-out fold
    assert sets["cifar100"]["n_fake"] == 0 and sets["cifake"]["n_fake"] > 0
    assert {"strong_model", "pretrained_model"} == set(result["cifake test"])


def test_the_cells_table_and_figure_come_from_the_runs(sample_matrix, tmp_path):
    path, result = sample_matrix
    rows = matrix.summary(result)
    runs = pd.DataFrame(result["runs"])
    for label, row in rows.items():
        mine = runs[(runs["backbone"] == row["backbone"]) & (runs["trained on"] == row["trained on"])]
        for column in matrix.COLUMNS:
            assert row[column] == pytest.approx(mine[column].mean())
            assert (row[f"{column} sd"] is None) == (len(mine) == 1)
    text = matrix.table(rows)
    trained_here = "scratch, trained on AGIRI"
    cell = text.loc[trained_here, "AGIRI held-out AUROC"]
    mean, sd = rows[trained_here]["AGIRI held-out AUROC"], rows[trained_here]["AGIRI held-out AUROC sd"]
    assert cell == f"**{mean:.3f} ± {sd:.3f}**"                                 # in-domain, two seeds
    assert "±" not in text.loc["scratch, trained on CIFAKE", "CIFAKE test AUROC"]   # one seed: no spread claimed
    assert not text.loc["scratch, trained on CIFAKE", "AGIRI held-out AUROC"].startswith("**")
    report = Report(tmp_path, "")
    sections.matrix(report, path)
    assert (tmp_path / "matrix.png").stat().st_size > 10_000
    assert report.results["matrix"]["rows"] == rows
    markdown = readme_tables({"cifake_test": {"models": {}}, "matrix": report.results["matrix"]})["matrix"]
    assert all(label in markdown for label in rows) and cell in markdown


def test_upsampled_images_get_their_own_cache_keys(sample_root):
    from classes import load_cifake
    data = load_cifake(sample_root / "CIFAKE", "test", verbose=False).subset(np.arange(4))
    big = matrix.upsampled(data, 64)
    assert big.images.shape[-2:] == (64, 64) and big.images.dtype == data.images.dtype
    from realfake.models.backbone import pixel_digests            # the feature cache's keys: the pixels themselves
    assert not np.isin(pixel_digests(big.images), pixel_digests(data.images)).any()
    assert matrix.upsampled(big, 64) is big


def test_a_missing_shipped_model_is_refused_in_one_line(tmp_path, monkeypatch):
    from realfake.project import ProjectError
    monkeypatch.setattr(matrix, "model_file", lambda name, sample=False: tmp_path / f"{name}.pth")
    with pytest.raises(ProjectError, match="missing .*strong_model.pth.*--arch strong --recipe strong -mf strong_mod"):
        matrix.run_matrix(tmp_path / "m.json")


def test_keep_trained_scores_only_a_retrained_model_and_trains_nothing(sample_matrix, tmp_path, monkeypatch):
    from realfake.project import ProjectError
    path, result = sample_matrix
    out = tmp_path / "matrix.json"
    out.write_text(path.read_text())
    refuse = lambda *a, **k: pytest.fail("--keep-trained trained a row")
    monkeypatch.setattr(matrix, "train_scratch", refuse)
    monkeypatch.setattr(matrix, "train_pretrained_both", refuse)
    scored, score_row = [], matrix.score_row
    monkeypatch.setattr(matrix, "score_row", lambda *a, **k: scored.append(1) or score_row(*a, **k))
    keep = lambda: matrix.run_matrix(out, sample=True, keep_trained=True)
    keep()                                                       # nothing retrained: every run kept, nothing scored
    kept = json.loads(out.read_text())
    own = lambda runs: [{**run, "git_commit": run.get("git_commit", result["git_commit"])} for run in runs]
    assert kept["runs"] == own(result["runs"]) and kept["cifake test"] == result["cifake test"] and not scored

    read_sidecar = checkpoints.read_sidecar                           # strong_model retrained: its row scored again
    retrained = lambda p: (lambda s: dict(s, wall_seconds=s["wall_seconds"] + 1) if Path(p).stem == "strong_model"
                           else s)(read_sidecar(p))
    monkeypatch.setattr(matrix, "read_sidecar", retrained)
    keep()
    again = json.loads(out.read_text())
    changed = [run for run in again["runs"] if run not in kept["runs"]]
    assert [(run["model"], run["git_commit"]) for run in changed] == [("strong_model.pth", again["git_commit"])]
    assert len(scored) == 1 and len(again["runs"]) == len(kept["runs"])
    assert again["cifake test"]["pretrained_model"] == kept["cifake test"]["pretrained_model"]
    assert again["cifake test"]["strong_model"]["training seconds"] == kept["cifake test"]["strong_model"][
        "training seconds"] + 1

    monkeypatch.setattr(matrix, "make_sample_models", lambda paths: None)   # an unchanged model need not be on disk
    sidecar = project.model_file("pretrained_model", sample=True).with_suffix(".json")
    (tmp_path / sidecar.name).write_text(sidecar.read_text())  # its sidecar, not its weights
    model_file = project.model_file
    monkeypatch.setattr(matrix, "model_file", lambda name, sample=False: tmp_path / f"{name}.pth"
                        if name == "pretrained_model" else model_file(name, sample))
    keep()
    assert json.loads(out.read_text())["cifake test"] == again["cifake test"]
    changed = dict(again, **{"eval per class": matrix.EVAL_PER_CLASS + 1})
    out.write_text(json.dumps(changed))
    with pytest.raises(ProjectError, match="scored on other images"):
        matrix.run_matrix(out, sample=True, keep_trained=True)
    with pytest.raises(ProjectError, match="missing: run python code/matrix.py once without it"):
        matrix.run_matrix(tmp_path / "none.json", sample=True, keep_trained=True)
