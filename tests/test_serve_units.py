"""Parts of the service on their own: upload parsing, sniffing, the pool, settings, progress."""

from __future__ import annotations

import asyncio
import copy
import io
import threading
import time
from collections.abc import AsyncIterator

import numpy as np
import pytest
from PIL import Image

from _image_fixtures import cmyk_icc_profile
from esrgan.io import encode_image, read_rgb, sniff_format
from esrgan.io.png16 import encode_png16
from esrgan.serving import ApiError, InferencePool, ServeSettings
from esrgan.serving.imaging import decode_upload, open_upload
from esrgan.serving.pool import Cancelled
from esrgan.serving.progress import ProgressBoard
from esrgan.serving.uploads import Upload, read_upload

BOUNDARY = "unit-boundary-42"
CTYPE = f"multipart/form-data; boundary={BOUNDARY}"


def form(*parts: tuple[str, bytes, str | None], close: bool = True) -> bytes:
    out = b""
    for name, value, filename in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out += f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + value + b"\r\n"
    return out + (f"--{BOUNDARY}--\r\n".encode() if close else b"")


def read(body: bytes, *, max_bytes: int = 10_000, ctype: str = CTYPE, chunk: int = 7) -> Upload:
    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(body), chunk):  # odd chunk sizes split boundaries and headers
            yield body[i : i + chunk]

    return asyncio.run(read_upload(chunks(), content_type=ctype, content_length=None, max_bytes=max_bytes))


def status_of(fn: object, *args: object, **kwargs: object) -> int:
    with pytest.raises(ApiError) as info:
        fn(*args, **kwargs)  # type: ignore[operator]
    return info.value.status


def png(width: int = 4, height: int = 3, mode: str = "RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, (width, height)).save(buf, "PNG")
    return buf.getvalue()


# --------------------------------------------------------------------------------------------- uploads


def test_a_form_is_read_in_memory_in_any_chunking() -> None:
    image = bytes(range(256)) * 8
    body = form(("outscale", b"2.5", None), ("file", image, "a b.png"), ("model", b"tiny", None))
    for chunk in (1, 7, 4096):
        upload = read(body, chunk=chunk)
        assert upload.data == image and upload.filename == "a b.png"
        assert upload.fields == {"outscale": "2.5", "model": "tiny"}


def test_a_non_multipart_body_is_the_image() -> None:
    assert read(b"\x89PNG-bytes", ctype="image/png").data == b"\x89PNG-bytes"


def test_upload_limits_and_malformed_forms() -> None:
    assert status_of(read, form(("file", b"x" * 2000, "a.png")), max_bytes=1000) == 413
    assert status_of(read, b"y" * 2000, max_bytes=1000, ctype="application/octet-stream") == 413
    assert status_of(read, form(("file", b"abc", "a.png"), close=False)) == 400
    assert status_of(read, form(("file", b"a", "a.png"), ("file", b"b", "b.png"))) == 400
    assert status_of(read, form(("model", b"tiny", None))) == 400  # no file part
    assert status_of(read, form(("file", b"a", "a.png"), ("model", b"m" * 5000, None))) == 400
    assert status_of(read, b"", ctype="multipart/form-data") == 400  # no boundary

    async def empty() -> AsyncIterator[bytes]:
        yield b""

    declared = read_upload(empty(), content_type=CTYPE, content_length="999999", max_bytes=1000)
    with pytest.raises(ApiError) as info:
        asyncio.run(declared)
    assert info.value.status == 413  # refused from Content-Length before reading


# --------------------------------------------------------------------------------------------- imaging


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [("PNG", "PNG"), ("JPEG", "JPEG"), ("WEBP", "WEBP"), ("GIF", "GIF"), ("BMP", "BMP"), ("TIFF", "TIFF")],
)
def test_formats_are_sniffed_from_bytes(fmt: str, expected: str) -> None:
    buf = io.BytesIO()
    Image.new("RGB", (5, 4), (10, 20, 30)).save(buf, fmt)
    assert sniff_format(buf.getvalue()[:32]) == expected
    info = open_upload(buf.getvalue(), max_pixels=100)
    image = decode_upload(buf.getvalue(), max_pixels=100)
    assert (info.format, info.width, info.height) == (expected, 5, 4)
    assert (image.width, image.height) == (5, 4)


def test_unknown_bytes_are_not_sniffed() -> None:
    for head in (b"", b"hello world", b"%PDF-1.7", b"RIFF\x00\x00\x00\x00WAVE", b"\x00\x00\x01\x00"):
        assert sniff_format(head) is None
        assert status_of(open_upload, head + b"\x00" * 40, max_pixels=100) == 415


