"""Stage set-up: data, G, D, optimisers, schedulers, loss scalers and EMA, fresh or from a checkpoint.

Seeding follows the run's ``seed``: a fresh stage-1 G is initialised from ``seed``, D from ``seed + 1``,
so a run and its resumed continuation build identical networks before the checkpoint is loaded.
"""

from __future__ import annotations

import dataclasses
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.optim import Adam, Optimizer
from torch.optim.lr_scheduler import CosineAnnealingLR, LRScheduler, MultiStepLR, StepLR
from torch.utils.data import DataLoader, Dataset

from esrgan.data import AugmentConfig, make_train_dataset, make_val_dataset
from esrgan.losses import ContentLoss, GanLoss, GeneratorLossWeights, PerceptualLoss, build_perceptual_loss
from esrgan.metrics import LPIPS
from esrgan.models import Generator, UNetDiscriminatorSN, VGGStyleDiscriminator, config_from_dict
from esrgan.training import distributed as ddp
from esrgan.training.checkpoint import TrainingState, restore_state
from esrgan.training.config import Config, StageName
from esrgan.training.ema import ModelEMA
from esrgan.training.errors import TrainingError
from esrgan.training.pool import PairPool
from esrgan.training.runtime import Runtime
from esrgan.training.sampling import IterationBatchSampler, SeededItems, iters_per_epoch
from esrgan.training.validation import Best
from esrgan.weights import load_generator


@dataclass(kw_only=True)
class GanParts:
    """The discriminator side of the GAN stage."""

    d: nn.Module
    opt: Optimizer
    sched: LRScheduler
    scaler: torch.amp.GradScaler


@dataclass(kw_only=True)
class Stage:
    """One stage's networks, optimisation state and progress: what a checkpoint holds."""

    name: StageName
    total: int
    """Iterations of the stage."""
    g: Generator
    g_train: nn.Module
    """``g``, or its DDP wrapper: what the training step calls."""
    opt_g: Optimizer
    sched_g: LRScheduler
    scaler_g: torch.amp.GradScaler
    ema: ModelEMA[Generator] | None
    gan: GanParts | None = None
    """Set in the GAN stage only."""
    psnr_weights: str | None = None
    """The PSNR-oriented generator the GAN stage started from (for network interpolation)."""
    iteration: int = 0
    best: Best | None = None
    nonfinite_streak: int = 0
    """Consecutive skipped steps."""
    pool: PairPool | None = None
    """Training-pair pool that mixes degradations across iterations (``degradation.pool_size``)."""

    def learning_rates(self) -> dict[str, float]:
        lrs = {"lr_g": float(self.opt_g.param_groups[0]["lr"])}
        if self.gan is not None:
            lrs["lr_d"] = float(self.gan.opt.param_groups[0]["lr"])
        return lrs

    def step_schedulers(self) -> None:
        self.sched_g.step()
        if self.gan is not None:
            self.gan.sched.step()


@dataclass(frozen=True, kw_only=True)
class Losses:
    """The training objectives; VGG weights are read once per run."""

    content: ContentLoss
    perceptual: PerceptualLoss
    gan_weights: GeneratorLossWeights
    """lambda/eta and the perceptual weight of G's GAN-stage loss."""
    r1_weight: float = 0.0
    """gamma of D's R1 penalty (0: off)."""
    gan_loss: GanLoss = "ragan"
    """Adversarial loss of G and D."""


def build_losses(cfg: Config, rt: Runtime, *, progress: bool) -> Losses:
    pl = cfg.perceptual_loss
    t = cfg.training
    try:
        with ddp.rank0_first(rt.dist):  # a URL is downloaded once, by rank 0
            perceptual = build_perceptual_loss(
                weights=pl.weights, arch=pl.arch, layer_weights=pl.layer_weights, criterion=pl.criterion,
                normalize_input=pl.normalize_input, normalize_loss=pl.normalize_loss,
                feature_norm=pl.feature_norm,
                progress=progress and rt.dist.is_main,
            )  # fmt: skip
    except (OSError, ValueError, RuntimeError) as exc:
        raise TrainingError(f"perceptual_loss.weights: {exc}") from exc
    return Losses(
        content=ContentLoss(criterion=cfg.content_loss.loss_f).to(rt.device),
        perceptual=perceptual.to(rt.device),
        gan_weights=GeneratorLossWeights(
            perceptual=t.g_perceptual_loss_scaling,
            adversarial=t.g_adversarial_loss_scaling,
            content=t.g_content_loss_scaling,
        ),
        r1_weight=t.d_r1_weight,
        gan_loss=t.gan_loss,
    )


def build_lpips(cfg: Config, rt: Runtime) -> LPIPS | None:
    """LPIPS for GAN-stage validation; None when its weight files are not configured."""
    v = cfg.validation
    if not (v.lpips_vgg_weights and v.lpips_heads):
        return None
    try:
        return LPIPS.from_files(vgg_weights=v.lpips_vgg_weights, heads=v.lpips_heads).to(rt.device).eval()
    except (OSError, ValueError) as exc:
        raise TrainingError(f"validation.lpips_*: {exc}") from exc


