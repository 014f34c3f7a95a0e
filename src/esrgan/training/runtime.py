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
class TrainBatch:
    """One training mini-batch on the device."""

    lr: torch.Tensor
    hr: torch.Tensor
    """Ground truth; what D sees as real."""
    hr_usm: torch.Tensor | None = None
    """Unsharp-masked ground truth, when the data layer provides it (Real-ESRGAN's ``gt_usm``)."""

    @property
    def target(self) -> torch.Tensor:
        """What the pixel and perceptual losses pull SR towards: ``hr_usm`` when present, else ``hr``.

        As Real-ESRGAN trains (l1_gt_usm and percep_gt_usm true, gan_gt_usm false): the content losses
        get the sharper target, D's real images stay the photos as they are (``hr``).
        """
        return self.hr if self.hr_usm is None else self.hr_usm


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

    def batch(self, batch: dict[str, torch.Tensor]) -> TrainBatch:
        """A loader batch's LR, HR (and ``hr_usm`` when present) on the device in the run's memory format."""
        usm = batch.get("hr_usm")
        if usm is not None and usm.shape != batch["hr"].shape:
            raise TrainingError(
                f"batch: hr_usm has shape {tuple(usm.shape)} but hr has {tuple(batch['hr'].shape)}"
            )
        nb = self.device.type == "cuda"

        def move(t: torch.Tensor) -> torch.Tensor:
            return t.to(self.device, non_blocking=nb, memory_format=self.memory_format)

        return TrainBatch(
            lr=move(batch["lr"]), hr=move(batch["hr"]), hr_usm=None if usm is None else move(usm)
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
