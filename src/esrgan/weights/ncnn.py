"""Read ncnn model files (`.param` text graph + `.bin` weights) of ESRGAN-family generators.

Only what RRDBNet and SRVGGNetCompact need is supported: 3x3 convolutions with fp16-tagged or raw fp32
weights and fp32 biases, and raw fp32 PReLU slopes. An RRDBNet is wired as conv_first -> RRDB body ->
conv_body -> (nearest-upsample or pixel-shuffle) convs -> conv_hr -> conv_last, a compact network as
(conv, PReLU) pairs -> conv -> pixel shuffle + nearest-upsampled input (-> a bicubic downscale). The
layers are mapped to BasicSR or Real-ESRGAN keys in graph order, and the `.bin` must be consumed
exactly, which catches a wrong mapping or a truncated file.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from esrgan.models import CompactConfig
from esrgan.weights.errors import WeightsError

NCNN_MAGIC = 7767517
TAG_FP16 = 0x01306B47
TAG_FP32 = 0
# Layers that carry no weights in the .bin and may appear in an RRDBNet graph.
_WEIGHTLESS = {
    "Input",
    "Split",
    "Concat",
    "Eltwise",
    "BinaryOp",
    "Interp",
    "PixelShuffle",
    "ReLU",
    "Noop",
    "Reshape",
    "Permute",
}


@dataclass
class NcnnLayer:
    type: str
    name: str
    bottoms: list[str]
    tops: list[str]
    params: dict[int, int | float | list[int | float]] = field(default_factory=dict)


def _number(text: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        return float(text)


def parse_param(text: str, *, source: str = "<param>") -> list[NcnnLayer]:
    """Parse ncnn's text `.param` format into layers (in file order)."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if len(lines) < 2 or lines[0] != str(NCNN_MAGIC):
        raise WeightsError(f"{source}: not an ncnn .param file (missing magic {NCNN_MAGIC})")
    try:
        layer_count, _blob_count = (int(v) for v in lines[1].split())
    except ValueError:
        raise WeightsError(f"{source}: malformed layer/blob count line {lines[1]!r}") from None
    layers: list[NcnnLayer] = []
    for lineno, line in enumerate(lines[2:], start=3):
        tok = line.split()
        try:
            ltype, name, n_in, n_out = tok[0], tok[1], int(tok[2]), int(tok[3])
            bottoms = tok[4 : 4 + n_in]
            tops = tok[4 + n_in : 4 + n_in + n_out]
            if len(tops) != n_out:
                raise ValueError("too few blob names")
            params: dict[int, int | float | list[int | float]] = {}
            for item in tok[4 + n_in + n_out :]:
                key_s, value_s = item.split("=", 1)
                key = int(key_s)
                if key <= -23300:  # array parameter: "-233xx=count,v1,v2,..."
                    values = [_number(v) for v in value_s.split(",")]
                    params[-key - 23300] = values[1:]
                else:
                    params[key] = _number(value_s)
        except (ValueError, IndexError) as exc:
            raise WeightsError(f"{source}: line {lineno}: malformed layer ({exc})") from None
        layers.append(NcnnLayer(ltype, name, bottoms, tops, params))
    if len(layers) != layer_count:
        raise WeightsError(f"{source}: header says {layer_count} layers, found {len(layers)}")
    return layers


def _int_param(layer: NcnnLayer, key: int, default: int, source: str) -> int:
    """A scalar parameter as an int; an array where a number belongs is a malformed file."""
    value = layer.params.get(key, default)
    if isinstance(value, list):
        raise WeightsError(f"{source}: layer {layer.name}: parameter {key} is an array, expected a number")
    return int(value)


