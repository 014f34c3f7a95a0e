"""Side-by-side crops of our release models: bicubic / models... / HR, on Set14 or on bsds100-real.

    .venv/bin/python scripts/crop_figure.py --data-root ../shared/datasets \
        [--images img_005 img_014] [--out docs/images/set14_crops.jpg]
    .venv/bin/python scripts/crop_figure.py --data-root ../shared/datasets --set bsds100-real \
        [--images 3096 42049] [--real-model esrgan-x4-real] [--out docs/images/real_crops.jpg]

Set14: the LR is regenerated from the HR with MATLAB bicubic (as `esrgan test` does); the columns are
bicubic / esrgan-x4-psnr / -gan / -interp / HR. bsds100-real: the set's own LR (BSDS500 val with the fixed
blur/noise/JPEG mix of `esrgan.data.realphoto`, as `esrgan test --datasets bsds100-real` uses); the columns
are bicubic / esrgan-x4-psnr / esrgan-x4-real / realesrgan-x4plus / HR, where JPEG blocks and noise show
up if a model amplifies them. The crop is the most textured window of the HR (local variance), the same
rule as `esrgan test`'s figures. Captions give the whole-image PSNR-Y (border 4) of each output, and on
bsds100-real its LPIPS too, so a crop cannot be mistaken for the score. Models run eager fp32.
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

SET14_MODELS = (("PSNR", "esrgan-x4-psnr"), ("GAN", "esrgan-x4-gan"), ("interp 0.8", "esrgan-x4-interp"))
SCALE = 4


def panels_for(
    hr: torch.Tensor, lr: torch.Tensor, models: dict[str, torch.nn.Module], lpips=None
) -> list[tuple[np.ndarray, str]]:
    """hr (1, 3, H, W) cropped to a multiple of the scale, lr (1, 3, H/4, W/4); captions with scores."""
    outputs = [("Bicubic", quantize(imresize(lr.double(), scale=float(SCALE)).float().clamp(0, 1)))]
    with torch.inference_mode():
        for label, model in models.items():
            outputs.append((label, quantize(model(lr.float()).clamp(0, 1))))
    size = min(hr.shape[-2:]) // 3
    size -= size % SCALE
    y, x = pick_crop(hr, size)

    def crop(t: torch.Tensor) -> np.ndarray:
        return t[0, :, y : y + size, x : x + size].permute(1, 2, 0).clamp(0, 1).numpy()

    panels = []
    for label, sr in outputs:
        caption = f"{label}\n{psnr(sr, hr, crop_border=SCALE).item():.2f} dB"
        if lpips is not None:
            with torch.inference_mode():
                caption += f", LPIPS {lpips(sr.float(), hr.float()).item():.3f}"
        panels.append((crop(sr), caption))
    panels.append((crop(hr), "HR\n(ground truth)"))
    return panels


def load_hr(path: Path) -> torch.Tensor:
    """(1, 3, H, W) HR, cropped to a multiple of the scale as `esrgan test` does."""
    hr = load_rgb(path)[None]
    return hr[..., : hr.shape[-2] - hr.shape[-2] % SCALE, : hr.shape[-1] - hr.shape[-1] % SCALE]


def set14_rows(args: argparse.Namespace) -> tuple[list, str]:
    models = {label: load_generator(name, progress=False) for label, name in SET14_MODELS}
    rows = []
    for stem in args.images or ["img_005", "img_014"]:
        matches = sorted((args.data_root / "Set14" / "x4").glob(f"{stem}*_HR.png"))
        if not matches:
            raise SystemExit(f"{args.data_root}/Set14/x4: no {stem}*_HR.png")
        hr = load_hr(matches[0])
        rows.append((panels_for(hr, degrade(hr, SCALE), models), f"Set14 {matches[0].name.split('_SRF')[0]}"))
    return rows, "x4 on Set14 (LR regenerated with MATLAB bicubic); whole-image PSNR-Y under each crop"


def real_rows(args: argparse.Namespace) -> tuple[list, str]:
    from esrgan.data.realphoto import real_photo_pairs
    from esrgan.metrics.lpips import LPIPS

    hr_files = sorted((args.data_root / "BSDS500" / "val").glob("*.jpg"))
    if not hr_files:
        raise SystemExit(f"{args.data_root}/BSDS500/val: no .jpg files")
    pairs = {hr.stem: (hr, lr) for hr, lr in real_photo_pairs(hr_files, scale=SCALE)}
    models = {
        "esrgan-x4-psnr": load_generator("esrgan-x4-psnr", progress=False),
        Path(args.real_model).stem: load_generator(args.real_model, progress=False),
        "realesrgan-x4plus": load_generator("realesrgan-x4plus", progress=False),
    }
    lpips = LPIPS.from_files(vgg_weights=args.lpips_vgg, heads=args.lpips_heads).eval()
    rows = []
    for stem in args.images or ["3096", "42049"]:
        if stem not in pairs:
            raise SystemExit(
                f"bsds100-real has no image {stem} (BSDS500 val stems, e.g. {next(iter(pairs))})"
            )
        hr_path, lr_path = pairs[stem]
        hr = load_hr(hr_path)
        rows.append((panels_for(hr, load_rgb(lr_path)[None], models, lpips), f"BSDS500 val {stem}"))
    title = (
        "x4 on bsds100-real (blur, noise and JPEG in the LR); whole-image PSNR-Y and LPIPS under each crop"
    )
    return rows, title


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", type=Path, required=True, help="folder with Set14/x4 and BSDS500/val")
    p.add_argument("--set", choices=("set14", "bsds100-real"), default="set14")
    p.add_argument(
        "--images", nargs="+", help="image stems (Set14: img_005 img_014; bsds100-real: 3096 42049)"
    )
    p.add_argument("--real-model", default="esrgan-x4-real", help="bsds100-real: our real-photo model")
    p.add_argument(
        "--lpips-vgg", type=Path, default=Path("../shared/weights/vgg16_imagenet_features.safetensors")
    )
    p.add_argument(
        "--lpips-heads", type=Path, default=Path("../shared/weights/lpips_vgg_v0.1_heads.safetensors")
    )
    p.add_argument(
        "--out", type=Path, help="default docs/images/set14_crops.jpg or docs/images/real_crops.jpg"
    )
    args = p.parse_args()
    out = args.out or Path("docs/images", "set14_crops.jpg" if args.set == "set14" else "real_crops.jpg")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, title = set14_rows(args) if args.set == "set14" else real_rows(args)
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
                ax.set_ylabel(name, fontsize=9)
    fig.suptitle(title)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    # A .jpg keeps the figure small for git; quality 95 leaves no visible artefact at this magnification.
    jpeg = out.suffix.lower() in (".jpg", ".jpeg")
    fig.savefig(out, dpi=110, pil_kwargs={"quality": 95} if jpeg else None)
    print(out)


if __name__ == "__main__":
    main()
