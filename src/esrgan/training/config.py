"""Typed training configuration: the seed's JSON keys plus data, validation, logging and checkpointing.

A config file (JSON or YAML) is a nested mapping whose keys are the field names below; every section and
field is optional (defaults are the seed's ``esrgan_default.json`` / the ESRGAN paper). Each section
checks its own values in ``__post_init__``, ``Config`` what spans sections; a ``ConfigError`` names the
key (``config_io``, which reads files and ``key.sub=value`` overrides, puts the section in front).

Iterations: the seed counts ``num_epoch`` passes over the training set with one random patch per image
and ``batch_size`` patches per iteration, so ``iterations = num_epoch * (num_train_images //
batch_size)`` (at least one per epoch). ``total_iters`` (when set) is used instead of ``num_epoch``.
Scheduler steps (``sched_step``, ``g_sched_steps``, ``d_sched_steps``) are iterations, as in the seed.

Relative paths (``data.root``, weight files) are relative to the working directory.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from esrgan.data.degradation_config import DegradationConfig
from esrgan.device import PRECISION_NAMES
from esrgan.losses import GanLoss
from esrgan.models import ArchConfig, CompactConfig, RRDBNetConfig
from esrgan.training.config_checks import ConfigError, at_least, fail, require
from esrgan.training.config_losses import ContentLossConfig, PerceptualLossConfig
from esrgan.training.config_models import (
    CompactGeneratorConfig,
    DiscriminatorConfig,
    GeneratorConfig,
    ModelConfig,
    UNetDiscriminatorConfig,
)

StageName = Literal["pretrain", "gan"]
STAGES: tuple[StageName, ...] = ("pretrain", "gan")
METRICS = ("psnr", "ssim", "lpips", "content", "perceptual")
__all__ = [
    "METRICS",
    "STAGES",
    "CheckpointConfig",
    "CompactGeneratorConfig",
    "Config",
    "ConfigError",
    "ContentLossConfig",
    "DataConfig",
    "DiscriminatorConfig",
    "EMAConfig",
    "GeneratorConfig",
    "InterpolationConfig",
    "LoggingConfig",
    "ModelConfig",
    "PerceptualLossConfig",
    "PretrainingConfig",
    "StageConfig",
    "StageName",
    "TrainingConfig",
    "UNetDiscriminatorConfig",
    "ValidationConfig",
]


@dataclass(kw_only=True)
class StageConfig:
    """What both training stages share: length, patch size, Adam betas and data sources."""

    num_epoch: int | None = 10000
    """Passes over the training set (see the module doc); ignored when ``total_iters`` is set."""
    total_iters: int | None = None
    """Iterations of the stage; wins over ``num_epoch`` when set."""
    cr_patch_size: list[int] = field(default_factory=lambda: [128, 128])
    """HR training crop ``[H, W]``: square, a multiple of ``scale_factor``."""
    betas: list[float] = field(default_factory=lambda: [0.9, 0.99])
    """Adam betas of the stage's optimisers."""
    train_datasets: list[str] = field(default_factory=lambda: ["div2k"])
    """Training sources (``div2k``, ``bsds500``, ``bsds500-test``, a folder, ...)."""
    val_datasets: list[str] = field(default_factory=lambda: ["div2k"])
    """Validation sources, same names as ``train_datasets``."""

    def __post_init__(self) -> None:
        if self.total_iters is None and self.num_epoch is None:
            fail("num_epoch", "set num_epoch or total_iters")
        at_least(self, 0, "total_iters", "num_epoch")
        crop = self.cr_patch_size
        if len(crop) != 2 or crop[0] != crop[1] or crop[0] < 1:
            fail("cr_patch_size", f"must be a square [H, W] of positive sizes, got {crop}")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            fail("betas", f"must be two numbers in [0, 1), got {self.betas}")
        for name in ("train_datasets", "val_datasets"):
            if not getattr(self, name):
                fail(name, "must name at least one dataset")


