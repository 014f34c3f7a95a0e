"""What this CPU is and which vector and matrix units it has, read from the OS when asked.

Apart from `esrgan.device` so that what needs only these facts (the warm start path of `esrgan
upscale`, which checks that a remembered decision was made on this CPU) does not import torch.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass

# The flags that decide which arithmetic units inference can use (shown by `esrgan info --runtime`).
SPEED_FLAGS = (
    "avx2",
    "fma",
    "avx512f",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
    "amx_fp16",
)


@dataclass(frozen=True, kw_only=True)
class CpuInfo:
    """What this CPU is and which vector and matrix units it has (read from the OS when asked)."""

    model: str
    flags: frozenset[str]
    """Every feature flag the OS reports (lower case); empty where it reports none (not Linux)."""
    cores: int

    @property
    def speed_flags(self) -> tuple[str, ...]:
        return tuple(f for f in SPEED_FLAGS if f in self.flags)

    @property
    def cpu_class(self) -> str:
        """A short name for the units that set inference speed: AMX, AVX512-BF16, AVX-512, AVX2 or basic."""
        if "amx_bf16" in self.flags:
            return "AMX"
        if "avx512_bf16" in self.flags:
            return "AVX512-BF16"
        if "avx512f" in self.flags:
            return "AVX-512"
        return "AVX2" if "avx2" in self.flags else "basic"

    def describe(self) -> str:
        flags = " ".join(self.speed_flags) or "none of the listed"
        return f"{self.model} ({self.cpu_class}; {self.cores} cores; {flags})"


def torch_probe(name: str) -> bool:
    """One of torch's private CPU probes (imports torch). They move between releases; a missing one
    means "not known to be supported"."""
    import torch

    for owner in (torch.cpu, torch.ops.mkldnn):
        fn = getattr(owner, name, None)
        if fn is None:
            continue
        try:
            return bool(fn())
        except (RuntimeError, AttributeError):
            return False
    return False


def cpu_info() -> CpuInfo:
    """This CPU's model name and feature flags (`/proc/cpuinfo` on Linux, `platform` elsewhere; torch's
    probes where the OS lists no flags)."""

    model, flags = "", frozenset[str]()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            text = fh.read()
    except OSError:
        text = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and not model:
            model = value.strip()
        elif key in ("flags", "Features") and not flags:
            flags = frozenset(value.split())
    if not flags:
        # Without the OS's list, torch's probes still say what oneDNN will use.
        bf16 = torch_probe("_is_avx512_bf16_supported") or torch_probe("_is_amx_tile_supported")
        probed = {"avx512_bf16": bf16, "amx_fp16": torch_probe("_is_amx_fp16_supported")}
        probed["amx_bf16"] = torch_probe("_is_amx_tile_supported")
        flags = frozenset(k for k, v in probed.items() if v)
    name = model or platform.processor() or "unknown CPU"
    return CpuInfo(model=name, flags=flags, cores=os.cpu_count() or 1)
