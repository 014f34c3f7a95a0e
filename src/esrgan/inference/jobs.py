"""What `esrgan upscale` will do, before any model loads: inputs (files, folders, globs) to (input,
output) jobs, and the checks on options and the output folder that need no model.

Pure path logic with no torch: the warm start path (`esrgan.inference.warm`) plans with it too, so both
paths name outputs, skip and refuse alike.
"""

from __future__ import annotations

import glob
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from esrgan.io.formats import OUTPUT_VIDEO_EXTENSIONS, format_for_path, is_image_file, is_video_file
from esrgan.io.image import ImageError


@dataclass(frozen=True)
class InputFile:
    """An input image and the folder its output path mirrors from (for --out-dir)."""

    path: Path
    base: Path
    explicit: bool
    """Named on the command line (not found by scanning a folder or a glob)."""


@dataclass(frozen=True)
class Job:
    src: Path
    dst: Path


@dataclass(frozen=True)
class Problem:
    """An input that cannot become a job; `path: reason` is printed as an error."""

    path: Path
    reason: str


@dataclass(frozen=True)
class Plan:
    jobs: list[Job]
    problems: list[Problem]
    existing: list[Job]
    """Jobs whose output already exists (skipped unless overwriting)."""

    def to_run(self, *, overwrite: bool) -> list[Job]:
        """The jobs to run: those with existing outputs too when overwriting."""
        return [*self.jobs, *self.existing] if overwrite else list(self.jobs)


def _is_media(path: Path) -> bool:
    return is_image_file(path) or is_video_file(path)


