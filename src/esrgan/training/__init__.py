"""ESRGAN training: typed config, the two-stage loop, checkpoints, logging and distributed helpers."""

from esrgan.training.config import Config, ConfigError
from esrgan.training.config_io import load_config, load_run_config, save_config
from esrgan.training.errors import TrainingError
from esrgan.training.loop import TrainResult, train

__all__ = [
    "Config",
    "ConfigError",
    "TrainResult",
    "TrainingError",
    "load_config",
    "load_run_config",
    "save_config",
    "train",
]
