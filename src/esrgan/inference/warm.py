"""The warm start of `esrgan upscale`: run a model this machine has already chosen a path for, without
importing torch.

Importing torch takes 1.3 s of a small upscale's 2.6 s on a 2-core EPYC, yet once `auto` has chosen
OpenVINO or ONNX Runtime for a model (`esrgan.inference.autoselect`), torch computes nothing of the
image. So after such a run the full path `remember`s what running the model again takes: the weights
file (size, time, inode), the exported network, the decision's file and key, the model's scale and
memory cost, and the thread count torch ran with. A later run with the same request `recall`s it and
trusts it only when all of that still holds (same CPU, flags, thread settings and library versions,
the decision file whole, no file changed); any doubt gives None and the full path runs, remembering
afresh. `WarmModel` then upscales the images that fit one tile and the full path would read as plain
8-bit RGB, to the same bytes as the full path: the same network and settings
(`esrgan.inference.compiled`), padding, clamping and rounding. Everything else goes the full way.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from esrgan import __version__
from esrgan.cpuinfo import cpu_info
from esrgan.inference.compiled import compile_openvino, onnx_infer, onnx_session, openvino_infer
from esrgan.inference.memory import (
    DEFAULT_MEMORY_FRACTION,
    CostModel,
    available_cpu_memory,
    tile_pixels_for_bytes,
)
from esrgan.inference.selection import cache_path, library_versions, load_selection, machine_key
from esrgan.inference.tileplan import MAX_AUTO_TILE, padded_size, plan_tiles
from esrgan.utils import read_checked_json, user_cache_dir, write_checked_json

if TYPE_CHECKING:
    from esrgan.inference.upscaler import Upscaler

WARM_VERSION = 1
"""Bumped when what an entry holds or how it is used changes."""
_VERSION = f"{WARM_VERSION};{__version__}"
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "TORCH_NUM_THREADS")
"""Environment variables that can change the thread count torch starts with."""
_CODE = ("weights/zoo.py", "inference/selection.py", "inference/autoselect.py", "inference/warm.py")
"""The package's files whose change could change what an entry stands for (registered weights, the
decision's policy, this module): an entry made with other code is not trusted."""


@dataclass(frozen=True, kw_only=True)
class Stamp:
    """A file as it was: resolved path, size, modification time and inode."""

    path: str
    size: int
    mtime_ns: int
    inode: int

    @classmethod
    def of(cls, path: str | Path) -> Stamp:
        resolved = Path(path).resolve()
        st = resolved.stat()
        return cls(path=str(resolved), size=st.st_size, mtime_ns=st.st_mtime_ns, inode=st.st_ino)

    def holds(self) -> bool:
        """Whether the file is still there, unchanged."""
        try:
            return Stamp.of(self.path) == self
        except OSError:
            return False


@dataclass(frozen=True, kw_only=True)
class WarmEntry:
    """What running a model again without torch takes, and what that rests on."""

    request: tuple[str, str, str]
    """(model spec, precision, runtime) as asked ("" for no spec: the default model), the last two
    lower case."""
    spec: str
    """The spec the model was loaded from (the default model's name for "")."""
    spec_is_path: bool
    """The spec named a file (which wins over a registered name of the same spelling)."""
    weights: tuple[Stamp, ...]
    """The weights file (an ncnn pair: both files)."""
    networks: tuple[Stamp, ...]
    """The exported network: the OpenVINO IR's .xml and .bin, or the ONNX file."""
    runtime: str
    hint: str
    """OpenVINO's precision for the parts that are not int8 (f32 or bf16)."""
    label: str
    """The path as the summary line names it, e.g. `openvino fp32`."""
    decision: str
    """The file of the decision (`esrgan.inference.selection`) that chose this path."""
    key: dict[str, str]
    names: tuple[str, ...]
    """The candidates the decision chose among."""
    choice: str
    threads: int
    thread_env: dict[str, str]
    scale: int
    in_ch: int
    out_ch: int
    multiple: int
    cost: dict[str, float]
    """`CostModel`'s fields."""
    per_px: float
    """Activation bytes per input pixel of a tile on this path."""
    overlap: int
    min_side: int
    """The tile planner's overlap and smallest tile side (`Upscaler.min_tile_side`)."""
    code: tuple[Stamp, ...]
    version: str = _VERSION


