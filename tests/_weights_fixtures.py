"""Test helpers: tiny generators, an ncnn writer, a local HTTP server, test images, image metrics."""

from __future__ import annotations

import functools
import http.server
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from esrgan.models import RRDBNet

TAG_FP16 = 0x01306B47
RESIDUAL = "0=1 -23301=2,2.000000e-01,1.000000e+00"  # Eltwise sum: 0.2 * branch + 1.0 * skip


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run with `n` intra-op threads: tiny convs on a shared 2-core machine are many times faster on one."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def tiny_model(**kwargs: object) -> RRDBNet:
    """A few-channel RRDBNet with every parameter random (biases too), so round trips test all tensors."""
    defaults: dict[str, object] = {"num_feat": 8, "num_block": 1, "num_grow_ch": 4}
    model = RRDBNet(**{**defaults, **kwargs})  # type: ignore[arg-type]
    gen = torch.Generator().manual_seed(1234)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
    return model.eval()


def sample_input(model: RRDBNet, size: int = 8) -> torch.Tensor:
    gen = torch.Generator().manual_seed(7)
    side = size * model.input_multiple
    return torch.rand(1, model.config.in_ch, side, side, generator=gen)


def write_ncnn(model: RRDBNet, stem: Path, *, fp16: bool | str = True) -> tuple[Path, Path]:
    """Write `model` as an ncnn .param/.bin pair with the topology of the published ESRGAN ncnn files.

    `fp16` True/False stores all conv weights as fp16-tagged/raw fp32; "mixed" alternates between them.
    Returns (param, bin).
    """
    cfg = model.config
    sd = model.state_dict()
    lines: list[str] = []
    blobs = 0
    chunks: list[bytes] = []
    n_conv = 0

    def blob() -> str:
        nonlocal blobs
        blobs += 1
        return f"b{blobs}"

    def layer(kind: str, name: str, bottoms: list[str], tops: list[str], params: str = "") -> None:
        lines.append(f"{kind} {name} {len(bottoms)} {len(tops)} {' '.join(bottoms + tops)} {params}".rstrip())

    def conv(key: str, bottom: str, act: bool) -> str:
        nonlocal n_conv
        w = sd[f"{key}.weight"].detach().float()
        b = sd[f"{key}.bias"].detach().float()
        use_fp16 = fp16 if isinstance(fp16, bool) else n_conv % 2 == 0
        if use_fp16:
            raw = w.numpy().astype("<f2").tobytes()
            raw += b"\0" * (-len(raw) % 4)  # ncnn keeps 4-byte alignment after fp16 data
            chunks.append(struct.pack("<I", TAG_FP16) + raw)
        else:
            chunks.append(struct.pack("<I", 0) + w.numpy().astype("<f4").tobytes())
        chunks.append(b.numpy().astype("<f4").tobytes())
        top = blob()
        params = f"0={w.shape[0]} 1=3 4=1 5=1 6={w.numel()}"
        if act:
            params += " 9=2 -23310=1,2.000000e-01"
        layer("Convolution", f"Conv_{n_conv}", [bottom], [top], params)
        n_conv += 1
        return top

    layer("Input", "input", [], ["data"], "")
    x = "data"
    if cfg.pixel_unshuffle:
        # Space-to-depth as an exporter writes it: reshape, permute, reshape (no weights).
        a, b_, c = blob(), blob(), blob()
        layer("Reshape", "unshuffle_r1", [x], [a], "0=-1")
        layer("Permute", "unshuffle_p", [a], [b_], "0=4")
        layer("Reshape", "unshuffle_r2", [b_], [c], "0=-1")
        x = c
    first = conv("conv_first", x, act=False)
    x = first
    for i in range(cfg.num_block):
        rrdb_in = x
        for d in range(cfg.num_dense):
            feats = [x]
            for m in range(cfg.num_convs):
                if len(feats) > 1:
                    cat = blob()
                    layer("Concat", f"cat_{i}_{d}_{m}", list(feats), [cat], "")
                else:
                    cat = feats[0]
                last = m == cfg.num_convs - 1
                out = conv(f"body.{i}.rdb{d + 1}.conv{m + 1}", cat, act=not last)
                feats.append(out)
            y = blob()
            layer("Eltwise", f"rdb_add_{i}_{d}", [feats[-1], x], [y], RESIDUAL)
            x = y
        y = blob()
        layer("Eltwise", f"rrdb_add_{i}", [x, rrdb_in], [y], RESIDUAL)
        x = y
    body = conv("conv_body", x, act=False)
    x = blob()
    layer("BinaryOp", "trunk_add", [first, body], [x], "0=0")
    n_up = sum(1 for k in sd if k.startswith("conv_up") and k.endswith(".weight"))
    for i in range(n_up):
        if cfg.upsampler == "nearest+conv":
            up = blob()
            layer("Interp", f"resize_{i}", [x], [up], "0=1 1=2.000000e+00 2=2.000000e+00")
            x = conv(f"conv_up{i + 1}", up, act=True)
        else:
            c = conv(f"conv_up{i + 1}", x, act=False)
            s, r = blob(), blob()
            layer("PixelShuffle", f"shuffle_{i}", [c], [s], "0=2")
            layer("ReLU", f"lrelu_{i}", [s], [r], "0=2.000000e-01")
            x = r
    x = conv("conv_hr", x, act=True)
    x = conv("conv_last", x, act=False)
    param = stem.with_suffix(".param")
    bin_ = stem.with_suffix(".bin")
    param.write_text(f"7767517\n{len(lines)} {blobs + 1}\n" + "\n".join(lines) + "\n")
    bin_.write_bytes(b"".join(chunks))
    return param, bin_


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        return None


