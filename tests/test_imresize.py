"""MATLAB-bicubic imresize: hand-derived weights, an independent loop implementation, the shipped LR files."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from esrgan.data.imresize import contributions, degrade, imresize, quantize

DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets"
needs_data = pytest.mark.skipif(not (DATA / "Set5").is_dir(), reason="shared datasets not present")


def _keys(x: float) -> float:
    ax = abs(x)
    if ax <= 1:
        return 1.5 * ax**3 - 2.5 * ax**2 + 1
    if ax <= 2:
        return -0.5 * ax**3 + 2.5 * ax**2 - 4 * ax + 2
    return 0.0


def _mirror(k: int, n: int) -> int:
    """1-based index k reflected into 1..n the way MATLAB's symmetric padding does (edge repeated)."""
    while k < 1 or k > n:
        k = 1 - k if k < 1 else 2 * n + 1 - k
    return k


def _loop_resize_1d(v: np.ndarray, out_len: int, scale: float) -> np.ndarray:
    """Direct per-pixel evaluation of MATLAB's formula, written independently of the library."""
    n = len(v)
    width = 4.0 / scale if scale < 1 else 4.0
    out = np.zeros(out_len)
    for i in range(1, out_len + 1):
        u = i / scale + 0.5 * (1 - 1 / scale)
        ws, vals = [], []
        for k in range(math.floor(u - width / 2), math.floor(u - width / 2) + math.ceil(width) + 2):
            w = scale * _keys(scale * (u - k)) if scale < 1 else _keys(u - k)
            ws.append(w)
            vals.append(v[_mirror(k, n) - 1])
        out[i - 1] = np.dot(ws, vals) / sum(ws)
    return out


def _loop_resize(img: np.ndarray, out_h: int, out_w: int, sh: float, sw: float) -> np.ndarray:
    rows = np.stack([_loop_resize_1d(img[:, j], out_h, sh) for j in range(img.shape[1])], axis=1)
    return np.stack([_loop_resize_1d(rows[i], out_w, sw) for i in range(out_h)], axis=0)


def test_x2_upscale_weights_match_hand_derived_values():
    # Output pixel 5 (1-based) of a x2 upscale sits at u = 2.75: distances 1.75, 0.75, -0.25, -1.25 to
    # inputs 1..4, and Keys' kernel gives these exact binary fractions.
    idx, w = contributions(10, 20, 2.0)
    np.testing.assert_allclose(w[4].numpy(), [-0.0234375, 0.2265625, 0.8671875, -0.0703125], atol=1e-15)
    assert idx[4].tolist() == [0, 1, 2, 3]
    # Output pixel 1 (u = 0.75) reads inputs -1, 0, 1, 2 (1-based); -1 and 0 mirror onto 2 and 1.
    assert idx[0].tolist() == [1, 0, 0, 1]


def test_x4_downscale_weights_are_stretched_and_mirrored():
    idx, w = contributions(16, 4, 0.25)
    # Kernel stretched to width 16; of the 18 candidate taps the two at distance 8.5 weigh zero.
    assert w.shape[1] == 16
    np.testing.assert_allclose(w.sum(1).numpy(), 1.0, atol=1e-12)
    np.testing.assert_allclose(w[1].numpy(), [0.25 * _keys(0.25 * (7.5 - t)) for t in range(16)], atol=1e-15)
    # Output pixel 1 (u = 2.5) reads inputs -5..10 (1-based); those below 1 mirror with the edge repeated.
    assert idx[0, :8].tolist() == [5, 4, 3, 2, 1, 0, 0, 1]


@pytest.mark.parametrize(
    ("scale", "size"),
    [(0.5, None), (1 / 3, None), (0.37, None), (2.0, None), (3.3, None), (None, (7, 23)), (None, (30, 6))],
)
def test_matches_independent_loop_implementation(scale, size):
    rng = np.random.default_rng(0)
    img = rng.random((13, 17))
    x = torch.from_numpy(img)[None]
    out = imresize(x, scale=scale, size=size)[0].numpy()
    if size is None:
        oh, ow, sh, sw = math.ceil(13 * scale - 1e-9), math.ceil(17 * scale - 1e-9), scale, scale
    else:
        oh, ow = size
        sh, sw = oh / 13, ow / 17
    assert out.shape == (oh, ow)
    np.testing.assert_allclose(out, _loop_resize(img, oh, ow, sh, sw), atol=1e-12)


@pytest.mark.parametrize(("scale", "size"), [(0.25, None), (1 / 3, None), (4.0, None), (None, (9, 31))])
def test_constant_image_stays_constant(scale, size):
    x = torch.full((2, 3, 24, 20), 0.3)
    out = imresize(x, scale=scale, size=size)
    torch.testing.assert_close(out, torch.full_like(out, 0.3), atol=1e-6, rtol=0)


