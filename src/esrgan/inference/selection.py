"""A measured choice of inference path (`esrgan.inference.autoselect`) and how it is remembered.

A decision is kept as JSON in the user cache under a key of everything it depends on (weights hash,
CPU model and feature flags, thread count, library versions, the policy). The file carries a checksum
over the rest; a file whose checksum, key or verdicts do not add up is measured again, never trusted.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from esrgan.cpuinfo import CpuInfo
from esrgan.utils import read_checked_json, user_cache_dir, write_checked_json

if TYPE_CHECKING:  # no torch at import: the warm start path (`esrgan.inference.warm`) reads decisions
    from torch import nn

FALLBACK = "torch-fp32"
"""Chosen when no candidate passes: eager's own arithmetic (channels_last, the same image)."""


@dataclass(frozen=True, kw_only=True)
class Verdict:
    """What the check and the timing found for one candidate."""

    name: str
    passed: bool
    db: float | None = None
    """Worst check crop's PSNR of the 8-bit output against eager fp32's (inf: identical)."""
    psnr_y: float | None = None
    """Mean PSNR-Y against the HR crops."""
    seconds: float | None = None
    """Best time for the timing tile (passing candidates only)."""
    reason: str = ""
    """Why it failed, one line."""


@dataclass(frozen=True, kw_only=True)
class Selection:
    """A decision and what it rests on."""

    key: dict[str, str]
    reference_psnr_y: float
    """Eager fp32's mean PSNR-Y on the check crops."""
    min_db: float
    verdicts: tuple[Verdict, ...]
    choice: str
    seconds: float
    """How long measuring took."""
    max_y_drop: float
    """How far below eager fp32's mean PSNR-Y a candidate may be (dB)."""
    timing_side: int
    from_cache: bool = field(default=False, compare=False)

    def report(self, *, cpu: CpuInfo | None = None) -> list[str]:
        """Lines for people: the CPU, each candidate's dB, PSNR-Y, time and verdict, and the choice."""
        lines = [] if cpu is None else [f"cpu:        {cpu.describe()}"]
        lines.append(
            f"check:      {len(self.verdicts)} candidates; pass = >= {self.min_db:g} dB from eager fp32 on "
            f"every check crop and PSNR-Y at most {self.max_y_drop:g} dB below its "
            f"{self.reference_psnr_y:.3f} dB; the fastest passing one on a {self.timing_side} px tile wins"
        )
        fastest = min((v.seconds for v in self.verdicts if v.seconds), default=None)
        for v in self.verdicts:
            db = "-" if v.db is None else ("identical" if v.db == float("inf") else f"{v.db:.1f} dB")
            y = "-" if v.psnr_y is None else f"{v.psnr_y - self.reference_psnr_y:+.4f} dB"
            t = "-" if v.seconds is None else f"{v.seconds:.3f} s"
            if v.seconds and fastest:
                t += f" ({v.seconds / fastest:.2f}x the fastest)"
            verdict = "pass" if v.passed else f"fail: {v.reason}"
            mark = "*" if v.name == self.choice else " "
            lines.append(f"  {mark} {v.name:<19} vs fp32 {db:>10}  PSNR-Y {y:>11}  {t:<28} {verdict}")
        source = "cached" if self.from_cache else f"measured in {self.seconds:.0f} s"
        lines.append(f"choice:     {self.choice} ({source})")
        return lines

    def to_json(self, *, cpu: CpuInfo | None = None) -> str:
        """The decision as strict JSON (what `esrgan info --runtime --json` prints): identical outputs'
        infinite dB, which JSON cannot hold, are the string "inf" as in the cache file."""
        report = _json_ready(self)
        if cpu is not None:
            report["cpu"] = {"model": cpu.model, "class": cpu.cpu_class, "cores": cpu.cores}
            report["cpu"]["flags"] = list(cpu.speed_flags)
        return json.dumps(report, indent=2, allow_nan=False)


