"""Tiled vs untiled PSNR-to-HR for Real-ESRGAN x4plus on three Set14 images (README numbers). Not a test.

.venv/bin/python benchmarks/tiling_error.py   # about 2 minutes on 2 cores
"""

from __future__ import annotations

import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

from esrgan.data.benchmarks import crop_to_multiple, find_benchmark, load_rgb
from esrgan.data.imresize import degrade
from esrgan.inference import Upscaler
from esrgan.metrics import psnr
from esrgan.weights import load_generator

IMAGES = ("img_001", "img_010", "img_013")


def main() -> None:
    model = load_generator("realesrgan-x4plus", progress=False)
    for pair in find_benchmark("../shared/datasets", "set14", 4):
        if pair.name not in IMAGES:
            continue
        hr = crop_to_multiple(load_rgb(pair.hr_path), 4)
        hr = hr if hr.ndim == 4 else hr.unsqueeze(0)
        lr = degrade(hr, 4)
        base = Upscaler(model, device="cpu", precision="fp32", tile=0).upscale(lr)
        ref = psnr(base, hr, crop_border=4).item()
        row = [f"{pair.name} {tuple(lr.shape[-2:])} untiled {ref:.3f} dB"]
        for tile in (64, 96):
            overlap = 48 if tile >= 96 else tile // 2  # the CLI's default rule
            up = Upscaler(model, device="cpu", precision="fp32", tile=tile, tile_overlap=overlap)
            out = up.upscale(lr)
            delta = psnr(out, hr, crop_border=4).item() - ref
            agree = psnr(out, base, crop_border=0).item()
            n = up.num_tiles(*lr.shape[-2:])
            row.append(f"tile {tile} ({n} tiles): {delta:+.3f} dB, {agree:.1f} dB to untiled")
        print(" | ".join(row), flush=True)


if __name__ == "__main__":
    main()
