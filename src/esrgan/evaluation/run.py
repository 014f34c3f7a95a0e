"""`run_test`: the whole of `esrgan test` below argument parsing, usable from tests and services.

Options are validated when constructed; everything that can fail before the first image (device, model,
data sets, LPIPS weights) is checked up front, so a typo fails fast; problems raise `EvaluationError` with
a one-line message. Results are returned and written under `out_dir`: results.json, results.csv,
report.html, comparison figures and, on request, every SR image.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypeVar, get_args

import torch

from esrgan.data.benchmarks import BenchmarkError, BenchmarkPair, find_benchmark
from esrgan.data.realphoto import is_real_photo_set
from esrgan.evaluation import report
from esrgan.evaluation.figures import caption, comparison_figure
from esrgan.evaluation.runner import (
    LPIPS_HEADS_FILE,
    LPIPS_VGG_FILE,
    DatasetResult,
    ImageResult,
    LRSource,
    Sample,
    SRFunction,
    bicubic_sr,
    default_lpips_search_dirs,
    evaluate_dataset,
    lpips_weight_paths,
    run_sample,
    score,
)
from esrgan.inference.tiling import default_tile_overlap

BICUBIC = "bicubic"
"""The model name of the built-in bicubic baseline."""
FigureMode = Literal["report", "all", "none"]


class EvaluationError(ValueError):
    """The evaluation cannot run as asked; the message is one line naming the model, file or data set."""


class OptionError(EvaluationError):
    """An invalid option value; `option` is the field's name (the CLI shows `lr_source` as `--lr-source`)."""

    def __init__(self, option: str, reason: str) -> None:
        super().__init__(f"{option}: {reason}")
        self.option = option
        self.reason = reason


_ChoiceT = TypeVar("_ChoiceT", bound=str)


def _choice(option: str, value: str, choices: tuple[_ChoiceT, ...]) -> _ChoiceT:
    normal = value.strip().lower()
    for choice in choices:
        if normal == choice:
            return choice
    listed = ", ".join(repr(c) for c in choices[:-1]) + f" or {choices[-1]!r}"
    raise OptionError(option, f"{normal!r} is not {listed}")


def parse_lr_source(value: str) -> LRSource:
    """`value` (any case, spaces around) as an LR source; OptionError when it is none."""
    return _choice("lr_source", value, get_args(LRSource))


def parse_figures(value: str) -> FigureMode:
    """`value` (any case, spaces around) as a figure mode; OptionError when it is none."""
    return _choice("figures", value, get_args(FigureMode))


@dataclass(kw_only=True)
class EvaluationOptions:
    """What `run_test` evaluates, how, and where the reports go (validated and normalised on entry)."""

    model: str
    """'bicubic', a weights file (any format) or a registered model name."""
    datasets: Sequence[str] = ("set5", "set14")
    """Benchmark names (set5, set14, bsds100) or image folders."""
    data_root: Path | None = None
    """Folder in the benchmarks' layout; None: `esrgan.data.default_data_root()`."""
    out_dir: Path = Path("outputs/test")
    """Where results, reports, figures and images are written."""
    scale: int | None = None
    """Upscaling factor; None: the model's (4 for bicubic). A model of another scale is an error."""
    lr_source: LRSource = "degrade"
    """'degrade': LR = MATLAB bicubic of HR (the standard protocol); 'given': the provided LR files."""
    device: str = "auto"
    """auto, cpu, cuda, cuda:N or mps."""
    precision: str = "fp32"
    """fp32 (the protocol's), fp16, bf16 or auto."""
    runtime: str = "torch"
    """What runs the model: torch (eager), onnxruntime (CPU fp32, the same output, faster) or auto."""
    tile: int | str = "auto"
    """Model input tile size in pixels, 'auto' (from free memory) or 0 for whole images."""
    tile_overlap: int | None = None
    """Tile overlap in input pixels; None: `esrgan.inference.tiling.default_tile_overlap(tile)`."""
    lpips: bool = True
    """Compute LPIPS (skipped with a note when its weights are not found)."""
    lpips_vgg: Path | None = None
    """VGG16 weights for LPIPS; None: the standard file name in `lpips_search`."""
    lpips_heads: Path | None = None
    """LPIPS v0.1 heads; None: the standard file name in `lpips_search`."""
    lpips_search: Sequence[Path] | None = None
    """Folders searched for LPIPS files not given; None: `default_lpips_search_dirs()`."""
    show_best: int = 3
    """The report shows this many best and worst images per data set."""
    figures: FigureMode = "report"
    """Comparison figures for the report's images ('report'), every image ('all') or none."""
    save_images: bool = False
    """Also write every SR image as PNG under images/."""
    progress: bool = True
    """Progress bars (downloads, images)."""

    def __post_init__(self) -> None:
        # Checked again at run time: callers outside a type checker may pass any string.
        self.lr_source = parse_lr_source(self.lr_source)
        self.figures = parse_figures(self.figures)
        self.datasets = tuple(name.strip() for name in self.datasets if name.strip())
        if not self.datasets:
            raise OptionError("datasets", "no dataset given")
        if self.scale is not None and self.scale < 1:
            raise OptionError("scale", f"must be >= 1, got {self.scale}")
        if self.show_best < 0:
            raise OptionError("show_best", f"must be >= 0, got {self.show_best}")


