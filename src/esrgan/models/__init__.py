"""Networks: the RRDBNet generator, the VGG-style and U-Net discriminators and VGG feature extractors."""

from esrgan.models.discriminator import VGGStyleDiscriminator
from esrgan.models.rrdbnet import RRDB, SUPPORTED_SCALES, ResidualDenseBlock, RRDBNet, RRDBNetConfig
from esrgan.models.unet_discriminator import SpectralNormConv2d, UNetDiscriminatorSN
from esrgan.models.vgg import VGGFeatureExtractor, vgg_layer_names

__all__ = [
    "RRDB",
    "SUPPORTED_SCALES",
    "RRDBNet",
    "RRDBNetConfig",
    "ResidualDenseBlock",
    "SpectralNormConv2d",
    "UNetDiscriminatorSN",
    "VGGFeatureExtractor",
    "VGGStyleDiscriminator",
    "vgg_layer_names",
]
