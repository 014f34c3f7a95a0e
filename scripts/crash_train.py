"""Kill a real CPU training run again and again; it must still end exactly where an uninterrupted run ends.

    .venv/bin/python scripts/crash_train.py [--kills 20] [--terms 4] [--seed 0] [--shared ../shared]

First an uninterrupted `python -m esrgan train` of a tiny config (configs/smoke.yaml shrunk) gives the
reference weights. Then the same run is started in a fresh folder and ended, round after round, by
SIGKILL at a random moment of its training loop, by SIGKILL while a checkpoint is being written (the moment
the temporary file of the atomic write appears in RUN/checkpoints), or by SIGTERM (which must write a
checkpoint and exit 0); each next round resumes it with --resume. While a round runs, and after it ends,
every checkpoint file seen on disk is loaded (through a hard link, so pruning cannot pull it away
mid-read). A last round runs to the end; its release weights must equal the reference bit for bit, and no
temporary file may be left. One summary line is printed; the exit status is 0 only when all checks held.

`tests/test_crash_safety.py` runs a short fixed sequence of the same rounds with this harness.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file

from esrgan.training.checkpoint import CheckpointError, list_checkpoints, load_checkpoint

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "configs" / "smoke.yaml"
STAGE_LINE = "starting at"
"""Printed by the trainer when a stage's loop is about to start."""
WEIGHTS = [
    "pretrain_g",
    "pretrain_g_ema",
    "pretrain_best",
    "gan_g",
    "gan_g_ema",
    "gan_best",
    "interp_alpha0.8",
]


class CrashCheckError(AssertionError):
    """A crash-safety check failed (the message says which and where)."""


def crash_overrides(shared: Path, *, pretrain: int, gan: int) -> list[str]:
    """smoke.yaml shrunk to well under a second per iteration, with a checkpoint after every iteration."""
    w = shared / "weights"
    return [
        f"data.root={shared / 'datasets'}",
        f"perceptual_loss.weights={w / 'vgg16_imagenet_features.safetensors'}",
        f"validation.lpips_vgg_weights={w / 'vgg16_imagenet_features.safetensors'}",
        f"validation.lpips_heads={w / 'lpips_vgg_v0.1_heads.safetensors'}",
        f"pretraining.total_iters={pretrain}", f"training.total_iters={gan}",
        f"pretraining.sched_step={max(1, pretrain * 2 // 3)}",
        f"training.g_sched_steps=[{max(1, gan // 2)}]", f"training.d_sched_steps=[{max(1, gan * 3 // 4)}]",
        "batch_size=2", "pretraining.cr_patch_size=[32, 32]", "training.cr_patch_size=[32, 32]",
        "data.max_train_images=4", "data.max_val_images=1", "data.val_crop=64",
        "validation.every=3", "checkpoint.every=1", "checkpoint.keep_last=2", "logging.log_every=2",
        "logging.tensorboard=false", "cpu_threads=1", "precision=fp32",
    ]  # fmt: skip


@dataclass(kw_only=True)
class Trainer:
    """One `python -m esrgan train` process; a thread collects its output lines."""

    proc: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    _reader: threading.Thread | None = None

    def __post_init__(self) -> None:
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def said(self, text: str) -> bool:
        return any(text in line for line in list(self.lines))

    def running(self) -> bool:
        return self.proc.poll() is None

    def end(self, timeout: float = 300.0) -> int:
        """Wait for the process (and the last of its output)."""
        rc = self.proc.wait(timeout=timeout)
        if self._reader is not None:
            self._reader.join(timeout=30)
        return rc

    def output(self) -> str:
        return "\n".join(self.lines[-40:])


