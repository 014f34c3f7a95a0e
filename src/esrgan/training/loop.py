"""The two-stage ESRGAN training run (iteration-counted, resumable, optionally distributed).

Stage ``pretrain`` (PSNR-oriented) updates G with the content loss; stage ``gan`` starts from a
PSNR-oriented G and updates G with D frozen, then D (``steps.py``). One loop serves both: it steps,
logs, validates and checkpoints every N iterations and stops cleanly on SIGINT/SIGTERM (a checkpoint,
then a normal return). Killed outright (SIGKILL, OOM, power), a run resumes from its last checkpoint to
the same weights as if never stopped: every file is written atomically, a start clears what killed
writes left, a newest checkpoint that cannot be read is set aside (``*.pt.unreadable``), and what the
killed attempt logged after its last checkpoint is dropped from metrics.jsonl and TensorBoard.

Run folder layout::

    RUN/config.yaml            resolved configuration
    RUN/metrics.jsonl          one JSON record per log/validation event
    RUN/tensorboard/           TensorBoard scalars and LR/SR/HR grids
    RUN/checkpoints/*.pt       training states (last K kept; ``checkpoint.py``)
    RUN/weights/*.safetensors  release weights: pretrain_g, gan_g (+ _ema), *_best, interp_alpha*

Distributed training (torchrun) follows single-process training with the same global batch: G is
wrapped in DistributedDataParallel, D's gradients and the RaGAN means are reduced explicitly
(``steps.py``), and on CUDA D uses SyncBatchNorm. On CPU (no SyncBatchNorm) D's BatchNorm normalises
each rank's share of the batch, so there only the pretrain stage matches single-process training exactly.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from esrgan.training import distributed as ddp
from esrgan.training.checkpoint import (
    TrainingState,
    capture_state,
    load_latest,
    restore_rng_state,
    save_checkpoint,
    set_aside,
)
from esrgan.training.config import STAGES, Config, StageName
from esrgan.training.config_io import save_config
from esrgan.training.errors import TrainingError, io_reason
from esrgan.training.logging import LogStart, ProgressLog, RunLogger
from esrgan.training.release import ReleaseWriter, release_stage
from esrgan.training.runtime import Runtime, start_runtime
from esrgan.training.sampling import dataset_size
from esrgan.training.stage import (
    Losses,
    Stage,
    build_datasets,
    build_losses,
    build_lpips,
    build_stage,
    make_loader,
)
from esrgan.training.steps import train_step
from esrgan.training.validation import Validator, new_best
from esrgan.utils.files import remove_stale_temp_files


@dataclass(kw_only=True)
class TrainResult:
    """What a ``train`` call reached."""

    run_dir: Path
    completed: bool
    """False when stopped early (signal or ``stop_after``); a call with ``resume`` continues it."""
    stage: str
    iteration: int
    weights: dict[str, Path] = field(default_factory=dict)
    """Release weights written by this call, by name."""

    def summary(self) -> str:
        """What a user reads at the end: where the weights are, or how to continue."""
        if not self.completed:
            return (
                f"stopped at {self.stage} iteration {self.iteration}; continue with "
                f"`esrgan train --run-dir {self.run_dir} --resume`"
            )
        return "\n".join(
            [f"finished: {self.run_dir}"] + [f"  {n}: {p}" for n, p in sorted(self.weights.items())]
        )


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
    ``progress`` (default ``logging.progress``) shows a bar; ``console`` receives the log lines (default:
    printed above the bar).
    """
    if stage not in ("both", *STAGES):
        raise TrainingError(f"unknown stage {stage!r}: use pretrain, gan or both")
    if stop_after is not None and stop_after < 0:
        raise TrainingError("stop_after must be >= 0")
    stages = [s for s in STAGES if stage in ("both", s)]
    run_dir = Path(run_dir)
    progress = config.logging.progress if progress is None else progress
    # The handlers go in first: a SIGTERM during set-up stops at the first iteration, with a checkpoint.
    with _StopRequest() as stop:
        rt = start_runtime(config)
        say = _console(console, enabled=rt.dist.is_main)
        try:
            start, finished_pretrain = _resume_point(
                run_dir, stages, resume=resume, auto_resume=config.checkpoint.auto_resume, say=say,
                is_main=rt.dist.is_main,
            )  # fmt: skip
            if rt.dist.is_main:
                _prepare_run_dir(run_dir, config, say=say)
            try:
                log_start = _log_start(start, finished_pretrain, first=stages[0])
                logger = RunLogger(run_dir=run_dir, config=config, enabled=rt.dist.is_main, start=log_start)
            except (ImportError, RuntimeError, OSError) as exc:
                raise TrainingError(f"logging: {exc}") from exc
            try:
                if finished_pretrain is not None:
                    logger.pretrain_iters = finished_pretrain  # GAN steps follow stage 1 on one log axis
                run = _Run(
                    cfg=config, rt=rt, ckpt_dir=run_dir / "checkpoints", logger=logger, say=say,
                    losses=build_losses(config, rt, progress=progress), stop=stop, stop_after=stop_after,
                    releases=ReleaseWriter(weights_dir=run_dir / "weights", enabled=rt.dist.is_main),
                    generator=generator, progress=progress,
                )  # fmt: skip
                return _run_stages(run, stages, start)
            finally:
                logger.close()
        except OSError as exc:  # a full disk or a permission on any file of the run: one line, no trace
            raise TrainingError(f"{exc.filename or run_dir}: {io_reason(exc)}") from exc
        finally:
            ddp.cleanup_distributed(rt.dist)


