"""`Upscaler`: runs a super-resolution model on images of any size, on any device, at any precision;
`upscale_image` applies it to a decoded image file (grayscale, alpha)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.nn import functional as F

from esrgan.inference import autoselect
from esrgan.inference.memory import (
    DEFAULT_MEMORY_FRACTION,
    CostModel,
    available_device_memory,
    format_memory,
    process_rss,
    tile_pixels_for_budget,
)
from esrgan.inference.precision import (
    compute_context,
    input_dtype,
    precision_name,
    prepare_model,
    resolve_device,
    resolve_precision_and_runtime,
    uses_channels_last,
)
from esrgan.inference.runtime import OPENVINO_HINTS, OnnxRuntimeRunner, OpenVinoRunner
from esrgan.inference.selection import Selection
from esrgan.inference.tileplan import padded_size
from esrgan.inference.tiling import (
    DEFAULT_TILE_OVERLAP,
    MAX_AUTO_TILE,
    MIN_AUTO_TILE,
    ProgressFn,
    TilePlan,
    plan_tiles,
    tiled_apply,
)
from esrgan.io import ImageData

if TYPE_CHECKING:  # the int8 module is imported when int8 is used, not at start-up
    from esrgan.inference.int8 import Int8Model


class Upscaler:
    """Tiled, precision-aware inference around an upscaling model (e.g. `RRDBNet`, `SRVGGNetCompact`).

    `tile` bounds the side of the input patches the model sees (input pixels): `"auto"` plans tiles
    from a memory budget (`max_memory` bytes, else half of what is free; see `plan_for`), `0`
    disables tiling. Either way each axis is cut into the fewest equal tiles, so only the overlap is
    computed twice. Neighbouring tiles overlap by at least `tile_overlap` input pixels and are
    cross-faded in the middle of the overlap, so every output pixel is computed with about
    `tile_overlap / 2` pixels of real context around it. The 23-block x4 models need ~24 pixels of
    context for tiled output to stay within 0.05 dB (PSNR to HR) of untiled output, hence the default
    of 48; less is faster but shows more. Their receptive field is far larger, though, and on wide
    smooth areas the response reaches further (Set5 "baby", 128 px: -0.07 dB with 96 px tiles,
    -0.57 dB with 64 px): prefer the largest tile that fits, which is what `"auto"` picks.

    `max_memory` bounds the process's peak resident memory on the CPU (model, runtime, image buffers
    and a tile's activations) and torch's peak allocation on a GPU. The model is moved to `device` and
    prepared for `precision` in place.

    `runtime` is what runs the tiles (`esrgan.inference.runtime`): `torch`, `onnxruntime` (CPU fp32,
    same output, faster), `openvino` (CPU fp32, bf16 or int8) or `auto`. Other runtimes need the model
    exported once; that happens at the first `prepare` or `upscale` (not here: constructors do no I/O)
    and the file is cached in `cache_dir` (default: the user cache, see `export.cached_onnx`).

    On the CPU, `precision="auto"` (and `"fp32"` with `runtime="auto"`) runs the fastest path that
    passes this machine's check against eager fp32 (`esrgan.inference.autoselect`): decided at the first
    `prepare`, from the cache or measured once (about a minute for a 23-block model on 2 cores).
    Until then `precision` and `runtime` read `"auto"`; `selection` says what was measured.

    `precision="int8"` runs the model quantised for OpenVINO (`esrgan.inference.int8`), made at the
    first `prepare` and cached the same way (default `int8.int8_cache_dir()`); `int8_drop_db`, the
    model's measured PSNR-Y drop in int8, makes int8 a candidate for `auto` when it is small
    (`precision.AUTO_INT8_MAX_DROP_DB`). `int8_report` describes the quantised model once prepared.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        device: str | torch.device = "auto",
        precision: str = "auto",
        tile: int | str = "auto",
        tile_overlap: int = DEFAULT_TILE_OVERLAP,
        max_memory: int | None = None,
        runtime: str = "auto",
        cache_dir: str | Path | None = None,
        int8_drop_db: float | None = None,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        scale = getattr(model, "scale", None)
        if not isinstance(scale, int) or scale < 1:
            raise ValueError("model must expose an integer .scale >= 1 (as the generators do)")
        if isinstance(tile, str):
            if tile.strip().lower() != "auto":
                raise ValueError(f"tile must be 'auto' or an integer >= 0, got {tile!r}")
            tile = "auto"
        elif isinstance(tile, bool) or not isinstance(tile, int) or tile < 0:
            raise ValueError(f"tile must be 'auto' or an integer >= 0, got {tile!r}")
        if isinstance(tile_overlap, bool) or not isinstance(tile_overlap, int) or tile_overlap < 0:
            raise ValueError(f"tile_overlap must be an integer >= 0, got {tile_overlap!r}")
        if max_memory is not None and (
            isinstance(max_memory, bool) or not isinstance(max_memory, int) or max_memory <= 0
        ):
            raise ValueError(f"max_memory must be a positive number of bytes or None, got {max_memory!r}")
        self.input_multiple = int(getattr(model, "input_multiple", 1))
        if isinstance(tile, int) and tile > 0:
            if tile % self.input_multiple:
                raise ValueError(
                    f"tile {tile} must be a multiple of the model's input multiple {self.input_multiple}"
                )
            if tile <= tile_overlap + self.input_multiple - 1:
                raise ValueError(f"tile {tile} must be larger than tile_overlap {tile_overlap}")
        cfg = getattr(model, "config", None)
        self.in_channels = int(getattr(cfg, "in_ch", 3))
        self.out_channels = int(getattr(cfg, "out_ch", self.in_channels))
        self.scale: int = scale
        self.device = resolve_device(device)
        # A measured choice is made in prepare(): constructors do no I/O.
        self._request = (precision, runtime) if autoselect.applies(
            precision, runtime, model=model, device=self.device
        ) else None  # fmt: skip
        self._int8_drop_db = int8_drop_db
        self.selection: Selection | None = None
        self.dtype = torch.float32
        self.runtime = self.precision = "auto"
        self._hint = "f32"
        if self._request is None:
            self.dtype, self.runtime = resolve_precision_and_runtime(
                precision, runtime, model=model, device=self.device
            )
            int8 = precision.strip().lower() == "int8"
            self.precision = "int8" if int8 else precision_name(self.dtype)
            self._hint = OPENVINO_HINTS.get(self.precision, "f32")
        self.tile: int | str = tile
        self.tile_overlap = tile_overlap
        self.max_memory = max_memory
        self.model = prepare_model(model, self.device, self.dtype)
        self._channels_last = uses_channels_last(self.device, self.dtype)
        self._cost = CostModel.for_model(model) if tile == "auto" else None
        self._runtime_chosen = runtime.strip().lower() == "auto"
        self._cache_dir = cache_dir
        self._onnx: OnnxRuntimeRunner | None = None
        self._openvino: OpenVinoRunner | None = None
        self.int8_report: Int8Model | None = None
        # Resident memory once the model is ready, measured at the first plan (not in the constructor).
        self._baseline: int | None = None
        self.weights_file: Path | None = None
        """The file the weights came from, where the caller knows it (`batch.load_upscaler` does)."""
        self._last_plan: tuple[tuple[int, int, int, int | None], TilePlan] | None = None

    def _padded(self, height: int, width: int) -> tuple[int, int]:
        return padded_size(height, width, self.input_multiple)

    def min_tile_side(self) -> int:
        """The smallest tile side `tile=\"auto\"` plans (input pixels): room for the overlap on both sides."""
        floor = max(MIN_AUTO_TILE, 2 * self.tile_overlap + self.input_multiple)
        return floor + (-floor) % self.input_multiple

    def max_tile_pixels(self, height: int, width: int, batch: int = 1) -> int:
        """Largest tile area (input pixels) that keeps an image of this size within the memory budget.

        CPU: `max_memory` minus what the process holds once the model is ready, minus the image's
        buffers (`CostModel.image_bytes`), over the activation bytes per pixel; without `max_memory`,
        half of the free RAM minus the buffers. GPU: `max_memory` minus torch's allocation (the
        weights), or half of the free device memory. Raises ValueError when `max_memory` cannot hold
        even the image's buffers.
        """
        cost = self._cost or CostModel.for_model(self.model)
        self.prepare()  # the runtime's memory belongs to the baseline
        device_type = "cpu" if self.device.type in ("cpu", "mps") else self.device.type
        if self.max_memory is None:
            budget = int(available_device_memory(self.device) * DEFAULT_MEMORY_FRACTION)
        elif device_type == "cuda":
            budget = self.max_memory - torch.cuda.memory_allocated(self.device)
        else:
            if self._baseline is None:
                self._warm_up()
                self._baseline = process_rss()
            budget = self.max_memory - self._baseline
        pixels = tile_pixels_for_budget(
            cost,
            budget=budget,
            image_hw=self._padded(height, width),
            batch=batch,
            dtype=self.dtype,
            device_type=device_type,
            runtime=self.runtime,
        )
        if self.max_memory is not None:
            smallest = self.min_tile_side() ** 2
            if pixels < smallest:
                side = self.min_tile_side()
                held = self.max_memory - budget  # the model and runtime, already resident
                needed = held + cost.peak_bytes(
                    self._padded(height, width),
                    (side, side),
                    batch=batch,
                    dtype=self.dtype,
                    device_type=device_type,
                    runtime=self.runtime,
                )
                raise ValueError(
                    f"a {width}x{height} image needs at least {format_memory(needed)} with the model "
                    f"loaded, more than the memory limit of {format_memory(self.max_memory)}"
                )
        return min(pixels, MAX_AUTO_TILE**2)

    def plan_for(self, height: int, width: int, batch: int = 1) -> TilePlan:
        """The tiles `upscale` runs for an image of this size (of the image padded to the model's input
        multiple): the explicit `tile`, or for `"auto"` the split computing the fewest pixels whose tile
        fits `max_tile_pixels`. The last plan is kept for the next call with the same size, so a
        progress bar's tile count and the run agree even when free memory moves in between."""
        key = (height, width, batch, self.max_memory)
        if self._last_plan is not None and self._last_plan[0] == key:
            return self._last_plan[1]
        hp, wp = self._padded(height, width)
        if self.tile == "auto":
            plan = plan_tiles(
                hp,
                wp,
                max_pixels=self.max_tile_pixels(height, width, batch),
                overlap=self.tile_overlap,
                multiple=self.input_multiple,
                min_side=self.min_tile_side(),
            )
        else:
            plan = TilePlan.square(
                hp, wp, tile=int(self.tile), overlap=self.tile_overlap, multiple=self.input_multiple
            )
        self._last_plan = (key, plan)
        return plan

    def tile_for(self, height: int, width: int, batch: int = 1) -> int:
        """Longest tile side (input pixels) `upscale` uses for an image of this size; 0 = whole image."""
        plan = self.plan_for(height, width, batch)
        return 0 if plan.count == 1 else max(plan.tile_hw)

    def num_tiles(self, height: int, width: int, batch: int = 1) -> int:
        return self.plan_for(height, width, batch).count

    @property
    def path(self) -> str:
        """What runs the tiles, for people: `onnxruntime fp32`, `openvino int8 (bf16 elsewhere)`..."""
        if self.runtime == "auto":
            return "auto (not chosen yet)"
        rest = " (bf16 elsewhere)" if self.precision == "int8" and self._hint == "bf16" else ""
        return f"{self.runtime} {self.precision}{rest}"

    @property
    def hint(self) -> str:
        """OpenVINO's precision for what is not int8 (`f32` or `bf16`) on the chosen path."""
        return self._hint

    @property
    def cache_dir(self) -> Path | None:
        """Where exported networks and decisions are kept (None: the user cache)."""
        return None if self._cache_dir is None else Path(self._cache_dir)

    @property
    def network_file(self) -> Path | None:
        """The exported network that runs the tiles (ONNX file or OpenVINO IR) once prepared; None while
        eager PyTorch runs them or before `prepare`."""
        runner = self._openvino or self._onnx
        return None if runner is None else runner.path

    @property
    def prepared(self) -> bool:
        """Whether the runtime is ready (eager PyTorch always is)."""
        if self._request is not None:
            return False
        if self.runtime == "onnxruntime":
            return self._onnx is not None
        if self.runtime == "openvino":
            return self._openvino is not None
        return True

    def prepare(self, *, progress: bool = False) -> None:
        """Make the runtime ready (ONNX Runtime: export the model once, load the session; int8: quantise
        the model once, which takes seconds to minutes, then load it). `upscale` calls it; call it
        earlier to keep that time out of the first image. `progress`: show the quantiser's progress
        bars on stderr."""
        if self._request is not None:
            precision, runtime = self._request
            self.selection = autoselect.select_path(
                self.model,
                precision=precision,
                runtime=runtime,
                int8_drop_db=self._int8_drop_db,
                cache_dir=self._cache_dir,
                progress=progress,
            )
            chosen = autoselect.CANDIDATES[self.selection.choice]
            self.runtime, self.precision, self._hint = chosen.runtime, chosen.precision, chosen.hint
            self.dtype = torch.bfloat16 if chosen.precision == "bf16" else torch.float32
            self._runtime_chosen = True
            self._request = None
        if self.runtime == "openvino" and self._openvino is None:
            if self.precision == "int8":
                from esrgan.inference.int8 import cached_int8

                self.int8_report = cached_int8(self.model, cache_dir=self._cache_dir, progress=progress)
                ir = self.int8_report.path
            else:
                from esrgan.inference.export import cached_openvino

                ir = cached_openvino(self.model, cache_dir=self._cache_dir)
            self._openvino = OpenVinoRunner(path=ir, hint=self._hint)
        if self.runtime == "onnxruntime" and self._onnx is None:
            from esrgan.inference.export import ExportError, cached_onnx

            try:
                self._onnx = OnnxRuntimeRunner(path=cached_onnx(self.model, cache_dir=self._cache_dir))
            except (ExportError, ImportError, OSError):
                if not self._runtime_chosen:
                    raise
                # `auto` only promised the fastest runtime that works: eager PyTorch always does.
                self.runtime = "torch"

    def _warm_up(self) -> None:
        """Run an 8-pixel input once before the CPU baseline is read: OpenVINO allocates part of its
        memory at the first inference, not when it loads (67 MiB for a 23-block fp32 network), and that
        memory stays for the process, so it belongs to the baseline, not to the tiles' budget."""
        if self._onnx is None and self._openvino is None:
            return
        side = 8 + (-8) % self.input_multiple
        self._run(torch.zeros(1, self.in_channels, side, side))

    def _run(self, patch: torch.Tensor) -> torch.Tensor:
        if self._onnx is not None:
            return self._onnx(patch)
        if self._openvino is not None:
            return self._openvino(patch)
        x = patch.to(self.device, dtype=input_dtype(self.device, self.dtype), non_blocking=True)
        if self._channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with compute_context(self.device, self.dtype):
            y = self.model(x)
        # clamp before the blend: every tile contributes values in [0, 1], so the blend stays in range.
        return y.float().clamp_(0.0, 1.0).to("cpu").contiguous()

    def upscale(self, x: torch.Tensor, *, on_tile: ProgressFn | None = None) -> torch.Tensor:
        """(N,C,H,W) float in [0,1] on the CPU -> (N,C,sH,sW) float32 in [0,1] on the CPU.

        `on_tile(done, total)` is called after each tile (for progress bars).
        """
        if not isinstance(x, torch.Tensor) or x.dim() != 4:
            raise ValueError(f"expected an (N,C,H,W) tensor, got {getattr(x, 'shape', type(x).__name__)}")
        if x.shape[1] != self.in_channels:
            raise ValueError(f"model takes {self.in_channels} channels, input has {x.shape[1]}")
        if not x.is_floating_point():
            raise ValueError(f"expected a float tensor in [0, 1], got {x.dtype}")
        x = x.detach().to("cpu", torch.float32)
        n, _, h, w = x.shape
        self.prepare()
        plan = self.plan_for(h, w, n)
        while True:
            try:
                out = tiled_apply(
                    self._run,
                    x,
                    scale=self.scale,
                    out_channels=self.out_channels,
                    multiple=self.input_multiple,
                    plan=plan,
                    on_tile=on_tile,
                )
                if self._openvino is not None:
                    # OpenVINO keeps a tile's activations after inference; the cost model counts them
                    # only while tiles run, not while the caller writes the output.
                    self._openvino.release_memory()
                return out
            except torch.cuda.OutOfMemoryError:
                # The auto cost model is an estimate; on a GPU, halve the tile area until it fits.
                th, tw = plan.tile_hw
                if self.tile != "auto" or self.device.type != "cuda" or th * tw <= self.min_tile_side() ** 2:
                    raise
                torch.cuda.empty_cache()
                hp, wp = self._padded(h, w)
                plan = plan_tiles(
                    hp,
                    wp,
                    max_pixels=th * tw // 2,
                    overlap=self.tile_overlap,
                    multiple=self.input_multiple,
                    min_side=self.min_tile_side(),
                )

    def __repr__(self) -> str:
        return (
            f"Upscaler(scale={self.scale}, device={self.device}, precision={self.precision}, "
            f"runtime={self.runtime}, tile={self.tile!r}, tile_overlap={self.tile_overlap}, "
            f"max_memory={self.max_memory})"
        )


