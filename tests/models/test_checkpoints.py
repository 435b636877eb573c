"""models/checkpoints.py: round trips, refusals of damaged or foreign files, and writes that leave both files or
neither."""
import json
from pathlib import Path

import pytest
import torch

from classes import CIFAKE_CNN, SRMLayer
from realfake.models.checkpoints import load_model, read_sidecar, save_model
from realfake.models.networks import build_model
from realfake.project import ProjectError


def recorded_commits(node):
    """Every value stored under a "git_commit" key, at any depth of a sidecar."""
    if isinstance(node, dict):
        return [v for k, v in node.items() if k == "git_commit"] + \
            [c for v in node.values() for c in recorded_commits(v)]
    return [c for v in node for c in recorded_commits(v)] if isinstance(node, list) else []


def test_checkpoint_round_trip(tmp_path):
    model = CIFAKE_CNN(attn=True).eval()
    path = tmp_path / "m.pth"
    save_model(model, path, threshold=0.42, info={"epochs": 3})
    loaded, meta = load_model(path)
    assert isinstance(loaded.srm, SRMLayer) and meta["threshold"] == 0.42 and meta["arch_kwargs"] == {"attn": True}
    x = torch.randn(4, 3, 32, 32)
    assert torch.equal(model(x), loaded(x))
    sidecar = json.loads(path.with_suffix(".json").read_text())
    assert sidecar["attn"] is True and sidecar["epochs"] == 3 and sidecar["threshold"] == 0.42
    assert not list(tmp_path.glob("*.tmp"))


def test_damaged_and_foreign_checkpoints_are_refused(tmp_path):
    path = tmp_path / "m.pth"
    save_model(CIFAKE_CNN(), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ProjectError, match="damaged"):
        load_model(path)
    torch.save({"weights": 1}, path)
    with pytest.raises(ProjectError, match="not a checkpoint of this project"):
        load_model(path)
    save_model(CIFAKE_CNN(attn=True), path)
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["arch_kwargs"] = {"attn": False}                    # weights of the attention model
    torch.save(checkpoint, path)
    with pytest.raises(ProjectError, match="do not fit"):
        load_model(path)
    with pytest.raises(ProjectError, match="not found"):
        load_model(tmp_path / "absent.pth")
    with pytest.raises(ProjectError, match="unknown architecture"):
        build_model("transformer")


def test_checkpoint_cannot_run_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("this must never run",))
    path = tmp_path / "evil.pth"
    torch.save({"format": "x", "payload": Evil()}, path)
    with pytest.raises(ProjectError, match="damaged or not a PyTorch checkpoint"):
        load_model(path)


def test_a_str_path_saves_the_model_and_its_sidecar(tmp_path):
    path = str(tmp_path / "m.pth")                                 # as a notebook or a script passes it
    save_model(CIFAKE_CNN(), path, info={"epochs": 1})
    assert load_model(path)[1]["threshold"] == 0.5 and read_sidecar(path)["epochs"] == 1


def test_a_failed_write_leaves_neither_file(tmp_path, monkeypatch):
    path = tmp_path / "m.pth"
    with pytest.raises(TypeError):                                 # the sidecar cannot be serialised
        save_model(CIFAKE_CNN(), path, info={"bad": object()})
    assert not list(tmp_path.iterdir())
    write_bytes, written = Path.write_bytes, []

    def full_after_one_file(self, data):                           # the disk fills up after the weights
        if written:
            raise OSError("disk full")
        written.append(self)
        return write_bytes(self, data)

    monkeypatch.setattr(Path, "write_bytes", full_after_one_file)
    with pytest.raises(OSError, match="disk full"):
        save_model(CIFAKE_CNN(), path)
    assert written and not list(tmp_path.iterdir())                # no weights without a sidecar, no temporary file


def test_no_shipped_file_records_a_dirty_tree():
    """Every commit recorded under models/ (training, calibration, any other) is a clean one, so that each shipped
    number traces to code a commit pins."""
    from conftest import REPO
    files = sorted((REPO / "models").glob("*.json"))
    assert any(path.name.endswith("_model.json") for path in files)
    for path in files:
        commits = recorded_commits(json.loads(path.read_text()))
        assert commits or not path.name.endswith("_model.json"), f"{path.name} records no commit"
        dirty = [c for c in commits if str(c).endswith("-dirty")]
        assert not dirty, f"{path.name} records a dirty tree: {dirty}"
