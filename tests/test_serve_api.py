"""The HTTP service against real uvicorn servers on free 127.0.0.1 ports, with a tiny model.

Each test talks HTTP with the standard library (urllib, http.client), as any client would.
"""

from __future__ import annotations

import http.client
import io
import json
import logging
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from _weights_fixtures import tiny_model
from esrgan.inference import upscale_image
from esrgan.io import ImageData, encode_image, read_image, read_rgb
from esrgan.io.png16 import encode_png16
from esrgan.serving import ModelRegistry, ServeSettings, running_server
from esrgan.serving.app import ACCESS_LOGGER
from esrgan.weights import save_generator

KEY = "s3cret-test-key"


# ----------------------------------------------------------------------------------------------- helpers


def png_bytes(width: int = 24, height: int = 16, mode: str = "RGB", seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    channels = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4}[mode]
    arr = rng.integers(0, 256, (height, width, channels), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr[:, :, 0] if channels == 1 else arr, mode).save(buf, "PNG")
    return buf.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A valid PNG header claiming `width`x`height`, with one row of pixel data: it cannot be decoded."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return (
            struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    row = zlib.compress(b"\x00" + b"\x80" * 3 * width)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", row) + chunk(b"IEND", b"")


def multipart(
    fields: dict[str, str], file: bytes | None, *, filename: str = "in.png", ctype: str = "image/png"
) -> tuple[bytes, str]:
    boundary = "esrgan-test-boundary-7d1f"
    parts = []
    for name, value in fields.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        )
    if file is not None:
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
            f"Content-Type: {ctype}\r\n\r\n"
        )
        parts.append(head.encode() + file + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


class Answer:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = {k.lower(): v for k, v in headers.items()}
        self.body = body

    def json(self) -> dict:
        assert self.headers["content-type"].startswith("application/json"), self.headers
        return json.loads(self.body)

    def image(self) -> Image.Image:
        return Image.open(io.BytesIO(self.body))


def request(
    url: str, *, data: bytes | None = None, headers: dict[str, str] | None = None, method: str | None = None
) -> Answer:
    req = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=60) as res:
            return Answer(res.status, dict(res.headers), res.read())
    except urllib.error.HTTPError as e:
        return Answer(e.code, dict(e.headers), e.read())


def upscale(
    base: str,
    file: bytes | None,
    fields: dict[str, str] | None = None,
    *,
    headers: dict[str, str] | None = None,
    filename: str = "in.png",
    ctype: str = "image/png",
) -> Answer:
    body, content_type = multipart(fields or {}, file, filename=filename, ctype=ctype)
    return request(f"{base}/v1/upscale", data=body, headers={"Content-Type": content_type, **(headers or {})})


def assert_json_error(answer: Answer, status: int) -> dict:
    assert answer.status == status, (answer.status, answer.body[:300])
    body = answer.json()
    assert body["status"] == status and body["error"] and body["message"]
    assert "Traceback" not in answer.body.decode()
    return body


# ---------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("serve-weights") / "tiny.safetensors"
    save_generator(tiny_model(), path)
    return path


@pytest.fixture(scope="module")
def registry(weights: Path) -> ModelRegistry:
    """Loaded once for the module, as the service loads models once; shared by the servers below."""
    settings = ServeSettings(models=(str(weights),), device="cpu", precision="fp32")
    return ModelRegistry.load(settings)


def settings_for(weights: Path, **changes: object) -> ServeSettings:
    base: dict[str, object] = {
        "port": 0,
        "models": (str(weights),),
        "device": "cpu",
        "precision": "fp32",
        "max_upload_bytes": 200_000,
        "max_input_pixels": 100_000,
        "max_output_pixels": 2_000_000,
    }
    return ServeSettings(**{**base, **changes})  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def server(weights: Path, registry: ModelRegistry) -> Iterator[str]:
    with running_server(settings_for(weights), registry=registry) as srv:
        yield srv.url


# ------------------------------------------------------------------------------------------ happy path