def build_datasets(cfg: Config, rt: Runtime, stage: StageName) -> tuple[Dataset[Any], Dataset[Any]]:
    """(training, validation) datasets of ``stage``; rank 0 downloads and caches first."""
    sc = cfg.stage(stage)
    root = Path(cfg.data.root).expanduser()
    with ddp.rank0_first(rt.dist):
        try:
            train_ds = make_train_dataset(
                sc.train_datasets, root=root, scale=cfg.scale_factor, patch_size=sc.cr_patch_size[0],
                stage=stage, augment=_augment_config(cfg.data.augment, stage),
                cache=cfg.data.cache, download=cfg.data.download, max_images=cfg.data.max_train_images,
                seed=cfg.seed, degradation=cfg.degradation if cfg.data.degradation == "realesrgan" else None,
            )  # fmt: skip
            val_ds = make_val_dataset(
                sc.val_datasets, root=root, scale=cfg.scale_factor, crop=cfg.data.val_crop,
                max_images=cfg.data.max_val_images, cache=cfg.data.cache, download=cfg.data.download,
            )  # fmt: skip
        except (OSError, ValueError, RuntimeError) as exc:
            raise TrainingError(f"data: {exc}") from exc
    return train_ds, val_ds


def _augment_config(choice: bool | str, stage: StageName) -> AugmentConfig | None:
    """``data.augment`` as an AugmentConfig: the seed's per stage (None), spatial only, or none."""
    if choice is True or choice == "seed":
        return None  # the dataset applies AugmentConfig.for_stage(stage)
    if choice == "spatial":
        return dataclasses.replace(AugmentConfig.for_stage(stage), jpeg_p=0.0, dropout_p=0.0)
    return AugmentConfig.none()


def make_loader(
    cfg: Config, rt: Runtime, dataset: Dataset[Any], *, stage: StageName, num_items: int, start: int
) -> DataLoader[Any]:
    """This process's share of the global batches from iteration ``start`` on (see ``sampling.py``)."""
    sampler = IterationBatchSampler(
        num_items=num_items, batch_size=cfg.batch_size, seed=cfg.seed, stage=stage, start_iter=start,
        rank=rt.dist.rank, world_size=rt.dist.world_size,
    )  # fmt: skip
    return DataLoader(
        SeededItems(dataset),
        batch_sampler=sampler,
        num_workers=cfg.data.num_workers,
        pin_memory=rt.device.type == "cuda",
        worker_init_fn=_ignore_stop_signals,
    )


