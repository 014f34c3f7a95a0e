"""Fuzz the image reader and `esrgan upscale` with a seeded corpus of mutated and odd-but-valid images.

    .venv/bin/python scripts/fuzz_images.py --count 1000 --seed 0

Builds valid seed images in memory (PNG 8/16-bit in every colour type, interlaced and filtered 16-bit
PNGs, palette with transparency, CMYK and EXIF-rotated JPEG, WebP, TIFF, GIF (animated too), BMP, 1x1 and
1xN, huge headers with tiny data, zlib bombs), mutates them (bit flips, cut, spliced spans, edited
header fields with CRCs fixed so decoders go deeper, damaged filter bytes in re-compressed PNG data), then:

1. reads every file with `read_image` and `read_rgb` (and 16-bit PNGs with `decode_png16`, OpenCV) in a worker
   process, each file under a timeout: the worker dying is a crash, a timeout a hang, any exception but a
   one-line `ImageError` naming the file (`ValueError` for `decode_png16`) a crash;
2. runs `esrgan upscale` once over the whole corpus folder with a tiny model: every failure must be one
   `error: ...` line, no traceback, every output a complete image, no temporary file left, inputs unchanged.

Ends with one summary line (files, ok, clean errors, crashes, hangs, seconds); exit status 1 when anything
crashed, hung or misbehaved. The mutators are also driven by hypothesis in tests/test_fuzz_images.py.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import random
import re
import select
import struct
import subprocess
import sys
import tempfile
import time
import traceback
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))
INTERESTING_BYTES = (0x00, 0x01, 0x7F, 0x80, 0xFF, 0xFE, 0x10, 0x40)
LIBTIFF_NOTE = re.compile(r"^_?(TIFF\w*|\w*(Decode|Encode|Setup|Decoder)\w*|tempfile\.tif): \S")
INTERESTING_INTS = (0, 1, 2, 255, 256, 65535, 65536, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 100_000)


# ------------------------------------------------------------------------------------------ seeds


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _paeth(a: int, b: int, c: int) -> int:
    pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
    return a if pa <= pb and pa <= pc else b if pb <= pc else c


def filtered_scanlines(arr: np.ndarray, kinds: list[int]) -> bytes:
    """PNG scanlines of a 16-bit (H,W,C) array, row y filtered with kinds[y % len(kinds)] (spec 9.2)."""
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


def png16(arr: np.ndarray, kinds: list[int], *, interlace: bool = False, idat: bytes | None = None) -> bytes:
    """A 16-bit PNG of `arr` (H,W,C) with the given row filters, Adam7-interlaced on request."""
    h, w, c = arr.shape
    if idat is None:
        subs = [arr[y0::dy, x0::dx] for x0, y0, dx, dy in ADAM7] if interlace else [arr]
        idat = zlib.compress(b"".join(filtered_scanlines(s, kinds) for s in subs if s.size), 9)
    ihdr = struct.pack(">IIBBBBB", w, h, 16, {1: 0, 2: 4, 3: 2, 4: 6}[c], 0, 0, int(interlace))
    return PNG_SIGNATURE + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def _pil(arr: np.ndarray, mode: str | None = None) -> object:
    from PIL import Image

    return Image.fromarray(arr) if mode is None else Image.fromarray(arr).convert(mode)


def _save(img: object, fmt: str, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)  # type: ignore[attr-defined]
    return buf.getvalue()


def _zlib_bomb(size: int) -> bytes:
    """zlib data that inflates to `size` zero bytes (about 1000:1), built without holding `size` bytes."""
    comp = zlib.compressobj(9)
    chunk = bytes(1 << 20)
    parts = [comp.compress(chunk) for _ in range(size >> 20)]
    parts += [comp.compress(bytes(size & ((1 << 20) - 1))), comp.flush()]
    return b"".join(parts)


def seed_images(rng: np.random.Generator) -> dict[str, bytes]:
    """Valid (and odd-but-valid) images by name; the extension says the format."""
    from PIL import Image

    def noise(h: int, w: int, c: int, dtype: type = np.uint8) -> np.ndarray:
        top = 65536 if dtype == np.uint16 else 256
        shape = (h, w) if c == 1 else (h, w, c)
        return rng.integers(0, top, size=shape, dtype=dtype)

    rgb, rgba, grey = noise(16, 24, 3), noise(16, 24, 4), noise(16, 24, 1)
    seeds: dict[str, bytes] = {
        "rgb.png": _save(_pil(rgb), "PNG"),
        "rgba.png": _save(_pil(rgba), "PNG"),
        "grey.png": _save(_pil(grey), "PNG"),
        "grey_alpha.png": _save(_pil(rgba, "LA"), "PNG"),
        "bilevel.png": _save(_pil(grey, "1"), "PNG"),
        "one_by_one.png": _save(_pil(noise(1, 1, 3)), "PNG"),
        "one_by_n.png": _save(_pil(noise(1, 300, 3)), "PNG"),
        "n_by_one.png": _save(_pil(noise(300, 1, 1)), "PNG"),
        "grey16.png": _save(Image.fromarray(noise(12, 10, 1, np.uint16)), "PNG"),
        "rgb16_sub.png": png16(noise(9, 11, 3, np.uint16), [1]),
        "rgba16_mixed.png": png16(noise(9, 11, 4, np.uint16), [0, 1, 2, 3, 4]),
        "ga16_up.png": png16(noise(7, 5, 2, np.uint16), [2]),
        "rgb16_interlaced.png": png16(noise(13, 10, 3, np.uint16), [4, 3, 2], interlace=True),
        "rgb16_1x1_interlaced.png": png16(noise(1, 1, 3, np.uint16), [4], interlace=True),
        "rgb16_1xN_paeth.png": png16(noise(1, 700, 3, np.uint16), [4]),
        # A zlib bomb: a 1x1 16-bit PNG whose IDAT inflates to 256 MiB.
        "bomb16_1x1.png": png16(noise(1, 1, 3, np.uint16), [0], idat=_zlib_bomb(256 << 20)),
    }

    def png16_header_only(width: int, height: int, idat: bytes) -> bytes:
        ihdr = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
        return (
            PNG_SIGNATURE + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")
        )

    # Huge dimensions, tiny data: refused from the header (above the default 100 MP limit) ...
    seeds["huge_header.png"] = png16_header_only(60000, 60000, zlib.compress(bytes(100)))
    gif = bytearray(_save(_pil(noise(1, 1, 3)).convert("P"), "GIF"))  # type: ignore[attr-defined]
    gif[6:10] = struct.pack("<HH", 65535, 65535)  # the logical screen, which Pillow takes as the size
    seeds["huge_header.gif"] = bytes(gif)
    # ... or within it: 3000x3000 16-bit RGB of zeros in 50 kB (a 54 MB image, decoded in full).
    seeds["zeros16_3000.png"] = png16_header_only(3000, 3000, _zlib_bomb(3000 * (3000 * 6 + 1)))
    seeds["zeros8_4000.png"] = _save(Image.new("RGB", (4000, 4000)), "PNG", compress_level=9)
    palette = _pil(rgb).quantize(16)  # type: ignore[attr-defined]
    seeds["palette_trns.png"] = _save(palette, "PNG", transparency=3)
    seeds["palette.gif"] = _save(palette, "GIF", transparency=2)
    frames = [_pil(noise(10, 12, 3)).convert("P") for _ in range(3)]  # type: ignore[attr-defined]
    seeds["animated.gif"] = _save(frames[0], "GIF", save_all=True, append_images=frames[1:], loop=0)
    seeds["rgb.jpg"] = _save(_pil(rgb), "JPEG", quality=90)
    seeds["grey.jpg"] = _save(_pil(grey), "JPEG")
    seeds["progressive.jpg"] = _save(_pil(noise(32, 40, 3)), "JPEG", progressive=True)
    seeds["cmyk.jpg"] = _save(_pil(rgb, "CMYK"), "JPEG")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90 degrees
    seeds["exif_rotated.jpg"] = _save(_pil(rgb), "JPEG", exif=exif.tobytes())
    seeds["exif_rotated.png"] = _save(_pil(rgba), "PNG", exif=exif.tobytes())
    seeds["lossy.webp"] = _save(_pil(rgb), "WEBP", quality=80)
    seeds["lossless_alpha.webp"] = _save(_pil(rgba), "WEBP", lossless=True)
    seeds["raw.tif"] = _save(_pil(rgb), "TIFF")
    seeds["deflate.tif"] = _save(_pil(rgba), "TIFF", compression="tiff_deflate")
    seeds["lzw.tif"] = _save(_pil(grey), "TIFF", compression="tiff_lzw")
    seeds["grey16.tif"] = _save(Image.fromarray(noise(8, 9, 1, np.uint16)), "TIFF")
    seeds["cmyk.tif"] = _save(_pil(rgb, "CMYK"), "TIFF")
    seeds["rgb.bmp"] = _save(_pil(rgb), "BMP")
    return seeds


# -------------------------------------------------------------------------------------- mutators


def _flip_bits(data: bytearray, rng: random.Random) -> None:
    for _ in range(rng.randint(1, 8)):
        i = rng.randrange(len(data))
        data[i] ^= 1 << rng.randrange(8)


def _interesting_bytes(data: bytearray, rng: random.Random) -> None:
    for _ in range(rng.randint(1, 4)):
        data[rng.randrange(len(data))] = rng.choice(INTERESTING_BYTES)


def _interesting_int(data: bytearray, rng: random.Random) -> None:
    if len(data) >= 4:
        i = rng.randrange(len(data) - 3)
        value = rng.choice(INTERESTING_INTS) if rng.random() < 0.8 else rng.getrandbits(32)
        data[i : i + 4] = struct.pack(rng.choice([">I", "<I"]), value)


def _truncate(data: bytearray, rng: random.Random) -> None:
    del data[rng.randrange(len(data)) :]


def _delete_span(data: bytearray, rng: random.Random) -> None:
    i = rng.randrange(len(data))
    del data[i : i + rng.randint(1, 64)]


def _duplicate_span(data: bytearray, rng: random.Random) -> None:
    i = rng.randrange(len(data))
    span = data[i : i + rng.randint(1, 64)]
    j = rng.randrange(len(data))
    data[j:j] = span


def _insert_random(data: bytearray, rng: random.Random) -> None:
    j = rng.randrange(len(data))
    data[j:j] = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 32)))


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]] | None:
    """(type, payload) of every chunk of a well-formed PNG, or None."""
    if not data.startswith(PNG_SIGNATURE):
        return None
    pos, chunks = len(PNG_SIGNATURE), []
    while pos + 12 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        if pos + 12 + length > len(data):
            return None
        chunks.append((kind, data[pos + 8 : pos + 8 + length]))
        pos += 12 + length
    return chunks


def _png_structure(data: bytearray, rng: random.Random) -> None:
    """Edit a PNG field by field, recomputing CRCs so that decoders do not stop at the checksum."""
    chunks = png_chunks(bytes(data))
    if not chunks or chunks[0][0] != b"IHDR":
        _interesting_int(data, rng)
        return
    op = rng.randrange(6)
    kind, ihdr = chunks[0]
    if op == 0:  # header fields: size, depth, colour type, interlace
        fields = list(struct.unpack(">IIBBBBB", ihdr))
        k = rng.randrange(7)
        fields[k] = rng.choice(INTERESTING_INTS) if k < 2 else rng.choice([0, 1, 2, 3, 4, 6, 8, 16, 255])
        fields[k] &= 0xFFFFFFFF if k < 2 else 0xFF
        chunks[0] = (kind, struct.pack(">IIBBBBB", *fields))
    elif op in (1, 2):  # damage the inflated image data: filter types, bytes, length
        idat = b"".join(p for k, p in chunks if k == b"IDAT")
        try:
            raw = bytearray(zlib.decompress(idat))
        except zlib.error:
            raw = bytearray(idat)
        if raw:
            for _ in range(rng.randint(1, 6)):
                raw[rng.randrange(len(raw))] = rng.choice([5, 7, 255, 3, 4, rng.getrandbits(8)])
            if op == 2:
                del raw[rng.randrange(len(raw)) :]
        rest = [(k, p) for k, p in chunks if k != b"IDAT"]
        chunks = [*rest[:-1], (b"IDAT", zlib.compress(bytes(raw))), *rest[-1:]]
    elif op == 3:  # a second header, as a bypass of the size check would need
        fields = list(struct.unpack(">IIBBBBB", ihdr))
        fields[0] = fields[1] = rng.choice([40000, 100000, 0x7FFFFFFF])
        chunks.insert(1, (b"IHDR", struct.pack(">IIBBBBB", *fields)))
    elif op == 4:  # drop, repeat or reorder chunks
        i = rng.randrange(len(chunks))
        if rng.random() < 0.5:
            del chunks[i]
        else:
            chunks.insert(rng.randrange(len(chunks) + 1), chunks[i])
    else:  # split the image data into many small IDATs
        idat = b"".join(p for k, p in chunks if k == b"IDAT")
        step = rng.randint(1, 16)
        pieces = [(b"IDAT", idat[i : i + step]) for i in range(0, len(idat), step)]
        rest = [(k, p) for k, p in chunks if k != b"IDAT"]
        chunks = [*rest[:-1], *pieces, *rest[-1:]]
    data[:] = PNG_SIGNATURE + b"".join(_png_chunk(k, p) for k, p in chunks)


def _jpeg_size(data: bytearray, rng: random.Random) -> None:
    """Rewrite the frame size of a JPEG (SOF0/SOF2), as a 'huge dimensions, tiny data' file does."""
    for marker in (b"\xff\xc0", b"\xff\xc2"):
        i = data.find(marker)
        if i >= 0 and i + 9 <= len(data):
            h, w = rng.choice(INTERESTING_INTS) & 0xFFFF, rng.choice(INTERESTING_INTS) & 0xFFFF
            data[i + 5 : i + 9] = struct.pack(">HH", h, w)
            return
    _interesting_int(data, rng)


MUTATORS: tuple[Callable[[bytearray, random.Random], None], ...] = (
    _flip_bits,
    _interesting_bytes,
    _interesting_int,
    _truncate,
    _delete_span,
    _duplicate_span,
    _insert_random,
    _png_structure,
    _png_structure,
    _jpeg_size,
)


def mutate(data: bytes, rng: random.Random, *, steps: int | None = None) -> bytes:
    """Apply 1-3 random mutations (or `steps`) to `data`; never returns an empty file unless cut to it."""
    out = bytearray(data)
    for _ in range(steps if steps is not None else rng.randint(1, 3)):
        if not out:
            break
        rng.choice(MUTATORS)(out, rng)
    return bytes(out)


def build_corpus(folder: Path, *, count: int, seed: int) -> list[Path]:
    """Write the seeds (unmutated: they must read or fail cleanly too) and mutants up to `count` files."""
    rng = random.Random(seed)
    seeds = seed_images(np.random.default_rng(seed))
    names = sorted(seeds)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        name = names[i % len(names)]
        data = seeds[name] if i < len(names) else mutate(seeds[name], rng)
        stem, ext = name.rsplit(".", 1)
        path = folder / f"{i:05d}_{stem}.{ext}"
        path.write_bytes(data)
        paths.append(path)
    return paths


# --------------------------------------------------------------------------------- reader worker


def check_file(path: Path) -> tuple[str, str]:
    """('ok'|'error'|'crash', detail) for one file, in this process."""
    from esrgan.io import DEFAULT_MAX_PIXELS, ImageError, read_image, read_rgb
    from esrgan.io.png16 import decode_png16

    errors = []
    for read in (read_image, read_rgb):
        try:
            read(path)
        except ImageError as exc:
            text = str(exc)
            if "\n" in text or not text.startswith(f"{path}: "):
                return "crash", f"{read.__name__}: malformed error message {text!r}"
            errors.append(text)
        except Exception as exc:  # anything else is a bug: report it
            tb = traceback.format_exc(limit=-3)
            return "crash", f"{read.__name__}: {type(exc).__name__}: {exc}\n{tb}"
    data = path.read_bytes()
    if data.startswith(PNG_SIGNATURE):
        try:
            decode_png16(data, max_pixels=DEFAULT_MAX_PIXELS)
        except ValueError as exc:
            if "\n" in str(exc):
                return "crash", f"decode_png16: multi-line error {str(exc)!r}"
        except Exception as exc:
            tb = traceback.format_exc(limit=-3)
            return "crash", f"decode_png16: {type(exc).__name__}: {exc}\n{tb}"
    if len(errors) == 1:
        return "crash", f"read_image and read_rgb disagree: {errors[0]}"
    return ("error", errors[0]) if errors else ("ok", "")


def worker() -> None:
    """Read one path per stdin line, answer one JSON line per file (the parent enforces timeouts)."""
    import cv2  # noqa: F401 (these imports come before "ready": a slow start is not a hang)
    import torch

    import esrgan.io  # noqa: F401

    torch.set_num_threads(1)
    print("ready", flush=True)
    for line in sys.stdin:
        kind, detail = check_file(Path(line.rstrip("\n")))
        sys.stdout.write(json.dumps({"kind": kind, "detail": detail}) + "\n")
        sys.stdout.flush()


@dataclass
class Worker:
    """A `--worker` child process, restarted after it dies or hangs."""

    proc: subprocess.Popen[str] | None = None
    startup_timeout: float = 600.0
    """Seconds to import torch and esrgan (slow on a busy machine); not counted against any file."""

    def start(self) -> subprocess.Popen[str]:
        if self.proc is None or self.proc.poll() is not None:
            self.proc = subprocess.Popen(
                [sys.executable, __file__, "--worker"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
                bufsize=1,
            )
            assert self.proc.stdout is not None
            ready, _, _ = select.select([self.proc.stdout], [], [], self.startup_timeout)
            if not ready or self.proc.stdout.readline().strip() != "ready":
                self.stop()
                raise RuntimeError(f"the reader worker did not start within {self.startup_timeout:g} s")
        return self.proc

    def check(self, path: Path, timeout: float) -> tuple[str, str]:
        proc = self.start()
        assert proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write(f"{path}\n")
            proc.stdin.flush()
        except BrokenPipeError:
            self.stop()
            return "crash", "worker died before reading the file"
        ready, _, _ = select.select([proc.stdout], [], [], timeout)
        if not ready:
            self.stop()
            return "hang", f"no answer within {timeout:g} s"
        line = proc.stdout.readline()
        if not line:
            code = proc.wait()
            self.proc = None
            return "crash", f"worker died (exit status {code})"
        answer = json.loads(line)
        return answer["kind"], answer["detail"]

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


# ---------------------------------------------------------------------------------- upscale pass


@dataclass
class UpscaleReport:
    written: int = 0
    errors: int = 0
    libtiff_notes: int = 0
    problems: list[str] = field(default_factory=list)


def _digest(paths: list[Path]) -> dict[Path, str]:
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}


def upscale_pass(corpus: list[Path], work: Path, *, timeout: float) -> UpscaleReport:
    """`esrgan upscale` over the corpus folder with a tiny x2 model; checks its lines and outputs."""
    import torch
    from PIL import Image

    from esrgan.models import RRDBNet
    from esrgan.weights import save_generator

    torch.manual_seed(0)
    model = work / "tiny_x2.safetensors"
    save_generator(RRDBNet(num_feat=4, num_block=1, num_grow_ch=4, scale=2), model)
    out_dir = work / "upscaled"
    before = _digest(corpus)
    report = UpscaleReport()
    cmd = [sys.executable, "-m", "esrgan", "upscale", str(corpus[0].parent), "--model", str(model)]
    cmd += ["--out-dir", str(out_dir), "--max-pixels", "65536", "--device", "cpu", "--precision", "fp32"]
    cmd += ["--tile", "0", "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        report.problems.append(f"esrgan upscale did not finish within {timeout:g} s (hang)")
        return report
    if res.returncode not in (0, 1):
        report.problems.append(f"esrgan upscale exit status {res.returncode}: {res.stderr[-2000:]}")
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    report.errors = sum(line.startswith("error: ") for line in lines)
    # libtiff (C code inside Pillow) prints its own diagnostics straight to the stderr file descriptor.
    report.libtiff_notes = sum(bool(LIBTIFF_NOTE.match(line)) for line in lines)
    odd = [
        line
        for line in lines
        if not line.startswith(("error: ", "warning: ")) and not LIBTIFF_NOTE.match(line)
    ]
    report.problems += [f"stderr line that is not a one-line error: {line[:300]}" for line in odd]
    done = [line for line in res.stdout.splitlines() if line.startswith("done: ")]
    outputs = sorted(p for p in out_dir.rglob("*") if p.is_file()) if out_dir.exists() else []
    report.written = len(outputs)
    if not done:
        report.problems.append(f"no summary line: {res.stdout[-500:]}")
    elif not done[0].startswith(f"done: {len(outputs)} ok, {report.errors} failed"):
        report.problems.append(
            f"summary {done[0]!r} does not match {len(outputs)} outputs, {report.errors} errors"
        )
    for path in outputs:
        if path.name.startswith("."):
            report.problems.append(f"temporary file left behind: {path}")
            continue
        try:
            with Image.open(path) as im:
                im.load()
        except Exception as exc:
            report.problems.append(f"partial or unreadable output {path}: {exc}")
    changed = [p for p, h in _digest(corpus).items() if before[p] != h]
    report.problems += [f"input changed: {p}" for p in changed]
    return report


# ------------------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1000, help="files in the corpus (seeds included)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds per file before a hang")
    parser.add_argument("--keep", type=Path, help="write the corpus here and keep it (default: temp)")
    parser.add_argument("--no-upscale", action="store_true", help="skip the esrgan upscale pass")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker()
        return 0
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="fuzz_images_") as tmp:
        work = args.keep or Path(tmp)
        corpus = build_corpus(work / "corpus", count=args.count, seed=args.seed)
        counts = {"ok": 0, "error": 0, "crash": 0, "hang": 0}
        pool = Worker()
        try:
            for path in corpus:
                kind, detail = pool.check(path, args.timeout)
                counts[kind] += 1
                if kind in ("crash", "hang"):
                    print(f"{kind}: {path.name}: {detail}", file=sys.stderr)
        finally:
            pool.stop()
        upscale = None
        if not args.no_upscale:
            upscale = upscale_pass(corpus, work, timeout=60 + 2 * len(corpus))
            for problem in upscale.problems:
                print(f"upscale: {problem}", file=sys.stderr)
    seconds = time.perf_counter() - start
    line = (
        f"fuzz_images: files {len(corpus)}, ok {counts['ok']}, clean errors {counts['error']}, "
        f"crashes {counts['crash']}, hangs {counts['hang']}, seconds {seconds:.1f}"
    )
    if upscale is not None:
        line += (
            f"; esrgan upscale: {upscale.written} written, {upscale.errors} one-line errors, "
            f"{len(upscale.problems)} problems ({upscale.libtiff_notes} libtiff notices)"
        )
    print(line)
    bad = counts["crash"] + counts["hang"] + (len(upscale.problems) if upscale else 0)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
