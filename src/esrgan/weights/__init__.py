"""Weights I/O: read every ESRGAN-family format, canonicalise to BasicSR keys, save, and a model zoo."""

from esrgan.weights.canonical import canonicalize, infer_config, state_dict_sha256
from esrgan.weights.errors import WeightsError
from esrgan.weights.generator import (
    build_generator,
    interpolate_generators,
    interpolate_state_dicts,
    interpolate_weights,
    load_generator,
    resolve_weights,
)
from esrgan.weights.io import LoadedWeights, load_state_dict_file, load_tensor_file, load_weights
from esrgan.weights.save import save_generator, save_pth, save_state_dict
from esrgan.weights.zoo import DEFAULT_MODEL, REGISTRY, ZooEntry, load_zoo_weights

__all__ = [
    "DEFAULT_MODEL",
    "REGISTRY",
    "LoadedWeights",
    "WeightsError",
    "ZooEntry",
    "build_generator",
    "canonicalize",
    "infer_config",
    "interpolate_generators",
    "interpolate_state_dicts",
    "interpolate_weights",
    "load_generator",
    "load_state_dict_file",
    "load_tensor_file",
    "load_weights",
    "load_zoo_weights",
    "resolve_weights",
    "save_generator",
    "save_pth",
    "save_state_dict",
    "state_dict_sha256",
]
