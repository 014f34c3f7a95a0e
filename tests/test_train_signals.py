"""Stopping a real `esrgan train` process: SIGTERM checkpoints and exits cleanly; SIGKILL at any moment
leaves the latest checkpoint loadable, and --resume continues from it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from esrgan.training.checkpoint import list_checkpoints, load_checkpoint, load_latest

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
SHARED = CONFIGS.parents[1] / "shared"


def _cmd(run: Path, *extra: str) -> list[str]:
    w = SHARED / "weights"
    return [
        sys.executable, "-m", "esrgan", "train", str(CONFIGS / "smoke.yaml"), "--run-dir", str(run),
        "--stage", "pretrain", "--no-progress", *extra,
        f"data.root={SHARED / 'datasets'}",
        f"perceptual_loss.weights={w / 'vgg16_imagenet_features.safetensors'}",
        "pretraining.total_iters=100000", "batch_size=2", "pretraining.cr_patch_size=[32, 32]",
        "data.max_train_images=4", "data.max_val_images=1", "data.val_crop=64", "validation.every=100000",
        "checkpoint.every=3", "checkpoint.keep_last=2", "logging.tensorboard=false", "precision=fp32",
    ]  # fmt: skip


def _wait_for(predicate, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"trainer exited early ({proc.returncode}): {out[-2000:]} {err[-2000:]}")
        time.sleep(0.2)
    proc.kill()
    pytest.fail("timed out waiting for a checkpoint")


def _iters(run: Path) -> list[int]:
    return [int(p.stem.split("_")[1]) for p in list_checkpoints(run / "checkpoints")]


@pytest.mark.skipif(not (SHARED / "datasets" / "BSDS500").is_dir(), reason="shared data not found")
def test_sigterm_checkpoints_and_sigkill_never_corrupts(tmp_path: Path) -> None:
    run = tmp_path / "run"
    env = {**os.environ, "ESRGAN_CACHE": str(tmp_path / "cache")}
    proc = subprocess.Popen(_cmd(run), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(lambda: bool(_iters(run)), proc)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-2000:]
    assert "stopped at pretrain iteration" in out + err
    stopped = max(_iters(run))
    assert load_checkpoint(run / "checkpoints" / f"pretrain_{stopped:08d}.pt").iteration == stopped

    proc = subprocess.Popen(
        _cmd(run, "--resume"), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    _wait_for(lambda: max(_iters(run)) >= stopped + 6, proc)
    proc.kill()  # SIGKILL: no handler runs, a checkpoint write may be cut anywhere
    proc.communicate(timeout=60)
    for path in list_checkpoints(run / "checkpoints"):
        assert load_checkpoint(path).iteration == int(path.stem.split("_")[1])
    found = load_latest(run / "checkpoints")
    assert found is not None and found[1].iteration > stopped
