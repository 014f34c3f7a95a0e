"""Does the real-world degradation model starve training? Degraded pairs/s against the step rate.

Measures, on BSDS500 train (decoded images cached first, as in training):

1. degraded training pairs per second in one process (HR patch -> Real-ESRGAN second-order LR);
2. a training loop as `esrgan train` runs it: the config's generator, batch, patch, precision and
   DataLoader workers, timing how long each iteration waits for its batch and how long the step takes.

The issue's bar: with the default workers, waiting for data stays under 10% of step time. Not a test
(run by hand on an otherwise idle machine; say which CPU):

    .venv/bin/python benchmarks/bench_degradation.py --config configs/cpu_esrgan_x4_real.yaml
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from esrgan.data import make_train_dataset
from esrgan.device import resolve_precision
from esrgan.models import RRDBNet
from esrgan.training.config_io import load_config
from esrgan.training.sampling import IterationBatchSampler, SeededItems


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="configs/cpu_esrgan_x4_real.yaml")
    ap.add_argument("--data-root", default=None, help="default: the config's data.root")
    ap.add_argument("--pairs", type=int, default=96, help="pairs timed in one process")
    ap.add_argument("--iters", type=int, default=30, help="training iterations timed (after 3 warm-ups)")
    ap.add_argument("--workers", type=int, default=None, help="default: the config's data.num_workers")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = ap.parse_args()

    cfg = load_config(args.config, ["data.degradation=realesrgan"])
    if args.threads:
        torch.set_num_threads(args.threads)
    workers = cfg.data.num_workers if args.workers is None else args.workers
    patch = cfg.pretraining.cr_patch_size[0]
    ds = make_train_dataset(
        cfg.pretraining.train_datasets, root=args.data_root or cfg.data.root, scale=cfg.scale_factor,
        patch_size=patch, stage="pretrain", degradation=cfg.degradation,
    )  # fmt: skip
    items = SeededItems(ds)
    n = len(items)
    print(f"CPU: {cpu_name()}, torch threads {torch.get_num_threads()}, {n} images, HR patch {patch}")

    for i in range(n):  # decode every image once (the cache), as a run's first epoch does
        items[(i, i)]
    start = time.perf_counter()
    for i in range(args.pairs):
        items[(i % n, 10_000 + i)]
    per_pair = (time.perf_counter() - start) / args.pairs
    print(f"degraded pairs/s, one process: {1 / per_pair:.1f} ({per_pair * 1000:.1f} ms a pair)")

    g = RRDBNet(**cfg.generator_kwargs())
    mf = torch.channels_last if cfg.channels_last else torch.contiguous_format
    g = g.to(memory_format=mf).train()
    opt = torch.optim.Adam(g.parameters(), lr=1e-4)
    dtype = resolve_precision(cfg.precision, torch.device("cpu"), training=True)
    reduced = dtype != torch.float32
    sampler = IterationBatchSampler(num_items=n, batch_size=cfg.batch_size, seed=0, stage="pretrain")
    loader = iter(DataLoader(items, batch_sampler=sampler, num_workers=workers))
    waits, steps = [], []
    for it in range(args.iters + 3):
        t0 = time.perf_counter()
        batch = next(loader)
        t1 = time.perf_counter()
        lr = batch["lr"].to(memory_format=mf)
        with torch.autocast("cpu", dtype=dtype, enabled=reduced):
            loss = (g(lr).float() - batch["hr"]).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        t2 = time.perf_counter()
        if it >= 3:
            waits.append(t1 - t0)
            steps.append(t2 - t1)
    wait, step = sum(waits) / len(waits), sum(steps) / len(steps)
    print(
        f"training, batch {cfg.batch_size}, {workers} worker(s), precision {dtype}: "
        f"step {step:.3f} s, waiting for data {wait:.3f} s = {100 * wait / step:.1f}% of step time; "
        f"the loop needs {cfg.batch_size / step:.1f} pairs/s"
    )


if __name__ == "__main__":
    main()
