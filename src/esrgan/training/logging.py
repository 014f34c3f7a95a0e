"""Run logging: ``metrics.jsonl`` (always), TensorBoard (default on), Weights & Biases (opt-in), and the
console line and progress bar of the training loop.

Only rank 0 logs. W&B is imported only when enabled, defaults to offline mode and uses no entity unless
one is configured.
"""

from __future__ import annotations

import json
import math
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from esrgan.training import distributed as ddp
from esrgan.training.config import STAGES, Config
from esrgan.utils import atomic_write

# Every rank must join the reduction of a logging window with the same keys, even after skipped steps.
TRAIN_KEYS = {
    "pretrain": ["content"],
    "gan": ["content", "d_fake", "d_loss", "d_real", "g_adversarial", "g_total", "perceptual"],
}
# Logged when the step returns them; a config switches them on for all ranks alike (``d_r1``: R1 penalty).
OPTIONAL_TRAIN_KEYS = {"pretrain": [], "gan": ["d_r1"]}


@dataclass(frozen=True, kw_only=True)
class LogStart:
    """Where a (re)started run's logs go on: records after it are from an attempt that was killed before
    its next checkpoint, and are dropped so that a resumed run's logs read as if it had never stopped."""

    stage: str
    iteration: int
    global_step: int
    """``iteration`` on the one axis of both stages (GAN steps follow the pretrain stage)."""


class RunLogger:
    """Writes scalar records and image grids; every sink is optional except ``metrics.jsonl``."""

    def __init__(
        self, *, run_dir: Path, config: Config, enabled: bool = True, start: LogStart | None = None
    ) -> None:
        self.run_dir = run_dir
        self.enabled = enabled
        self.config = config
        self._tb = None
        self._wandb = None
        self._jsonl = None
        self.pretrain_iters = 0  # GAN-stage steps are plotted after the pretrain stage on one axis
        if not enabled:
            return
        run_dir.mkdir(parents=True, exist_ok=True)
        if start is not None:
            _drop_records_after(run_dir / "metrics.jsonl", start)
        self._jsonl = open(run_dir / "metrics.jsonl", "a", encoding="utf-8")  # noqa: SIM115 - long-lived
        if config.logging.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            # purge_step hides the killed attempt's events from that step on.
            purge = start.global_step + 1 if start is not None else None
            self._tb = SummaryWriter(log_dir=str(run_dir / "tensorboard"), purge_step=purge)
        if config.logging.wandb:
            try:
                import wandb
            except ImportError as exc:
                raise RuntimeError(
                    "logging.wandb is enabled but wandb is not installed (pip install 'esrgan[wandb]')"
                ) from exc
            self._wandb = wandb.init(
                project=config.logging.wandb_project,
                entity=config.logging.wandb_entity,
                mode=config.logging.wandb_mode,
                dir=str(run_dir),
                config=config.to_dict(),
                name=run_dir.name,
                resume="allow",
                id=_wandb_id(run_dir),
            )

    def scalars(self, *, stage: str, split: str, step: int, values: dict[str, float]) -> None:
        """One record: ``{"stage", "split", "iter", "time", **values}``; also TensorBoard/W&B scalars."""
        if not self.enabled:
            return
        record: dict[str, Any] = {"stage": stage, "split": split, "iter": step, "time": time.time()}
        record.update({k: (float(v) if math.isfinite(float(v)) else None) for k, v in values.items()})
        assert self._jsonl is not None
        self._jsonl.write(json.dumps(record) + "\n")
        self._jsonl.flush()
        global_step = self.global_step(stage, step)
        if self._tb is not None:
            for k, v in values.items():
                self._tb.add_scalar(f"{stage}/{split}/{k}", float(v), global_step)
        if self._wandb is not None:
            self._wandb.log({f"{stage}/{split}/{k}": float(v) for k, v in values.items()}, step=global_step)

    def images(self, *, stage: str, step: int, lr: torch.Tensor, sr: torch.Tensor, hr: torch.Tensor) -> None:
        """LR (nearest-upscaled) | SR | HR side by side, one row per image."""
        if not self.enabled or (self._tb is None and self._wandb is None):
            return
        grid = image_grid(lr, sr, hr)
        global_step = self.global_step(stage, step)
        if self._tb is not None:
            self._tb.add_image(f"{stage}/val/lr_sr_hr", grid, global_step)
        if self._wandb is not None:
            import wandb

            self._wandb.log(
                {f"{stage}/val/lr_sr_hr": wandb.Image(grid.permute(1, 2, 0).numpy())}, step=global_step
            )

    def global_step(self, stage: str, step: int) -> int:
        return step + self.pretrain_iters if stage == "gan" else step

    def close(self) -> None:
        if self._jsonl is not None:
            self._jsonl.close()
            self._jsonl = None
        if self._tb is not None:
            self._tb.close()
            self._tb = None
        if self._wandb is not None:
            self._wandb.finish()
            self._wandb = None