@dataclass(kw_only=True)
class CrashRun:
    """A run folder that is trained in rounds, each ended by a signal, and checked as it goes."""

    run_dir: Path
    command: list[str]
    """``python -m esrgan train CONFIG --run-dir RUN ...`` without --resume."""
    env: dict[str, str]
    rng: random.Random
    snapshots: Path
    """A folder on the run folder's file system for the hard links checkpoints are read through."""
    kills: int = 0
    write_kills: int = 0
    terms: int = 0
    resumes: int = 0
    verified: int = 0
    """Checkpoint files (distinct contents) loaded and found consistent with their names."""
    _seen: set[tuple[int, int, int]] = field(default_factory=set)

    @property
    def ckpt_dir(self) -> Path:
        return self.run_dir / "checkpoints"

    def launch(self) -> Trainer:
        """Start a round: resume when the folder has a checkpoint (it always does after the first)."""
        resume = bool(list_checkpoints(self.ckpt_dir))
        self.resumes += resume
        cmd = [*self.command, "--resume"] if resume else self.command
        proc = subprocess.Popen(
            cmd, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
        )
        return Trainer(proc=proc)

    def check_checkpoints(self) -> None:
        """Load every checkpoint now on disk that has not been loaded yet; each must be whole."""
        self.snapshots.mkdir(parents=True, exist_ok=True)
        for path in list_checkpoints(self.ckpt_dir):
            snap = self.snapshots / path.name
            snap.unlink(missing_ok=True)
            try:
                os.link(path, snap)  # the inode stays readable even if the trainer prunes the name now
            except FileNotFoundError:
                continue  # pruned between the listing and the link
            try:
                st = snap.stat()
                key = (st.st_ino, st.st_mtime_ns, st.st_size)
                if key in self._seen:
                    continue
                try:
                    state = load_checkpoint(snap)
                except CheckpointError as exc:
                    raise CrashCheckError(f"{path}: a checkpoint on disk is not loadable: {exc}") from exc
                stage, iteration = path.stem.split("_")
                if (state.stage, state.iteration) != (stage, int(iteration)):
                    raise CrashCheckError(f"{path}: holds {state.stage} iteration {state.iteration}")
                self._seen.add(key)
                self.verified += 1
            finally:
                snap.unlink(missing_ok=True)

    def _watch(
        self, t: Trainer, until: Callable[[], bool], *, poll: float = 0.02, check: bool = True
    ) -> bool:
        """Poll until ``until()`` (True) or the process ends (False), loading new checkpoints meanwhile."""
        while True:
            if until():
                return True
            if not t.running():
                return False
            if check:
                self.check_checkpoints()
            time.sleep(poll)

    def _started(self, t: Trainer) -> None:
        if not self._watch(t, lambda: t.said(STAGE_LINE)):
            raise CrashCheckError(f"trainer ended before training (exit {t.end()}):\n{t.output()}")

    def _after_kill(self, t: Trainer) -> None:
        rc = t.end()
        if rc != -signal.SIGKILL:
            raise CrashCheckError(f"expected death by SIGKILL, got exit {rc}:\n{t.output()}")
        self.kills += 1
        self.check_checkpoints()

    def sigkill_at_random(self, span: float) -> bool:
        """SIGKILL a uniform random time (0..span s) into the training loop. False: it finished first."""
        t = self.launch()
        self._started(t)
        deadline = time.monotonic() + self.rng.uniform(0.0, span)
        if not self._watch(t, lambda: time.monotonic() >= deadline):
            return self._finished(t)
        t.proc.send_signal(signal.SIGKILL)
        self._after_kill(t)
        return True

    def sigkill_while_writing(self, nth: int = 1, *, stage: str = "") -> bool:
        """SIGKILL as soon as the ``nth`` checkpoint write (of ``stage``, if given) has its temporary file.

        The folder is polled every millisecond without loading anything in between, so the kill lands
        inside the write (before the rename) in practice; it counts as a write kill only when the
        temporary file is still there afterwards. False: the run finished first.
        """
        t = self.launch()
        before = set(_temp_files(self.ckpt_dir))  # an earlier round's leftovers, removed at start
        seen: set[str] = set()

        def writing() -> bool:
            new = {n for n in _temp_files(self.ckpt_dir) if n not in before and n.startswith(f".{stage}")}
            seen.update(new)
            return len(seen) >= nth and bool(new)

        if not self._watch(t, writing, poll=0.001, check=False):
            return self._finished(t)
        t.proc.send_signal(signal.SIGKILL)
        self._after_kill(t)
        self.write_kills += any(n in seen for n in _temp_files(self.ckpt_dir))  # cut before its rename
        return True

    def sigterm(self, span: float) -> bool:
        """SIGTERM a random time into the loop: exit 0 with a checkpoint of the iteration it stopped at."""
        t = self.launch()
        self._started(t)
        deadline = time.monotonic() + self.rng.uniform(0.0, span)
        if not self._watch(t, lambda: time.monotonic() >= deadline):
            return self._finished(t)
        t.proc.send_signal(signal.SIGTERM)
        rc = t.end()
        stopped = [line for line in t.lines if line.startswith("stopped at ")]
        if rc != 0 or not stopped:
            if rc == 0 and t.said("finished:"):
                return False  # the signal came after the last iteration
            raise CrashCheckError(f"SIGTERM: expected a clean stop (exit 0), got exit {rc}:\n{t.output()}")
        stage, _, iteration = stopped[0].split()[2:5]
        path = self.ckpt_dir / f"{stage}_{int(iteration.rstrip(';')):08d}.pt"
        if not path.is_file() or load_checkpoint(path).iteration != int(iteration.rstrip(";")):
            raise CrashCheckError(f"SIGTERM: no checkpoint {path} of the iteration it stopped at")
        self.terms += 1
        self.check_checkpoints()
        return True

    def finish(self) -> None:
        """The last round: run to the end (exit 0), with nothing half-written left anywhere."""
        t = self.launch()
        self._watch(t, lambda: False)
        self._finished(t)
        left = [p for d in (self.run_dir, self.ckpt_dir, self.run_dir / "weights") for p in _temp_files(d)]
        if left:
            raise CrashCheckError(f"temporary files left in {self.run_dir}: {left}")

    def _finished(self, t: Trainer) -> bool:
        rc = t.end()
        if rc != 0 or not t.said("finished:"):
            raise CrashCheckError(f"trainer failed (exit {rc}):\n{t.output()}")
        self.check_checkpoints()
        return False


