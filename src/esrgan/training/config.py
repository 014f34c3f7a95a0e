"""Typed training configuration: the seed's JSON keys plus data, validation, logging and checkpointing.

A config file (JSON or YAML) is a nested mapping whose keys are the field names below; every section and
field is optional (defaults are the seed's ``esrgan_default.json`` / the ESRGAN paper). Unknown keys and
bad values raise ``ConfigError`` naming the dotted key. Command-line overrides use ``key.sub=value``
(``key/sub=value`` as in the seed's table works too); values are parsed as YAML scalars or lists.

Iterations: the seed counts ``num_epoch`` passes over the training set with one random patch per image
and ``batch_size`` patches per iteration, so ``iterations = num_epoch * (num_train_images //
batch_size)`` (at least one per epoch). ``total_iters`` (when set) is used instead of ``num_epoch``.
Scheduler steps (``sched_step``, ``g_sched_steps``, ``d_sched_steps``) are iterations, as in the seed.

Relative paths (``data.root``, weight files) are relative to the working directory.
"""

from __future__ import annotations

import dataclasses
import json
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

STAGES = ("pretrain", "gan")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
METRICS = ("psnr", "ssim", "lpips", "content", "perceptual")


class ConfigError(ValueError):
    """A config file, key or value is invalid; the message names the key."""


@dataclass
class PretrainingConfig:
    """Stage 1, PSNR-oriented: generator only, content loss, Adam + StepLR."""

    num_epoch: int | None = 10000  # passes over the training set (see module doc)
    total_iters: int | None = None  # iterations; wins over num_epoch when set
    cr_patch_size: list[int] = field(default_factory=lambda: [128, 128])  # HR crop (H, W)
    lr: float = 2e-4
    betas: list[float] = field(default_factory=lambda: [0.9, 0.99])
    sched_step: int = 200000  # StepLR period in iterations
    sched_gamma: float = 0.5
    scheduler: Literal["step", "cosine"] = "step"  # step: the paper's StepLR; cosine: lr -> lr_min
    lr_min: float = 1e-7  # final learning rate of the cosine schedule
    train_datasets: list[str] = field(default_factory=lambda: ["div2k"])
    val_datasets: list[str] = field(default_factory=lambda: ["div2k"])


@dataclass
class TrainingConfig:
    """Stage 2, GAN: G with D frozen, then D with G's output detached; Adam + MultiStepLR each."""

    num_epoch: int | None = 8000
    total_iters: int | None = None
    cr_patch_size: list[int] = field(default_factory=lambda: [128, 128])
    g_lr: float = 1e-4
    d_lr: float = 1e-4
    betas: list[float] = field(default_factory=lambda: [0.9, 0.99])
    g_sched_steps: list[int] = field(default_factory=lambda: [50000, 100000, 200000, 300000])
    g_sched_gamma: float = 0.5
    d_sched_steps: list[int] = field(default_factory=lambda: [50000, 100000, 200000, 300000])
    d_sched_gamma: float = 0.5
    g_adversarial_loss_scaling: float = 0.005  # lambda
    g_content_loss_scaling: float = 0.01  # eta
    g_perceptual_loss_scaling: float = 1.0
    train_datasets: list[str] = field(default_factory=lambda: ["div2k"])
    val_datasets: list[str] = field(default_factory=lambda: ["div2k"])


@dataclass
class GeneratorConfig:
    """RRDBNet hyper-parameters (seed names; mapped to BasicSR's RRDBNet arguments)."""

    rrdb_channels: int = 64  # num_feat
    growth_channels: int = 32  # num_grow_ch
    num_basic_blocks: int = 23  # num_block (RRDBs)
    num_dense_blocks: int = 3  # dense blocks per RRDB
    num_residual_blocks: int = 5  # convs per dense block
    residual_scaling: float = 0.2
    use_subpixel_conv: bool = False  # pixel-shuffle instead of nearest+conv upsampling


@dataclass
class DiscriminatorConfig:
    """VGG-style discriminator."""

    vgg_blk_ch: list[int] = field(default_factory=lambda: [64, 64, 128, 128, 256, 256, 512, 512])
    fc_features: list[int] = field(default_factory=lambda: [100])
    pool_size: int = 4


@dataclass
class ContentLossConfig:
    loss_f: Literal["l1", "l2"] = "l1"