@dataclass(kw_only=True)
class PretrainingConfig(StageConfig):
    """Stage 1, PSNR-oriented: generator only, content loss, Adam + StepLR (or cosine)."""

    lr: float = 2e-4
    """Generator learning rate."""
    sched_step: int = 200000
    """StepLR period in iterations (``scheduler: step``)."""
    sched_gamma: float = 0.5
    """StepLR factor per period."""
    scheduler: Literal["step", "cosine"] = "step"
    """``step``: the paper's StepLR; ``cosine``: cosine decay from ``lr`` to ``lr_min`` over the stage."""
    lr_min: float = 1e-7
    """Final learning rate of the cosine schedule."""
    init_weights: str | None = None
    """Start from these generator weights (a file or zoo name) instead of a random G; its architecture
    must match the ``generator`` section (Real-ESRGAN starts Real-ESRNet from ESRGAN's PSNR model)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self, lambda v: v > 0, "> 0", "lr")
        at_least(self, 1, "sched_step")
        require(self, lambda v: 0 < v <= 1, "in (0, 1]", "sched_gamma")
        if not 0 <= self.lr_min <= self.lr:
            fail("lr_min", f"must be in [0, pretraining.lr], got {self.lr_min}")


@dataclass(kw_only=True)
class TrainingConfig(StageConfig):
    """Stage 2, GAN: G with D frozen, then D with G's output detached; Adam + MultiStepLR each."""

    num_epoch: int | None = 8000
    """Passes over the training set (see the module doc); ignored when ``total_iters`` is set."""
    g_lr: float = 1e-4
    """Generator learning rate."""
    d_lr: float = 1e-4
    """Discriminator learning rate."""
    g_sched_steps: list[int] = field(default_factory=lambda: [50000, 100000, 200000, 300000])
    """Iterations at which the generator's learning rate is multiplied by ``g_sched_gamma``."""
    g_sched_gamma: float = 0.5
    """Generator MultiStepLR factor."""
    d_sched_steps: list[int] = field(default_factory=lambda: [50000, 100000, 200000, 300000])
    """Iterations at which the discriminator's learning rate is multiplied by ``d_sched_gamma``."""
    d_sched_gamma: float = 0.5
    """Discriminator MultiStepLR factor."""
    gan_loss: GanLoss = "ragan"
    """Adversarial loss of G and D: ``ragan`` (ESRGAN's relativistic average) or ``vanilla`` (Real-ESRGAN's
    plain cross-entropy, real 1 / fake 0; Real-ESRGAN weights it 0.1 in G's loss)."""
    g_adversarial_loss_scaling: float = 0.005
    """lambda: weight of the adversarial loss in G's loss."""
    g_content_loss_scaling: float = 0.01
    """eta: weight of the content (pixel) loss in G's loss."""
    g_perceptual_loss_scaling: float = 1.0
    """Weight of the VGG perceptual loss in G's loss."""
    d_r1_weight: float = 0.0
    """gamma of an R1 penalty in D's loss, ``gamma / 2 * E||grad_x C(x_real)||^2`` (not in the paper; 0: off).
    It keeps D's gradients at real images small, so that a D which separates easily still gives G a smooth
    signal."""

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self, lambda v: v > 0, "> 0", "g_lr", "d_lr")
        require(self, lambda v: 0 < v <= 1, "in (0, 1]", "g_sched_gamma", "d_sched_gamma")
        for name in ("g_sched_steps", "d_sched_steps"):
            steps = getattr(self, name)
            if any(s < 1 for s in steps) or list(steps) != sorted(steps):
                fail(name, f"must be increasing positive iterations, got {steps}")
        scalings = ("g_adversarial_loss_scaling", "g_content_loss_scaling", "g_perceptual_loss_scaling")
        require(self, lambda v: v >= 0, ">= 0", *scalings, "d_r1_weight")


@dataclass(kw_only=True)
class DataConfig:
    """Where the images come from and how they are prepared."""

    root: str = "data"
    """Dataset root: downloads and folder sources live here."""
    val_crop: int | None = None
    """HR centre crop for validation, a multiple of ``scale_factor``; None validates whole images."""
    max_train_images: int | None = None
    """Use only the first N training images (None: all)."""
    max_val_images: int | None = None
    """Use only the first N validation images (None: all)."""
    num_workers: int = 2
    """DataLoader worker processes (0: load in the training process)."""
    augment: bool | Literal["seed", "spatial", "none"] = True
    """true/``seed``: the seed's per-stage flips/transposes/JPEG/dropout; ``spatial``: flips/transposes
    only (clean bicubic LR, for PSNR-oriented models); false/``none``: random crops only."""
    cache: bool = True
    """Keep decoded images in the on-disk cache (``ESRGAN_CACHE``)."""
    download: bool = False
    """Download missing datasets (DIV2K, BSDS500) into ``root``."""
    degradation: Literal["bicubic", "realesrgan"] = "bicubic"
    """How training LR is made: ``bicubic`` (MATLAB-exact, cached once per image) or ``realesrgan`` (a
    fresh real-world degradation of every HR patch, as the ``degradation`` section says)."""

    def __post_init__(self) -> None:
        at_least(self, 1, "max_train_images", "max_val_images")
        at_least(self, 0, "num_workers")


