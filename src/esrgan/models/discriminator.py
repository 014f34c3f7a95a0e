"""VGG-style discriminator for the GAN stage (one logit per image)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class VGGStyleDiscriminator(nn.Module):
    """Conv stack (BatchNorm, LeakyReLU 0.2), adaptive pooling, then an MLP head to one logit.

    A conv whose output channels equal its input channels strides by 2 (the SRGAN/ESRGAN pattern
    64, 64/2, 128, 128/2, ...). Adaptive pooling makes the head independent of the patch size.
    """

    def __init__(
        self,
        *,
        in_ch: int = 3,
        channels: Sequence[int] = (64, 64, 128, 128, 256, 256, 512, 512),
        hidden: Sequence[int] = (100,),
        pool_size: int = 4,
        negative_slope: float = 0.2,
    ) -> None:
        super().__init__()
        if not channels:
            raise ValueError("channels must not be empty")
        if any(c < 1 for c in channels) or any(h < 1 for h in hidden) or pool_size < 1:
            raise ValueError("channels, hidden sizes and pool_size must be positive")
        layers: list[nn.Module] = []
        prev = in_ch
        self.num_downsample = 0
        for i, ch in enumerate(channels):
            stride = 2 if (i > 0 and ch == prev) else 1
            self.num_downsample += stride == 2
            layers.append(nn.Conv2d(prev, ch, 3, stride, 1, bias=i == 0))
            if i > 0:  # no normalisation on the first layer, as in SRGAN/ESRGAN
                layers.append(nn.BatchNorm2d(ch))
            layers.append(nn.LeakyReLU(negative_slope, inplace=True))
            prev = ch
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(pool_size)
        head: list[nn.Module] = [nn.Flatten()]
        width = prev * pool_size * pool_size
        for h in hidden:
            head += [nn.Linear(width, h), nn.LeakyReLU(negative_slope, inplace=True)]
            width = h
        head.append(nn.Linear(width, 1))
        self.classifier = nn.Sequential(*head)
        self.min_size = 32

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] < self.min_size or x.shape[-2] < self.min_size:
            raise ValueError(
                f"discriminator input must be at least {self.min_size}x{self.min_size}, "
                f"got {tuple(x.shape[-2:])}"
            )
        return self.classifier(self.pool(self.features(x)))
