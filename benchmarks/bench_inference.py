"""Inference speed and memory: precision (fp32 vs bf16/fp16) and tile size, through `Upscaler`.

    .venv/bin/python benchmarks/bench_inference.py                      # real model, Set5 baby LR 128x128
    .venv/bin/python benchmarks/bench_inference.py --size 64 --tiles 0,48 --precisions fp32
    .venv/bin/python benchmarks/bench_inference.py --device cuda --precisions fp32,fp16,bf16

Prints one row per (precision, tile): seconds per image, megapixels of output per second, peak memory
during the run (CPU: peak RSS above the pre-run RSS, via /proc/self/clear_refs; CUDA: peak allocated
by torch) and the PSNR of the output against the fp32 untiled output. Not a test: timings depend on
the machine and on whatever else runs on it.
"""

from __future__ import annotations

import argparse
import re
import time
import warnings
from pathlib import Path

import torch
from torch.nn import functional as F

from esrgan.inference import Upscaler
from esrgan.io import read_image
from esrgan.weights import load_generator


def _status_kib(field: str) -> int | None:
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return None
    m = re.search(rf"^{field}:\s+(\d+)\s+kB", text, re.MULTILINE)
    return int(m.group(1)) if m else None


def _reset_peak_rss() -> bool:
    # Writing 5 to clear_refs resets VmHWM (Linux >= 4.0) so each configuration gets its own peak.
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _synthetic(size: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    low = F.interpolate(
        torch.rand(1, 3, size // 8 + 2, size // 8 + 2, generator=g), size=(size, size), mode="bicubic"
    )
    return (0.85 * low + 0.15 * torch.rand(1, 3, size, size, generator=g)).clamp(0, 1)


DEFAULT_IMAGE = Path(__file__).resolve().parents[2] / "shared/datasets/Set5/x4/img_001_SRF_4_LR.png"


def _load_input(args: argparse.Namespace) -> tuple[torch.Tensor, str]:
    image = args.image
    if image is None and DEFAULT_IMAGE.exists():
        image = DEFAULT_IMAGE
    if image is None or args.synthetic:
        # Smooth shapes plus noise: a GAN model amplifies the noise, so tiling and precision errors
        # look much larger on this than on photographs.
        return _synthetic(args.size), "synthetic"
    x = read_image(image).pixels[None]
    if x.shape[1] == 1:
        x = x.expand(1, 3, -1, -1).contiguous()
    return x[..., : args.size, : args.size], image.name


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = (a.double() - b.double()).pow(2).mean().item()
    return float("inf") if mse == 0 else -10.0 * torch.log10(torch.tensor(mse)).item()


def _run(model: torch.nn.Module, x: torch.Tensor, *, device: str, precision: str, tile: int) -> dict:
    overlap = min(48, tile // 2) if tile else 48
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # emulated bf16 is what we want to measure too
        up = Upscaler(model, device=device, precision=precision, tile=tile, tile_overlap=overlap)
    tiles = up.num_tiles(x.shape[-2], x.shape[-1])
    up.upscale(x[..., :32, :32])  # warm-up: kernel selection, oneDNN primitive caches
    cuda = up.device.type == "cuda"
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        have_peak = _reset_peak_rss()
        base = _status_kib("VmRSS")
    start = time.perf_counter()
    out = up.upscale(x)
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    if cuda:
        peak_mib = (torch.cuda.max_memory_allocated() - base) / 2**20
    else:
        hwm = _status_kib("VmHWM")
        peak_mib = (hwm - base) / 1024 if have_peak and hwm is not None and base is not None else float("nan")
    return {
        "precision": up.precision,
        "tile": tile,
        "overlap": overlap if tiles > 1 else 0,
        "tiles": tiles,
        "seconds": seconds,
        "out": out,
        "peak_mib": peak_mib,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="realesrgan-x4plus", help="weights file or registered name")
    parser.add_argument("--size", type=int, default=128, help="input side in pixels (square)")
    parser.add_argument(
        "--image", type=Path, default=None, help="image to crop (default: Set5 baby LR, 128x128, if found)"
    )
    parser.add_argument("--synthetic", action="store_true", help="use a synthetic image instead")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precisions", default="fp32,bf16", help="comma list of fp32,bf16,fp16")
    parser.add_argument("--tiles", default="0,64,96", help="comma list of tile sizes for fp32 (0 = whole)")
    parser.add_argument("--bf16-tiles", default="0", help="tile sizes for the reduced precisions")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    model = load_generator(args.model, progress=True)
    x, source = _load_input(args)
    cfg = model.config
    print(
        f"model {args.model}: {cfg.summary()}; "
        f"input {x.shape[-1]}x{x.shape[-2]} ({source}); device {args.device}; torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, CPU capability {torch.backends.cpu.get_cpu_capability()}"
    )
    runs = []
    for precision in args.precisions.split(","):
        tiles = args.tiles if precision == "fp32" else args.bf16_tiles
        for tile in (int(t) for t in tiles.split(",")):
            r = _run(model, x, device=args.device, precision=precision, tile=tile)
            runs.append(r)
            print(f"  ran {r['precision']} tile {tile}: {r['seconds']:.2f} s", flush=True)

    ref = next((r for r in runs if r["precision"] == "fp32" and r["tiles"] == 1), runs[0])
    out_mp = ref["out"].shape[-1] * ref["out"].shape[-2] / 1e6
    header = f"{'precision':>9} {'tile':>5} {'overlap':>7} {'tiles':>5} {'s/image':>8} {'MP/s out':>8} "
    header += f"{'x fp32':>7} {'peak MiB':>9} {'PSNR vs ref':>11}"
    print(header)
    print("-" * len(header))
    for r in runs:
        tile = "whole" if r["tiles"] == 1 else str(r["tile"])
        print(
            f"{r['precision']:>9} {tile:>5} {r['overlap']:>7} {r['tiles']:>5} {r['seconds']:>8.2f} "
            f"{out_mp / r['seconds']:>8.3f} {ref['seconds'] / r['seconds']:>7.2f} {r['peak_mib']:>9.0f} "
            f"{_psnr(r['out'], ref['out']):>9.1f} dB"
        )
    print(f"ref = fp32, {'whole image' if ref['tiles'] == 1 else 'tiled'}; 'x fp32' = speed-up over it")


if __name__ == "__main__":
    main()
