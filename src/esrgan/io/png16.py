"""16-bit PNG through OpenCV (libpng), for what Pillow cannot keep: it reads 16-bit colour and
grey+alpha PNGs as 8 bits and writes no 16-bit colour PNG.

Given a file as it comes, libpng would decode a size that no pixel limit checked (a second header),
inflate every byte of a zlib bomb and print its diagnostics on stderr. So `decode_png16` hands it a
canonical file instead: the first header, validated and checked against the pixel limit before anything
is decompressed, then the image data inflated no further than that header says and each scanline's
filter type checked; data that goes on past the image (a bomb) is replaced by the image's bytes, stored.
Ancillary chunks (ICC profile, EXIF) are Pillow's job.

`encode_png16` leaves the pixels to OpenCV and adds the ICC profile itself: libpng refuses a profile it
judges inconsistent (a damaged one carried over from an input) with a failed write and a stderr line,
where Pillow, which writes the 8-bit files, embeds it as given.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator

import numpy as np

from esrgan.io.formats import PNG_SIGNATURE

# PNG colour type -> channels (grey, grey+alpha, RGB, RGBA; palettes are never 16-bit).
_CHANNELS = {0: 1, 4: 2, 2: 3, 6: 4}
# Adam7 passes: (first column, first row, column step, row step).
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))
# IDAT chunks of the canonical file: a chunk's length field is 31 bits.
_IDAT_BYTES = 1 << 30


def png_header(head: bytes) -> tuple[int, int, int, int] | None:
    """(width, height, bit depth, colour type) from a PNG's first chunk, or None when it is no IHDR."""
    if len(head) < 29 or not head.startswith(PNG_SIGNATURE) or head[12:16] != b"IHDR":
        return None
    width, height, depth, color_type = struct.unpack(">IIBB", head[16:26])
    return width, height, depth, color_type


def _chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(payload, zlib.crc32(kind))
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def _chunks(data: bytes) -> Iterator[tuple[bytes, bytes]]:
    """(type, payload) of each chunk up to IEND; a truncated last chunk ends the file."""
    pos = len(PNG_SIGNATURE)
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        yield kind, data[pos + 8 : pos + 8 + length]
        if kind == b"IEND":
            return
        pos += 12 + length