def test_the_pixel_limit_is_checked_before_decoding() -> None:
    data = png(20, 10)
    assert status_of(open_upload, data, max_pixels=199) == 413
    assert status_of(decode_upload, data, max_pixels=199) == 413
    info = open_upload(data, max_pixels=200)
    assert (info.width, info.height) == (20, 10)
    # Pixel data that is no zlib stream: the header passes, decoding is a 400, a size above the limit 413.
    broken = data[: data.index(b"IDAT") - 4] + b"\x00\x00\x00\x00IDAT" + bytes(4) + data[-12:]
    assert open_upload(broken, max_pixels=200).width == 20
    assert status_of(decode_upload, broken, max_pixels=200) == 400
    assert status_of(decode_upload, broken, max_pixels=199) == 413


def test_alpha_and_grayscale_round_trip() -> None:
    arr = np.random.default_rng(0).integers(0, 256, (6, 5, 4), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr, "RGBA").save(buf, "PNG")
    image = decode_upload(buf.getvalue(), max_pixels=100)
    assert image.alpha is not None
    back = Image.open(io.BytesIO(encode_image(image, "PNG", quality=95)))
    assert back.mode == "RGBA" and np.array_equal(np.asarray(back), arr)
    gray = decode_upload(png(5, 6, "L"), max_pixels=100)
    assert gray.grayscale and Image.open(io.BytesIO(encode_image(gray, "JPEG", quality=90))).mode == "L"


def test_16bit_uploads_keep_their_depth_in_png_only() -> None:
    arr = np.random.default_rng(1).integers(0, 65536, (6, 5, 3), dtype=np.uint16)
    image = decode_upload(encode_png16(arr), max_pixels=100)
    assert image.bit_depth == 16
    png16 = encode_image(image, "PNG", quality=95)
    assert png16[24] == 16 and np.array_equal(read_rgb(png16), arr)  # IHDR bit depth, every bit kept
    jpeg = Image.open(io.BytesIO(encode_image(image, "JPEG", quality=95)))
    assert jpeg.mode == "RGB" and jpeg.size == (5, 6)


def test_cmyk_uploads_are_converted_through_their_icc_profile() -> None:
    # The profile maps every CMYK value to one pink; without it, Pillow's formula keeps the noise.
    noise = np.random.default_rng(2).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(noise).convert("CMYK").save(buf, "JPEG", quality=95, icc_profile=cmyk_icc_profile())
    image = decode_upload(buf.getvalue(), max_pixels=100)
    rgb = (image.pixels * 255).round().reshape(3, -1)
    assert image.icc_profile is None and rgb.std(dim=1).max() == 0
    assert rgb[0, 0] > rgb[1, 0] + 40  # pink: red well above green


# ------------------------------------------------------------------------------------------------ pool


def test_the_pool_admits_workers_plus_queue_and_releases_once() -> None:
    pool = InferencePool(workers=2, queue_size=1)
    tickets = [pool.try_admit() for _ in range(3)]
    assert all(tickets) and pool.try_admit() is None and pool.peak_admitted == 3
    pool.release(tickets[0])  # type: ignore[arg-type]
    pool.release(tickets[0])  # type: ignore[arg-type]
    assert pool.admitted == 2
    assert pool.try_admit() is not None and pool.try_admit() is None
    pool.shutdown()


def test_a_cancelled_job_does_not_run_and_gives_its_place_back() -> None:
    pool = InferencePool(workers=1, queue_size=1)
    gate = threading.Event()
    first = pool.try_admit()
    running = pool.submit(first, lambda: gate.wait(30))  # type: ignore[arg-type]
    ran = []
    second = pool.try_admit()
    queued = pool.submit(second, lambda: ran.append(1))  # type: ignore[arg-type]
    assert queued.cancel()  # still waiting: cancelled before it starts
    assert pool.admitted == 1
    third = pool.try_admit()
    assert third is not None
    third.cancel()  # its request gave up before a worker picked it up
    late = pool.submit(third, lambda: ran.append(3))
    gate.set()
    assert running.result(timeout=30) is True
    with pytest.raises(Cancelled):
        late.result(timeout=30)
    assert ran == [] and pool.admitted == 0 and pool.queue_depth == 0
    pool.shutdown()


# -------------------------------------------------------------------------------- settings and progress


