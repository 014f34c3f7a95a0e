"""Training on real-world degradations: the pair pool, and `esrgan train` with data.degradation=realesrgan."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from esrgan.training.checkpoint import load_checkpoint
from esrgan.training.pool import PairPool
from test_train import CONFIGS, _records, tiny_overrides


def _batch(start: int) -> dict[str, torch.Tensor]:
    ids = torch.arange(start, start + 2, dtype=torch.float32)
    return {
        "lr": ids.view(2, 1, 1, 1).expand(2, 3, 2, 2).clone(),
        "hr": ids.view(2, 1, 1, 1).repeat(1, 3, 8, 8),
    }


def test_pool_fills_then_swaps_pairs_keeping_lr_and_hr_together() -> None:
    pool = PairPool(size=4, batch_size=2, seed=0)
    assert torch.equal(pool(_batch(0), iteration=0)["lr"], _batch(0)["lr"])  # filling: own batch
    assert torch.equal(pool(_batch(2), iteration=1)["lr"], _batch(2)["lr"])
    seen: set[float] = set()
    for it in range(2, 12):
        out = pool(_batch(2 * it), iteration=it)
        assert torch.equal(out["lr"][:, 0, 0, 0], out["hr"][:, 0, 0, 0])  # a pair stays a pair
        seen |= set(out["lr"][:, 0, 0, 0].tolist())
    # Pairs leave in a different order than they came: some came back from earlier iterations.
    assert any(v < 2 * it for v in seen for it in [11])
    assert len(seen) > 8


def test_pool_state_round_trips_to_the_same_batches() -> None:
    a = PairPool(size=4, batch_size=2, seed=3)
    for it in range(4):
        a(_batch(2 * it), iteration=it)
    b = PairPool(size=4, batch_size=2, seed=3)
    b.load_state_dict(a.state_dict())
    for it in range(4, 8):
        assert torch.equal(a(_batch(2 * it), iteration=it)["hr"], b(_batch(2 * it), iteration=it)["hr"])
    with pytest.raises(ValueError, match="multiple of the batch size"):
        PairPool(size=5, batch_size=2, seed=0)


@pytest.fixture
def shared() -> Path:
    path = CONFIGS.parents[1] / "shared"
    if not (path / "datasets" / "BSDS500").is_dir():
        pytest.skip(f"shared data not found at {path}")
    return path


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ESRGAN_CACHE", str(tmp_path_factory.mktemp("cache")))


def test_real_esrgan_recipe_trains_both_stages_and_resumes_exactly(shared: Path, tmp_path: Path) -> None:
    """Real-world degradations, USM targets, the pair pool and the U-Net D through `esrgan train`; a run
    stopped mid-way in each stage resumes to the uninterrupted run's weights and pool."""
    from esrgan.cli import app

    over = [
        *tiny_overrides(shared), "data.degradation=realesrgan", "degradation.usm_hr=true",
        "degradation.pool_size=4", "model.discriminator=unet", "training.gan_loss=vanilla",
        "unet_discriminator.num_feat=8", "pretraining.total_iters=5", "data.num_workers=1",
    ]  # fmt: skip
    base = ["train", str(CONFIGS / "smoke.yaml"), "--no-progress", *over]
    runner = CliRunner()
    res = runner.invoke(app, [*base, "--run-dir", str(tmp_path / "whole")])
    assert res.exit_code == 0, res.output
    split = tmp_path / "split"
    res = runner.invoke(app, [*base, "--run-dir", str(split), "--stop-after", "3"])
    assert res.exit_code == 0 and "stopped at pretrain iteration 3" in res.output, res.output
    res = runner.invoke(app, [*base, "--run-dir", str(split), "--stop-after", "3", "--resume"])
    assert res.exit_code == 0 and "stopped at gan iteration 1" in res.output, res.output
    res = runner.invoke(app, [*base, "--run-dir", str(split), "--resume"])
    assert res.exit_code == 0, res.output

    whole = tmp_path / "whole"
    a = load_checkpoint(whole / "checkpoints" / "gan_00000004.pt")
    b = load_checkpoint(split / "checkpoints" / "gan_00000004.pt")
    assert a.pool is not None and b.pool is not None and a.pool["filled"] == 4
    for key in ("lr", "hr", "hr_usm"):
        assert torch.equal(a.pool["store"][key], b.pool["store"][key]), key
    for name in ("pretrain_g", "gan_g", "gan_g_ema"):
        wa = load_file(whole / "weights" / f"{name}.safetensors")
        wb = load_file(split / "weights" / f"{name}.safetensors")
        assert all(torch.equal(wa[k], wb[k]) for k in wa), name
    logged = [r for r in _records(whole) if r["split"] == "train"]
    assert {"pretrain", "gan"} == {r["stage"] for r in logged}
    # The share of wall time spent waiting for batches is logged (what says whether loading is the brake).
    assert all(0.0 <= r["data_wait"] <= 1.0 for r in logged)