def test_health_models_page_and_docs_answer(server: str) -> None:
    health = request(f"{server}/healthz")
    assert health.status == 200 and health.json()["status"] == "ok"
    assert health.json()["models"] == ["tiny"]
    models = request(f"{server}/v1/models").json()
    assert models["default"] == "tiny"
    assert [(m["name"], m["scale"]) for m in models["models"]] == [("tiny", 4), ("bicubic", 4)]
    page = request(f"{server}/")
    assert page.status == 200 and page.headers["content-type"].startswith("text/html")
    assert b"/static/app.js" in page.body
    for asset in ("app.js", "style.css", "docs.js", "docs.css"):
        served = request(f"{server}/static/{asset}")
        assert served.status == 200
        assert b"http://" not in served.body and b"https://" not in served.body  # no CDN: works offline
    assert b"https://" not in page.body and b"http://" not in page.body
    assert request(f"{server}/docs").status == 200
    spec = request(f"{server}/openapi.json").json()
    body = spec["paths"]["/v1/upscale"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert "file" in body["required"] and {"model", "outscale", "format"} <= set(body["properties"])


def test_png_upload_returns_the_models_x4_png(server: str, registry: ModelRegistry) -> None:
    data = png_bytes(24, 16)
    answer = upscale(server, data, filename="holiday photo.png")
    assert answer.status == 200, answer.body[:300]
    assert answer.headers["content-type"] == "image/png"
    out = answer.image()
    assert out.format == "PNG" and out.size == (96, 64) and out.mode == "RGB"
    assert answer.headers["x-output-size"] == "96x64" and answer.headers["x-input-size"] == "24x16"
    timing = answer.headers["server-timing"]
    assert all(f"{k};dur=" in timing for k in ("upload", "queue", "decode", "infer", "encode", "total"))
    assert 'filename="holiday_photo_x4.png"' in answer.headers["content-disposition"]
    # The same pixels as the library computes with the same weights: the service runs the model.
    pixels = torch.from_numpy(np.asarray(Image.open(io.BytesIO(data)), dtype=np.float32) / 255).permute(
        2, 0, 1
    )
    expected = upscale_image(registry.upscaler("tiny", "fp32"), ImageData(pixels=pixels.contiguous()))
    want = (expected.pixels.clamp(0, 1) * 255).round().permute(1, 2, 0).numpy().astype(np.uint8)
    assert np.array_equal(np.asarray(out), want)


def test_any_outscale_format_and_the_bicubic_baseline(server: str) -> None:
    data = png_bytes(24, 16, seed=3)
    half = upscale(server, data, {"outscale": "1.5", "format": "jpg", "quality": "80"})
    assert half.status == 200 and half.headers["content-type"] == "image/jpeg"
    assert half.image().format == "JPEG" and half.image().size == (36, 24)
    webp = upscale(server, data, {"outscale": "2", "format": "webp"})
    assert webp.status == 200 and webp.image().format == "WEBP" and webp.image().size == (48, 32)
    model = upscale(server, data, {"outscale": "3"})
    base = upscale(server, data, {"outscale": "3", "model": "bicubic"})
    assert model.image().size == base.image().size == (72, 48)
    assert base.headers["x-model"] == "bicubic"
    assert not np.array_equal(np.asarray(model.image()), np.asarray(base.image()))
    # Options may come as query parameters too, with the raw image as the body.
    raw = request(
        f"{server}/v1/upscale?outscale=2", data=data, headers={"Content-Type": "application/octet-stream"}
    )
    assert raw.status == 200 and raw.image().size == (48, 32)


def test_grayscale_and_alpha_are_kept(server: str) -> None:
    gray = upscale(server, png_bytes(10, 8, "L"))
    assert gray.status == 200 and gray.image().mode == "L" and gray.image().size == (40, 32)
    rgba = upscale(server, png_bytes(10, 8, "RGBA"))
    assert rgba.status == 200 and rgba.image().mode == "RGBA" and rgba.image().size == (40, 32)


def test_16bit_png_comes_back_as_16bit_png(server: str, registry: ModelRegistry) -> None:
    arr = np.random.default_rng(5).integers(0, 65536, (8, 10, 3), dtype=np.uint16)
    data = encode_png16(arr)
    answer = upscale(server, data)
    assert answer.status == 200 and answer.headers["content-type"] == "image/png"
    assert answer.body[24] == 16 and answer.image().size == (40, 32)  # IHDR bit depth
    # Every bit the library computes from the 16-bit input, not 8-bit values scaled up.
    expected = upscale_image(registry.upscaler("tiny", "fp32"), read_image(data))
    out = read_rgb(answer.body)
    assert np.array_equal(out, read_rgb(encode_image(expected, "PNG")))
    assert (out % 257 != 0).any()
    jpeg = upscale(server, data, {"format": "jpg"})
    assert jpeg.status == 200 and jpeg.image().mode == "RGB" and jpeg.image().size == (40, 32)


def test_content_is_sniffed_not_taken_from_name_or_type(server: str) -> None:
    buf = io.BytesIO()
    Image.fromarray(np.full((8, 8, 3), 120, np.uint8)).save(buf, "JPEG")
    answer = upscale(server, buf.getvalue(), filename="photo.png", ctype="image/png")
    assert answer.status == 200 and answer.image().size == (32, 32)
    fake = upscale(server, b"<html>not an image</html>" * 4, filename="photo.png", ctype="image/png")
    assert_json_error(fake, 415)


# -------------------------------------------------------------------------------------------- errors


def test_garbage_and_broken_images_answer_4xx_json(server: str) -> None:
    assert "not an image" in assert_json_error(upscale(server, os.urandom(3000)), 415)["message"]
    truncated = png_bytes(24, 16)[:120]
    assert_json_error(upscale(server, truncated), 400)
    assert_json_error(upscale(server, b""), 400)
    assert_json_error(upscale(server, None, {"outscale": "2"}), 400)  # no file part
    body, ctype = multipart({}, png_bytes())
    assert_json_error(request(f"{server}/v1/upscale", data=body[:-30], headers={"Content-Type": ctype}), 400)


@pytest.mark.parametrize(
    ("fields", "needle"),
    [
        ({"outscale": "abc"}, "outscale"),
        ({"outscale": "0"}, "outscale"),
        ({"outscale": "100"}, "outscale"),
        ({"outscale": "nan"}, "outscale"),
        ({"model": "nope"}, "unknown model"),
        ({"format": "gif"}, "format"),
        ({"quality": "0"}, "quality"),
        ({"precision": "fp8"}, "precision"),
        ({"colour": "red"}, "unknown option"),
        ({"request_id": "../../etc"}, "request_id"),
    ],
)
def test_bad_options_answer_400(server: str, fields: dict[str, str], needle: str) -> None:
    assert needle in assert_json_error(upscale(server, png_bytes(), fields), 400)["message"]


def test_a_pixel_bomb_is_refused_from_its_header(server: str) -> None:
    # Small files with one row of pixels claiming 3000x3000 and 30000x30000: decoding them would fail with
    # 400, so a 413 shows the size was refused from the header alone, before any decoding.
    answer = upscale(server, png_header_only(3000, 3000))
    assert "3000x3000 = 9.0 MP" in assert_json_error(answer, 413)["message"]
    assert_json_error(upscale(server, png_header_only(30000, 30000)), 413)
    # Within the input limit (0.1 MP), but x8 would be above the output limit (2 MP).
    flat = io.BytesIO()
    Image.new("RGB", (300, 300), (90, 120, 150)).save(flat, "PNG")
    big_out = upscale(server, flat.getvalue(), {"outscale": "8"})
    assert "output" in assert_json_error(big_out, 413)["message"]


def test_uploads_over_the_byte_limit_answer_413(server: str) -> None:
    noise = os.urandom(300_000)  # the limit is 200 kB
    assert_json_error(upscale(server, noise), 413)
    # Without a Content-Length (chunked), the limit holds while streaming.
    body, ctype = multipart({}, noise)
    host, port = server.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    conn.putrequest("POST", "/v1/upscale")
    conn.putheader("Content-Type", ctype)
    conn.putheader("Transfer-Encoding", "chunked")
    conn.endheaders()
    for start in range(0, len(body), 16384):
        chunk = body[start : start + 16384]
        conn.send(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
    conn.send(b"0\r\n\r\n")
    res = conn.getresponse()
    assert_json_error(Answer(res.status, dict(res.getheaders()), res.read()), 413)
    conn.close()


def test_unknown_paths_and_methods_answer_json(server: str) -> None:
    assert_json_error(request(f"{server}/nope"), 404)
    assert_json_error(request(f"{server}/v1/upscale"), 405)
    assert_json_error(request(f"{server}/v1/progress/unknown-request-id"), 404)


def test_animated_images_are_unsupported(server: str) -> None:
    frames = [Image.fromarray(np.full((8, 8, 3), v, np.uint8)) for v in (0, 255)]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:])
    assert "frames" in assert_json_error(upscale(server, buf.getvalue()), 415)["message"]


