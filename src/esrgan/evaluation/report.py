"""Writing evaluation results: results.json, results.csv, a rich console table and report.html."""

from __future__ import annotations

import csv
import html
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from esrgan.evaluation.runner import METRIC_KEYS, DatasetResult, finite_or_none
from esrgan.utils import atomic_write

if TYPE_CHECKING:
    from rich.table import Table

_LABELS = {
    "psnr_y": "PSNR-Y",
    "ssim_y": "SSIM-Y",
    "psnr_rgb": "PSNR-RGB",
    "ssim_rgb": "SSIM-RGB",
    "lpips": "LPIPS",
}


def fmt(key: str, value: float | None) -> str:
    if value is None:
        return "-"
    if key.startswith("psnr"):
        return "inf" if value == float("inf") else f"{value:.4f}"
    return f"{value:.4f}"


def _clean(obj: object) -> object:
    if isinstance(obj, float):
        return finite_or_none(obj)
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_clean(v) for v in obj]
    return obj


def write_json(path: Path, results: Sequence[DatasetResult], meta: Mapping[str, object]) -> None:
    """`{"meta": ..., "datasets": {name: {"mean": {...}, "num_images": n, "images": [...]}}}`."""
    doc = {"meta": meta, "datasets": {r.name: r.to_dict() for r in results}}
    with atomic_write(path) as tmp:
        Path(tmp).write_text(json.dumps(_clean(doc), indent=2, allow_nan=False) + "\n", encoding="utf-8")


def write_csv(path: Path, results: Sequence[DatasetResult]) -> None:
    """One row per image and one `MEAN` row per dataset."""
    with atomic_write(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["dataset", "image", *METRIC_KEYS])
        for r in results:
            for img in r.images:
                writer.writerow([r.name, img.name, *(_csv(getattr(img, k)) for k in METRIC_KEYS)])
            mean = r.mean()
            writer.writerow([r.name, "MEAN", *(_csv(mean[k]) for k in METRIC_KEYS)])


def _csv(v: float | None) -> str:
    return "" if v is None else repr(v)


def rich_tables(results: Sequence[DatasetResult], *, title: str, per_image: bool = True) -> list[Table]:
    """A per-image table per dataset (mean in bold) and a summary table; returns rich renderables."""
    from rich.table import Table

    out: list[Table] = []
    show_lpips = any(img.lpips is not None for r in results for img in r.images)
    keys = [k for k in METRIC_KEYS if k != "lpips" or show_lpips]
    if per_image:
        for r in results:
            table = Table(title=f"{r.name} ({title})", title_justify="left")
            table.add_column("image")
            for k in keys:
                table.add_column(_LABELS[k], justify="right")
            for img in r.images:
                table.add_row(img.name, *(fmt(k, getattr(img, k)) for k in keys))
            mean = r.mean()
            table.add_row("mean", *(fmt(k, mean[k]) for k in keys), style="bold")
            out.append(table)
    summary = Table(title=f"summary: {title}", title_justify="left")
    summary.add_column("dataset")
    summary.add_column("images", justify="right")
    for k in keys:
        summary.add_column(_LABELS[k], justify="right")
    for r in results:
        mean = r.mean()
        summary.add_row(r.name, str(len(r.images)), *(fmt(k, mean[k]) for k in keys))
    out.append(summary)
    return out


_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
figure { margin: 0.5em 0 1.5em; }
figure img { max-width: 100%; border: 1px solid #ddd; }
.note { color: #666; }
"""


def write_html(
    path: Path,
    results: Sequence[DatasetResult],
    meta: Mapping[str, object],
    figures: Mapping[tuple[str, str], Path],
    *,
    show: int,
) -> None:
    """report.html: summary table, then per dataset the `show` best and worst images (by PSNR-Y) with
    their comparison figures (paths relative to the report), then all per-image scores."""
    e = html.escape
    keys = list(METRIC_KEYS)
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>esrgan test: {e(str(meta.get('model')))}</title><style>{_CSS}</style></head><body>",
        f"<h1>esrgan test: {e(str(meta.get('model')))} x{e(str(meta.get('scale')))}</h1>",
        "<p class='note'>" + e(str(meta.get("protocol", ""))) + "</p>",
        "<table><tr><th>dataset</th><th>images</th>"
        + "".join(f"<th>{_LABELS[k]}</th>" for k in keys)
        + "</tr>",
    ]
    for r in results:
        mean = r.mean()
        parts.append(
            f"<tr><td>{e(r.name)}</td><td>{len(r.images)}</td>"
            + "".join(f"<td>{fmt(k, mean[k])}</td>" for k in keys)
            + "</tr>"
        )
    parts.append("</table>")
    base = path.parent
    for r in results:
        parts.append(f"<h2>{e(r.name)}</h2>")
        ranked = r.ranked("psnr_y")
        groups = [("best", ranked[:show]), ("worst", list(reversed(ranked))[:show])] if show > 0 else []
        for label, imgs in groups:
            parts.append(f"<h3>{len(imgs)} {label} by PSNR-Y</h3>")
            for img in imgs:
                cap = ", ".join(f"{_LABELS[k]} {fmt(k, getattr(img, k))}" for k in keys)
                fig = figures.get((r.name, img.name))
                parts.append("<figure>")
                if fig is not None:
                    rel = fig.relative_to(base).as_posix() if fig.is_relative_to(base) else fig.as_posix()
                    parts.append(f"<img src='{e(rel)}' alt='{e(img.name)}'>")
                parts.append(f"<figcaption><b>{e(img.name)}</b>: {e(cap)}</figcaption></figure>")
        parts.append(
            "<details><summary>all images</summary><table><tr><th>image</th><th>size</th>"
            + "".join(f"<th>{_LABELS[k]}</th>" for k in keys)
            + "</tr>"
        )
        for img in r.images:
            parts.append(
                f"<tr><td>{e(img.name)}</td><td>{img.width}x{img.height}</td>"
                + "".join(f"<td>{fmt(k, getattr(img, k))}</td>" for k in keys)
                + "</tr>"
            )
        parts.append("</table></details>")
    parts.append("</body></html>\n")
    with atomic_write(path) as tmp:
        Path(tmp).write_text("\n".join(parts), encoding="utf-8")
