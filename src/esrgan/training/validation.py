"""Validation during training (the metric code of ``esrgan test``) and the choice of the best weights."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from esrgan.losses import ContentLoss, PerceptualLoss
from esrgan.metrics import psnr, ssim
from esrgan.training.config import ValidationConfig
from esrgan.training.runtime import Runtime
from esrgan.training.sampling import dataset_size

HIGHER_IS_BETTER = {"psnr": True, "ssim": True, "lpips": False, "content": False, "perceptual": False}


@dataclass(frozen=True, kw_only=True)
class Best:
    """A stage's best validation result so far (its weights are ``RUN/weights/{stage}_best``)."""

    metric: str
    value: float
    iteration: int

    def to_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "value": self.value, "iteration": self.iteration}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Best | None:
        """The checkpoint's ``best`` entry (``{}`` before the first choice)."""
        if not data:
            return None
        return cls(metric=str(data["metric"]), value=float(data["value"]), iteration=int(data["iteration"]))


def new_best(
    best: Best | None, cfg: ValidationConfig, *, stage: str, iteration: int, metrics: dict[str, float]
) -> Best | None:
    """The new best when ``metrics`` beat ``best`` on ``cfg``'s metric for ``stage``; else None.

    Without LPIPS the GAN stage is judged by the perceptual loss; nothing is chosen during
    ``cfg.warmup`` or from a non-finite value.
    """
    name = cfg.pretrain_metric if stage == "pretrain" else cfg.gan_metric
    if name == "lpips" and "lpips" not in metrics:
        name = "perceptual"
    if name not in metrics or iteration < cfg.warmup or not math.isfinite(metrics[name]):
        return None
    value = metrics[name]
    if best is not None and not (value > best.value if HIGHER_IS_BETTER[name] else value < best.value):
        return None
    return Best(metric=name, value=value, iteration=iteration)


@dataclass(frozen=True, kw_only=True)
class Sample:
    """The first validation image (LR, SR, HR on the CPU) for the image logs."""

    lr: torch.Tensor
    sr: torch.Tensor
    hr: torch.Tensor


@dataclass(frozen=True, kw_only=True)
class Validator:
    """Mean losses, PSNR/SSIM (Y channel, border crop ``scale``) and LPIPS of G on a validation set."""

    dataset: Dataset[Any]
    rt: Runtime
    content: ContentLoss
    perceptual: PerceptualLoss
    lpips: nn.Module | None
    """LPIPS network (GAN stage with LPIPS files only)."""
    scale: int

    @torch.no_grad()
    def evaluate(self, g: nn.Module) -> tuple[dict[str, float], Sample | None]:
        """Metrics averaged over the set, and the first image; G's train/eval mode is kept."""
        was_training = g.training
        g.eval()
        sums: dict[str, float] = defaultdict(float)
        n = dataset_size(self.dataset)
        sample = None
        try:
            for i in range(n):
                item = self.dataset[i]
                lr = item["lr"][None].to(self.rt.device)
                hr = item["hr"][None].to(self.rt.device)
                with self.rt.autocast():
                    sr = g(lr)
                sr = sr.float()
                sums["content"] += float(self.content(sr, hr))
                sums["perceptual"] += float(self.perceptual(sr, hr))
                out = sr.clamp(0, 1).cpu()
                sums["psnr"] += float(psnr(out, hr.cpu(), crop_border=self.scale, y_channel=True).mean())
                sums["ssim"] += float(ssim(out, hr.cpu(), crop_border=self.scale, y_channel=True).mean())
                if self.lpips is not None:
                    sums["lpips"] += float(self.lpips(sr.clamp(0, 1), hr).mean())
                if i == 0:
                    sample = Sample(lr=lr.cpu(), sr=out, hr=hr.cpu())
        finally:
            g.train(was_training)
        return {k: v / max(n, 1) for k, v in sums.items()}, sample
