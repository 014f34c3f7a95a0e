"""Turning command-line inputs (files, folders, globs) into (input, output) jobs.

Pure path logic, no image decoding: the CLI reports per-job problems and keeps going.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path

# What a folder or glob picks up; a file named explicitly is always tried, whatever its extension.
IMAGE_EXTENSIONS = frozenset(
    {
        ".png",
        ".jpg",
        ".jpeg",
        ".jpe",
        ".jfif",
        ".webp",
        ".bmp",
        ".tif",
        ".tiff",
        ".gif",
        ".tga",
        ".ppm",
        ".pgm",
        ".pbm",
        ".pnm",
        ".qoi",
        ".avif",
    }
)


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


def _is_image_name(p: Path) -> bool:
    return p.suffix.lower() in IMAGE_EXTENSIONS


def _scan_folder(folder: Path, recursive: bool) -> list[Path]:
    found = folder.rglob("*") if recursive else folder.iterdir()
    # Hidden files include atomic_write's temporaries of a run still in progress.
    return sorted(p for p in found if p.is_file() and _is_image_name(p) and not p.name.startswith("."))


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
                elif m.is_file() and _is_image_name(m):
                    add(m, base, False)
            if not matches:
                problems.append(Problem(path, "no files match this pattern"))
        else:
            problems.append(Problem(path, "no such file or directory"))
    return files, problems


def output_path(item: InputFile, *, out_dir: Path | None, suffix: str, ext: str | None) -> Path:
    """`<stem><suffix><ext>` beside the input, or under `out_dir` mirroring the input's sub-folders."""
    # Keep the input's format; a file named explicitly with an odd extension gets PNG.
    kept = item.path.suffix if _is_image_name(item.path) else ".png"
    new_ext = ext if ext is not None else kept
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
) -> Plan:
    """Expand inputs and give each an output path.

    Files found by scanning are dropped when they are this run's own outputs (an earlier run's
    `x_sr.png` next to `x.png`, or anything inside `out_dir`), so rerunning on a folder is safe. An
    output that would replace its own input, or collide with another job's, is a problem.
    """
    ext = normalise_ext(ext)
    files, problems = expand_inputs(inputs, recursive=recursive)
    planned = [(f, output_path(f, out_dir=out_dir, suffix=suffix, ext=ext)) for f in files]
    producers = {os.path.normcase(dst.resolve()): os.path.normcase(f.path.resolve()) for f, dst in planned}
    jobs: list[Job] = []
    existing: list[Job] = []
    claimed: dict[str, Path] = {}
    for f, dst in planned:
        src_key = os.path.normcase(f.path.resolve())
        dst_key = os.path.normcase(dst.resolve())
        is_other_output = producers.get(src_key, src_key) != src_key
        if not f.explicit and (is_other_output or (out_dir is not None and _within(f.path, out_dir))):
            continue
        if src_key == dst_key:
            problems.append(
                Problem(f.path, "output would overwrite the input itself; use --suffix or --out-dir")
            )
            continue
        if dst_key in claimed:
            problems.append(Problem(f.path, f"output {dst} is already the output of {claimed[dst_key]}"))
            continue
        claimed[dst_key] = f.path
        job = Job(src=f.path, dst=dst)
        (existing if dst.exists() else jobs).append(job)
    return Plan(jobs=jobs, problems=problems, existing=existing)
