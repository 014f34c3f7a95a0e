"""Training-state checkpoints: what a resume file holds, atomic writes, keep-last-K, latest-good lookup.

A training state lives in ``RUN/checkpoints/{stage}_{iteration:08d}.pt``: ``torch.save`` of a dict of
plain tensors, dicts, lists and numbers (so ``weights_only`` loading works) whose keys are ``format``
plus the fields of ``TrainingState``. Release weights are written separately (``release.py``). A write
goes to a temporary file that is fsynced and renamed over the target only when complete, and older
files are pruned only after that, so killing the process at any moment (or a full disk) leaves the
previous good checkpoint. A newest file that cannot be read (cut short by a crash of the machine, or
damaged later) is passed over for the one before it; the loop sets it aside with a warning.

Format 1 is the only one so far. Files written before the EMA warm-up lack ``ema_updates``; their EMA
saw every step, so the iteration stands in. A file of another format is refused with a one-line error.
"""

from __future__ import annotations

import dataclasses
import os
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, cast

import numpy as np
import torch
from torch import nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from esrgan.models import Generator
from esrgan.training.config import Config
from esrgan.training.ema import ModelEMA
from esrgan.training.errors import TrainingError, io_reason
from esrgan.training.pool import PairPool
from esrgan.training.validation import Best
from esrgan.utils import atomic_write

CHECKPOINT_FORMAT = 1
_NAME = re.compile(r"^(pretrain|gan)_(\d{8})\.pt$")
_STAGE_ORDER = {"pretrain": 0, "gan": 1}


class GanState(Protocol):
    """The discriminator side of a GAN stage, as a checkpoint reads and restores it."""

    @property
    def d(self) -> nn.Module: ...
    @property
    def opt(self) -> Optimizer: ...
    @property
    def sched(self) -> LRScheduler: ...
    @property
    def scaler(self) -> torch.amp.GradScaler: ...


class StageState(Protocol):
    """What a checkpoint reads from and restores into a training stage (`esrgan.training.stage.Stage`):
    declared here, so that the file format does not depend on how stages are built (which resumes
    from these files)."""

    @property
    def name(self) -> str: ...
    @property
    def total(self) -> int: ...
    @property
    def g(self) -> Generator: ...
    @property
    def opt_g(self) -> Optimizer: ...
    @property
    def sched_g(self) -> LRScheduler: ...
    @property
    def scaler_g(self) -> torch.amp.GradScaler: ...
    @property
    def gan(self) -> GanState | None: ...
    @property
    def psnr_weights(self) -> str | None: ...
    @property
    def pool(self) -> PairPool | None: ...

    ema: ModelEMA[Generator] | None
    iteration: int
    best: Best | None
    nonfinite_streak: int


class CheckpointError(TrainingError):
    """A training-state file cannot be read or written (the message names the file)."""


class CheckpointFormatError(CheckpointError):
    """A training state in a format this version cannot read (written by another esrgan version)."""


