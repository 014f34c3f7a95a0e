"""Load test of `esrgan serve` on loopback: a bounded burst of valid, oversized and corrupt uploads.

    .venv/bin/python scripts/load_serve.py --requests 300 --concurrency 16 --workers 1 --queue 4

Starts a real `esrgan serve` process on 127.0.0.1 (a free port) with a tiny model written to a temporary
folder, sends `--requests` POST /v1/upscale requests from `--concurrency` client threads (more than the
server's workers + queue, so some must be refused with 503; a refused request is sent again after its
Retry-After, up to `--retries` times, so every kind of upload reaches the server's checks), then checks
the server is still alive and answering /healthz. The mix (seeded): 60% valid PNG/JPEG/WebP images,
15% oversized (a header above --max-pixels with almost no data, or an upload above --max-upload-mb),
25% corrupt (mutated images of every format, random bytes, empty files).

Prints latency percentiles (all answers, and the 200s), the share of each status, other 5xx answers,
client-side connection errors, and the server's peak RSS (VmHWM); exits 1 if any answer was a 5xx other
than 503, a request failed at the connection level, an answer had the wrong status for its kind, or the
server died. Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fuzz_images  # the seed images and mutators of the fuzz run

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Payload:
    kind: str
    """valid, oversized or corrupt."""
    name: str
    data: bytes
    expected: frozenset[int]
    """Statuses that are right for this payload (503 is always acceptable under load)."""


@dataclass(frozen=True)
class Answer:
    payload: Payload
    status: int | None
    """None: the connection failed."""
    seconds: float
    detail: str
    retry_after: float = 0.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _encode(arr: np.ndarray, fmt: str) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt, **({"quality": 90} if fmt in ("JPEG", "WEBP") else {}))
    return buf.getvalue()


def make_payloads(count: int, *, seed: int, max_pixels: int, max_upload: int) -> list[Payload]:
    """A shuffled, seeded mix of valid, oversized and corrupt uploads."""
    rng = random.Random(seed)
    nrng = np.random.default_rng(seed)
    seeds = fuzz_images.seed_images(nrng)
    small_seeds = sorted(n for n in seeds if not n.startswith(("zeros", "huge", "bomb", "animated")))
    ok = frozenset({200})
    out: list[Payload] = []
    for i in range(count):
        roll = rng.random()
        if roll < 0.60:
            side = rng.choice([32, 48, 64])
            fmt = rng.choice(["PNG", "JPEG", "WEBP"])
            arr = nrng.integers(0, 256, (side, side, 3), np.uint8)
            out.append(Payload("valid", f"v{i}.{fmt.lower()}", _encode(arr, fmt), ok))
        elif roll < 0.75:
            if rng.random() < 0.5:
                side = int(max_pixels**0.5) * 4  # 16x the pixel limit, a few hundred bytes of data
                data = fuzz_images.png16(np.zeros((1, 1, 3), np.uint16), [0])
                data = data[:16] + side.to_bytes(4, "big") * 2 + data[24:]
                data = fuzz_images.PNG_SIGNATURE + b"".join(
                    fuzz_images._png_chunk(k, p) for k, p in (fuzz_images.png_chunks(data) or [])
                )
                out.append(Payload("oversized", f"bomb{i}.png", data, frozenset({413})))
            else:
                data = os.urandom(max_upload + 1024)
                out.append(Payload("oversized", f"big{i}.png", data, frozenset({413})))
        else:
            choice = rng.random()
            if choice < 0.1:
                data = b""
            elif choice < 0.2:
                data = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 4096)))
            else:
                name = rng.choice(small_seeds)
                data = fuzz_images.mutate(seeds[name], rng)
            # A mutation can leave a readable image (200) or a format/size the service refuses.
            out.append(Payload("corrupt", f"c{i}.img", data, frozenset({200, 400, 413, 415})))
    return out


def _multipart(payload: Payload) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{payload.name}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    return (
        head + payload.data + f"\r\n--{boundary}--\r\n".encode(),
        f"multipart/form-data; boundary={boundary}",
    )


def send(port: int, payload: Payload, timeout: float) -> Answer:
    body, content_type = _multipart(payload)
    start = time.perf_counter()
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("POST", "/v1/upscale", body=body, headers={"Content-Type": content_type})
        res = conn.getresponse()
        data = res.read()
        detail = ""
        if res.status != 200:
            try:
                detail = json.loads(data).get("error", "")
            except ValueError:
                detail = f"not JSON: {data[:80]!r}"
        retry_after = float(res.getheader("Retry-After") or 0)
        if res.status == 503 and not retry_after:
            detail += " (no Retry-After)"
        return Answer(payload, res.status, time.perf_counter() - start, detail, retry_after)
    except (OSError, http.client.HTTPException) as exc:
        return Answer(payload, None, time.perf_counter() - start, f"{type(exc).__name__}: {exc}")
    finally:
        conn.close()


def send_with_retries(
    port: int, payload: Payload, *, timeout: float, retries: int, seed: int
) -> list[Answer]:
    """Every attempt at one request: a 503 is retried after its Retry-After (with jitter), as a polite
    client does, up to `retries` times."""
    jitter = random.Random(seed)
    attempts = [send(port, payload, timeout)]
    while attempts[-1].status == 503 and len(attempts) <= retries:
        time.sleep(attempts[-1].retry_after * jitter.uniform(0.5, 1.5))
        attempts.append(send(port, payload, timeout))
    return attempts


def _rss_kib(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _get(port: int, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        conn.request("GET", path)
        res = conn.getresponse()
        return res.status, res.read()
    finally:
        conn.close()


def wait_until_up(proc: subprocess.Popen[bytes], port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"esrgan serve exited with status {proc.returncode} while starting")
        try:
            if _get(port, "/healthz")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"esrgan serve did not answer /healthz within {timeout:g} s")


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--queue", type=int, default=4)
    parser.add_argument("--max-pixels", type=int, default=262_144)
    parser.add_argument("--max-upload-mb", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--retries", type=int, default=20, help="retries of a 503 (after Retry-After)")
    parser.add_argument("--client-timeout", type=float, default=120.0)
    parser.add_argument("--startup-timeout", type=float, default=600.0)
    args = parser.parse_args(argv)
    max_upload = round(args.max_upload_mb * 2**20)

    import torch

    from esrgan.models import RRDBNet
    from esrgan.weights import save_generator

    payloads = make_payloads(args.requests, seed=args.seed, max_pixels=args.max_pixels, max_upload=max_upload)
    with tempfile.TemporaryDirectory(prefix="load_serve_") as tmp:
        torch.manual_seed(0)
        model = Path(tmp) / "tiny_x4.safetensors"
        save_generator(RRDBNet(num_feat=8, num_block=1, num_grow_ch=4, scale=4), model)
        port = _free_port()
        cmd = [sys.executable, "-m", "esrgan", "serve", "--host", HOST, "--port", str(port)]
        cmd += ["--model", str(model), "--workers", str(args.workers), "--queue", str(args.queue)]
        cmd += ["--max-pixels", str(args.max_pixels), "--max-upload-mb", str(args.max_upload_mb)]
        cmd += ["--device", "cpu", "--precision", "fp32", "--log-level", "warning"]
        log_path = Path(tmp) / "server.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_until_up(proc, port, args.startup_timeout)
            rss_before = _rss_kib(proc.pid, "VmRSS")
            start = time.perf_counter()
            with ThreadPoolExecutor(args.concurrency) as pool:
                tries = list(
                    pool.map(
                        lambda ip: send_with_retries(
                            port, ip[1], timeout=args.client_timeout, retries=args.retries, seed=ip[0]
                        ),
                        enumerate(payloads),
                    )
                )
            wall = time.perf_counter() - start
            alive = proc.poll() is None
            health = _get(port, "/healthz")[0] if alive else None
            peak_kib = _rss_kib(proc.pid, "VmHWM") if alive else 0
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        server_log = log_path.read_text(errors="replace")

    answers = [attempt for attempts in tries for attempt in attempts]
    finals = [attempts[-1] for attempts in tries]
    statuses = Counter(a.status for a in answers)
    conn_errors = [a for a in answers if a.status is None]
    other_5xx = [a for a in answers if a.status is not None and a.status >= 500 and a.status != 503]
    wrong = [a for a in answers if a.status not in (*a.payload.expected, 503, None)]
    no_retry_after = [a for a in answers if "no Retry-After" in a.detail]
    all_ms = [a.seconds * 1e3 for a in answers if a.status is not None]
    ok_ms = [a.seconds * 1e3 for a in answers if a.status == 200]
    refused_ms = [a.seconds * 1e3 for a in answers if a.status == 503]
    kinds = Counter(a.payload.kind for a in finals)
    print(f"server: {' '.join(cmd[1:])}".replace(str(model), "TINY_MODEL"))
    for kind in ("valid", "oversized", "corrupt"):
        by_status = Counter(a.status for a in finals if a.payload.kind == kind)
        shown = ", ".join(f"{s} x {n}" for s, n in sorted(by_status.items(), key=lambda kv: kv[0] or 0))
        print(f"{kind}: {kinds[kind]} requests, final answers: {shown}")
    for a in (other_5xx + conn_errors + wrong)[:10]:
        print(f"  {a.payload.kind} {a.payload.name}: status {a.status} ({a.detail})", file=sys.stderr)
    if other_5xx or not alive:
        print(server_log[-4000:], file=sys.stderr)
    share_503 = statuses.get(503, 0) / len(answers)
    print(
        f"load_serve: {len(finals)} requests ({len(answers)} attempts, 503s retried after Retry-After up "
        f"to {args.retries} times) at concurrency {args.concurrency} (workers {args.workers}, queue "
        f"{args.queue}) in {wall:.1f} s; latency p50 {percentile(all_ms, 50):.0f} ms, "
        f"p95 {percentile(all_ms, 95):.0f} ms (200s: p50 {percentile(ok_ms, 50):.0f} ms, "
        f"p95 {percentile(ok_ms, 95):.0f} ms; 503s: p95 {percentile(refused_ms, 95):.0f} ms); "
        f"503 {share_503:.1%} of attempts; other 5xx {len(other_5xx)}; "
        f"connection errors {len(conn_errors)}; unexpected statuses {len(wrong)}; "
        f"server alive {'yes' if alive and health == 200 else 'NO'}; "
        f"server RSS {rss_before / 1024:.0f} MiB idle, peak {peak_kib / 1024:.0f} MiB"
    )
    bad = other_5xx or conn_errors or wrong or no_retry_after or not alive or health != 200
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
