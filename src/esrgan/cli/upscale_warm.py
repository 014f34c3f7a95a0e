"""`esrgan upscale` started warm: a plain command line for a model this machine has run before is
answered without importing torch (`esrgan.inference.warm`): 0.7 s against 2.6 s for a 32 px image with
realesrgan-x4plus on a 2-core AVX512-BF16 EPYC.

`run_warm` takes the command line before Typer sees it. It accepts only what it can do exactly as the
full command would: image files, folders and globs; --model, --out-dir, --suffix, --ext, --quality,
--max-pixels, --overwrite, --recursive, --quiet; --precision, --runtime, --device and --tile at values
that leave the choice to `auto` on the CPU. Anything else, work to do with no remembered entry for the
request, a video, or several processes sharing the work: None, and the full command runs (with its own
parsing, errors and help). Inputs that cannot run and outputs kept are reported as the full command
reports them (`esrgan.cli._report`), also when nothing is left to do. Images the network cannot take
whole, or that are not 8-bit RGB, go through the full path inside the run (torch loaded once, then), so
the outputs, lines and summary are the full command's.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from esrgan.cli._report import nothing_to_do, report_plan, report_results
from esrgan.inference.jobs import (
    FileResult,
    Job,
    SetupError,
    check_ext,
    check_out_dir,
    job_failure,
    plan_jobs,
)
from esrgan.inference.sharding import shard_from_env
from esrgan.inference.warm import WarmEntry, WarmModel, fits_one_tile, recall
from esrgan.io import DEFAULT_MAX_PIXELS, decode_array, is_video_file, write_array

if TYPE_CHECKING:
    from esrgan.inference.upscaler import Upscaler

WARM_START_ENV = "ESRGAN_WARM_START"
"""Set to 0 to always take the full path (to compare, or to rule the warm start out)."""
_VALUED = {
    "--model": "model",
    "-m": "model",
    "--out-dir": "out_dir",
    "-o": "out_dir",
    "--suffix": "suffix",
    "--ext": "ext",
    "--quality": "quality",
    "--max-pixels": "max_pixels",
    "--precision": "precision",
    "--runtime": "runtime",
    "--device": "device",
    "--tile": "tile",
}
_FLAGS = {
    "--overwrite": "overwrite",
    "--recursive": "recursive",
    "-r": "recursive",
    "--quiet": "quiet",
    "-q": "quiet",
}
# The values that leave the path to `auto` on the CPU (`autoselect.applies`): the requests a warm entry
# can have been remembered for.
_ALLOWED = {
    "precision": {"auto", "fp32"},
    "runtime": {"auto", "openvino", "onnxruntime"},
    "device": {"auto", "cpu"},
    "tile": {"auto"},
}


@dataclass(kw_only=True)
class WarmArgs:
    """A plain `esrgan upscale` command line, with the full command's defaults."""

    inputs: list[str] = field(default_factory=list)
    model: str | None = None
    out_dir: Path | None = None
    suffix: str = "_sr"
    ext: str | None = None
    quality: int = 95
    max_pixels: int = DEFAULT_MAX_PIXELS
    precision: str = "auto"
    runtime: str = "auto"
    device: str = "auto"
    overwrite: bool = False
    recursive: bool = False
    quiet: bool = False


def parse_warm(argv: list[str]) -> WarmArgs | None:
    """The options of `argv` (the command line after `esrgan`) if it is a plain `upscale` the warm
    path can run, else None: the full command parses it, errors and help included."""
    if not argv or argv[0] != "upscale":
        return None
    values: dict[str, str | bool] = {}
    inputs: list[str] = []
    rest = iter(argv[1:])
    only_inputs = False
    for token in rest:
        if only_inputs or not token.startswith("-"):
            inputs.append(token)
            continue
        if token == "--":
            only_inputs = True
            continue
        name, eq, value = token.partition("=") if token.startswith("--") else (token, "", "")
        dest = _FLAGS.get(name) if not eq else None
        if dest is not None:
            given: str | bool = True
        elif name in _VALUED:
            dest = _VALUED[name]
            given = value if eq else next(rest, "-")
            if given.startswith("-"):
                return None  # a missing value, or one the full parser may read otherwise
        else:
            return None
        if dest in values:
            return None  # given twice
        values[dest] = given
    if not inputs:
        return None
    for name, allowed in _ALLOWED.items():
        if values.get(name, "auto") not in allowed:
            return None
    return _build(inputs, values)