@dataclass(kw_only=True)
class ValidationConfig:
    """Validation during training and the choice of the best checkpoint."""

    every: int = 5000
    """Iterations between validations (also run at the end of each stage)."""
    warmup: int = 0
    """Iterations before a best checkpoint may be chosen."""
    pretrain_metric: str = "psnr"
    """Metric that picks ``pretrain_best`` (not ``lpips``)."""
    gan_metric: str = "lpips"
    """Metric that picks ``gan_best``; ``lpips`` falls back to ``perceptual`` without the LPIPS files."""
    lpips_vgg_weights: str | None = None
    """VGG16 features file for LPIPS in stage 2."""
    lpips_heads: str | None = None
    """LPIPS v0.1 linear heads file; LPIPS is skipped when unset."""

    def __post_init__(self) -> None:
        at_least(self, 1, "every")
        at_least(self, 0, "warmup")
        for name in ("pretrain_metric", "gan_metric"):
            if getattr(self, name) not in METRICS:
                fail(name, f"must be one of {list(METRICS)}")
        if self.pretrain_metric == "lpips":
            fail("pretrain_metric", "LPIPS is computed in the GAN stage only")


@dataclass(kw_only=True)
class CheckpointConfig:
    """Training-state files in ``RUN/checkpoints``."""

    every: int = 5000
    """Iterations between checkpoints (one is also written at a stage's end and when stopped)."""
    keep_last: int = 3
    """How many checkpoints to keep."""
    auto_resume: bool = True
    """Continue from the run folder's latest checkpoint when present (without ``--resume``)."""

    def __post_init__(self) -> None:
        at_least(self, 1, "every", "keep_last")


@dataclass(kw_only=True)
class LoggingConfig:
    """Console, metrics.jsonl, TensorBoard and W&B."""

    log_every: int = 100
    """Iterations between console lines and training scalars."""
    image_every: int = 5000
    """Iterations between LR/SR/HR image grids (TensorBoard/W&B)."""
    progress: bool = True
    """Show a tqdm progress bar."""
    tensorboard: bool = True
    """Write TensorBoard events to ``RUN/tensorboard``."""
    wandb: bool = False
    """Log to Weights & Biases (needs ``pip install 'esrgan[wandb]'``)."""
    wandb_project: str = "esrgan"
    """W&B project."""
    wandb_entity: str | None = None
    """W&B entity (None: the account's default)."""
    wandb_mode: Literal["online", "offline"] = "offline"
    """W&B mode; offline writes under ``RUN/wandb`` only."""

    def __post_init__(self) -> None:
        at_least(self, 1, "log_every", "image_every")


@dataclass(kw_only=True)
class EMAConfig:
    """Exponential moving average of the generator, released beside the raw weights."""

    enabled: bool = True
    """Keep an EMA of G."""
    decay: float = 0.999
    """EMA decay after warm-up, in [0, 1)."""

    def __post_init__(self) -> None:
        require(self, lambda v: 0 <= v < 1, "in [0, 1)", "decay")


@dataclass(kw_only=True)
class InterpolationConfig:
    """Network interpolation ``(1 - alpha) * G_psnr + alpha * G_gan`` written at the end of stage 2."""

    enabled: bool = True
    """Write ``RUN/weights/interp_alpha{alpha}.safetensors``."""
    alpha: float = 0.8
    """Weight of the GAN generator, in [0, 1]."""
    use_ema: bool = False
    """Interpolate the EMA weights instead of the raw ones."""

    def __post_init__(self) -> None:
        require(self, lambda v: 0 <= v <= 1, "in [0, 1]", "alpha")


