"""Several processes through torch.distributed (`torchrun --nproc-per-node N -m secateur prune ...`).

Every rank runs the same pipeline on its share of the calibration (and evaluation) windows; each
statistic is summed over all ranks before it is used, so every rank prunes from the same numbers
and holds the same weights afterwards; rank 0 alone writes outputs and prints. Without a launcher
(no WORLD_SIZE, or 1) everything here is a no-op, and a single process computes exactly as before.
"""

from __future__ import annotations

import os

import torch


def init_from_environment(device: torch.device) -> None:
    """Join the process group a launcher (torchrun, accelerate launch) describes in the environment.

    On CUDA each process takes the GPU of its local rank first, so `cuda` means a different GPU in
    every process (and nccl finds them). accelerate, under the Trainer, adopts this group.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or not torch.distributed.is_available():
        return
    if not torch.distributed.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")


def world_size() -> int:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_world_size()
    return 1


def rank() -> int:
    """This process's rank: the group's, else the launcher's RANK (before the group is joined)."""
    if world_size() > 1:
        return torch.distributed.get_rank()
    return int(os.environ.get("RANK", "0"))


def is_main() -> bool:
    """Rank 0, or a plain single process: the one that prints and writes."""
    return rank() == 0


def shard(windows: torch.Tensor) -> torch.Tensor:
    """This rank's contiguous share of the windows (the first ranks take one more when uneven)."""
    size = world_size()
    if size == 1:
        return windows
    base, extra = divmod(windows.shape[0], size)
    start = rank() * base + min(rank(), extra)
    share = windows[start : start + base + (rank() < extra)]
    if share.shape[0] == 0:
        from secateur.errors import SecateurError

        raise SecateurError(f"{windows.shape[0]} windows cannot be shared by {size} processes: use more")
    return share


def all_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum `tensor` over all ranks, in place (every rank gets the same result)."""
    if world_size() > 1:
        torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.SUM)
    return tensor


def all_sum_number(value: float | int) -> float | int:
    if world_size() == 1:
        return value
    kind = torch.float64 if isinstance(value, float) else torch.int64
    return type(value)(all_sum(torch.tensor([value], dtype=kind)).item())


def share_work(costs: list[float]) -> list[int]:
    """The rank that does each job: the costliest job first, each to the least loaded rank (ties
    to the lowest). Every rank computes the same answer from the same costs."""
    size = world_size()
    loads = [0.0] * size
    owners = [0] * len(costs)
    for job in sorted(range(len(costs)), key=lambda j: (-costs[j], j)):
        owners[job] = min(range(size), key=lambda r: (loads[r], r))
        loads[owners[job]] += costs[job]
    return owners


def broadcast(tensor: torch.Tensor, source: int) -> torch.Tensor:
    """`source`'s tensor, in place, on every rank."""
    if world_size() > 1:
        torch.distributed.broadcast(tensor, src=source)
    return tensor


def barrier() -> None:
    if world_size() > 1:
        torch.distributed.barrier()
