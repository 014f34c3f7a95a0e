"""LPIPS-VGG on the shipped VGG16 features and official heads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter

from esrgan.metrics import LPIPS

SHARED = Path(__file__).resolve().parents[2] / "shared"
VGG = SHARED / "weights" / "vgg16_imagenet_features.safetensors"
HEADS = SHARED / "weights" / "lpips_vgg_v0.1_heads.safetensors"
pytestmark = pytest.mark.skipif(not (VGG.is_file() and HEADS.is_file()), reason="shared weights not present")


@pytest.fixture(scope="module")
def lpips() -> LPIPS:
    return LPIPS.from_files(vgg_weights=VGG, heads=HEADS)


def _crop(i: int, size: int = 128) -> Image.Image:
    im = Image.open(SHARED / "datasets" / "Set5" / "x4" / f"img_00{i}_SRF_4_HR.png").convert("RGB")
    w, h = im.size
    left, top = (w - size) // 2, (h - size) // 2
    return im.crop((left, top, left + size, top + size))


def _t(im: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1).float() / 255


def test_identical_images_score_zero(lpips):
    x = torch.stack([_t(_crop(1)), _t(_crop(3))])
    assert lpips(x, x).tolist() == [0.0, 0.0]


def test_blur_is_ordered_and_radius_one_is_about_0_1(lpips):
    im = _crop(3)
    radii = (0.5, 1, 2, 4)
    ref = _t(im).expand(len(radii), -1, -1, -1)
    blurred = torch.stack([_t(im.filter(ImageFilter.GaussianBlur(r))) for r in radii])
    d = lpips(ref, blurred)
    assert d.shape == (4,)
    assert torch.all(d[1:] > d[:-1]), d  # more blur, larger distance
    assert 0.05 < d[1].item() < 0.2  # about 0.11 for a radius-1 blur (weights README)
    assert d[-1].item() < 0.7


def test_unrelated_photos_are_far_apart_and_symmetric(lpips):
    a = torch.stack([_t(_crop(1)), _t(_crop(2)), _t(_crop(4))])
    b = torch.stack([_t(_crop(2)), _t(_crop(4)), _t(_crop(5))])
    d = lpips(torch.cat([a, b[:1]]), torch.cat([b, a[:1]]))
    assert torch.all((d[:3] > 0.45) & (d[:3] < 1.0)), d
    assert d[3].item() == pytest.approx(d[0].item(), abs=1e-5)


def test_grayscale_is_replicated(lpips):
    g = _t(_crop(2, 64).convert("L").convert("RGB"))[:1]
    h = _t(_crop(2, 64).filter(ImageFilter.GaussianBlur(1)).convert("L").convert("RGB"))[:1]
    torch.testing.assert_close(
        lpips(g[None], h[None]), lpips(g.expand(3, -1, -1)[None], h.expand(3, -1, -1)[None])
    )


def test_official_pth_layouts_load_unchanged(tmp_path, lpips):
    from safetensors.torch import load_file

    # torchvision's vgg16 .pth carries the classifier too; LPIPS' vgg.pth is a plain dict of the heads.
    vgg_sd = load_file(str(VGG))
    vgg_sd["classifier.0.weight"] = torch.zeros(4, 8)
    torch.save(vgg_sd, tmp_path / "vgg16-397923af.pth")
    torch.save(load_file(str(HEADS)), tmp_path / "vgg.pth")
    other = LPIPS.from_files(vgg_weights=tmp_path / "vgg16-397923af.pth", heads=tmp_path / "vgg.pth")
    a, b = _t(_crop(5, 64))[None], _t(_crop(5, 64).filter(ImageFilter.GaussianBlur(1)))[None]
    torch.testing.assert_close(other(a, b), lpips(a, b))


def test_bad_weight_files_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"missing\.safetensors"):
        LPIPS.from_files(vgg_weights=tmp_path / "missing.safetensors", heads=HEADS)
    torch.save({"lin0.model.1.weight": torch.zeros(1, 64, 1, 1)}, tmp_path / "partial.pth")
    with pytest.raises(ValueError, match=r"partial\.pth.*lin1"):
        LPIPS.from_files(vgg_weights=VGG, heads=tmp_path / "partial.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=r"junk\.pth"):
        LPIPS.from_files(vgg_weights=tmp_path / "junk.pth", heads=HEADS)
