"""Training survives being killed. Real `python -m esrgan train` processes ended by SIGKILL (at random
moments and inside checkpoint writes) and SIGTERM, each followed by --resume, end on the uninterrupted
run's weights bit for bit, with every checkpoint seen on disk loadable. A full disk is a one-line error
that keeps the previous checkpoint and leaves no temporary file; an unreadable newest checkpoint is set
aside with a warning, and what was logged after the checkpoint a resume continues is dropped. The
harness is `scripts/crash_train.py` (which runs many more rounds)."""

from __future__ import annotations

import importlib.util
import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from typer.testing import CliRunner

from esrgan.training import load_config, train
from esrgan.training.checkpoint import list_checkpoints, load_checkpoint
from esrgan.utils.files import atomic_write, remove_stale_temp_files

REPO = Path(__file__).resolve().parents[1]
PRETRAIN, GAN = 6, 6


def _load_harness() -> ModuleType:
    spec = importlib.util.spec_from_file_location("crash_train", REPO / "scripts" / "crash_train.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their annotations through sys.modules
    spec.loader.exec_module(module)
    return module


crash_train = _load_harness()


@pytest.fixture()
def overrides(shared_dir: Path) -> list[str]:
    if not (shared_dir / "datasets" / "BSDS500").is_dir():
        pytest.skip(f"BSDS500 not found in {shared_dir / 'datasets'}")
    return crash_train.crash_overrides(shared_dir, pretrain=PRETRAIN, gan=GAN)


def test_killed_and_terminated_runs_resume_to_the_uninterrupted_weights(
    overrides: list[str], tmp_path: Path
) -> None:
    reference = tmp_path / "reference"
    cfg = load_config(crash_train.SMOKE, overrides)
    assert train(cfg, run_dir=reference, progress=False, console=lambda s: None).completed
    seed = random.SystemRandom().randrange(2**32)
    run = tmp_path / "crashed"
    crash = crash_train.CrashRun(
        run_dir=run, command=crash_train.train_command(run, overrides), env=dict(os.environ),
        rng=random.Random(seed), snapshots=tmp_path / "snapshots",
    )  # fmt: skip
    where = f"(seed {seed})"
    # In the second checkpoint write (the first is on disk); a kill that lands after the rename retries.
    for _ in range(3):
        assert crash.sigkill_while_writing(2), where
        if crash.write_kills:
            break
    assert crash.write_kills == 1, f"never caught a checkpoint write in 3 tries {where}"
    # Each signal lands by a checkpoint well before the end, so a fast machine cannot finish the run
    # first; the write kills above leave it at pretrain iteration 5 at most.
    assert crash.sigkill_at_random(0.8, by=("gan", 1)), where
    assert crash.sigterm(0.3, by=("gan", 3)), where  # exit 0 with a checkpoint of where it stopped
    assert crash.sigkill_while_writing(1, stage="gan"), where  # past the stage boundary
    crash.finish()  # no temporary file left anywhere in the run folder
    assert crash.terms == 1 and crash.resumes == crash.kills + crash.terms, where
    assert crash.verified >= 4, where  # checkpoints loaded while the rounds ran and after each ended
    assert crash_train.differing_weights(reference, run) == [], where
    assert crash_train.validation_log(run) == crash_train.validation_log(reference), where


def test_full_disk_is_a_one_line_error_that_keeps_the_previous_checkpoint(
    overrides: list[str], tmp_path: Path
) -> None:
    from esrgan.cli import app

    disk = tmp_path / "disk"
    disk.mkdir()
    mount = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(disk)], capture_output=True, text=True
    )
    if mount.returncode != 0:
        reason = (mount.stderr.strip() or "mount failed").splitlines()[0]
        pytest.skip(f"cannot mount a small tmpfs here (needs root with CAP_SYS_ADMIN): {reason}")
    try:
        run = disk / "run"
        args = ["train", str(crash_train.SMOKE), "--run-dir", str(run), "--stage", "pretrain",
                "--no-progress", *overrides]  # fmt: skip
        res = CliRunner().invoke(app, [*args, "--stop-after", "2"])
        assert res.exit_code == 0, res.output
        kept = run / "checkpoints" / "pretrain_00000002.pt"
        # Fill the disk up to half a checkpoint: small files still fit, the next checkpoint does not.
        with open(disk / "filler", "wb") as fh:
            os.posix_fallocate(fh.fileno(), 0, shutil.disk_usage(disk).free - kept.stat().st_size // 2)
        res = CliRunner().invoke(app, [*args, "--resume"])
        assert res.exit_code != 0 and "Traceback" not in res.output, res.output
        failed = run / "checkpoints" / "pretrain_00000003.pt"
        errors = [line for line in res.output.splitlines() if line.startswith("error:")]
        assert errors == [f"error: {failed}: cannot write the training state (No space left on device)"]
        assert load_checkpoint(kept).iteration == 2 and not failed.exists()
        assert [p for p in run.rglob("*") if ".tmp-" in p.name] == []
        (disk / "filler").unlink()  # space again: the run goes on from the kept checkpoint
        res = CliRunner().invoke(app, [*args, "--resume"])
        assert res.exit_code == 0 and "finished:" in res.output, res.output
    finally:
        subprocess.run(["umount", "--lazy", str(disk)], check=False)


def test_an_unreadable_newest_checkpoint_is_set_aside_with_a_warning(
    overrides: list[str], tmp_path: Path
) -> None:
    cfg = load_config(crash_train.SMOKE, overrides)
    run = tmp_path / "run"
    train(cfg, run_dir=run, stage="pretrain", stop_after=3, progress=False, console=lambda s: None)
    newest = run / "checkpoints" / "pretrain_00000003.pt"
    newest.write_bytes(newest.read_bytes()[:100_000])  # cut short, as by a machine crash before fsync
    with open(run / "metrics.jsonl", "a", encoding="utf-8") as log:
        log.write('{"stage": "pretrain", "split": "tr')  # a record cut short by the crash
    lines: list[str] = []
    result = train(cfg, run_dir=run, stage="pretrain", resume=True, stop_after=2, console=lines.append)
    warnings = [line for line in lines if line.startswith("warning:")]
    assert warnings == [
        f"warning: {newest}: unreadable training state (RuntimeError); moved to "
        "pretrain_00000003.pt.unreadable; continuing from the one before it, pretrain_00000002.pt"
    ]
    assert (result.stage, result.iteration) == ("pretrain", 4)  # from iteration 2, two more
    assert [p.name for p in list_checkpoints(run / "checkpoints")] == [
        "pretrain_00000003.pt",
        "pretrain_00000004.pt",
    ]
    assert load_checkpoint(newest).iteration == 3  # written again, whole
    assert (run / "checkpoints" / "pretrain_00000003.pt.unreadable").stat().st_size == 100_000
    # The log reads as if iteration 3 had been run once: what was logged after checkpoint 2 is gone.
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [(r["split"], r["iter"]) for r in records] == [("train", 2), ("val", 3), ("train", 4)]


def test_only_temporary_files_of_atomic_writes_are_removed_as_stale(tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt), atomic_write(tmp_path / "a.pt") as tmp:
        tmp.write_bytes(b"half")
        stale = tmp.with_name(tmp.name + "-copy")  # what a SIGKILL would have left: the handler never ran
        shutil.copy(tmp, stale)
        raise KeyboardInterrupt
    stale.rename(tmp)
    keep = [".hidden", "notes.tmp-abcdefgh", ".a.pt.tmp-short", "b.pt"]
    for name in keep:
        (tmp_path / name).write_text("x")
    assert remove_stale_temp_files(tmp_path) == [tmp]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(keep)
    assert remove_stale_temp_files(tmp_path / "missing") == []
