"""Training state without training: what a resume file must hold, and how the best weights are chosen."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from esrgan.training.checkpoint import (
    CheckpointError,
    CheckpointFormatError,
    TrainingState,
    list_checkpoints,
    load_checkpoint,
    load_latest,
)
from esrgan.training.config import ValidationConfig
from esrgan.training.validation import Best, new_best


def _state(**changes: object) -> dict[str, object]:
    """A minimal format-1 resume file of a pretrain stage (no optional keys)."""
    raw: dict[str, object] = {
        "format": 1, "stage": "pretrain", "iteration": 5, "total": 10, "generator_config": {},
        "generator": {}, "optim_g": {}, "sched_g": {}, "rng": {},
    }  # fmt: skip
    raw.update(changes)
    return {k: v for k, v in raw.items() if v is not None}


def test_optional_keys_take_the_values_older_files_imply() -> None:
    state = TrainingState.from_dict(_state(), path=Path("x.pt"))
    assert state.ema_updates == 5  # no warm-up count: the EMA saw every iteration
    assert state.best == {} and state.nonfinite_streak == 0 and state.log_offset == 0
    assert state.ema is None and state.discriminator is None and state.psnr_weights is None
    assert state.to_dict()["format"] == 1


@pytest.mark.parametrize("fmt", [0, 2, "1"])
def test_another_format_is_a_one_line_error_naming_the_version(fmt: object) -> None:
    with pytest.raises(CheckpointFormatError) as exc:
        TrainingState.from_dict(_state(format=fmt), path=Path("run/checkpoints/pretrain_00000005.pt"))
    message = str(exc.value)
    assert message.startswith("run/checkpoints/pretrain_00000005.pt: training-state format")
    assert f"format {fmt!r} is not supported" in message and "\n" not in message


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (_state(format=None), "not a training state"),
        ([1, 2], "not a training state"),
        (_state(optim_g=None), "lacks optim_g"),
    ],
)
def test_foreign_or_incomplete_files_are_named(raw: object, message: str) -> None:
    with pytest.raises(CheckpointError, match=message):
        TrainingState.from_dict(raw, path=Path("x.pt"))


def test_latest_falls_back_over_damage_but_not_over_another_format(tmp_path: Path) -> None:
    torch.save(_state(iteration=2), tmp_path / "pretrain_00000002.pt")
    (tmp_path / "pretrain_00000003.pt").write_bytes(b"cut short")
    found = load_latest(tmp_path)
    assert found is not None and found.state.iteration == 2
    assert [(p.name, "unreadable" in why) for p, why in found.unreadable] == [("pretrain_00000003.pt", True)]
    torch.save(_state(iteration=4, format=2), tmp_path / "pretrain_00000004.pt")
    assert [p.name for p in list_checkpoints(tmp_path)][-1] == "pretrain_00000004.pt"
    with pytest.raises(CheckpointFormatError, match="format 2"):
        load_latest(tmp_path)
    with pytest.raises(CheckpointError, match="unreadable"):
        load_checkpoint(tmp_path / "pretrain_00000003.pt")


def test_best_round_trips_through_the_checkpoint_entry() -> None:
    best = Best(metric="psnr", value=27.5, iteration=300)
    assert Best.from_dict(best.to_dict()) == best
    assert Best.from_dict({}) is None


def test_best_follows_the_metric_direction_warmup_and_lpips_fallback() -> None:
    cfg = ValidationConfig(warmup=100, pretrain_metric="psnr", gan_metric="lpips")
    first = new_best(None, cfg, stage="pretrain", iteration=100, metrics={"psnr": 25.0})
    assert first == Best(metric="psnr", value=25.0, iteration=100)
    assert new_best(first, cfg, stage="pretrain", iteration=200, metrics={"psnr": 24.0}) is None
    assert new_best(first, cfg, stage="pretrain", iteration=200, metrics={"psnr": 26.0}) is not None
    assert new_best(None, cfg, stage="pretrain", iteration=99, metrics={"psnr": 30.0}) is None  # warm-up
    assert new_best(None, cfg, stage="pretrain", iteration=100, metrics={"psnr": float("nan")}) is None
    gan = new_best(None, cfg, stage="gan", iteration=100, metrics={"perceptual": 3.0})  # no LPIPS files
    assert gan is not None and gan.metric == "perceptual"
    assert new_best(gan, cfg, stage="gan", iteration=200, metrics={"perceptual": 3.5}) is None  # lower wins


@pytest.mark.parametrize("kind", ["cosine", "multistep"])
def test_resume_follows_the_configs_schedule_from_the_saved_iteration(kind: str) -> None:
    import math

    from torch.optim.lr_scheduler import CosineAnnealingLR, MultiStepLR

    from esrgan.training.checkpoint import _load_schedule

    def make(length: int) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
        opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
        if kind == "cosine":
            return opt, CosineAnnealingLR(opt, T_max=length, eta_min=1e-6)
        return opt, MultiStepLR(opt, milestones=[length // 2], gamma=0.5)

    opt, sched = make(400)
    for _ in range(150):
        opt.step()
        sched.step()
    saved = sched.state_dict()
    opt2, sched2 = make(200)  # the run was shortened: the new schedule applies from iteration 150
    opt2.load_state_dict(opt.state_dict())
    _load_schedule(sched2, saved)
    expected = 1e-6 + (1e-3 - 1e-6) * (1 + math.cos(math.pi * 150 / 200)) / 2 if kind == "cosine" else 5e-4
    assert opt2.param_groups[0]["lr"] == pytest.approx(expected, rel=1e-9)
    assert sched2.last_epoch == 150
    for _ in range(50):  # and it ends where the new schedule ends
        opt2.step()
        sched2.step()
    end = 1e-6 if kind == "cosine" else 5e-4
    assert opt2.param_groups[0]["lr"] == pytest.approx(end, rel=1e-6, abs=1e-12)
    same_opt, same = make(400)  # an unchanged config restores the saved learning rate as before
    same_opt.load_state_dict(opt.state_dict())
    _load_schedule(same, saved)
    assert same_opt.param_groups[0]["lr"] == opt.param_groups[0]["lr"]
