"""Hostile and odd image files: the reader answers every one with pixels or one `ImageError` line.

The seed images and mutators are those of `scripts/fuzz_images.py` (the 1,000-file run), driven here by
hypothesis; a small seeded run of the script itself (reader in a worker process under a timeout, then
`esrgan upscale` over the corpus) runs too.
"""

from __future__ import annotations

import importlib.util
import random
import struct
import subprocess
import sys
import tracemalloc
import zlib
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from esrgan.io import ImageError, read_image, read_rgb
from esrgan.io.png16 import decode_png16

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "fuzz_images.py"


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fuzz_images", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


fuzz = _load_script()
SEEDS: dict[str, bytes] = fuzz.seed_images(np.random.default_rng(0))
# The two seeds that decode 54 MB and 48 MB are read once below, not in every hypothesis example.
SMALL_SEEDS = sorted(name for name in SEEDS if not name.startswith("zeros"))


def _read_both(path: Path) -> str | None:
    """Read with both public readers; None when they succeed, else the (identical) one-line error."""
    errors = []
    for read in (read_image, read_rgb):
        try:
            read(path)
        except ImageError as exc:
            errors.append(str(exc))
    if not errors:
        return None
    assert len(errors) == 2 and errors[0] == errors[1], errors
    assert errors[0].startswith(f"{path}: ") and "\n" not in errors[0], errors[0]
    return errors[0]


@pytest.mark.timeout(300)
@settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(name=st.sampled_from(SMALL_SEEDS), rng=st.randoms(use_true_random=False))
def test_mutated_images_read_or_fail_in_one_line(tmp_path: Path, name: str, rng: random.Random) -> None:
    path = tmp_path / f"mutant.{name.rsplit('.', 1)[1]}"
    path.write_bytes(fuzz.mutate(SEEDS[name], rng))
    _read_both(path)


@pytest.mark.timeout(300)
@settings(max_examples=120, deadline=None, derandomize=True)
@given(
    channels=st.sampled_from([2, 3, 4]),
    height=st.integers(1, 12),
    width=st.integers(1, 12),
    kinds=st.lists(st.integers(0, 4), min_size=1, max_size=6),
    interlace=st.booleans(),
    data=st.data(),
)
def test_png16_decoder_round_trips_every_filter_mix(
    channels: int,
    height: int,
    width: int,
    kinds: list[int],
    interlace: bool,
    data: st.DataObject,
) -> None:
    arr = np.random.default_rng(height * 131 + width).integers(0, 65536, (height, width, channels), np.uint16)
    png = fuzz.png16(arr, kinds, interlace=interlace)
    np.testing.assert_array_equal(decode_png16(png), arr)
    mutant = fuzz.mutate(png, data.draw(st.randoms(use_true_random=False)))
    try:
        decode_png16(mutant, max_pixels=10_000_000)
    except ValueError as exc:
        assert "\n" not in str(exc)


def _png16_header(width: int, height: int, idat: bytes, *, extra: bytes = b"") -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    return (
        fuzz.PNG_SIGNATURE
        + fuzz._png_chunk(b"IHDR", ihdr)
        + extra
        + fuzz._png_chunk(b"IDAT", idat)
        + fuzz._png_chunk(b"IEND", b"")
    )


def test_png16_zlib_bomb_inflates_no_further_than_the_header_says(tmp_path: Path) -> None:
    bomb = SEEDS["bomb16_1x1.png"]  # a 1x1 image whose data inflates to 256 MiB
    assert len(bomb) < 1 << 20
    tracemalloc.start()
    try:
        assert decode_png16(bomb).shape == (1, 1, 3)
        (tmp_path / "bomb.png").write_bytes(bomb)
        assert read_image(tmp_path / "bomb.png").pixels.shape == (3, 1, 1)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20, f"peak {peak / 2**20:.0f} MiB while reading a zlib bomb"


def test_damage_past_the_image_data_is_read_through_as_pillow_does(capfd: pytest.CaptureFixture[str]) -> None:
    # Two mutants of the 1,000-file run: the image's bytes complete, then a damaged chunk (a bad Adler-32
    # check, a bad distance), which Pillow never inflates either.
    arr = (np.arange(18, dtype=np.uint16) * 3001).reshape(2, 3, 3)
    stream = zlib.compress(fuzz.filtered_scanlines(arr, [0]))
    damaged = bytes(b ^ 0xFF for b in stream[-4:])
    png = _png16_header(3, 2, stream[:-4], extra=b"")
    png = png[: -len(fuzz._png_chunk(b"IEND", b""))] + fuzz._png_chunk(b"IDAT", damaged)
    png += fuzz._png_chunk(b"IEND", b"")
    np.testing.assert_array_equal(decode_png16(png), arr)
    assert read_image(png).bit_depth == 16
    assert capfd.readouterr().err == ""


def test_png16_size_is_checked_before_decompressing(tmp_path: Path) -> None:
    # 60000 x 60000 with a few bytes of data: refused from the header, by the reader and the decoder.
    (tmp_path / "huge.png").write_bytes(SEEDS["huge_header.png"])
    assert "above the limit of 100 MP" in (_read_both(tmp_path / "huge.png") or "")
    with pytest.raises(ValueError, match="above the limit"):
        decode_png16(SEEDS["huge_header.png"], max_pixels=100_000_000)


