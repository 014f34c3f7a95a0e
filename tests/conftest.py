"""Shared test fixtures: paths to the read-only shared data, and deterministic torch settings."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

# Albumentations asks PyPI for its latest version at import unless told not to; tests stay offline.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"shared data folder not found at {SHARED}")
    return SHARED


@pytest.fixture(autouse=True)
def _seed_torch() -> None:
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _restore_sigchld() -> Iterator[None]:
    """Put back the SIGCHLD handler a test found. The first DataLoader with worker processes installs
    torch's handler for the rest of the process; with OpenVINO's threads running too (the int8 tests),
    the next child process to exit crashed pytest with a segmentation fault (seen in CI: a DataLoader
    test, an int8 upscale, then any test that runs a subprocess). No command of ours combines the two
    in one process: training has the workers, int8 inference has OpenVINO."""
    before = signal.getsignal(signal.SIGCHLD)
    yield
    if signal.getsignal(signal.SIGCHLD) is not before:
        signal.signal(signal.SIGCHLD, before)


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    # Tiny convs thrash with several OpenMP threads on a busy 2-core machine (measured 3-7x slower).
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Keep every cache (converted zoo models, decoded images) out of the user's real cache folder."""
    cache = tmp_path_factory.mktemp("esrgan-cache")
    old = os.environ.get("ESRGAN_CACHE")
    os.environ["ESRGAN_CACHE"] = str(cache)
    yield cache
    if old is None:
        os.environ.pop("ESRGAN_CACHE", None)
    else:
        os.environ["ESRGAN_CACHE"] = old
