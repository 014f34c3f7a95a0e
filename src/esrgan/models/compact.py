"""SRVGGNetCompact (Real-ESRGAN's compact generator), with Real-ESRGAN's state-dict key names.

A plain stack of 3x3 convolutions and activations at the input resolution, one pixel shuffle at the
end, and the nearest-upsampled input added back, so the body only learns a residual. Keys:
`body.0` first conv, `body.1` its activation, then (`body.2k`, `body.2k+1`) per body conv, and
`body.{2 num_conv + 2}` the last conv with `out_ch * upscale**2` outputs. Only PReLU activations carry
parameters (`body.{odd}.weight`, one slope per channel).
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass
from typing import ClassVar, Literal

import torch
from torch import nn
from torch.nn import functional as F

from esrgan.models.arch import Generator

Activation = Literal["prelu", "relu", "leakyrelu"]
ACTIVATIONS: tuple[Activation, ...] = ("prelu", "relu", "leakyrelu")


@dataclass(frozen=True)
class CompactConfig:
    """SRVGGNetCompact hyper-parameters (stored as weights metadata with ``"arch": "compact"``).

    `upscale` is the network's pixel-shuffle factor; `scale`, when smaller, is reached by a bicubic
    resize of the result (the ncnn releases of realesr-animevideov3 x2/x3 are the x4 network followed
    by such a resize). None means `upscale`.
    """

    arch: ClassVar[str] = "compact"
    in_ch: int = 3
    out_ch: int = 3
    num_feat: int = 64
    num_conv: int = 16
    upscale: int = 4
    act: Activation = "prelu"
    out_scale: int | None = None

    def __post_init__(self) -> None:
        for name in ("in_ch", "out_ch", "num_feat", "upscale"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.in_ch != self.out_ch:
            raise ValueError(
                f"in_ch ({self.in_ch}) must equal out_ch ({self.out_ch}): the input is added back"
            )
        if self.num_conv < 0:
            raise ValueError(f"num_conv must be >= 0, got {self.num_conv}")
        if self.act not in ACTIVATIONS:
            raise ValueError(f"unknown activation {self.act!r}: use one of {ACTIVATIONS}")
        if self.out_scale is not None and not 1 <= self.out_scale <= self.upscale:
            raise ValueError(f"out_scale must be in 1..upscale ({self.upscale}), got {self.out_scale}")

    @property
    def scale(self) -> int:
        return self.upscale if self.out_scale is None else self.out_scale

    @property
    def input_multiple(self) -> int:
        return 1

    def activation_channels(self) -> tuple[float, float, int]:
        # Not measured as RRDBNet's were: the tail holds the last conv's output, its shuffled copy, the
        # upsampled input and the sum (x (upscale/scale)^2 before a downscaling resize); the body a conv
        # output and its activation.
        tail = 2 * self.out_ch * (self.upscale / self.scale) ** 2
        return tail, float(self.num_feat), max(self.num_feat, self.out_ch * self.upscale**2)

    def state_dict_shapes(self) -> dict[str, tuple[int, ...]]:
        shapes: dict[str, tuple[int, ...]] = {}
        widths = [self.in_ch, *[self.num_feat] * (self.num_conv + 1), self.out_ch * self.upscale**2]
        for i, (cin, cout) in enumerate(itertools.pairwise(widths)):
            shapes[f"body.{2 * i}.weight"] = (cout, cin, 3, 3)
            shapes[f"body.{2 * i}.bias"] = (cout,)
            if self.act == "prelu" and i <= self.num_conv:
                shapes[f"body.{2 * i + 1}.weight"] = (self.num_feat,)
        return shapes

    def summary(self) -> str:
        resize = f", bicubic x{self.upscale}->x{self.scale}" if self.scale != self.upscale else ""
        return (
            f"SRVGGNetCompact x{self.scale} ({self.num_conv} convs, {self.num_feat} feat, {self.act}{resize})"
        )

    def to_dict(self) -> dict[str, object]:
        return {"arch": self.arch, **asdict(self)}

    def build(self) -> SRVGGNetCompact:
        return SRVGGNetCompact.from_config(self)


def _activation(act: Activation, num_feat: int) -> nn.Module:
    if act == "prelu":
        return nn.PReLU(num_parameters=num_feat)
    if act == "relu":
        return nn.ReLU(inplace=True)
    return nn.LeakyReLU(negative_slope=0.1, inplace=True)


class SRVGGNetCompact(Generator):
    """Real-ESRGAN's compact generator (realesr-general-x4v3: 64 features, 32 convs; animevideov3: 16)."""

    config: CompactConfig

    def __init__(
        self,
        *,
        in_ch: int = 3,
        out_ch: int = 3,
        num_feat: int = 64,
        num_conv: int = 16,
        upscale: int = 4,
        act: Activation = "prelu",
        out_scale: int | None = None,
    ) -> None:
        super().__init__()
        self.config = CompactConfig(
            in_ch=in_ch,
            out_ch=out_ch,
            num_feat=num_feat,
            num_conv=num_conv,
            upscale=upscale,
            act=act,
            out_scale=out_scale,
        )
        self.scale = self.config.scale
        self.upscale = upscale
        layers: list[nn.Module] = [nn.Conv2d(in_ch, num_feat, 3, 1, 1), _activation(act, num_feat)]
        for _ in range(num_conv):
            layers += [nn.Conv2d(num_feat, num_feat, 3, 1, 1), _activation(act, num_feat)]
        layers.append(nn.Conv2d(num_feat, out_ch * upscale * upscale, 3, 1, 1))
        self.body = nn.Sequential(*layers)
        self.upsampler = nn.PixelShuffle(upscale)

    @classmethod
    def from_config(cls, config: CompactConfig) -> SRVGGNetCompact:
        return cls(
            in_ch=config.in_ch,
            out_ch=config.out_ch,
            num_feat=config.num_feat,
            num_conv=config.num_conv,
            upscale=config.upscale,
            act=config.act,
            out_scale=config.out_scale,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.upsampler(self.body(x)) + F.interpolate(x, scale_factor=self.upscale, mode="nearest")
        if self.scale != self.upscale:
            out = F.interpolate(
                out, scale_factor=self.scale / self.upscale, mode="bicubic", align_corners=False
            )
        return out
