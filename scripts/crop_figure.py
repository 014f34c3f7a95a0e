"""Side-by-side crops of our release models on Set14: bicubic / PSNR / GAN / interp / HR.

    .venv/bin/python scripts/crop_figure.py --data-root ../shared/datasets \
        [--images img_005 img_014] [--out docs/images/set14_crops.jpg]

The LR is regenerated from the HR with MATLAB bicubic (as `esrgan test` does); the crop is the most
textured window of the HR (local variance), the same rule as `esrgan test`'s figures. Captions give the
whole-image PSNR-Y (border 4) of each output, so a crop cannot be mistaken for the score.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from esrgan.data.benchmarks import load_rgb
from esrgan.data.imresize import degrade, imresize, quantize
from esrgan.evaluation.figures import pick_crop
from esrgan.metrics.psnr_ssim import psnr
from esrgan.weights import load_generator

MODELS = (("PSNR", "esrgan-x4-psnr"), ("GAN", "esrgan-x4-gan"), ("interp 0.8", "esrgan-x4-interp"))
SCALE = 4


def panels_for(hr_path: Path, models: dict[str, torch.nn.Module]) -> tuple[list[tuple[np.ndarray, str]], str]:
    hr = load_rgb(hr_path)[None]
    hr = hr[..., : hr.shape[-2] - hr.shape[-2] % SCALE, : hr.shape[-1] - hr.shape[-1] % SCALE]
    lr = degrade(hr, SCALE)
    outputs = [("Bicubic", quantize(imresize(lr, scale=float(SCALE)).clamp(0, 1)))]
    with torch.inference_mode():
        for label, model in models.items():
            outputs.append((label, quantize(model(lr).clamp(0, 1))))
    size = min(hr.shape[-2:]) // 3
    size -= size % SCALE
    y, x = pick_crop(hr, size)

    def crop(t: torch.Tensor) -> np.ndarray:
        return t[0, :, y : y + size, x : x + size].permute(1, 2, 0).clamp(0, 1).numpy()

    panels = [
        (crop(sr), f"{label}\n{psnr(sr, hr, crop_border=SCALE).item():.2f} dB") for label, sr in outputs
    ]
    panels.append((crop(hr), "HR\n(ground truth)"))
    return panels, hr_path.name.split("_SRF")[0]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", type=Path, required=True, help="folder with Set14/x4/*_HR.png")
    p.add_argument("--images", nargs="+", default=["img_005", "img_014"], help="Set14 image stems")
    p.add_argument("--out", type=Path, default=Path("docs/images/set14_crops.jpg"))
    args = p.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = {label: load_generator(name, progress=False) for label, name in MODELS}
    rows = []
    for stem in args.images:
        matches = sorted((args.data_root / "Set14" / "x4").glob(f"{stem}*_HR.png"))
        if not matches:
            raise SystemExit(f"{args.data_root}/Set14/x4: no {stem}*_HR.png")
        rows.append(panels_for(matches[0], models))
    cols = len(rows[0][0])
    fig, axes = plt.subplots(len(rows), cols, figsize=(2.6 * cols, 3.2 * len(rows)), squeeze=False)
    for r, (panels, name) in enumerate(rows):
        for c, (img, caption) in enumerate(panels):
            ax = axes[r, c]
            ax.imshow(img, interpolation="nearest")
            ax.set_title(caption, fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(f"Set14 {name}", fontsize=9)
    fig.suptitle("x4 on Set14 (LR regenerated with MATLAB bicubic); whole-image PSNR-Y under each crop")
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    # A .jpg keeps the figure small for git; quality 95 leaves no visible artefact at this magnification.
    jpeg = args.out.suffix.lower() in (".jpg", ".jpeg")
    fig.savefig(args.out, dpi=110, pil_kwargs={"quality": 95} if jpeg else None)
    print(args.out)


if __name__ == "__main__":
    main()
