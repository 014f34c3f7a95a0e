"""PSNR/SSIM per the protocol: hand values, an independent SSIM, BasicSR's baboon, bicubic baselines."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from esrgan.data.imresize import degrade, imresize, quantize
from esrgan.metrics import psnr, rgb_to_y, ssim

DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets"
needs_data = pytest.mark.skipif(not (DATA / "Set14").is_dir(), reason="shared datasets not present")


def _load(path: Path) -> torch.Tensor:
    arr = np.asarray(Image.open(path).convert("RGB"))
    return torch.from_numpy(arr.copy()).permute(2, 0, 1)[None].float() / 255


def test_identical_images_give_inf_psnr_and_unit_ssim():
    x = torch.rand(2, 3, 32, 40)
    assert torch.isinf(psnr(x, x, crop_border=4)).all()
    assert torch.isinf(psnr(x, x, crop_border=0, y_channel=False)).all()
    torch.testing.assert_close(ssim(x, x, crop_border=4), torch.ones(2, dtype=torch.float64))
    torch.testing.assert_close(ssim(x, x, crop_border=0, y_channel=False), torch.ones(2, dtype=torch.float64))


def test_psnr_hand_values():
    hr = torch.zeros(1, 3, 20, 20, dtype=torch.uint8)
    sr = torch.ones(1, 3, 20, 20, dtype=torch.uint8)
    # One grey level everywhere: MSE 1 on RGB; on Y the difference is (65.481+128.553+24.966)/255.
    assert psnr(sr, hr, crop_border=0, y_channel=False).item() == pytest.approx(10 * math.log10(255**2))
    dy = 219.0 / 255.0
    assert psnr(sr, hr, crop_border=2).item() == pytest.approx(10 * math.log10(255**2 / dy**2))
    assert psnr(sr, hr, crop_border=0).dtype == torch.float64


def test_float_inputs_are_quantised_like_uint8():
    hr8 = torch.randint(0, 256, (2, 3, 24, 24), dtype=torch.uint8)
    sr8 = torch.randint(0, 256, (2, 3, 24, 24), dtype=torch.uint8)
    # Sub-level noise and out-of-range values vanish in the uint8 rounding/clamp of step 3.
    sr = (sr8.float() + torch.empty(sr8.shape).uniform_(-0.45, 0.45)) / 255
    sr[sr8 == 255] += 0.3
    hr = hr8.float() / 255
    torch.testing.assert_close(psnr(sr, hr, crop_border=1), psnr(sr8, hr8, crop_border=1))
    torch.testing.assert_close(ssim(sr, hr, crop_border=1), ssim(sr8, hr8, crop_border=1))


def test_y_is_bt601_studio_swing():
    white = torch.full((1, 3, 1, 1), 255.0, dtype=torch.float64)
    assert rgb_to_y(white).item() == pytest.approx(235.0)
    assert rgb_to_y(torch.zeros_like(white)).item() == pytest.approx(16.0)


def test_grayscale_equals_replicated_rgb_and_batch_equals_single():
    a, b = torch.rand(3, 1, 30, 26), torch.rand(3, 1, 30, 26)
    for y in (True, False):
        torch.testing.assert_close(
            psnr(a, b, crop_border=3, y_channel=y),
            psnr(a.repeat(1, 3, 1, 1), b.repeat(1, 3, 1, 1), crop_border=3, y_channel=y),
        )
        torch.testing.assert_close(
            ssim(a, b, crop_border=3, y_channel=y),
            ssim(a.repeat(1, 3, 1, 1), b.repeat(1, 3, 1, 1), crop_border=3, y_channel=y),
        )
    torch.testing.assert_close(psnr(a, b, crop_border=3)[1:2], psnr(a[1:2], b[1:2], crop_border=3))
    torch.testing.assert_close(ssim(a, b, crop_border=3)[1:2], ssim(a[1:2], b[1:2], crop_border=3))


def test_crop_border_ignores_the_frame():
    hr = torch.rand(1, 3, 30, 30)
    sr = hr.clone()
    sr[..., :3, :] = 0
    sr[..., :, -3:] = 1
    assert torch.isinf(psnr(sr, hr, crop_border=3)).all()
    assert ssim(sr, hr, crop_border=3).item() == pytest.approx(1.0)
    assert psnr(sr, hr, crop_border=2).item() < 40


def _ssim_reference(a: np.ndarray, b: np.ndarray) -> float:
    """Full 2-D 11x11 Gaussian window over every valid position (sliding windows, no separability)."""
    r = np.arange(11) - 5
    g = np.exp(-(r**2) / (2 * 1.5**2))
    win = np.outer(g, g) / np.outer(g, g).sum()
    wa = np.lib.stride_tricks.sliding_window_view(a, (11, 11))
    wb = np.lib.stride_tricks.sliding_window_view(b, (11, 11))
    mu_a = (wa * win).sum((-1, -2))
    mu_b = (wb * win).sum((-1, -2))
    va = (wa**2 * win).sum((-1, -2)) - mu_a**2
    vb = (wb**2 * win).sum((-1, -2)) - mu_b**2
    cov = (wa * wb * win).sum((-1, -2)) - mu_a * mu_b
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    m = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (va + vb + c2))
    return float(m.mean())


def test_ssim_matches_a_direct_window_implementation():
    g = torch.Generator().manual_seed(0)
    hr = torch.randint(0, 256, (1, 3, 27, 33), dtype=torch.uint8, generator=g)
    noise = torch.randint(-40, 41, hr.shape, generator=g)
    sr = (hr.int() + noise).clamp(0, 255).to(torch.uint8)
    a, b = sr[0].double().numpy(), hr[0].double().numpy()
    ref_rgb = np.mean([_ssim_reference(a[c, 2:-2, 2:-2], b[c, 2:-2, 2:-2]) for c in range(3)])
    assert ssim(sr, hr, crop_border=2, y_channel=False).item() == pytest.approx(ref_rgb, abs=1e-12)
    w = np.array([65.481, 128.553, 24.966])[:, None, None] / 255
    ya, yb = 16 + (a * w).sum(0), 16 + (b * w).sum(0)
    ref_y = _ssim_reference(ya[2:-2, 2:-2], yb[2:-2, 2:-2])
    assert ssim(sr, hr, crop_border=2).item() == pytest.approx(ref_y, abs=1e-12)


def test_invalid_inputs_raise_value_errors():
    x = torch.rand(1, 3, 20, 20)
    with pytest.raises(ValueError, match="shape"):
        psnr(x, torch.rand(1, 3, 20, 21), crop_border=0)
    with pytest.raises(ValueError, match="crop_border"):
        psnr(x, x, crop_border=-1)
    with pytest.raises(ValueError, match="leaves nothing"):
        ssim(x, x, crop_border=10)
    with pytest.raises(ValueError, match="11x11"):
        ssim(x, x, crop_border=5)


@needs_data
def test_baboon_matches_basicsr_documented_values():
    """BasicSR's documented bicubic x4 baboon numbers come from HR cropped to a multiple of 12 (480x492),
    LR = MATLAB imresize (float), upscaled back with MATLAB imresize; our pipeline reproduces them."""
    hr = _load(DATA / "Set14" / "x4" / "img_001_SRF_4_HR.png")  # Set14 sorted by name: img_001 is baboon
    assert hr.shape[-2:] == (480, 500)
    hr = hr[..., :480, :492]
    sr = quantize(imresize(degrade(hr, 4), scale=4))
    assert psnr(sr, hr, crop_border=4).item() == pytest.approx(22.441898, abs=2e-5)
    assert ssim(sr, hr, crop_border=4).item() == pytest.approx(0.453097, abs=2e-6)
    assert psnr(sr, hr, crop_border=4, y_channel=False).item() == pytest.approx(20.419710, abs=2e-6)
    assert ssim(sr, hr, crop_border=4, y_channel=False).item() == pytest.approx(0.391853, abs=2e-6)


@needs_data
@pytest.mark.parametrize(("name", "ref_psnr", "ref_ssim"), [("Set5", 28.43, 0.811), ("Set14", 26.09, 0.705)])
def test_bicubic_x4_baselines(name, ref_psnr, ref_ssim):
    ps, ss = [], []
    for path in sorted((DATA / name / "x4").glob("*_HR.png")):
        hr = _load(path)
        hr = hr[..., : hr.shape[-2] // 4 * 4, : hr.shape[-1] // 4 * 4]
        sr = quantize(imresize(degrade(hr, 4), scale=4))
        ps.append(psnr(sr, hr, crop_border=4).item())
        ss.append(ssim(sr, hr, crop_border=4).item())
    assert len(ps) == {"Set5": 5, "Set14": 14}[name]
    assert np.mean(ps) == pytest.approx(ref_psnr, abs=0.05)
    assert np.mean(ss) == pytest.approx(ref_ssim, abs=0.002)
