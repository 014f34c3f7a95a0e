"""Exponential moving average of generator weights (kept beside the raw weights, never trained)."""

from __future__ import annotations

import copy
from typing import Generic, TypeVar

import torch
from torch import nn

ModuleT = TypeVar("ModuleT", bound=nn.Module)


class ModelEMA(Generic[ModuleT]):
    """``ema = d * ema + (1 - d) * model`` after every optimiser step; buffers are copied.

    The decay warms up as ``d = min(decay, (1 + n) / (10 + n))`` after ``n`` updates, so the average
    forgets the random initialisation within the first few hundred steps instead of needing thousands
    (without it a 0.999 EMA of a short run scored 17 dB on Set5 while the raw weights scored 28).
    """

    def __init__(self, model: ModuleT, *, decay: float, updates: int = 0) -> None:
        if not 0 <= decay < 1:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        if updates < 0:
            raise ValueError(f"EMA updates must be >= 0, got {updates}")
        self.decay = decay
        self.updates = updates
        self.model: ModuleT = copy.deepcopy(model).eval().requires_grad_(False)

    def current_decay(self) -> float:
        """The decay the next update uses."""
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        d = self.current_decay()
        for e, p in zip(self.model.parameters(), model.parameters(), strict=True):
            e.lerp_(p.detach(), 1.0 - d)
        for eb, b in zip(self.model.buffers(), model.buffers(), strict=True):
            eb.copy_(b)
        self.updates += 1

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.model.state_dict()

    def load_state_dict(self, sd: dict[str, torch.Tensor], *, updates: int) -> None:
        """Load averaged weights; ``updates`` (the stage iteration they belong to) restores the warm-up."""
        self.model.load_state_dict(sd, strict=True)
        self.updates = updates
