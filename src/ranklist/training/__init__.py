"""Configuration, a run built from parts, its step and state, and the training loop."""

from ranklist.training.config import ConfigError, RunConfig, load_config
from ranklist.training.run import Run, build_run
from ranklist.training.state import TrainState, train_step
from ranklist.training.trainer import Trainer

__all__ = ["ConfigError", "Run", "RunConfig", "TrainState", "Trainer", "build_run", "load_config", "train_step"]