@contextmanager
def serve_directory(root: Path) -> Iterator[str]:
    """Serve `root` over HTTP on 127.0.0.1 (random port); yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def read_rgb(path: Path) -> torch.Tensor:
    """Image as (1, 3, H, W) float in [0, 1]."""
    from PIL import Image

    with Image.open(path) as im:
        arr = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(arr).permute(2, 0, 1).unsqueeze(0).contiguous()


def psnr_y(a: torch.Tensor, b: torch.Tensor, crop: int) -> float:
    """PSNR on the BT.601 luma of uint8-quantised images, border cropped (the SR convention)."""

    def y(x: torch.Tensor) -> torch.Tensor:
        q = (x.clamp(0, 1) * 255).round().double()
        return 16 + (65.481 * q[:, 0] + 128.553 * q[:, 1] + 24.966 * q[:, 2]) / 255

    ya, yb = y(a), y(b)
    if crop:
        ya, yb = ya[..., crop:-crop, crop:-crop], yb[..., crop:-crop, crop:-crop]
    mse = torch.mean((ya - yb) ** 2).item()
    return float(10 * np.log10(255.0**2 / mse))


def gradient_energy(x: torch.Tensor) -> float:
    """Mean squared finite difference: higher means sharper."""
    dx = x[..., :, 1:] - x[..., :, :-1]
    dy = x[..., 1:, :] - x[..., :-1, :]
    return float((dx**2).mean() + (dy**2).mean())


def textured_image(h: int, w: int, n: int = 1, seed: int = 1) -> torch.Tensor:
    """(n, 3, h, w) in [0, 1]: smooth structure plus fine texture, closer to a photo than noise."""
    from torch.nn import functional as F

    g = torch.Generator().manual_seed(seed)
    low = F.interpolate(torch.rand(n, 3, h // 5 + 2, w // 5 + 2, generator=g), size=(h, w), mode="bicubic")
    return (0.8 * low + 0.2 * torch.rand(n, 3, h, w, generator=g)).clamp(0, 1)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR over all values of two [0, 1] tensors (inf when equal)."""
    mse = (a.double() - b.double()).pow(2).mean().item()
    return float("inf") if mse == 0 else -10 * float(np.log10(mse))
