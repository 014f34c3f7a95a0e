"""PSNR and SSIM exactly as the SR evaluation protocol defines them (docs/PROTOCOL.md).

Images are quantised to uint8 levels, optionally reduced to BT.601 luma (16..235), cropped by
`crop_border` on each side, and compared in float64. SSIM is the original Wang et al. formulation
(11x11 Gaussian, sigma 1.5, valid filtering, no downsampling) that MATLAB and BasicSR report.
This is the project's one definition: validation, `esrgan test` and benchmarks all call it.
"""

from __future__ import annotations

import torch

# BT.601 "studio swing" luma for RGB in [0, 1]; output in [16, 235] on the 0..255 scale.
_Y_WEIGHTS = (65.481, 128.553, 24.966)
_SSIM_C1 = (0.01 * 255) ** 2
_SSIM_C2 = (0.03 * 255) ** 2


def to_uint8_levels(x: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) float in [0, 1] or uint8 -> float64 in 0..255 with integer values."""
    if x.dtype == torch.uint8:
        return x.to(torch.float64)
    if not x.is_floating_point():
        raise ValueError(f"metric inputs must be float in [0, 1] or uint8, got {x.dtype}")
    return torch.round(x.to(torch.float64).clamp(0, 1) * 255)


def rgb_to_y(x255: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) RGB on the 0..255 scale -> (N, 1, H, W) BT.601 luma, float64, not rounded."""
    w = torch.tensor(_Y_WEIGHTS, dtype=torch.float64, device=x255.device).view(1, 3, 1, 1)
    return 16.0 + (x255.to(torch.float64) / 255.0 * w).sum(dim=1, keepdim=True)


def _prepare(
    sr: torch.Tensor, hr: torch.Tensor, crop_border: int, y_channel: bool
) -> tuple[torch.Tensor, ...]:
    if sr.shape != hr.shape:
        raise ValueError(f"images differ in shape: {tuple(sr.shape)} vs {tuple(hr.shape)}")
    if sr.dim() == 3:
        sr, hr = sr.unsqueeze(0), hr.unsqueeze(0)
    if sr.dim() != 4 or sr.shape[1] not in (1, 3):
        raise ValueError(f"expected (N, 1|3, H, W) images, got shape {tuple(sr.shape)}")
    if isinstance(crop_border, bool) or not isinstance(crop_border, int) or crop_border < 0:
        raise ValueError(f"crop_border must be a non-negative integer, got {crop_border!r}")
    h, w = sr.shape[-2:]
    if 2 * crop_border >= min(h, w):
        raise ValueError(f"crop_border {crop_border} leaves nothing of a {h}x{w} image")
    a, b = to_uint8_levels(sr), to_uint8_levels(hr)
    # Grayscale is evaluated as the replicated RGB image (its luma is an affine map of the grey level).
    if a.shape[1] == 1:
        a, b = a.expand(-1, 3, -1, -1), b.expand(-1, 3, -1, -1)
    if y_channel:
        a, b = rgb_to_y(a), rgb_to_y(b)
    if crop_border:
        a = a[..., crop_border:-crop_border, crop_border:-crop_border]
        b = b[..., crop_border:-crop_border, crop_border:-crop_border]
    return a, b


def psnr(sr: torch.Tensor, hr: torch.Tensor, *, crop_border: int, y_channel: bool = True) -> torch.Tensor:
    """Per-image PSNR in dB, Tensor[N] float64 (inf for identical images)."""
    a, b = _prepare(sr, hr, crop_border, y_channel)
    mse = ((a - b) ** 2).mean(dim=(1, 2, 3))
    return 10.0 * torch.log10(255.0**2 / mse)


def _gaussian_1d(size: int = 11, sigma: float = 1.5, *, device: torch.device) -> torch.Tensor:
    r = torch.arange(size, dtype=torch.float64, device=device) - (size - 1) / 2
    g = torch.exp(-(r**2) / (2 * sigma**2))
    return g / g.sum()


def _filter_valid(x: torch.Tensor, taps: list[float], dim: int) -> torch.Tensor:
    out_len = x.shape[dim] - len(taps) + 1
    out = x.narrow(dim, 0, out_len) * taps[0]
    for k in range(1, len(taps)):
        out.add_(x.narrow(dim, k, out_len), alpha=taps[k])
    return out


def ssim(sr: torch.Tensor, hr: torch.Tensor, *, crop_border: int, y_channel: bool = True) -> torch.Tensor:
    """Per-image SSIM, Tensor[N] float64: mean SSIM map per channel, then mean over channels."""
    a, b = _prepare(sr, hr, crop_border, y_channel)
    c, h, w = a.shape[1:]
    if min(h, w) < 11:
        raise ValueError(f"SSIM needs at least 11x11 pixels after the border crop, got {h}x{w}")
    g = _gaussian_1d(device=a.device).tolist()
    # The 11x11 Gaussian window is separable: two 1-D "valid" passes written as shifted multiply-adds
    # (float64 conv2d has no fast CPU kernel).
    stack = torch.cat([a, b, a * a, b * b, a * b], dim=1)
    stack = _filter_valid(stack, g, dim=2)
    stack = _filter_valid(stack, g, dim=3)
    mu_a, mu_b, e_aa, e_bb, e_ab = stack.split(c, dim=1)
    mu_a2, mu_b2, mu_ab = mu_a * mu_a, mu_b * mu_b, mu_a * mu_b
    var_a, var_b, cov = e_aa - mu_a2, e_bb - mu_b2, e_ab - mu_ab
    ssim_map = ((2 * mu_ab + _SSIM_C1) * (2 * cov + _SSIM_C2)) / (
        (mu_a2 + mu_b2 + _SSIM_C1) * (var_a + var_b + _SSIM_C2)
    )
    return ssim_map.mean(dim=(2, 3)).mean(dim=1)
