"""Configuration and the training loop."""

from ranklist.training.config import ConfigError, RunConfig, load_config
from ranklist.training.trainer import Trainer

__all__ = ["ConfigError", "RunConfig", "Trainer", "load_config"]
