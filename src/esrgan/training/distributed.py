"""Process-group set-up for ``torchrun`` and the reductions the training loop needs.

One process per device: ``torchrun --nproc_per_node N -m esrgan train CONFIG`` sets RANK, WORLD_SIZE,
LOCAL_RANK and MASTER_ADDR/PORT; multi-node runs use torchrun's usual ``--nnodes/--node_rank/--rdzv``
flags. gloo is used on CPU, nccl on CUDA.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    initialized_here: bool = False

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup_distributed(device: torch.device, *, init_method: str = "env://") -> DistInfo:
    """Join the process group described by torchrun's environment (single process when absent).

    ``init_method`` is where the ranks meet: torchrun's MASTER_ADDR/PORT by default; tests pass a
    ``file://`` path of their own so that no port is picked and raced for.
    """
    if dist.is_available() and dist.is_initialized():
        return DistInfo(
            rank=dist.get_rank(),
            world_size=dist.get_world_size(),
            local_rank=int(os.environ.get("LOCAL_RANK", 0)),
        )
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    # torch.distributed.nn.functional binds the live default group as its functions' default argument when
    # it is first imported, and torch imports it lazily (torch._dynamo, pulled in by the first optimizer).
    # Imported after init_process_group it would keep the group alive past destroy_process_group; gloo's
    # worker threads then outlive the interpreter, and one still releasing a finished collective's tensors
    # at exit aborts the process ("terminate called without an active exception").
    import torch.distributed.nn.functional  # noqa: F401

    backend = "nccl" if device.type == "cuda" else "gloo"
    rank = int(os.environ.get("RANK", "0"))
    dist.init_process_group(backend=backend, init_method=init_method, rank=rank, world_size=world)
    return DistInfo(
        rank=dist.get_rank(),
        world_size=dist.get_world_size(),
        local_rank=int(os.environ.get("LOCAL_RANK", 0)),
        initialized_here=True,
    )


def cleanup_distributed(info: DistInfo) -> None:
    """Leave the process group this process joined; call it on every rank, after the last collective."""
    if info.initialized_here and dist.is_initialized():
        dist.destroy_process_group()


def any_flag(flag: bool, info: DistInfo, device: torch.device) -> bool:
    """True on every rank when ``flag`` is true on any rank (keeps step-skipping decisions in lockstep)."""
    if not info.enabled:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def average_gradients(module: torch.nn.Module, info: DistInfo) -> None:
    """Mean of each parameter's gradient over ranks (used for D, whose two-phase use does not fit DDP)."""
    if not info.enabled:
        return
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= info.world_size
    offset = 0
    for g in grads:
        n = g.numel()
        g.copy_(flat[offset : offset + n].view_as(g))
        offset += n


def average_buffers(module: torch.nn.Module, info: DistInfo) -> None:
    """Mean of floating-point buffers (BatchNorm running statistics) so every rank holds the same D."""
    if not info.enabled:
        return
    for b in module.buffers():
        if b.is_floating_point():
            dist.all_reduce(b)
            b /= info.world_size


def mean_over_ranks(values: dict[str, float], info: DistInfo, device: torch.device) -> dict[str, float]:
    """Average scalar logs across ranks (same keys everywhere)."""
    if not info.enabled or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    t /= info.world_size
    return dict(zip(keys, t.tolist(), strict=True))


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def broadcast_module(module: torch.nn.Module, info: DistInfo) -> None:
    """Copy rank 0's parameters and buffers to every rank (fresh models start identical)."""
    if not info.enabled:
        return
    with torch.no_grad():
        for t in [*module.parameters(), *module.buffers()]:
            dist.broadcast(t.data, src=0)


@contextlib.contextmanager
def rank0_first(info: DistInfo) -> Iterator[None]:
    """Run the body on rank 0 first, then on the others (downloads and cache files are made once)."""
    if info.enabled and not info.is_main:
        barrier(info)
    try:
        yield
    finally:
        if info.enabled and info.is_main:
            barrier(info)


class _GatherBatch(torch.autograd.Function):
    """``all_gather`` along dim 0 whose backward hands each rank the gradient of its own slice, summed over
    every rank's loss (the reduce-scatter of the incoming gradients, done as an all-reduce: gloo has no
    reduce-scatter, and these are a few logits per sample)."""

    @staticmethod
    def forward(ctx: Any, t: torch.Tensor) -> torch.Tensor:
        t = t.contiguous()
        parts = [torch.empty_like(t) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, t)
        ctx.own = (dist.get_rank() * t.shape[0], t.shape[0])
        return torch.cat(parts, 0)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        total = grad.contiguous().clone()  # all_reduce works in place; autograd may still use ``grad``
        dist.all_reduce(total)
        start, n = ctx.own
        return total.narrow(0, start, n)


def gather_batch(t: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """All ranks' ``t`` (same shape on every rank) concatenated along dim 0 in rank order; differentiable:
    gradients flow back to the rank that owns each slice. Used for batch statistics such as the RaGAN
    means ``E[C(x)]``.

    Not ``torch.distributed.nn.functional.all_gather``: deprecated, it warns on every call, and it pins
    whatever group was live when its module was first imported (see ``setup_distributed``)."""
    if not info.enabled:
        return t
    return _GatherBatch.apply(t)
