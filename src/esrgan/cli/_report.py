"""How `esrgan upscale` reports its plan, its files and its summary, on both of its paths (the full one
in `esrgan.cli.upscale`, the warm start in `esrgan.cli.upscale_warm`): the same lines either way."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable
from typing import TextIO

from esrgan.cli._common import EXIT_FAILED, error
from esrgan.inference.jobs import BatchTotals, FileResult, Plan


def report_plan(plan: Plan, *, overwrite: bool, show: bool = True) -> BatchTotals:
    """Print the inputs that cannot run and the outputs kept (`show`); the totals start from them."""
    import typer

    for problem in plan.problems if show else []:
        error(f"{problem.path}: {problem.reason}")
    for job in [] if overwrite or not show else plan.existing:
        typer.echo(f"skip: {job.src}: {job.dst} exists (use --overwrite to replace it)", err=True)
    return BatchTotals(failed=len(plan.problems), skipped=0 if overwrite else len(plan.existing))


def nothing_to_do(totals: BatchTotals) -> int:
    """Say that no job is left to run and return the exit status (failed if any input failed)."""
    import typer

    typer.echo(f"nothing to do: {totals.failed} failed, {totals.skipped} skipped", err=bool(totals.failed))
    return EXIT_FAILED if totals.failed else 0


def report_results(
    results: Iterable[FileResult],
    totals: BatchTotals,
    *,
    path: tuple[str, str, int],
    count: int,
    quiet: bool,
    outscale: float | None = None,
) -> None:
    """Print each file's error or output path under a progress bar over files, then the summary line.
    `path`: the device, what ran the tiles (`Upscaler.path`) and the model's scale."""
    import typer
    from tqdm import tqdm

    start = time.perf_counter()
    bar_off = True if quiet or count < 2 else None
    for result in tqdm(results, total=count, desc="upscale", unit="img", disable=bar_off, file=sys.stderr):
        totals.add(result)
        for warning in result.warnings:
            tqdm.write(f"warning: {' '.join(warning.split())}", file=sys.stderr)
        if result.error is not None:
            error(result.error)
        elif not quiet:
            tqdm.write(printable(f"{result.job.src} -> {result.job.dst}", sys.stdout))
    t = totals
    device, runs, scale = path
    factor = f"x{scale}" if outscale is None else f"x{scale} then x{outscale:g} in all"
    typer.echo(
        f"done: {t.ok} ok, {t.failed} failed, {t.skipped} skipped; {t.megapixels_in:.2f} MP in -> "
        f"{t.megapixels_out:.2f} MP out in {time.perf_counter() - start:.1f} s "
        f"({device}, {runs}, {factor})"
    )


def printable(text: str, stream: TextIO) -> str:
    """`text` as `stream` can print it: file names may hold bytes that are not text (shown escaped)
    or characters a non-UTF-8 terminal cannot show, and a crash after the work is done loses the summary."""
    encoding = getattr(stream, "encoding", None) or "utf-8"
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return text.encode(encoding, "backslashreplace").decode(encoding)