# ------------------------------------------------------------------------------- metrics, logs, progress


def test_progress_metrics_and_access_log(server: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=ACCESS_LOGGER)
    answer = upscale(server, png_bytes(), {"request_id": "progress-test-0001"})
    assert answer.status == 200
    progress = request(f"{server}/v1/progress/progress-test-0001").json()
    assert progress["stage"] == "done" and progress["tiles_done"] == progress["tiles_total"] >= 1
    # Once the model has run, later requests carry an estimate of their upscaling time for the page.
    assert upscale(server, png_bytes(), {"request_id": "progress-test-0002"}).status == 200
    assert request(f"{server}/v1/progress/progress-test-0002").json()["expected_s"] > 0
    upscale(server, b"garbage" * 10)
    metrics = request(f"{server}/metrics")
    assert metrics.status == 200 and metrics.headers["content-type"].startswith("text/plain")
    text = metrics.body.decode()
    assert 'esrgan_http_requests_total{method="POST",route="/v1/upscale",status="200"}' in text
    assert 'esrgan_http_errors_total{route="/v1/upscale",status="415"}' in text
    assert 'esrgan_upscale_seconds_per_megapixel_count{model="tiny"}' in text
    assert "esrgan_queue_depth 0" in text
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == ACCESS_LOGGER]
    ok = [line for line in lines if line["route"] == "/v1/upscale" and line["status"] == 200]
    assert ok, lines
    assert {"ts", "ms", "infer_ms", "queue_ms", "model", "input", "output", "bytes_in"} <= set(ok[-1])
    assert any(line["status"] == 415 for line in lines)


