"""Paired crops and the seed's augmentations keep LR and HR aligned; configuration is validated."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from esrgan.data.transforms import (
    AugmentConfig,
    PairAugment,
    from_tensor,
    mod_crop,
    paired_center_crop,
    paired_random_crop,
    to_tensor,
)


def _nearest_pair(h: int, w: int, scale: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """LR noise and its nearest-neighbour upscale: HR block (i, j) equals LR pixel (i, j) exactly."""
    lr = np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    hr = lr.repeat(scale, axis=0).repeat(scale, axis=1)
    return lr, hr


def _aligned(lr: np.ndarray, hr: np.ndarray, scale: int) -> bool:
    return hr.shape == (lr.shape[0] * scale, lr.shape[1] * scale, 3) and np.array_equal(
        lr.repeat(scale, axis=0).repeat(scale, axis=1), hr
    )


@pytest.mark.parametrize("scale", [1, 2, 3, 4])
def test_paired_random_crop_is_aligned_for_any_scale(scale: int) -> None:
    lr, hr = _nearest_pair(13, 17, scale)
    rng = np.random.default_rng(1)
    tops = set()
    for _ in range(20):
        lc, hc = paired_random_crop(lr, hr, scale=scale, patch_size=6 * scale, rng=rng)
        assert lc.shape == (6, 6, 3)
        assert _aligned(lc, hc, scale)
        tops.add(int(np.flatnonzero((lr == lc[0, 0]).all(axis=2).any(axis=1))[0]))
    assert len(tops) > 1  # the window actually moves


def test_paired_random_crop_rejects_bad_input() -> None:
    lr, hr = _nearest_pair(8, 8, 4)
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="multiple of scale"):
        paired_random_crop(lr, hr, scale=4, patch_size=30, rng=rng)
    with pytest.raises(ValueError, match="smaller than"):
        paired_random_crop(lr, hr, scale=4, patch_size=64, rng=rng)
    with pytest.raises(ValueError, match="do not match scale"):
        paired_random_crop(lr, hr[:-4], scale=4, patch_size=16, rng=rng)


def test_paired_center_crop_is_centred_and_aligned() -> None:
    lr, hr = _nearest_pair(10, 14, 3)
    lc, hc = paired_center_crop(lr, hr, scale=3, patch_size=12)
    assert np.array_equal(lc, lr[3:7, 5:9])
    assert _aligned(lc, hc, 3)
    # Larger than the image along one axis: that axis is kept whole.
    lc, hc = paired_center_crop(lr, hr, scale=3, patch_size=36)
    assert lc.shape == (10, 12, 3) and _aligned(lc, hc, 3)


def test_mod_crop_and_tensor_round_trip() -> None:
    img = np.random.default_rng(0).integers(0, 256, size=(11, 14, 3), dtype=np.uint8)
    assert mod_crop(img, 4).shape == (8, 12, 3)
    x = to_tensor(img)
    assert x.dtype == torch.float32 and x.shape == (3, 11, 14)
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    assert np.array_equal(from_tensor(x), img)
    with pytest.raises(ValueError, match="uint8"):
        to_tensor(img.astype(np.float32))


def test_mod_crop_crops_the_spatial_axes_of_arrays_and_tensors() -> None:
    img = np.arange(11 * 14).reshape(11, 14)
    assert np.array_equal(mod_crop(img, 3), img[:9, :12])  # (H, W) and (H, W, C) arrays
    batch = torch.arange(2 * 3 * 11 * 14).reshape(2, 3, 11, 14)
    assert torch.equal(mod_crop(batch, 4), batch[..., :8, :12])  # (..., H, W) tensors
    assert torch.equal(mod_crop(batch[0, 0], 5), batch[0, 0, :10, :10])
    assert mod_crop(batch, 1).shape == batch.shape


def test_augment_config_stage_defaults_and_validation() -> None:
    pre, gan = AugmentConfig.for_stage("pretrain"), AugmentConfig.for_stage("gan")
    assert (pre.spatial_p, pre.flip_weight, pre.transpose_weight) == (0.75, 0.25, 0.25)
    assert (pre.jpeg_p, pre.dropout_p) == (0.25, 0.25)
    assert (gan.spatial_p, gan.flip_weight, gan.transpose_weight) == (0.75, 0.25, 0.75)
    assert (gan.jpeg_p, gan.dropout_p) == (0.0, 0.0)
    assert AugmentConfig.for_stage("gan").to_dict()["transpose_weight"] == 0.75
    with pytest.raises(ValueError, match="stage"):
        AugmentConfig.for_stage("finetune")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="spatial_p"):
        AugmentConfig(spatial_p=1.5)
    with pytest.raises(ValueError, match="jpeg_quality"):
        AugmentConfig(jpeg_quality=(90, 50))
    with pytest.raises(ValueError, match="jpeg_quality"):
        AugmentConfig(jpeg_quality=(0, 50))
    with pytest.raises(ValueError, match="dropout_holes"):
        AugmentConfig(dropout_holes=(1.0, 2.0))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="flip_weight"):
        AugmentConfig(flip_weight=-1)
    with pytest.raises(ValueError, match="needs flip_weight"):
        AugmentConfig(flip_weight=0, transpose_weight=0)
    with pytest.raises(TypeError):
        AugmentConfig(0.5)  # type: ignore[misc]  # keyword-only


def _classify(lr: np.ndarray, out: np.ndarray) -> str:
    for name, ref in (
        ("identity", lr),
        ("hflip", lr[:, ::-1]),
        ("vflip", lr[::-1]),
        ("transpose", lr.transpose(1, 0, 2)),
    ):
        if ref.shape == out.shape and np.array_equal(ref, out):
            return name
    return "other"


@pytest.mark.parametrize(
    ("stage", "expected"),
    [
        # OneOf(p=0.75) with weights flip 0.25 / transpose 0.25 (pre-training) or 0.25 / 0.75 (GAN).
        ("pretrain", {"identity": 0.25, "hflip": 0.1875, "vflip": 0.1875, "transpose": 0.375}),
        ("gan", {"identity": 0.25, "hflip": 0.09375, "vflip": 0.09375, "transpose": 0.5625}),
    ],
)
def test_spatial_augmentation_frequencies_and_alignment(stage: str, expected: dict[str, float]) -> None:
    spatial_only = AugmentConfig.for_stage(stage)  # type: ignore[arg-type]
    spatial_only = AugmentConfig(
        spatial_p=spatial_only.spatial_p,
        flip_weight=spatial_only.flip_weight,
        transpose_weight=spatial_only.transpose_weight,
    )
    aug = PairAugment(spatial_only, seed=123)
    lr, hr = _nearest_pair(5, 7, 3)  # non-square, so a transpose is visible in the shape
    n = 3000
    counts = dict.fromkeys(expected, 0)
    for _ in range(n):
        la, ha = aug(lr, hr)
        assert _aligned(la, ha, 3)
        kind = _classify(lr, la)
        assert kind in counts
        counts[kind] += 1
    for kind, p in expected.items():
        assert abs(counts[kind] / n - p) < 0.035, (kind, counts)


def test_lr_only_corruptions_leave_hr_untouched() -> None:
    lr, hr = _nearest_pair(16, 16, 2)
    jpeg = PairAugment(AugmentConfig(spatial_p=0.0, jpeg_p=1.0, jpeg_quality=(10, 10)), seed=0)
    la, ha = jpeg(lr, hr)
    assert np.array_equal(ha, hr) and la.shape == lr.shape and not np.array_equal(la, lr)
    drop = PairAugment(
        AugmentConfig(spatial_p=0.0, dropout_p=1.0, dropout_holes=(2, 2), dropout_size=(4, 4)), seed=0
    )
    la, ha = drop(lr + 1, hr)  # +1: no genuine zeros, so zeros mark the holes
    assert np.array_equal(ha, hr)
    holes = (la == 0).all(axis=2)
    assert 16 <= holes.sum() <= 32
    assert np.array_equal(la[~holes], (lr + 1)[~holes])


def test_reseed_makes_augmentation_reproducible() -> None:
    lr, hr = _nearest_pair(6, 9, 2)
    a = PairAugment(AugmentConfig.for_stage("pretrain"))
    b = PairAugment(AugmentConfig.for_stage("pretrain"))
    a.reseed(7)
    b.reseed(7)
    runs_a = [a(lr, hr) for _ in range(20)]
    runs_b = [b(lr, hr) for _ in range(20)]
    for (la, ha), (lb, hb) in zip(runs_a, runs_b, strict=True):
        assert np.array_equal(la, lb) and np.array_equal(ha, hb)
    b.reseed(8)
    runs_c = [b(lr, hr) for _ in range(20)]
    assert any(not np.array_equal(x[0], y[0]) for x, y in zip(runs_a, runs_c, strict=True))
