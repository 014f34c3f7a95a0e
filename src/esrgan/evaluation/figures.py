"""Comparison figures: LR (nearest), bicubic, model and HR side by side, with a zoomed crop and metrics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from esrgan.data.imresize import imresize, quantize
from esrgan.utils import atomic_write


def pick_crop(hr: torch.Tensor, size: int) -> tuple[int, int]:
    """Top-left (y, x) of the `size` window of `hr` (1,3,H,W) with the most texture (local variance)."""
    g = hr.mean(dim=1, keepdim=True)
    mean = F.avg_pool2d(g, size, stride=max(1, size // 4))
    var = F.avg_pool2d(g * g, size, stride=max(1, size // 4)) - mean * mean
    idx = int(var.flatten().argmax())
    stride = max(1, size // 4)
    y, x = divmod(idx, var.shape[-1])
    return y * stride, x * stride


def _hwc(x: torch.Tensor) -> np.ndarray:
    return x[0].permute(1, 2, 0).clamp(0, 1).numpy()


def comparison_figure(
    path: Path,
    *,
    title: str,
    lr: torch.Tensor,
    sr: torch.Tensor,
    hr: torch.Tensor,
    scale: int,
    model_label: str,
    model_caption: str,
    bicubic_caption: str | None,
) -> None:
    """Write a PNG: the HR image with the crop marked on the left, the four zoomed crops on the right.

    `bicubic_caption` None means the model is the bicubic baseline itself (its panel is not repeated).
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    h, w = hr.shape[-2:]
    size = max(scale * 4, min(h, w) // 3)
    size -= size % scale
    y, x = pick_crop(hr, size)
    y -= y % scale
    x -= x % scale

    def crop(t: torch.Tensor) -> torch.Tensor:
        return t[..., y : y + size, x : x + size]

    lr_nearest = F.interpolate(lr, scale_factor=scale, mode="nearest")
    panels = [(crop(lr_nearest), f"LR x{scale} (nearest)")]
    if bicubic_caption is not None:
        bic = quantize(imresize(lr, scale=float(scale)))
        panels.append((crop(bic), f"Bicubic\n{bicubic_caption}"))
    panels.append((crop(sr), f"{model_label}\n{model_caption}"))
    panels.append((crop(hr), "HR (ground truth)"))

    n = len(panels)
    fig = plt.figure(figsize=(3.2 * (n + 1.6), 4.2), dpi=100)
    grid = fig.add_gridspec(1, n + 2, width_ratios=[min(2.5, max(0.8, 1.3 * w / h)), 0.05] + [1] * n)
    ax = fig.add_subplot(grid[0, 0])
    ax.imshow(_hwc(hr), interpolation="nearest")
    ax.add_patch(Rectangle((x, y), size, size, fill=False, edgecolor="red", linewidth=1.5))
    ax.set_title("HR, crop marked", fontsize=9)
    ax.axis("off")
    for i, (img, caption) in enumerate(panels):
        ax = fig.add_subplot(grid[0, i + 2])
        ax.imshow(_hwc(img), interpolation="nearest")
        ax.set_title(caption, fontsize=9)
        ax.axis("off")
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def caption(*, psnr_y: float, ssim_y: float, lpips: float | None) -> str:
    """'28.43 dB / 0.8113 (Y)' plus LPIPS when known."""
    text = f"{psnr_y:.2f} dB / {ssim_y:.4f} (Y)"
    if lpips is not None:
        text += f"\nLPIPS {lpips:.4f}"
    return text
