"""Release weights: self-describing safetensors in ``RUN/weights`` and ESRGAN's network interpolation."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from safetensors import SafetensorError

from esrgan.models import Generator
from esrgan.training.config import InterpolationConfig
from esrgan.training.errors import TrainingError, io_reason
from esrgan.weights import interpolate_state_dicts, load_generator, save_generator

if TYPE_CHECKING:
    from esrgan.training.stage import Stage


@dataclass(kw_only=True)
class ReleaseWriter:
    """Writes ``RUN/weights/{name}.safetensors`` (rank 0 only) and remembers every file written."""

    weights_dir: Path
    enabled: bool
    """False on every process but rank 0."""
    written: dict[str, Path] = field(default_factory=dict)

    def write(
        self, name: str, model: Generator, *, stage: str, iteration: int, extra: dict[str, str] | None = None
    ) -> None:
        if not self.enabled:
            return
        path = self.weights_dir / f"{name}.safetensors"
        meta = {"source": "esrgan train", "stage": stage, "iteration": str(iteration), **(extra or {})}
        try:
            save_generator(model, path, metadata=meta)
        except (OSError, RuntimeError, SafetensorError) as exc:  # a full disk, a folder made read-only
            raise TrainingError(f"{path}: cannot write release weights ({io_reason(exc)})") from exc
        self.written[name] = path


def interpolate(psnr_weights: str, gan: Generator, alpha: float) -> Generator:
    """ESRGAN network interpolation ``(1 - alpha) * G_psnr + alpha * G_gan`` as a new generator.

    ``psnr_weights`` (a file or zoo name) is loaded on the CPU; the result lives there too, whatever
    device ``gan`` is on.
    """
    try:
        psnr_model = load_generator(psnr_weights, progress=False)
        sd = interpolate_state_dicts(psnr_model.state_dict(), gan.state_dict(), alpha)
    except (OSError, ValueError) as exc:
        raise TrainingError(f"network interpolation: {exc}") from exc
    model = gan.config.build()
    model.load_state_dict(sd)
    return model


def release_stage(
    writer: ReleaseWriter,
    s: Stage,
    *,
    ema_decay: float,
    interpolation: InterpolationConfig,
    say: Callable[[str], None],
) -> None:
    """A finished stage's release weights: G, its EMA and, after the GAN stage, the interpolation."""
    prefix = "pretrain_g" if s.name == "pretrain" else "gan_g"
    writer.write(prefix, s.g, stage=s.name, iteration=s.iteration)
    if s.ema is not None:
        extra = {"ema_decay": str(ema_decay)}
        writer.write(f"{prefix}_ema", s.ema.model, stage=s.name, iteration=s.iteration, extra=extra)
    if s.name != "gan" or not interpolation.enabled or not writer.enabled:
        return
    if s.psnr_weights is None:
        say("note: no PSNR-oriented generator recorded; network interpolation skipped")
        return
    alpha = interpolation.alpha
    gan = s.ema.model if (interpolation.use_ema and s.ema is not None) else s.g
    name = f"interp_alpha{alpha:g}"
    extra = {"interpolation_alpha": f"{alpha:g}", "psnr_weights": str(s.psnr_weights)}
    model = interpolate(s.psnr_weights, gan, alpha)
    writer.write(name, model, stage=s.name, iteration=s.iteration, extra=extra)
    say(f"network interpolation (alpha {alpha:g}) -> {writer.written[name]}")