def test_settings_refuse_what_cannot_be_served() -> None:
    with pytest.raises(ValueError, match="same name"):
        ServeSettings(models=("a/tiny.safetensors", "b/tiny.pth"))
    with pytest.raises(ValueError, match="built in"):
        ServeSettings(models=("weights/bicubic.safetensors",))
    with pytest.raises(ValueError, match="workers"):
        ServeSettings(workers=0)
    with pytest.raises(ValueError, match="request_timeout_s"):
        ServeSettings(request_timeout_s=float("inf"))
    with pytest.raises(ValueError, match="precision"):
        ServeSettings(precision="fp64")
    settings = ServeSettings(models=["realesrgan-x4plus", "runs/x/gan_g.safetensors"])  # type: ignore[arg-type]
    assert (
        settings.model_names == ("realesrgan-x4plus", "gan_g")
        and settings.default_model == "realesrgan-x4plus"
    )
    assert "hidden-value" not in repr(ServeSettings(api_key="hidden-value"))


def test_progress_entries_are_bounded_and_expire() -> None:
    board = ProgressBoard(max_entries=3, keep_s=0.05)
    for i in range(5):
        board.start(f"request-{i:04d}")
    assert board.get("request-0000") is None and board.get("request-0004") is not None
    board.update("request-0004", stage="upscaling", tiles_total=4, tiles_done=1)
    entry = board.get("request-0004")
    assert entry is not None and entry["stage"] == "upscaling" and entry["tiles_done"] == 1
    board.update("request-0004", stage="done")
    time.sleep(0.1)
    assert board.get("request-0004") is None


def test_the_registry_runs_models_on_the_configured_runtime(
    tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    from esrgan.models import RRDBNet
    from esrgan.serving import ModelRegistry

    monkeypatch.setenv("ESRGAN_CACHE", str(tmp_path))
    torch.manual_seed(0)
    net = RRDBNet(scale=4, num_feat=8, num_block=1, num_grow_ch=4).eval()
    with pytest.raises(ValueError, match="runtime must be one of"):
        ServeSettings(models=("x",), runtime="tensorrt")
    onnx = ModelRegistry(
        generators={"tiny": net}, default="tiny", device="cpu", precision="fp32", runtime="onnxruntime"
    )
    eager = ModelRegistry(
        generators={"tiny": net}, default="tiny", device="cpu", precision="fp32", runtime="torch"
    )
    up_onnx, up_eager = onnx.upscaler("tiny", "fp32"), eager.upscaler("tiny", "fp32")
    assert (up_onnx.runtime, up_eager.runtime) == ("onnxruntime", "torch")
    assert onnx.upscaler("tiny", "auto") is up_onnx  # auto is fp32 here: one shared copy, not two
    x = torch.rand(1, 3, 12, 10, generator=torch.Generator().manual_seed(1))
    diff = (up_onnx.upscale(x) - up_eager.upscale(x)).abs().max().item()
    assert diff < 1e-4


def test_the_registry_serves_int8_as_its_own_upscaler_and_auto_never_picks_it_unchecked(
    tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    from esrgan.inference.int8 import KNOWN_DROPS
    from esrgan.models import RRDBNet
    from esrgan.serving import ModelRegistry

    monkeypatch.setenv("ESRGAN_CACHE", str(tmp_path))
    assert ServeSettings(models=("x",), precision="int8").precision == "int8"
    torch.manual_seed(0)
    net = RRDBNet(scale=4, num_feat=8, num_block=1, num_grow_ch=4).eval()
    registry = ModelRegistry(
        generators={"tiny": net, "esrgan-x4-psnr": copy.deepcopy(net)}, default="tiny", device="cpu",
        precision="fp32", runtime="auto",
    )  # fmt: skip
    int8, fp32 = registry.upscaler("tiny", "int8"), registry.upscaler("tiny", "fp32")
    assert (int8.precision, int8.runtime) == ("int8", "openvino") and int8 is not fp32
    assert registry.upscaler("tiny", "auto").precision != "int8"  # no measured drop: never int8
    # A small measured drop makes int8 a candidate of the check (esrgan.inference.autoselect), not the
    # choice; a network this small is not worth a check and runs eager's fp32.
    assert KNOWN_DROPS["esrgan-x4-psnr"].worst_db <= 0.05
    assert registry.upscaler("esrgan-x4-psnr", "auto").path == "torch fp32"
    x = torch.rand(1, 3, 12, 10, generator=torch.Generator().manual_seed(1))
    assert int8.upscale(x).shape == fp32.upscale(x).shape == (1, 3, 48, 40)
