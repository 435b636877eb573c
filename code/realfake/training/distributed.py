"""Training on many processes with PyTorch's DistributedDataParallel, started by torchrun:

    torchrun --standalone --nproc_per_node=N code/train.py ...                   # N processes on one machine
    torchrun --nnodes=M --nproc_per_node=N --rdzv-backend=c10d --rdzv-endpoint=HOST:PORT code/train.py ...

Every process loads the same data, draws the same seeded split and batch order, and trains on its own disjoint
slice of each global batch (the recipe's batch size is the global one); DDP averages the gradients, weighted so
that they equal one process's on the whole batch. BatchNorm statistics are each process's own slice's (as usual
with DDP). Rank 0 alone validates, calibrates, prints and writes. Without torchrun nothing here is used.
"""
import datetime
import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist

from realfake.project import ProjectError

LAUNCH_HINT = "start it with torchrun (e.g. torchrun --standalone --nproc_per_node=2 code/train.py ...)"
TIMEOUT = datetime.timedelta(minutes=10)    # how long a process waits for the others (rendezvous, each collective)


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self):
        """The process that validates, prints and writes."""
        return self.rank == 0

    def shard(self, x):
        """This process's slice of a global batch (contiguous, near-equal; a slice may be empty at the tail)."""
        return x.tensor_split(self.size)[self.rank] if self.size > 1 else x

    def total(self, tensor):
        """`tensor` summed over the processes (in place)."""
        if self.size > 1:
            dist.all_reduce(tensor)
        return tensor

    def device(self, device):
        """One CUDA device per process on each machine; other devices as given."""
        device = torch.device(device)
        return torch.device("cuda", self.local_rank) if device.type == "cuda" and self.size > 1 else device


SINGLE = World()


def world_from_environment(environ=None):
    """The World torchrun describes in the environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT),
    or SINGLE without it. A set-up no process group could start from is refused in one line."""
    environ = os.environ if environ is None else environ
    if "WORLD_SIZE" not in environ and "RANK" not in environ:
        return SINGLE
    try:
        rank, size = int(environ.get("RANK", "")), int(environ.get("WORLD_SIZE", ""))
        local_rank = int(environ.get("LOCAL_RANK", rank))
    except ValueError:
        raise ProjectError(f"RANK ({environ.get('RANK')!r}) and WORLD_SIZE ({environ.get('WORLD_SIZE')!r}) must be "
                           f"whole numbers: {LAUNCH_HINT}") from None
    if not 0 <= rank < size:
        raise ProjectError(f"RANK {rank} is outside a world of {size} process(es): {LAUNCH_HINT}")
    missing = [name for name in ("MASTER_ADDR", "MASTER_PORT") if size > 1 and not environ.get(name)]
    if missing:
        raise ProjectError(f"{' and '.join(missing)} not set for a world of {size} processes: {LAUNCH_HINT}")
    return World(rank, size, local_rank)


def start(device):
    """Join the process group torchrun set up (gloo on CPU, NCCL on CUDA); every process but the main one prints
    nothing from here on (errors still reach stderr). Returns (World, this process's device)."""
    world = world_from_environment()
    device = world.device(device)
    if world.size > 1:
        if device.type not in ("cpu", "cuda"):
            raise ProjectError(f"torchrun training runs on CPU (gloo) or CUDA (NCCL), not {device.type}: add "
                               f"--device cpu, or train in one process")
        if device.type == "cuda":
            torch.cuda.set_device(device)
        backend = "nccl" if device.type == "cuda" else "gloo"
        try:
            dist.init_process_group(backend, timeout=TIMEOUT)
        except (RuntimeError, ValueError, dist.DistStoreError) as e:
            raise ProjectError(f"process {world.rank} of {world.size} could not join the group ({backend}): "
                               f"{str(e).splitlines()[0]}") from None
        if not world.main:
            sys.stdout = open(os.devnull, "w")
    return world, device


@contextmanager
def joined(device):
    """start(), and leaving the process group at the end, however it ends."""
    world, device = start(device)
    try:
        yield world, device
    finally:
        if world.size > 1 and dist.is_initialized():
            dist.destroy_process_group()


def wrap(model, world):
    """The model as DDP trains it (the model itself in one process)."""
    if world.size == 1:
        return model
    device_ids = [model_device(model).index] if model_device(model).type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=device_ids)


def model_device(model):
    return next(model.parameters()).device
