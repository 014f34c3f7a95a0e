"""Two-process DDP (torchrun, gloo on CPU) against single-process training with the same global batch.

The pretrain stage (G only: no BatchNorm) must match single-process training to float tolerance. The
RaGAN losses with means pooled over ranks must give single-process gradients. The whole GAN stage runs
too, but on CPU (no SyncBatchNorm) D's BatchNorm sees each rank's half batch, so it is checked for
completing consistently (one set of checkpoints, records and release weights), not for equality.

In-process workers meet through a ``file://`` store in the test's own temp folder (no port to pick and
race for) and leave through the library's ``cleanup_distributed``, which must free the process group:
a group that outlives the interpreter lets a gloo worker thread abort the process at exit.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import weakref
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from safetensors.torch import load_file

from esrgan.losses import ragan_d_loss, ragan_g_loss
from esrgan.models import RRDBNet
from esrgan.training import load_config, train
from esrgan.training.checkpoint import list_checkpoints
from esrgan.training.distributed import (
    DistInfo,
    average_gradients,
    cleanup_distributed,
    gather_batch,
    setup_distributed,
)

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
SHARED = CONFIGS.parents[1] / "shared"


def overrides() -> list[str]:
    w = SHARED / "weights"
    return [
        f"data.root={SHARED / 'datasets'}",
        f"perceptual_loss.weights={w / 'vgg16_imagenet_features.safetensors'}",
        f"validation.lpips_vgg_weights={w / 'vgg16_imagenet_features.safetensors'}",
        f"validation.lpips_heads={w / 'lpips_vgg_v0.1_heads.safetensors'}",
        "pretraining.total_iters=4",
        "training.total_iters=2",
        "batch_size=4",
        "pretraining.cr_patch_size=[32, 32]",
        "training.cr_patch_size=[32, 32]",
        "data.max_train_images=4",
        "data.max_val_images=1",
        "data.val_crop=64",
        "validation.every=2",
        "checkpoint.every=2",
        "logging.log_every=2",
        "logging.tensorboard=false",
        "cpu_threads=1",
        "precision=fp32",
    ]


@pytest.mark.skipif(not (SHARED / "datasets" / "BSDS500").is_dir(), reason="shared data not found")
def test_two_process_ddp_matches_single_process_pretrain(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setenv("ESRGAN_CACHE", str(cache))
    single = tmp_path / "single"
    cfg = load_config(CONFIGS / "smoke.yaml", overrides())
    train(cfg, run_dir=single, stage="pretrain", progress=False, console=lambda s: None)

    run = tmp_path / "ddp"
    env = {**os.environ, "ESRGAN_CACHE": str(cache), "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes=1", "--nproc_per_node=2",
        "-m", "esrgan", "train", str(CONFIGS / "smoke.yaml"), "--run-dir", str(run), "--stage", "both",
        "--no-progress", *overrides(),
    ]  # fmt: skip
    proc = _run_reaped(cmd, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "over 2 processes" in proc.stdout + proc.stderr

    a = load_file(single / "weights" / "pretrain_g.safetensors")
    b = load_file(run / "weights" / "pretrain_g.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(b[k], a[k], atol=1e-5, rtol=1e-4)
    # The comparison means something only if training moved the weights well beyond the tolerance.
    torch.manual_seed(cfg.seed)
    init = RRDBNet(**cfg.generator_kwargs()).state_dict()
    assert max(float((a[k] - init[k]).abs().max()) for k in a) > 1e-4

    assert [p.name for p in list_checkpoints(run / "checkpoints")][-1] == "gan_00000002.pt"
    assert (run / "weights" / "interp_alpha0.8.safetensors").is_file()
    recs = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    val = [(r["stage"], r["iter"]) for r in recs if r["split"] == "val"]
    assert val == [("pretrain", 2), ("pretrain", 4), ("gan", 2)]  # rank 0 only: no duplicates


def _run_reaped(cmd: list[str], *, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    """``subprocess.run`` in a session of its own: a timeout (or an interrupted test) kills torchrun's
    workers with it instead of leaving them running."""
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except BaseException as exc:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # torchrun and every worker it started
        out, err = proc.communicate()
        if isinstance(exc, subprocess.TimeoutExpired):
            pytest.fail(f"{cmd[:6]} did not finish in {timeout} s:\n{out[-3000:]}{err[-3000:]}")
        raise
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def _join(rank: int, world: int, tmp: str) -> DistInfo:
    """The environment torchrun would set, and the library's own set-up, meeting in ``tmp``."""
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world))
    return setup_distributed(torch.device("cpu"), init_method=f"file://{Path(tmp) / 'store'}")


