"""MATLAB-compatible bicubic resizing (`imresize(x, s, 'bicubic')`) in torch.

The SR evaluation protocol makes LR inputs with MATLAB's `imresize`: Keys' cubic kernel (a = -0.5), the
kernel stretched by 1/scale when shrinking (antialiasing), mirrored borders and weights normalised per
output pixel. PIL and OpenCV differ from it by enough to move PSNR tables, so this reimplements it.

The resize is separable: each axis is a sparse linear map whose index/weight table (out x taps) is built
on the input's device; applying it is `taps` gathers and multiply-adds, so memory stays at one output.
"""

from __future__ import annotations

import math

import numpy as np
import torch

# Keys' cubic convolution kernel spans [-2, 2].
_KERNEL_WIDTH = 4.0


def _cubic(x: torch.Tensor) -> torch.Tensor:
    """Keys' cubic kernel with a = -0.5 (MATLAB's `cubic`)."""
    ax = x.abs()
    ax2 = ax * ax
    ax3 = ax2 * ax
    inner = (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1)
    outer = (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1) & (ax <= 2))
    return inner + outer


def contributions(
    in_length: int,
    out_length: int,
    scale: float,
    *,
    antialias: bool = True,
    device: torch.device | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Index (long) and weight (float64) tables of shape (out_length, taps) for one axis.

    Follows MATLAB's `contributions`: output pixel i (1-based) maps to input coordinate
    u = i / scale + (1 - 1 / scale) / 2; taps outside the image are mirrored (symmetric padding);
    all-zero tap columns are dropped.
    """
    kernel_width = _KERNEL_WIDTH
    shrink = scale < 1 and antialias
    if shrink:
        kernel_width = kernel_width / scale
    x = torch.arange(1, out_length + 1, dtype=torch.float64, device=device)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = torch.floor(u - kernel_width / 2)
    taps = math.ceil(kernel_width) + 2
    indices = left.unsqueeze(1) + torch.arange(taps, dtype=torch.float64, device=device).unsqueeze(0)
    dist = u.unsqueeze(1) - indices
    weights = scale * _cubic(dist * scale) if shrink else _cubic(dist)
    weights = weights / weights.sum(dim=1, keepdim=True)
    # Symmetric padding: 1-based index k maps into [1..n, n..1] repeated.
    idx0 = indices.long() - 1
    period = 2 * in_length
    idx0 = torch.remainder(idx0, period)
    idx0 = torch.where(idx0 >= in_length, period - 1 - idx0, idx0)
    keep = (weights != 0).any(dim=0)
    return idx0[:, keep].contiguous(), weights[:, keep].contiguous()


def _resize_axis(x: torch.Tensor, dim: int, out_length: int, scale: float) -> torch.Tensor:
    in_length = x.shape[dim]
    indices, weights = contributions(in_length, out_length, scale, device=x.device)
    weights = weights.to(x.dtype)
    # Put the resized axis first so every gather copies whole contiguous rows.
    moved = x.movedim(dim, 0)
    rest = moved.shape[1:]
    flat = moved.reshape(in_length, -1)
    out = flat.index_select(0, indices[:, 0]) * weights[:, :1]
    for t in range(1, indices.shape[1]):
        out.addcmul_(flat.index_select(0, indices[:, t]), weights[:, t : t + 1])
    return out.view(out_length, *rest).movedim(0, dim)


def _output_size(in_size: tuple[int, int], scale: float) -> tuple[int, int]:
    # MATLAB uses ceil(scale * size); the tolerance stops 1/3 * 300 = 100.00000000000001 becoming 101.
    height, width = (max(1, math.ceil(scale * n - 1e-9)) for n in in_size)
    return height, width


def imresize(
    x: torch.Tensor, *, scale: float | None = None, size: tuple[int, int] | None = None
) -> torch.Tensor:
    """Resize (C, H, W) or (N, C, H, W) float images like MATLAB `imresize(..., 'bicubic')`.

    Give exactly one of `scale` (output size ceil(scale * input), kernel scaled by `scale`) or `size`
    (height, width; per-axis scale out/in). No clamping or rounding; the result has the input's dtype
    and device (half-precision inputs are computed in float32).
    """
    if (scale is None) == (size is None):
        raise ValueError("imresize needs exactly one of scale= or size=")
    if not torch.is_tensor(x) or x.dim() not in (3, 4):
        raise ValueError(f"imresize expects a (C,H,W) or (N,C,H,W) tensor, got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"imresize expects a floating-point tensor, got {x.dtype}")
    in_h, in_w = int(x.shape[-2]), int(x.shape[-1])
    if in_h < 1 or in_w < 1:
        raise ValueError(f"imresize got an empty image of size {in_h}x{in_w}")
    if scale is not None:
        scale = float(scale)
        if not math.isfinite(scale) or scale <= 0:
            raise ValueError(f"imresize scale must be a positive finite number, got {scale}")
        out_h, out_w = _output_size((in_h, in_w), scale)
        scales = (scale, scale)
    else:
        assert size is not None
        if len(size) != 2 or any(int(s) != s or s < 1 for s in size):
            raise ValueError(f"imresize size must be two positive integers (height, width), got {size}")
        out_h, out_w = int(size[0]), int(size[1])
        scales = (out_h / in_h, out_w / in_w)

    dtype = x.dtype
    work = x.float() if dtype in (torch.float16, torch.bfloat16) else x
    # MATLAB resizes the axis with the smaller scale first (stable for ties: rows first).
    order = sorted(range(2), key=lambda i: scales[i])
    out_sizes = (out_h, out_w)
    for axis in order:
        dim = work.dim() - 2 + axis
        if work.shape[dim] == out_sizes[axis] and scales[axis] == 1.0:
            continue
        work = _resize_axis(work, dim, out_sizes[axis], scales[axis])
    return work.to(dtype).contiguous()


def quantize(x: torch.Tensor) -> torch.Tensor:
    """Clamp to [0, 1] and round to the 256 uint8 levels, staying float (what saving a PNG does)."""
    return torch.round(x.clamp(0, 1) * 255) / 255


def degrade(hr: torch.Tensor, scale: int) -> torch.Tensor:
    """The protocol's LR image: MATLAB bicubic downscale by 1/scale, clamped and rounded to uint8 levels.

    `hr` is (C, H, W) or (N, C, H, W) float in [0, 1]; crop it to a multiple of `scale` first for
    paper-comparable LR sizes (otherwise the LR size is ceil(H / scale)).
    """
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise ValueError(f"degrade scale must be a positive integer, got {scale!r}")
    if scale == 1:
        return quantize(hr)
    return quantize(imresize(hr, scale=1.0 / scale))


def degrade_uint8(hr: np.ndarray, scale: int) -> np.ndarray:
    """`degrade` of a uint8 HWC image, as a uint8 HWC image (RGB channels only)."""
    # float64 like MATLAB, so rounding to uint8 lands on the same levels.
    # A copy: cached images are read-only memory maps, which torch will not wrap.
    x = torch.from_numpy(np.array(hr[:, :, :3])).permute(2, 0, 1).to(torch.float64) / 255.0
    lr = degrade(x, scale).mul(255).round().to(torch.uint8)
    return np.ascontiguousarray(lr.permute(1, 2, 0).numpy())