@dataclass
class PerceptualLossConfig:
    """VGG features before activation; ``weights`` is a file, a URL or ``torchvision`` (official URL)."""

    layer_weights: dict[str, float] = field(default_factory=lambda: {"conv5_4": 1.0})
    normalize_input: bool = True  # ImageNet mean/std
    normalize_loss: bool = False  # divide by the sum of layer weights
    arch: str = "vgg19"
    criterion: Literal["l1", "l2"] = "l1"
    weights: str = "torchvision"


@dataclass
class DataConfig:
    root: str = "data"  # dataset root (downloads and folder sources live here)
    val_crop: int | None = None  # HR centre crop for validation; None = full images
    max_train_images: int | None = None
    max_val_images: int | None = None
    num_workers: int = 2
    # true/"seed": the seed's per-stage flips/transposes/JPEG/dropout; "spatial": flips/transposes only
    # (clean bicubic LR, for PSNR-oriented models); false/"none": random crops only
    augment: bool | Literal["seed", "spatial", "none"] = True
    cache: bool = True
    download: bool = False


@dataclass
class ValidationConfig:
    every: int = 5000  # iterations between validations (and at the end of each stage)
    warmup: int = 0  # iterations before a best checkpoint may be chosen
    pretrain_metric: str = "psnr"
    gan_metric: str = "lpips"  # falls back to "perceptual" (with a note) when LPIPS files are not set
    lpips_vgg_weights: str | None = None  # VGG16 features file for LPIPS (stage 2)
    lpips_heads: str | None = None  # LPIPS v0.1 linear heads file; LPIPS is skipped when unset


@dataclass
class CheckpointConfig:
    every: int = 5000  # iterations between training-state checkpoints (also written at exit)
    keep_last: int = 3
    auto_resume: bool = True  # continue from the run folder's latest checkpoint when present


@dataclass
class LoggingConfig:
    log_every: int = 100  # iterations between console lines / scalar logs
    image_every: int = 5000  # iterations between LR/SR/HR image grids (TensorBoard/W&B)
    progress: bool = True  # tqdm progress bar
    tensorboard: bool = True
    wandb: bool = False
    wandb_project: str = "esrgan"
    wandb_entity: str | None = None
    wandb_mode: Literal["online", "offline"] = "offline"


@dataclass
class EMAConfig:
    enabled: bool = True
    decay: float = 0.999


@dataclass
class InterpolationConfig:
    """Network interpolation ``(1 - alpha) * G_psnr + alpha * G_gan`` written at the end of stage 2."""

    enabled: bool = True
    alpha: float = 0.8
    use_ema: bool = False  # interpolate the EMA weights instead of the raw ones


