"""The real-photo test set `bsds100-real` and `esrgan degrade`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from esrgan.data.realphoto import (
    BLUR_SIGMAS,
    JPEG_QUALITIES,
    NOISE_SIGMAS,
    degrade_real_photo,
    real_photo_dir,
    recipe_of,
)


def _hr(shared_dir: Path) -> np.ndarray:
    path = sorted((shared_dir / "datasets" / "BSDS500" / "val").iterdir())[0]
    with Image.open(path) as im:
        return np.ascontiguousarray(np.asarray(im.convert("RGB"))[:160, :200])


def test_recipe_is_fixed_per_image_and_mixes_all_strengths() -> None:
    recipes = [recipe_of(i) for i in range(100)]
    assert recipes == [recipe_of(i) for i in range(100)]
    assert {r.blur_sigma for r in recipes} == set(BLUR_SIGMAS)
    assert {r.noise_sigma for r in recipes} == set(NOISE_SIGMAS)
    assert {r.jpeg_quality for r in recipes} == set(JPEG_QUALITIES)
    assert 20 < sum(r.gray_noise for r in recipes) < 80


def test_real_photo_lr_is_deterministic_and_noisier_than_bicubic(shared_dir: Path) -> None:
    hr = _hr(shared_dir)
    a = degrade_real_photo(hr, index=3, scale=4)
    b = degrade_real_photo(hr, index=3, scale=4)
    assert a.shape == (40, 50, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    clean = np.asarray(Image.fromarray(hr).resize((50, 40), Image.Resampling.BICUBIC)).astype(np.float64)
    noisy_index = next(i for i in range(100) if recipe_of(i).noise_sigma == 12.0)
    err = np.abs(degrade_real_photo(hr, index=noisy_index, scale=4) - clean).mean()
    assert err > 4.0


def test_bsds100_real_writes_its_lr_files_once_and_esrgan_test_uses_them(
    shared_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from esrgan.data.benchmarks import find_benchmark
    from esrgan.evaluation.runner import load_sample_inputs

    monkeypatch.setenv("ESRGAN_CACHE", str(tmp_path / "cache"))
    pairs = find_benchmark(shared_dir / "datasets", "bsds100-real", 4)
    assert len(pairs) == 100 and all(p.degraded_lr and p.lr_path is not None for p in pairs)
    assert pairs[0].lr_path is not None and pairs[0].lr_path.parent == real_photo_dir(4)
    stamp = pairs[0].lr_path.stat().st_mtime_ns
    again = find_benchmark(shared_dir / "datasets", "bsds100-real", 4)
    assert again[0].lr_path is not None and again[0].lr_path.stat().st_mtime_ns == stamp
    # --lr-source degrade (the default) still reads the degraded LR of this set, not a bicubic one.
    hr, lr = load_sample_inputs(pairs[0], 4, "degrade")
    with Image.open(pairs[0].lr_path) as im:
        given = np.asarray(im)
    np.testing.assert_array_equal(np.round(lr[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8), given)
    assert hr.shape[-1] == lr.shape[-1] * 4


def test_bsds100_real_is_a_validation_source(
    shared_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from esrgan.data import make_val_dataset

    monkeypatch.setenv("ESRGAN_CACHE", str(tmp_path / "cache"))
    ds = make_val_dataset(
        ["bsds100-real"], root=shared_dir / "datasets", scale=4, crop=64, max_images=3, cache=False
    )
    item = ds[0]
    assert item["lr"].shape == (3, 16, 16) and item["hr"].shape == (3, 64, 64)  # type: ignore[union-attr]


def test_esrgan_degrade_writes_samples_and_a_sheet_and_names_bad_inputs(
    shared_dir: Path, tmp_path: Path
) -> None:
    from esrgan.cli import app

    good = tmp_path / "photo.png"
    Image.fromarray(_hr(shared_dir)).save(good)
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app, ["degrade", str(good), str(bad), "--out-dir", str(out), "-n", "3", "--seed", "5"]
    )
    assert result.exit_code == 1  # one input failed, the other was written
    assert "notes.png" in result.output
    files = sorted(p.name for p in out.iterdir())
    assert files == ["contact_sheet.png", "photo_deg00.png", "photo_deg01.png", "photo_deg02.png"]
    with Image.open(out / "photo_deg00.png") as im:
        assert im.size == (50, 40)  # the 200x160 image cropped to at most 256, then x4 down
        first = np.asarray(im)
    with Image.open(out / "contact_sheet.png") as im:
        assert im.width == 4 * 192  # bicubic + 3 samples
    # The same seed writes the same files.
    again = tmp_path / "again"
    CliRunner().invoke(app, ["degrade", str(good), "--out-dir", str(again), "-n", "1", "--seed", "5"])
    with Image.open(again / "photo_deg00.png") as im:
        np.testing.assert_array_equal(np.asarray(im), first)


def test_esrgan_degrade_reports_a_bad_config_in_one_line(tmp_path: Path) -> None:
    from esrgan.cli import app

    cfg = tmp_path / "c.yaml"
    cfg.write_text("degradation:\n  first:\n    jpeg:\n      quality: [0, 200]\n")
    img = tmp_path / "a.png"
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(img)
    result = CliRunner().invoke(
        app, ["degrade", str(img), "--out-dir", str(tmp_path / "o"), "--config", str(cfg)]
    )
    assert result.exit_code == 2
    assert "degradation.first.jpeg.quality" in result.output
    assert "Traceback" not in result.output
