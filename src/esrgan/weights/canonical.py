"""Bring any ESRGAN-family state dict to BasicSR's RRDBNet keys and infer the architecture from shapes.

Layouts understood (the returned layout name in brackets):
- BasicSR / Real-ESRGAN `conv_first`, `body.N.rdbK.convM`, `conv_body`, `conv_upN`, `conv_hr`,
  `conv_last` ["basicsr"], possibly wrapped in `params_ema`/`params`/... and prefixed by `module.`
  (DataParallel) or `_orig_mod.` (torch.compile);
- xinntao/ESRGAN's 2019 `RRDB_trunk.N.RDBk.convM`, `trunk_conv`, `upconvN`, `HRconv` ["esrgan"];
- the original 2018 sequential `model.0`, `model.1.sub.N.RDBk.convM.0`, `model.1.sub.<nb>`,
  `model.3/6/8/10` ["esrgan-old"];
- Real-ESRGAN's SRVGGNetCompact `body.N` (convs at even N, PReLU slopes at odd N) ["compact"], with the
  same wrappers (realesr-general-x4v3 and realesr-animevideov3 are saved as `{"params": ...}`).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping

import torch

from esrgan.models import ArchConfig, CompactConfig, RRDBNetConfig, config_from_dict
from esrgan.models.rrdbnet import Upsampler
from esrgan.weights.errors import WeightsError

# Order matters: BasicSR checkpoints often hold both, and the EMA weights are the better ones.
WRAPPER_KEYS = ("params_ema", "params", "model_state_dict", "g_model_state_dict", "state_dict", "model")
STRIP_PREFIXES = ("module.", "_orig_mod.")
ARCH_KEY = "esrgan.arch"
FORMAT_KEY = "format_version"
FORMAT_VERSION = "1"


def unwrap(obj: object, *, source: str = "<state dict>") -> dict[str, torch.Tensor]:
    """Find the generator's tensors inside a checkpoint object (nested wrappers allowed)."""
    for _ in range(4):  # wrappers nest at most a couple of levels in practice
        if not isinstance(obj, Mapping):
            raise WeightsError(f"{source}: expected a dict of tensors, got {type(obj).__name__}")
        if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            break
        inner = next((obj[k] for k in WRAPPER_KEYS if isinstance(obj.get(k), Mapping)), None)
        if inner is None:
            tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
            if not tensors:
                raise WeightsError(f"{source}: no tensors found (keys: {', '.join(map(str, list(obj)[:8]))})")
            obj = tensors
            break
        obj = inner
    assert isinstance(obj, Mapping)  # every way out of the loop leaves a mapping
    sd = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    out: dict[str, torch.Tensor] = {}
    for key, value in sd.items():
        changed = True
        while changed:
            changed = False
            for prefix in STRIP_PREFIXES:
                if key.startswith(prefix):
                    key = key[len(prefix) :]
                    changed = True
        out[key] = value
    return out


_OLD_RDB = re.compile(r"^model\.1\.sub\.(\d+)\.RDB(\d+)\.conv(\d+)\.0\.(weight|bias)$")
_OLD_TRUNK = re.compile(r"^model\.1\.sub\.(\d+)\.(weight|bias)$")
_OLD_TOP = re.compile(r"^model\.(\d+)\.(weight|bias)$")
_NEW_RDB = re.compile(r"^RRDB_trunk\.(\d+)\.RDB(\d+)\.conv(\d+)\.(weight|bias)$")
_NEW_TOP = {
    "trunk_conv": "conv_body",
    "HRconv": "conv_hr",
    "conv_first": "conv_first",
    "conv_last": "conv_last",
}
_BASICSR_KEY = re.compile(
    r"^(conv_first|conv_body|conv_hr|conv_last|conv_up\d+|body\.\d+\.rdb\d+\.conv\d+)\.(weight|bias)$"
)