# ITU-R BT.601 luma, the weights Pillow uses for RGB -> L, so a grey round trip matches Pillow's.
_LUMA = (0.299, 0.587, 0.114)


def _luma(rgb: torch.Tensor) -> torch.Tensor:
    r, g, b = rgb.unbind(-3)
    return (_LUMA[0] * r + _LUMA[1] * g + _LUMA[2] * b).unsqueeze(-3)


def upscale_image(
    upscaler: Upscaler,
    image: ImageData,
    *,
    on_tile: Callable[[int, int], None] | None = None,
) -> ImageData:
    """Super-resolve an image: colour through the model, alpha by bicubic, grayscale kept grayscale."""
    x = image.pixels.unsqueeze(0)
    in_ch = upscaler.in_channels
    if in_ch == 3:
        # Grayscale runs as replicated RGB (what RGB models were trained on) and is converted back.
        out = upscaler.upscale(x.expand(1, 3, -1, -1), on_tile=on_tile)
        pixels = _luma(out[0]) if image.grayscale else out[0]
    elif in_ch == 1:
        # A single-channel model handles each colour channel as its own grey image.
        out = upscaler.upscale(x.transpose(0, 1), on_tile=on_tile)
        pixels = out.transpose(0, 1)[0]
    else:
        raise ValueError(f"model takes {in_ch} input channels; only 1 or 3 are supported for images")
    alpha = None
    if image.alpha is not None:
        alpha = F.interpolate(
            image.alpha.unsqueeze(0), scale_factor=upscaler.scale, mode="bicubic", align_corners=False
        )[0].clamp_(0.0, 1.0)
    # The upscaler's output is already clamped; writers clamp again before quantising.
    return replace(image, pixels=pixels, alpha=alpha)
