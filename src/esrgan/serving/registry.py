"""The served models: each loaded once at start-up and shared by every request and worker."""

from __future__ import annotations

import copy
import threading
from collections.abc import Mapping
from dataclasses import dataclass

from esrgan.inference import Upscaler, resolve_device
from esrgan.inference.tiling import default_tile_overlap
from esrgan.models import Generator
from esrgan.serving.settings import BICUBIC, ServeSettings, model_name
from esrgan.weights import load_generator


@dataclass(frozen=True, kw_only=True)
class ModelInfo:
    """What /v1/models says about one model."""

    name: str
    scale: int
    default: bool
    description: str

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "scale": self.scale,
            "default": self.default,
            "description": self.description,
        }


def _describe(model: Generator, spec: str) -> str:
    return f"{model.config.summary()} ({spec})"


class ModelRegistry:
    """Generators by name, plus one `Upscaler` per (model, precision) built on first use.

    Each precision gets its own copy of the weights because preparing a model for a precision changes
    it in place (dtype, memory layout); the default precision is prepared at construction so a bad
    device or precision shows at start-up rather than on the first request.
    """

    def __init__(
        self,
        *,
        generators: Mapping[str, Generator],
        specs: Mapping[str, str] | None = None,
        default: str,
        device: str = "auto",
        precision: str = "auto",
        tile: int | str = "auto",
        runtime: str = "auto",
    ) -> None:
        if default not in generators:
            raise ValueError(f"default model {default!r} is not among {sorted(generators)}")
        if BICUBIC in generators:
            raise ValueError(f"{BICUBIC!r} is built in and cannot name a generator")
        self._generators = dict(generators)
        self._specs = dict(specs or {})
        self.default = default
        self.device = resolve_device(device)
        self.precision = precision
        self.tile = tile
        self.runtime = runtime
        self._overlap = default_tile_overlap(tile)
        self._lock = threading.Lock()
        self._upscalers: dict[tuple[str, str], Upscaler] = {}
        for name in self._generators:
            # prepare() exports for ONNX Runtime now (once per weights, then cached), not in a request.
            self.upscaler(name, precision).prepare()

    @classmethod
    def load(cls, settings: ServeSettings) -> ModelRegistry:
        """Load every model in `settings` (WeightsError/OSError for a bad one, naming it)."""
        generators = {
            model_name(spec): load_generator(spec, cache_dir=settings.cache_dir, progress=False)
            for spec in settings.models
        }
        return cls(
            generators=generators,
            specs={model_name(spec): spec for spec in settings.models},
            default=settings.default_model,
            device=settings.device,
            precision=settings.precision,
            tile=settings.tile,
            runtime=settings.runtime,
        )

    @property
    def names(self) -> tuple[str, ...]:
        """Served names, the default first; `bicubic` is always available besides them."""
        return (self.default, *(n for n in self._generators if n != self.default))

    def __contains__(self, name: object) -> bool:
        return name == BICUBIC or name in self._generators

    def scale(self, name: str) -> int:
        return 4 if name == BICUBIC else self._generators[name].scale

    def describe(self) -> list[ModelInfo]:
        infos = [
            ModelInfo(
                name=name,
                scale=self._generators[name].scale,
                default=name == self.default,
                description=_describe(self._generators[name], self._specs.get(name, name)),
            )
            for name in self.names
        ]
        infos.append(
            ModelInfo(
                name=BICUBIC, scale=4, default=False, description="Bicubic resizing (baseline, any scale)"
            )
        )
        return infos

    def upscaler(self, name: str, precision: str) -> Upscaler:
        """The shared `Upscaler` for a model at a precision (DeviceError when it cannot run here).

        Prepared before it is shared, so `auto` has made its measured choice (`esrgan.inference.
        autoselect`, cached per machine); two precisions that come to the same path share one copy."""
        key = (name, precision)
        with self._lock:
            up = self._upscalers.get(key)
            if up is None:
                model = copy.deepcopy(self._generators[name])
                up = Upscaler(
                    model, device=self.device, precision=precision, tile=self.tile,
                    tile_overlap=self._overlap, runtime=self.runtime, int8_drop_db=_int8_drop(name),
                )  # fmt: skip
                up.prepare()
                up = next((u for (n, _), u in self._upscalers.items() if n == name and u.path == up.path), up)
            self._upscalers[key] = up
            return up


def _int8_drop(name: str) -> float | None:
    """The measured int8 PSNR drop of a served model (lets `auto` pick int8 as `esrgan upscale` does)."""
    from esrgan.inference.int8 import known_drop

    drop = known_drop(name)
    return None if drop is None else drop.worst_db