def _read_conv(
    buf: memoryview, offset: int, layer: NcnnLayer, source: str
) -> tuple[int, torch.Tensor, torch.Tensor | None]:
    """(offset after the layer, weight, bias or None) of one convolution read from the .bin."""
    p = layer.params
    out_ch = _int_param(layer, 0, 0, source)
    kw = _int_param(layer, 1, 0, source)
    kh = _int_param(layer, 11, kw, source)
    size = _int_param(layer, 6, 0, source)
    if out_ch <= 0 or kw <= 0 or size <= 0 or size % (out_ch * kw * kh):
        raise WeightsError(f"{source}: layer {layer.name}: inconsistent convolution parameters {p}")
    same_pad = ((kw - 1) // 2, -233, -234)  # explicit pad, or ncnn's SAME_UPPER/SAME_LOWER markers
    stride, dilation = _int_param(layer, 3, 1, source), _int_param(layer, 2, 1, source)
    if stride != 1 or dilation != 1 or _int_param(layer, 4, (kw - 1) // 2, source) not in same_pad:
        raise WeightsError(f"{source}: layer {layer.name}: only stride-1 'same' convolutions are supported")
    in_ch = size // (out_ch * kw * kh)
    if offset + 4 > len(buf):
        raise WeightsError(f"{source}: .bin ends before the weights of layer {layer.name}")
    (tag,) = struct.unpack_from("<I", buf, offset)
    offset += 4
    if tag == TAG_FP16:
        nbytes = size * 2
        padded = (nbytes + 3) // 4 * 4  # ncnn aligns fp16 blocks to 4 bytes
        if offset + padded > len(buf):
            raise WeightsError(f"{source}: .bin ends inside the weights of layer {layer.name}")
        weight = np.frombuffer(buf, dtype="<f2", count=size, offset=offset).astype(np.float32)
        offset += padded
    elif tag == TAG_FP32:
        if offset + size * 4 > len(buf):
            raise WeightsError(f"{source}: .bin ends inside the weights of layer {layer.name}")
        weight = np.frombuffer(buf, dtype="<f4", count=size, offset=offset).astype(np.float32)
        offset += size * 4
    else:
        raise WeightsError(
            f"{source}: layer {layer.name}: unsupported weight storage tag 0x{tag:08X} "
            "(only fp16 and raw fp32 are supported, not int8/quantised)"
        )
    w = torch.from_numpy(weight.reshape(out_ch, in_ch, kh, kw).copy())
    if _int_param(layer, 5, 0, source):
        if offset + out_ch * 4 > len(buf):
            raise WeightsError(f"{source}: .bin ends inside the bias of layer {layer.name}")
        bias = np.frombuffer(buf, dtype="<f4", count=out_ch, offset=offset).astype(np.float32)
        offset += out_ch * 4
        return offset, w, torch.from_numpy(bias.copy())
    return offset, w, None


def _eltwise_scale(layer: NcnnLayer) -> float | None:
    coeffs = layer.params.get(1)
    if isinstance(coeffs, list) and len(coeffs) == 2 and float(coeffs[1]) == 1.0:
        return float(coeffs[0])
    return None


def read_ncnn(
    param_path: str | os.PathLike[str], bin_path: str | os.PathLike[str]
) -> tuple[dict[str, torch.Tensor], CompactConfig | None]:
    """An ncnn generator as (float32 state dict, architecture or None).

    The architecture comes back for compact networks only: their graph may end in a bicubic downscale
    (realesr-animevideov3 x2/x3) that the weights cannot show. RRDBNets are described by their shapes.
    """
    param_path, bin_path = Path(param_path), Path(bin_path)
    for p in (param_path, bin_path):
        if not p.is_file():
            raise WeightsError(f"{p}: file not found (ncnn models need both .param and .bin)")
    source = str(param_path)
    layers = parse_param(param_path.read_text(encoding="utf-8", errors="replace"), source=source)
    data = memoryview(bin_path.read_bytes())
    if any(layer.type == "PReLU" for layer in layers):
        return _load_compact(layers, data, source, bin_path)
    return _load_rrdbnet(layers, data, source, bin_path), None


def load_ncnn(
    param_path: str | os.PathLike[str], bin_path: str | os.PathLike[str]
) -> dict[str, torch.Tensor]:
    """Load an ncnn RRDBNet or compact network into a state dict with BasicSR/Real-ESRGAN keys."""
    return read_ncnn(param_path, bin_path)[0]


def _check_consumed(data: memoryview, offset: int, bin_path: Path, what: str) -> None:
    if offset != len(data):
        raise WeightsError(
            f"{bin_path}: {len(data) - offset} bytes left over after reading {what} "
            "(the .bin does not match the .param)"
        )


def _load_rrdbnet(
    layers: list[NcnnLayer], data: memoryview, source: str, bin_path: Path
) -> dict[str, torch.Tensor]:

    producer: dict[str, NcnnLayer] = {}
    consumers: dict[str, list[NcnnLayer]] = {}
    for layer in layers:
        for top in layer.tops:
            producer[top] = layer
        for bottom in layer.bottoms:
            consumers.setdefault(bottom, []).append(layer)

    convs: list[tuple[NcnnLayer, torch.Tensor, torch.Tensor | None]] = []
    offset = 0
    res_scales: set[float] = set()
    for layer in layers:
        if layer.type == "Convolution":
            offset, w, b = _read_conv(data, offset, layer, source)
            convs.append((layer, w, b))
        elif layer.type == "Eltwise":
            scale = _eltwise_scale(layer)
            if scale is not None:
                res_scales.add(scale)
        elif layer.type == "Interp" and _int_param(layer, 0, 0, source) != 1:
            raise WeightsError(f"{source}: layer {layer.name}: only nearest-neighbour Interp is supported")
        elif layer.type not in _WEIGHTLESS:
            raise WeightsError(f"{source}: layer type {layer.type} ({layer.name}) is not part of an RRDBNet")
    _check_consumed(data, offset, bin_path, f"{len(convs)} convolutions")
    if len(convs) < 5:
        raise WeightsError(f"{source}: only {len(convs)} convolutions: not an RRDBNet graph")
    if res_scales and res_scales != {0.2}:
        raise WeightsError(f"{source}: residual scale {sorted(res_scales)} differs from RRDBNet's 0.2")

    def is_up(layer: NcnnLayer) -> bool:
        src = producer.get(layer.bottoms[0]) if layer.bottoms else None
        if src is not None and src.type == "Interp":
            return True
        return any(c.type == "PixelShuffle" for top in layer.tops for c in consumers.get(top, []))

    up_idx = [i for i, (layer, _, _) in enumerate(convs) if is_up(layer)]
    if not up_idx:
        raise WeightsError(f"{source}: no upsampling convolution found (Interp or PixelShuffle)")
    first_up, last_up = up_idx[0], up_idx[-1]
    if up_idx != list(range(first_up, last_up + 1)) or last_up != len(convs) - 3:
        raise WeightsError(
            f"{source}: upsampling convolutions are not followed by exactly conv_hr and conv_last"
        )
    num_feat = convs[0][1].shape[0]
    body = convs[1 : first_up - 1]

    # Dense blocks start where the input width falls back to num_feat (later convs see concatenations).
    blocks: list[list[tuple[NcnnLayer, torch.Tensor, torch.Tensor | None]]] = []
    for conv in body:
        if conv[1].shape[1] == num_feat or not blocks:
            blocks.append([])
        blocks[-1].append(conv)
    if not blocks or len({len(b) for b in blocks}) != 1:
        raise WeightsError(f"{source}: dense blocks of unequal length: not an RRDBNet body")
    num_eltwise = sum(1 for layer in layers if layer.type == "Eltwise")
    # Every dense block and every RRDB ends in one scaled residual sum: E = dense + rrdb.
    num_rrdb = num_eltwise - len(blocks)
    if num_rrdb <= 0 or len(blocks) % num_rrdb:
        if num_eltwise == 0 and len(blocks) % 3 == 0:
            num_rrdb = len(blocks) // 3  # residual sums expressed another way: assume the paper's 3
        else:
            raise WeightsError(
                f"{source}: cannot group {len(blocks)} dense blocks into RRDBs ({num_eltwise} residual sums)"
            )
    num_dense = len(blocks) // num_rrdb

    sd: dict[str, torch.Tensor] = {}

    def put(key: str, conv: tuple[NcnnLayer, torch.Tensor, torch.Tensor | None]) -> None:
        layer, w, b = conv
        if b is None:
            raise WeightsError(f"{source}: layer {layer.name} has no bias (RRDBNet convs all have one)")
        sd[f"{key}.weight"] = w
        sd[f"{key}.bias"] = b

    put("conv_first", convs[0])
    for d, block in enumerate(blocks):
        for m, conv in enumerate(block):
            put(f"body.{d // num_dense}.rdb{d % num_dense + 1}.conv{m + 1}", conv)
    put("conv_body", convs[first_up - 1])
    for i, idx in enumerate(up_idx):
        put(f"conv_up{i + 1}", convs[idx])
    put("conv_hr", convs[-2])
    put("conv_last", convs[-1])
    return sd


def _float_param(layer: NcnnLayer, key: int, source: str) -> float:
    value = layer.params.get(key, 0.0)
    if isinstance(value, list):
        raise WeightsError(f"{source}: layer {layer.name}: parameter {key} is an array, expected a number")
    return float(value)


def _load_compact(
    layers: list[NcnnLayer], data: memoryview, source: str, bin_path: Path
) -> tuple[dict[str, torch.Tensor], CompactConfig]:
    """(conv, PReLU) pairs, a last conv, PixelShuffle, + nearest-upsampled input, optional downscale."""
    sd: dict[str, torch.Tensor] = {}
    offset, index, upscale, resize = 0, 0, 0, 1.0
    for layer in layers:
        if layer.type == "Convolution":
            if index % 2:
                raise WeightsError(f"{source}: layer {layer.name}: two convolutions without a PReLU between")
            offset, w, b = _read_conv(data, offset, layer, source)
            if b is None:
                raise WeightsError(f"{source}: layer {layer.name} has no bias (compact convs all have one)")
            sd[f"body.{index}.weight"], sd[f"body.{index}.bias"] = w, b
            index += 1
        elif layer.type == "PReLU":
            slopes = _int_param(layer, 0, 1, source)
            if index % 2 == 0 or slopes != sd[f"body.{index - 1}.weight"].shape[0]:
                raise WeightsError(
                    f"{source}: layer {layer.name}: a PReLU must follow a conv, one slope a channel"
                )
            if offset + slopes * 4 > len(data):
                raise WeightsError(f"{source}: .bin ends inside the slopes of layer {layer.name}")
            # ncnn stores PReLU slopes as raw float32, without the storage tag convolutions have.
            slope = np.frombuffer(data, dtype="<f4", count=slopes, offset=offset).astype(np.float32)
            sd[f"body.{index}.weight"] = torch.from_numpy(slope.copy())
            offset += slopes * 4
            index += 1
        elif layer.type == "PixelShuffle":
            upscale = _int_param(layer, 0, 1, source)
        elif layer.type == "Interp":
            mode, factor = _int_param(layer, 0, 0, source), _float_param(layer, 1, source)
            if factor != _float_param(layer, 2, source):
                raise WeightsError(f"{source}: layer {layer.name}: unequal height and width scales")
            if mode == 3 and factor < 1:
                resize = factor
            elif mode != 1:
                raise WeightsError(
                    f"{source}: layer {layer.name}: only nearest upsampling and bicubic downscaling"
                )
        elif layer.type == "BinaryOp" and _int_param(layer, 0, 0, source) != 0:
            raise WeightsError(f"{source}: layer {layer.name}: only additions belong to a compact network")
        elif layer.type not in ("Input", "Split", "BinaryOp"):
            raise WeightsError(
                f"{source}: layer type {layer.type} ({layer.name}) is not part of a compact network"
            )
    _check_consumed(data, offset, bin_path, f"{index} compact layers")
    if index < 3 or index % 2 == 0 or upscale < 1:
        raise WeightsError(
            f"{source}: not a compact network ({index} conv/PReLU layers, pixel shuffle {upscale})"
        )
    num_feat, in_ch = (int(v) for v in sd["body.0.weight"].shape[:2])
    scale = upscale * resize
    if abs(scale - round(scale)) > 1e-6 or round(scale) < 1:
        raise WeightsError(f"{source}: x{upscale} followed by a x{resize:g} resize is not an integer scale")
    try:
        config = CompactConfig(
            in_ch=in_ch,
            out_ch=in_ch,
            num_feat=num_feat,
            num_conv=(index - 3) // 2,
            upscale=upscale,
            out_scale=round(scale) if resize != 1.0 else None,
        )
    except ValueError as exc:
        raise WeightsError(f"{source}: unsupported compact network ({exc})") from None
    return sd, config
