"""Training on many processes (training/distributed.py): the world torchrun describes, the batch slices, and a real
two-process gloo run of train.py against one process on the sample data."""
import json
import os
import subprocess
import sys

import pytest
import torch

from realfake.project import REPO_ROOT, ProjectError
from realfake.training import distributed

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]


TRAIN = ["code/train.py", "--sample", "--recipe", "fast", "-ep", "2", "--seed", "0"]


def test_world_from_environment():
    assert distributed.world_from_environment({}) == distributed.SINGLE
    world = distributed.world_from_environment({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1",
                                                "MASTER_ADDR": "localhost", "MASTER_PORT": "29500"})
    assert (world.rank, world.size, world.local_rank, world.main) == (1, 2, 1, False)
    assert distributed.world_from_environment({"RANK": "0", "WORLD_SIZE": "1"}).main


@pytest.mark.parametrize("environ, says", [
    ({"RANK": "0", "WORLD_SIZE": "two"}, "whole numbers"),
    ({"RANK": "2", "WORLD_SIZE": "2", "MASTER_ADDR": "localhost", "MASTER_PORT": "1"}, "outside a world of 2"),
    ({"RANK": "0", "WORLD_SIZE": "2", "MASTER_PORT": "29500"}, "MASTER_ADDR not set"),
])
def test_a_bad_world_is_refused_in_one_line(environ, says):
    with pytest.raises(ProjectError, match=says) as refused:
        distributed.world_from_environment(environ)
    assert "\n" not in str(refused.value) and "torchrun" in str(refused.value)


def test_many_processes_refuse_a_device_without_a_backend(monkeypatch):
    monkeypatch.setattr(distributed, "world_from_environment", lambda: distributed.World(0, 2))
    with pytest.raises(ProjectError, match="not mps"):
        distributed.start("mps")


def test_slices_of_a_batch_are_disjoint_and_cover_it():
    batch = torch.arange(7)
    slices = [distributed.World(rank, 2).shard(batch) for rank in (0, 1)]
    assert torch.equal(torch.cat(slices), batch) and [len(s) for s in slices] == [4, 3]
    assert distributed.SINGLE.shard(batch) is batch


def test_a_bad_world_ends_train_py_in_one_line(sample_root):
    environ = {**os.environ, "RANK": "0", "WORLD_SIZE": "2"}
    environ.pop("MASTER_ADDR", None)
    result = subprocess.run([sys.executable, *TRAIN], cwd=REPO_ROOT, env=environ, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0 and "MASTER_ADDR" in result.stderr


def test_two_processes_train_like_one(sample_root, tmp_path):
    """torchrun with two gloo processes: the same recipe and seed as one process, validation AUROC within noise,
    and rank 0 alone writes one model file and one sidecar."""
    one, two = tmp_path / "one", tmp_path / "two"
    single = subprocess.run([sys.executable, *TRAIN, "-mf", str(one / "model.pth")], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=600)
    assert single.returncode == 0, single.stderr
    environ = {**os.environ, "OMP_NUM_THREADS": "1"}
    pair = subprocess.run([*TORCHRUN, *TRAIN, "-mf", str(two / "model.pth")], cwd=REPO_ROOT, env=environ,
                          capture_output=True, text=True, timeout=600)
    assert pair.returncode == 0, pair.stderr[-3000:]
    assert sorted(path.name for path in two.iterdir()) == ["model.json", "model.pth"]
    assert pair.stdout.count("saved ") == 1 and pair.stdout.count("epoch 2/2") == 1    # rank 0 alone reports
    sidecars = [json.loads((folder / "model.json").read_text()) for folder in (one, two)]
    assert [s["processes"] for s in sidecars] == [1, 2]
    assert sidecars[0]["dataset"] == sidecars[1]["dataset"]                # the same split
    assert sidecars[0]["n_val"] == sidecars[1]["n_val"] and sidecars[0]["batch_size"] == sidecars[1]["batch_size"]
    # Noise: about 200 validation images give AUROC a standard error near 0.03; the slices' BatchNorm statistics
    # and the order of floating-point sums differ, so the two runs are close, not identical.
    aurocs = [s["validation"]["auroc"] for s in sidecars]
    assert abs(aurocs[0] - aurocs[1]) < 0.08, aurocs
    assert min(aurocs) > 0.6, aurocs                                       # both learnt something
