"""Real-ESRGAN degradation model: each step checked by measurement, determinism, config errors."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from esrgan.data.degradation_config import (
    BlurConfig,
    DegradationConfig,
    DegradationConfigError,
    JPEGConfig,
    NoiseConfig,
    OrderConfig,
    ResizeConfig,
)
from esrgan.data.degradations import RealESRGANDegradation, filter2d, poisson_noise
from esrgan.data.kernels import bivariate_kernel, kernel_spread


def _photo(shared_dir: Path, size: int = 128) -> np.ndarray:
    path = sorted((shared_dir / "datasets" / "BSDS500" / "train").iterdir())[0]
    with Image.open(path) as im:
        return np.ascontiguousarray(np.asarray(im.convert("RGB"))[:size, :size])


def _blockiness(img: np.ndarray) -> float:
    """Mean jump across 8-px block borders over the mean jump elsewhere (1: no blocking)."""
    g = img.astype(np.float64).mean(axis=2)
    dx = np.abs(np.diff(g, axis=1))
    border = dx[:, 7::8].mean()
    inside = np.delete(dx, np.s_[7::8], axis=1).mean()
    return float(border / inside)


# --- kernels ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", ["gaussian", "generalized", "plateau"])
def test_kernels_sum_to_one_and_are_centred(shape: str) -> None:
    k = bivariate_kernel(15, sigma_x=2.0, sigma_y=1.0, theta=0.7, beta=1.5, shape=shape)  # type: ignore[arg-type]
    assert k.dtype == np.float32 and k.shape == (15, 15)
    assert abs(float(k.sum()) - 1.0) < 1e-5
    ax = np.arange(-7, 8)
    assert abs(float((k.sum(axis=0) * ax).sum())) < 1e-4  # centroid at the centre
    assert abs(float((k.sum(axis=1) * ax).sum())) < 1e-4


def test_gaussian_kernel_has_the_requested_spread_and_orientation() -> None:
    theta = math.radians(30)
    k = bivariate_kernel(41, sigma_x=3.0, sigma_y=1.0, theta=theta)
    major, minor, angle = kernel_spread(k)
    assert major == pytest.approx(3.0, rel=0.02)
    assert minor == pytest.approx(1.0, rel=0.02)
    assert angle == pytest.approx(theta, abs=0.01)


def test_plateau_kernel_has_a_flatter_top_and_heavier_tails_than_a_gaussian() -> None:
    gauss = bivariate_kernel(21, sigma_x=2.0, sigma_y=2.0)
    plateau = bivariate_kernel(21, sigma_x=2.0, sigma_y=2.0, beta=2.0, shape="plateau")

    def rel(k: np.ndarray, dx: int) -> float:
        return float(k[10, 10 + dx] / k[10, 10])

    assert rel(plateau, 1) > rel(gauss, 1)  # half a sigma out: closer to the peak
    assert rel(plateau, 8) > 5 * rel(gauss, 8)  # four sigmas out: far more weight


def test_kernel_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="odd"):
        bivariate_kernel(8, sigma_x=1.0, sigma_y=1.0)
    with pytest.raises(ValueError, match="sigma"):
        bivariate_kernel(7, sigma_x=-1.0, sigma_y=1.0)


def test_albumentations_anisotropic_kernels_follow_the_sigma_range() -> None:
    cfg = BlurConfig(
        kernel_size=(41, 41), sigma=(1.0, 3.0), sinc_prob=0.0,
        kernel_types={"aniso": 1.0, "iso": 0.0, "generalized_iso": 0.0, "generalized_aniso": 0.0,
                      "plateau_iso": 0.0, "plateau_aniso": 0.0},
    )  # fmt: skip
    from esrgan.data.degradations import _Kernels

    kernels = _Kernels(cfg)
    angles = []
    for seed in range(40):
        kind, k = kernels.draw(np.random.default_rng(seed))
        assert kind == "aniso"
        assert abs(float(k.sum()) - 1.0) < 1e-5
        major, minor, angle = kernel_spread(k)
        assert 0.95 <= minor <= major <= 3.05
        angles.append(angle)
    assert np.ptp(angles) > 2.0  # rotations spread over the half turn


def test_blur_convolves_with_the_kernel_orientation_kept() -> None:
    img = np.zeros((41, 41, 3), np.float32)
    img[20, 20] = 1.0
    k = bivariate_kernel(11, sigma_x=2.5, sigma_y=0.7, theta=math.radians(60))
    out = filter2d(img, k)
    # An impulse comes out as the kernel itself (a convolution, not a correlation).
    np.testing.assert_allclose(out[15:26, 15:26, 0], k, atol=1e-6)


def test_kernel_type_frequencies_follow_the_probabilities() -> None:
    from esrgan.data.degradations import _Kernels

    kernels = _Kernels(BlurConfig())
    rng = np.random.default_rng(0)
    n = 4000
    kinds = [kernels.draw(rng)[0] for _ in range(n)]
    assert kinds.count("sinc") / n == pytest.approx(0.1, abs=0.02)
    gaussian_family = n - kinds.count("sinc")
    assert kinds.count("iso") / gaussian_family == pytest.approx(0.45, abs=0.03)
    assert kinds.count("aniso") / gaussian_family == pytest.approx(0.25, abs=0.03)
    assert kinds.count("plateau_iso") / gaussian_family == pytest.approx(0.12, abs=0.02)


# --- noise, JPEG, resize ---------------------------------------------------------------------------


def _noise_only(order_noise: NoiseConfig) -> RealESRGANDegradation:
    return RealESRGANDegradation(config=DegradationConfig(first=OrderConfig(noise=order_noise)), scale=1)


@pytest.mark.parametrize("sigma", [5.0, 20.0])
@pytest.mark.parametrize("gray", [False, True])
def test_gaussian_noise_has_the_requested_sigma(sigma: float, gray: bool) -> None:
    deg = _noise_only(NoiseConfig(gaussian_prob=1.0, sigma=(sigma, sigma), gray_prob=1.0 if gray else 0.0))
    flat = np.full((128, 128, 3), 0.5, np.float32)
    out = deg._noise(flat, 0, deg.config.first.noise, np.random.default_rng(1))
    noise = (out - flat) * 255.0
    assert float(noise.std()) == pytest.approx(sigma, rel=0.05)
    same = np.allclose(noise[..., 0], noise[..., 1]) and np.allclose(noise[..., 1], noise[..., 2])
    assert same == gray


def test_poisson_noise_grows_with_brightness_and_scale() -> None:
    rng = np.random.default_rng(0)
    dark = np.full((128, 128, 3), 0.1, np.float32)
    bright = np.full((128, 128, 3), 0.8, np.float32)
    s_dark = float((poisson_noise(dark, 1.0, gray=False, rng=rng) - dark).std())
    s_bright = float((poisson_noise(bright, 1.0, gray=False, rng=rng) - bright).std())
    s_bright2 = float((poisson_noise(bright, 2.0, gray=False, rng=rng) - bright).std())
    # Shot noise of x in [0, 1] at 2 levels (a flat image): std sqrt(x / 2) times the scale.
    assert s_dark == pytest.approx(math.sqrt(0.1 / 2), rel=0.1)
    assert s_bright == pytest.approx(math.sqrt(0.8 / 2), rel=0.1)
    assert s_bright2 == pytest.approx(2 * s_bright, rel=0.1)


def test_lower_jpeg_quality_gives_stronger_blocking(shared_dir: Path) -> None:
    hr = _photo(shared_dir, 256)
    from esrgan.data.degradations import _jpeg

    def blocky(q: int) -> float:
        deg = RealESRGANDegradation(
            config=DegradationConfig(first=OrderConfig(jpeg=JPEGConfig(quality=(q, q)))), scale=1
        )
        out = _jpeg(hr.astype(np.float32) / 255.0, deg._jpeg[0], np.random.default_rng(0))
        return _blockiness(np.round(out * 255.0))

    b95, b60, b30 = blocky(95), blocky(60), blocky(30)
    assert b30 > b60 > b95
    assert b30 > 1.15


def test_random_resize_follows_its_ranges() -> None:
    from esrgan.data.degradations import _random_resize

    cfg = ResizeConfig(probs=(0.0, 1.0, 0.0), down=(0.5, 0.5))
    out = _random_resize(np.zeros((100, 60, 3), np.float32), cfg, (100, 60), np.random.default_rng(0))
    assert out.shape == (50, 30, 3)
    up = ResizeConfig(probs=(1.0, 0.0, 0.0), up=(1.2, 1.5))
    sizes = {
        _random_resize(np.zeros((100, 100, 3), np.float32), up, (100, 100), np.random.default_rng(s)).shape[0]
        for s in range(20)
    }
    assert min(sizes) >= 120 and max(sizes) <= 150 and len(sizes) > 5


# --- the whole pipeline ----------------------------------------------------------------------------


def test_pipeline_gives_an_lr_of_the_scale_and_is_deterministic(shared_dir: Path) -> None:
    hr = _photo(shared_dir)
    deg = RealESRGANDegradation(config=DegradationConfig(), scale=4)
    a = deg(hr, np.random.default_rng(123))
    b = deg(hr, np.random.default_rng(123))
    c = deg(hr, np.random.default_rng(124))
    assert a.shape == (32, 32, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert "blur1" in repr(deg) and "jpeg2" in repr(deg)


def test_pipeline_degrades_more_than_bicubic(shared_dir: Path) -> None:
    """Averaged over draws, the LR is further from the clean bicubic LR than a mild JPEG would be."""
    hr = _photo(shared_dir)
    clean = np.asarray(Image.fromarray(hr).resize((32, 32), Image.Resampling.BICUBIC)).astype(np.float64)
    deg = RealESRGANDegradation(config=DegradationConfig(), scale=4)
    errors = [np.abs(deg(hr, np.random.default_rng(s)).astype(np.float64) - clean).mean() for s in range(20)]
    assert np.mean(errors) > 5.0  # levels of 255
    assert min(errors) < max(errors) / 2  # strengths vary between draws


def test_usm_sharpening_adds_contrast_at_edges() -> None:
    img = np.zeros((64, 64, 3), np.uint8)
    img[:, 32:] = 200
    img[:, :32] = 50
    deg = RealESRGANDegradation(config=DegradationConfig(), scale=4)
    sharp = deg.sharpen(img)
    assert sharp.dtype == np.uint8 and sharp.shape == img.shape
    assert sharp[32, 33, 0] > 200 and sharp[32, 30, 0] < 50  # overshoot on both sides of the edge
    assert sharp[32, 5, 0] == 50  # flat areas are left alone


# --- configuration ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("degradation.first.jpeg.quality=[0, 200]", "degradation.first.jpeg.quality"),
        ("degradation.second.noise.sigma=[-1, 5]", "degradation.second.noise.sigma"),
        ("degradation.first.blur.sigma=[-0.5, 2]", "degradation.first.blur.sigma"),
        ("degradation.first.resize.probs=[0.5, 0.5, 0.5]", "sum to 1"),
        ("degradation.first.blur.kernel_types={iso: 0.5, aniso: 0.2}", "degradation.first.blur.kernel_types"),
        ("degradation.first.blur.kernel_size=[8, 21]", "odd"),
        ("degradation.final_sinc_prob=1.5", "degradation.final_sinc_prob"),
        ("degradation.first.blur.kernel_types={iso: 1.0, box: 0.0}", "kernel_types.box"),
        ("data.degradation=gaussian", "data.degradation"),
    ],
)
def test_out_of_range_settings_are_one_line_errors_naming_the_key(override: str, message: str) -> None:
    from esrgan.training.config_io import ConfigError, load_config

    with pytest.raises(ConfigError, match=message.replace("[", r"\[")) as info:
        load_config(None, [override])
    assert "\n" not in str(info.value)


def test_defaults_are_real_esrgans() -> None:
    cfg = DegradationConfig()
    assert cfg.first.blur.kernel_types == {
        "iso": 0.45, "aniso": 0.25, "generalized_iso": 0.12, "generalized_aniso": 0.03,
        "plateau_iso": 0.12, "plateau_aniso": 0.03,
    }  # fmt: skip
    assert cfg.first.blur.sinc_prob == 0.1 and cfg.second.blur.prob == 0.8
    assert cfg.second.blur.sigma == (0.2, 1.5)
    assert cfg.first.resize.probs == (0.2, 0.7, 0.1) and cfg.first.resize.down == (0.15, 1.0)
    assert cfg.second.resize.probs == (0.3, 0.4, 0.3) and cfg.second.resize.down == (0.3, 1.0)
    assert cfg.first.noise.sigma == (1.0, 30.0) and cfg.second.noise.sigma == (1.0, 25.0)
    assert cfg.first.noise.poisson_scale == (0.05, 3.0) and cfg.second.noise.poisson_scale == (0.05, 2.5)
    assert cfg.first.noise.gray_prob == 0.4 and cfg.first.jpeg.quality == (30, 95)
    assert cfg.final_sinc_prob == 0.8
    with pytest.raises(DegradationConfigError, match=r"^quality"):
        JPEGConfig(quality=(10, 101))


# --- datasets --------------------------------------------------------------------------------------


def _train_set(shared_dir: Path, **kw: object) -> torch.utils.data.Dataset:  # type: ignore[type-arg]
    from esrgan.data import make_train_dataset

    return make_train_dataset(
        [str(shared_dir / "datasets" / "BSDS500" / "train")], scale=4, patch_size=64, stage="pretrain",
        cache=False, max_images=4, degradation=DegradationConfig(**kw),  # type: ignore[arg-type]
    )  # fmt: skip


def test_training_items_are_degraded_patches_replayable_from_their_seed(shared_dir: Path) -> None:
    from esrgan.training.sampling import SeededItems

    items = SeededItems(_train_set(shared_dir))
    a, b, c = items[(1, 77)], items[(1, 77)], items[(1, 78)]
    assert a["lr"].shape == (3, 16, 16) and a["hr"].shape == (3, 64, 64)
    assert torch.equal(a["lr"], b["lr"]) and torch.equal(a["hr"], b["hr"])
    assert not torch.equal(a["lr"], c["lr"])
    assert "hr_usm" not in a


def test_usm_hr_items_carry_the_sharpened_target(shared_dir: Path) -> None:
    from esrgan.training.sampling import SeededItems

    item = SeededItems(_train_set(shared_dir, usm_hr=True))[(0, 5)]
    assert item["hr_usm"].shape == item["hr"].shape
    assert not torch.equal(item["hr_usm"], item["hr"])


def test_the_same_batches_come_back_after_a_resume_with_workers(shared_dir: Path) -> None:
    """Iterations 3-4 from a loader started at 0 equal those of a loader started at 3 (two workers)."""
    from torch.utils.data import DataLoader

    from esrgan.training.sampling import IterationBatchSampler, SeededItems

    ds = SeededItems(_train_set(shared_dir))

    def batches(start: int, count: int) -> list[torch.Tensor]:
        sampler = IterationBatchSampler(num_items=4, batch_size=2, seed=0, stage="pretrain", start_iter=start)
        loader = DataLoader(ds, batch_sampler=sampler, num_workers=2)
        out = []
        for i, batch in enumerate(loader):
            out.append(batch["lr"])
            if i + 1 == count:
                break
        return out

    full = batches(0, 5)
    resumed = batches(3, 2)
    assert torch.equal(full[3], resumed[0]) and torch.equal(full[4], resumed[1])


def test_validation_sets_refuse_a_degradation(shared_dir: Path) -> None:
    from esrgan.data import DatasetOptions

    with pytest.raises(ValueError, match="training datasets only"):
        DatasetOptions(mode="val", degradation=DegradationConfig())


def test_the_blockiness_measure_reads_one_without_an_8px_grid() -> None:
    rng = np.random.default_rng(0)
    assert _blockiness(rng.integers(0, 255, (64, 64, 3)).astype(np.uint8)) == pytest.approx(1.0, abs=0.1)


def test_clean_prob_one_gives_the_protocols_bicubic_lr(shared_dir: Path) -> None:
    from esrgan.data.imresize import degrade

    hr = _photo(shared_dir, 64)
    deg = RealESRGANDegradation(config=DegradationConfig(clean_prob=1.0), scale=4)
    lr = deg(hr, np.random.default_rng(0))
    x = torch.from_numpy(hr).permute(2, 0, 1).double() / 255
    want = degrade(x, 4).clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(lr, want)
    some = RealESRGANDegradation(config=DegradationConfig(clean_prob=0.5), scale=4)
    clean = sum(np.array_equal(some(hr, np.random.default_rng(i)), want) for i in range(40))
    assert 10 <= clean <= 30