def library_versions() -> dict[str, str]:
    """Versions of everything that computes a candidate's output ('-' for what is not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ("torch", "onnxruntime", "openvino", "nncf"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "-"
    return found


def machine_key(*, cpu: CpuInfo, threads: int, versions: Mapping[str, str]) -> dict[str, str]:
    """The part of a decision's key that describes this machine and its libraries."""
    return {
        "cpu": cpu.model,
        "flags": hashlib.sha256(" ".join(sorted(cpu.flags)).encode()).hexdigest(),
        "threads": str(threads),
        "versions": ";".join(f"{k}={v}" for k, v in sorted(versions.items())),
    }


def selection_key(
    model: nn.Module,
    *,
    candidates: Sequence[str],
    policy: str,
    cpu: CpuInfo,
    threads: int,
    versions: Mapping[str, str],
) -> dict[str, str]:
    """Everything a decision depends on; a change in any of them means measuring again."""
    from esrgan.inference.export import weights_digest

    return {
        "weights": weights_digest(model),
        **machine_key(cpu=cpu, threads=threads, versions=versions),
        "policy": policy,
        "candidates": ",".join(candidates),
    }


def selection_cache_dir() -> Path:
    """Where decisions are kept: `<user cache>/autoselect` (`$ESRGAN_CACHE` moves it)."""
    return user_cache_dir() / "autoselect"


def cache_path(key: Mapping[str, str], cache_dir: str | Path | None) -> Path:
    folder = Path(cache_dir) if cache_dir is not None else selection_cache_dir()
    digest = hashlib.sha256(json.dumps(dict(key), sort_keys=True).encode()).hexdigest()[:32]
    return folder / f"select-{digest}.json"


def save_selection(selection: Selection, path: Path) -> None:
    """Written atomically, with a checksum over everything else in the file."""
    payload = _json_ready(selection)
    payload.pop("from_cache")
    write_checked_json(path, payload)


def _json_ready(selection: Selection) -> dict[str, Any]:
    """The decision as a dict JSON can hold: infinite dB (identical outputs) as "inf"."""
    payload = asdict(selection)
    payload["verdicts"] = [{k: _finite(v) for k, v in d.items()} for d in payload["verdicts"]]
    return payload


def _finite(value: object) -> object:
    # JSON has no infinity; identical outputs are stored as the string "inf".
    return "inf" if value == float("inf") else value


def _number(value: object) -> float | None:
    if value is None:
        return None
    if not isinstance(value, int | float | str) or isinstance(value, bool):
        raise TypeError(f"not a number: {value!r}")
    return float(value)


def _verdict(d: Mapping[str, object]) -> Verdict:
    if not isinstance(d["name"], str) or not isinstance(d["passed"], bool):
        raise TypeError("a verdict needs a name and a pass/fail")
    return Verdict(
        name=d["name"],
        passed=d["passed"],
        db=_number(d["db"]),
        psnr_y=_number(d["psnr_y"]),
        seconds=_number(d["seconds"]),
        reason=str(d["reason"]),
    )


def load_selection(path: Path, *, key: Mapping[str, str], names: Sequence[str]) -> Selection | None:
    """The decision in `path` if it is whole and still applies, else None (measure again): its
    checksum must match, its key must be `key`, and its choice a passing candidate among `names`
    (or the fallback)."""
    payload = read_checked_json(path)
    try:
        if payload is None or payload["key"] != dict(key):
            return None
        verdicts = tuple(_verdict(d) for d in payload["verdicts"])
        selection = Selection(
            key=dict(payload["key"]),
            reference_psnr_y=float(payload["reference_psnr_y"]),
            min_db=float(payload["min_db"]),
            verdicts=verdicts,
            choice=str(payload["choice"]),
            seconds=float(payload["seconds"]),
            max_y_drop=float(payload["max_y_drop"]),
            timing_side=int(payload["timing_side"]),
            from_cache=True,
        )
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None
    passing = {v.name for v in selection.verdicts if v.passed}
    if selection.choice != FALLBACK and not (selection.choice in passing and selection.choice in names):
        return None
    return selection
