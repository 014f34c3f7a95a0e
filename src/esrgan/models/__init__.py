"""Networks: the RRDBNet generator, the VGG-style discriminator and VGG feature extractors."""

from esrgan.models.discriminator import VGGStyleDiscriminator
from esrgan.models.rrdbnet import RRDB, SUPPORTED_SCALES, ResidualDenseBlock, RRDBNet, RRDBNetConfig
from esrgan.models.vgg import VGGFeatureExtractor, vgg_layer_names

__all__ = [
    "RRDB",
    "SUPPORTED_SCALES",
    "RRDBNet",
    "RRDBNetConfig",
    "ResidualDenseBlock",
    "VGGFeatureExtractor",
    "VGGStyleDiscriminator",
    "vgg_layer_names",
]