def _temp_files(folder: Path) -> list[str]:
    try:
        return [e.name for e in os.scandir(folder) if ".tmp-" in e.name]
    except FileNotFoundError:
        return []


def train_command(run_dir: Path, overrides: list[str]) -> list[str]:
    return [
        sys.executable, "-m", "esrgan", "train", str(SMOKE), "--run-dir", str(run_dir), "--no-progress",
        *overrides,
    ]  # fmt: skip


def differing_weights(reference: Path, run: Path) -> list[str]:
    """Release weights (RUN/weights/NAME.safetensors) whose tensors are not bit-identical."""
    bad = []
    for name in WEIGHTS:
        a = load_file(reference / "weights" / f"{name}.safetensors")
        b = load_file(run / "weights" / f"{name}.safetensors")
        if a.keys() != b.keys() or not all(torch.equal(a[k], b[k]) for k in a):
            bad.append(name)
    return bad


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kills", type=int, default=20, help="SIGKILLs (random moments and checkpoint writes).")
    ap.add_argument("--terms", type=int, default=4, help="SIGTERM stops, interleaved with the kills.")
    ap.add_argument("--seed", type=int, default=0, help="Chooses the kinds and moments of the signals.")
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared", help="Datasets and VGG weights.")
    ap.add_argument("--pretrain", type=int, default=60, help="Pretrain iterations.")
    ap.add_argument("--gan", type=int, default=30, help="GAN iterations.")
    ap.add_argument("--work", type=Path, default=None, help="Folder for the two runs (default: a temp one).")
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="crash_train-"))
    env = {**os.environ, "ESRGAN_CACHE": str(work / "cache"), "NO_ALBUMENTATIONS_UPDATE": "1"}
    overrides = crash_overrides(args.shared, pretrain=args.pretrain, gan=args.gan)

    reference = work / "reference"
    t0 = time.monotonic()
    ref = Trainer(proc=subprocess.Popen(
        train_command(reference, overrides), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, bufsize=1,
    ))  # fmt: skip
    while not ref.said(STAGE_LINE) and ref.running():
        time.sleep(0.05)
    loop_start = time.monotonic()
    if ref.end() != 0:
        print(ref.output(), file=sys.stderr)
        return 1
    loop_s = time.monotonic() - loop_start
    # Random moments span the loop so that all the rounds together cover about 3/4 of it.
    span = 1.5 * loop_s / (args.kills + args.terms)
    print(f"reference: {time.monotonic() - t0:.0f} s ({loop_s:.1f} s of training); signal span {span:.2f} s")

    rng = random.Random(args.seed)
    crash = CrashRun(
        run_dir=work / "crashed", command=train_command(work / "crashed", overrides), env=env, rng=rng,
        snapshots=work / "snapshots",
    )  # fmt: skip
    rounds = ["kill"] * args.kills + ["term"] * args.terms
    rng.shuffle(rounds)
    ended_early = False
    try:
        for kind in rounds:
            if kind == "term":
                going = crash.sigterm(span)
            elif rng.random() < 0.4:
                going = crash.sigkill_while_writing(rng.randint(1, 3))
            else:
                going = crash.sigkill_at_random(span)
            print(
                f"  round {crash.kills + crash.terms}: {kind}; checkpoints now "
                f"{[p.name for p in list_checkpoints(crash.ckpt_dir)]}",
                flush=True,
            )
            if not going:
                ended_early = True
                break
        if not ended_early:
            crash.finish()
        bad = differing_weights(reference, crash.run_dir)
    except CrashCheckError as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        bad = ["(check failed)"]
    print(
        f"kills {crash.kills} ({crash.write_kills} during a checkpoint write, "
        f"{crash.kills - crash.write_kills} at random moments), sigterm stops {crash.terms}, "
        f"resumes {crash.resumes}, checkpoints verified {crash.verified}, "
        f"final weights equal: {'no' if bad else 'yes'}"
        + (" (run ended before the last signal)" if ended_early else "")
    )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
