"""Datasets on the shared data and on tiny temp folders: items, alignment, caching, seeding, errors."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import ConcatDataset, DataLoader

from esrgan.data import (
    BSDS500,
    DIV2K,
    AugmentConfig,
    Benchmark,
    DatasetError,
    DatasetOptions,
    ImageCache,
    ImageFolder,
    ImagePair,
    PairedFolder,
    SRDataset,
    bsds500_dir,
    default_data_root,
    make_train_dataset,
    make_val_dataset,
)
from esrgan.data.imresize import degrade
from esrgan.data.transforms import from_tensor

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"
needs_shared = pytest.mark.skipif(not (SHARED / "BSDS500").is_dir(), reason="../shared/datasets not present")


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Default disk cache goes under $ESRGAN_CACHE: keep it inside the test's temp dir.
    monkeypatch.setenv("ESRGAN_CACHE", str(tmp_path / "cache"))


def _check_item(item: dict, scale: int) -> None:
    lr, hr = item["lr"], item["hr"]
    assert isinstance(item["name"], str) and item["name"]
    assert lr.dtype == torch.float32 and hr.dtype == torch.float32
    assert lr.shape[0] == 3 and hr.shape[0] == 3
    assert hr.shape[1:] == (lr.shape[1] * scale, lr.shape[2] * scale)
    assert float(lr.min()) >= 0.0 and float(lr.max()) <= 1.0
    assert float(hr.min()) >= 0.0 and float(hr.max()) <= 1.0


def _write_png(path: Path, arr: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


def _smooth_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(h // 4 + 1, w // 4 + 1, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(small).resize((w, h), Image.BICUBIC))


@needs_shared
def test_train_dataset_bsds500_shapes_and_stage_augmentation() -> None:
    ds = make_train_dataset(["bsds500"], root=SHARED, scale=4, patch_size=64, stage="pretrain", max_images=3)
    assert len(ds) == 3
    for i in range(3):
        item = ds[i]
        _check_item(item, 4)
        assert item["hr"].shape == (3, 64, 64)
    assert ds.augment == AugmentConfig.for_stage("pretrain")
    gan = make_train_dataset(["bsds500"], root=SHARED, scale=4, patch_size=64, stage="gan", max_images=1)
    assert gan.augment == AugmentConfig.for_stage("gan")


def test_on_the_fly_pairs_stay_aligned_after_augmentation(tmp_path: Path) -> None:
    # Spatial augmentation always on; degrade(HR patch) must reproduce the LR patch away from the patch
    # border (the bicubic support reaches 2 LR pixels), and a one-pixel misalignment must not.
    _write_png(tmp_path / "f" / "a.png", _smooth_image(120, 150))
    _write_png(tmp_path / "f" / "b.png", _smooth_image(150, 120, seed=1))
    augment = AugmentConfig(spatial_p=1.0, flip_weight=0.5, transpose_weight=0.5)
    ds = make_train_dataset(
        [str(tmp_path / "f")], root=tmp_path, scale=4, patch_size=96, stage="gan", augment=augment
    )
    torch.manual_seed(0)
    for _ in range(6):
        for i in range(len(ds)):
            item = ds[i]
            re = degrade(item["hr"].double(), 4).float()
            lr = item["lr"]
            err = (re[:, 3:-3, 3:-3] - lr[:, 3:-3, 3:-3]).abs().mean().item()
            shifted_y = (re[:, 3:-3, 3:-3] - lr[:, 4:-2, 3:-3]).abs().mean().item()
            shifted_x = (re[:, 3:-3, 3:-3] - lr[:, 3:-3, 4:-2]).abs().mean().item()
            assert err < 0.5 / 255, err
            assert min(shifted_x, shifted_y) > 5 / 255


@needs_shared
def test_val_dataset_full_images_and_crops() -> None:
    full = make_val_dataset(["set5", "set14"], root=SHARED, scale=4)
    assert isinstance(full, ConcatDataset) and len(full) == 5 + 14
    for i in (0, 5 + 2):  # Set14 img_003 is grayscale
        item = full[i]
        _check_item(item, 4)
        assert item["hr"].shape[1] % 4 == 0 and item["hr"].shape[2] % 4 == 0
    # Protocol LR: MATLAB-bicubic of the HR, not the distributed LR file.
    first = full[0]
    assert torch.equal(first["lr"], degrade(first["hr"].double(), 4).float())
    cropped = make_val_dataset(["bsds500"], root=SHARED, scale=4, crop=128, max_images=2)
    assert len(cropped) == 2
    assert cropped[0]["hr"].shape == (3, 128, 128) and cropped[0]["lr"].shape == (3, 32, 32)
    # Centre crop of the full image.
    whole = make_val_dataset(["bsds500"], root=SHARED, scale=4, max_images=1)[0]["hr"]
    h, w = whole.shape[1:]
    top, left = ((h // 4 - 32) // 2) * 4, ((w // 4 - 32) // 2) * 4
    assert torch.equal(cropped[0]["hr"], whole[:, top : top + 128, left : left + 128])


@needs_shared
def test_benchmark_given_lr_is_close_to_protocol_lr() -> None:
    given = Benchmark(SHARED, name="set14", scale=4, lr="given")
    protocol = Benchmark(SHARED, name="set14", scale=4)
    assert len(given) == len(protocol) == 14
    for i in (0, 2):  # index 2 is the grayscale image
        a, b = given[i], protocol[i]
        _check_item(a, 4)
        assert torch.equal(a["hr"], b["hr"])
        assert (a["lr"] - b["lr"]).abs().mean().item() < 1.0 / 255


def test_folder_source_odd_sizes_grayscale_and_concat(tmp_path: Path) -> None:
    folder = tmp_path / "mine"
    _write_png(folder / "a.png", _smooth_image(37, 50))
    Image.fromarray(_smooth_image(30, 29)[:, :, 0]).save(folder / "b.png")  # grayscale, odd size
    (folder / "notes.txt").write_text("not an image")
    val = make_val_dataset([str(folder)], root=tmp_path, scale=3)
    assert len(val) == 2
    a, b = val[0], val[1]
    assert a["name"] == "a" and a["hr"].shape == (3, 36, 48) and a["lr"].shape == (3, 12, 16)
    assert b["hr"].shape == (3, 30, 27)
    assert torch.equal(b["hr"][0], b["hr"][1])
    train = make_train_dataset(
        [str(folder), str(folder)], root=tmp_path, scale=3, patch_size=24, stage="gan", cache=False
    )
    assert isinstance(train, ConcatDataset) and len(train) == 4
    _check_item(train[3], 3)


def test_paired_folder_matches_by_stem(tmp_path: Path) -> None:
    hr = _smooth_image(32, 24)
    lr = hr[::4, ::4].copy()
    _write_png(tmp_path / "hr" / "0001.png", hr)
    _write_png(tmp_path / "lr" / "0001x4.png", lr)
    _write_png(tmp_path / "hr" / "img_HR.png", hr)
    _write_png(tmp_path / "lr" / "img_LR.png", lr)
    ds = PairedFolder(tmp_path / "hr", tmp_path / "lr", scale=4)
    assert [p.lr.name for p in ds.pairs] == ["0001x4.png", "img_LR.png"]
    item = ds[0]
    assert np.array_equal(from_tensor(item["lr"]), lr) and np.array_equal(from_tensor(item["hr"]), hr)
    _write_png(tmp_path / "hr" / "0002.png", hr)
    with pytest.raises(DatasetError, match=r"0002\.png: no matching LR"):
        PairedFolder(tmp_path / "hr", tmp_path / "lr", scale=4)
    _write_png(tmp_path / "lr" / "0002x4.png", lr[:-1])
    with pytest.raises(DatasetError, match=r"0002x4\.png: LR .* does not match HR"):
        PairedFolder(tmp_path / "hr", tmp_path / "lr", scale=4)[1]


def test_div2k_local_layout_uses_official_lr(tmp_path: Path) -> None:
    base = tmp_path / "DIV2K"
    for i in (1, 2):
        hr = _smooth_image(48, 40, seed=i)
        _write_png(base / "DIV2K_train_HR" / f"{i:04d}.png", hr)
        _write_png(base / "DIV2K_train_LR_bicubic" / "X4" / f"{i:04d}x4.png", hr[1::4, 2::4].copy())
    ds = DIV2K(tmp_path, split="train", scale=4, options=DatasetOptions(mode="train", patch_size=16))
    assert len(ds) == 2 and [p.name for p in ds.pairs] == ["0001", "0002"]
    _check_item(ds[1], 4)
    val = DIV2K(tmp_path, split="train", scale=4)
    assert np.array_equal(from_tensor(val[0]["lr"]), _smooth_image(48, 40, seed=1)[1::4, 2::4])
    on_the_fly = DIV2K(tmp_path, split="train", scale=4, track=None)
    assert not torch.equal(on_the_fly[0]["lr"], val[0]["lr"])


def test_missing_and_empty_folders_are_named(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"DIV2K_train_HR.*download_div2k.*data\.download=true"):
        make_train_dataset(["div2k"], root=tmp_path, scale=4, patch_size=64, stage="pretrain")
    with pytest.raises(DatasetError, match=r"DIV2K_valid_HR"):
        make_val_dataset(["div2k"], root=tmp_path, scale=4)
    with pytest.raises(DatasetError, match=r"BSDS500/train.*not found.*download_bsds500"):
        make_train_dataset(["bsds500"], root=tmp_path, scale=4, patch_size=64, stage="pretrain")
    with pytest.raises(DatasetError, match=r"BSDS500/test.*not found"):
        make_train_dataset(["bsds500-test"], root=tmp_path, scale=4, patch_size=64, stage="pretrain")
    assert not list(tmp_path.iterdir())  # constructors only read: nothing was fetched or created
    with pytest.raises(DatasetError, match=r"Set5.*(not found|does not exist)"):
        make_val_dataset(["set5"], root=tmp_path, scale=4)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match=r"empty: no images"):
        make_val_dataset([str(tmp_path / "empty")], root=tmp_path, scale=4)
    with pytest.raises(DatasetError, match=r"nowhere: not a dataset name"):
        make_val_dataset([str(tmp_path / "nowhere")], root=tmp_path, scale=4)


def test_argument_validation(tmp_path: Path) -> None:
    _write_png(tmp_path / "f" / "a.png", _smooth_image(16, 16))
    src = [str(tmp_path / "f")]
    with pytest.raises(ValueError, match="multiple of scale"):
        make_train_dataset(src, root=tmp_path, scale=4, patch_size=30, stage="gan")
    with pytest.raises(ValueError, match="stage"):
        make_train_dataset(src, root=tmp_path, scale=4, patch_size=32, stage="warmup")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="scale"):
        make_val_dataset(src, root=tmp_path, scale=0)
    with pytest.raises(ValueError, match="sources"):
        make_val_dataset([], root=tmp_path, scale=4)
    with pytest.raises(ValueError, match="crop"):
        make_val_dataset(src, root=tmp_path, scale=4, crop=10)
    with pytest.raises(ValueError, match="max_images"):
        make_val_dataset(src, root=tmp_path, scale=4, max_images=0)
    with pytest.raises(DatasetError, match="smaller than the 64 patch"):
        make_train_dataset(src, root=tmp_path, scale=4, patch_size=64, stage="gan")[0]
    with pytest.raises(TypeError):
        ImageFolder(tmp_path / "f", 4)  # type: ignore[misc]  # keyword-only
    with pytest.raises(TypeError):
        DatasetOptions("train", 32)  # type: ignore[misc]  # keyword-only
    with pytest.raises(ValueError, match="needs a patch_size"):
        DatasetOptions(mode="train")
    with pytest.raises(ValueError, match="not augmented"):
        DatasetOptions(augment=AugmentConfig.for_stage("gan"))
    with pytest.raises(ValueError, match="multiple of scale 4"):
        ImageFolder(tmp_path / "f", scale=4, options=DatasetOptions(patch_size=6))


def test_disk_cache_is_reused_and_keyed_by_content(tmp_path: Path) -> None:
    img = _write_png(tmp_path / "f" / "a.png", _smooth_image(40, 40))
    cache_dir = tmp_path / "npy"
    first = ImageFolder(tmp_path / "f", scale=4, options=DatasetOptions(cache=ImageCache(disk_dir=cache_dir)))
    item = first[0]
    assert len(list(cache_dir.rglob("*.npy"))) == 2  # decoded HR + its on-the-fly LR
    second_cache = ImageCache(disk_dir=cache_dir)
    second = ImageFolder(tmp_path / "f", scale=4, options=DatasetOptions(cache=second_cache))
    again = second[0]
    assert torch.equal(item["lr"], again["lr"]) and torch.equal(item["hr"], again["hr"])
    assert isinstance(second_cache.image(img), np.memmap)  # served from disk, not decoded again
    assert second_cache.misses == 2 and second_cache.hits == 1
    # A changed source gets new entries, never the stale decoded image.
    _write_png(img, 255 - _smooth_image(40, 40))
    os.utime(img, ns=(1, 1))
    third = ImageFolder(tmp_path / "f", scale=4, options=DatasetOptions(cache=ImageCache(disk_dir=cache_dir)))
    assert torch.allclose(third[0]["hr"], 1 - item["hr"])
    assert len(list(cache_dir.rglob("*.npy"))) == 4


def test_disk_cache_never_writes_into_a_read_only_folder(tmp_path: Path) -> None:
    # A dataset mounted without write bits (as shared data folders are) is refused even for root, who
    # could write there anyway; nothing is written, and the error names the folder.
    _write_png(tmp_path / "data" / "a.png", _smooth_image(16, 16))
    (tmp_path / "data").chmod(0o555)
    try:
        ds = ImageFolder(
            tmp_path / "data",
            scale=2,
            options=DatasetOptions(cache=ImageCache(disk_dir=tmp_path / "data" / "c")),
        )
        with pytest.raises(ValueError, match=r"data/c: the image cache folder is read-only"):
            ds[0]
        assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["a.png"]
    finally:
        (tmp_path / "data").chmod(0o755)
    ImageCache(disk_dir=tmp_path / "data" / "c").image(tmp_path / "data" / "a.png")  # writable again
    assert len(list((tmp_path / "data" / "c").rglob("*.npy"))) == 1


def test_memory_cache_decodes_once(tmp_path: Path) -> None:
    _write_png(tmp_path / "f" / "a.png", _smooth_image(24, 24))
    cache = ImageCache()
    ds = ImageFolder(tmp_path / "f", scale=2, options=DatasetOptions(mode="train", patch_size=8, cache=cache))
    for _ in range(5):
        ds[0]
    assert cache.misses == 2 and cache.hits == 8
    assert cache.image(tmp_path / "f" / "a.png").flags.writeable is False


def test_crops_follow_torch_seed_and_differ_between_workers(tmp_path: Path) -> None:
    img = _write_png(tmp_path / "f" / "a.png", _smooth_image(64, 64))
    pairs = [ImagePair(f"copy{i}", img) for i in range(8)]
    options = DatasetOptions(mode="train", patch_size=8, augment=AugmentConfig.for_stage("gan"))
    ds = SRDataset(pairs, scale=2, options=options)

    def draw() -> list[torch.Tensor]:
        return [ds[i]["hr"] for i in range(len(ds))]

    torch.manual_seed(3)
    a = draw()
    torch.manual_seed(3)
    b = draw()
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert len({tuple(x.flatten().tolist()) for x in a}) > 1
    loader = DataLoader(ds, batch_size=1, num_workers=2, shuffle=False)
    torch.manual_seed(3)
    batches = [batch["hr"][0] for batch in loader]
    # Items 0 and 1 come from different workers; identical streams would give identical crops.
    firsts = {tuple(batches[0].flatten().tolist()), tuple(batches[1].flatten().tolist())}
    assert len(firsts) == 2


def test_one_reader_for_cache_benchmarks_and_inference(tmp_path: Path) -> None:
    from esrgan.data.benchmarks import load_rgb
    from esrgan.data.cache import load_image
    from esrgan.io import read_image
    from esrgan.io.png16 import encode_png16

    rng = np.random.default_rng(0)
    rgba = rng.integers(0, 256, size=(5, 7, 4), dtype=np.uint8)
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    Image.fromarray(rgba[..., 0]).save(tmp_path / "grey.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    Image.fromarray(rgba[..., :3]).save(tmp_path / "turned.jpg", exif=exif.tobytes(), quality=100)
    deep = rng.integers(0, 65536, size=(4, 6, 3), dtype=np.uint16)
    (tmp_path / "deep.png").write_bytes(encode_png16(deep))
    for name in ("rgba.png", "grey.png", "turned.jpg", "deep.png"):
        path = tmp_path / name
        pixels = read_image(path).pixels.expand(3, -1, -1)
        torch.testing.assert_close(load_rgb(path), pixels, rtol=0, atol=0)
        expected = pixels.mul(255).round().to(torch.uint8).permute(1, 2, 0).numpy()
        np.testing.assert_array_equal(load_image(path), expected)
    assert load_image(tmp_path / "turned.jpg").shape == (7, 5, 3)
    np.testing.assert_array_equal(load_image(tmp_path / "deep.png"), np.round(deep / 257).astype(np.uint8))


def test_bsds500_found_in_either_layout_and_any_case(tmp_path: Path) -> None:
    from esrgan.data.benchmarks import find_benchmark

    _write_png(tmp_path / "BSR" / "BSDS500" / "data" / "images" / "test" / "1.png", _smooth_image(24, 16))
    _write_png(tmp_path / "bsds500" / "val" / "2.png", _smooth_image(24, 16))
    assert bsds500_dir(tmp_path, "test") == tmp_path / "BSR" / "BSDS500" / "data" / "images" / "test"
    assert bsds500_dir(tmp_path, "train") is None
    with pytest.raises(ValueError, match="split"):
        bsds500_dir(tmp_path, "valid")
    assert [p.name for p in BSDS500(tmp_path, split="test").pairs] == ["1"]
    assert [p.name for p in BSDS500(tmp_path, split="val").pairs] == ["2"]
    assert [p.name for p in find_benchmark(tmp_path, "bsd100", 4)] == ["2"]


def test_default_data_root_is_the_users_data_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ESRGAN_DATA", str(tmp_path / "mine"))
    assert default_data_root() == tmp_path / "mine"
    monkeypatch.delenv("ESRGAN_DATA")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    if os.name == "posix" and not sys.platform.startswith("darwin"):
        assert default_data_root() == tmp_path / "xdg" / "esrgan" / "datasets"
    assert default_data_root().is_absolute()


@needs_shared
def test_download_true_fetches_nothing_that_is_already_there() -> None:
    # No network here: this passes only because the present test split is found and nothing is fetched.
    ds = make_train_dataset(
        ["bsds500-test"], root=SHARED, scale=4, patch_size=32, stage="gan", download=True, max_images=2
    )
    assert ds.source == "bsds500-test" and len(ds) == 2
    _check_item(ds[0], 4)