@dataclass(kw_only=True)
class Config:
    """A whole training run; saved as ``RUN/config.yaml``."""

    scale_factor: int = 4
    """Upscaling factor: 1, 2, 4 or 8."""
    batch_size: int = 16
    """Global mini-batch: HR patches per iteration over all processes; each of N DDP processes takes
    ``batch_size / N``, so N must divide it."""
    img_channels: int = 3
    """Image channels of G's input and output."""
    seed: int = 0
    """Seed of G's and D's initialisation and of the data order, crops and augmentation (a resumed run
    sees the batches it would have seen)."""
    precision: str = "auto"
    """``auto``, ``fp32``, ``bf16`` or ``fp16`` autocast (see ``esrgan.device.resolve_precision``)."""
    device: str = "auto"
    """``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``."""
    max_nonfinite: int = 20
    """Consecutive skipped (non-finite loss) steps before the run stops."""
    cpu_threads: int | None = None
    """torch intra-op threads on CPU (None: torch's default)."""
    channels_last: bool = True
    """NHWC convolutions: 1.05-1.35x faster fp32 training steps on an AVX2 CPU, and the layout oneDNN's
    bf16 kernels (``precision: auto`` on CPUs with native bf16) are fast in (configs/README.md)."""
    pretraining: PretrainingConfig = field(default_factory=PretrainingConfig)
    """Stage 1 (PSNR-oriented)."""
    training: TrainingConfig = field(default_factory=TrainingConfig)
    """Stage 2 (GAN)."""
    model: ModelConfig = field(default_factory=ModelConfig)
    """Which generator and discriminator architectures are trained."""
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    """G's architecture; release weights carry it as metadata, so ``esrgan upscale`` needs no config."""
    compact: CompactGeneratorConfig = field(default_factory=CompactGeneratorConfig)
    """G's size when ``model.arch`` is ``compact``."""
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    """The VGG-style D's architecture (stage 2, ``model.discriminator: vgg``)."""
    unet_discriminator: UNetDiscriminatorConfig = field(default_factory=UNetDiscriminatorConfig)
    """The U-Net D's size (stage 2, ``model.discriminator: unet``)."""
    content_loss: ContentLossConfig = field(default_factory=ContentLossConfig)
    """Pixel loss: stage 1's objective, eta-weighted in stage 2, and reported in validation."""
    perceptual_loss: PerceptualLossConfig = field(default_factory=PerceptualLossConfig)
    """VGG perceptual loss of stage 2, also reported in validation (and the best-GAN fallback metric
    without LPIPS)."""
    data: DataConfig = field(default_factory=DataConfig)
    """Where the datasets named per stage live and how they are loaded."""
    degradation: DegradationConfig = field(default_factory=DegradationConfig)
    """Real-ESRGAN's degradation model, used when ``data.degradation`` is ``realesrgan``."""
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    """Validation and best-checkpoint choice."""
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    """Training-state files (resume)."""
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    """Console line, ``metrics.jsonl``, TensorBoard and W&B; rank 0 only under DDP, so the sinks see
    each event once."""
    ema: EMAConfig = field(default_factory=EMAConfig)
    """EMA of G, released as ``*_g_ema``."""
    interpolation: InterpolationConfig = field(default_factory=InterpolationConfig)
    """Network interpolation at the end of stage 2."""

    def __post_init__(self) -> None:
        if self.scale_factor not in (1, 2, 4, 8):
            fail("scale_factor", f"must be 1, 2, 4 or 8, got {self.scale_factor}")
        at_least(self, 1, "batch_size", "img_channels", "max_nonfinite", "cpu_threads")
        if self.precision not in PRECISION_NAMES:
            fail("precision", f"must be one of {list(PRECISION_NAMES)}, got {self.precision!r}")
        for section in ("pretraining", "training"):
            if getattr(self, section).cr_patch_size[0] % self.scale_factor:
                fail(f"{section}.cr_patch_size", f"must be a multiple of scale_factor {self.scale_factor}")
        if self.model.discriminator == "unet" and self.training.cr_patch_size[0] % 8:
            fail("training.cr_patch_size", "must be a multiple of 8 for the U-Net discriminator")
        crop = self.data.val_crop
        if crop is not None and (crop < 1 or crop % self.scale_factor):
            fail("data.val_crop", f"must be a positive multiple of scale_factor, got {crop}")

    def to_dict(self) -> dict[str, Any]:
        return _plain(dataclasses.asdict(self))

    def generator_config(self) -> ArchConfig:
        """The architecture of G that ``model.arch`` and its size section describe."""
        if self.model.arch == "compact":
            c = self.compact
            ch = self.img_channels
            return CompactConfig(
                in_ch=ch,
                out_ch=ch,
                num_feat=c.num_feat,
                num_conv=c.num_conv,
                upscale=self.scale_factor,
                act=c.act,
            )
        return RRDBNetConfig(**self.generator_kwargs())

    def generator_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``esrgan.models.RRDBNet`` for this config."""
        g = self.generator
        return {
            "in_ch": self.img_channels,
            "out_ch": self.img_channels,
            "num_feat": g.rrdb_channels,
            "num_block": g.num_basic_blocks,
            "num_grow_ch": g.growth_channels,
            "num_dense": g.num_dense_blocks,
            "num_convs": g.num_residual_blocks,
            "res_scale": g.residual_scaling,
            "scale": self.scale_factor,
            "upsampler": "pixelshuffle" if g.use_subpixel_conv else "nearest+conv",
        }

    def stage(self, name: StageName) -> PretrainingConfig | TrainingConfig:
        """The section of stage ``pretrain`` or ``gan``."""
        return self.pretraining if name == "pretrain" else self.training


def _plain(value: Any) -> Any:
    """Tuples as lists, so the YAML writer (safe_dump) can write them."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
