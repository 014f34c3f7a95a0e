"""Test images that need building by hand: a CMYK ICC profile (none ships with Pillow or the OS)."""

from __future__ import annotations

import struct


def _s15(v: float) -> bytes:
    return struct.pack(">i", round(v * 65536))


def cmyk_icc_profile(lab: tuple[int, int, int] = (153, 168, 128)) -> bytes:
    """A minimal ICC v2 CMYK printer profile whose A2B0 table maps every CMYK value to one Lab colour
    (lut8 bytes: L = 153/255*100, a = 168-128, b = 0, a pink): conversion through it is unmistakable."""
    d50 = _s15(0.9642) + _s15(1.0) + _s15(0.8249)
    identity = b"".join(_s15(1.0 if r == c else 0.0) for r in range(3) for c in range(3))
    ramp = bytes(range(256))
    # lut8Type: 4 inputs, 3 outputs, 2 grid points per input (16 entries), identity curves around it.
    a2b0 = b"mft1\0\0\0\0" + bytes([4, 3, 2, 0]) + identity + ramp * 4 + bytes(lab) * 16 + ramp * 3
    text = b"CMYK test"
    desc = b"desc\0\0\0\0" + struct.pack(">I", len(text) + 1) + text + b"\0" + b"\0" * 8 + b"\0" * 70
    tags = [(b"desc", desc), (b"wtpt", b"XYZ \0\0\0\0" + d50), (b"A2B0", a2b0)]
    offset = 128 + 4 + 12 * len(tags)
    table, body = struct.pack(">I", len(tags)), b""
    for sig, data in tags:
        data += b"\0" * (-len(data) % 4)
        table += sig + struct.pack(">II", offset + len(body), len(data))
        body += data
    header = struct.pack(">I", offset + len(body)) + b"\0\0\0\0\x02\x10\x00\x00prtrCMYKLab " + b"\0" * 12
    header += b"acsp" + b"\0" * 28 + d50
    return header + b"\0" * (128 - len(header)) + table + body
