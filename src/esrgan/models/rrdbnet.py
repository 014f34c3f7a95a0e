"""RRDBNet generator (ESRGAN), with BasicSR's state-dict key names."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import ClassVar, Literal

import torch
from torch import nn
from torch.nn import functional as F

from esrgan.models.arch import Generator

Upsampler = Literal["nearest+conv", "pixelshuffle"]
SUPPORTED_SCALES = (1, 2, 4, 8)


def _scaled_kaiming_(modules: list[nn.Module], scale: float) -> None:
    # ESRGAN's small initialisation: kaiming-normal weights scaled down so deep residual stacks start stable.
    for m in modules:
        # Meta tensors (a model built to receive loaded weights) have no values to set, and normal_ on
        # them imports torch._dynamo: 1.2 s of every `esrgan upscale` start-up.
        if isinstance(m, nn.Conv2d) and not m.weight.is_meta:
            nn.init.kaiming_normal_(m.weight)
            m.weight.data.mul_(scale)
            if m.bias is not None:
                m.bias.data.zero_()


class ResidualDenseBlock(nn.Module):
    """Dense block: `num_convs` convs, each fed the concatenation of all previous features."""

    def __init__(
        self, *, num_feat: int, num_grow_ch: int, num_convs: int = 5, res_scale: float = 0.2
    ) -> None:
        super().__init__()
        if num_convs < 2:
            raise ValueError(f"num_convs must be >= 2, got {num_convs}")
        self.num_convs = num_convs
        self.res_scale = float(res_scale)
        for i in range(num_convs):
            in_ch = num_feat + i * num_grow_ch
            out_ch = num_feat if i == num_convs - 1 else num_grow_ch
            self.add_module(f"conv{i + 1}", nn.Conv2d(in_ch, out_ch, 3, 1, 1))
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [x]
        for i in range(1, self.num_convs):
            conv = getattr(self, f"conv{i}")
            feats.append(self.lrelu(conv(torch.cat(feats, 1))))
        out = getattr(self, f"conv{self.num_convs}")(torch.cat(feats, 1))
        return out * self.res_scale + x


class RRDB(nn.Module):
    """Residual-in-residual dense block: `num_dense` dense blocks wrapped in a scaled residual."""

    def __init__(
        self,
        *,
        num_feat: int,
        num_grow_ch: int,
        num_dense: int = 3,
        num_convs: int = 5,
        res_scale: float = 0.2,
    ) -> None:
        super().__init__()
        self.num_dense = num_dense
        self.res_scale = float(res_scale)
        for k in range(num_dense):
            self.add_module(
                f"rdb{k + 1}",
                ResidualDenseBlock(
                    num_feat=num_feat, num_grow_ch=num_grow_ch, num_convs=num_convs, res_scale=res_scale
                ),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for k in range(self.num_dense):
            out = getattr(self, f"rdb{k + 1}")(out)
        return out * self.res_scale + x


@dataclass(frozen=True)
class RRDBNetConfig:
    """Architecture hyper-parameters; enough to rebuild an `RRDBNet` (stored as weights metadata)."""

    arch: ClassVar[str] = "rrdbnet"
    in_ch: int = 3
    out_ch: int = 3
    num_feat: int = 64
    num_block: int = 23
    num_grow_ch: int = 32
    num_dense: int = 3
    num_convs: int = 5
    res_scale: float = 0.2
    scale: int = 4
    upsampler: Upsampler = "nearest+conv"
    pixel_unshuffle: bool = False

    def to_dict(self) -> dict[str, object]:
        # No "arch" entry: files and checkpoints written before other architectures existed have none.
        return asdict(self)

    @property
    def input_multiple(self) -> int:
        return 4 // self.scale if self.pixel_unshuffle else 1

    def activation_channels(self) -> tuple[float, float, int]:
        # Measured (see esrgan.inference.tiling): the upsampling tail holds ~num_feat channels per output
        # pixel; the body the widest dense-block concatenation with its neighbours, on the folded grid.
        u = self.input_multiple
        body = (2 * self.num_feat + 4 * self.num_grow_ch) / u**2
        return (
            float(self.num_feat),
            body,
            max(self.num_feat * self.scale**2, self.num_feat + 4 * self.num_grow_ch),
        )

    def summary(self) -> str:
        unshuffle = ", pixel-unshuffle" if self.pixel_unshuffle else ""
        return (
            f"RRDBNet x{self.scale} ({self.num_block} blocks, {self.num_feat} feat, "
            f"growth {self.num_grow_ch}, {self.upsampler}{unshuffle})"
        )

    def build(self) -> RRDBNet:
        return RRDBNet.from_config(self)

    def state_dict_shapes(self) -> dict[str, tuple[int, ...]]:
        """ValueError for a combination RRDBNet refuses (metadata is read without validation)."""
        if self.scale not in SUPPORTED_SCALES:
            raise ValueError(f"unsupported scale {self.scale!r}: RRDBNet supports {SUPPORTED_SCALES}")
        if self.pixel_unshuffle != (self.scale == 1) and not (self.pixel_unshuffle and self.scale == 2):
            raise ValueError(f"pixel_unshuffle={self.pixel_unshuffle} does not go with scale {self.scale}")
        if self.upsampler not in ("nearest+conv", "pixelshuffle"):
            raise ValueError(f"unknown upsampler {self.upsampler!r}")
        fold = self.input_multiple
        nf, gc = self.num_feat, self.num_grow_ch
        shapes: dict[str, tuple[int, ...]] = {}

        def conv(name: str, cin: int, cout: int) -> None:
            shapes[f"{name}.weight"] = (cout, cin, 3, 3)
            shapes[f"{name}.bias"] = (cout,)

        conv("conv_first", self.in_ch * fold * fold, nf)
        for b in range(self.num_block):
            for d in range(self.num_dense):
                for m in range(self.num_convs):
                    cout = nf if m == self.num_convs - 1 else gc
                    conv(f"body.{b}.rdb{d + 1}.conv{m + 1}", nf + m * gc, cout)
        conv("conv_body", nf, nf)
        up_out = 4 * nf if self.upsampler == "pixelshuffle" else nf
        for i in range(int(math.log2(self.scale * fold))):
            conv(f"conv_up{i + 1}", nf, up_out)
        conv("conv_hr", nf, nf)
        conv("conv_last", nf, self.out_ch)
        return shapes


class RRDBNet(Generator):
    """ESRGAN generator.

    Upsampling runs in stages of x2 (`conv_up1`, `conv_up2`, `conv_up3`). With `pixel_unshuffle=True`
    (BasicSR's x1/x2 models) the input is space-to-depth folded by `4 // scale` and an x4 body is used.
    """

    config: RRDBNetConfig

    def __init__(
        self,
        *,
        in_ch: int = 3,
        out_ch: int = 3,
        num_feat: int = 64,
        num_block: int = 23,
        num_grow_ch: int = 32,
        num_dense: int = 3,
        num_convs: int = 5,
        res_scale: float = 0.2,
        scale: int = 4,
        upsampler: Upsampler = "nearest+conv",
        pixel_unshuffle: bool | None = None,
    ) -> None:
        super().__init__()
        if scale not in SUPPORTED_SCALES:
            raise ValueError(f"unsupported scale {scale!r}: RRDBNet supports {SUPPORTED_SCALES}")
        if upsampler not in ("nearest+conv", "pixelshuffle"):
            raise ValueError(f"unknown upsampler {upsampler!r}: use 'nearest+conv' or 'pixelshuffle'")
        for name, value in (
            ("in_ch", in_ch),
            ("out_ch", out_ch),
            ("num_feat", num_feat),
            ("num_block", num_block),
            ("num_grow_ch", num_grow_ch),
            ("num_dense", num_dense),
        ):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if pixel_unshuffle is None:
            pixel_unshuffle = scale == 1  # x1 only exists through unshuffle
        if pixel_unshuffle and scale not in (1, 2):
            raise ValueError(f"pixel_unshuffle applies to scale 1 or 2 only, got scale {scale}")
        if scale == 1 and not pixel_unshuffle:
            raise ValueError("scale 1 needs pixel_unshuffle=True")

        self.config = RRDBNetConfig(
            in_ch=in_ch,
            out_ch=out_ch,
            num_feat=num_feat,
            num_block=num_block,
            num_grow_ch=num_grow_ch,
            num_dense=num_dense,
            num_convs=num_convs,
            res_scale=float(res_scale),
            scale=scale,
            upsampler=upsampler,
            pixel_unshuffle=bool(pixel_unshuffle),
        )
        self.scale = scale
        self.unshuffle_factor = 4 // scale if pixel_unshuffle else 1
        body_scale = scale * self.unshuffle_factor
        self.num_upsample = int(math.log2(body_scale))
        self.upsampler = upsampler

        self.conv_first = nn.Conv2d(in_ch * self.unshuffle_factor**2, num_feat, 3, 1, 1)
        self.body = nn.Sequential(
            *[
                RRDB(
                    num_feat=num_feat,
                    num_grow_ch=num_grow_ch,
                    num_dense=num_dense,
                    num_convs=num_convs,
                    res_scale=res_scale,
                )
                for _ in range(num_block)
            ]
        )
        self.conv_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        up_out = num_feat * 4 if upsampler == "pixelshuffle" else num_feat
        for i in range(self.num_upsample):
            self.add_module(f"conv_up{i + 1}", nn.Conv2d(num_feat, up_out, 3, 1, 1))
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, out_ch, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)
        self.reset_parameters()

    @classmethod
    def from_config(cls, config: RRDBNetConfig) -> RRDBNet:
        """The network `config` describes (as stored in weights metadata), freshly initialised."""
        return cls(
            in_ch=config.in_ch,
            out_ch=config.out_ch,
            num_feat=config.num_feat,
            num_block=config.num_block,
            num_grow_ch=config.num_grow_ch,
            num_dense=config.num_dense,
            num_convs=config.num_convs,
            res_scale=config.res_scale,
            scale=config.scale,
            upsampler=config.upsampler,
            pixel_unshuffle=config.pixel_unshuffle,
        )

    def reset_parameters(self) -> None:
        """Paper initialisation: kaiming-normal scaled by 0.1 in the dense blocks (as BasicSR)."""
        _scaled_kaiming_([m for m in self.body.modules() if isinstance(m, nn.Conv2d)], 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.unshuffle_factor > 1:
            x = F.pixel_unshuffle(x, self.unshuffle_factor)
        feat = self.conv_first(x)
        feat = feat + self.conv_body(self.body(feat))
        for i in range(self.num_upsample):
            conv = getattr(self, f"conv_up{i + 1}")
            if self.upsampler == "pixelshuffle":
                feat = self.lrelu(F.pixel_shuffle(conv(feat), 2))
            else:
                feat = self.lrelu(conv(F.interpolate(feat, scale_factor=2, mode="nearest")))
        return self.conv_last(self.lrelu(self.conv_hr(feat)))
