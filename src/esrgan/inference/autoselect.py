"""`auto` on the CPU: the fastest path that gives this machine's eager fp32 image, measured here once.

No fixed table of runtimes and precisions is right on every CPU: bf16 is 9x faster than eager fp32
on an AMX Xeon and 52.9 dB from its output, but 31-48 dB away on an AVX512-BF16 EPYC, a different
image. So, as FFTW's planner and cuDNN's benchmark mode do, each candidate path (`CANDIDATES`) runs
the shipped check crops (`esrgan/inference/calibration`, LR made with MATLAB bicubic, each also as a
soft LR: `SOFT_FACTOR`) and passes when
its 8-bit output is at least `min_db` from eager fp32 on every crop (`AUTO_MIN_DB`, 45 dB, where the CPU
has native bf16; `FP32_MIN_DB`, 50 dB, elsewhere and for `fp32`) and its mean PSNR-Y against the HR
crops is at most `MAX_PSNR_Y_DROP_DB` below eager fp32's. The passing ones are timed on a
representative tile, interleaved so a busy machine slows them alike, and the fastest wins.

The decision is remembered with everything it depends on (`esrgan.inference.selection`); a damaged
or outdated one is measured again. `Selection.report` says why a path was chosen.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from esrgan.device import CpuInfo, cpu_has_native_bf16, cpu_info
from esrgan.inference.runtime import RUNTIME_NAMES, onnxruntime_available, openvino_available
from esrgan.inference.selection import (
    FALLBACK,
    Selection,
    Verdict,
    cache_path,
    library_versions,
    load_selection,
    save_selection,
    selection_key,
)

SELECT_VERSION = 2
"""Bumped when the check or the timing changes, so earlier decisions are measured again."""
AUTO_MIN_DB = 45.0
"""`auto` on a CPU with native bf16: a candidate's 8-bit output must be at least this PSNR (dB) from eager
fp32 on every crop (elsewhere `FP32_MIN_DB`)."""
FP32_MIN_DB = 50.0
"""`fp32`: the same output as eager, so only fp32 candidates and a stricter bound."""
MAX_PSNR_Y_DROP_DB = 0.01
"""A candidate's mean PSNR-Y against the HR crops may be at most this much below eager fp32's."""
TIMING_SIDE = 64
"""Side (input pixels) of the tile the passing candidates are timed on."""
TIMING_ROUNDS = 2
CHECK_CROPS = 4
"""How many of the shipped check crops are used (one per photo): the check has to stay near a minute for
a 23-block model on 2 cores."""
SOFT_FACTOR = 4
"""Each check crop also runs as a soft LR: made at 1/SOFT_FACTOR of the LR size with MATLAB bicubic and
enlarged back, like a photo that was already enlarged. GAN generators synthesise texture on such input,
and that texture is where reduced precision moves the image most: realesrgan-x4plus in bf16 on an
AVX512-BF16 EPYC was 48-53 dB from fp32 on the protocol's LR crops but 35-47 dB on these (and 42 dB on a
whole enlarged photo), so a check on the protocol's LR alone passed a path that changes the picture."""
MIN_PARAMETERS = 100_000
"""Smaller networks run fp32 on PyTorch without a check: it would take longer than it could save."""

Runner = Callable[[torch.Tensor], torch.Tensor]
"""(N, C, h, w) float32 CPU in [0, 1] -> the model's output, float32 CPU, clamped to [0, 1]."""
MakeRunner = Callable[[nn.Module, "Path | None", bool], Runner]
"""(model, cache folder, progress) -> a runner; what a candidate needs to run."""


@dataclass(frozen=True, kw_only=True)
class Candidate:
    """One way to run a generator on the CPU."""

    name: str
    runtime: str
    """torch, onnxruntime or openvino."""
    precision: str
    """fp32, bf16 or int8 (what the user would ask for with --precision)."""
    hint: str = "f32"
    """OpenVINO's precision for what is not int8 (f32 or bf16)."""
    make: MakeRunner | None = field(default=None, compare=False)
    """Builds the runner; None for the built-in ones (`make_runner`). Tests pass their own."""

    @property
    def label(self) -> str:
        rest = " (bf16 elsewhere)" if self.precision == "int8" and self.hint == "bf16" else ""
        return f"{self.runtime} {self.precision}{rest}"