def warm_dir() -> Path:
    """Where entries are kept: `<user cache>/warm` (`$ESRGAN_CACHE` moves it)."""
    return user_cache_dir() / "warm"


def _request(spec: str | None, precision: str, runtime: str) -> tuple[str, str, str]:
    return (spec or "", precision.strip().lower(), runtime.strip().lower())


def entry_path(spec: str | None, precision: str, runtime: str) -> Path:
    digest = hashlib.sha256(json.dumps(_request(spec, precision, runtime)).encode()).hexdigest()[:32]
    return warm_dir() / f"warm-{digest}.json"


def thread_env() -> dict[str, str]:
    """What torch's starting thread count follows: the variables that set it, the CPUs this process
    may run on and the CPU count."""
    found = {name: os.environ.get(name, "") for name in THREAD_VARIABLES}
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    found["affinity"] = ",".join(map(str, cpus))
    found["cpu_count"] = str(os.cpu_count())
    return found


def _code_stamps() -> tuple[Stamp, ...]:
    root = Path(__file__).resolve().parents[1]
    return tuple(Stamp.of(root / name) for name in _CODE)


def _weights_stamps(path: Path) -> tuple[Stamp, ...]:
    # An ncnn model is a .param and a .bin: either may change alone.
    files = [path]
    if path.suffix.lower() in (".param", ".bin"):
        other = path.with_suffix(".bin" if path.suffix.lower() == ".param" else ".param")
        if other.is_file():
            files.append(other)
    return tuple(Stamp.of(f) for f in files)


def remember(upscaler: Upscaler, *, spec: str | None, precision: str, runtime: str) -> Path | None:
    """Keep what a later run of this request needs to start warm, if it can: `upscaler` has chosen
    OpenVINO or ONNX Runtime by measuring (`Upscaler.selection`), on the CPU, and knows its weights
    file. `spec` None: the default model. Returns the entry's file, or None when there is nothing to
    remember. The caller makes sure the request used the defaults the warm path assumes
    (`tile="auto"`, no memory limit, one process)."""
    import torch

    from esrgan.weights.zoo import DEFAULT_MODEL

    selection, network = upscaler.selection, upscaler.network_file
    if selection is None or network is None or upscaler.weights_file is None:
        return None
    if upscaler.device.type != "cpu" or upscaler.runtime not in ("openvino", "onnxruntime"):
        return None
    decision = cache_path(selection.key, upscaler.cache_dir)
    if not decision.is_file():
        return None  # a read-only cache: the decision is measured again next time anyway
    networks = [network, network.with_suffix(".bin")] if upscaler.runtime == "openvino" else [network]
    cost = CostModel.for_model(upscaler.model)
    entry = WarmEntry(
        request=_request(spec, precision, runtime),
        spec=spec or DEFAULT_MODEL,
        spec_is_path=Path(spec or DEFAULT_MODEL).exists(),
        weights=_weights_stamps(upscaler.weights_file),
        networks=tuple(Stamp.of(n) for n in networks),
        runtime=upscaler.runtime,
        hint=upscaler.hint,
        label=upscaler.path,
        decision=str(decision.resolve()),
        key=dict(selection.key),
        names=tuple(v.name for v in selection.verdicts),
        choice=selection.choice,
        threads=torch.get_num_threads(),
        thread_env=thread_env(),
        scale=upscaler.scale,
        in_ch=upscaler.in_channels,
        out_ch=upscaler.out_channels,
        multiple=upscaler.input_multiple,
        cost=asdict(cost),
        per_px=cost.activation_bytes_per_pixel(dtype=upscaler.dtype, runtime=upscaler.runtime),
        overlap=upscaler.tile_overlap,
        min_side=upscaler.min_tile_side(),
        code=_code_stamps(),
    )
    path = entry_path(spec, precision, runtime)
    write_checked_json(path, asdict(entry))
    return path


def _stamps(items: Any) -> tuple[Stamp, ...]:
    return tuple(Stamp(**item) for item in items)


