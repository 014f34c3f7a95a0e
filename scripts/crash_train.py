"""Kill a real CPU training run again and again; it must still end exactly where an uninterrupted run ends.

    .venv/bin/python scripts/crash_train.py [--kills 20] [--terms 4] [--seed 0] [--shared ../shared]

First an uninterrupted `python -m esrgan train` of a tiny config (configs/smoke.yaml shrunk) gives the
reference weights. Then the same run is started in a fresh folder and ended, round after round, by
SIGKILL at a random moment of its training loop, by SIGKILL while a checkpoint is being written (the moment
the temporary file of the atomic write appears in RUN/checkpoints), or by SIGTERM to its process group,
DataLoader worker included (which must write a checkpoint and exit 0); each next round resumes it with
--resume. While a round runs, and after it ends,
every checkpoint file seen on disk is loaded (through a hard link, so pruning cannot pull it away
mid-read). A last round runs to the end; its release weights must equal the reference bit for bit, its
validation records in metrics.jsonl must equal the reference's (a resume drops what a killed attempt logged
after its last checkpoint), and no temporary file may be left. One summary line is printed; the exit
status is 0 only when all checks held.

`tests/test_crash_safety.py` runs a short fixed sequence of the same rounds with this harness.
"""

from __future__ import annotations

import argparse
import json
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
STAGES = ("pretrain", "gan")
"""In training order, as checkpoint names start."""
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
        "logging.tensorboard=false", "cpu_threads=1", "precision=fp32", "data.num_workers=1",
    ]  # fmt: skip


@dataclass(kw_only=True)
class Trainer:
    """One `python -m esrgan train` process; a thread collects its output lines."""

    proc: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    """``time.monotonic()`` at which each line arrived."""
    _reader: threading.Thread | None = None

    def __post_init__(self) -> None:
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.times.append(time.monotonic())
            self.lines.append(line.rstrip("\n"))

    def said(self, text: str) -> bool:
        return any(text in line for line in list(self.lines))

    def when(self, *texts: str) -> float:
        """When the first line holding all of ``texts`` arrived."""
        return next(
            t for t, line in zip(self.times, self.lines, strict=True) if all(x in line for x in texts)
        )

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
    """SIGKILLs that cut a checkpoint write (its temporary file was left behind)."""
    random_kills: int = 0
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
        proc = subprocess.Popen(  # own process group: SIGTERM rounds signal the group, as a terminal does
            cmd, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
            start_new_session=True,
        )  # fmt: skip
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

    def reached(self, stage: str, iteration: int) -> bool:
        """Whether the newest checkpoint on disk is at or past ``stage`` ``iteration``."""
        done = list_checkpoints(self.ckpt_dir)
        if not done:
            return False
        name, it = done[-1].stem.split("_")
        return (STAGES.index(name), int(it)) >= (STAGES.index(stage), iteration)

    def _moment(self, span: float, by: tuple[str, int] | None) -> Callable[[], bool]:
        """A uniform random time 0..span s from now, or the checkpoint ``by`` on disk, whichever comes first.

        ``by`` keeps the signal inside the run however fast the machine is: a fixed time span alone can
        outlast a short run on a fast machine, so the signal would come after the end.
        """
        deadline = time.monotonic() + self.rng.uniform(0.0, span)
        return lambda: time.monotonic() >= deadline or (by is not None and self.reached(*by))

    def sigkill_at_random(self, span: float, *, by: tuple[str, int] | None = None) -> str | None:
        """SIGKILL a random moment of the training loop (see ``_moment``); None: it finished first."""
        t = self.launch()
        self._started(t)
        start = time.monotonic()
        if not self._watch(t, self._moment(span, by)):
            self._finished(t)
            return None
        t.proc.send_signal(signal.SIGKILL)
        self._after_kill(t)
        self.random_kills += 1
        return f"SIGKILL {time.monotonic() - start:.2f} s into the loop"

    def sigkill_while_writing(self, nth: int = 1, *, stage: str = "") -> str | None:
        """SIGKILL as soon as the ``nth`` checkpoint write (of ``stage``, if given) has its temporary file.

        The folder is polled every millisecond without loading anything in between, so the kill lands
        inside the write (before the rename) in practice; it counts as a write kill only when the
        temporary file is still there afterwards. None: the run finished first.
        """
        t = self.launch()
        before = set(_temp_files(self.ckpt_dir))  # an earlier round's leftovers, removed at start
        seen: set[str] = set()

        def writing() -> bool:
            new = {n for n in _temp_files(self.ckpt_dir) if n not in before and n.startswith(f".{stage}")}
            seen.update(new)
            return len(seen) >= nth and bool(new)

        if not self._watch(t, writing, poll=0.001, check=False):
            self._finished(t)
            return None
        t.proc.send_signal(signal.SIGKILL)
        self._after_kill(t)
        cut = [n for n in _temp_files(self.ckpt_dir) if n in seen]  # still there: killed before the rename
        self.write_kills += bool(cut)
        target = cut[0][1:].split(".tmp-")[0] if cut else "(the rename came first)"
        return f"SIGKILL while writing checkpoint {nth}: {target}"

    def sigterm(self, span: float, *, by: tuple[str, int] | None = None) -> str | None:
        """SIGTERM a random moment of the loop (see ``_moment``): exit 0 with a checkpoint of the iteration
        it stopped at."""
        t = self.launch()
        self._started(t)
        start = time.monotonic()
        if not self._watch(t, self._moment(span, by)):
            self._finished(t)
            return None
        # To the whole group, DataLoader worker included (Ctrl-C, `kill -- -PGID`, systemd): the trainer
        # alone must handle it; a worker that died of it would turn the stop into an error.
        os.killpg(t.proc.pid, signal.SIGTERM)
        delay = time.monotonic() - start
        rc = t.end()
        stopped = [line for line in t.lines if line.startswith("stopped at ")]
        if rc != 0 or not stopped:
            if rc == 0 and t.said("finished:"):
                return None  # the signal came after the last iteration
            raise CrashCheckError(f"SIGTERM: expected a clean stop (exit 0), got exit {rc}:\n{t.output()}")
        stage, _, word = stopped[0].split()[2:5]
        iteration = int(word.rstrip(";"))
        path = self.ckpt_dir / f"{stage}_{iteration:08d}.pt"
        if not path.is_file() or load_checkpoint(path).iteration != iteration:
            raise CrashCheckError(f"SIGTERM: no checkpoint {path} of the iteration it stopped at")
        self.terms += 1
        self.check_checkpoints()
        return f"SIGTERM {delay:.2f} s into the loop: exit 0, checkpoint {path.name}"

    def finish(self) -> None:
        """The last round: run to the end (exit 0), with nothing half-written left anywhere."""
        t = self.launch()
        self._watch(t, lambda: False)
        self._finished(t)
        left = [p for d in (self.run_dir, self.ckpt_dir, self.run_dir / "weights") for p in _temp_files(d)]
        if left:
            raise CrashCheckError(f"temporary files left in {self.run_dir}: {left}")

    def _finished(self, t: Trainer) -> None:
        """The process ended by itself: it must have finished the run."""
        rc = t.end()
        if rc != 0 or not t.said("finished:"):
            raise CrashCheckError(f"trainer failed (exit {rc}):\n{t.output()}")
        self.check_checkpoints()


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