# ----------------------------------------------------------------------------------------------- API key


def test_api_key_is_required_when_set(weights: Path, registry: ModelRegistry) -> None:
    with running_server(settings_for(weights, api_key=KEY), registry=registry) as srv:
        missing = upscale(srv.url, png_bytes())
        assert_json_error(missing, 401)
        assert missing.headers["www-authenticate"] == "Bearer"
        assert_json_error(upscale(srv.url, png_bytes(), headers={"X-API-Key": "wrong"}), 401)
        assert_json_error(request(f"{srv.url}/v1/models"), 401)
        assert_json_error(request(f"{srv.url}/metrics"), 401)
        assert upscale(srv.url, png_bytes(), headers={"X-API-Key": KEY}).status == 200
        assert upscale(srv.url, png_bytes(), headers={"Authorization": f"Bearer {KEY}"}).status == 200
        # The page and the health check stay open: the page asks for the key itself.
        assert request(f"{srv.url}/healthz").json()["api_key_required"] is True
        assert request(f"{srv.url}/").status == 200


def test_a_non_loopback_address_needs_a_key() -> None:
    for host in ("0.0.0.0", "::", "192.168.1.10", "example.org"):
        with pytest.raises(ValueError, match="API key"):
            ServeSettings(host=host)
        ServeSettings(host=host, api_key=KEY)
    for host in ("127.0.0.1", "127.8.0.1", "::1", "localhost"):
        ServeSettings(host=host)


# --------------------------------------------------------------------------------- concurrency and limits


def _block_the_worker(app: object) -> threading.Event:
    """Occupy the single worker with a job that waits for the returned event (the pool's own API)."""
    pool = app.state.pool  # type: ignore[attr-defined]
    release = threading.Event()
    ticket = pool.try_admit()
    assert ticket is not None
    pool.submit(ticket, lambda: release.wait(60))
    deadline = time.monotonic() + 30
    while pool.running == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert pool.running == 1
    return release


def test_a_full_queue_answers_503_and_the_server_stays_up(weights: Path, registry: ModelRegistry) -> None:
    settings = settings_for(weights, workers=1, queue_size=4)
    with running_server(settings, registry=registry) as srv:
        pool = srv.app.state.pool
        release = _block_the_worker(srv.app)
        data = png_bytes(16, 16)
        with ThreadPoolExecutor(max_workers=16) as ex:
            futures = [ex.submit(upscale, srv.url, data) for _ in range(16)]
            try:
                # With the worker busy, exactly 4 requests fit in the queue; the other 12 are refused at once.
                deadline = time.monotonic() + 60
                while sum(f.done() for f in futures) < 12 and time.monotonic() < deadline:
                    time.sleep(0.02)
                refused = [f.result() for f in futures if f.done()]
                assert len(refused) == 12
                for answer in refused:
                    assert_json_error(answer, 503)
                    assert int(answer.headers["retry-after"]) >= 1
                health = request(f"{srv.url}/healthz").json()
                assert health["queue_depth"] == 4 and health["running"] == 1
                assert "esrgan_queue_depth 4" in request(f"{srv.url}/metrics").body.decode()
            finally:
                release.set()
            done, _ = wait(futures, timeout=120)
        answers = [f.result() for f in futures]
        assert len(done) == 16
        assert sorted(a.status for a in answers) == [200] * 4 + [503] * 12
        assert all(a.image().size == (64, 64) for a in answers if a.status == 200)
        assert pool.peak_admitted == 5 and pool.admitted == 0  # never more than workers + queue held
        assert upscale(srv.url, data).status == 200  # and the server is still up


