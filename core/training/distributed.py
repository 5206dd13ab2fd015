"""More than one process (GPUs or machines): the process group of a ``torchrun`` launch.

``torchrun --nproc-per-node N $(which rooftop) train ...`` starts N copies of the command with
``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` in their
environment. :func:`launch_env` reads them (None for a plain command, and for a launch of one
process, which runs exactly as a plain command); :func:`session` joins the group for the length
of a run (NCCL on GPUs, one GPU per process, ``cuda:LOCAL_RANK``; gloo on the CPU) and leaves it
afterwards. Without a launch every function here is a no-op for one process, so the training
loop and prediction call them unconditionally.

A collective waits at most :func:`timeout_seconds` (``ROOFTOP_DIST_TIMEOUT``, default
:data:`DEFAULT_TIMEOUT_SECONDS`) for the other ranks: a rank that hangs makes the others fail
with an error instead of hanging for ever (a rank that dies closes its connections, which the
others see at once, and torchrun's agent stops the rest of the group).

Stopping: every rank calls :func:`agree` at the top of every batch with its own stop flag and
clock; the all_reduce (MAX) gives every rank the same answer, so all ranks stop on the same batch
and none waits in a collective that another rank will never join.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from core.errors import ConfigError

T = TypeVar("T")
#: Environment variable: seconds a collective waits for the other ranks.
TIMEOUT_ENV = "ROOFTOP_DIST_TIMEOUT"
DEFAULT_TIMEOUT_SECONDS = 300.0


@dataclass(frozen=True)
class Launch:
    """Where this process stands in a torchrun launch."""

    world_size: int
    rank: int
    local_rank: int


def launch_env(environ: Mapping[str, str] | None = None) -> Launch | None:
    """The launch this process belongs to (torchrun's ``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``),
    or None without one or for a launch of a single process."""
    env = os.environ if environ is None else environ
    if "WORLD_SIZE" not in env or "RANK" not in env:
        return None
    try:
        world, rank = int(env["WORLD_SIZE"]), int(env["RANK"])
        local = int(env.get("LOCAL_RANK", rank))
    except ValueError:
        raise ConfigError(
            f"WORLD_SIZE, RANK and LOCAL_RANK must be whole numbers, got "
            f"{env.get('WORLD_SIZE')!r}, {env.get('RANK')!r}, "
            f"{env.get('LOCAL_RANK')!r}"
        ) from None
    if world < 2:
        return None
    if not 0 <= rank < world or local < 0:
        raise ConfigError(f"RANK {rank} / LOCAL_RANK {local} do not fit WORLD_SIZE {world}")
    return Launch(world, rank, local)


def timeout_seconds(environ: Mapping[str, str] | None = None) -> float:
    """Seconds a collective waits for the other ranks (``ROOFTOP_DIST_TIMEOUT``)."""
    env = os.environ if environ is None else environ
    text = env.get(TIMEOUT_ENV, "").strip()
    if not text:
        return DEFAULT_TIMEOUT_SECONDS
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ConfigError(f"{TIMEOUT_ENV} must be a number of seconds > 0, got {text!r}")
    return value


def is_active() -> bool:
    """Whether this process is in a process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    return dist.get_world_size() if is_active() else 1


def rank() -> int:
    return dist.get_rank() if is_active() else 0


def is_main() -> bool:
    """Rank 0 (or a single process): the one that validates, logs and writes."""
    return rank() == 0


def device_for(device: torch.device, launch: Launch | None) -> torch.device:
    """``cuda`` becomes ``cuda:LOCAL_RANK`` under a launch (one GPU per process)."""
    if launch is None or device.type != "cuda" or device.index is not None:
        return device
    count = torch.cuda.device_count()
    if launch.local_rank >= count:
        raise ConfigError(
            f"LOCAL_RANK {launch.local_rank} needs GPU {launch.local_rank}, but "
            f"this machine has {count}: start at most {count} processes per node "
            "(--nproc-per-node)"
        )
    return torch.device("cuda", launch.local_rank)


@contextmanager
def session(device: torch.device, backend: str | None = None) -> Iterator[torch.device]:
    """Join the launch's process group for the block (when launched and not in one already) and
    yield the device this process runs on; the group is left at the end. ``backend``: None for
    NCCL on a GPU and gloo on the CPU, or a name (prediction only gathers small objects: gloo)."""
    launch = launch_env()
    if launch is not None and not dist.is_available():
        raise ConfigError("this PyTorch has no torch.distributed: cannot run under torchrun")
    if launch is None or dist.is_initialized():
        yield device_for(device, launch)
        return
    device = device_for(device, launch)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    chosen = backend or ("nccl" if device.type == "cuda" else "gloo")
    dist.init_process_group(chosen, timeout=datetime.timedelta(seconds=timeout_seconds()))
    try:
        yield device
        # Leave together: a rank that tore its group down while another still wrote its
        # checkpoint could abort in gloo's threads at exit ("terminate called without an
        # active exception"). Not after an error: the others may never arrive.
        dist.barrier()
    finally:
        dist.destroy_process_group()


def _collective_device() -> torch.device:
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def agree(*values: float) -> tuple[float, ...]:
    """The largest of every rank's ``values`` (one all_reduce, MAX), the same on every rank; the
    values as they are for one process."""
    if not is_active():
        return tuple(float(v) for v in values)
    tensor = torch.tensor(
        [float(v) for v in values], dtype=torch.float64, device=_collective_device()
    )
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return tuple(tensor.tolist())


def agree_stop(flag: bool) -> bool:
    """True on every rank when any rank's ``flag`` is True (all stop on the same batch)."""
    return bool(agree(1.0 if flag else 0.0)[0])


def total(*values: float) -> tuple[float, ...]:
    """The sums of every rank's ``values`` (one all_reduce, SUM)."""
    if not is_active():
        return tuple(float(v) for v in values)
    tensor = torch.tensor(
        [float(v) for v in values], dtype=torch.float64, device=_collective_device()
    )
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tuple(tensor.tolist())


def barrier() -> None:
    if is_active():
        dist.barrier()


def shard(items: Sequence[T]) -> list[T]:
    """This rank's share of ``items``: items ``rank, rank + N, rank + 2N, ...``."""
    return list(items[rank() :: world_size()])


def gather(obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order, on every rank (``[obj]`` for one process)."""
    if not is_active():
        return [obj]
    found: list[Any] = [None] * world_size()
    dist.all_gather_object(found, obj)
    return found


def from_main(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank."""
    if not is_active():
        return obj
    box = [obj if is_main() else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def sync_batch_norm(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """Batch norm computed over the whole global batch on GPUs (``SyncBatchNorm``); on the CPU
    PyTorch has no SyncBatchNorm, so each process normalises its own batch (and DDP gives every
    rank rank 0's running statistics). SyncBatchNorm's state dict has the keys of plain batch
    norm, so the checkpoint loads into the plain architecture (and on one process)."""
    if not is_active() or device.type == "cpu":
        return model
    return torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)


def wrap(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``model`` in DistributedDataParallel (gradients averaged over the ranks in backward), or
    ``model`` itself for one process."""
    if not is_active():
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)