def validation_log(run: Path) -> list[tuple[str, int, dict[str, float]]]:
    """The run's validation records (RUN/metrics.jsonl), without their wall-clock times."""
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [
        (r["stage"], r["iter"], {k: v for k, v in r.items() if k not in ("stage", "split", "iter", "time")})
        for r in records
        if r["split"] == "val"
    ]


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
    if ref.end() != 0:
        print(ref.output(), file=sys.stderr)
        return 1
    end = time.monotonic()
    gan_start = ref.when("gan:", STAGE_LINE)
    pretrain_s, gan_s = gan_start - ref.when("pretrain:", STAGE_LINE), end - gan_start
    print(
        f"reference: {end - t0:.0f} s, of which {pretrain_s:.1f} s pretrain and {gan_s:.1f} s GAN", flush=True
    )

    def remaining_s(crash: CrashRun) -> float:
        """Training time left after the latest checkpoint, by the reference's pace."""
        done = list_checkpoints(crash.ckpt_dir)
        if not done:
            return pretrain_s + gan_s
        stage, iteration = done[-1].stem.split("_")
        if stage == "pretrain":
            return (1 - int(iteration) / args.pretrain) * pretrain_s + gan_s
        return (1 - int(iteration) / args.gan) * gan_s

    rng = random.Random(args.seed)
    crash = CrashRun(
        run_dir=work / "crashed", command=train_command(work / "crashed", overrides), env=env, rng=rng,
        snapshots=work / "snapshots",
    )  # fmt: skip
    rounds = ["kill"] * args.kills + ["term"] * args.terms
    rng.shuffle(rounds)
    ended_early = False
    try:
        for i, kind in enumerate(rounds):
            # Random moments spread over what is left, so that the signals cover both stages and the
            # last one still lands before the end.
            left = remaining_s(crash)
            span = max(0.2, min(0.6 * left, 1.5 * left / (len(rounds) - i)))
            if kind == "term":
                what = crash.sigterm(span)
            elif rng.random() < 0.4:
                what = crash.sigkill_while_writing(rng.randint(1, 3))
            else:
                what = crash.sigkill_at_random(span)
            if what is None:
                ended_early = True
                break
            now = [p.name for p in list_checkpoints(crash.ckpt_dir)]
            print(f"  round {i + 1}: {what}; checkpoints now {', '.join(now)}", flush=True)
        if not ended_early:
            crash.finish()
        bad = differing_weights(reference, crash.run_dir)
        same_log = validation_log(reference) == validation_log(crash.run_dir)
    except CrashCheckError as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        bad, same_log = ["(check failed)"], False
    missed = crash.kills - crash.write_kills - crash.random_kills
    print(
        f"kills {crash.kills} ({crash.write_kills} inside a checkpoint write, {crash.random_kills} at random "
        f"moments" + (f", {missed} aimed at a write that had just been renamed" if missed else "") + "), "
        f"sigterm stops {crash.terms}, resumes {crash.resumes}, checkpoints verified {crash.verified}, "
        f"final weights equal: {'no' if bad else 'yes'}, validation log equal: {'yes' if same_log else 'no'}"
        + (" (the run finished before the last signal)" if ended_early else "")
    )
    return 1 if bad or not same_log else 0


if __name__ == "__main__":
    sys.exit(main())