def _ragan_case() -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    return torch.nn.Linear(4, 1), torch.randn(4, 4), torch.randn(4, 4)


def _ragan_losses(d, x_real, x_fake, info: DistInfo | None):
    """D loss (grads to D) and G loss (grads to the fake inputs only), pooled over ranks when given."""
    fake_in = x_fake.clone().requires_grad_(True)
    real, fake = d(x_real), d(fake_in)
    pool = (lambda t: gather_batch(t, info)) if info is not None else (lambda t: t)
    l_d = ragan_d_loss(real, fake.detach(), real_pool=pool(real), fake_pool=pool(fake.detach()))
    l_d.backward(retain_graph=True)
    if info is not None:
        average_gradients(d, info)
    d_grads = [p.grad.clone() for p in d.parameters()]
    d.requires_grad_(False)
    l_g = ragan_g_loss(real.detach(), fake, real_pool=pool(real.detach()), fake_pool=pool(fake))
    (g_input_grad,) = torch.autograd.grad(l_g, fake_in)
    return l_d.detach(), l_g.detach(), d_grads, g_input_grad


def _ragan_worker(rank: int, world: int, tmp: str) -> None:
    info = _join(rank, world, tmp)
    try:
        d, x_real, x_fake = _ragan_case()
        share = slice(rank * 2, rank * 2 + 2)
        result = _ragan_losses(d, x_real[share], x_fake[share], info)
        torch.save(result, Path(tmp) / f"rank{rank}.pt")
    finally:
        cleanup_distributed(info)


def test_ragan_means_over_the_global_batch_match_single_process(tmp_path: Path) -> None:
    mp.spawn(_ragan_worker, args=(2, str(tmp_path)), nprocs=2, join=True)
    d, x_real, x_fake = _ragan_case()
    l_d, l_g, d_grads, g_grad = _ragan_losses(d, x_real, x_fake, None)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    # The global loss is the mean of the per-rank losses (each a mean over its half, same global means).
    torch.testing.assert_close((ranks[0][0] + ranks[1][0]) / 2, l_d)
    torch.testing.assert_close((ranks[0][1] + ranks[1][1]) / 2, l_g)
    for r in ranks:  # averaged D gradients equal the single-process ones on every rank
        for a, b in zip(r[2], d_grads, strict=True):
            torch.testing.assert_close(a, b)
    # Each rank's G-side input gradient sums every rank's loss; DDP's mean over ranks then gives dL/dx.
    torch.testing.assert_close(torch.cat([ranks[0][3], ranks[1][3]]) / 2, g_grad)


def _teardown_worker(rank: int, world: int, tmp: str) -> None:
    info = _join(rank, world, tmp)
    group = weakref.ref(dist.group.WORLD)
    try:
        x = torch.randn(2, 3, requires_grad=True)
        gather_batch(x, info).square().sum().backward()
        torch.optim.Adam([x])  # as in training: torch's first optimizer lazily imports torch._dynamo
    finally:
        cleanup_distributed(info)
    (Path(tmp) / f"rank{rank}.alive").write_text(str(group() is not None))


def test_cleanup_frees_the_process_group_so_no_gloo_thread_outlives_the_interpreter(tmp_path: Path) -> None:
    # A group still referenced after cleanup keeps gloo's worker threads until interpreter exit, where one
    # still releasing a finished collective's tensors needs the GIL and aborts the process (a rare SIGABRT
    # of a worker). That only shows under load; whether the group was freed shows on every run.
    mp.spawn(_teardown_worker, args=(2, str(tmp_path)), nprocs=2, join=True)
    assert [(tmp_path / f"rank{r}.alive").read_text() for r in range(2)] == ["False", "False"]