def _build(inputs: list[str], values: dict[str, str | bool]) -> WarmArgs | None:
    text = {k: v for k, v in values.items() if isinstance(v, str)}
    args = WarmArgs(
        inputs=inputs,
        model=text.get("model"),
        out_dir=Path(text["out_dir"]) if "out_dir" in text else None,
        suffix=text.get("suffix", "_sr"),
        precision=text.get("precision", "auto"),
        runtime=text.get("runtime", "auto"),
        device=text.get("device", "auto"),
        overwrite=bool(values.get("overwrite")),
        recursive=bool(values.get("recursive")),
        quiet=bool(values.get("quiet")),
    )
    for name, low, high in (("quality", 1, 100), ("max_pixels", 0, None)):
        if name in text:
            number = text[name]
            if not (number.isascii() and number.isdigit()):
                return None
            if int(number) < low or (high is not None and int(number) > high):
                return None
            setattr(args, name, int(number))
    if "ext" in text:
        try:
            args.ext = check_ext(text["ext"])
        except ValueError:
            return None
    return args


class _FullPath:
    """The full path for the odd file of a warm run (not 8-bit RGB, or too large for one tile): the
    model loaded with torch at the first such file, as the full command would load it."""

    def __init__(self, args: WarmArgs) -> None:
        self.args = args
        self._upscaler: Upscaler | None = None

    def run(self, job: Job) -> FileResult:
        from esrgan.cli.upscale import tile_bar
        from esrgan.inference.batch import load_upscaler, upscale_jobs

        a = self.args
        if self._upscaler is None:
            try:
                up, _ = load_upscaler(
                    a.model, device=a.device, precision=a.precision, runtime=a.runtime, progress=not a.quiet
                )
                up.prepare(progress=not a.quiet)
            except (SetupError, ValueError, OSError, RuntimeError) as exc:
                return FileResult(job, f"{job.src}: {' '.join(str(exc).split())}")
            self._upscaler = up
        bar = None if a.quiet else tile_bar
        results = upscale_jobs(
            self._upscaler, [job], max_pixels=a.max_pixels or None, quality=a.quality, tile_progress=bar
        )
        return next(iter(results))


def _upscale(model: WarmModel, jobs: list[Job], args: WarmArgs) -> Iterator[FileResult]:
    """Each job's result: plain 8-bit RGB images that fit one tile on the warm model, others by the
    full path; failures as the full command reports them (`job_failure`)."""
    full = _FullPath(args)
    entry = model.entry
    for job in jobs:
        try:
            decoded = decode_array(job.src, max_pixels=args.max_pixels or None)
            height, width = decoded.array.shape[:2]
            plain = decoded.colours == 3 and not decoded.alpha and decoded.array.dtype.itemsize == 1
            if not (plain and (entry.in_ch, entry.out_ch) == (3, 3) and fits_one_tile(entry, height, width)):
                yield full.run(job)
                continue
            out = model.upscale(decoded.array)
            write_array(job.dst, out, quality=args.quality, icc_profile=decoded.icc)
        except (MemoryError, OSError, ValueError) as exc:
            yield FileResult(job, job_failure(job, exc))
        else:
            # As `ImageData.megapixels` counts them on the full path.
            megapixels_out = out.shape[0] * out.shape[1] / 1e6
            yield FileResult(job, megapixels_in=height * width / 1e6, megapixels_out=megapixels_out)


def run_warm(argv: list[str]) -> int | None:
    """Run `argv` warm and return the exit status, or None when the full command must run it (always
    with `ESRGAN_WARM_START=0` in the environment). Nothing is printed before that is settled."""
    if os.environ.get(WARM_START_ENV, "").strip() == "0":
        return None
    args = parse_warm(argv)
    if args is None:
        return None
    try:
        if shard_from_env().shared:
            return None
    except ValueError:
        return None
    plan = plan_jobs(
        args.inputs,
        recursive=args.recursive,
        out_dir=args.out_dir,
        suffix=args.suffix,
        ext=args.ext,
        overwrite=args.overwrite,
    )
    jobs = plan.to_run(overwrite=args.overwrite)
    if any(is_video_file(job.src) for job in jobs):
        return None
    model = None
    if jobs:  # with none, the full command reports the plan without loading the model either
        entry: WarmEntry | None = recall(args.model, precision=args.precision, runtime=args.runtime)
        if entry is None:
            return None
        try:
            if args.out_dir is not None:
                check_out_dir(args.out_dir)
            model = WarmModel(entry)
        except SetupError:
            return None
        except Exception:  # a runtime that cannot load the network now: the full path says why, or mends it
            return None
    totals = report_plan(plan, overwrite=args.overwrite)
    if model is None:
        return nothing_to_do(totals)
    path = ("cpu", model.entry.label, model.entry.scale)
    report_results(_upscale(model, jobs, args), totals, path=path, count=len(jobs), quiet=args.quiet)
    return 1 if totals.failed else 0