def test_impulse_response_sums_to_one_and_is_symmetric():
    x = torch.zeros(1, 1, 32, 32, dtype=torch.float64)
    x[..., 15:17, 15:17] = 1.0  # a 2x2 impulse centred between pixels keeps the symmetry at x2 down
    out = imresize(x, scale=0.5)[0, 0]
    assert out.sum().item() == pytest.approx(4 / 4, abs=1e-12)
    torch.testing.assert_close(out, out.flip(0))
    torch.testing.assert_close(out, out.flip(1))
    torch.testing.assert_close(out, out.T)


def test_batched_and_unbatched_agree_and_dtype_is_kept():
    x = torch.rand(3, 3, 21, 18)
    out = imresize(x, scale=0.5)
    assert out.shape == (3, 3, 11, 9) and out.dtype == torch.float32 and out.is_contiguous()
    torch.testing.assert_close(imresize(x[1], scale=0.5), out[1])
    half = imresize(x.half(), scale=0.5)
    assert half.dtype == torch.float16
    torch.testing.assert_close(half.float(), out, atol=2e-3, rtol=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_gpu_matches_cpu():
    x = torch.rand(2, 3, 40, 36)
    torch.testing.assert_close(
        imresize(x.cuda(), scale=0.25).cpu(), imresize(x, scale=0.25), atol=1e-5, rtol=0
    )


def test_degrade_is_quantised_and_sized():
    hr = torch.rand(1, 3, 37, 50)
    lr = degrade(hr, 4)
    assert lr.shape == (1, 3, 10, 13)
    assert lr.min() >= 0 and lr.max() <= 1
    torch.testing.assert_close(lr * 255, torch.round(lr * 255))
    torch.testing.assert_close(lr, quantize(imresize(hr, scale=0.25)))


def test_invalid_arguments_are_value_errors():
    x = torch.rand(3, 8, 8)
    with pytest.raises(ValueError, match="exactly one"):
        imresize(x, scale=0.5, size=(4, 4))
    with pytest.raises(ValueError, match="exactly one"):
        imresize(x)
    with pytest.raises(ValueError, match="positive"):
        imresize(x, scale=-1)
    with pytest.raises(ValueError, match="floating"):
        imresize(torch.zeros(3, 8, 8, dtype=torch.uint8), scale=0.5)
    with pytest.raises(ValueError, match="positive integer"):
        degrade(x, 0)


def _load(path: Path) -> torch.Tensor:
    return (
        torch.from_numpy(np.asarray(Image.open(path).convert("RGB")).copy()).permute(2, 0, 1).double() / 255
    )


def _matlab_uint8_path(hr: torch.Tensor, scale: int) -> torch.Tensor:
    # MATLAB's imresize on a uint8 image returns uint8 after each 1-D pass (rows first for equal scales).
    h, w = hr.shape[-2:]
    rows = quantize(imresize(hr, size=(h // scale, w)))
    return quantize(imresize(rows, size=(h // scale, w // scale)))


@needs_data
@pytest.mark.parametrize("scale", [3, 4])
def test_reproduces_the_shipped_lr_files(scale):
    """The shipped LR files are MATLAB imresize of uint8 HR: emulating that path gives them back exactly
    away from the border (the border differs: they were cut from larger originals), while the float path
    of the protocol stays within a fraction of a grey level and PIL is further away."""
    exact, ours_mad, pil_mad = [], [], []
    for hr_path in sorted((DATA / "Set5" / f"x{scale}").glob("*_HR.png")):
        hr, lr = _load(hr_path), _load(Path(str(hr_path).replace("_HR", "_LR")))
        emu = _matlab_uint8_path(hr, scale)
        inner = (slice(None), slice(3, -3), slice(3, -3))
        exact.append((emu[inner] == lr[inner]).double().mean().item())
        assert (emu[inner] - lr[inner]).abs().max().item() * 255 < 1.001  # at most a rounding tie apart
        ours_mad.append(((quantize(imresize(hr, scale=1 / scale)) - lr) * 255).abs().mean().item())
        h, w = lr.shape[-2:]
        pil = Image.open(hr_path).convert("RGB").resize((w, h), Image.Resampling.BICUBIC)
        pil_mad.append(((_load_pil(pil) - lr) * 255).abs().mean().item())
    assert min(exact) > 0.998
    assert np.mean(ours_mad) < 0.2
    assert np.mean(ours_mad) < np.mean(pil_mad) < 1.0  # PIL: close (loose bound), but not MATLAB


def _load_pil(im: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1).double() / 255
