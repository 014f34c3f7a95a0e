"""Training-state checkpoints: atomic writes, keep-last-K, RNG capture, latest-good lookup.

A training state lives in ``RUN/checkpoints/{stage}_{iteration:08d}.pt`` (``torch.save`` of plain
tensors, dicts, lists and numbers so that ``weights_only`` loading works). Release weights are written
separately (``esrgan.weights.save_generator``). A write goes to a temporary file that is renamed over the
target only when complete, and older files are pruned only after that, so killing the process at any
moment leaves the previous good checkpoint in place.
"""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from esrgan.utils import atomic_write

_NAME = re.compile(r"^(pretrain|gan)_(\d{8})\.pt$")
_STAGE_ORDER = {"pretrain": 0, "gan": 1}


class CheckpointError(RuntimeError):
    """A training-state file is unusable (message names the file)."""


def capture_rng_state() -> dict[str, Any]:
    """Python, NumPy, torch CPU and CUDA generator states (tensors/ints/lists only)."""
    py_version, py_state, py_gauss = random.getstate()
    np_state = np.random.get_state()
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
    found = []
    for p in ckpt_dir.iterdir():
        m = _NAME.match(p.name)
        if m:
            found.append(((_STAGE_ORDER[m.group(1)], int(m.group(2))), p))
    return [p for _, p in sorted(found)]


def save_checkpoint(state: dict[str, Any], ckpt_dir: Path, *, keep_last: int) -> Path:
    """Write ``state`` (must hold ``stage`` and ``iteration``) atomically, then prune old files."""
    path = ckpt_dir / checkpoint_name(state["stage"], state["iteration"])
    with atomic_write(path) as tmp:
        torch.save(state, tmp)
    for old in list_checkpoints(ckpt_dir)[:-keep_last]:
        old.unlink(missing_ok=True)
    return path


def load_checkpoint(path: Path) -> dict[str, Any]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{path}: unreadable training state ({exc.__class__.__name__})") from exc
    if not isinstance(state, dict) or "stage" not in state or "iteration" not in state:
        raise CheckpointError(f"{path}: not a training state written by esrgan train")
    return state


def load_latest(ckpt_dir: Path) -> tuple[Path, dict[str, Any]] | None:
    """Newest readable checkpoint; an unreadable newest file (e.g. foreign damage) falls back to older."""
    errors = []
    for path in reversed(list_checkpoints(ckpt_dir)):
        try:
            return path, load_checkpoint(path)
        except CheckpointError as exc:
            errors.append(str(exc))
    if errors:
        raise CheckpointError(f"no readable checkpoint in {ckpt_dir}: {errors[0]}")
    return None
