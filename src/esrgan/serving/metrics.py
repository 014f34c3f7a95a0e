"""Prometheus text-format metrics kept in memory (no client library needed)."""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable

SECONDS_PER_MP_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 60.0, 120.0)


def _labels(**labels: str) -> str:
    def esc(v: str) -> str:
        return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")

    return "{" + ",".join(f'{k}="{esc(v)}"' for k, v in labels.items()) + "}"


class Metrics:
    """Request counts, errors and inference speed; gauges are read from the pool when rendered."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, str, str], int] = defaultdict(int)
        self._errors: dict[tuple[str, str], int] = defaultdict(int)
        self._spmp_buckets: dict[str, list[int]] = {}
        self._spmp_sum: dict[str, float] = defaultdict(float)
        self._spmp_count: dict[str, int] = defaultdict(int)
        self._megapixels: dict[str, float] = defaultdict(float)

    def observe_request(self, *, method: str, route: str, status: int) -> None:
        with self._lock:
            self._requests[(method, route, str(status))] += 1
            if status >= 400:
                self._errors[(route, str(status))] += 1

    def observe_inference(self, *, model: str, seconds: float, megapixels: float) -> None:
        """One finished upscale: `seconds` of inference for `megapixels` of input."""
        per_mp = seconds / max(megapixels, 1e-6)
        with self._lock:
            buckets = self._spmp_buckets.setdefault(model, [0] * len(SECONDS_PER_MP_BUCKETS))
            for i, edge in enumerate(SECONDS_PER_MP_BUCKETS):
                if per_mp <= edge:
                    buckets[i] += 1
            self._spmp_sum[model] += per_mp
            self._spmp_count[model] += 1
            self._megapixels[model] += megapixels

    def mean_seconds_per_megapixel(self, model: str) -> float | None:
        """Average so far for `model`, or None before its first image (for progress estimates)."""
        with self._lock:
            count = self._spmp_count.get(model, 0)
            return self._spmp_sum[model] / count if count else None

    def render(self, gauges: dict[str, tuple[str, Callable[[], float]]]) -> str:
        """The text exposition format; `gauges` maps name -> (help, read function)."""
        out: list[str] = []

        def head(name: str, kind: str, help_text: str) -> None:
            out.append(f"# HELP {name} {help_text}")
            out.append(f"# TYPE {name} {kind}")

        with self._lock:
            head(
                "esrgan_http_requests_total",
                "counter",
                "HTTP requests answered, by method, route and status.",
            )
            for (method, route, status), n in sorted(self._requests.items()):
                out.append(
                    f"esrgan_http_requests_total{_labels(method=method, route=route, status=status)} {n}"
                )
            head(
                "esrgan_http_errors_total", "counter", "HTTP answers with status >= 400, by route and status."
            )
            for (route, status), n in sorted(self._errors.items()):
                out.append(f"esrgan_http_errors_total{_labels(route=route, status=status)} {n}")
            name = "esrgan_upscale_seconds_per_megapixel"
            head(name, "histogram", "Inference seconds per input megapixel, by model.")
            for model, buckets in sorted(self._spmp_buckets.items()):
                for edge, n in zip(SECONDS_PER_MP_BUCKETS, buckets, strict=True):
                    out.append(f"{name}_bucket{_labels(model=model, le=f'{edge:g}')} {n}")
                count = self._spmp_count[model]
                out.append(f"{name}_bucket{_labels(model=model, le='+Inf')} {count}")
                out.append(f"{name}_sum{_labels(model=model)} {self._spmp_sum[model]:.6g}")
                out.append(f"{name}_count{_labels(model=model)} {count}")
            head("esrgan_upscale_input_megapixels_total", "counter", "Input megapixels upscaled, by model.")
            for model, mp in sorted(self._megapixels.items()):
                out.append(f"esrgan_upscale_input_megapixels_total{_labels(model=model)} {mp:.6g}")
        for gauge, (help_text, read) in gauges.items():
            head(gauge, "gauge", help_text)
            out.append(f"{gauge} {read():g}")
        return "\n".join(out) + "\n"