def _drop_records_after(path: Path, start: LogStart) -> None:
    """Rewrite ``metrics.jsonl`` (atomically) without the records after ``start`` or cut short."""
    if not path.is_file():
        return
    limit = (STAGES.index(start.stage), start.iteration)
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    kept = []
    for line in lines:
        try:
            record = json.loads(line)
            if (STAGES.index(record["stage"]), int(record["iter"])) <= limit and line.endswith("\n"):
                kept.append(line)
        except (ValueError, KeyError, TypeError):
            continue  # a line cut short by a kill
    if len(kept) < len(lines):
        with atomic_write(path) as tmp:
            tmp.write_text("".join(kept), encoding="utf-8")


def _wandb_id(run_dir: Path) -> str:
    # A resumed run continues the same W&B run: the id is stored in the run folder.
    path = run_dir / "wandb_id.txt"
    if path.exists():
        return path.read_text().strip()
    import uuid

    run_id = uuid.uuid4().hex[:12]
    path.write_text(run_id)
    return run_id


def image_grid(lr: torch.Tensor, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
    """(3, N*H, 3*W) float grid in [0, 1] from batches (N, 3, h, w), (N, 3, H, W), (N, 3, H, W)."""
    up = torch.nn.functional.interpolate(lr.float(), size=hr.shape[-2:], mode="nearest")
    rows = [
        torch.cat([u, s.float().clamp(0, 1), h.float()], dim=-1) for u, s, h in zip(up, sr, hr, strict=True)
    ]
    return torch.cat(rows, dim=-2).cpu()


@dataclass(kw_only=True)
class ProgressLog:
    """Training losses averaged over each logging window: scalars, progress bar and a console line."""

    logger: RunLogger
    say: Callable[[str], None]
    dist: ddp.DistInfo
    device: torch.device
    stage: str
    total: int
    start: int
    """Iteration the stage (re)starts at: the bar's origin and the base of the it/s rate."""
    show_bar: bool
    window: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    t0: float = field(default_factory=time.perf_counter)
    waited: float = 0.0
    """Seconds this window's iterations spent waiting for their batch."""
    window_t0: float = field(default_factory=time.perf_counter)
    bar: Any = field(init=False)

    def __post_init__(self) -> None:
        self.bar = tqdm(
            total=self.total, initial=self.start, desc=self.stage, unit="it", dynamic_ncols=True,
            disable=not self.show_bar, leave=False,
        )  # fmt: skip

    def add(self, logs: dict[str, float], *, data_wait: float = 0.0) -> None:
        """One iteration done; ``logs`` (empty for a skipped step) join the window; ``data_wait``: seconds
        it waited for its batch."""
        self.bar.update(1)
        self.waited += data_wait
        for k, v in logs.items():
            self.window[k].append(v)

    def write(self, iteration: int, lrs: dict[str, float]) -> None:
        """Log the window's means (over ranks) with the learning rates, then start a new window."""
        means = {k: sum(v) / len(v) for k, v in sorted(self.window.items()) if v}
        values = {k: means.get(k, float("nan")) for k in TRAIN_KEYS[self.stage]}
        values.update({k: means[k] for k in OPTIONAL_TRAIN_KEYS[self.stage] if k in means})
        now = time.perf_counter()
        # Share of the window's wall time spent waiting for data: above a few percent, loading is the brake.
        values["data_wait"] = self.waited / max(now - self.window_t0, 1e-9)
        values = ddp.mean_over_ranks(values, self.dist, self.device)
        values.update(lrs)
        self.logger.scalars(stage=self.stage, split="train", step=iteration, values=values)
        elapsed = time.perf_counter() - self.t0
        rate = (iteration - self.start) / elapsed if elapsed > 0 else float("nan")
        eta = (self.total - iteration) / rate if rate > 0 else float("nan")
        shown = " ".join(
            f"{k} {v:.4g}" for k, v in values.items() if not k.startswith("lr") and k != "data_wait"
        )
        self.bar.set_postfix_str(shown, refresh=False)
        self.say(
            f"{self.stage} {iteration}/{self.total} {shown} lr {values['lr_g']:.2e} "
            f"{rate:.2f} it/s data {100 * values['data_wait']:.0f}% ETA {format_seconds(eta)}"
        )
        self.window.clear()
        self.waited, self.window_t0 = 0.0, now

    def close(self) -> None:
        self.bar.close()


def format_seconds(seconds: float) -> str:
    """``m:ss`` or ``h:mm:ss``; ``?`` when unknown."""
    if not math.isfinite(seconds):
        return "?"
    h, rem = divmod(int(seconds), 3600)
    m, sec = divmod(rem, 60)
    return f"{h:d}:{m:02d}:{sec:02d}" if h else f"{m:d}:{sec:02d}"