def _scan_folder(folder: Path, recursive: bool) -> list[Path]:
    found = folder.rglob("*") if recursive else folder.iterdir()
    # Hidden files and folders include atomic_write's temporaries and the video segments of a run
    # still in progress.
    return sorted(
        p
        for p in found
        if p.is_file()
        and _is_media(p)
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def _glob_base(pattern: str) -> Path:
    # The folder part before the first wildcard: what --out-dir mirrors from.
    parts = Path(pattern).parts
    fixed = []
    for part in parts[:-1]:
        if glob.has_magic(part):
            break
        fixed.append(part)
    return Path(*fixed) if fixed else Path(".")


def expand_inputs(inputs: list[str], *, recursive: bool) -> tuple[list[InputFile], list[Problem]]:
    """Files as given, folders scanned (recursively with `recursive`), globs expanded (`**` works)."""
    files: list[InputFile] = []
    problems: list[Problem] = []
    seen: set[Path] = set()

    def add(path: Path, base: Path, explicit: bool) -> None:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            files.append(InputFile(path=path, base=base, explicit=explicit))

    for item in inputs:
        path = Path(item)
        if path.is_dir():
            for p in _scan_folder(path, recursive):
                add(p, path, False)
        elif path.exists():
            add(path, path.parent, True)
        elif glob.has_magic(item):
            matches = sorted(glob.glob(item, recursive=True))
            base = _glob_base(item)
            for m in map(Path, matches):
                if m.is_dir():
                    for p in _scan_folder(m, recursive):
                        add(p, base, False)
                elif m.is_file() and _is_media(m):
                    add(m, base, False)
            if not matches:
                problems.append(Problem(path, "no files match this pattern"))
        else:
            problems.append(Problem(path, "no such file or directory"))
    return files, problems


def output_path(item: InputFile, *, out_dir: Path | None, suffix: str, ext: str | None) -> Path:
    """`<stem><suffix><ext>` beside the input, or under `out_dir` mirroring the input's sub-folders.

    `ext` applies to the inputs of its kind (an image extension to images, a video one to videos); the
    others keep their format (an image named with an odd extension gets PNG, a video in a container
    this tool does not write gets MP4)."""
    if is_video_file(item.path):
        kept = item.path.suffix if item.path.suffix.lower() in OUTPUT_VIDEO_EXTENSIONS else ".mp4"
        new_ext = ext if ext is not None and ext in OUTPUT_VIDEO_EXTENSIONS else kept
    else:
        kept = item.path.suffix if is_image_file(item.path) else ".png"
        new_ext = ext if ext is not None and ext not in OUTPUT_VIDEO_EXTENSIONS else kept
    name = f"{item.path.stem}{suffix}{new_ext}"
    if out_dir is None:
        return item.path.parent / name
    try:
        rel = item.path.parent.resolve().relative_to(item.base.resolve())
    except ValueError:
        rel = Path()
    return out_dir / rel / name


def normalise_ext(ext: str | None) -> str | None:
    if ext is None:
        return None
    ext = ext.strip().lower()
    return ext if ext.startswith(".") else f".{ext}"


def _within(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
    except ValueError:
        return False
    return True


def plan_jobs(
    inputs: list[str],
    *,
    recursive: bool = False,
    out_dir: Path | None = None,
    suffix: str = "_sr",
    ext: str | None = None,
    overwrite: bool = False,
) -> Plan:
    """Expand inputs and give each an output path.

    Files found by scanning are dropped when they are this run's own outputs (an earlier run's
    `x_sr.png` next to `x.png`, or anything inside `out_dir`), so rerunning on a folder is safe. An
    output that would replace its own input, collide with another job's, or (with `overwrite`) replace
    another input of this run before it is read, is a problem.
    """
    ext = normalise_ext(ext)
    files, problems = expand_inputs(inputs, recursive=recursive)
    planned = [(f, output_path(f, out_dir=out_dir, suffix=suffix, ext=ext)) for f in files]
    producers = {os.path.normcase(dst.resolve()): os.path.normcase(f.path.resolve()) for f, dst in planned}
    kept = []
    for f, dst in planned:
        src_key = os.path.normcase(f.path.resolve())
        is_other_output = producers.get(src_key, src_key) != src_key
        if f.explicit or not (is_other_output or (out_dir is not None and _within(f.path, out_dir))):
            kept.append((f, dst, src_key, os.path.normcase(dst.resolve())))
    inputs_by_key = {src_key: f.path for f, _, src_key, _ in kept}
    jobs: list[Job] = []
    existing: list[Job] = []
    claimed: dict[str, Path] = {}
    for f, dst, src_key, dst_key in kept:
        if src_key == dst_key:
            problems.append(
                Problem(f.path, "output would overwrite the input itself; use --suffix or --out-dir")
            )
            continue
        if overwrite and dst_key in inputs_by_key:
            problems.append(Problem(f.path, f"output {dst} is another input of this run; it is not replaced"))
            continue
        if dst_key in claimed:
            problems.append(Problem(f.path, f"output {dst} is already the output of {claimed[dst_key]}"))
            continue
        claimed[dst_key] = f.path
        job = Job(src=f.path, dst=dst)
        (existing if dst.exists() else jobs).append(job)
    return Plan(jobs=jobs, problems=problems, existing=existing)


def check_ext(ext: str | None) -> str | None:
    """`ext` normalised to '.png' form (None: keep each input's); ValueError when no writer handles it."""
    normalised = normalise_ext(ext)
    if normalised is not None and normalised not in OUTPUT_VIDEO_EXTENSIONS:
        try:
            format_for_path(Path("x" + normalised))
        except ValueError:
            raise ValueError(f"{ext}: not an image or video format this tool can write") from None
    return normalised


class SetupError(ValueError):
    """The model or an option cannot be used, so nothing runs; the message is one line."""


def check_out_dir(out_dir: Path) -> None:
    """Create `out_dir` if needed and make sure files can be written in it; `SetupError` otherwise.

    Checked once before the model loads: a folder that is a file, sits under a file, is read-only or
    not ours would otherwise fail every image with the same message.
    """
    if out_dir.exists() and not out_dir.is_dir():
        raise SetupError(f"--out-dir {out_dir}: is a file, not a folder")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out_dir, prefix=".esrgan-write-test-"):
            pass
    except (FileExistsError, NotADirectoryError):
        raise SetupError(f"--out-dir {out_dir}: a file is in the way of this folder") from None
    except OSError as exc:
        raise SetupError(f"--out-dir {out_dir}: cannot write there ({exc.strerror or exc})") from None


@dataclass(frozen=True)
class FileResult:
    """What became of one job: `error` is a one-line message naming the file, None once it is written."""

    job: Job
    error: str | None = None
    megapixels_in: float = 0.0
    megapixels_out: float = 0.0
    warnings: tuple[str, ...] = ()
    """One-line warnings about a file that was written (e.g. a truncated video's frames up to the damage)."""


@dataclass
class BatchTotals:
    """Running counts of a batch, for its summary line."""

    ok: int = 0
    failed: int = 0
    skipped: int = 0
    megapixels_in: float = 0.0
    megapixels_out: float = 0.0

    def add(self, result: FileResult) -> None:
        if result.error is not None:
            self.failed += 1
            return
        self.ok += 1
        self.megapixels_in += result.megapixels_in
        self.megapixels_out += result.megapixels_out


def job_failure(job: Job, exc: BaseException) -> str:
    """The one-line message a job's failure is reported with: the image is bad (`ImageError` says
    why), memory ran out, the output cannot be written, or a value is wrong for this file."""
    if isinstance(exc, ImageError):
        return str(exc)
    if isinstance(exc, MemoryError):
        return f"{job.src}: out of memory (try a smaller --tile)"
    if isinstance(exc, FileExistsError | NotADirectoryError):
        return f"{job.dst}: cannot write output (a file is in the way of its folder)"
    if isinstance(exc, OSError):
        return f"{job.dst}: cannot write output ({exc.strerror or exc})"
    return f"{job.src}: {exc}"
