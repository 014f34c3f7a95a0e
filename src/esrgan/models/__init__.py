"""Networks: the RRDBNet and SRVGGNetCompact generators, the VGG-style discriminator and VGG features."""

from esrgan.models.arch import ArchConfig, Generator
from esrgan.models.architectures import ARCHITECTURES, config_from_dict
from esrgan.models.compact import CompactConfig, SRVGGNetCompact
from esrgan.models.discriminator import VGGStyleDiscriminator
from esrgan.models.rrdbnet import RRDB, SUPPORTED_SCALES, ResidualDenseBlock, RRDBNet, RRDBNetConfig
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
    "VGGFeatureExtractor",
    "VGGStyleDiscriminator",
    "config_from_dict",
    "vgg_layer_names",
]
