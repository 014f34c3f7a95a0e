"""Config sections that choose the networks: which architectures (``model``) and their sizes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from esrgan.models.compact import Activation
from esrgan.training.config_checks import at_least, fail

GeneratorArch = Literal["rrdbnet", "compact"]
DiscriminatorArch = Literal["vgg", "unet"]


@dataclass(kw_only=True)
class ModelConfig:
    """Which generator and discriminator architectures a run trains."""

    arch: GeneratorArch = "rrdbnet"
    """Generator: ``rrdbnet`` (ESRGAN's RRDBNet, sized by the ``generator`` section) or ``compact``
    (Real-ESRGAN's SRVGGNetCompact, sized by the ``compact`` section; several times faster)."""
    discriminator: DiscriminatorArch = "vgg"
    """Discriminator of stage 2: ``vgg`` (ESRGAN's VGG-style classifier, one logit per image, sized by
    ``discriminator``) or ``unet`` (Real-ESRGAN's U-Net with spectral norm, one logit per pixel, sized by
    ``unet_discriminator``; GAN patches must be multiples of 8)."""


@dataclass(kw_only=True)
class GeneratorConfig:
    """RRDBNet hyper-parameters (seed names; mapped to BasicSR's RRDBNet arguments)."""

    rrdb_channels: int = 64
    """``num_feat``: feature channels of the trunk."""
    growth_channels: int = 32
    """``num_grow_ch``: channels each dense-block convolution adds."""
    num_basic_blocks: int = 23
    """``num_block``: RRDBs in the trunk."""
    num_dense_blocks: int = 3
    """Dense blocks per RRDB."""
    num_residual_blocks: int = 5
    """Convolutions per dense block (at least 2)."""
    residual_scaling: float = 0.2
    """Scale of each residual branch."""
    use_subpixel_conv: bool = False
    """Pixel-shuffle upsampling instead of the paper's nearest + conv."""

    def __post_init__(self) -> None:
        at_least(self, 1, "rrdb_channels", "growth_channels", "num_basic_blocks", "num_dense_blocks")
        at_least(self, 2, "num_residual_blocks")


@dataclass(kw_only=True)
class CompactGeneratorConfig:
    """SRVGGNetCompact hyper-parameters (Real-ESRGAN's names); defaults are realesr-general-x4v3's."""

    num_feat: int = 64
    """Feature channels of every body convolution."""
    num_conv: int = 32
    """Body convolutions after the first one (realesr-animevideov3 uses 16)."""
    act: Activation = "prelu"
    """Activation after each convolution; only PReLU has learned parameters."""

    def __post_init__(self) -> None:
        at_least(self, 1, "num_feat")
        at_least(self, 0, "num_conv")


@dataclass(kw_only=True)
class DiscriminatorConfig:
    """VGG-style discriminator."""

    vgg_blk_ch: list[int] = field(default_factory=lambda: [64, 64, 128, 128, 256, 256, 512, 512])
    """Output channels of each conv block (every second block halves the resolution)."""
    fc_features: list[int] = field(default_factory=lambda: [100])
    """Hidden sizes of the classifier head."""
    pool_size: int = 4
    """Side of the adaptive average pool before the head."""

    def __post_init__(self) -> None:
        if not self.vgg_blk_ch or any(c < 1 for c in self.vgg_blk_ch):
            fail("vgg_blk_ch", "must be a non-empty list of positive channel counts")
        if any(c < 1 for c in self.fc_features):
            fail("fc_features", "must be positive")
        at_least(self, 1, "pool_size")


@dataclass(kw_only=True)
class UNetDiscriminatorConfig:
    """Real-ESRGAN's ``UNetDiscriminatorSN`` (used when ``model.discriminator`` is ``unet``)."""

    num_feat: int = 64
    """Channels of the first level; the deeper levels have 2x, 4x and 8x as many (Real-ESRGAN: 64)."""
    skip_connection: bool = True
    """Add each downsampling level's features to the upsampling level of the same size (Real-ESRGAN:
    true)."""

    def __post_init__(self) -> None:
        at_least(self, 1, "num_feat")
