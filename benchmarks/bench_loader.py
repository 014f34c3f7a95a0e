"""Is data loading ever the bottleneck of a training step? Loader throughput vs generator step throughput.

Measures, on a folder of HR images (default: ../shared/datasets/BSDS500/train, LR made on the fly):

- loader samples/s for each `--workers` value, on a cold cache (first pass: decode + MATLAB-bicubic LR,
  written to the .npy cache) and on a warm cache (every later pass: memory-mapped crops + augmentation);
- training-step samples/s of a small RRDBNet (L1 loss, Adam) on `--device`.

Loading is not the bottleneck when warm loader samples/s exceeds step samples/s. Not a test; run by hand:

    .venv/bin/python benchmarks/bench_loader.py --max-images 40 --workers 0,2
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from esrgan.data import ImageCache, make_train_dataset
from esrgan.models import RRDBNet

DEFAULT_ROOT = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "BSDS500" / "train"


def loader_rate(dataset, *, batch: int, workers: int, batches: int | None) -> tuple[float, int]:
    """Samples/s of a shuffled DataLoader: one whole pass (`batches=None`, start-up included), or
    `batches` batches over as many passes as needed, timed from the first batch (start-up excluded)."""
    loader = DataLoader(
        dataset,
        batch_size=batch,
        shuffle=True,
        num_workers=workers,
        drop_last=True,
        persistent_workers=workers > 0,
        pin_memory=torch.cuda.is_available(),
    )
    n = done = 0
    start = time.perf_counter() if batches is None else None
    while True:
        for item in loader:
            if start is None:
                start = time.perf_counter()
                continue
            n += item["lr"].shape[0]
            done += 1
            if batches is not None and done >= batches:
                return n / (time.perf_counter() - start), n
        if batches is None:
            return n / (time.perf_counter() - start), n


def step_rate(
    *, batch: int, patch: int, scale: int, device: str, steps: int, blocks: int, feat: int
) -> float:
    """Samples/s of forward + L1 + backward + Adam step of RRDBNet on random patches."""
    model = RRDBNet(num_feat=feat, num_block=blocks, num_grow_ch=feat // 2, scale=scale).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=2e-4)
    lr = torch.rand(batch, 3, patch // scale, patch // scale, device=device)
    hr = torch.rand(batch, 3, patch, patch, device=device)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.l1_loss(model(lr), hr)
        loss.backward()
        opt.step()

    for _ in range(2):  # warm-up (allocator, cuDNN autotune)
        step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return steps * batch / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--folder", type=Path, default=DEFAULT_ROOT, help="folder of HR images")
    parser.add_argument("--max-images", type=int, default=None, help="use the first N images only")
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--patch", type=int, default=128, help="HR patch size")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--stage", choices=("pretrain", "gan"), default="pretrain")
    parser.add_argument(
        "--workers", default="0,2", help="comma-separated num_workers values (empty: step only)"
    )
    parser.add_argument("--warm-batches", type=int, default=100, help="timed batches on the warm cache")
    parser.add_argument("--cache-dir", type=Path, default=None, help=".npy cache (default: a temp dir)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=10, help="timed training steps")
    parser.add_argument("--blocks", type=int, default=4, help="RRDB blocks of the benchmark generator")
    parser.add_argument("--feat", type=int, default=32, help="num_feat of the benchmark generator")
    args = parser.parse_args()

    workers = [int(w) for w in args.workers.split(",") if w.strip()]
    with tempfile.TemporaryDirectory(prefix="esrgan-bench-cache-") as tmp:
        cache_dir = args.cache_dir or Path(tmp)
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}")
        print(f"data: {args.folder} (max_images={args.max_images}), patch {args.patch}, batch {args.batch}")
        for w in workers:
            # A fresh cache dir per worker count so that each one pays (and reports) its own cold pass.
            sub = cache_dir / f"w{w}"
            ds = make_train_dataset(
                [str(args.folder)],
                scale=args.scale,
                patch_size=args.patch,
                stage=args.stage,
                cache=ImageCache(disk_dir=sub),
                max_images=args.max_images,
            )
            cold, n = loader_rate(ds, batch=args.batch, workers=w, batches=None)
            warm, m = loader_rate(ds, batch=args.batch, workers=w, batches=args.warm_batches)
            print(
                f"loader num_workers={w}: cold {cold:8.1f} samples/s ({n} samples, decode + LR made once), "
                f"warm {warm:8.1f} samples/s ({m} samples)"
            )
        rate = step_rate(
            batch=args.batch,
            patch=args.patch,
            scale=args.scale,
            device=args.device,
            steps=args.steps,
            blocks=args.blocks,
            feat=args.feat,
        )
        print(
            f"train step RRDBNet(num_block={args.blocks}, num_feat={args.feat}) on {args.device}: "
            f"{rate:8.1f} samples/s"
        )


if __name__ == "__main__":
    main()
