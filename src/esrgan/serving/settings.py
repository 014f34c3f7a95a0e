"""`ServeSettings`: everything that shapes the service, validated on construction (no I/O)."""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass, field
from pathlib import Path

from esrgan.inference.precision import INFERENCE_PRECISIONS
from esrgan.inference.runtime import RUNTIME_NAMES
from esrgan.weights.zoo import DEFAULT_MODEL, REGISTRY

BICUBIC = "bicubic"
"""Built-in baseline model: plain bicubic resizing (the 'before' side of the page's comparison)."""

OUTPUT_FORMATS = {"png": "PNG", "jpg": "JPEG", "jpeg": "JPEG", "webp": "WEBP"}
"""Output format names accepted by the API -> Pillow format names."""


def model_name(spec: str) -> str:
    """Name a model is served under: a registered name as is, a weights file by its stem."""
    return spec if spec in REGISTRY else Path(spec).stem


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # any other host name may resolve to a public address


@dataclass(frozen=True, kw_only=True)
class ServeSettings:
    """Configuration of `esrgan serve` and `create_app`."""

    host: str = "127.0.0.1"
    """Address to bind; anything but a loopback address requires `api_key`."""
    port: int = 8000
    """TCP port (0 picks a free one)."""
    models: tuple[str, ...] = (DEFAULT_MODEL,)
    """Weights files or registered names, loaded once at start-up; the first is the default."""
    workers: int = 1
    """Inference threads: how many images are upscaled at the same time."""
    queue_size: int = 4
    """Requests that may wait for a worker; one more is answered 503 with Retry-After."""
    request_timeout_s: float = 300.0
    """Per-request limit (upload, queue and inference); past it the answer is 504."""
    max_upload_bytes: int = 20 * 2**20
    """Largest accepted upload (413 above)."""
    max_input_pixels: int = 4_000_000
    """Largest accepted input in pixels, checked from the file header before decoding (413 above)."""
    max_output_pixels: int = 64_000_000
    """Largest output in pixels (input pixels x outscale^2; 413 above)."""
    max_outscale: float = 8.0
    """Largest `outscale` a request may ask for."""
    api_key: str | None = field(default=None, repr=False)
    """When set, /v1/* and /metrics need it as `X-API-Key` or `Authorization: Bearer`."""
    device: str = "auto"
    """Inference device: auto, cpu, cuda[:N] or mps."""
    precision: str = "auto"
    """Default precision (auto, fp32, bf16, fp16, int8); a request may ask for another."""
    tile: int | str = "auto"
    """Tile side in input pixels, 'auto' (from free memory) or 0 (whole image)."""
    runtime: str = "auto"
    """What runs the model: auto (ONNX Runtime for fp32 on the CPU, like `esrgan upscale`), torch or
    onnxruntime."""
    cache_dir: Path | None = None
    """Folder for converted zoo models (default: the user cache, `$ESRGAN_CACHE`)."""

    def __post_init__(self) -> None:
        if not isinstance(self.models, tuple):
            object.__setattr__(self, "models", tuple(self.models))
        if not self.host.strip():
            raise ValueError("host must not be empty")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be in 0..65535, got {self.port}")
        if not self.models:
            raise ValueError("at least one model is needed")
        names = [model_name(spec) for spec in self.models]
        if BICUBIC in names:
            raise ValueError(f"{BICUBIC!r} is built in; a weights file cannot be served under that name")
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"two models would be served under the same name: {', '.join(duplicates)}")
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")
        if self.queue_size < 0:
            raise ValueError(f"queue_size must be >= 0, got {self.queue_size}")
        for name in ("request_timeout_s", "max_outscale"):
            value = getattr(self, name)
            if not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be a positive number, got {value}")
        for name in ("max_upload_bytes", "max_input_pixels", "max_output_pixels"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.precision not in INFERENCE_PRECISIONS:
            known = ", ".join(INFERENCE_PRECISIONS)
            raise ValueError(f"precision must be one of {known}, got {self.precision!r}")
        if self.runtime not in RUNTIME_NAMES:
            raise ValueError(f"runtime must be one of {', '.join(RUNTIME_NAMES)}, got {self.runtime!r}")
        if isinstance(self.tile, str) and self.tile != "auto":
            raise ValueError(f"tile must be 'auto' or an integer >= 0, got {self.tile!r}")
        if isinstance(self.tile, int) and self.tile < 0:
            raise ValueError(f"tile must be 'auto' or an integer >= 0, got {self.tile!r}")
        if self.api_key is not None and not self.api_key.strip():
            raise ValueError("api_key must not be empty (leave it unset for no key)")
        if self.api_key is None and not is_loopback(self.host):
            raise ValueError(
                f"host {self.host} is reachable from other machines: an API key is required "
                "(esrgan serve --api-key-env VAR)"
            )

    @property
    def model_names(self) -> tuple[str, ...]:
        return tuple(model_name(spec) for spec in self.models)

    @property
    def default_model(self) -> str:
        return self.model_names[0]
