"""ESRGAN training: typed config, the two-stage loop, checkpoints, logging and distributed helpers."""

from esrgan.training.config import Config, ConfigError, load_config, save_config
from esrgan.training.loop import TrainingError, TrainResult, train

__all__ = ["Config", "ConfigError", "TrainResult", "TrainingError", "load_config", "save_config", "train"]