def _load(path: Path) -> WarmEntry | None:
    payload = read_checked_json(path)
    if payload is None:
        return None
    try:
        fields: dict[str, Any] = dict(payload)
        for name in ("weights", "networks", "code"):
            fields[name] = _stamps(fields[name])
        fields["request"] = tuple(fields["request"])
        fields["names"] = tuple(fields["names"])
        return WarmEntry(**fields)
    except (ValueError, TypeError, KeyError, AttributeError):
        return None


def recall(spec: str | None, *, precision: str = "auto", runtime: str = "auto") -> WarmEntry | None:
    """The remembered entry for this request (`spec` None: the default model) if everything it rests
    on still holds, else None."""
    entry = _load(entry_path(spec, precision, runtime))
    if entry is None or entry.request != _request(spec, precision, runtime):
        return None
    if entry.version != _VERSION:
        return None
    try:
        spec_is_path = Path(entry.spec).exists()
        if spec_is_path != entry.spec_is_path:
            return None
        if spec_is_path and str(Path(entry.spec).resolve()) not in {w.path for w in entry.weights}:
            return None
    except OSError:
        return None
    if not all(s.holds() for s in (*entry.weights, *entry.networks, *entry.code)):
        return None
    if entry.thread_env != thread_env():
        return None
    cpu = cpu_info()
    if not cpu.flags:
        return None  # this OS lists no CPU flags: only torch's probes could tell
    key = {**entry.key, **machine_key(cpu=cpu, threads=entry.threads, versions=library_versions())}
    if key != entry.key:
        return None
    selection = load_selection(Path(entry.decision), key=key, names=entry.names)
    if selection is None or selection.choice != entry.choice:
        return None
    return entry


def fits_one_tile(entry: WarmEntry, height: int, width: int, *, free: int | None = None) -> bool:
    """Whether the full path (`Upscaler` with `tile="auto"`, no memory limit) would run an image of
    this size as one tile: the tile plan (`plan_tiles`) for what half of the free memory (`free`
    bytes, else `available_cpu_memory()`) allows on this path, as `Upscaler.plan_for` makes it."""
    hp, wp = padded_size(height, width, entry.multiple)
    budget = int((available_cpu_memory() if free is None else free) * DEFAULT_MEMORY_FRACTION)
    cost = CostModel(**entry.cost)  # type: ignore[arg-type]
    pixels = tile_pixels_for_bytes(cost, budget=budget, image_hw=(hp, wp), per_px=entry.per_px)
    plan = plan_tiles(
        hp,
        wp,
        max_pixels=min(pixels, MAX_AUTO_TILE**2),
        overlap=entry.overlap,
        multiple=entry.multiple,
        min_side=entry.min_side,
    )
    return plan.count == 1


class WarmModel:
    """The remembered network, loaded by its runtime with the full path's settings, on NumPy arrays."""

    def __init__(self, entry: WarmEntry) -> None:
        self.entry = entry
        path = entry.networks[0].path
        if entry.runtime == "openvino":
            self._net = compile_openvino(path, threads=entry.threads, hint=entry.hint)
        else:
            self._net = onnx_session(path, threads=entry.threads)

    def upscale(self, rgb: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 RGB -> (sH, sW, 3) uint8: one tile, the image replicate-padded to the input
        multiple, the output clamped, cropped and rounded as the full path writes 8-bit files."""
        if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3 or self.entry.in_ch != 3:
            raise ValueError(f"the warm path takes 8-bit RGB for an RGB model, got {rgb.dtype} {rgb.shape}")
        h, w, _ = rgb.shape
        s = self.entry.scale
        x = (rgb.astype(np.float32) / np.float32(255.0)).transpose(2, 0, 1)[None]
        hp, wp = padded_size(h, w, self.entry.multiple)
        if (hp, wp) != (h, w):
            x = np.pad(x, ((0, 0), (0, 0), (0, hp - h), (0, wp - w)), mode="edge")
        x = np.ascontiguousarray(x)
        if self.entry.runtime == "openvino":
            y = openvino_infer(self._net, x)
            self._net.release_memory()  # as the full path does after an image
        else:
            y = onnx_infer(self._net, x)
        y = np.clip(y[0, :, : h * s, : w * s], 0.0, 1.0)
        return np.rint(y * np.float32(255.0)).astype(np.uint8).transpose(1, 2, 0)
