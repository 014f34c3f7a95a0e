"""LPIPS (Zhang et al. 2018), VGG variant, on the project's VGG16 feature extractor.

Distance = sum over five VGG16 taps of the spatial mean of a learned, non-negative per-channel weighting
of squared differences between channel-unit-normalised features. Weights are the published ones: a
torchvision-layout VGG16 (`features.N.*`, safetensors or .pth) and the official v0.1 linear heads
(`lin{0..4}.model.1.weight`, the `lpips` package's `vgg.pth` or a safetensors copy).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from esrgan.models import VGGFeatureExtractor
from esrgan.weights.io import load_tensor_file

# The standard file names of LPIPS's two weight files (VGG16 features and the v0.1 linear heads).
LPIPS_VGG_FILE = "vgg16_imagenet_features.safetensors"
LPIPS_HEADS_FILE = "lpips_vgg_v0.1_heads.safetensors"
LPIPS_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3")
_CHANNELS = (64, 128, 256, 512, 512)
# LPIPS' ScalingLayer constants, applied to images mapped to [-1, 1].
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)
_EPS = 1e-10


def normalize_channels(x: torch.Tensor) -> torch.Tensor:
    """Each feature vector of (N, C, H, W) scaled to unit length over its C channels (LPIPS' step)."""
    return x / (x.pow(2).sum(dim=1, keepdim=True).sqrt() + _EPS)


class LPIPS(nn.Module):
    """LPIPS-VGG distance; `forward(a, b)` with RGB (or grey) images in [0, 1] -> Tensor[N], lower is better.

    The constructor only builds the network; `LPIPS.from_files(vgg_weights=..., heads=...)` (or
    `load_weights` with state dicts) gives it the published weights.
    """

    # Buffers registered in __init__ (declared so their type is Tensor, not Module.__getattr__'s union).
    shift: torch.Tensor
    scale: torch.Tensor

    def __init__(self) -> None:
        super().__init__()
        self.vgg = VGGFeatureExtractor(arch="vgg16", layers=LPIPS_LAYERS, use_input_norm=False)
        self.heads = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in _CHANNELS)
        self.register_buffer("shift", torch.tensor(_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(_SCALE).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    @classmethod
    def from_files(cls, *, vgg_weights: str | Path, heads: str | Path) -> LPIPS:
        """Torchvision-layout VGG16 weights and the official v0.1 heads, safetensors or .pth."""
        model = cls()
        vgg_sd = load_tensor_file(vgg_weights, what="VGG16 weights")
        head_sd = load_tensor_file(heads, what="LPIPS heads")
        model.load_weights(vgg_sd, head_sd, vgg_source=str(vgg_weights), heads_source=str(heads))
        return model

    def load_weights(
        self,
        vgg_state: Mapping[str, torch.Tensor],
        heads_state: Mapping[str, torch.Tensor],
        *,
        vgg_source: str = "VGG16 weights",
        heads_source: str = "LPIPS heads",
    ) -> None:
        try:
            self.vgg.load_torchvision_state_dict(vgg_state)
        except ValueError as exc:
            raise ValueError(f"{vgg_source}: {exc}") from exc
        for i, (head, c) in enumerate(zip(self.heads, _CHANNELS, strict=True)):
            key = f"lin{i}.model.1.weight"
            w = heads_state.get(key)
            if w is None:
                raise ValueError(f"{heads_source}: LPIPS heads lack {key!r} (not an LPIPS-VGG v0.1 file?)")
            if tuple(w.shape) != (1, c, 1, 1):
                raise ValueError(f"{heads_source}: {key} has shape {tuple(w.shape)}, expected (1, {c}, 1, 1)")
            assert isinstance(head, nn.Conv2d)  # built in __init__
            head.weight.data.copy_(w)

    def _features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if x.dim() == 3:
            x = x.unsqueeze(0)
        if x.dim() != 4 or x.shape[1] not in (1, 3):
            raise ValueError(f"LPIPS expects (N, 1|3, H, W) images, got shape {tuple(x.shape)}")
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        x = x.to(self.shift.dtype)
        return self.vgg(((x * 2 - 1) - self.shift) / self.scale)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if a.shape != b.shape:
            raise ValueError(f"LPIPS inputs differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}")
        fa, fb = self._features(a), self._features(b)
        total = None
        for name, head in zip(LPIPS_LAYERS, self.heads, strict=True):
            d = head((normalize_channels(fa[name]) - normalize_channels(fb[name])) ** 2).mean(dim=(1, 2, 3))
            total = d if total is None else total + d
        assert total is not None
        return total
