"""Image I/O for inference: channel order, grey/alpha/16-bit, EXIF orientation, ICC, bad files."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image, ImageCms, ImageOps

from _image_fixtures import cmyk_icc_profile
from esrgan.io import (
    ImageData,
    ImageError,
    ImageInfo,
    apply_orientation,
    encode_image,
    format_for_path,
    probe_image,
    read_image,
    read_rgb,
    sniff_format,
    write_image,
)
from esrgan.io.png16 import decode_png16, encode_png16

RNG = np.random.default_rng(0)


def _rgb8(h: int = 6, w: int = 9) -> np.ndarray:
    return RNG.integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def _srgb_icc() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _exif_with_orientation(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif.tobytes()


# ------------------------------------------------------------------------------------------ 8-bit


def test_rgb_channel_order_and_exact_round_trip(tmp_path):
    arr = _rgb8()
    arr[0, 0] = (255, 0, 0)  # a pure red pixel must land in channel 0
    Image.fromarray(arr).save(tmp_path / "in.png")
    img = read_image(tmp_path / "in.png")
    assert img.mode == "RGB" and img.bit_depth == 8 and img.format == "PNG"
    assert img.pixels.shape == (3, 6, 9) and img.pixels.dtype == torch.float32
    assert img.pixels[:, 0, 0].tolist() == [1.0, 0.0, 0.0]
    write_image(tmp_path / "out.png", img)
    back = Image.open(tmp_path / "out.png")
    assert back.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(back), arr)


def test_grayscale_stays_grayscale(tmp_path):
    arr = RNG.integers(0, 256, size=(5, 7), dtype=np.uint8)
    Image.fromarray(arr).save(tmp_path / "g.png")
    img = read_image(tmp_path / "g.png")
    assert img.grayscale and img.mode == "L" and img.pixels.shape == (1, 5, 7)
    write_image(tmp_path / "g_out.png", img)
    back = Image.open(tmp_path / "g_out.png")
    assert back.mode == "L"
    np.testing.assert_array_equal(np.asarray(back), arr)


def test_bilevel_and_gray_alpha(tmp_path):
    Image.fromarray(RNG.integers(0, 2, size=(4, 4), dtype=np.uint8) * 255).convert("1").save(
        tmp_path / "b.png"
    )
    assert read_image(tmp_path / "b.png").mode == "L"
    la = RNG.integers(0, 256, size=(4, 5, 2), dtype=np.uint8)
    Image.fromarray(la, mode="LA").save(tmp_path / "la.png")
    img = read_image(tmp_path / "la.png")
    assert img.mode == "LA"
    np.testing.assert_array_equal(np.round(img.alpha[0].numpy() * 255), la[..., 1])
    write_image(tmp_path / "la_out.png", img)
    back = Image.open(tmp_path / "la_out.png")
    assert back.mode == "LA"
    np.testing.assert_array_equal(np.asarray(back), la)


def test_rgba_alpha_kept_separately(tmp_path):
    rgba = RNG.integers(0, 256, size=(6, 8, 4), dtype=np.uint8)
    rgba[..., 3] = 0  # fully transparent pixels keep their colour (no premultiplication)
    rgba[:3, :, 3] = 255
    Image.fromarray(rgba).save(tmp_path / "a.png")
    img = read_image(tmp_path / "a.png")
    assert img.mode == "RGBA" and img.pixels.shape == (3, 6, 8) and img.alpha.shape == (1, 6, 8)
    np.testing.assert_array_equal(np.round(img.pixels.permute(1, 2, 0).numpy() * 255), rgba[..., :3])
    write_image(tmp_path / "a_out.png", img)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "a_out.png")), rgba)


def test_palette_with_transparency_becomes_rgba(tmp_path):
    p = Image.fromarray(_rgb8()).convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
    p.info["transparency"] = 0
    p.save(tmp_path / "p.png", transparency=0)
    img = read_image(tmp_path / "p.png")
    assert img.mode == "RGBA"
    q = Image.fromarray(_rgb8()).convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
    q.save(tmp_path / "q.png")
    assert read_image(tmp_path / "q.png").mode == "RGB"


def test_cmyk_jpeg_read_as_rgb_without_cmyk_profile(tmp_path):
    Image.fromarray(_rgb8(16, 16)).convert("CMYK").save(tmp_path / "c.jpg", quality=95)
    img = read_image(tmp_path / "c.jpg")
    assert img.mode == "RGB" and img.icc_profile is None


def test_unsupported_mode_is_a_clear_error(tmp_path):
    Image.fromarray(RNG.random((4, 4), dtype=np.float32)).save(tmp_path / "f.tif")
    with pytest.raises(ImageError, match=r"f\.tif: unsupported image mode 'F'"):
        read_image(tmp_path / "f.tif")


def test_multi_frame_is_rejected(tmp_path):
    frames = [Image.fromarray(_rgb8()) for _ in range(3)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    with pytest.raises(ImageError, match="3 frames"):
        read_image(tmp_path / "anim.gif")


def test_jpeg_output_quality_and_alpha_dropped(tmp_path):
    rgba = RNG.integers(0, 256, size=(16, 16, 4), dtype=np.uint8)
    Image.fromarray(rgba).save(tmp_path / "a.png")
    img = read_image(tmp_path / "a.png")
    write_image(tmp_path / "hi.jpg", img, quality=95)
    write_image(tmp_path / "lo.jpg", img, quality=20)
    hi, lo = Image.open(tmp_path / "hi.jpg"), Image.open(tmp_path / "lo.jpg")
    assert hi.format == "JPEG" and hi.mode == "RGB"
    assert (tmp_path / "lo.jpg").stat().st_size < (tmp_path / "hi.jpg").stat().st_size
    err_hi = np.abs(np.asarray(hi, np.int16) - rgba[..., :3]).mean()
    err_lo = np.abs(np.asarray(lo, np.int16) - rgba[..., :3]).mean()
    assert err_hi < err_lo
    with pytest.raises(ValueError, match="quality"):
        write_image(tmp_path / "bad.jpg", img, quality=0)


def test_format_from_extension():
    assert format_for_path("x.JPG") == "JPEG"
    assert format_for_path("x.webp") == "WEBP"
    with pytest.raises(ValueError, match="cannot write"):
        format_for_path("x.nope")
    with pytest.raises(ValueError, match="no file extension"):
        format_for_path("x")


# ----------------------------------------------------------------------------------------- 16-bit


def test_16bit_gray_png_round_trip(tmp_path):
    arr = RNG.integers(0, 65536, size=(5, 7), dtype=np.uint16)
    Image.fromarray(arr).save(tmp_path / "g16.png")
    img = read_image(tmp_path / "g16.png")
    assert img.bit_depth == 16 and img.grayscale
    np.testing.assert_array_equal(np.round(img.pixels[0].numpy().astype(np.float64) * 65535), arr)
    write_image(tmp_path / "g16_out.png", img)
    back = Image.open(tmp_path / "g16_out.png")
    assert back.mode.startswith("I;16")
    np.testing.assert_array_equal(np.asarray(back), arr)


@pytest.mark.parametrize("channels", [3, 4])
def test_16bit_colour_png_round_trip(tmp_path, channels):
    cv2 = pytest.importorskip("cv2")  # libpng through OpenCV: an encoder and decoder other than ours
    rgb = RNG.integers(0, 65536, size=(6, 5, channels), dtype=np.uint16)
    bgr = rgb[..., [2, 1, 0, 3][:channels]]
    cv2.imwrite(str(tmp_path / "c16.png"), bgr)
    img = read_image(tmp_path / "c16.png")
    assert img.bit_depth == 16 and img.mode == ("RGB" if channels == 3 else "RGBA")
    got = torch.cat([img.pixels, img.alpha] if img.alpha is not None else [img.pixels]).numpy()
    np.testing.assert_array_equal(np.round(got.astype(np.float64) * 65535).transpose(1, 2, 0), rgb)
    write_image(tmp_path / "c16_out.png", img)
    back = cv2.imread(str(tmp_path / "c16_out.png"), cv2.IMREAD_UNCHANGED)
    assert back.dtype == np.uint16
    np.testing.assert_array_equal(back, bgr)


def test_16bit_gray_alpha_is_read_as_such_and_written_as_rgba(tmp_path):
    ga = RNG.integers(0, 65536, size=(4, 6, 2), dtype=np.uint16)
    (tmp_path / "ga16.png").write_bytes(_png16(ga, [1]))
    img = read_image(tmp_path / "ga16.png")
    assert img.mode == "LA" and img.bit_depth == 16
    np.testing.assert_array_equal(np.round(img.pixels[0].numpy().astype(np.float64) * 65535), ga[..., 0])
    np.testing.assert_array_equal(np.round(img.alpha[0].numpy().astype(np.float64) * 65535), ga[..., 1])
    # libpng (OpenCV) writes no 16-bit grey+alpha: the same values and depth come back as RGBA.
    write_image(tmp_path / "ga16_out.png", img)
    back = read_image(tmp_path / "ga16_out.png")
    assert back.mode == "RGBA" and back.bit_depth == 16
    assert torch.equal(back.pixels, img.pixels.expand(3, -1, -1)) and torch.equal(back.alpha, img.alpha)


def test_16bit_to_jpeg_is_8bit(tmp_path):
    arr = RNG.integers(0, 65536, size=(8, 8, 3), dtype=np.uint16)
    (tmp_path / "c16.png").write_bytes(encode_png16(arr))
    write_image(tmp_path / "c8.jpg", read_image(tmp_path / "c16.png"))
    assert Image.open(tmp_path / "c8.jpg").mode == "RGB"


def _paeth(a: int, b: int, c: int) -> int:
    pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
    return a if pa <= pb and pa <= pc else b if pb <= pc else c


def _filtered_rows(arr: np.ndarray, kinds: list[int]) -> bytes:
    """The PNG scanlines of a 16-bit (H,W,C) array, row y filtered with kinds[y % len(kinds)] (spec 9.2)."""
    bpp = 2 * arr.shape[2]
    rows = np.ascontiguousarray(arr, dtype=">u2").view(np.uint8).reshape(arr.shape[0], -1)
    out, prev = bytearray(), [0] * rows.shape[1]
    for y, row in enumerate(rows.tolist()):
        kind = kinds[y % len(kinds)]
        out.append(kind)
        for i, x in enumerate(row):
            a, b, c = (row[i - bpp] if i >= bpp else 0), prev[i], (prev[i - bpp] if i >= bpp else 0)
            pred = (0, a, b, (a + b) // 2, _paeth(a, b, c))[kind]
            out.append((x - pred) % 256)
        prev = row
    return bytes(out)


_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))


def _png16_file(shape: tuple[int, ...], scanlines: bytes, *, interlace: bool = False) -> bytes:
    h, w, c = shape
    ihdr = struct.pack(">IIBBBBB", w, h, 16, {1: 0, 2: 4, 3: 2, 4: 6}[c], 0, 0, int(interlace))
    chunks = _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", zlib.compress(scanlines))
    return b"\x89PNG\r\n\x1a\n" + chunks + _png_chunk(b"IEND", b"")


def _png16(arr: np.ndarray, kinds: list[int], *, interlace: bool = False) -> bytes:
    subs = [arr[y0::dy, x0::dx] for x0, y0, dx, dy in _ADAM7] if interlace else [arr]
    scanlines = b"".join(_filtered_rows(sub, kinds) for sub in subs if sub.size)
    return _png16_file(arr.shape, scanlines, interlace=interlace)


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
@pytest.mark.parametrize("interlace", [False, True])
def test_png16_decoder_undoes_every_filter_and_interlacing(channels, interlace):
    arr = RNG.integers(0, 65536, size=(11, 13, channels), dtype=np.uint16)
    arr[:, :, 0] = np.arange(13, dtype=np.uint16) * 5000  # smooth rows too, not only noise
    for kinds in ([0], [1], [2], [3], [4], [4, 3, 2, 1, 0]):
        np.testing.assert_array_equal(decode_png16(_png16(arr, kinds, interlace=interlace)), arr)
    tiny = arr[:1, :1]  # interlacing leaves six of the seven passes empty
    np.testing.assert_array_equal(decode_png16(_png16(tiny, [4], interlace=interlace)), tiny)


@pytest.mark.parametrize("flag", ["NONE", "SUB", "UP", "AVG", "PAETH", "ALL"])
def test_png16_decoder_matches_libpng(flag):
    cv2 = pytest.importorskip("cv2")
    if not hasattr(cv2, "IMWRITE_PNG_FILTER"):
        pytest.skip("this OpenCV cannot choose PNG filters")
    name = "IMWRITE_PNG_ALL_FILTERS" if flag == "ALL" else f"IMWRITE_PNG_FILTER_{flag}"
    ramp = np.linspace(0, 60000, 40 * 30, dtype=np.uint16).reshape(40, 30)
    bgr = np.stack([ramp, ramp.T.reshape(40, 30), ramp[::-1]], axis=-1) + RNG.integers(0, 99, (40, 30, 3))
    ok, buf = cv2.imencode(".png", bgr.astype(np.uint16), [cv2.IMWRITE_PNG_FILTER, getattr(cv2, name)])
    assert ok
    np.testing.assert_array_equal(decode_png16(buf.tobytes()), bgr[..., ::-1])


def test_png16_decoder_refuses_other_and_damaged_files():
    with pytest.raises(ValueError, match="not a PNG"):
        decode_png16(b"GIF89a")
    buf = io.BytesIO()
    Image.fromarray(_rgb8()).save(buf, format="PNG")
    with pytest.raises(ValueError, match="bit depth 8"):
        decode_png16(buf.getvalue())
    arr = RNG.integers(0, 65536, size=(4, 5, 3), dtype=np.uint16)
    scanlines = bytearray(_filtered_rows(arr, [0]))
    scanlines[0] = 7
    with pytest.raises(ValueError, match="filter type 7"):
        decode_png16(_png16_file(arr.shape, bytes(scanlines)))
    with pytest.raises(ValueError, match="shorter"):
        decode_png16(_png16_file(arr.shape, bytes(scanlines[:-1])))


def test_damaged_16bit_pngs_leave_stderr_alone(tmp_path, capfd):
    # libpng prints its errors and warnings on stderr; OpenCV only ever sees a file already checked.
    rgba = RNG.integers(0, 65536, size=(3, 4, 4), dtype=np.uint16)
    good = _png16(rgba, [4])
    scanlines = bytearray(_filtered_rows(rgba, [0]))
    scanlines[0] = 9
    ihdr = good[8:33]
    bomb = zlib.compressobj()
    flood = bomb.compress(_filtered_rows(rgba, [0])) + bomb.compress(bytes(1 << 22)) + bomb.flush()
    for name, data in {
        "second_header.png": good[:33] + ihdr + good[33:],
        "bad_filter.png": _png16_file(rgba.shape, bytes(scanlines)),
        "extra_data.png": good[:33] + _png_chunk(b"IDAT", flood) + _png_chunk(b"IEND", b""),
        "cut.png": good[:-20],
    }.items():
        (tmp_path / name).write_bytes(data)
        try:
            read_image(tmp_path / name)
        except ImageError as exc:
            assert str(exc).startswith(str(tmp_path / name)) and "\n" not in str(exc)
    assert capfd.readouterr().err == ""


def test_read_rgb_is_what_datasets_get(tmp_path):
    rgba = RNG.integers(0, 256, size=(5, 6, 4), dtype=np.uint8)
    Image.fromarray(rgba).save(tmp_path / "a.png")
    Image.fromarray(rgba[..., 0]).save(tmp_path / "g.png")
    ga16 = RNG.integers(0, 65536, size=(3, 4, 2), dtype=np.uint16)
    (tmp_path / "ga16.png").write_bytes(_png16(ga16, [2]))
    a = read_rgb(tmp_path / "a.png")
    np.testing.assert_array_equal(a, rgba[..., :3])
    assert a.flags.writeable and a.flags.c_contiguous
    np.testing.assert_array_equal(read_rgb(tmp_path / "g.png"), np.repeat(rgba[..., :1], 3, axis=2))
    deep = read_rgb(tmp_path / "ga16.png")
    assert deep.dtype == np.uint16
    np.testing.assert_array_equal(deep, np.repeat(ga16[..., :1], 3, axis=2))
    with pytest.raises(ImageError, match=r"nope\.png"):
        read_rgb(tmp_path / "nope.png")


# ------------------------------------------------------------------------------ orientation and ICC


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_applied(tmp_path, orientation):
    arr = _rgb8(4, 7)
    Image.fromarray(arr).save(tmp_path / "o.jpg", exif=_exif_with_orientation(orientation), quality=100)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(tmp_path / "o.jpg")))
    img = read_image(tmp_path / "o.jpg")
    got = np.round(img.pixels.permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    np.testing.assert_array_equal(got, expected)
    if orientation >= 5:
        assert (img.height, img.width) == (7, 4)
    # The numpy path (used for 16-bit PNGs) matches Pillow's transposes.
    np.testing.assert_array_equal(
        apply_orientation(arr, orientation),
        np.asarray(ImageOps.exif_transpose(_with_orientation(Image.fromarray(arr), orientation))),
    )


def _with_orientation(im: Image.Image, orientation: int) -> Image.Image:
    im.getexif()[0x0112] = orientation
    return im


def test_exif_orientation_on_16bit_png(tmp_path):
    rgb = RNG.integers(0, 65536, size=(3, 5, 3), dtype=np.uint16)
    data = encode_png16(rgb)
    # Insert an eXIf chunk (orientation 6: rotate 90 degrees clockwise) after IHDR.
    data = data[:33] + _png_chunk(b"eXIf", _exif_with_orientation(6)[6:]) + data[33:]
    (tmp_path / "o16.png").write_bytes(data)
    img = read_image(tmp_path / "o16.png")
    assert (img.height, img.width) == (5, 3) and img.bit_depth == 16
    got = np.round(img.pixels.permute(1, 2, 0).numpy().astype(np.float64) * 65535)
    np.testing.assert_array_equal(got, np.rot90(rgb, -1))


@pytest.mark.parametrize("ext", ["png", "jpg", "webp"])
def test_icc_profile_carried_over(tmp_path, ext):
    icc = _srgb_icc()
    Image.fromarray(_rgb8(16, 16)).save(tmp_path / f"i.{ext}", icc_profile=icc)
    img = read_image(tmp_path / f"i.{ext}")
    assert img.icc_profile == icc
    write_image(tmp_path / f"o.{ext}", img)
    assert Image.open(tmp_path / f"o.{ext}").info.get("icc_profile") == icc


def test_icc_profile_in_16bit_png(tmp_path):
    icc = _srgb_icc()
    rgb = RNG.integers(0, 65536, size=(4, 4, 3), dtype=np.uint16)
    (tmp_path / "i16.png").write_bytes(encode_png16(rgb, icc_profile=icc))
    img = read_image(tmp_path / "i16.png")
    assert img.icc_profile == icc and img.bit_depth == 16
    write_image(tmp_path / "o16.png", img)
    assert Image.open(tmp_path / "o16.png").info.get("icc_profile") == icc


# ----------------------------------------------------------------------------------------- bad files


def test_missing_file(tmp_path):
    with pytest.raises(ImageError, match=r"nope\.png: No such file"):
        read_image(tmp_path / "nope.png")


def test_not_an_image(tmp_path):
    (tmp_path / "junk.png").write_bytes(b"this is not an image at all" * 10)
    with pytest.raises(ImageError, match=r"junk\.png: not an image"):
        read_image(tmp_path / "junk.png")


@pytest.mark.parametrize("ext", ["png", "jpg"])
def test_truncated_file(tmp_path, ext):
    buf = io.BytesIO()
    Image.fromarray(RNG.integers(0, 256, size=(64, 64, 3), dtype=np.uint8)).save(
        buf, format=ext.replace("jpg", "jpeg")
    )
    data = buf.getvalue()
    (tmp_path / f"t.{ext}").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match=rf"t\.{ext}: corrupt or truncated") as info:
        read_image(tmp_path / f"t.{ext}")
    assert "\n" not in str(info.value)


def test_corrupt_png_crc(tmp_path):
    buf = io.BytesIO()
    Image.fromarray(_rgb8(32, 32)).save(buf, format="png")
    data = bytearray(buf.getvalue())
    idat = data.index(b"IDAT")
    data[idat + 10] ^= 0xFF  # flip bits inside the compressed pixels
    (tmp_path / "crc.png").write_bytes(bytes(data))
    with pytest.raises(ImageError, match=r"crc\.png: corrupt"):
        read_image(tmp_path / "crc.png")


def test_pixel_limit(tmp_path):
    Image.fromarray(_rgb8(100, 100)).save(tmp_path / "big.png")
    with pytest.raises(ImageError, match=r"big\.png: 100x100 = 0\.0 MP is above the limit"):
        read_image(tmp_path / "big.png", max_pixels=5000)
    assert read_image(tmp_path / "big.png", max_pixels=10_000).width == 100
    assert read_image(tmp_path / "big.png", max_pixels=None).width == 100


def test_decompression_bomb_header_rejected_before_decoding(tmp_path):
    # A tiny file that claims 60000 x 60000 pixels: refused from the header, nothing allocated.
    ihdr = struct.pack(">IIBBBBB", 60000, 60000, 8, 2, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", zlib.compress(b"\0" * 100))
    data += _png_chunk(b"IEND", b"")
    (tmp_path / "bomb.png").write_bytes(data)
    with pytest.raises(ImageError, match=r"bomb\.png: 60000x60000 = 3600\.0 MP is above the limit of 100 MP"):
        read_image(tmp_path / "bomb.png")
    assert Image.MAX_IMAGE_PIXELS is not None  # Pillow's own guard is restored afterwards


def test_failed_write_leaves_nothing(tmp_path):
    img = ImageData(pixels=torch.rand(3, 4, 4))
    (tmp_path / "out.png").mkdir()  # the target is a folder: the final rename fails
    with pytest.raises(OSError):
        write_image(tmp_path / "out.png", img)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]
    assert list((tmp_path / "out.png").iterdir()) == []


def test_image_data_validation():
    with pytest.raises(ValueError, match="pixels"):
        ImageData(pixels=torch.rand(2, 4, 4))
    with pytest.raises(ValueError, match="alpha"):
        ImageData(pixels=torch.rand(3, 4, 4), alpha=torch.rand(1, 4, 5))
    with pytest.raises(ValueError, match="bit_depth"):
        ImageData(pixels=torch.rand(3, 4, 4), bit_depth=12)


# ------------------------------------------------------------------------------- in-memory sources


def _png_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG")
    return buf.getvalue()


def test_bytes_and_file_objects_read_like_the_file(tmp_path):
    arr = _rgb8(7, 5)
    data = _png_bytes(arr)
    (tmp_path / "a.png").write_bytes(data)
    from_path = read_image(tmp_path / "a.png")
    assert from_path.source == tmp_path / "a.png"
    with (tmp_path / "a.png").open("rb") as file:
        for source in (data, io.BytesIO(data), file):
            image = read_image(source)
            assert image.source is None and image.format == "PNG"
            assert torch.equal(image.pixels, from_path.pixels)
    assert np.array_equal(read_rgb(data), arr)
    png16 = encode_png16(RNG.integers(0, 65536, size=(4, 6, 3), dtype=np.uint16))
    assert read_image(png16).bit_depth == 16 and read_rgb(io.BytesIO(png16)).dtype == np.uint16


def test_in_memory_errors_are_named_and_have_a_kind(tmp_path):
    with pytest.raises(ImageError, match=r"^<memory>: not an image") as info:
        read_image(b"hello" * 20)
    assert info.value.kind == "unsupported"
    with pytest.raises(ImageError, match=r"^upload: 10x10 = 0\.0 MP is above the limit") as info:
        read_image(_png_bytes(_rgb8(10, 10)), max_pixels=99, name="upload")
    assert info.value.kind == "too_large"
    with pytest.raises(ImageError, match=r"^<memory>: corrupt or truncated") as info:
        read_image(io.BytesIO(_png_bytes(_rgb8(32, 32))[:150]))
    assert info.value.kind == "corrupt"
    (tmp_path / "f.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken header")
    with (tmp_path / "f.png").open("rb") as f, pytest.raises(ImageError, match=r"f\.png: corrupt PNG image"):
        read_image(f)
    with pytest.raises(ImageError) as info:
        read_image(tmp_path / "missing.png")
    assert info.value.kind == "unreadable"


def test_formats_are_sniffed_and_only_their_decoders_run():
    buf = io.BytesIO()
    Image.fromarray(_rgb8()).save(buf, "BMP")
    assert sniff_format(buf.getvalue()[:32]) == "BMP"
    assert read_image(buf.getvalue(), formats=("PNG", "BMP")).format == "BMP"
    with pytest.raises(ImageError, match="not an image of format PNG") as info:
        read_image(buf.getvalue(), formats=("PNG",))
    assert info.value.kind == "unsupported"
    tga = io.BytesIO()
    Image.fromarray(_rgb8()).save(tga, "TGA")  # no magic bytes: readable only when any format may be
    assert read_image(tga.getvalue()).format == "TGA"
    with pytest.raises(ImageError, match="not an image of format"):
        read_image(tga.getvalue(), formats=("PNG", "BMP", "TIFF"))


def test_probe_reads_the_header_only():
    # A PNG header for 300x200 with pixel data that is no zlib stream: its size is known, its pixels
    # cannot be decoded.
    ihdr = _png_chunk(b"IHDR", struct.pack(">IIBBBBB", 300, 200, 8, 2, 0, 0, 0))
    data = b"\x89PNG\r\n\x1a\n" + ihdr + _png_chunk(b"IDAT", b"not zlib") + _png_chunk(b"IEND", b"")
    assert probe_image(data) == ImageInfo(format="PNG", width=300, height=200)
    with pytest.raises(ImageError) as info:
        read_image(data)
    assert info.value.kind == "corrupt"
    with pytest.raises(ImageError) as info:
        probe_image(data, max_pixels=59_999)
    assert info.value.kind == "too_large"


def test_cmyk_with_icc_is_converted_through_its_profile():
    cmyk = Image.fromarray(_rgb8(8, 8)).convert("CMYK")
    icc = cmyk_icc_profile()
    buf = io.BytesIO()
    cmyk.save(buf, "TIFF", icc_profile=icc)
    image = read_image(buf.getvalue())
    want = ImageCms.profileToProfile(
        cmyk, ImageCms.ImageCmsProfile(io.BytesIO(icc)), ImageCms.createProfile("sRGB"), outputMode="RGB"
    )
    got = (image.pixels * 255).round().permute(1, 2, 0).numpy().astype(np.uint8)
    assert np.array_equal(got, np.asarray(want)) and image.icc_profile is None
    assert not np.array_equal(got, np.asarray(cmyk.convert("RGB")))  # not Pillow's naive formula


def test_rgb_with_a_transparent_colour_gets_alpha():
    arr = _rgb8(4, 4)
    arr[0, 0] = (1, 2, 3)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG", transparency=(1, 2, 3))
    image = read_image(buf.getvalue())
    assert image.alpha is not None and image.alpha[0, 0, 0] == 0 and image.alpha[0, 1:].min() == 1


def test_encode_image_is_what_write_image_writes(tmp_path):
    rgb16 = ImageData(pixels=torch.rand(3, 5, 7), bit_depth=16)
    data = encode_image(rgb16, "PNG")
    assert data == write_image(tmp_path / "o.png", rgb16).read_bytes()
    assert data[24] == 16 and read_image(data).bit_depth == 16  # IHDR bit depth
    rgba = ImageData(pixels=torch.rand(3, 5, 7), alpha=torch.rand(1, 5, 7))
    jpeg = encode_image(rgba, "JPEG", quality=90)
    assert (
        Image.open(io.BytesIO(jpeg)).mode == "RGB"
        and jpeg == write_image(tmp_path / "o.jpg", rgba, quality=90).read_bytes()
    )
    assert encode_image(rgb16, "WEBP")[:4] == b"RIFF" and encode_image(rgb16, "JPEG")[:3] == b"\xff\xd8\xff"
    with pytest.raises(ValueError, match="quality"):
        encode_image(rgba, "JPEG", quality=0)
    with pytest.raises(ValueError, match="format"):
        encode_image(rgba, "NOPE")