def _run_stages(run: _Run, stages: list[StageName], start: TrainingState | None) -> TrainResult:
    """Run ``stages`` in order, the one of ``start`` from it (earlier ones finished before it)."""
    result = TrainResult(run_dir=run.ckpt_dir.parent, completed=True, stage=stages[-1], iteration=0)
    for name in stages:
        if start is not None and STAGES.index(name) < STAGES.index(start.stage):
            continue
        state = start if start is not None and start.stage == name else None
        start = None
        done, result.iteration = _run_stage(run, name, state)
        result.stage = name
        if not done:
            result.completed = False
            break
    result.weights = dict(run.releases.written)
    return result


def _log_start(start: TrainingState | None, finished_pretrain: int | None, *, first: StageName) -> LogStart:
    """Where this call's logs continue: the checkpoint, the start of ``--stage gan``, or the very start."""
    if start is not None:
        offset = start.log_offset if start.stage == "gan" else 0
        return LogStart(stage=start.stage, iteration=start.iteration, global_step=offset + start.iteration)
    if finished_pretrain is not None:
        return LogStart(stage="gan", iteration=0, global_step=finished_pretrain)
    return LogStart(stage=first, iteration=0, global_step=0)


def _prepare_run_dir(run_dir: Path, config: Config, *, say: Callable[[str], None]) -> None:
    """Rank 0: the run folder with its resolved config, cleared of what killed writes left behind."""
    run_dir.mkdir(parents=True, exist_ok=True)
    stale = [
        p.name
        for d in (run_dir, run_dir / "checkpoints", run_dir / "weights")
        for p in remove_stale_temp_files(d)
    ]
    if stale:
        more = f" and {len(stale) - 1} more" if len(stale) > 1 else ""
        say(f"note: removed the temporary file of an interrupted write: {stale[0]}{more}")
    save_config(config, run_dir / "config.yaml")


@dataclass(kw_only=True)
class _Run:
    """What every stage of one ``train`` call shares."""

    cfg: Config
    rt: Runtime
    ckpt_dir: Path
    logger: RunLogger
    say: Callable[[str], None]
    losses: Losses
    releases: ReleaseWriter
    stop: _StopRequest
    stop_after: int | None
    """Iterations this call may run (None: no limit)."""
    generator: str | None
    """``--generator`` for the GAN stage."""
    progress: bool
    iters_run: int = 0
    """Iterations run by this call, over both stages."""