CANDIDATES: dict[str, Candidate] = {
    c.name: c
    for c in (
        Candidate(name="torch-fp32", runtime="torch", precision="fp32"),
        Candidate(name="onnxruntime-fp32", runtime="onnxruntime", precision="fp32"),
        Candidate(name="openvino-fp32", runtime="openvino", precision="fp32"),
        Candidate(name="torch-bf16", runtime="torch", precision="bf16"),
        Candidate(name="openvino-bf16", runtime="openvino", precision="bf16", hint="bf16"),
        Candidate(name="openvino-int8", runtime="openvino", precision="int8"),
        Candidate(name="openvino-int8-bf16", runtime="openvino", precision="int8", hint="bf16"),
    )
}


def applies(precision: str, runtime: str, *, model: nn.Module, device: torch.device) -> bool:
    """Whether this request is settled by measuring (`select_path`) rather than by rule: `auto`
    precision (any runtime) or `fp32` on the `auto` runtime, on the CPU, for a generator of at least
    `MIN_PARAMETERS`."""
    p, r = precision.strip().lower(), runtime.strip().lower()
    if device.type != "cpu" or getattr(model, "config", None) is None or r not in RUNTIME_NAMES:
        return False
    if sum(t.numel() for t in model.parameters()) < MIN_PARAMETERS:
        return False
    return p == "auto" or (p == "fp32" and r == "auto")


def candidates_for(
    *,
    precision: str,
    runtime: str,
    native_bf16: bool,
    int8_allowed: bool,
    have_onnxruntime: bool,
    have_openvino: bool,
) -> list[Candidate]:
    """The built-in candidates a request may use on a machine with these facts (pure; see `applies`).

    bf16 only where the CPU has it natively (emulated bf16 is slower than fp32); int8 only where the
    model's measured int8 drop allows it (`int8_allowed`) and NNCF is installed; `fp32` keeps to fp32.
    """
    chosen = []
    for c in CANDIDATES.values():
        if precision == "fp32" and c.precision != "fp32":
            continue
        if runtime != "auto" and c.runtime != runtime:
            continue
        if (c.precision == "bf16" or c.hint == "bf16") and not native_bf16:
            continue
        if c.precision == "int8" and not int8_allowed:
            continue
        if (c.runtime == "onnxruntime" and not have_onnxruntime) or (
            c.runtime == "openvino" and not have_openvino
        ):
            continue
        chosen.append(c)
    return chosen


def make_runner(candidate: Candidate, model: nn.Module, cache_dir: Path | None, progress: bool) -> Runner:
    """A runner for `candidate` (exporting, converting or quantising the model on first use, cached)."""
    if candidate.make is not None:
        return candidate.make(model, cache_dir, progress)
    if candidate.runtime == "torch":
        return torch_runner(model, torch.bfloat16 if candidate.precision == "bf16" else torch.float32)
    if candidate.runtime == "onnxruntime":
        from esrgan.inference.export import cached_onnx
        from esrgan.inference.runtime import OnnxRuntimeRunner

        return OnnxRuntimeRunner(path=cached_onnx(model, cache_dir=cache_dir))
    from esrgan.inference.runtime import OpenVinoRunner

    if candidate.precision == "int8":
        from esrgan.inference.int8 import cached_int8

        path = cached_int8(model, cache_dir=cache_dir, progress=progress).path
    else:
        from esrgan.inference.export import cached_openvino

        path = cached_openvino(model, cache_dir=cache_dir)
    return OpenVinoRunner(path=path, hint=candidate.hint)


def torch_runner(model: nn.Module, dtype: torch.dtype) -> Runner:
    """Eager PyTorch on a channels_last fp32 copy of `model`, under CPU autocast for bf16."""
    from esrgan.inference.export import export_copy

    net = export_copy(model).to(memory_format=torch.channels_last)  # type: ignore[call-overload]

    def run(x: torch.Tensor) -> torch.Tensor:
        x = x.to(torch.float32).contiguous(memory_format=torch.channels_last)
        autocast = torch.autocast("cpu", dtype=dtype) if dtype != torch.float32 else contextlib.nullcontext()
        with torch.no_grad(), autocast:
            return net(x).float().clamp_(0.0, 1.0).contiguous()

    return run


