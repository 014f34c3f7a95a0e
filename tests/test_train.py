"""End-to-end training on a few shared BSDS500 images with a tiny G/D: both stages, validation,
checkpoints, exact resume, non-finite handling, release weights, network interpolation, plot, CLI."""

from __future__ import annotations

import contextlib
import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from esrgan.device import cpu_has_native_bf16, cpu_has_native_fp16
from esrgan.training import TrainingError, load_config, train
from esrgan.training.checkpoint import CheckpointError, list_checkpoints, load_checkpoint

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
PRETRAIN, GAN = 6, 4
# Resume-file format 1 as the trainer has written it since the first release: these keys, in this order,
# then "pool" (added with the training-pair pool; older files without it still load, and older readers
# ignore it).
FORMAT_1_KEYS = [
    "format", "stage", "iteration", "total", "generator_config", "generator", "ema", "ema_updates",
    "discriminator", "optim_g", "sched_g", "scaler_g", "optim_d", "sched_d", "scaler_d", "rng", "best",
    "nonfinite_streak", "psnr_weights", "log_offset", "config", "pool",
]  # fmt: skip


def tiny_overrides(shared: Path) -> list[str]:
    """smoke.yaml shrunk to a few seconds: 4 images, 32-pixel patches, one 64-pixel validation crop."""
    w = shared / "weights"
    return [
        f"data.root={shared / 'datasets'}",
        f"perceptual_loss.weights={w / 'vgg16_imagenet_features.safetensors'}",
        f"validation.lpips_vgg_weights={w / 'vgg16_imagenet_features.safetensors'}",
        f"validation.lpips_heads={w / 'lpips_vgg_v0.1_heads.safetensors'}",
        f"pretraining.total_iters={PRETRAIN}",
        f"training.total_iters={GAN}",
        "pretraining.sched_step=4",
        "training.g_sched_steps=[2]",
        "training.d_sched_steps=[3]",
        "batch_size=2",
        "pretraining.cr_patch_size=[32, 32]",
        "training.cr_patch_size=[32, 32]",
        "data.max_train_images=4",
        "data.max_val_images=1",
        "data.val_crop=64",
        "validation.every=3",
        "checkpoint.every=2",
        "checkpoint.keep_last=2",
        "logging.log_every=2",
        "logging.image_every=3",
        "cpu_threads=1",
        "precision=fp32",
    ]


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ESRGAN_CACHE", str(tmp_path_factory.getbasetemp() / "esrgan-cache"))


@pytest.fixture(scope="module")
def shared(request: pytest.FixtureRequest) -> Path:
    path = CONFIGS.parents[1] / "shared"
    if not (path / "datasets" / "BSDS500").is_dir():
        pytest.skip(f"shared data not found at {path}")
    return path


