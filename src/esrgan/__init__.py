"""ESRGAN single-image super-resolution toolkit.

Importing this package does no I/O: weights, data roots and devices are always passed in.
"""

from esrgan.models import RRDBNet, VGGFeatureExtractor, VGGStyleDiscriminator

__all__ = ["RRDBNet", "VGGFeatureExtractor", "VGGStyleDiscriminator", "__version__"]
__version__ = "0.1.0"