def _run_stage(run: _Run, name: StageName, state: TrainingState | None) -> tuple[bool, int]:
    """Set stage ``name`` up (from ``state`` when resuming), train it, release its weights.

    Returns (finished, iteration reached).
    """
    cfg, rt = run.cfg, run.rt
    train_ds, val_ds = build_datasets(cfg, rt, name)
    num_items = dataset_size(train_ds)
    s = build_stage(
        cfg, rt, stage=name, num_items=num_items, state=state, generator=run.generator,
        weights_dir=run.releases.weights_dir, progress=run.progress,
    )  # fmt: skip
    if state is not None and state.total != s.total:
        run.say(f"note: stage length changed from {state.total} to {s.total} iterations")
    if name == "pretrain":
        run.logger.pretrain_iters = s.total
    elif state is not None:
        run.logger.pretrain_iters = state.log_offset
    lpips = build_lpips(cfg, rt) if name == "gan" else None
    if name == "gan" and lpips is None and cfg.validation.gan_metric == "lpips":
        run.say(
            "note: validation.lpips_vgg_weights/lpips_heads not set: no LPIPS; best GAN "
            "checkpoint chosen by perceptual loss"
        )
    validator = Validator(
        dataset=val_ds, rt=rt, content=run.losses.content, perceptual=run.losses.perceptual, lpips=lpips,
        scale=cfg.scale_factor,
    )  # fmt: skip
    if state is not None:
        restore_rng_state(state.rng)  # last: building the stage and LPIPS draws random numbers
    loader = make_loader(cfg, rt, train_ds, stage=name, num_items=num_items, start=s.iteration)
    processes = f" over {rt.dist.world_size} processes" if rt.dist.enabled else ""
    run.say(
        f"{name}: {s.total} iterations ({num_items} training images, batch {cfg.batch_size}{processes}), "
        f"device {rt.device}, precision {rt.precision_label}, starting at {s.iteration}"
    )
    done = _loop(run, s, loader, validator)
    if done:
        release_stage(run.releases, s, ema_decay=cfg.ema.decay, interpolation=cfg.interpolation, say=run.say)
        ddp.barrier(rt.dist)
    return done, s.iteration


def _loop(run: _Run, s: Stage, loader: DataLoader[Any], validator: Validator) -> bool:
    """Train ``s`` to its last iteration (True) or until a stop is requested (False, checkpointed)."""
    cfg, rt = run.cfg, run.rt
    log = ProgressLog(
        logger=run.logger, say=run.say, dist=rt.dist, device=rt.device, stage=s.name, total=s.total,
        start=s.iteration, show_bar=run.progress and rt.dist.is_main,
    )  # fmt: skip
    # Workers are forked here with SIGINT/SIGTERM blocked (the mask is inherited, pending signals are
    # not), so a group-wide stop that lands before their worker_init_fn ignores it cannot kill one; in
    # this process a signal that came meanwhile stays pending and is handled once unblocked.
    stop_signals = {signal.SIGINT, signal.SIGTERM}
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    try:
        batches = iter(loader)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
    try:
        while s.iteration < s.total:
            if _stop_requested(run):
                _save(run, s)
                run.say(
                    f"stopped at {s.name} iteration {s.iteration}; checkpoint saved (resume with --resume)"
                )
                return False

            waited = time.perf_counter()
            batch = next(batches)
            waited = time.perf_counter() - waited
            if s.pool is not None:
                batch = s.pool(batch, iteration=s.iteration)
            result = train_step(s, rt.batch(batch), losses=run.losses, rt=rt)
            s.iteration += 1
            run.iters_run += 1
            lrs = s.learning_rates()  # the rates this iteration used, before the schedulers move on
            s.step_schedulers()

            log.add(result.logs, data_wait=waited)
            if result.skipped:
                _count_skip(run, s, result.skipped)
            else:
                s.nonfinite_streak = 0
            last = s.iteration == s.total
            if s.iteration % cfg.logging.log_every == 0 or last:
                log.write(s.iteration, lrs)
            if s.iteration % cfg.validation.every == 0 or last:
                _validate(run, s, validator)
            if s.iteration % cfg.checkpoint.every == 0 or last:
                _save(run, s)
    finally:
        log.close()
        del batches  # shuts DataLoader workers down
    return True


def _stop_requested(run: _Run) -> bool:
    """A signal arrived or ``stop_after`` is reached, on any process (all stop at the same iteration)."""
    stop = run.stop.requested or (run.stop_after is not None and run.iters_run >= run.stop_after)
    return ddp.any_flag(stop, run.rt.dist, run.rt.device)