@dataclass
class Config:
    scale_factor: int = 4
    batch_size: int = 16  # global mini-batch (split across DDP processes)
    img_channels: int = 3
    seed: int = 0
    precision: str = "auto"  # auto | fp32 | bf16 | fp16
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    max_nonfinite: int = 20  # consecutive skipped (non-finite) steps before the run stops
    cpu_threads: int | None = None  # torch intra-op threads on CPU (None: torch's default)
    channels_last: bool = False  # NHWC convolutions (measured 1.2-1.35x faster training steps on AVX2 CPUs)
    pretraining: PretrainingConfig = field(default_factory=PretrainingConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    content_loss: ContentLossConfig = field(default_factory=ContentLossConfig)
    perceptual_loss: PerceptualLossConfig = field(default_factory=PerceptualLossConfig)
    data: DataConfig = field(default_factory=DataConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    ema: EMAConfig = field(default_factory=EMAConfig)
    interpolation: InterpolationConfig = field(default_factory=InterpolationConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

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


# ---------------------------------------------------------------------------------------------------------
# Parsing


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _convert(value: Any, tp: Any, key: str) -> Any:
    """Check/convert one value against a type hint; raise ConfigError naming ``key``."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, key)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{key}: invalid value {value!r}")
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{key}: must be one of {list(args)}, got {value!r}")
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping (section), got {value!r}")
        return _build(tp, value, key + ".")
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        return [_convert(v, args[0], f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return {_convert(k, args[0], key): _convert(v, args[1], f"{key}.{k}") for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)  # 2e5 in YAML/JSON is a float
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            if isinstance(value, str):
                try:
                    return float(value)  # YAML 1.1 reads "2e-4" as a string
                except ValueError:
                    pass
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{key}: unsupported type {_type_name(tp)}")  # pragma: no cover - schema bug


def _build(cls: type, data: dict[str, Any], prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = [k for k in data if k not in names]
    if unknown:
        raise ConfigError(f"{prefix}{unknown[0]}: unknown key (valid keys: {', '.join(sorted(names))})")
    kwargs = {k: _convert(v, hints[k], prefix + k) for k, v in data.items()}
    return cls(**kwargs)


def _check(cfg: Config) -> None:
    def fail(key: str, msg: str) -> None:
        raise ConfigError(f"{key}: {msg}")

    if cfg.scale_factor not in (1, 2, 4, 8):
        fail("scale_factor", f"must be 1, 2, 4 or 8, got {cfg.scale_factor}")
    for key, value in (
        ("batch_size", cfg.batch_size),
        ("img_channels", cfg.img_channels),
        ("max_nonfinite", cfg.max_nonfinite),
        ("generator.rrdb_channels", cfg.generator.rrdb_channels),
        ("generator.growth_channels", cfg.generator.growth_channels),
        ("generator.num_basic_blocks", cfg.generator.num_basic_blocks),
        ("generator.num_dense_blocks", cfg.generator.num_dense_blocks),
        ("discriminator.pool_size", cfg.discriminator.pool_size),
        ("validation.every", cfg.validation.every),
        ("checkpoint.every", cfg.checkpoint.every),
        ("checkpoint.keep_last", cfg.checkpoint.keep_last),
        ("logging.log_every", cfg.logging.log_every),
        ("logging.image_every", cfg.logging.image_every),
    ):
        if value < 1:
            fail(key, f"must be >= 1, got {value}")
    if cfg.cpu_threads is not None and cfg.cpu_threads < 1:
        fail("cpu_threads", f"must be >= 1, got {cfg.cpu_threads}")
    if cfg.generator.num_residual_blocks < 2:
        fail("generator.num_residual_blocks", "must be >= 2")
    if cfg.precision not in PRECISIONS:
        fail("precision", f"must be one of {list(PRECISIONS)}, got {cfg.precision!r}")
    if not cfg.discriminator.vgg_blk_ch or any(c < 1 for c in cfg.discriminator.vgg_blk_ch):
        fail("discriminator.vgg_blk_ch", "must be a non-empty list of positive channel counts")
    if any(c < 1 for c in cfg.discriminator.fc_features):
        fail("discriminator.fc_features", "must be positive")
    for section, stage in (("pretraining", cfg.pretraining), ("training", cfg.training)):
        if stage.total_iters is None and stage.num_epoch is None:
            fail(f"{section}.num_epoch", "set num_epoch or total_iters")
        if stage.total_iters is not None and stage.total_iters < 0:
            fail(f"{section}.total_iters", "must be >= 0")
        if stage.num_epoch is not None and stage.num_epoch < 0:
            fail(f"{section}.num_epoch", "must be >= 0")
        crop = stage.cr_patch_size
        if len(crop) != 2 or crop[0] != crop[1] or crop[0] < 1:
            fail(f"{section}.cr_patch_size", f"must be a square [H, W] of positive sizes, got {crop}")
        if crop[0] % cfg.scale_factor:
            fail(f"{section}.cr_patch_size", f"must be a multiple of scale_factor {cfg.scale_factor}")
        if len(stage.betas) != 2 or not all(0 <= b < 1 for b in stage.betas):
            fail(f"{section}.betas", f"must be two numbers in [0, 1), got {stage.betas}")
        for key in ("train_datasets", "val_datasets"):
            if not getattr(stage, key):
                fail(f"{section}.{key}", "must name at least one dataset")
    p, t = cfg.pretraining, cfg.training
    for key, value in (("pretraining.lr", p.lr), ("training.g_lr", t.g_lr), ("training.d_lr", t.d_lr)):
        if not value > 0:
            fail(key, f"must be > 0, got {value}")
    if p.sched_step < 1:
        fail("pretraining.sched_step", "must be >= 1")
    for key, value in (
        ("pretraining.sched_gamma", p.sched_gamma),
        ("training.g_sched_gamma", t.g_sched_gamma),
        ("training.d_sched_gamma", t.d_sched_gamma),
    ):
        if not 0 < value <= 1:
            fail(key, f"must be in (0, 1], got {value}")
    for key, steps in (
        ("training.g_sched_steps", t.g_sched_steps),
        ("training.d_sched_steps", t.d_sched_steps),
    ):
        if any(s < 1 for s in steps) or list(steps) != sorted(steps):
            fail(key, f"must be increasing positive iterations, got {steps}")
    for key, value in (
        ("training.g_adversarial_loss_scaling", t.g_adversarial_loss_scaling),
        ("training.g_content_loss_scaling", t.g_content_loss_scaling),
        ("training.g_perceptual_loss_scaling", t.g_perceptual_loss_scaling),
    ):
        if value < 0:
            fail(key, f"must be >= 0, got {value}")
    pl = cfg.perceptual_loss
    if not pl.layer_weights:
        fail("perceptual_loss.layer_weights", "must name at least one layer")
    from esrgan.models import vgg_layer_names

    try:
        names = vgg_layer_names(pl.arch)
    except ValueError as exc:
        fail("perceptual_loss.arch", str(exc))
    for layer, w in pl.layer_weights.items():
        if layer not in names:
            fail(f"perceptual_loss.layer_weights.{layer}", f"not a layer of {pl.arch}")
        if w < 0:
            fail(f"perceptual_loss.layer_weights.{layer}", f"weight must be >= 0, got {w}")
    if pl.normalize_loss and sum(pl.layer_weights.values()) <= 0:
        fail("perceptual_loss.normalize_loss", "needs a positive sum of layer weights")
    if cfg.data.val_crop is not None and (cfg.data.val_crop < 1 or cfg.data.val_crop % cfg.scale_factor):
        fail("data.val_crop", f"must be a positive multiple of scale_factor, got {cfg.data.val_crop}")
    for key, value in (
        ("data.max_train_images", cfg.data.max_train_images),
        ("data.max_val_images", cfg.data.max_val_images),
    ):
        if value is not None and value < 1:
            fail(key, f"must be >= 1, got {value}")
    if cfg.data.num_workers < 0:
        fail("data.num_workers", "must be >= 0")
    if cfg.validation.warmup < 0:
        fail("validation.warmup", "must be >= 0")
    for key in ("pretrain_metric", "gan_metric"):
        if getattr(cfg.validation, key) not in METRICS:
            fail(f"validation.{key}", f"must be one of {list(METRICS)}")
    if cfg.validation.pretrain_metric == "lpips":
        fail("validation.pretrain_metric", "LPIPS is computed in the GAN stage only")
    if not 0 <= cfg.pretraining.lr_min <= cfg.pretraining.lr:
        fail("pretraining.lr_min", f"must be in [0, pretraining.lr], got {cfg.pretraining.lr_min}")
    if not 0 <= cfg.ema.decay < 1:
        fail("ema.decay", f"must be in [0, 1), got {cfg.ema.decay}")
    if not 0 <= cfg.interpolation.alpha <= 1:
        fail("interpolation.alpha", f"must be in [0, 1], got {cfg.interpolation.alpha}")


def config_from_dict(data: dict[str, Any]) -> Config:
    """Validate a nested mapping (seed JSON layout) into a ``Config``."""
    if not isinstance(data, dict):
        raise ConfigError(f"config must be a mapping at the top level, got {type(data).__name__}")
    cfg = _build(Config, data)
    _check(cfg)
    return cfg


def parse_override(text: str) -> tuple[list[str], Any]:
    """``a.b=value`` -> (["a", "b"], parsed value); values are YAML (numbers, lists, true/false, null)."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"{text}: override must look like key.sub=value")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"{key}: cannot parse value {raw!r}") from exc
    return key.replace("/", ".").split("."), value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return a copy of ``data`` with ``key.sub=value`` overrides applied (sections created as needed)."""
    out = json.loads(json.dumps(data))
    for text in overrides:
        path, value = parse_override(text)
        node = out
        for i, part in enumerate(path[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"{'.'.join(path[: i + 1])}: is a value, not a section")
            node = child
        node[path[-1]] = value
    return out


def read_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config ({exc.strerror or exc})") from exc
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: invalid {'JSON' if path.suffix == '.json' else 'YAML'}: {exc}") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    return data


def load_config(path: str | os.PathLike[str] | None = None, overrides: list[str] | None = None) -> Config:
    """Load a JSON/YAML config (or the defaults when ``path`` is None) and apply CLI overrides."""
    data = read_config_file(path) if path is not None else {}
    data = apply_overrides(data, list(overrides or []))
    try:
        return config_from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}" if path is not None else str(exc)) from None


def save_config(cfg: Config, path: str | os.PathLike[str]) -> None:
    """Write the resolved config (YAML), atomically."""
    from esrgan.utils import atomic_write

    with atomic_write(path) as tmp:
        tmp.write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False), encoding="utf-8")