def _check_images(model: nn.Module) -> tuple[list[tuple[torch.Tensor, torch.Tensor]], torch.Tensor]:
    """(LR, HR) check crops cut to the model's input multiple, and the timing tile."""
    from esrgan.inference.int8 import calibration_crops

    scale = int(getattr(model, "scale", 1))
    multiple = int(getattr(model, "input_multiple", 1))
    in_ch = int(getattr(getattr(model, "config", None), "in_ch", 3))
    _, check = calibration_crops()
    pairs = []
    for hr in check[:: max(1, len(check) // CHECK_CROPS)][:CHECK_CROPS]:
        for soft in (False, True):
            lr = _soft_low_res(hr, scale) if soft else _protocol_low_res(hr, scale)
            h, w = (s - s % multiple for s in lr.shape[-2:])
            lr, hr_cut = lr[..., :h, :w], hr[..., : h * scale, : w * scale].unsqueeze(0)
            if in_ch == 1:  # a one-channel model sees the luma-like green channel
                lr, hr_cut = lr[:, 1:2], hr_cut[:, 1:2]
            pairs.append((lr.float().contiguous(), hr_cut))
    side = TIMING_SIDE + (-TIMING_SIDE) % multiple
    tile = F.interpolate(check[0].unsqueeze(0), size=(side, side), mode="area")[:, :in_ch].contiguous()
    return pairs, tile


def _protocol_low_res(hr: torch.Tensor, scale: int) -> torch.Tensor:
    """The protocol's LR of an HR crop (3, H, W): MATLAB bicubic, (1, 3, h, w) float32."""
    from esrgan.inference.int8 import low_res

    return torch.from_numpy(low_res(hr, scale)) if scale > 1 else hr.unsqueeze(0)


def _soft_low_res(hr: torch.Tensor, scale: int) -> torch.Tensor:
    """The LR of `hr` made soft (`SOFT_FACTOR`) at the same size, rounded to 8 bit like a real input."""
    from esrgan.data.imresize import degrade, imresize

    small = degrade(hr.unsqueeze(0).to(torch.float64), scale * SOFT_FACTOR)
    soft = imresize(small, scale=float(SOFT_FACTOR)).clamp_(0.0, 1.0)
    return soft.mul_(255.0).round_().div_(255.0).to(torch.float32)


@contextlib.contextmanager
def _bar(total: int, progress: bool) -> Iterator[Callable[[str], None]]:
    from tqdm import tqdm

    with tqdm(total=total, desc="checking paths", unit="run", disable=not progress, file=sys.stderr) as bar:

        def step(name: str) -> None:
            bar.set_postfix_str(name, refresh=False)
            bar.update(1)

        yield step


def measure(
    model: nn.Module,
    candidates: Sequence[Candidate],
    *,
    key: dict[str, str],
    min_db: float,
    cache_dir: Path | None = None,
    progress: bool = False,
) -> Selection:
    """Run the check on every candidate and time the passing ones (see the module's docstring)."""
    from esrgan.metrics import psnr

    start = time.monotonic()
    scale = int(getattr(model, "scale", 1))
    pairs, tile = _check_images(model)
    # Eager fp32 in channels_last, the torch-fp32 candidate: 88 dB from the default layout (measured),
    # and running it once as both reference and candidate saves a pass over the crops.
    reference = torch_runner(model, torch.float32)
    runners: dict[str, Runner] = {}
    verdicts: dict[str, Verdict] = {}
    with _bar(len(pairs) * (len(candidates) + 1) + TIMING_ROUNDS * len(candidates), progress) as step:
        ref = []
        for lr, _ in pairs:
            ref.append(reference(lr))
            step("eager fp32")
        ref_y = sum(
            psnr(o, hr, crop_border=scale).item() for o, (_, hr) in zip(ref, pairs, strict=True)
        ) / len(pairs)
        for c in candidates:
            try:
                run = reference if c == CANDIDATES[FALLBACK] else make_runner(c, model, cache_dir, progress)
                outs = []
                for i, (lr, _) in enumerate(pairs):
                    outs.append(ref[i] if run is reference else run(lr))
                    step(c.name)
            except Exception as exc:  # a runtime that cannot run this model is a failed candidate
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                verdicts[c.name] = Verdict(name=c.name, passed=False, reason=f"cannot run: {first[:160]}")
                continue
            db = min(
                psnr(o, r, crop_border=0, y_channel=False).item() for o, r in zip(outs, ref, strict=True)
            )
            y = sum(
                psnr(o, hr, crop_border=scale).item() for o, (_, hr) in zip(outs, pairs, strict=True)
            ) / len(pairs)
            reason = ""
            if db < min_db:
                reason = f"{db:.1f} dB from eager fp32 (< {min_db:g})"
            elif y < ref_y - MAX_PSNR_Y_DROP_DB:
                reason = f"PSNR-Y {y - ref_y:+.3f} dB (< -{MAX_PSNR_Y_DROP_DB:g})"
            verdicts[c.name] = Verdict(name=c.name, passed=not reason, db=db, psnr_y=y, reason=reason)
            if not reason:
                runners[c.name] = run
        best: dict[str, float] = {}
        for run in runners.values():
            run(tile)  # a new shape: let each runtime plan for it before it is timed
        for _ in range(TIMING_ROUNDS):
            for name, run in runners.items():  # interleaved: a busy machine slows every candidate alike
                t0 = time.perf_counter()
                run(tile)
                best[name] = min(best.get(name, float("inf")), time.perf_counter() - t0)
                step(f"timing {name}")
    for name, seconds in best.items():
        verdicts[name] = Verdict(**{**asdict(verdicts[name]), "seconds": seconds})
    choice = min(best, key=best.__getitem__) if best else FALLBACK
    return Selection(
        key=key,
        reference_psnr_y=ref_y,
        min_db=min_db,
        verdicts=tuple(verdicts[c.name] for c in candidates),
        choice=choice,
        seconds=time.monotonic() - start,
        max_y_drop=MAX_PSNR_Y_DROP_DB,
        timing_side=TIMING_SIDE,
    )


def select_path(
    model: nn.Module,
    *,
    precision: str = "auto",
    runtime: str = "auto",
    int8_drop_db: float | None = None,
    candidates: Sequence[Candidate] | None = None,
    cache_dir: str | Path | None = None,
    cpu: CpuInfo | None = None,
    threads: int | None = None,
    progress: bool = False,
    refresh: bool = False,
) -> Selection:
    """The verified fastest path for `model` on this machine: from the cache when a whole decision
    with the same key is there, else measured (`measure`) and remembered. `candidates` replaces the
    built-in list (`candidates_for`); `refresh` measures again whatever the cache holds."""
    from esrgan.inference.int8 import int8_available
    from esrgan.inference.precision import AUTO_INT8_MAX_DROP_DB

    p, r = precision.strip().lower(), runtime.strip().lower()
    if p not in ("auto", "fp32"):
        raise ValueError(f"select_path chooses for precision auto or fp32, not {precision!r}")
    native_bf16 = cpu_has_native_bf16()
    if candidates is None:
        small_drop = int8_drop_db is not None and int8_drop_db <= AUTO_INT8_MAX_DROP_DB
        candidates = candidates_for(
            precision=p,
            runtime=r,
            native_bf16=native_bf16,
            int8_allowed=small_drop and int8_available(),
            have_onnxruntime=onnxruntime_available(),
            have_openvino=openvino_available(),
        )
    # 45 dB is the room bf16 needs; a CPU without native bf16 has no bf16 candidate, so what `auto`
    # runs there keeps eager's image (int8, the only other one, passes only where it does too).
    min_db = FP32_MIN_DB if p == "fp32" or not native_bf16 else AUTO_MIN_DB
    key = selection_key(
        model,
        candidates=[c.name for c in candidates],
        policy=f"v{SELECT_VERSION};{min_db:g}dB;{MAX_PSNR_Y_DROP_DB:g}dB-y;{TIMING_SIDE}px",
        cpu=cpu or cpu_info(),
        threads=threads or torch.get_num_threads(),
        versions=library_versions(),
    )
    folder = Path(cache_dir) if cache_dir is not None else None
    path = cache_path(key, folder)
    if not refresh:
        cached = load_selection(path, key=key, names=[c.name for c in candidates])
        if cached is not None:
            return cached
    if progress:
        names = ", ".join(c.name for c in candidates)
        print(
            f"checking which way to run this model is fastest on this CPU with eager fp32's image ({names}); "
            "once per model and machine, about a minute for a 23-block model on 2 cores",
            file=sys.stderr,
        )
    selection = measure(model, candidates, key=key, min_db=min_db, cache_dir=folder, progress=progress)
    with contextlib.suppress(OSError):  # a read-only cache costs a new check next time, nothing else
        save_selection(selection, path)
    return selection