def _count_skip(run: _Run, s: Stage, bad: list[str]) -> None:
    """Report a skipped step; too many in a row end the run (the checkpoints are still good)."""
    s.nonfinite_streak += 1
    run.say(f"warning: {s.name} iteration {s.iteration}: non-finite {', '.join(bad)} loss; step skipped")
    values = {f"nonfinite_{b}": 1.0 for b in bad}
    run.logger.scalars(stage=s.name, split="skip", step=s.iteration, values=values)
    if s.nonfinite_streak >= run.cfg.max_nonfinite:
        raise TrainingError(
            f"{s.name} iteration {s.iteration}: {s.nonfinite_streak} consecutive non-finite "
            f"losses (last: {', '.join(bad)}); stopped. Checkpoints in {run.ckpt_dir} are intact; "
            "lower the learning rate or use precision=fp32"
        )


def _validate(run: _Run, s: Stage, validator: Validator) -> None:
    """Validate on rank 0, log, and release ``{stage}_best`` when the stage's metric improved."""
    if run.rt.dist.is_main:
        metrics, sample = validator.evaluate(s.g)
        if sample is not None and (s.iteration % run.cfg.logging.image_every == 0 or s.iteration == s.total):
            run.logger.images(stage=s.name, step=s.iteration, lr=sample.lr, sr=sample.sr, hr=sample.hr)
        run.logger.scalars(stage=s.name, split="val", step=s.iteration, values=metrics)
        run.say(f"{s.name} {s.iteration} val " + " ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
        best = new_best(s.best, run.cfg.validation, stage=s.name, iteration=s.iteration, metrics=metrics)
        if best is not None:
            s.best = best
            extra = {"best_metric": best.metric, "best_value": f"{best.value:.6f}"}
            run.releases.write(f"{s.name}_best", s.g, stage=s.name, iteration=s.iteration, extra=extra)
            run.say(f"{s.name} {s.iteration}: new best {best.metric} {best.value:.4f}")
    ddp.barrier(run.rt.dist)


def _save(run: _Run, s: Stage) -> None:
    """Checkpoint on rank 0 (RNG states are per process; data order does not depend on them)."""
    if run.rt.dist.is_main:
        state = capture_state(s, config=run.cfg, log_offset=run.logger.pretrain_iters)
        save_checkpoint(state, run.ckpt_dir, keep_last=run.cfg.checkpoint.keep_last)
    ddp.barrier(run.rt.dist)


def _resume_point(
    run_dir: Path,
    stages: list[StageName],
    *,
    resume: bool | None,
    auto_resume: bool,
    say: Callable[[str], None],
    is_main: bool,
) -> tuple[TrainingState | None, int | None]:
    """(checkpoint to continue or None, length of a finished stage 1 that ``--stage gan`` follows).

    Newer checkpoints that cannot be read are set aside (rank 0), so that pruning never keeps them
    in place of good ones.
    """
    ckpt_dir = run_dir / "checkpoints"
    found = load_latest(ckpt_dir)
    if found is None:
        if resume:
            raise TrainingError(f"{run_dir}: nothing to resume (no checkpoints in {ckpt_dir})")
        return None, None
    path, state = found.path, found.state
    if resume is False or (resume is None and not auto_resume):
        raise TrainingError(
            f"{run_dir}: run folder already has checkpoints; pass --resume or choose another --run-dir"
        )
    for bad, error in found.unreadable:
        moved = ""
        if is_main:
            with contextlib.suppress(OSError):
                moved = f"; moved to {set_aside(bad).name}"
        say(f"warning: {error}{moved}; continuing from the one before it, {path.name}")
    if state.stage not in stages:
        if state.stage == "gan":
            raise TrainingError(f"{path}: run is already in the GAN stage; use --stage both or gan")
        if state.iteration < state.total:
            raise TrainingError(
                f"{path}: the pretrain stage is unfinished; use --stage both (or pretrain) to continue it"
            )
        # `--stage gan` after a finished `--stage pretrain`: the GAN stage starts from weights/pretrain_g.
        return None, int(state.total)
    say(f"resuming from {path} ({state.stage} iteration {state.iteration})")
    return state, None


def _console(console: Callable[[str], None] | None, *, enabled: bool) -> Callable[[str], None]:
    """Rank 0's console: ``console``, or lines printed above the progress bar."""

    def say(text: str) -> None:
        if enabled:
            (console or tqdm.write)(text)

    return say


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
