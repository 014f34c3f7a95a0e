"""Config sections of the losses: the pixel (content) loss and the VGG perceptual loss."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from esrgan.models import vgg_layer_names
from esrgan.training.config_checks import fail


@dataclass(kw_only=True)
class ContentLossConfig:
    """Pixel loss between SR and HR."""

    loss_f: Literal["l1", "l2"] = "l1"
    """``l1`` (the paper) or ``l2``."""


@dataclass(kw_only=True)
class PerceptualLossConfig:
    """VGG features before activation."""

    layer_weights: dict[str, float] = field(default_factory=lambda: {"conv5_4": 1.0})
    """Weight per VGG layer name (``conv5_4`` is the paper's)."""
    normalize_input: bool = True
    """Normalise inputs with the ImageNet mean/std first."""
    normalize_loss: bool = False
    """Divide the loss by the sum of the layer weights."""
    arch: str = "vgg19"
    """VGG variant (``vgg16``, ``vgg19``, ``vgg19_bn``, ...)."""
    criterion: Literal["l1", "l2"] = "l1"
    """Distance between feature maps."""
    weights: str = "torchvision"
    """VGG weights: a file, a URL or ``torchvision`` (the official URL)."""
    feature_norm: Literal["none", "channel"] = "none"
    """``channel``: compare unit-length feature vectors (LPIPS' normalisation, without its learned
    heads) instead of raw activations; ``none`` is the paper's loss."""

    def __post_init__(self) -> None:
        if not self.layer_weights:
            fail("layer_weights", "must name at least one layer")
        try:
            names = vgg_layer_names(self.arch)
        except ValueError as exc:
            fail("arch", str(exc))
        for layer, w in self.layer_weights.items():
            if layer not in names:
                fail(f"layer_weights.{layer}", f"not a layer of {self.arch}")
            if w < 0:
                fail(f"layer_weights.{layer}", f"weight must be >= 0, got {w}")
        if self.normalize_loss and sum(self.layer_weights.values()) <= 0:
            fail("normalize_loss", "needs a positive sum of layer weights")