@dataclass(frozen=True, kw_only=True)
class SRModel:
    """A super-resolution function ready to evaluate, and what the reports say about it."""

    spec: str
    label: str
    scale: int
    precision: str
    run: SRFunction
    is_bicubic: bool
    runtime: str = "torch"


@dataclass(kw_only=True)
class EvaluationRun:
    """What `run_test` computed and wrote."""

    results: list[DatasetResult]
    meta: dict[str, object]
    out_dir: Path
    figures: dict[tuple[str, str], Path] = field(default_factory=dict)

    @property
    def title(self) -> str:
        return f"{self.meta['model']} x{self.meta['scale']}, LR {self.meta['lr_source']}"


def dataset_key(name: str) -> str:
    """Label of a data set in results: the benchmark name, or a folder's base name."""
    p = Path(name)
    return name.strip().lower() if len(p.parts) == 1 else safe_name(p.name)


def safe_name(name: str) -> str:
    """`name` reduced to characters that are safe in a file name on every system."""
    keep = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    return keep.strip("._") or "dataset"


def load_sr_model(
    spec: str,
    *,
    scale: int | None,
    device: torch.device,
    precision: str,
    tile: int | str,
    tile_overlap: int | None,
    progress: bool,
    runtime: str = "torch",
) -> SRModel:
    """The bicubic baseline or a loaded generator behind a tiled `Upscaler`."""
    if spec.strip().lower() == BICUBIC:
        scale = scale or 4
        return SRModel(
            spec=spec,
            label="Bicubic",
            scale=scale,
            precision="fp32",
            run=bicubic_sr(scale, device),
            is_bicubic=True,
        )
    from esrgan.inference import Upscaler
    from esrgan.weights import load_generator

    overlap = default_tile_overlap(tile) if tile_overlap is None else tile_overlap
    try:
        net = load_generator(spec, progress=progress)
        upscaler = Upscaler(
            net, device=device, precision=precision, tile=tile, tile_overlap=overlap, runtime=runtime
        )
        upscaler.prepare()  # an ONNX export (once per weights) happens here, not in the first image's time
    except (ValueError, OSError, RuntimeError, ImportError) as exc:
        text = " ".join(str(exc).split())
        raise EvaluationError(text if spec in text else f"{spec}: {text}") from None
    if scale is not None and scale != upscaler.scale:
        raise EvaluationError(f"{spec}: model upscales x{upscaler.scale}, but --scale is {scale}")
    return SRModel(
        spec=spec,
        label=Path(spec).stem if Path(spec).suffix else spec,
        scale=upscaler.scale,
        precision=upscaler.precision,
        run=upscaler.upscale,
        is_bicubic=False,
        runtime=upscaler.runtime,
    )


def load_lpips(
    vgg: Path | None, heads: Path | None, *, search: Sequence[Path], device: torch.device
) -> tuple[torch.nn.Module | None, list[str]]:
    """The LPIPS network on `device`, or None and a note saying why it is skipped."""
    found = lpips_weight_paths(vgg, heads, search=search)
    if found is None:
        return None, [
            f"LPIPS skipped: no {LPIPS_VGG_FILE} + {LPIPS_HEADS_FILE} found (give --lpips-vgg and "
            "--lpips-heads, or set $ESRGAN_WEIGHTS)"
        ]
    from esrgan.metrics import LPIPS

    try:
        return LPIPS.from_files(vgg_weights=found[0], heads=found[1]).to(device), []
    except (ValueError, OSError) as exc:
        raise EvaluationError(str(exc)) from None