@dataclass(kw_only=True)
class TrainingState:
    """Everything a resume needs, as stored in a checkpoint file (format 1; field order = file order)."""

    stage: str
    iteration: int
    total: int
    generator_config: dict[str, Any]
    generator: dict[str, torch.Tensor]
    ema: dict[str, torch.Tensor] | None
    ema_updates: int
    """EMA warm-up count; files older than the warm-up lack it (the iteration is used)."""
    discriminator: dict[str, torch.Tensor] | None
    optim_g: dict[str, Any]
    sched_g: dict[str, Any]
    scaler_g: dict[str, Any] | None
    optim_d: dict[str, Any] | None
    sched_d: dict[str, Any] | None
    scaler_d: dict[str, Any] | None
    rng: dict[str, Any]
    """Rank 0's Python, NumPy and torch generator states (data order does not depend on them)."""
    best: dict[str, Any]
    nonfinite_streak: int
    psnr_weights: str | None
    """The PSNR-oriented generator the GAN stage started from (for network interpolation)."""
    log_offset: int
    """Iterations of the pretrain stage, to put GAN steps after them on one log axis."""
    config: dict[str, Any]
    pool: dict[str, Any] | None = None
    """The training-pair pool (``degradation.pool_size``), when there is one."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            **{f.name: getattr(self, f.name) for f in dataclasses.fields(self)},
        }

    @classmethod
    def from_dict(cls, raw: object, *, path: Path) -> TrainingState:
        if not isinstance(raw, dict) or "stage" not in raw or "iteration" not in raw or "format" not in raw:
            raise CheckpointError(f"{path}: not a training state written by esrgan train")
        if raw["format"] != CHECKPOINT_FORMAT:
            raise CheckpointFormatError(
                f"{path}: training-state format {raw['format']!r} is not supported (this esrgan reads "
                f"format {CHECKPOINT_FORMAT}); resume it with the esrgan version that wrote it"
            )
        optional = {
            "ema": None, "ema_updates": raw["iteration"], "discriminator": None, "scaler_g": None,
            "optim_d": None, "sched_d": None, "scaler_d": None, "best": {}, "nonfinite_streak": 0,
            "psnr_weights": None, "log_offset": 0, "config": {}, "pool": None,
        }  # fmt: skip
        values = {**optional, **{k: v for k, v in raw.items() if k != "format"}}
        names = [f.name for f in dataclasses.fields(cls)]
        missing = [n for n in names if n not in values]
        if missing:
            raise CheckpointError(f"{path}: training state lacks {', '.join(missing)}")
        return cls(**{n: values[n] for n in names})


def capture_state(s: StageState, *, config: Config, log_offset: int) -> TrainingState:
    """The stage's complete training state, with this process's RNG states."""
    gan = s.gan
    return TrainingState(
        stage=s.name,
        iteration=s.iteration,
        total=s.total,
        generator_config=s.g.config.to_dict(),
        generator=s.g.state_dict(),
        ema=s.ema.state_dict() if s.ema is not None else None,
        ema_updates=s.ema.updates if s.ema is not None else 0,
        discriminator=gan.d.state_dict() if gan is not None else None,
        optim_g=s.opt_g.state_dict(),
        sched_g=s.sched_g.state_dict(),
        scaler_g=s.scaler_g.state_dict(),
        optim_d=gan.opt.state_dict() if gan is not None else None,
        sched_d=gan.sched.state_dict() if gan is not None else None,
        scaler_d=gan.scaler.state_dict() if gan is not None else None,
        rng=capture_rng_state(),
        best=s.best.to_dict() if s.best is not None else {},
        nonfinite_streak=s.nonfinite_streak,
        psnr_weights=s.psnr_weights,
        log_offset=log_offset,
        config=config.to_dict(),
        pool=s.pool.state_dict() if s.pool is not None else None,
    )


def restore_state(s: StageState, state: TrainingState) -> None:
    """Load ``state`` into a freshly built stage (before it is wrapped for DDP); RNG is restored later."""
    try:
        s.g.load_state_dict(state.generator)
        if s.ema is not None:
            if state.ema is not None:
                s.ema.load_state_dict(state.ema, updates=int(state.ema_updates))
            else:
                s.ema = ModelEMA(s.g, decay=s.ema.decay)
        s.opt_g.load_state_dict(state.optim_g)
        _load_schedule(s.sched_g, state.sched_g)
        if state.scaler_g:
            s.scaler_g.load_state_dict(state.scaler_g)
        if s.gan is not None:
            if state.discriminator is None or state.optim_d is None or state.sched_d is None:
                raise KeyError("discriminator")
            s.gan.d.load_state_dict(state.discriminator)
            s.gan.opt.load_state_dict(state.optim_d)
            _load_schedule(s.gan.sched, state.sched_d)
            if state.scaler_d:
                s.gan.scaler.load_state_dict(state.scaler_d)
    except (KeyError, RuntimeError, ValueError) as exc:
        raise TrainingError(f"checkpoint does not match this config ({str(exc).splitlines()[0]})") from exc
    if s.pool is not None and state.pool is not None:
        try:
            s.pool.load_state_dict(state.pool)
        except (KeyError, ValueError) as exc:
            raise TrainingError(f"checkpoint does not match this config ({exc})") from exc
    s.iteration = int(state.iteration)
    s.best = Best.from_dict(state.best or {})
    s.nonfinite_streak = int(state.nonfinite_streak)


# Hyper-parameters a scheduler's state dict carries but the config owns (horizon, milestones, floor).
_SCHEDULE_KEYS = ("T_max", "eta_min", "milestones", "step_size", "gamma")


def _load_schedule(sched: Any, saved: dict[str, Any]) -> None:
    """Restore ``sched``'s position from ``saved`` but keep the config's schedule.

    A resumed run may change its length (``total_iters``) or milestones. The learning rate then follows
    the new schedule from the saved iteration on (its closed form), instead of the old schedule's shape
    that the state dict would otherwise bring back.
    """
    own = {k: v for k, v in vars(sched).items() if k in _SCHEDULE_KEYS}
    sched.load_state_dict(saved)
    if all(getattr(sched, k) == v for k, v in own.items()):
        return
    for k, v in own.items():
        setattr(sched, k, v)
    lrs = sched._get_closed_form_lr()
    for group, lr in zip(sched.optimizer.param_groups, lrs, strict=True):
        group["lr"] = lr
    sched._last_lr = list(lrs)


def capture_rng_state() -> dict[str, Any]:
    """Python, NumPy, torch CPU and CUDA generator states (tensors/ints/lists only)."""
    py_version, py_state, py_gauss = random.getstate()
    np_state = cast(tuple[Any, ...], np.random.get_state(legacy=True))
    state: dict[str, Any] = {
        "python": [py_version, list(py_state), py_gauss],
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    version, py_state, gauss = state["python"]
    random.setstate((version, tuple(py_state), gauss))
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        cuda_states = state["cuda"]
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)


def checkpoint_name(stage: str, iteration: int) -> str:
    return f"{stage}_{iteration:08d}.pt"


def list_checkpoints(ckpt_dir: Path) -> list[Path]:
    """Checkpoints in training order (pretrain before gan, then by iteration)."""
    if not ckpt_dir.is_dir():
        return []
    return sorted((p for p in ckpt_dir.iterdir() if _NAME.match(p.name)), key=_order)


def _order(path: Path) -> tuple[int, int]:
    m = _NAME.match(path.name)
    assert m is not None, path
    return _STAGE_ORDER[m.group(1)], int(m.group(2))


def save_checkpoint(state: TrainingState, ckpt_dir: Path, *, keep_last: int) -> Path:
    """Write ``state`` atomically, then prune older files so that ``keep_last`` remain.

    A failed write (a full disk) leaves no partial file and prunes nothing. Files that sort after the
    new one (unreadable ones the resume passed over) are never what pruning removes.
    """
    path = ckpt_dir / checkpoint_name(state.stage, state.iteration)
    try:
        # Through a Python file so that a failed write carries its OS error (ENOSPC) as the cause.
        with atomic_write(path) as tmp, open(tmp, "wb") as fh:
            torch.save(state.to_dict(), fh)
    except (OSError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: cannot write the training state ({io_reason(exc)})") from exc
    older = [p for p in list_checkpoints(ckpt_dir) if _order(p) < _order(path)]
    for old in older[: max(0, len(older) - (keep_last - 1))]:
        old.unlink(missing_ok=True)
    return path


def load_checkpoint(path: Path) -> TrainingState:
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{path}: unreadable training state ({exc.__class__.__name__})") from exc
    return TrainingState.from_dict(raw, path=path)


@dataclass(frozen=True, kw_only=True)
class Latest:
    """The checkpoint a resume continues, and the newer files it had to pass over."""

    path: Path
    state: TrainingState
    unreadable: list[tuple[Path, str]] = field(default_factory=list)
    """Newer checkpoint files that could not be read, each with its one-line error, newest first."""


def load_latest(ckpt_dir: Path) -> Latest | None:
    """Newest readable checkpoint; an unreadable newer file (cut short, damaged) is passed over.

    A file of another format is not damage: it stops the search, so a newer esrgan's run is never
    silently continued from an older file.
    """
    unreadable: list[tuple[Path, str]] = []
    for path in reversed(list_checkpoints(ckpt_dir)):
        try:
            return Latest(path=path, state=load_checkpoint(path), unreadable=unreadable)
        except CheckpointFormatError:
            raise
        except CheckpointError as exc:
            unreadable.append((path, str(exc)))
    if unreadable:
        raise CheckpointError(
            f"no readable checkpoint in {ckpt_dir} ({unreadable[0][1]}); move its files away to start over"
        )
    return None


def set_aside(path: Path) -> Path:
    """Rename an unreadable checkpoint to ``NAME.unreadable``: kept for inspection, no longer listed."""
    target = path.with_name(path.name + ".unreadable")
    os.replace(path, target)
    return target
