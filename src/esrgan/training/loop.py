"""The two-stage ESRGAN training loop (iteration-counted, resumable, optionally distributed).

Stage ``pretrain`` (PSNR-oriented) updates G with the content loss. Stage ``gan`` starts from a
PSNR-oriented G and, per mini-batch, updates G with D frozen (perceptual + lambda * RaGAN + eta *
content), then D on the same batch with G's output detached. Both stages are step functions over one
loop that validates, logs and checkpoints every N iterations.

Run folder layout::

    RUN/config.yaml            resolved configuration
    RUN/metrics.jsonl          one JSON record per log/validation event
    RUN/tensorboard/           TensorBoard scalars and LR/SR/HR grids
    RUN/checkpoints/*.pt       training states (last K kept)
    RUN/weights/*.safetensors  release weights: pretrain_g, gan_g (+ _ema), *_best, interp_alpha*

Distributed training (torchrun): G is wrapped in DistributedDataParallel. D is used in two phases per
iteration (frozen inside the G step, trained in the D step) and called twice per backward, which DDP's
reducer does not model, so D's gradients are averaged explicitly after its backward and its BatchNorm
running statistics are averaged after each step. The RaGAN means ``E[C(x)]`` are taken over the global
batch (differentiable all-gather), and on CUDA D uses SyncBatchNorm, so both stages follow single-process
training with the same global batch. On CPU (no SyncBatchNorm) BatchNorm normalises each rank's share of
the batch, so there only the pretrain stage (G has no BatchNorm) matches single-process training exactly.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import signal
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from esrgan.losses import (
    ContentLoss,
    GeneratorLossWeights,
    PerceptualLoss,
    build_perceptual_loss,
    generator_total_loss,
    ragan_d_loss,
    ragan_g_loss,
)
from esrgan.models import RRDBNet, VGGStyleDiscriminator
from esrgan.training import distributed as ddp
from esrgan.training.checkpoint import (
    capture_rng_state,
    load_latest,
    restore_rng_state,
    save_checkpoint,
)
from esrgan.training.config import STAGES, Config, save_config
from esrgan.training.ema import ModelEMA
from esrgan.training.logging import RunLogger
from esrgan.training.sampling import IterationBatchSampler, SeededItems, iters_per_epoch

HIGHER_IS_BETTER = {"psnr": True, "ssim": True, "lpips": False, "content": False, "perceptual": False}
CHECKPOINT_FORMAT = 1


class TrainingError(RuntimeError):
    """The run cannot start or continue; the message is one line meant for the user."""


@dataclass
class TrainResult:
    run_dir: Path
    completed: bool  # False when stopped early (signal or stop_after); resume continues it
    stage: str
    iteration: int
    weights: dict[str, Path] = field(default_factory=dict)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise TrainingError(f"device {name!r} requested but CUDA is not available")
    return device


def _cpu_has_bf16() -> bool:
    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except AttributeError:  # older torch: no probe, stay in fp32
        return False


def resolve_amp(precision: str, device: torch.device) -> tuple[torch.dtype | None, bool]:
    """(autocast dtype or None, use a GradScaler) for a precision name on a device."""
    if precision == "fp32":
        return None, False
    if precision == "auto":
        if device.type == "cuda":
            return (torch.bfloat16, False) if torch.cuda.is_bf16_supported() else (torch.float16, True)
        # bf16 autocast only pays off on CPUs with native bf16 (AVX512-BF16 / AMX); elsewhere fp32.
        return (torch.bfloat16, False) if _cpu_has_bf16() else (None, False)
    if precision == "bf16":
        return torch.bfloat16, False
    if precision == "fp16":
        return torch.float16, True
    raise TrainingError(f"unknown precision {precision!r}")


class _StopRequest:
    """SIGINT/SIGTERM set a flag; the loop checkpoints at the next iteration boundary and returns."""

    def __init__(self) -> None:
        self.requested = False
        self._old: dict[int, Any] = {}

    def __enter__(self) -> _StopRequest:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: object) -> None:
        if self.requested:  # second signal: give up immediately
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)


@dataclass
class _StageState:
    """Everything one stage trains and checkpoints."""

    stage: str
    total: int
    g: RRDBNet
    g_train: nn.Module  # g, or its DDP wrapper
    opt_g: torch.optim.Optimizer
    sched_g: torch.optim.lr_scheduler.LRScheduler
    scaler_g: torch.amp.GradScaler
    ema: ModelEMA | None
    d: nn.Module | None = None
    opt_d: torch.optim.Optimizer | None = None
    sched_d: torch.optim.lr_scheduler.LRScheduler | None = None
    scaler_d: torch.amp.GradScaler | None = None
    iteration: int = 0
    best: dict[str, Any] = field(default_factory=dict)
    nonfinite_streak: int = 0
    psnr_weights: str | None = None  # stage-1 generator used for interpolation


class Trainer:
    def __init__(
        self,
        config: Config,
        *,
        run_dir: Path,
        stage: str = "both",
        generator: str | None = None,
        resume: bool | None = None,
        stop_after: int | None = None,
        progress: bool | None = None,
        console: Callable[[str], None] | None = None,
    ) -> None:
        if stage not in ("both", *STAGES):
            raise TrainingError(f"unknown stage {stage!r}: use pretrain, gan or both")
        if stop_after is not None and stop_after < 0:
            raise TrainingError("stop_after must be >= 0")
        self.cfg = config
        self.run_dir = Path(run_dir)
        self.stages = list(STAGES) if stage == "both" else [stage]
        self.generator_spec = generator
        self.resume = resume
        self.stop_after = stop_after
        self.progress = config.logging.progress if progress is None else progress
        self._console = console
        self.iters_run = 0
        self.weights: dict[str, Path] = {}
        self._finished_pretrain: int | None = None

    # ----------------------------------------------------------------------------------------- set-up
    def run(self) -> TrainResult:
        cfg = self.cfg
        device = resolve_device(cfg.device)
        self.dist = ddp.setup_distributed(device)
        if self.dist.enabled and device.type == "cuda":
            device = torch.device("cuda", self.dist.local_rank)
            torch.cuda.set_device(device)
        self.device = device
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed training patch sizes: pick the fastest kernels once
        if device.type == "cpu" and cfg.cpu_threads is not None:
            torch.set_num_threads(cfg.cpu_threads)
        self.amp_dtype, use_scaler = resolve_amp(cfg.precision, device)
        self.use_scaler = use_scaler
        self.memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
        self.ckpt_dir = self.run_dir / "checkpoints"
        self.weights_dir = self.run_dir / "weights"
        self.logger: RunLogger | None = None
        try:
            state = self._find_resume_state()
            if self.dist.is_main:
                self.run_dir.mkdir(parents=True, exist_ok=True)
                save_config(cfg, self.run_dir / "config.yaml")
            try:
                self.logger = RunLogger(run_dir=self.run_dir, config=cfg, enabled=self.dist.is_main)
            except (ImportError, RuntimeError, OSError) as exc:
                raise TrainingError(f"logging: {exc}") from exc
            self.content = ContentLoss(criterion=cfg.content_loss.loss_f).to(device)
            with ddp.rank0_first(self.dist):  # a URL is downloaded once, by rank 0
                self.perceptual = self._build_perceptual().to(device)
            self.lpips: nn.Module | None = None
            result = TrainResult(run_dir=self.run_dir, completed=True, stage=self.stages[-1], iteration=0)
            with _StopRequest() as self.stop:
                for stage in self.stages:
                    if state is not None and STAGES.index(stage) < STAGES.index(state["stage"]):
                        continue
                    own = state if state is not None and state["stage"] == stage else None
                    state = None
                    done, iteration = self._run_stage(stage, own)
                    result.stage, result.iteration = stage, iteration
                    if not done:
                        result.completed = False
                        break
            result.weights = dict(self.weights)
            return result
        finally:
            if self.logger is not None:
                self.logger.close()
            ddp.cleanup_distributed(self.dist)

    def _say(self, text: str) -> None:
        if not self.dist.is_main:
            return
        if self._console is not None:
            self._console(text)
        else:
            from tqdm.auto import tqdm

            tqdm.write(text)

    def _find_resume_state(self) -> dict[str, Any] | None:
        found = load_latest(self.ckpt_dir)
        if found is None:
            if self.resume:
                raise TrainingError(f"{self.run_dir}: nothing to resume (no checkpoints in {self.ckpt_dir})")
            return None
        path, state = found
        if self.resume is False or (self.resume is None and not self.cfg.checkpoint.auto_resume):
            raise TrainingError(
                f"{self.run_dir}: run folder already has checkpoints; "
                "pass --resume or choose another --run-dir"
            )
        if state["stage"] not in self.stages:
            if state["stage"] == "gan":
                raise TrainingError(f"{path}: run is already in the GAN stage; use --stage both or gan")
            if state["iteration"] < state["total"]:
                raise TrainingError(
                    f"{path}: the pretrain stage is unfinished; use --stage both (or pretrain) to continue it"
                )
            # `--stage gan` after a finished `--stage pretrain`: the GAN stage starts from weights/pretrain_g.
            self._finished_pretrain = int(state["total"])
            return None
        self._say(f"resuming from {path} ({state['stage']} iteration {state['iteration']})")
        return state

    def _build_perceptual(self) -> PerceptualLoss:
        pl = self.cfg.perceptual_loss
        try:
            return build_perceptual_loss(
                weights=pl.weights,
                arch=pl.arch,
                layer_weights=pl.layer_weights,
                criterion=pl.criterion,
                normalize_input=pl.normalize_input,
                normalize_loss=pl.normalize_loss,
                progress=self.progress and self.dist.is_main,
            )
        except (OSError, ValueError, RuntimeError) as exc:
            raise TrainingError(f"perceptual_loss.weights: {exc}") from exc

    def _build_lpips(self) -> nn.Module:
        from esrgan.metrics import LPIPS

        v = self.cfg.validation
        try:
            lpips = LPIPS.from_files(vgg_weights=v.lpips_vgg_weights, heads=v.lpips_heads)
            return lpips.to(self.device).eval()
        except (OSError, ValueError) as exc:
            raise TrainingError(f"validation.lpips_*: {exc}") from exc

    def _datasets(self, stage: str) -> tuple[torch.utils.data.Dataset, torch.utils.data.Dataset]:
        from esrgan.data import make_train_dataset, make_val_dataset

        cfg = self.cfg
        sc = cfg.pretraining if stage == "pretrain" else cfg.training
        root = Path(cfg.data.root).expanduser()
        # Rank 0 downloads/unpacks/caches first; the others then find the files in place.
        with ddp.rank0_first(self.dist):
            try:
                train_ds = make_train_dataset(
                    sc.train_datasets, root=root, scale=cfg.scale_factor, patch_size=sc.cr_patch_size[0],
                    stage=stage, augment=_augment_config(cfg.data.augment, stage),
                    cache=cfg.data.cache, download=cfg.data.download, max_images=cfg.data.max_train_images,
                    seed=cfg.seed,
                )  # fmt: skip
                val_ds = make_val_dataset(
                    sc.val_datasets, root=root, scale=cfg.scale_factor, crop=cfg.data.val_crop,
                    max_images=cfg.data.max_val_images, cache=cfg.data.cache, download=cfg.data.download,
                )  # fmt: skip
            except (OSError, ValueError, RuntimeError) as exc:
                raise TrainingError(f"data: {exc}") from exc
        return train_ds, val_ds

    def _total_iters(self, stage: str, num_items: int) -> int:
        sc = self.cfg.pretraining if stage == "pretrain" else self.cfg.training
        if sc.total_iters is not None:
            return sc.total_iters
        assert sc.num_epoch is not None
        return sc.num_epoch * iters_per_epoch(num_items, self.cfg.batch_size)

    def _wrap(self, model: nn.Module) -> nn.Module:
        if not self.dist.enabled:
            return model
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)

    def _scaler(self) -> torch.amp.GradScaler:
        return torch.amp.GradScaler(self.device.type, enabled=self.use_scaler)

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def _initial_generator(self, stage: str, st: dict[str, Any] | None) -> tuple[RRDBNet, str | None]:
        """G and, for the GAN stage, the PSNR-oriented weights it starts from (for interpolation)."""
        cfg = self.cfg
        if st is not None:
            return RRDBNet(**st["generator_config"]), st.get("psnr_weights")
        if stage == "pretrain":
            torch.manual_seed(cfg.seed)
            return RRDBNet(**cfg.generator_kwargs()), None
        spec = self.generator_spec
        if spec is None:
            suffix = "_ema" if cfg.interpolation.use_ema and cfg.ema.enabled else ""
            own = self.weights_dir / f"pretrain_g{suffix}.safetensors"
            if not own.is_file():
                raise TrainingError(
                    "the GAN stage needs a PSNR-oriented generator: "
                    "pass --generator WEIGHTS or run --stage both"
                )
            spec = str(own)
        from esrgan.weights import load_generator

        try:
            with ddp.rank0_first(self.dist):  # zoo names may download
                g = load_generator(spec, progress=self.progress and self.dist.is_main)
        except (OSError, ValueError) as exc:
            raise TrainingError(f"--generator: {exc}") from exc
        if g.scale != cfg.scale_factor:
            raise TrainingError(f"{spec}: generator is x{g.scale} but scale_factor is {cfg.scale_factor}")
        # A fresh module keeps the loaded weights but none of the loader's module state (eval mode, hooks).
        fresh = RRDBNet(**g.config.to_dict())
        fresh.load_state_dict(g.state_dict())
        return fresh, str(spec)

    def _build_stage(self, stage: str, st: dict[str, Any] | None, num_items: int) -> _StageState:
        cfg = self.cfg
        device = self.device
        g, psnr_weights = self._initial_generator(stage, st)
        g = g.to(device, memory_format=self.memory_format).train()
        sc = cfg.pretraining if stage == "pretrain" else cfg.training
        lr_g = cfg.pretraining.lr if stage == "pretrain" else cfg.training.g_lr
        opt_g = torch.optim.Adam(g.parameters(), lr=lr_g, betas=tuple(sc.betas))
        total = self._total_iters(stage, num_items)
        if stage == "pretrain" and cfg.pretraining.scheduler == "cosine":
            sched_g: torch.optim.lr_scheduler.LRScheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
                opt_g, T_max=max(1, total), eta_min=cfg.pretraining.lr_min
            )
        elif stage == "pretrain":
            sched_g = torch.optim.lr_scheduler.StepLR(
                opt_g, step_size=cfg.pretraining.sched_step, gamma=cfg.pretraining.sched_gamma
            )
        else:
            sched_g = torch.optim.lr_scheduler.MultiStepLR(
                opt_g, milestones=cfg.training.g_sched_steps, gamma=cfg.training.g_sched_gamma
            )
        s = _StageState(
            stage=stage,
            total=total,
            g=g,
            g_train=g,
            opt_g=opt_g,
            sched_g=sched_g,
            scaler_g=self._scaler(),
            ema=ModelEMA(g, decay=cfg.ema.decay) if cfg.ema.enabled else None,
            psnr_weights=psnr_weights,
        )
        if stage == "gan":
            torch.manual_seed(cfg.seed + 1)
            d: nn.Module = VGGStyleDiscriminator(
                in_ch=cfg.img_channels,
                channels=cfg.discriminator.vgg_blk_ch,
                hidden=cfg.discriminator.fc_features,
                pool_size=cfg.discriminator.pool_size,
            )
            if self.dist.enabled and device.type == "cuda":
                d = nn.SyncBatchNorm.convert_sync_batchnorm(d)
            s.d = d.to(device, memory_format=self.memory_format).train()
            s.opt_d = torch.optim.Adam(s.d.parameters(), lr=cfg.training.d_lr, betas=tuple(sc.betas))
            s.sched_d = torch.optim.lr_scheduler.MultiStepLR(
                s.opt_d, milestones=cfg.training.d_sched_steps, gamma=cfg.training.d_sched_gamma
            )
            s.scaler_d = self._scaler()
        if st is not None:
            self._load_state(s, st)
        else:
            ddp.broadcast_module(s.g, self.dist)
            if s.d is not None:
                ddp.broadcast_module(s.d, self.dist)
            if s.ema is not None:
                s.ema = ModelEMA(s.g, decay=cfg.ema.decay)
        s.g_train = self._wrap(s.g)
        return s

    # ------------------------------------------------------------------------------------ checkpoints
    def _state_dict(self, s: _StageState) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "stage": s.stage,
            "iteration": s.iteration,
            "total": s.total,
            "generator_config": s.g.config.to_dict(),
            "generator": s.g.state_dict(),
            "ema": s.ema.state_dict() if s.ema is not None else None,
            "ema_updates": s.ema.updates if s.ema is not None else 0,
            "discriminator": s.d.state_dict() if s.d is not None else None,
            "optim_g": s.opt_g.state_dict(),
            "sched_g": s.sched_g.state_dict(),
            "scaler_g": s.scaler_g.state_dict(),
            "optim_d": s.opt_d.state_dict() if s.opt_d is not None else None,
            "sched_d": s.sched_d.state_dict() if s.sched_d is not None else None,
            "scaler_d": s.scaler_d.state_dict() if s.scaler_d is not None else None,
            "rng": capture_rng_state(),
            "best": dict(s.best),
            "nonfinite_streak": s.nonfinite_streak,
            "psnr_weights": s.psnr_weights,
            "log_offset": self.logger.pretrain_iters if self.logger is not None else 0,
            "config": self.cfg.to_dict(),
        }

    def _load_state(self, s: _StageState, st: dict[str, Any]) -> None:
        try:
            s.g.load_state_dict(st["generator"])
            if s.ema is not None:
                if st.get("ema") is not None:
                    # Files written before the EMA warm-up existed carry no count: their EMA saw every step.
                    s.ema.load_state_dict(st["ema"], updates=int(st.get("ema_updates", st["iteration"])))
                else:
                    s.ema = ModelEMA(s.g, decay=self.cfg.ema.decay)
            s.opt_g.load_state_dict(st["optim_g"])
            s.sched_g.load_state_dict(st["sched_g"])
            if st.get("scaler_g"):
                s.scaler_g.load_state_dict(st["scaler_g"])
            if s.d is not None:
                s.d.load_state_dict(st["discriminator"])
                assert s.opt_d is not None and s.sched_d is not None and s.scaler_d is not None
                s.opt_d.load_state_dict(st["optim_d"])
                s.sched_d.load_state_dict(st["sched_d"])
                if st.get("scaler_d"):
                    s.scaler_d.load_state_dict(st["scaler_d"])
        except (KeyError, RuntimeError, ValueError) as exc:
            raise TrainingError(
                f"checkpoint does not match this config ({str(exc).splitlines()[0]})"
            ) from exc
        s.iteration = int(st["iteration"])
        s.best = dict(st.get("best") or {})
        s.nonfinite_streak = int(st.get("nonfinite_streak", 0))
        if st["total"] != s.total:
            self._say(f"note: stage length changed from {st['total']} to {s.total} iterations")

    def _save(self, s: _StageState) -> None:
        # RNG states are per process; rank 0's are saved (data order does not depend on them).
        if self.dist.is_main:
            save_checkpoint(self._state_dict(s), self.ckpt_dir, keep_last=self.cfg.checkpoint.keep_last)
        ddp.barrier(self.dist)

    def _release(
        self, name: str, model: nn.Module, s: _StageState, extra: dict[str, str] | None = None
    ) -> None:
        if not self.dist.is_main:
            return
        from esrgan.weights import save_generator

        path = self.weights_dir / f"{name}.safetensors"
        meta = {"source": "esrgan train", "stage": s.stage, "iteration": str(s.iteration)}
        meta.update(extra or {})
        save_generator(model, path, metadata=meta)  # type: ignore[arg-type]
        self.weights[name] = path

    # ----------------------------------------------------------------------------------------- stages
    def _run_stage(self, stage: str, st: dict[str, Any] | None) -> tuple[bool, int]:
        cfg = self.cfg
        train_ds, val_ds = self._datasets(stage)
        s = self._build_stage(stage, st, len(train_ds))  # type: ignore[arg-type]
        if self.logger is not None:
            # TensorBoard/W&B put the GAN stage after the pretrain stage on one step axis.
            if stage == "pretrain":
                self.logger.pretrain_iters = s.total
            elif st is not None:
                self.logger.pretrain_iters = int(st.get("log_offset", 0))
            elif self._finished_pretrain is not None:
                self.logger.pretrain_iters = self._finished_pretrain
        if stage == "gan" and self.lpips is None:
            if cfg.validation.lpips_vgg_weights and cfg.validation.lpips_heads:
                self.lpips = self._build_lpips()
            elif cfg.validation.gan_metric == "lpips":
                self._say(
                    "note: validation.lpips_vgg_weights/lpips_heads not set: no LPIPS; best GAN "
                    "checkpoint chosen by perceptual loss"
                )
        if st is not None:
            restore_rng_state(st["rng"])
        self.val_ds = val_ds
        sampler = IterationBatchSampler(
            num_items=len(train_ds),  # type: ignore[arg-type]
            batch_size=cfg.batch_size,
            seed=cfg.seed,
            stage=stage,
            start_iter=s.iteration,
            rank=self.dist.rank,
            world_size=self.dist.world_size,
        )
        loader = torch.utils.data.DataLoader(
            SeededItems(train_ds),
            batch_sampler=sampler,
            num_workers=cfg.data.num_workers,
            pin_memory=self.device.type == "cuda",
        )
        self._say(
            f"{stage}: {s.total} iterations ({len(train_ds)} training images, batch {cfg.batch_size}"  # type: ignore[arg-type]
            f"{f' over {self.dist.world_size} processes' if self.dist.enabled else ''}), "
            f"device {self.device}, precision {self.amp_dtype or 'fp32'}, starting at {s.iteration}"
        )
        step = self._pretrain_step if stage == "pretrain" else self._gan_step
        done = self._loop(s, loader, step)
        if done:
            self._finish_stage(s)
        return done, s.iteration

    def _loop(self, s: _StageState, loader: torch.utils.data.DataLoader, step: Callable) -> bool:
        cfg = self.cfg
        from tqdm.auto import tqdm

        bar = tqdm(
            total=s.total, initial=s.iteration, desc=s.stage, unit="it", dynamic_ncols=True,
            disable=not (self.progress and self.dist.is_main), leave=False,
        )  # fmt: skip
        window: dict[str, list[float]] = defaultdict(list)
        t0, it0 = time.perf_counter(), s.iteration
        batches: Iterator[dict[str, Any]] = iter(loader)
        try:
            while s.iteration < s.total:
                stop = self.stop.requested or (
                    self.stop_after is not None and self.iters_run >= self.stop_after
                )
                if ddp.any_flag(stop, self.dist, self.device):
                    self._save(s)
                    self._say(
                        f"stopped at {s.stage} iteration {s.iteration}; "
                        "checkpoint saved (resume with --resume)"
                    )
                    return False
                batch = next(batches)
                logs, bad = step(s, batch)
                s.iteration += 1
                self.iters_run += 1
                # Logged learning rates are the ones this iteration used (before the scheduler moves on).
                lrs = {"lr_g": s.opt_g.param_groups[0]["lr"]}
                if s.opt_d is not None:
                    lrs["lr_d"] = s.opt_d.param_groups[0]["lr"]
                s.sched_g.step()
                if s.sched_d is not None:
                    s.sched_d.step()
                bar.update(1)
                if bad:
                    s.nonfinite_streak += 1
                    self._say(
                        f"warning: {s.stage} iteration {s.iteration}: "
                        f"non-finite {', '.join(bad)} loss; step skipped"
                    )
                    if self.logger is not None:
                        self.logger.scalars(
                            stage=s.stage,
                            split="skip",
                            step=s.iteration,
                            values={f"nonfinite_{b}": 1.0 for b in bad},
                        )
                    if s.nonfinite_streak >= cfg.max_nonfinite:
                        raise TrainingError(
                            f"{s.stage} iteration {s.iteration}: {s.nonfinite_streak} consecutive non-finite "
                            f"losses (last: {', '.join(bad)}); stopped. "
                            f"Checkpoints in {self.ckpt_dir} are intact; "
                            "lower the learning rate or use precision=fp32"
                        )
                else:
                    s.nonfinite_streak = 0
                    for k, v in logs.items():
                        window[k].append(v)
                last = s.iteration == s.total
                if s.iteration % cfg.logging.log_every == 0 or last:
                    self._log_train(s, window, lrs, bar, t0, it0)
                    window.clear()
                if s.iteration % cfg.validation.every == 0 or last:
                    self._validate(s)
                if s.iteration % cfg.checkpoint.every == 0 or last:
                    self._save(s)
        finally:
            bar.close()
            del batches  # shuts DataLoader workers down
        return True

    def _log_train(
        self,
        s: _StageState,
        window: dict[str, list[float]],
        lrs: dict[str, float],
        bar: Any,
        t0: float,
        it0: int,
    ) -> None:
        values = {k: sum(v) / len(v) for k, v in sorted(window.items()) if v}
        # Every rank must join the reduction with the same keys, even after a skipped window.
        keys = (
            ["content"]
            if s.stage == "pretrain"
            else ["content", "d_fake", "d_loss", "d_real", "g_adversarial", "g_total", "perceptual"]
        )
        values = {k: values.get(k, float("nan")) for k in keys}
        values = ddp.mean_over_ranks(values, self.dist, self.device)
        values.update(lrs)
        if self.logger is not None:
            self.logger.scalars(stage=s.stage, split="train", step=s.iteration, values=values)
        elapsed = time.perf_counter() - t0
        rate = (s.iteration - it0) / elapsed if elapsed > 0 else float("nan")
        eta = (s.total - s.iteration) / rate if rate > 0 else float("nan")
        shown = " ".join(f"{k} {v:.4g}" for k, v in values.items() if not k.startswith("lr"))
        bar.set_postfix_str(shown, refresh=False)
        self._say(
            f"{s.stage} {s.iteration}/{s.total} {shown} lr {values['lr_g']:.2e} "
            f"{rate:.2f} it/s ETA {_fmt_seconds(eta)}"
        )

    # ------------------------------------------------------------------------------------ step functions
    def _batch(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        nb = self.device.type == "cuda"
        mf = self.memory_format
        return (
            batch["lr"].to(self.device, non_blocking=nb, memory_format=mf),
            batch["hr"].to(self.device, non_blocking=nb, memory_format=mf),
        )

    def _nonfinite(self, terms: dict[str, torch.Tensor]) -> list[str]:
        bad = [k for k, v in terms.items() if not bool(torch.isfinite(v.detach()).all())]
        if ddp.any_flag(bool(bad), self.dist, self.device) and not bad:
            bad = ["(another process)"]
        return bad

    def _pretrain_step(self, s: _StageState, batch: dict[str, Any]) -> tuple[dict[str, float], list[str]]:
        lr, hr = self._batch(batch)
        with self._autocast():
            sr = s.g_train(lr)
        l_content = self.content(sr, hr)
        bad = self._nonfinite({"content": l_content})
        s.opt_g.zero_grad(set_to_none=True)
        if bad:
            return {}, bad
        s.scaler_g.scale(l_content).backward()
        s.scaler_g.step(s.opt_g)
        s.scaler_g.update()
        if s.ema is not None:
            s.ema.update(s.g)
        return {"content": l_content.item()}, []

    def _gan_step(self, s: _StageState, batch: dict[str, Any]) -> tuple[dict[str, float], list[str]]:
        assert s.d is not None and s.opt_d is not None and s.scaler_d is not None
        t = self.cfg.training
        lr, hr = self._batch(batch)
        # 1) G step with D frozen: gradients reach G through D's input only.
        s.d.requires_grad_(False)
        with self._autocast():
            sr = s.g_train(lr)
            fake = s.d(sr)
            real = s.d(hr).detach()
        terms = {
            "content": self.content(sr, hr),
            "perceptual": self.perceptual(sr, hr),
            "g_adversarial": ragan_g_loss(
                real,
                fake,
                real_pool=ddp.gather_batch(real, self.dist),
                fake_pool=ddp.gather_batch(fake, self.dist),
            ),
        }
        weights = GeneratorLossWeights(
            perceptual=t.g_perceptual_loss_scaling,
            adversarial=t.g_adversarial_loss_scaling,
            content=t.g_content_loss_scaling,
        )
        terms["g_total"] = generator_total_loss(
            perceptual=terms["perceptual"], adversarial=terms["g_adversarial"], content=terms["content"],
            weights=weights,
        )  # fmt: skip
        s.opt_g.zero_grad(set_to_none=True)
        bad = self._nonfinite(terms)
        if bad:
            s.d.requires_grad_(True)
            return {}, bad
        s.scaler_g.scale(terms["g_total"]).backward()
        s.scaler_g.step(s.opt_g)
        s.scaler_g.update()
        if s.ema is not None:
            s.ema.update(s.g)
        # 2) D step on the same batch with G's output detached.
        s.d.requires_grad_(True)
        with self._autocast():
            real_d = s.d(hr)
            fake_d = s.d(sr.detach())
        l_d = ragan_d_loss(
            real_d,
            fake_d,
            real_pool=ddp.gather_batch(real_d, self.dist),
            fake_pool=ddp.gather_batch(fake_d, self.dist),
        )
        s.opt_d.zero_grad(set_to_none=True)
        bad = self._nonfinite({"d_loss": l_d})
        if bad:
            return {}, bad
        s.scaler_d.scale(l_d).backward()
        ddp.average_gradients(s.d, self.dist)
        s.scaler_d.step(s.opt_d)
        s.scaler_d.update()
        ddp.average_buffers(s.d, self.dist)
        logs = {k: v.item() for k, v in terms.items()}
        logs.update(
            d_loss=l_d.item(), d_real=real_d.float().mean().item(), d_fake=fake_d.float().mean().item()
        )
        return logs, []

    # ------------------------------------------------------------------------------------- validation
    @torch.no_grad()
    def _validate(self, s: _StageState) -> None:
        if self.dist.is_main:
            metrics = self._evaluate(s)
            assert self.logger is not None
            self.logger.scalars(stage=s.stage, split="val", step=s.iteration, values=metrics)
            self._say(f"{s.stage} {s.iteration} val " + " ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
            self._update_best(s, metrics)
        ddp.barrier(self.dist)

    def _evaluate(self, s: _StageState) -> dict[str, float]:
        from esrgan.metrics import psnr, ssim

        cfg = self.cfg
        g = s.g
        was_training = g.training
        g.eval()
        sums: dict[str, float] = defaultdict(float)
        n = len(self.val_ds)  # type: ignore[arg-type]
        images_due = s.iteration % cfg.logging.image_every == 0 or s.iteration == s.total
        try:
            for i in range(n):
                item = self.val_ds[i]
                lr = item["lr"][None].to(self.device)
                hr = item["hr"][None].to(self.device)
                with self._autocast():
                    sr = g(lr)
                sr = sr.float()
                sums["content"] += float(self.content(sr, hr))
                sums["perceptual"] += float(self.perceptual(sr, hr))
                out = sr.clamp(0, 1).cpu()
                sums["psnr"] += float(
                    psnr(out, hr.cpu(), crop_border=cfg.scale_factor, y_channel=True).mean()
                )
                sums["ssim"] += float(
                    ssim(out, hr.cpu(), crop_border=cfg.scale_factor, y_channel=True).mean()
                )
                if s.stage == "gan" and self.lpips is not None:
                    sums["lpips"] += float(self.lpips(sr.clamp(0, 1), hr).mean())
                if i == 0 and images_due and self.logger is not None:
                    self.logger.images(stage=s.stage, step=s.iteration, lr=lr.cpu(), sr=out, hr=hr.cpu())
        finally:
            g.train(was_training)
        return {k: v / max(n, 1) for k, v in sums.items()}

    def _update_best(self, s: _StageState, metrics: dict[str, float]) -> None:
        v = self.cfg.validation
        name = v.pretrain_metric if s.stage == "pretrain" else v.gan_metric
        if name == "lpips" and "lpips" not in metrics:
            name = "perceptual"
        if name not in metrics or s.iteration < v.warmup or not math.isfinite(metrics[name]):
            return
        value = metrics[name]
        old = s.best.get("value")
        better = old is None or (value > old if HIGHER_IS_BETTER[name] else value < old)
        if better:
            s.best = {"metric": name, "value": value, "iteration": s.iteration}
            self._release(f"{s.stage}_best", s.g, s, {"best_metric": name, "best_value": f"{value:.6f}"})
            self._say(f"{s.stage} {s.iteration}: new best {name} {value:.4f}")

    # ------------------------------------------------------------------------------------ stage ends
    def _finish_stage(self, s: _StageState) -> None:
        prefix = "pretrain_g" if s.stage == "pretrain" else "gan_g"
        self._release(prefix, s.g, s)
        if s.ema is not None:
            self._release(f"{prefix}_ema", s.ema.model, s, {"ema_decay": str(self.cfg.ema.decay)})
        if s.stage == "gan" and self.cfg.interpolation.enabled:
            self._interpolate(s)
        ddp.barrier(self.dist)

    def _interpolate(self, s: _StageState) -> None:
        if not self.dist.is_main:
            return
        from esrgan.weights import interpolate_state_dicts, load_generator

        ic = self.cfg.interpolation
        if s.psnr_weights is None:
            self._say("note: no PSNR-oriented generator recorded; network interpolation skipped")
            return
        gan = s.ema.model if (ic.use_ema and s.ema is not None) else s.g
        try:
            psnr_model = load_generator(s.psnr_weights, progress=False)
            sd = interpolate_state_dicts(psnr_model.state_dict(), gan.state_dict(), ic.alpha)
        except (OSError, ValueError) as exc:
            raise TrainingError(f"network interpolation: {exc}") from exc
        model = RRDBNet(**gan.config.to_dict())
        model.load_state_dict(sd)
        name = f"interp_alpha{ic.alpha:g}"
        self._release(
            name, model, s, {"interpolation_alpha": f"{ic.alpha:g}", "psnr_weights": str(s.psnr_weights)}
        )
        self._say(f"network interpolation (alpha {ic.alpha:g}) -> {self.weights[name]}")


def _augment_config(choice: bool | str, stage: str) -> Any:
    """``data.augment`` as an AugmentConfig: the seed's per stage, spatial only, or none."""
    from esrgan.data import AugmentConfig

    if choice is True or choice == "seed":
        return None  # the dataset applies AugmentConfig.for_stage(stage)
    if choice == "spatial":
        seed = AugmentConfig.for_stage(stage)  # type: ignore[arg-type]
        return dataclasses.replace(seed, jpeg_p=0.0, dropout_p=0.0)
    return AugmentConfig.none()


def _fmt_seconds(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(seconds)
    h, rem = divmod(seconds, 3600)
    m, sec = divmod(rem, 60)
    return f"{h:d}:{m:02d}:{sec:02d}" if h else f"{m:d}:{sec:02d}"


def train(
    config: Config,
    *,
    run_dir: str | Path,
    stage: str = "both",
    generator: str | None = None,
    resume: bool | None = None,
    stop_after: int | None = None,
    progress: bool | None = None,
    console: Callable[[str], None] | None = None,
) -> TrainResult:
    """Train per ``config`` into ``run_dir``.

    ``stage``: ``pretrain``, ``gan`` (from ``generator``, a weights file or zoo name, or the run folder's
    stage-1 result) or ``both``. ``resume``: True continues the latest checkpoint (error if none), False
    refuses a folder that has checkpoints, None follows ``checkpoint.auto_resume``. ``stop_after``: stop
    (with a checkpoint) after this many iterations in this call; a later call with ``resume`` continues.
    """
    return Trainer(
        config, run_dir=Path(run_dir), stage=stage, generator=generator, resume=resume,
        stop_after=stop_after, progress=progress, console=console,
    ).run()  # fmt: skip
