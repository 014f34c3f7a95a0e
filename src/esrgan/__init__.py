"""ESRGAN single-image super-resolution toolkit.

Importing this package does no I/O: weights, data roots and devices are always passed in. Nor does it
import torch: the models load at first use, so a command that needs no torch (the warm start path of
`esrgan upscale`) starts in a fraction of the time.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from esrgan.models import RRDBNet, VGGFeatureExtractor, VGGStyleDiscriminator

__all__ = ["RRDBNet", "VGGFeatureExtractor", "VGGStyleDiscriminator", "__version__"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name in ("RRDBNet", "VGGFeatureExtractor", "VGGStyleDiscriminator"):
        from esrgan import models

        return getattr(models, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