def _canonical(data: bytes, max_pixels: int | None) -> tuple[bytes, int, int, int]:
    """The canonical file of a 16-bit PNG (see the module's docstring), its width, height and channels."""
    if not data.startswith(PNG_SIGNATURE):
        raise ValueError("not a PNG file")
    chunks = _chunks(data)
    kind, header = next(chunks, (b"", b""))
    # The header must come first, as the spec and Pillow (whose size the pixel limit checked) read it.
    if kind != b"IHDR" or len(header) != 13:
        raise ValueError("missing PNG header")
    width, height, depth, color_type, compression, filtering, interlace = struct.unpack(">IIBBBBB", header)
    if depth != 16 or color_type not in _CHANNELS:
        raise ValueError(f"not a 16-bit PNG without palette (bit depth {depth}, colour type {color_type})")
    if not 0 < width < 2**31 or not 0 < height < 2**31:
        raise ValueError(f"invalid PNG size {width}x{height}")
    if compression != 0 or filtering != 0 or interlace not in (0, 1):
        raise ValueError(
            f"invalid PNG header (compression {compression}, filter {filtering}, interlace {interlace})"
        )
    if max_pixels and width * height > max_pixels:
        raise ValueError(f"{width}x{height} pixels is above the limit of {max_pixels}")
    channels = _CHANNELS[color_type]
    row_bytes = []  # (rows, bytes per row with its filter byte) of each pass
    for x0, y0, dx, dy in _ADAM7 if interlace else ((0, 0, 1, 1),):
        w, h = -(-(width - x0) // dx), -(-(height - y0) // dy)
        if w > 0 and h > 0:
            row_bytes.append((h, 1 + w * 2 * channels))
    expected = sum(h * n for h, n in row_bytes)
    raw = bytearray()
    payloads = []  # the file's IDAT chunks, and how many of them were inflated
    inflated = 0
    inflate = zlib.decompressobj()
    try:
        for kind, payload in chunks:
            if kind == b"IHDR":  # Pillow takes the last one before the data as the size: be strict
                raise ValueError("more than one PNG header")
            if kind == b"IDAT":
                payloads.append(payload)
                if len(raw) < expected:
                    raw += inflate.decompress(inflate.unconsumed_tail + payload, expected - len(raw))
                    inflated = len(payloads)
    except zlib.error as e:
        raise ValueError(f"corrupt compressed image data ({e})") from None
    if len(raw) < expected:
        raise ValueError(f"image data is shorter than the header says ({len(raw)} of {expected} bytes)")
    # Whether the stream ends with the image: then libpng gets the file's own data, else (more data than
    # the image, e.g. a zlib bomb, or damage past the image's bytes, which Pillow reads through too) the
    # image's bytes alone, stored.
    try:
        rest = inflate.unconsumed_tail + b"".join(payloads[inflated:])
        ends = not inflate.decompress(rest, 1) and inflate.eof and not inflate.unused_data
    except zlib.error:
        ends = False
    pos = 0
    for h, n in row_bytes:
        kinds = np.frombuffer(raw, np.uint8, count=h * n, offset=pos)[::n]
        if int(kinds.max()) > 4:
            raise ValueError(f"unknown PNG filter type {int(kinds.max())}")
        pos += h * n
    if not ends:
        stored = zlib.compress(raw, 0)
        payloads = [stored[i : i + _IDAT_BYTES] for i in range(0, len(stored), _IDAT_BYTES)]
    del raw
    idat = [_chunk(b"IDAT", payload) for payload in payloads]
    canonical = b"".join([PNG_SIGNATURE, _chunk(b"IHDR", header), *idat, _chunk(b"IEND", b"")])
    return canonical, width, height, channels


def decode_png16(data: bytes, *, max_pixels: int | None = None) -> np.ndarray:
    """Decode a 16-bit PNG with OpenCV to an (H,W,C) uint16 array in the file's channel order (C: 1 grey,
    2 grey+alpha, 3 RGB, 4 RGBA); interlaced files included. ValueError (one line) for anything else, a
    damaged file, or more than `max_pixels` pixels (checked before anything is decompressed)."""
    import cv2

    canonical, width, height, channels = _canonical(data, max_pixels)
    try:
        arr = cv2.imdecode(np.frombuffer(canonical, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error as e:  # e.g. above OpenCV's own pixel limit (OPENCV_IO_MAX_IMAGE_PIXELS)
        raise ValueError(f"OpenCV cannot decode it ({str(e).strip().splitlines()[-1]})") from None
    if arr is None or arr.dtype != np.uint16 or arr.shape[:2] != (height, width):
        raise ValueError("OpenCV cannot decode it")
    arr = arr.reshape(height, width, -1)
    # OpenCV's order is BGR(A), and it spreads grey+alpha over BGRA.
    order = {1: [0], 2: [0, 3], 3: [2, 1, 0], 4: [2, 1, 0, 3]}[channels]
    if arr.shape[2] <= max(order):
        raise ValueError(f"OpenCV decoded {arr.shape[2]} channels of {channels}")
    return np.ascontiguousarray(arr[:, :, order])


def encode_png16(arr: np.ndarray, *, icc_profile: bytes | None = None, level: int = 6) -> bytes:
    """Encode an (H,W) or (H,W,C) uint16 array (C: 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA) as a 16-bit PNG
    with OpenCV, with `icc_profile` as its iCCP chunk.

    libpng writes no 16-bit grey+alpha: that becomes RGBA with the grey in the three colour channels
    (same values and depth), without the profile, which describes grey data.
    """
    import cv2

    if arr.dtype != np.uint16:
        raise ValueError(f"expected uint16, got {arr.dtype}")
    if arr.ndim == 2:
        arr = arr[:, :, None]
    channels = arr.shape[2]
    if channels not in _CHANNELS.values():
        raise ValueError(f"cannot write {channels} channels as PNG")
    if channels == 2:
        icc_profile = None
    order = {1: [0], 2: [0, 0, 0, 1], 3: [2, 1, 0], 4: [2, 1, 0, 3]}[channels]
    ok, buf = cv2.imencode(
        ".png", np.ascontiguousarray(arr[:, :, order]), [cv2.IMWRITE_PNG_COMPRESSION, level]
    )
    if not ok:
        raise ValueError(f"OpenCV cannot encode a {arr.shape[1]}x{arr.shape[0]} 16-bit PNG")
    data = buf.tobytes()
    if not icc_profile:
        return data
    # Right after IHDR (signature 8 bytes, IHDR chunk 25): iCCP must come before the image data.
    iccp = _chunk(b"iCCP", b"ICC Profile\x00\x00" + zlib.compress(icc_profile))
    return data[:33] + iccp + data[33:]
