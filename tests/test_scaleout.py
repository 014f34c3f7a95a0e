"""`torchrun --nproc-per-node 2 -m esrgan upscale`: the inputs and a video's segments shared between two
CPU processes (gloo), the same files as one process writes; and the sharding helpers on their own."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from esrgan.inference.sharding import Shard, mine, shard_from_env, thread_share
from esrgan.io.video import probe_video
from esrgan.models import RRDBNet
from esrgan.weights import save_generator
from test_video import make_clip

SRC = Path(__file__).resolve().parents[1] / "src"


def test_rank_and_world_come_from_torchrun_then_slurm_else_one_process():
    assert shard_from_env({}) == Shard()
    torchrun = {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"}
    assert shard_from_env(torchrun) == Shard(rank=3, world_size=4, local_rank=1, local_world_size=2)
    slurm = {"SLURM_PROCID": "5", "SLURM_NTASKS": "8", "SLURM_LOCALID": "1", "SLURM_NTASKS_PER_NODE": "4"}
    assert shard_from_env(slurm) == Shard(rank=5, world_size=8, local_rank=1, local_world_size=4)
    with pytest.raises(ValueError, match="outside"):
        shard_from_env({"RANK": "2", "WORLD_SIZE": "2"})


def test_shares_cover_every_item_once_and_split_the_threads():
    items = list(range(11))
    shares = [mine(items, Shard(rank=r, world_size=3)) for r in range(3)]
    assert sorted(i for share in shares for i in share) == items
    assert thread_share(Shard(world_size=4, local_world_size=4), cpus=16) == 4
    assert thread_share(Shard(world_size=8, local_world_size=4), cpus=2) == 1


def _sha(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*_sr.*"))}


def _run_group(
    cmd: list[str], *, env: dict[str, str], timeout: float = 200
) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` in its own process group; on a timeout the whole group (torchrun and its workers, which
    would otherwise wait at their barrier) is killed before the test fails."""
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


@pytest.mark.timeout(240)
def test_two_processes_write_the_same_files_as_one(tmp_path):
    if shutil.which("torchrun", path=str(Path(sys.executable).parent)) is None:
        pytest.skip("torchrun not installed beside this Python")
    torch.manual_seed(0)
    model = tmp_path / "tiny_x4.safetensors"
    save_generator(RRDBNet(num_feat=4, num_block=1, num_grow_ch=4, scale=4), model)
    for name in ("one", "two"):
        rng = np.random.default_rng(0)
        folder = tmp_path / name
        folder.mkdir()
        make_clip(folder / "long.mp4", frames=24)  # 8 segments, shared between the processes
        make_clip(folder / "short.mkv", frames=4)
        for stem in "xyz":
            Image.fromarray(rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)).save(folder / f"{stem}.png")
    args = ["-m", str(model), "--device", "cpu", "--precision", "fp32", "--runtime", "torch"]
    args += ["--segment-seconds", "0.25", "-q"]
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    cmd = [sys.executable, "-m", "esrgan", "upscale", str(tmp_path / "one"), *args]
    subprocess.run(cmd, env=env, check=True, capture_output=True)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    res = _run_group([*torchrun, "-m", "esrgan", "upscale", str(tmp_path / "two"), *args], env=env)
    assert res.returncode == 0, res.stderr[-2000:]
    # Each process reports its own share: 2 + 3 files.
    assert sorted(line.split(";")[0] for line in res.stdout.splitlines() if line.startswith("done:")) == [
        "done: 2 ok, 0 failed, 0 skipped",
        "done: 3 ok, 0 failed, 0 skipped",
    ]
    one, two = _sha(tmp_path / "one"), _sha(tmp_path / "two")
    assert len(one) == 5 and one == two
    assert probe_video(tmp_path / "two" / "long_sr.mp4").frames == 24
    assert not [p for p in (tmp_path / "two").iterdir() if p.name.startswith(".")]