def _ignore_stop_signals(_worker_id: int) -> None:
    """Workers leave SIGINT/SIGTERM to the trainer, which saves a checkpoint and then shuts them down.

    A Ctrl-C or ``kill -- -PGID`` reaches the whole process group; a worker that died of it first would
    turn the orderly stop into a DataLoader error and lose the iterations since the last checkpoint.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # Forked with both blocked (see the loop): a stop sent meanwhile is discarded now, not fatal.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})


def build_stage(
    cfg: Config,
    rt: Runtime,
    *,
    stage: StageName,
    num_items: int,
    state: TrainingState | None,
    generator: str | None,
    weights_dir: Path,
    progress: bool,
) -> Stage:
    """G (and in the GAN stage D) with optimisers, schedulers, scalers and EMA, ready to train.

    ``state`` resumes a checkpoint. Otherwise stage 1 starts from ``pretraining.init_weights`` or a seeded
    random G, and the GAN stage
    from ``generator`` (a weights file or zoo name) or, when None, the run's own stage-1 weights.
    """
    sc = cfg.stage(stage)
    total = stage_length(cfg, stage, num_items)
    if state is not None:
        g, psnr_weights = config_from_dict(state.generator_config).build(), state.psnr_weights
    elif stage == "pretrain" and cfg.pretraining.init_weights is not None:
        g, _ = _starting_generator(cfg, rt, cfg.pretraining.init_weights, weights_dir, progress=progress)
        psnr_weights = None
        if g.config.to_dict() != cfg.generator_config().to_dict():
            raise TrainingError(
                f"pretraining.init_weights: {cfg.pretraining.init_weights} is {g.config.summary()}, which "
                "the generator section does not describe"
            )
    elif stage == "pretrain":
        torch.manual_seed(cfg.seed)
        g, psnr_weights = cfg.generator_config().build(), None
    else:
        g, psnr_weights = _starting_generator(cfg, rt, generator, weights_dir, progress=progress)
    g = rt.place(g).train()
    lr_g = cfg.pretraining.lr if stage == "pretrain" else cfg.training.g_lr
    opt_g = Adam(g.parameters(), lr=lr_g, betas=(sc.betas[0], sc.betas[1]))
    s = Stage(
        name=stage, total=total, g=g, g_train=g, opt_g=opt_g, sched_g=_g_scheduler(cfg, stage, opt_g, total),
        scaler_g=rt.grad_scaler(), ema=ModelEMA(g, decay=cfg.ema.decay) if cfg.ema.enabled else None,
        psnr_weights=psnr_weights,
    )  # fmt: skip
    if stage == "gan":
        s.gan = _discriminator(cfg, rt)
    s.pool = _pool(cfg, rt)
    if state is not None:
        restore_state(s, state)
    else:  # every process starts from rank 0's networks
        ddp.broadcast_module(s.g, rt.dist)
        if s.gan is not None:
            ddp.broadcast_module(s.gan.d, rt.dist)
        if s.ema is not None:
            s.ema = ModelEMA(s.g, decay=cfg.ema.decay)
    s.g_train = rt.wrap(s.g)
    return s


def _pool(cfg: Config, rt: Runtime) -> PairPool | None:
    """Each process's share of ``degradation.pool_size`` (real-world degradations only)."""
    size = cfg.degradation.pool_size
    if cfg.data.degradation != "realesrgan" or size == 0:
        return None
    local = cfg.batch_size // rt.dist.world_size
    if size % cfg.batch_size:
        raise TrainingError(f"degradation.pool_size: {size} is not a multiple of batch_size {cfg.batch_size}")
    return PairPool(size=size // rt.dist.world_size, batch_size=local, seed=cfg.seed * 1009 + rt.dist.rank)


def stage_length(cfg: Config, stage: StageName, num_items: int) -> int:
    """Iterations of ``stage``: ``total_iters``, or ``num_epoch`` passes over ``num_items`` images."""
    sc = cfg.stage(stage)
    if sc.total_iters is not None:
        return sc.total_iters
    assert sc.num_epoch is not None  # the config requires num_epoch or total_iters
    return sc.num_epoch * iters_per_epoch(num_items, cfg.batch_size)


def _g_scheduler(cfg: Config, stage: StageName, opt: Optimizer, total: int) -> LRScheduler:
    p, t = cfg.pretraining, cfg.training
    if stage == "gan":
        return MultiStepLR(opt, milestones=t.g_sched_steps, gamma=t.g_sched_gamma)
    if p.scheduler == "cosine":
        return CosineAnnealingLR(opt, T_max=max(1, total), eta_min=p.lr_min)
    return StepLR(opt, step_size=p.sched_step, gamma=p.sched_gamma)


def _discriminator(cfg: Config, rt: Runtime) -> GanParts:
    torch.manual_seed(cfg.seed + 1)
    dc, uc, t = cfg.discriminator, cfg.unet_discriminator, cfg.training
    d: nn.Module
    if cfg.model.discriminator == "unet":
        d = UNetDiscriminatorSN(
            num_in_ch=cfg.img_channels, num_feat=uc.num_feat, skip_connection=uc.skip_connection
        )
    else:
        d = VGGStyleDiscriminator(
            in_ch=cfg.img_channels, channels=dc.vgg_blk_ch, hidden=dc.fc_features, pool_size=dc.pool_size
        )
    if rt.dist.enabled and rt.device.type == "cuda":
        d = nn.SyncBatchNorm.convert_sync_batchnorm(d)
    d = rt.place(d).train()
    opt = Adam(d.parameters(), lr=t.d_lr, betas=(t.betas[0], t.betas[1]))
    sched = MultiStepLR(opt, milestones=t.d_sched_steps, gamma=t.d_sched_gamma)
    return GanParts(d=d, opt=opt, sched=sched, scaler=rt.grad_scaler())


def _starting_generator(
    cfg: Config, rt: Runtime, spec: str | None, weights_dir: Path, *, progress: bool
) -> tuple[Generator, str]:
    """The PSNR-oriented G the GAN stage starts from, and where it came from (for interpolation)."""
    if spec is None:
        suffix = "_ema" if cfg.interpolation.use_ema and cfg.ema.enabled else ""
        own = weights_dir / f"pretrain_g{suffix}.safetensors"
        if not own.is_file():
            raise TrainingError(
                "the GAN stage needs a PSNR-oriented generator: pass --generator WEIGHTS or run --stage both"
            )
        spec = str(own)
    try:
        with ddp.rank0_first(rt.dist):  # zoo names may download
            g = load_generator(spec, progress=progress and rt.dist.is_main)
    except (OSError, ValueError) as exc:
        raise TrainingError(f"--generator: {exc}") from exc
    if g.scale != cfg.scale_factor:
        raise TrainingError(f"{spec}: generator is x{g.scale} but scale_factor is {cfg.scale_factor}")
    if g.config.arch != cfg.model.arch:
        raise TrainingError(f"{spec}: generator is {g.config.arch} but model.arch is {cfg.model.arch}")
    # A fresh module keeps the loaded weights but none of the loader's module state (eval mode, hooks).
    fresh = g.config.build()
    fresh.load_state_dict(g.state_dict())
    return fresh, spec
