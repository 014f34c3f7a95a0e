"""Tiled inference with the real default model (Real-ESRGAN x4plus, 23 blocks) on a Set5 image."""

from __future__ import annotations

from pathlib import Path

import pytest

from esrgan.inference import Upscaler
from esrgan.io import read_image
from esrgan.metrics import psnr

SET5 = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "Set5" / "x4"
LR, HR = SET5 / "img_002_SRF_4_LR.png", SET5 / "img_002_SRF_4_HR.png"


@pytest.mark.slow
@pytest.mark.skipif(not LR.exists(), reason="Set5 not found beside the checkout (../shared/datasets)")
def test_tiled_within_005_db_of_untiled_real_model(tmp_path):
    from esrgan.weights import load_generator

    model = load_generator("realesrgan-x4plus", cache_dir=tmp_path, progress=False)
    lr = read_image(LR).pixels[None]  # 72 x 72
    hr = read_image(HR).pixels[None]
    untiled = Upscaler(model, device="cpu", precision="fp32", runtime="torch", tile=0).upscale(lr)
    # 2 x 2 tiles of 64 px with the default 48 px overlap: every seam runs through the image.
    up = Upscaler(model, device="cpu", precision="fp32", runtime="torch", tile=64)
    assert up.num_tiles(72, 72) == 4
    tiled = up.upscale(lr)
    p_untiled = psnr(untiled, hr, crop_border=4).item()
    p_tiled = psnr(tiled, hr, crop_border=4).item()
    assert p_untiled > 25  # a sane SR result, not garbage
    assert abs(p_tiled - p_untiled) < 0.05, (p_tiled, p_untiled)
    # Tiled vs untiled directly (RGB, no crop): far above what a viewer could see.
    assert psnr(tiled, untiled, crop_border=0, y_channel=False).item() > 50
