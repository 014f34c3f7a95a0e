"""Training-step throughput of candidate generator sizes on this machine (speed only, not quality).

    .venv/bin/python benchmarks/bench_train_step.py [--threads 2] [--batch 16] [--lr-patch 24]

One Adam step of the L1 pre-training loss on random LR/HR patches, contiguous and channels_last, per
RRDBNet size; prints seconds per step and LR pixels per second (median of 3 timed steps after 2 warm-ups).
Used to choose the size of the CPU-trained release models (configs/README.md).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from esrgan.models import RRDBNet

SIZES = [(32, 16, 3), (32, 16, 6), (48, 24, 4), (64, 32, 3), (64, 32, 6)]  # (features, growth, RRDBs)


def step_seconds(model: RRDBNet, batch: int, lr_patch: int, channels_last: bool) -> float:
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
        (model(x) - y).abs().mean().backward()
        opt.step()
        if i >= 2:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr-patch", type=int, default=24, help="LR patch side (HR = 4x)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(f"threads {args.threads}, batch {args.batch}, LR patch {args.lr_patch}, x4")
    print("features growth blocks  params    NCHW s/step  NHWC s/step  NHWC LR px/s")
    for nf, gc, nb in SIZES:
        torch.manual_seed(0)
        g = RRDBNet(num_feat=nf, num_grow_ch=gc, num_block=nb, scale=4)
        params = sum(p.numel() for p in g.parameters())
        a = step_seconds(g, args.batch, args.lr_patch, channels_last=False)
        b = step_seconds(g, args.batch, args.lr_patch, channels_last=True)
        px = args.batch * args.lr_patch**2 / b
        print(f"{nf:8d} {gc:6d} {nb:6d} {params / 1e6:6.2f}M  {a:11.3f}  {b:11.3f}  {px:12.0f}")


if __name__ == "__main__":
    main()
