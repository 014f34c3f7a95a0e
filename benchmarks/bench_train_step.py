"""Training-step throughput of generator sizes and precisions on this machine (speed only, not quality).

    .venv/bin/python benchmarks/bench_train_step.py [--threads 2] [--batch 16] [--lr-patch 24]
    .venv/bin/python benchmarks/bench_train_step.py --sizes 32/16/6,64/32/6,64/32/23 --precisions fp32,bf16

One Adam step of the L1 pre-training loss on random LR/HR patches per RRDBNet size (features/growth/RRDBs):
fp32 contiguous (NCHW), fp32 channels_last, and with `--precisions ...,bf16` bf16 autocast with
channels_last, the layout `esrgan train` uses (`channels_last: true`, `precision: auto` = bf16 on CPUs with
native bf16). Prints seconds per step (median of 3 timed steps after 2 warm-ups), LR pixels per second of
the fastest path and each path's speed-up over fp32 NCHW, with the CPU class (bf16 is emulated, and slower
than fp32, on CPUs without AVX512-BF16/AMX). Used to choose the size of the CPU-trained release models and
for the step-speed table in configs/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import torch

from esrgan.device import cpu_has_native_bf16, cpu_info
from esrgan.models import RRDBNet

SIZES = "32/16/3,32/16/6,48/24/4,64/32/3,64/32/6"


def step_seconds(model: RRDBNet, batch: int, lr_patch: int, *, channels_last: bool, bf16: bool) -> float:
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    opt = torch.optim.Adam(model.parameters(), lr=2e-4)
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(batch, 3, lr_patch, lr_patch, generator=gen).contiguous(memory_format=fmt)
    y = torch.rand(batch, 3, lr_patch * model.scale, lr_patch * model.scale, generator=gen)
    times = []
    for i in range(5):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        amp = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
        with amp:
            out = model(x)
        (out.float() - y).abs().mean().backward()
        opt.step()
        if i >= 2:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr-patch", type=int, default=24, help="LR patch side (HR = 4x)")
    p.add_argument("--sizes", default=SIZES, help=f"features/growth/RRDBs, comma-separated (default {SIZES})")
    p.add_argument("--precisions", default="fp32", help="fp32 and/or bf16, comma-separated")
    args = p.parse_args()
    precisions = [s.strip() for s in args.precisions.split(",") if s.strip()]
    if not set(precisions) <= {"fp32", "bf16"}:
        p.error("--precisions takes fp32 and/or bf16")
    try:
        sizes = [tuple(int(v) for v in s.split("/")) for s in args.sizes.split(",")]
        if any(len(s) != 3 for s in sizes):
            raise ValueError
    except ValueError:
        p.error("--sizes takes features/growth/RRDBs triples such as 32/16/6")
    torch.set_num_threads(args.threads)
    cpu = cpu_info()
    native = "native" if cpu_has_native_bf16() else "emulated"
    print(f"CPU class {cpu.cpu_class}: {cpu.describe()}; bf16 {native}; torch {torch.__version__}")
    print(f"threads {args.threads}, batch {args.batch}, LR patch {args.lr_patch}, x4, s/step")
    head = "features/growth/RRDBs  params   fp32 NCHW  fp32 NHWC"
    head += "  bf16 NHWC  bf16 vs fp32 NCHW" if "bf16" in precisions else ""
    print(head + "  LR px/s (fastest)")
    for nf, gc, nb in sizes:
        torch.manual_seed(0)
        g = RRDBNet(num_feat=nf, num_grow_ch=gc, num_block=nb, scale=4)
        params = sum(p.numel() for p in g.parameters())
        a = step_seconds(g, args.batch, args.lr_patch, channels_last=False, bf16=False)
        b = step_seconds(g, args.batch, args.lr_patch, channels_last=True, bf16=False)
        line = f"{nf:>8}/{gc}/{nb:<8} {params / 1e6:6.2f}M  {a:9.3f}  {b:9.3f}"
        best = min(a, b)
        if "bf16" in precisions:
            c = step_seconds(g, args.batch, args.lr_patch, channels_last=True, bf16=True)
            best = min(best, c)
            line += f"  {c:9.3f}  {a / c:16.2f}x"
        print(line + f"  {args.batch * args.lr_patch**2 / best:17.0f}", flush=True)


if __name__ == "__main__":
    main()