@pytest.fixture(scope="module")
def full_run(shared: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One uninterrupted two-stage run, reused by several tests."""
    mp = pytest.MonkeyPatch()
    mp.setenv("ESRGAN_CACHE", str(tmp_path_factory.getbasetemp() / "esrgan-cache"))
    try:
        run = tmp_path_factory.mktemp("full") / "run"
        cfg = load_config(CONFIGS / "smoke.yaml", tiny_overrides(shared))
        result = train(cfg, run_dir=run, progress=False, console=lambda s: None)
        assert result.completed and result.stage == "gan" and result.iteration == GAN
    finally:
        mp.undo()
    return run


def _tb_steps(run: Path, tag: str) -> list[int]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    return sorted({e.step for e in events.Scalars(tag)})


def _records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_run_folder_has_config_metrics_checkpoints_and_weights(full_run: Path) -> None:
    assert load_config(full_run / "config.yaml").pretraining.total_iters == PRETRAIN
    recs = _records(full_run)
    val = [r for r in recs if r["split"] == "val"]
    assert [(r["stage"], r["iter"]) for r in val] == [
        ("pretrain", 3),
        ("pretrain", 6),
        ("gan", 3),
        ("gan", 4),
    ]
    assert all({"psnr", "ssim", "content", "perceptual"} <= r.keys() for r in val)
    assert all("lpips" in r for r in val if r["stage"] == "gan")
    assert all(10 < r["psnr"] < 50 and 0 < r["ssim"] <= 1 for r in val)
    train_recs = [r for r in recs if r["split"] == "train"]
    assert {"content", "perceptual", "g_adversarial", "g_total", "d_loss", "lr_g", "lr_d"} <= set(
        train_recs[-1]
    )
    lrs = [r["lr_g"] for r in train_recs if r["stage"] == "gan"]
    assert lrs[0] == pytest.approx(1e-4) and lrs[-1] == pytest.approx(5e-5)  # MultiStepLR at iteration 2
    ckpts = [p.name for p in list_checkpoints(full_run / "checkpoints")]
    assert ckpts == ["gan_00000002.pt", "gan_00000004.pt"]  # keep_last=2
    names = {p.name for p in (full_run / "weights").iterdir()}
    assert {"pretrain_g.safetensors", "pretrain_g_ema.safetensors", "pretrain_best.safetensors",
            "gan_g.safetensors", "gan_g_ema.safetensors", "gan_best.safetensors",
            "interp_alpha0.8.safetensors"} <= names  # fmt: skip
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(full_run / "tensorboard"))
    events.Reload()
    assert {"pretrain/val/lr_sr_hr", "gan/val/lr_sr_hr"} <= set(events.Tags()["images"])
    assert {"pretrain/train/content", "gan/val/lpips", "gan/train/d_loss"} <= set(events.Tags()["scalars"])
    assert [e.step for e in events.Scalars("gan/val/psnr")] == [PRETRAIN + 3, PRETRAIN + 4]  # one time axis


def test_checkpoint_holds_full_training_state_and_no_vgg(full_run: Path) -> None:
    state = load_checkpoint(full_run / "checkpoints" / "gan_00000004.pt")
    assert state.stage == "gan" and state.iteration == GAN
    for key in (
        "generator",
        "ema",
        "discriminator",
        "optim_g",
        "optim_d",
        "sched_g",
        "sched_d",
        "scaler_g",
        "rng",
        "best",
        "config",
    ):
        assert getattr(state, key) is not None, key
    assert {"python", "numpy", "torch"} <= set(state.rng)
    assert state.best["metric"] == "lpips"
    assert state.discriminator is not None
    keys = list(state.generator) + list(state.discriminator)
    assert not any("features." in k and "vgg" in k for k in keys)
    assert all(k.startswith(("conv_", "body.")) for k in state.generator)


def test_interpolated_release_weights(full_run: Path) -> None:
    from esrgan.weights import load_generator

    w = full_run / "weights"
    psnr, gan, interp = (
        load_file(w / f"{n}.safetensors") for n in ("pretrain_g", "gan_g", "interp_alpha0.8")
    )
    for k in interp:
        torch.testing.assert_close(interp[k], 0.2 * psnr[k] + 0.8 * gan[k], atol=1e-6, rtol=1e-6)
    model = load_generator(w / "interp_alpha0.8.safetensors")
    assert model.config.num_feat == 16 and model.config.num_block == 2
    out = model(torch.rand(1, 3, 8, 8))
    assert out.shape == (1, 3, 32, 32)


def test_resume_equals_uninterrupted(full_run: Path, shared: Path, tmp_path: Path) -> None:
    cfg = load_config(CONFIGS / "smoke.yaml", tiny_overrides(shared))
    run = tmp_path / "run"
    quiet = {"progress": False, "console": lambda s: None}
    first = train(cfg, run_dir=run, stop_after=3, **quiet)  # mid pretrain (odd: between checkpoints)
    assert not first.completed and (first.stage, first.iteration) == ("pretrain", 3)
    second = train(cfg, run_dir=run, resume=True, stop_after=5, **quiet)  # 3 pretrain + 2 GAN iterations
    assert not second.completed and (second.stage, second.iteration) == ("gan", 2)
    third = train(cfg, run_dir=run, resume=True, **quiet)
    assert third.completed
    for name in ("pretrain_g", "gan_g", "gan_g_ema", "interp_alpha0.8"):
        a = load_file(full_run / "weights" / f"{name}.safetensors")
        b = load_file(run / "weights" / f"{name}.safetensors")
        for k in a:
            assert torch.equal(a[k], b[k]), (name, k)
    da = load_checkpoint(full_run / "checkpoints" / "gan_00000004.pt")
    db = load_checkpoint(run / "checkpoints" / "gan_00000004.pt")
    assert da.discriminator is not None and db.discriminator is not None
    for k in da.discriminator:
        assert torch.equal(da.discriminator[k], db.discriminator[k]), k
    val = lambda r: [(x["stage"], x["iter"], x["psnr"]) for x in _records(r) if x["split"] == "val"]  # noqa: E731
    assert val(run) == val(full_run)
    assert _tb_steps(run, "gan/val/psnr") == [PRETRAIN + 3, PRETRAIN + 4]  # same axis after resume


def test_run_folder_guards(shared: Path, tmp_path: Path, full_run: Path) -> None:
    cfg = load_config(CONFIGS / "smoke.yaml", tiny_overrides(shared))
    with pytest.raises(TrainingError, match="nothing to resume"):
        train(cfg, run_dir=tmp_path / "empty", resume=True, progress=False)
    with pytest.raises(TrainingError, match="already has checkpoints"):
        train(cfg, run_dir=full_run, resume=False, progress=False)
    with pytest.raises(TrainingError, match="--generator"):
        train(cfg, run_dir=tmp_path / "gan-only", stage="gan", progress=False)


def test_nonfinite_losses_skip_steps_then_stop_with_checkpoints_intact(shared: Path, tmp_path: Path) -> None:
    over = [*tiny_overrides(shared), "pretraining.lr=1e30", "max_nonfinite=2", "checkpoint.every=1",
            "validation.every=100"]  # fmt: skip
    cfg = load_config(CONFIGS / "smoke.yaml", over)
    lines: list[str] = []
    with pytest.raises(TrainingError, match="consecutive non-finite losses \\(last: content\\)"):
        train(cfg, run_dir=tmp_path / "run", stage="pretrain", progress=False, console=lines.append)
    assert any("non-finite content loss; step skipped" in line for line in lines)
    ckpts = list_checkpoints(tmp_path / "run" / "checkpoints")
    assert ckpts
    state = load_checkpoint(ckpts[-1])
    assert all(torch.isfinite(v).all() for v in state.generator.values())
    skipped = [r for r in _records(tmp_path / "run") if r["split"] == "skip"]
    assert skipped and "nonfinite_content" in skipped[0]


def test_cli_gan_stage_from_weights_file_and_plot(full_run: Path, shared: Path, tmp_path: Path) -> None:
    from esrgan.cli import app

    runner = CliRunner()
    run = tmp_path / "gan"
    psnr = full_run / "weights" / "pretrain_g.safetensors"
    args = ["train", str(CONFIGS / "smoke.yaml"), "--stage", "gan", "--generator", str(psnr),
            "--run-dir", str(run), "--no-progress", *tiny_overrides(shared),
            "training.total_iters=2"]  # fmt: skip
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert (run / "weights" / "interp_alpha0.8.safetensors").is_file()
    assert not list((run / "checkpoints").glob("pretrain_*"))
    res = runner.invoke(app, ["plot", str(full_run), "--out", str(tmp_path / "curves.png")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"
    res = runner.invoke(
        app, ["train", str(CONFIGS / "smoke.yaml"), "training.bogus=1", "--run-dir", str(run)]
    )
    assert res.exit_code != 0
    assert "training.bogus" in res.output and "Traceback" not in res.output


def test_release_weights_work_with_upscale_and_test_commands(
    full_run: Path, shared: Path, tmp_path: Path
) -> None:
    from esrgan.cli import app

    runner = CliRunner()
    commands = {info.name for info in app.registered_commands}
    if not {"upscale", "test"} <= commands:
        pytest.skip(f"upscale/test commands not registered yet (have {sorted(c for c in commands if c)})")
    model = full_run / "weights" / "interp_alpha0.8.safetensors"
    lr_img = shared / "datasets" / "Set5" / "x4" / "img_001_SRF_4_LR.png"
    res = runner.invoke(
        app, ["upscale", str(lr_img), "--model", str(model), "--out-dir", str(tmp_path / "up")]
    )
    assert res.exit_code == 0, res.output
    assert list((tmp_path / "up").iterdir())
    res = runner.invoke(
        app,
        ["test", "--model", str(model), "--datasets", "set5", "--data-root", str(shared / "datasets"),
         "--out-dir", str(tmp_path / "test"), "--figures", "none"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert (tmp_path / "test" / "results.json").is_file()


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_on_cpu(precision: str, shared: Path, tmp_path: Path) -> None:
    over = [
        *tiny_overrides(shared),
        f"precision={precision}",
        "pretraining.total_iters=2",
        "validation.every=2",
    ]
    cfg = load_config(CONFIGS / "smoke.yaml", over)
    lines: list[str] = []
    # One policy with inference: emulated reduced precision on this CPU runs, with a warning.
    emulated = not (cpu_has_native_bf16() if precision == "bf16" else cpu_has_native_fp16())
    with pytest.warns(RuntimeWarning, match="emulated") if emulated else contextlib.nullcontext():
        result = train(cfg, run_dir=tmp_path / "run", stage="pretrain", progress=False, console=lines.append)
    assert result.completed
    assert any(f"precision torch.{'bfloat16' if precision == 'bf16' else 'float16'}" in x for x in lines)
    state = load_checkpoint(tmp_path / "run" / "checkpoints" / "pretrain_00000002.pt")
    assert all(torch.isfinite(v).all() for v in state.generator.values())
    if precision == "fp16":
        assert state.scaler_g is not None and state.scaler_g["scale"] > 0  # a live, checkpointed GradScaler


def test_r1_penalty_is_applied_and_logged(shared: Path, tmp_path: Path) -> None:
    over = [*tiny_overrides(shared), "pretraining.total_iters=2", "training.total_iters=2"]
    over.append("logging.log_every=1")
    runs = {}
    for name, gamma in (("off", 0.0), ("off_again", 0.0), ("on", 10.0)):
        cfg = load_config(CONFIGS / "smoke.yaml", [*over, f"training.d_r1_weight={gamma}"])
        runs[name] = tmp_path / name
        assert train(cfg, run_dir=runs[name], progress=False, console=lambda s: None).completed
    logged = [r for r in _records(runs["on"]) if r["stage"] == "gan" and r["split"] == "train"]
    assert logged and all(r["d_r1"] > 0 for r in logged)
    assert all("d_r1" not in r for r in _records(runs["off"]))
    # Same seed, data and G: two runs without the penalty end with the same D, the penalty changes it.
    ds = {k: load_checkpoint(r / "checkpoints" / "gan_00000002.pt").discriminator for k, r in runs.items()}
    off, again, on = ds["off"], ds["off_again"], ds["on"]
    assert off is not None and again is not None and on is not None
    assert all(torch.equal(off[k], again[k]) for k in off)
    assert any(not torch.equal(off[k], on[k]) for k in off)


def test_unet_discriminator_with_vanilla_gan_loss_trains_checkpoints_and_resumes_exactly(
    shared: Path, tmp_path: Path
) -> None:
    """Real-ESRGAN's D and GAN loss through `esrgan train`: logged losses, its keys in the checkpoint, and
    a run stopped between checkpoints (after one GAN iteration) resumes to the uninterrupted weights."""
    from esrgan.cli import app

    over = [
        *tiny_overrides(shared), "pretraining.total_iters=2", "model.discriminator=unet",
        "training.gan_loss=vanilla", "unet_discriminator.num_feat=8", "logging.log_every=1",
    ]  # fmt: skip
    runner = CliRunner()
    base = ["train", str(CONFIGS / "smoke.yaml"), "--no-progress", *over]
    res = runner.invoke(app, [*base, "--run-dir", str(tmp_path / "whole")])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, [*base, "--run-dir", str(tmp_path / "split"), "--stop-after", "3"])
    assert res.exit_code == 0 and "stopped at gan iteration 1" in res.output, res.output
    res = runner.invoke(app, [*base, "--run-dir", str(tmp_path / "split"), "--resume"])
    assert res.exit_code == 0, res.output

    whole, split = tmp_path / "whole", tmp_path / "split"
    logged = [r for r in _records(whole) if r["stage"] == "gan" and r["split"] == "train"]
    assert [r["iter"] for r in logged] == [1, 2, 3, 4]
    assert all({"g_adversarial", "d_loss", "content", "perceptual"} <= r.keys() for r in logged)
    assert all(r["d_loss"] > 0 and r["g_adversarial"] > 0 for r in logged)
    a = load_checkpoint(whole / "checkpoints" / "gan_00000004.pt")
    b = load_checkpoint(split / "checkpoints" / "gan_00000004.pt")
    assert a.config["model"]["discriminator"] == "unet" and a.config["training"]["gan_loss"] == "vanilla"
    assert a.discriminator is not None and b.discriminator is not None
    assert {"conv1.weight_orig", "conv1.weight_u", "conv1.weight_v", "conv9.bias"} <= set(a.discriminator)
    assert a.discriminator.keys() == b.discriminator.keys()
    for k in a.discriminator:  # spectral norm's u and v included: they move with every forward
        assert torch.equal(a.discriminator[k], b.discriminator[k]), k
    for name in ("gan_g", "gan_g_ema", "interp_alpha0.8"):
        wa, wb = (
            load_file(whole / "weights" / f"{name}.safetensors"),
            load_file(split / "weights" / f"{name}.safetensors"),
        )
        assert all(torch.equal(wa[k], wb[k]) for k in wa), name


@pytest.mark.filterwarnings("ignore:.*emulated")
# A step that GradScaler skips for an overflow still steps the iteration-based schedule, which torch flags.
@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)` before")
def test_r1_overflow_under_fp16_backs_the_loss_scale_off(
    shared: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from esrgan.training import steps

    calls: list[float] = []

    def overflow_once(real_logits: torch.Tensor, real: torch.Tensor, *, scale: float = 1.0) -> torch.Tensor:
        calls.append(scale)
        value = r1_penalty(real_logits, real, scale=scale)
        return value * float("inf") if len(calls) == 1 else value

    r1_penalty = steps.r1_penalty
    monkeypatch.setattr(steps, "r1_penalty", overflow_once)
    over = [*tiny_overrides(shared), "pretraining.total_iters=2", "training.total_iters=2"]
    cfg = load_config(CONFIGS / "smoke.yaml", [*over, "precision=fp16", "training.d_r1_weight=1.0"])
    assert train(cfg, run_dir=tmp_path / "run", progress=False, console=lambda s: None).completed
    state = load_checkpoint(tmp_path / "run" / "checkpoints" / "gan_00000002.pt")
    assert calls[0] > 1 and len(calls) == 2  # the penalty ran under the live scale, on both steps
    assert calls[1] == calls[0] / 2  # the overflow halved D's scale before the second step
    assert state.scaler_d is not None and state.scaler_d["scale"] <= calls[1]  # (GradScaler may halve again)


def test_wandb_is_optional_and_named_when_missing(shared: Path, tmp_path: Path) -> None:
    try:
        import wandb  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("wandb is installed here; this checks the message for when it is not")
    cfg = load_config(CONFIGS / "smoke.yaml", [*tiny_overrides(shared), "logging.wandb=true"])
    with pytest.raises(TrainingError, match="wandb is not installed"):
        train(cfg, run_dir=tmp_path / "run", progress=False, console=lambda s: None)


def test_wandb_offline_run_is_written_when_installed(shared: Path, tmp_path: Path) -> None:
    pytest.importorskip("wandb")  # optional extra (`pip install .[wandb]`); CI checks the message above
    overrides = [*tiny_overrides(shared), "logging.wandb=true", "pretraining.total_iters=2"]
    cfg = load_config(CONFIGS / "smoke.yaml", [*overrides, "training.total_iters=0"])
    train(cfg, run_dir=tmp_path / "run", stage="pretrain", progress=False, console=lambda s: None)
    runs = list((tmp_path / "run" / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(runs) == 1 and runs[0].stat().st_size > 0


def test_pretrain_then_gan_as_separate_commands_in_one_folder(shared: Path, tmp_path: Path) -> None:
    cfg = load_config(CONFIGS / "smoke.yaml", [*tiny_overrides(shared), "training.total_iters=2"])
    run = tmp_path / "run"
    quiet = {"progress": False, "console": lambda s: None}
    train(cfg, run_dir=run, stage="pretrain", stop_after=2, **quiet)
    with pytest.raises(TrainingError, match="pretrain stage is unfinished"):
        train(cfg, run_dir=run, stage="gan", **quiet)
    assert train(cfg, run_dir=run, stage="pretrain", **quiet).completed
    result = train(cfg, run_dir=run, stage="gan", **quiet)
    assert result.completed and (result.stage, result.iteration) == ("gan", 2)
    from safetensors import safe_open

    with safe_open(str(run / "weights" / "interp_alpha0.8.safetensors"), "pt") as f:
        assert f.metadata()["psnr_weights"] == str(run / "weights" / "pretrain_g.safetensors")
    assert _tb_steps(run, "gan/train/lr_g") == [PRETRAIN + 2]


def test_cpu_recipe_channels_last_cosine_resumes_exactly(shared: Path, tmp_path: Path) -> None:
    """The shipped models' recipe (NHWC, cosine LR, spatial-only augmentation, BSDS500 train + test)
    resumes bit-exactly, and its release weights are ordinary contiguous tensors."""
    over = [
        *tiny_overrides(shared),
        "channels_last=true",
        "pretraining.scheduler=cosine",
        "pretraining.lr_min=1e-6",
        "data.augment=spatial",
        "pretraining.train_datasets=[bsds500, bsds500-test]",
    ]
    cfg = load_config(CONFIGS / "smoke.yaml", over)
    quiet = {"progress": False, "console": lambda s: None}
    whole = train(cfg, run_dir=tmp_path / "whole", stage="pretrain", **quiet)
    assert whole.completed
    first = train(cfg, run_dir=tmp_path / "split", stage="pretrain", stop_after=3, **quiet)
    assert not first.completed
    assert train(cfg, run_dir=tmp_path / "split", stage="pretrain", resume=True, **quiet).completed
    for name in ("pretrain_g", "pretrain_g_ema"):
        a = load_file(tmp_path / "whole" / "weights" / f"{name}.safetensors")
        b = load_file(tmp_path / "split" / "weights" / f"{name}.safetensors")
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a), name
    lrs = [r["lr_g"] for r in _records(tmp_path / "whole") if r["split"] == "train"]
    assert lrs == sorted(lrs, reverse=True) and lrs[-1] < cfg.pretraining.lr / 2  # cosine decays
    state = load_checkpoint(tmp_path / "whole" / "checkpoints" / f"pretrain_{PRETRAIN:08d}.pt")
    assert state.ema_updates == PRETRAIN


@pytest.mark.parametrize("drop", [(), ("ema_updates",)], ids=["format-1", "format-1-before-ema-warmup"])
def test_format_1_resume_file_continues_exactly(
    drop: tuple[str, ...], full_run: Path, shared: Path, tmp_path: Path
) -> None:
    """A resume file laid out as format 1 (a plain dict; files from before the EMA warm-up lack
    ``ema_updates``) continues to the same weights as the uninterrupted run."""
    cfg = load_config(CONFIGS / "smoke.yaml", tiny_overrides(shared))
    run = tmp_path / "run"
    quiet = {"progress": False, "console": lambda s: None}
    train(cfg, run_dir=run, stop_after=3, **quiet)
    path = run / "checkpoints" / "pretrain_00000003.pt"
    written = torch.load(path, map_location="cpu", weights_only=True)
    assert list(written) == FORMAT_1_KEYS
    head = [written[k] for k in ("format", "stage", "iteration", "total", "ema_updates", "log_offset")]
    assert head == [1, "pretrain", 3, PRETRAIN, 3, PRETRAIN]
    assert written["psnr_weights"] is None and written["nonfinite_streak"] == 0
    assert set(written["best"]) == {"metric", "value", "iteration"}
    torch.save({k: v for k, v in written.items() if k not in drop}, path)
    assert train(cfg, run_dir=run, resume=True, **quiet).completed
    for name in ("pretrain_g", "pretrain_g_ema", "gan_g", "gan_g_ema"):
        a = load_file(full_run / "weights" / f"{name}.safetensors")
        b = load_file(run / "weights" / f"{name}.safetensors")
        assert all(torch.equal(a[k], b[k]) for k in a), name


def test_resume_file_of_an_unknown_format_is_refused_in_one_line(
    full_run: Path, shared: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    shutil.copytree(full_run / "checkpoints", run / "checkpoints")
    newest = run / "checkpoints" / "gan_00000004.pt"
    state = torch.load(newest, map_location="cpu", weights_only=True)
    state["format"] = 2
    torch.save(state, newest)
    cfg = load_config(CONFIGS / "smoke.yaml", tiny_overrides(shared))
    with pytest.raises(CheckpointError) as exc:  # not silently continued from the older gan_00000002.pt
        train(cfg, run_dir=run, resume=True, progress=False, console=lambda s: None)
    message = str(exc.value)
    assert "\n" not in message and str(newest) in message and "format 2 is not supported" in message
    from esrgan.cli import app

    args = ["train", str(CONFIGS / "smoke.yaml"), "--run-dir", str(run), "--resume", "--no-progress",
            *tiny_overrides(shared)]  # fmt: skip
    res = CliRunner().invoke(app, args)
    assert res.exit_code != 0 and "Traceback" not in res.output
    assert [line for line in res.output.splitlines() if "format 2" in line] == [f"error: {message}"]


def test_command_line_config_comes_from_the_run_folder_when_resuming(tmp_path: Path) -> None:
    from esrgan.training import ConfigError, load_run_config, save_config

    cfg, run_dir = load_run_config(str(CONFIGS / "smoke.yaml"), ["batch_size=3"], run_dir=None, resume=None)
    assert cfg.batch_size == 3 and run_dir == Path("runs") / "smoke"
    save_config(cfg, tmp_path / "config.yaml")
    # `esrgan train --resume --run-dir RUN key=value`: the first argument is an override, not a file.
    cfg, run_dir = load_run_config("batch_size=5", ["seed=7"], run_dir=tmp_path, resume=True)
    assert (cfg.batch_size, cfg.seed, run_dir) == (5, 7, tmp_path)
    with pytest.raises(ConfigError, match="CONFIG is required"):
        load_run_config(None, [], run_dir=tmp_path, resume=None)