@pytest.mark.parametrize("order", ["small, big", "big, small", "small, data, big"])
def test_a_second_header_cannot_smuggle_another_size(tmp_path: Path, order: str) -> None:
    # The pixel limit reads Pillow's size (the last IHDR before the data); the decoder must not decode a
    # size that was not checked, so a second header is refused whatever the order.
    def ihdr(side: int) -> bytes:
        return fuzz._png_chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 16, 2, 0, 0, 0))

    idat = fuzz._png_chunk(
        b"IDAT", zlib.compress(fuzz.filtered_scanlines(np.zeros((1, 1, 3), np.uint16), [0]))
    )
    small, big = ihdr(1), ihdr(100_000)
    body = {
        "small, big": small + big + idat,
        "big, small": big + small + idat,
        "small, data, big": small + idat + big,
    }
    data = fuzz.PNG_SIGNATURE + body[order] + fuzz._png_chunk(b"IEND", b"")
    with pytest.raises(ValueError, match=r"more than one PNG header|above the limit"):
        decode_png16(data, max_pixels=100_000_000)
    (tmp_path / "twice.png").write_bytes(data)
    error = _read_both(tmp_path / "twice.png") or ""
    assert "more than one PNG header" in error or "above the limit of 100 MP" in error, error


def test_elongated_png16_decodes_with_every_filter() -> None:
    width = 300_000  # 1 x 300000 and 300000 x 1
    for kind in range(5):
        wide = _png16_header(width, 1, zlib.compress(bytes([kind]) + bytes(6 * width)))
        assert decode_png16(wide).shape == (1, width, 3)
    tall = _png16_header(1, width, zlib.compress(b"\x02\x00\x01\x00\x02\x00\x03" * width))
    out = decode_png16(tall)
    assert out.shape == (width, 1, 3) and int(out[-1, 0, 2]) == (3 * width) % 256  # bytes add without carry


EXPECTED = {
    # name: (height, width, channels, alpha, bit depth) of a valid seed, or the error it must give
    "one_by_one.png": (1, 1, 3, False, 8),
    "one_by_n.png": (1, 300, 3, False, 8),
    "n_by_one.png": (300, 1, 1, False, 8),
    "palette_trns.png": (16, 24, 3, True, 8),
    "palette.gif": (16, 24, 3, True, 8),
    "bilevel.png": (16, 24, 1, False, 8),
    "grey_alpha.png": (16, 24, 1, True, 8),
    "grey16.png": (12, 10, 1, False, 16),
    "grey16.tif": (8, 9, 1, False, 16),
    "rgb16_sub.png": (9, 11, 3, False, 16),
    "rgba16_mixed.png": (9, 11, 3, True, 16),
    "ga16_up.png": (7, 5, 1, True, 16),
    "rgb16_interlaced.png": (13, 10, 3, False, 16),
    "rgb16_1x1_interlaced.png": (1, 1, 3, False, 16),
    "rgb16_1xN_paeth.png": (1, 700, 3, False, 16),
    "cmyk.jpg": (16, 24, 3, False, 8),
    "cmyk.tif": (16, 24, 3, False, 8),
    "exif_rotated.jpg": (24, 16, 3, False, 8),  # orientation 6: stored 24 wide, shown 16 wide
    "exif_rotated.png": (24, 16, 3, True, 8),
    "lossless_alpha.webp": (16, 24, 3, True, 8),
    "deflate.tif": (16, 24, 3, True, 8),
    "bomb16_1x1.png": (1, 1, 3, False, 16),
    "zeros16_3000.png": (3000, 3000, 3, False, 16),
    "zeros8_4000.png": (4000, 4000, 3, False, 8),
    "animated.gif": "multi-frame image (3 frames) is not supported",
    "huge_header.png": "60000x60000 = 3600.0 MP is above the limit of 100 MP",
    "huge_header.gif": "is above the limit of 100 MP",
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_odd_but_valid_images(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(SEEDS[name])
    expected = EXPECTED[name]
    if isinstance(expected, str):
        assert expected in (_read_both(path) or "")
        return
    height, width, channels, alpha, depth = expected
    image = read_image(path)
    assert (image.height, image.width, image.pixels.shape[0]) == (height, width, channels)
    assert (image.alpha is not None, image.bit_depth) == (alpha, depth)
    assert read_rgb(path).shape == (height, width, 3)


def test_every_seed_reads_or_fails_cleanly(tmp_path: Path) -> None:
    for name, data in SEEDS.items():
        (tmp_path / name).write_bytes(data)
        _read_both(tmp_path / name)


@pytest.mark.timeout(240)
def test_fuzz_script_sample_has_no_crash_hang_or_stray_output(tmp_path: Path) -> None:
    # The reader in a worker process under a timeout, then `esrgan upscale` over the same corpus.
    res = subprocess.run(
        [sys.executable, str(SCRIPT), "--count", "80", "--seed", "11", "--keep", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=230,
    )
    summary = res.stdout.strip().splitlines()[-1]
    assert res.returncode == 0, res.stdout + res.stderr
    assert summary.startswith("fuzz_images: files 80, ok ")
    assert ", crashes 0, hangs 0, " in summary and ", 0 problems" in summary, summary
    outputs = list((tmp_path / "upscaled").iterdir())
    assert outputs and not [p for p in outputs if p.name.startswith(".")]


@pytest.mark.timeout(300)
@settings(max_examples=150, deadline=None, derandomize=True)
@given(name=st.sampled_from(SMALL_SEEDS), rng=st.randoms(use_true_random=False))
def test_mutated_uploads_are_4xx_never_500(name: str, rng: random.Random) -> None:
    # What `esrgan serve` does with an upload before and after the queue: only ApiErrors, as 4xx.
    from esrgan.serving.errors import ApiError
    from esrgan.serving.imaging import decode_upload, open_upload

    data = fuzz.mutate(SEEDS[name], rng)
    try:
        open_upload(data, max_pixels=4_000_000)
        decode_upload(data, max_pixels=4_000_000)
    except ApiError as exc:
        assert exc.status in (400, 413, 415) and "\n" not in str(exc), (exc.status, str(exc))
