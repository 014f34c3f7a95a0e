"""Sharing `esrgan upscale`'s work among processes started by torchrun (or SLURM's srun): who this
process is, which device and how many CPU threads are its own, which items are its share, and a
barrier. Reading the environment happens in the functions, never at import."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

T = TypeVar("T")
# Processes wait at a barrier while the others finish their share: a long video takes hours.
BARRIER_TIMEOUT = timedelta(hours=48)


@dataclass(frozen=True, kw_only=True)
class Shard:
    """This process's place among those sharing the work (one process: rank 0 of 1)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    """Among the processes on this machine: picks the GPU."""
    local_world_size: int = 1
    """Processes on this machine: they share its CPU threads."""

    @property
    def shared(self) -> bool:
        return self.world_size > 1


def _int(env: Mapping[str, str], *names: str) -> int | None:
    for name in names:
        value = env.get(name, "").strip()
        if value.isdigit():
            return int(value)
    return None


def shard_from_env(env: Mapping[str, str] | None = None) -> Shard:
    """torchrun's RANK/WORLD_SIZE/LOCAL_RANK/LOCAL_WORLD_SIZE, else SLURM's SLURM_PROCID/SLURM_NTASKS/
    SLURM_LOCALID/SLURM_NTASKS_PER_NODE; a single process without either."""
    env = os.environ if env is None else env
    world = _int(env, "WORLD_SIZE", "SLURM_NTASKS") or 1
    rank = _int(env, "RANK", "SLURM_PROCID") or 0
    local_rank = _int(env, "LOCAL_RANK", "SLURM_LOCALID") or 0
    local_world = _int(env, "LOCAL_WORLD_SIZE", "SLURM_NTASKS_PER_NODE") or (world if world > 1 else 1)
    if not 0 <= rank < world:
        raise ValueError(f"rank {rank} is outside a world of {world} processes")
    return Shard(rank=rank, world_size=world, local_rank=local_rank, local_world_size=max(1, local_world))


def thread_share(shard: Shard, cpus: int | None = None) -> int:
    """This process's share of the machine's CPU threads (at least 1)."""
    if cpus is None:
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cpus // shard.local_world_size)


def device_for(shard: Shard, device: str) -> str:
    """`device` as asked; `auto` in a shared run on a machine with GPUs: the GPU of this LOCAL_RANK."""
    import torch  # here: planning a run (and the warm start path) needs no torch

    if device.strip().lower() == "auto" and shard.shared and torch.cuda.is_available():
        return f"cuda:{shard.local_rank % torch.cuda.device_count()}"
    return device


def mine(items: Sequence[T], shard: Shard) -> list[T]:
    """This process's share: every world_size-th item from its rank (the same split in every process)."""
    return list(items[shard.rank :: shard.world_size])


class Group:
    """A barrier among the processes sharing the work: torch.distributed over gloo (torchrun's
    rendezvous variables, or MASTER_ADDR/MASTER_PORT exported for srun); nothing for one process."""

    def __init__(self, *, shard: Shard) -> None:
        self.shard = shard
        self._started = False

    def start(self) -> None:
        import torch.distributed as dist

        if self.shard.shared and not dist.is_initialized():
            dist.init_process_group(
                "gloo",
                rank=self.shard.rank,
                world_size=self.shard.world_size,
                timeout=BARRIER_TIMEOUT,
            )
            self._started = True

    def barrier(self) -> None:
        import torch.distributed as dist

        if self.shard.shared and dist.is_initialized():
            dist.barrier()

    def close(self) -> None:
        import torch.distributed as dist

        if self._started and dist.is_initialized():
            dist.destroy_process_group()
            self._started = False
