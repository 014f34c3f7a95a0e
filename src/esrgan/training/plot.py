"""Training and validation curves of a run folder (``metrics.jsonl``) rendered to one PNG."""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any


class PlotError(ValueError):
    """The run has no usable metrics (message names the file)."""


def read_metrics(path: Path) -> list[dict[str, Any]]:
    records = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise PlotError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if n == len(lines):  # a run killed mid-write may leave a partial last line
                continue
            raise PlotError(f"{path}:{n}: not a JSON record") from None
    return records


def _metrics_file(run: Path) -> Path:
    metrics = run if run.is_file() else run / "metrics.jsonl"
    if not metrics.is_file():
        raise PlotError(f"{metrics}: no metrics.jsonl (is this a run folder of esrgan train?)")
    return metrics


def chain_records(runs: Sequence[str | os.PathLike[str]]) -> list[dict[str, Any]]:
    """Training and validation records of runs that continue one another, in order.

    A later run resumed from a checkpoint of an earlier one (``--resume`` in a new folder): from the first
    iteration it logged in a stage, its records replace the earlier runs' records of that stage, so a
    branch the earlier run went on with past that point does not show.
    """
    chained: list[dict[str, Any]] = []
    for run in runs:
        metrics = _metrics_file(Path(run))
        records = [r for r in read_metrics(metrics) if r.get("split") in ("train", "val")]
        if not records:
            raise PlotError(f"{metrics}: no training or validation records yet")
        starts: dict[str, int] = {}
        for r in records:
            starts[r["stage"]] = min(starts.get(r["stage"], int(r["iter"])), int(r["iter"]))
        chained = [r for r in chained if r["stage"] not in starts or int(r["iter"]) < starts[r["stage"]]]
        chained.extend(records)
    return chained


def plot_run(run: str | os.PathLike[str], *, out: str | os.PathLike[str] | None = None) -> Path:
    """One panel per (stage, quantity) with its training and validation curves; returns the PNG path."""
    return plot_runs([run], out=out)


def plot_runs(runs: Sequence[str | os.PathLike[str]], *, out: str | os.PathLike[str] | None = None) -> Path:
    """``plot_run`` of a chain of runs (``chain_records``); the PNG goes to the last run's folder."""
    if not runs:
        raise PlotError("no run folder given")
    files = [_metrics_file(Path(r)) for r in runs]
    records = chain_records(files)
    # series[(stage, name)][split] -> {iteration: value}; the last record of an iteration wins (resume).
    series: dict[tuple[str, str], dict[str, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
    for r in records:
        for k, v in r.items():
            if k in ("stage", "split", "iter", "time") or v is None:
                continue
            series[(r["stage"], k)][r["split"]][int(r["iter"])] = float(v)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # Training and validation curves of one quantity share a panel; pretrain panels come first.
    panels = sorted(series.items(), key=lambda kv: (kv[0][0] != "pretrain", kv[0]))
    cols = min(4, len(panels))
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.8 * rows), squeeze=False)
    for ax, ((stage, name), splits) in zip(axes.flat, panels, strict=False):
        for split, points in sorted(splits.items(), key=lambda kv: kv[0] != "train"):
            xs = sorted(points)
            ax.plot(
                xs, [points[x] for x in xs], marker="o" if len(xs) < 30 else None, markersize=3, label=split
            )
        ax.set_title(f"{stage}: {name}", fontsize=9)
        ax.set_xlabel("iteration", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        if len(splits) > 1 or "val" in splits:
            ax.legend(fontsize=7)
        if name.startswith("lr"):
            ax.set_yscale("log")
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_visible(False)
    names = [f.parent.name for f in files]
    fig.suptitle(
        names[0] if len(names) == 1 else f"{names[0]} ... {names[-1]} ({len(names)} runs)", fontsize=11
    )
    fig.tight_layout()
    target = Path(out) if out is not None else (files[-1].parent / "curves.png")
    import io

    from PIL import Image

    from esrgan.utils import atomic_write

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    # Line plots need few colours: a 256-colour palette keeps them unchanged to the eye at 2/5 of the bytes
    # (figures like this one live in git).
    buf.seek(0)
    with Image.open(buf) as img:
        small = img.convert("RGB").quantize(
            colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE
        )
    with atomic_write(target, suffix=".png") as tmp:
        small.save(tmp, format="PNG", optimize=True)
    return target
