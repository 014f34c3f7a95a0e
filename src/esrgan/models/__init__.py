"""Networks: the RRDBNet and SRVGGNetCompact generators, the VGG-style and U-Net discriminators and VGG
feature extractors."""

from esrgan.models.arch import ArchConfig, Generator
from esrgan.models.architectures import ARCHITECTURES, config_from_dict
from esrgan.models.compact import CompactConfig, SRVGGNetCompact
from esrgan.models.discriminator import VGGStyleDiscriminator
from esrgan.models.rrdbnet import RRDB, SUPPORTED_SCALES, ResidualDenseBlock, RRDBNet, RRDBNetConfig
from esrgan.models.unet_discriminator import SpectralNormConv2d, UNetDiscriminatorSN
from esrgan.models.vgg import VGGFeatureExtractor, vgg_layer_names

__all__ = [
    "ARCHITECTURES",
    "RRDB",
    "SUPPORTED_SCALES",
    "ArchConfig",
    "CompactConfig",
    "Generator",
    "RRDBNet",
    "RRDBNetConfig",
    "ResidualDenseBlock",
    "SRVGGNetCompact",
    "SpectralNormConv2d",
    "UNetDiscriminatorSN",
    "VGGFeatureExtractor",
    "VGGStyleDiscriminator",
    "config_from_dict",
    "vgg_layer_names",
]