def run_test(options: EvaluationOptions, *, on_note: Callable[[str], None] | None = None) -> EvaluationRun:
    """Evaluate `options.model` on every data set per the standard protocol and write the reports.

    `on_note` hears of each degraded-run note (e.g. LPIPS skipped) before the first image runs; the same
    notes are kept in results.json.
    """
    from esrgan.data import default_data_root
    from esrgan.inference import resolve_device

    o = options
    root = o.data_root if o.data_root is not None else default_data_root()
    try:
        device = resolve_device(o.device)
    except ValueError as exc:
        raise OptionError("device", str(exc)) from None
    model = load_sr_model(
        o.model,
        scale=o.scale,
        device=device,
        precision=o.precision,
        tile=o.tile,
        tile_overlap=o.tile_overlap,
        progress=o.progress,
        runtime=o.runtime,
    )
    try:
        sets = [(dataset_key(name), find_benchmark(root, name, model.scale)) for name in o.datasets]
    except BenchmarkError as exc:
        raise EvaluationError(str(exc)) from None
    lpips_net: torch.nn.Module | None = None
    notes: list[str] = []
    if o.lpips:
        search = default_lpips_search_dirs() if o.lpips_search is None else o.lpips_search
        lpips_net, notes = load_lpips(o.lpips_vgg, o.lpips_heads, search=search, device=device)
    for note in notes:
        if on_note is not None:
            on_note(note)

    o.out_dir.mkdir(parents=True, exist_ok=True)
    outputs = _Outputs(o, model, device)
    results: list[DatasetResult] = []
    started = time.perf_counter()
    try:
        for ds, pairs in sets:
            result = evaluate_dataset(
                ds,
                pairs,
                model.run,
                scale=model.scale,
                lr_source=o.lr_source,
                lpips=lpips_net,
                on_sample=outputs.on_sample(ds),
                progress=o.progress,
            )
            results.append(result)
            outputs.report_figures(ds, pairs, result)
    except BenchmarkError as exc:
        raise EvaluationError(str(exc)) from None
    meta = _meta(o, model, root=root, device=device, notes=notes, seconds=time.perf_counter() - started)
    report.write_json(o.out_dir / "results.json", results, meta)
    report.write_csv(o.out_dir / "results.csv", results)
    report.write_html(o.out_dir / "report.html", results, meta, outputs.figures, show=o.show_best)
    return EvaluationRun(results=results, meta=meta, out_dir=o.out_dir, figures=outputs.figures)


def _meta(
    o: EvaluationOptions,
    model: SRModel,
    *,
    root: Path,
    device: torch.device,
    notes: list[str],
    seconds: float,
) -> dict[str, object]:
    scale = model.scale
    given = "= MATLAB bicubic of HR, rounded to uint8" if o.lr_source == "degrade" else "= provided files"
    if any(is_real_photo_set(name) for name in o.datasets):
        given += " (bsds100-real: its degraded real-photo LR files, whatever the LR source)"
    return {
        "model": o.model,
        "scale": scale,
        "lr_source": o.lr_source,
        "data_root": str(root),
        "device": str(device),
        "precision": model.precision,
        "runtime": model.runtime,
        "protocol": (
            f"HR cropped to a multiple of {scale}; LR {given}; SR rounded to uint8; PSNR/SSIM on BT.601 Y "
            f"and RGB, border {scale}, SSIM Gaussian 11/1.5 valid; LPIPS-VGG v0.1 on whole images; "
            "per-image then mean"
        ),
        "notes": notes,
        "seconds": round(seconds, 2),
    }


class _Outputs:
    """Writes the per-image files of a run (SR images, comparison figures) and remembers the figures."""

    def __init__(self, options: EvaluationOptions, model: SRModel, device: torch.device) -> None:
        self.options = options
        self.model = model
        self.bicubic = bicubic_sr(model.scale, device)
        self.figures: dict[tuple[str, str], Path] = {}

    def on_sample(self, ds: str) -> Callable[[Sample, ImageResult], None]:
        def handle(sample: Sample, res: ImageResult) -> None:
            if self.options.save_images:
                name = f"{safe_name(res.name)}.png"
                _save_png(self.options.out_dir / "images" / safe_name(ds) / name, sample.sr)
            if self.options.figures == "all":
                self.figure(ds, sample, res)

        return handle

    def report_figures(self, ds: str, pairs: Sequence[BenchmarkPair], result: DatasetResult) -> None:
        """Figures of the images the report shows (best and worst), re-run since samples are not kept."""
        show = self.options.show_best
        if self.options.figures != "report" or show <= 0:
            return
        ranked = result.ranked("psnr_y")
        chosen = {r.name: r for r in ranked[:show] + ranked[::-1][:show]}
        by_name = {p.name: p for p in pairs}
        for name, res in chosen.items():
            sample = run_sample(
                by_name[name], self.model.run, scale=self.model.scale, lr_source=self.options.lr_source
            )
            self.figure(ds, sample, res)

    def figure(self, ds: str, sample: Sample, res: ImageResult) -> None:
        scale = self.model.scale
        bic_caption = None
        if not self.model.is_bicubic:
            bic = score(self.bicubic(sample.lr), sample.hr, crop_border=scale)
            bic_caption = caption(psnr_y=bic["psnr_y"], ssim_y=bic["ssim_y"], lpips=bic["lpips"])
        path = self.options.out_dir / "figures" / safe_name(ds) / f"{safe_name(res.name)}.png"
        comparison_figure(
            path,
            title=f"{ds} / {res.name}  (x{scale}, LR: {self.options.lr_source})",
            lr=sample.lr,
            sr=sample.sr,
            hr=sample.hr,
            scale=scale,
            model_label=self.model.label,
            model_caption=caption(psnr_y=res.psnr_y, ssim_y=res.ssim_y, lpips=res.lpips),
            bicubic_caption=bic_caption,
        )
        self.figures[(ds, res.name)] = path


def _save_png(path: Path, img: torch.Tensor) -> None:
    from esrgan.io import ImageData, write_image

    path.parent.mkdir(parents=True, exist_ok=True)
    write_image(path, ImageData(pixels=img[0]))