def test_the_time_limit_answers_504_and_frees_the_place(weights: Path, registry: ModelRegistry) -> None:
    settings = settings_for(weights, workers=1, queue_size=1, request_timeout_s=0.5)
    with running_server(settings, registry=registry) as srv:
        pool = srv.app.state.pool
        release = _block_the_worker(srv.app)
        try:
            answer = upscale(srv.url, png_bytes())
            assert "0.5 s" in assert_json_error(answer, 504)["message"]
            assert pool.admitted == 1  # only the blocking job: the timed-out request gave its place back
        finally:
            release.set()
        assert upscale(srv.url, png_bytes()).status == 200


# ---------------------------------------------------------------------------------------------- the CLI


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_serve(weights: Path, log_path: Path) -> tuple[subprocess.Popen[bytes], str, Answer]:
    """``esrgan serve`` on a free port, answering /healthz: the process, its base URL and that answer.

    Another process may take the free port before the server binds it; the server then exits with its
    one-line "port taken" error, and this tries a new port (three times at most).
    """
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    for _attempt in range(3):
        port = _free_port()
        base = f"http://127.0.0.1:{port}"
        cmd = [sys.executable, "-m", "esrgan", "serve", "--host", "127.0.0.1", "--port", str(port)]
        cmd += ["--model", str(weights), "--device", "cpu", "--tile", "0"]
        with log_path.open("w") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 120
        while proc.poll() is None:
            try:  # a short timeout: a port taken by a silent listener accepts and never answers
                with urllib.request.urlopen(f"{base}/healthz", timeout=2) as res:
                    return proc, base, Answer(res.status, dict(res.headers), res.read())
            except OSError:
                if time.monotonic() > deadline:
                    proc.kill()
                    proc.wait()
                    raise AssertionError("esrgan serve did not answer /healthz in time") from None
                time.sleep(0.2)
        output = log_path.read_text()
        if not (proc.returncode == 2 and f"127.0.0.1:{port}" in output):
            raise AssertionError(output)
    raise AssertionError("three free ports were taken before esrgan serve could bind them")


def test_esrgan_serve_command_end_to_end(weights: Path, tmp_path: Path) -> None:
    log_path = tmp_path / "serve.log"
    proc, base, health = _start_serve(weights, log_path)
    try:
        assert health.status == 200 and health.json()["models"] == ["tiny"]
        answer = upscale(base, png_bytes(20, 12))
        assert answer.status == 200 and answer.image().format == "PNG" and answer.image().size == (80, 48)
        assert_json_error(upscale(base, b"definitely not an image"), 415)
        assert b"/static/app.js" in request(f"{base}/").body
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    output = log_path.read_text()
    access = [json.loads(line) for line in output.splitlines() if line.startswith('{"ts"')]
    assert any(line["route"] == "/v1/upscale" and line["status"] == 200 for line in access), output


def test_serve_start_moves_to_a_new_port_when_the_free_one_is_taken(
    weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        taken_port = taken.getsockname()[1]
        offered = iter([taken_port, _free_port()])
        monkeypatch.setattr(sys.modules[__name__], "_free_port", lambda: next(offered))
        proc, base, health = _start_serve(weights, tmp_path / "serve.log")
    try:
        assert health.status == 200 and health.json()["models"] == ["tiny"]
        assert not base.endswith(f":{taken_port}") and next(offered, None) is None  # both ports were tried
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--host", "0.0.0.0"], "API key"),
        (["--api-key-env", "ESRGAN_TEST_UNSET_VARIABLE"], "not set"),
        (["--model", "/nonexistent/weights.safetensors"], "weights.safetensors"),
        (["--precision", "fp9"], "precision"),
    ],
)
def test_esrgan_serve_reports_bad_options_in_one_line(args: list[str], needle: str) -> None:
    from typer.testing import CliRunner

    from esrgan.cli import app

    os.environ.pop("ESRGAN_TEST_UNSET_VARIABLE", None)
    result = CliRunner().invoke(app, ["serve", "--port", "0", *args])
    assert result.exit_code == 2, result.output
    assert needle in result.output and "Traceback" not in result.output


def test_a_taken_port_is_reported(weights: Path) -> None:
    from typer.testing import CliRunner

    from esrgan.cli import app

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = CliRunner().invoke(
            app, ["serve", "--port", str(port), "--model", str(weights), "--device", "cpu"]
        )
    assert result.exit_code == 2 and f"127.0.0.1:{port}" in result.output, result.output
