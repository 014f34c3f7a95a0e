"""The plain eager fp32 upscale that `esrgan upscale` is compared with: what a typical ESRGAN script
does (load the weights, read the image with Pillow, one untiled forward pass under no_grad, write a
PNG), nothing more. Run it as a whole process and time it:

    /usr/bin/time -v .venv/bin/python benchmarks/eager_baseline.py IN.png OUT.png --model realesrgan-x4plus
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from PIL import Image

from esrgan.weights import load_generator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("input")
    parser.add_argument("output")
    parser.add_argument("--model", default="realesrgan-x4plus", help="weights file or zoo name")
    args = parser.parse_args()

    start = time.perf_counter()
    model = load_generator(args.model, progress=False).eval()
    rgb = np.asarray(Image.open(args.input).convert("RGB"), dtype=np.float32) / 255.0
    x = torch.from_numpy(rgb).permute(2, 0, 1).unsqueeze(0)
    with torch.no_grad():
        y = model(x)
    out = (y[0].clamp(0, 1).permute(1, 2, 0).numpy() * 255.0).round().astype(np.uint8)
    Image.fromarray(out).save(args.output)
    print(f"eager fp32: {time.perf_counter() - start:.2f} s after imports, {args.output}")


if __name__ == "__main__":
    main()