def _convert_old(sd: dict[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    top: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in sd.items():
        if m := _OLD_RDB.match(key):
            out[f"body.{m[1]}.rdb{m[2]}.conv{m[3]}.{m[4]}"] = value
        elif m := _OLD_TRUNK.match(key):
            out[f"conv_body.{m[2]}"] = value  # the trunk conv closes the body, after the last RRDB
        elif m := _OLD_TOP.match(key):
            top.setdefault(int(m[1]), {})[m[2]] = value
        else:
            raise WeightsError(f"{source}: unexpected key {key!r} in an old ESRGAN (model.N) state dict")
    # After model.1 come the upsampling stages, conv_hr and conv_last; the gaps hold parameter-free
    # upsample/activation modules, so the convs are taken in index order.
    if 0 not in top:
        raise WeightsError(f"{source}: old ESRGAN layout without model.0 (first conv)")
    tail = sorted(i for i in top if i > 1)
    if len(tail) < 3:
        raise WeightsError(f"{source}: old ESRGAN layout needs upsampling, HR and last convs after model.1")
    names = [f"conv_up{i + 1}" for i in range(len(tail) - 2)] + ["conv_hr", "conv_last"]
    for name, idx in zip(["conv_first", *names], [0, *tail], strict=True):
        for kind, value in top[idx].items():
            out[f"{name}.{kind}"] = value
    return out


def _convert_trunk(sd: dict[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for key, value in sd.items():
        module, _, kind = key.rpartition(".")
        if m := _NEW_RDB.match(key):
            out[f"body.{m[1]}.rdb{m[2]}.conv{m[3]}.{m[4]}"] = value
        elif module in _NEW_TOP:
            out[f"{_NEW_TOP[module]}.{kind}"] = value
        elif m := re.fullmatch(r"upconv(\d+)", module):
            out[f"conv_up{m[1]}.{kind}"] = value
        else:
            raise WeightsError(f"{source}: unexpected key {key!r} in an ESRGAN (RRDB_trunk) state dict")
    return out


_COMPACT_KEY = re.compile(r"^body\.(\d+)\.(weight|bias)$")


def detect_layout(sd: Mapping[str, torch.Tensor]) -> str:
    keys = list(sd)
    if keys and "conv_first.weight" not in sd and all(_COMPACT_KEY.match(k) for k in keys):
        return "compact"
    if any(k.startswith("model.1.sub.") for k in keys):
        return "esrgan-old"
    if any(k.startswith("RRDB_trunk.") for k in keys) or "trunk_conv.weight" in sd:
        return "esrgan"
    return "basicsr"


def infer_compact_config(sd: Mapping[str, torch.Tensor], *, source: str = "<state dict>") -> CompactConfig:
    """SRVGGNetCompact's architecture from the shapes of its `body.N` tensors.

    Only PReLU has parameters, so ReLU and LeakyReLU networks (convs at every second index, nothing in
    between) cannot be told apart: those need the architecture from metadata.
    """
    convs = sorted(
        int(m[1]) for k in sd if (m := _COMPACT_KEY.match(k)) and k.endswith(".weight") and sd[k].ndim == 4
    )
    slopes = sorted(
        int(m[1]) for k in sd if (m := _COMPACT_KEY.match(k)) and sd[k].ndim == 1 and k.endswith(".weight")
    )
    if len(convs) < 2 or convs != list(range(0, 2 * len(convs), 2)):
        raise WeightsError(
            f"{source}: compact body convolutions are not at body.0, body.2, ... ({convs[:4]})"
        )
    if not slopes:
        raise WeightsError(
            f"{source}: compact network without PReLU slopes: its activation (relu or leakyrelu) cannot be "
            "inferred from the weights"
        )
    num_feat, in_ch = (int(v) for v in sd["body.0.weight"].shape[:2])
    last = int(sd[f"body.{convs[-1]}.weight"].shape[0])
    upscale = math.isqrt(last // in_ch) if in_ch > 0 else 0
    if upscale < 1 or in_ch * upscale * upscale != last:
        raise WeightsError(f"{source}: the last conv's {last} outputs are not {in_ch} x a square upscale")
    try:
        return CompactConfig(
            in_ch=in_ch, out_ch=in_ch, num_feat=num_feat, num_conv=len(convs) - 2, upscale=upscale
        )
    except ValueError as exc:
        raise WeightsError(f"{source}: unsupported compact network ({exc})") from None


def infer_config(sd: Mapping[str, torch.Tensor], *, source: str = "<state dict>") -> ArchConfig:
    """Architecture of a canonical (BasicSR-key or compact) state dict, from tensor shapes alone."""
    if detect_layout(sd) == "compact":
        return infer_compact_config(sd, source=source)
    for key in ("conv_first.weight", "conv_body.weight", "conv_hr.weight", "conv_last.weight"):
        if key not in sd:
            raise WeightsError(f"{source}: missing {key}: not an RRDBNet generator")
        if sd[key].ndim != 4:
            shape = tuple(sd[key].shape)
            raise WeightsError(f"{source}: {key} has shape {shape}, expected a 4-D conv weight")
    num_feat, in_total = sd["conv_first.weight"].shape[:2]
    out_ch = sd["conv_last.weight"].shape[0]
    blocks = sorted({int(k.split(".")[1]) for k in sd if k.startswith("body.")})
    if not blocks or blocks != list(range(len(blocks))):
        raise WeightsError(f"{source}: RRDB blocks are missing or not numbered 0..N-1")
    dense = sorted({int(m[1]) for k in sd if (m := re.match(r"body\.0\.rdb(\d+)\.", k))})
    convs = sorted({int(m[1]) for k in sd if (m := re.match(r"body\.0\.rdb1\.conv(\d+)\.", k))})
    if not dense or dense != list(range(1, len(dense) + 1)) or len(convs) < 2:
        raise WeightsError(f"{source}: malformed RRDB block 0 (dense blocks {dense}, convs {convs})")
    num_grow_ch = sd["body.0.rdb1.conv1.weight"].shape[0]
    ups = sorted(int(m[1]) for k in sd if (m := re.fullmatch(r"conv_up(\d+)\.weight", k)))
    if ups != list(range(1, len(ups) + 1)) or not 1 <= len(ups) <= 3:
        raise WeightsError(f"{source}: unsupported upsampling convs {[f'conv_up{i}' for i in ups]}")
    up_out = sd["conv_up1.weight"].shape[0]
    upsampler: Upsampler
    if up_out == 4 * num_feat:
        upsampler = "pixelshuffle"
    elif up_out == num_feat:
        upsampler = "nearest+conv"
    else:
        raise WeightsError(f"{source}: conv_up1 has {up_out} output channels for {num_feat} features")
    body_scale = 2 ** len(ups)
    in_ch, scale, unshuffle = in_total, body_scale, False
    # BasicSR's x2/x1 models fold the input by pixel-unshuffle into an x4 body: conv_first sees 4x/16x
    # the image channels.
    if body_scale == 4 and in_total != out_ch:
        for factor, folded_scale in ((2, 2), (4, 1)):
            if in_total == out_ch * factor * factor:
                in_ch, scale, unshuffle = out_ch, folded_scale, True
    return RRDBNetConfig(
        in_ch=int(in_ch),
        out_ch=int(out_ch),
        num_feat=int(num_feat),
        num_block=len(blocks),
        num_grow_ch=int(num_grow_ch),
        num_dense=len(dense),
        num_convs=len(convs),
        scale=scale,
        upsampler=upsampler,
        pixel_unshuffle=unshuffle,
    )


def config_from_metadata(metadata: Mapping[str, str] | None, *, source: str) -> ArchConfig | None:
    """The architecture stored by `save_generator`, or None when the file has none."""
    if not metadata or ARCH_KEY not in metadata:
        return None
    try:
        raw = json.loads(metadata[ARCH_KEY])
        if not isinstance(raw, dict):
            raise ValueError("not a JSON object")
        return config_from_dict(raw)
    except (ValueError, TypeError) as exc:
        raise WeightsError(f"{source}: unreadable {ARCH_KEY} metadata ({exc})") from None


def expected_shapes(config: ArchConfig) -> dict[str, tuple[int, ...]]:
    """Key -> shape of the network `config` describes, without building (and initialising) it."""
    return config.state_dict_shapes()


def check_fits(sd: Mapping[str, torch.Tensor], config: ArchConfig, *, source: str) -> None:
    """Raise WeightsError unless `sd` has exactly the keys and shapes of the network `config` describes."""
    try:
        expected = expected_shapes(config)
    except ValueError as exc:
        raise WeightsError(f"{source}: unsupported architecture ({exc})") from None
    missing = [k for k in expected if k not in sd]
    unexpected = [k for k in sd if k not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing[:3])}{'...' if len(missing) > 3 else ''}")
        if unexpected:
            parts.append(f"unexpected {', '.join(unexpected[:3])}{'...' if len(unexpected) > 3 else ''}")
        raise WeightsError(f"{source}: weights do not fit the architecture ({'; '.join(parts)})")
    for key, ref in expected.items():
        if tuple(sd[key].shape) != ref:
            raise WeightsError(
                f"{source}: weights do not fit the architecture ({key} has shape {tuple(sd[key].shape)}, "
                f"expected {ref})"
            )


def check_values(sd: Mapping[str, torch.Tensor], *, source: str) -> None:
    """Raise WeightsError for tensors that are not floating point or hold NaN/inf values.

    A generator with one NaN weight turns every output pixel into NaN, which would be written out as a
    black image without any error; a diverged training or a damaged download leaves such files.
    """
    for key, value in sd.items():
        if not value.is_floating_point():
            dtype = str(value.dtype).removeprefix("torch.")
            raise WeightsError(f"{source}: {key} holds {dtype} values, not floating-point weights")
        bad = int((~torch.isfinite(value)).sum())
        if bad:
            raise WeightsError(
                f"{source}: {key} holds {bad} NaN or infinite value(s) of {value.numel()}: the weights are "
                "broken (a diverged training or a damaged file), refusing to use them"
            )


def canonicalize(
    sd: object, *, metadata: Mapping[str, str] | None = None, source: str = "<state dict>"
) -> tuple[dict[str, torch.Tensor], ArchConfig, str]:
    """Return (state dict with BasicSR or compact keys, inferred architecture, source layout name).

    `sd` is a state dict or any checkpoint object holding one, as loaded from a file (see `unwrap`).

    `metadata` (safetensors metadata written by `save_generator`) gives the architecture; it wins over
    inference (e.g. for the residual scale, which shapes cannot show) but must agree with the shapes.
    """
    tensors = unwrap(sd, source=source)
    layout = detect_layout(tensors)
    if layout == "esrgan-old":
        tensors = _convert_old(tensors, source)
    elif layout == "esrgan":
        tensors = _convert_trunk(tensors, source)
    elif layout == "basicsr":
        stray = [k for k in tensors if not _BASICSR_KEY.match(k)]
        if stray:
            raise WeightsError(
                f"{source}: not an RRDBNet generator state dict (unexpected keys {', '.join(stray[:3])})"
            )
    config = config_from_metadata(metadata, source=source)
    if config is None:
        config = infer_config(tensors, source=source)
        layout_name = layout
    else:
        layout_name = "esrgan-safetensors"
    check_fits(tensors, config, source=source)
    check_values(tensors, source=source)
    return tensors, config, layout_name


def state_dict_sha256(sd: Mapping[str, torch.Tensor]) -> str:
    """Hash of the canonical tensors: keys sorted, each as name, shape and little-endian float32 bytes.

    Independent of the file format and of key order, so an ncnn file, its safetensors conversion and a
    re-saved copy of the same weights all hash the same.
    """
    h = hashlib.sha256()
    for key in sorted(sd):
        t = sd[key].detach().to("cpu", torch.float32).contiguous()
        h.update(f"{key}:{tuple(t.shape)}\n".encode())
        h.update(t.numpy().astype("<f4", copy=False).tobytes())
    return h.hexdigest()


def to_old_layout(sd: Mapping[str, torch.Tensor], config: RRDBNetConfig) -> dict[str, torch.Tensor]:
    """BasicSR keys -> the original ESRGAN `model.N` layout (as read by ESRGAN's 2018 test.py)."""
    n_up = sum(1 for k in sd if re.fullmatch(r"conv_up\d+\.weight", k))
    # Sequential indices: 0 conv, 1 trunk, then per stage (upsample, conv, act) for nearest or
    # (conv, shuffle, act) for pixel-shuffle, then HR conv, act, last conv.
    first_up = 3 if config.upsampler == "nearest+conv" else 2
    index = {"conv_first": 0, "conv_hr": 2 + 3 * n_up, "conv_last": 4 + 3 * n_up}
    index.update({f"conv_up{i + 1}": first_up + 3 * i for i in range(n_up)})
    out: dict[str, torch.Tensor] = {}
    for key, value in sd.items():
        module, _, kind = key.rpartition(".")
        if m := re.fullmatch(r"body\.(\d+)\.rdb(\d+)\.conv(\d+)", module):
            out[f"model.1.sub.{m[1]}.RDB{m[2]}.conv{m[3]}.0.{kind}"] = value
        elif module == "conv_body":
            out[f"model.1.sub.{config.num_block}.{kind}"] = value
        else:
            out[f"model.{index[module]}.{kind}"] = value
    return out


def to_trunk_layout(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """BasicSR keys -> xinntao/ESRGAN's 2019 `RRDB_trunk` layout."""
    rename = {"conv_body": "trunk_conv", "conv_hr": "HRconv"}
    out: dict[str, torch.Tensor] = {}
    for key, value in sd.items():
        module, _, kind = key.rpartition(".")
        if m := re.fullmatch(r"body\.(\d+)\.rdb(\d+)\.conv(\d+)", module):
            module = f"RRDB_trunk.{m[1]}.RDB{m[2]}.conv{m[3]}"
        elif m := re.fullmatch(r"conv_up(\d+)", module):
            module = f"upconv{m[1]}"
        else:
            module = rename.get(module, module)
        out[f"{module}.{kind}"] = value
    return out
