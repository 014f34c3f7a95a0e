"""Where and how a training run computes: device, processes, autocast dtype and memory layout.

Device and precision follow the one policy of ``esrgan.device`` (``training=True``: ``auto`` means bf16
autocast on CUDA GPUs that have it). Everything is decided once, at the start of a run.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
from torch import nn

from esrgan.device import DeviceError, needs_grad_scaler, resolve_device, resolve_precision
from esrgan.training import distributed as ddp
from esrgan.training.config import Config
from esrgan.training.errors import TrainingError

ModuleT = TypeVar("ModuleT", bound=nn.Module)


@dataclass(frozen=True, kw_only=True)
class Runtime:
    """The run's device, process group and numeric choices; every stage and step reads them from here."""

    device: torch.device
    dist: ddp.DistInfo
    amp_dtype: torch.dtype | None
    """Autocast dtype; None runs in fp32."""
    memory_format: torch.memory_format
    """Layout of G, D and training batches (``channels_last`` or contiguous)."""

    @property
    def precision_label(self) -> str:
        return str(self.amp_dtype or "fp32")

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def grad_scaler(self) -> torch.amp.GradScaler:
        """A GradScaler that is live only for fp16 autocast."""
        enabled = self.amp_dtype is not None and needs_grad_scaler(self.amp_dtype)
        return torch.amp.GradScaler(self.device.type, enabled=enabled)

    def place(self, module: ModuleT) -> ModuleT:
        """``module`` on the device in the run's memory format (for G and D)."""
        # torch's stubs lack Module.to's memory_format keyword.
        return module.to(self.device, memory_format=self.memory_format)  # type: ignore[call-overload]

    def batch(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """A loader batch's (LR, HR) on the device in the run's memory format."""
        nb = self.device.type == "cuda"
        mf = self.memory_format
        return (
            batch["lr"].to(self.device, non_blocking=nb, memory_format=mf),
            batch["hr"].to(self.device, non_blocking=nb, memory_format=mf),
        )

    def wrap(self, model: nn.Module) -> nn.Module:
        """``model`` in DistributedDataParallel when several processes train."""
        if not self.dist.enabled:
            return model
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)


def start_runtime(cfg: Config) -> Runtime:
    """Resolve device and precision, join the torchrun process group (if any) and set torch's knobs."""
    try:
        device = resolve_device(cfg.device)
        dtype = resolve_precision(cfg.precision, device, training=True)
    except DeviceError as exc:
        raise TrainingError(str(exc)) from None
    dist = ddp.setup_distributed(device)
    if dist.enabled and device.type == "cuda":
        device = torch.device("cuda", dist.local_rank)
        torch.cuda.set_device(device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed training patch sizes: pick the fastest kernels once
    if device.type == "cpu" and cfg.cpu_threads is not None:
        torch.set_num_threads(cfg.cpu_threads)
    return Runtime(
        device=device,
        dist=dist,
        amp_dtype=None if dtype == torch.float32 else dtype,
        memory_format=torch.channels_last if cfg.channels_last else torch.contiguous_format,
    )
