"""Typed run configuration: dataclasses, loaded from YAML with dotted command-line overrides.

    config = load_config("configs/sop.yaml", ["loss.neg_temperature=12"])

Unknown keys are errors that list the valid ones, and so is a key given twice in a file; values are
range-checked with errors naming them.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, ValidationError

from ranklist.evaluation.metric_names import DEFAULT_KS
from ranklist.training.optimizers import OPTIMIZERS

PRECISIONS = ("fp32", "bf16", "auto")  # auto: bf16 where it pays on the device (training/precision.py)
# Keys renamed since 0.1, named in the unknown-key error.
RENAMED = {
    "optim.amp": "precision.train (true: bf16)",
    "optim.frozen_precision": "precision.frozen",
    "eval.precision": "precision.eval",
}


@dataclass
class DataConfig:
    """The recipe's data section: dataset, image preparation and batch composition."""

    name: str = "emoji"  # a name of ranklist.data.READERS
    root: Optional[str] = None  # the dataset's folder (emoji: the cache folder; default ~/.cache/ranklist)
    image_size: int = 64
    resize: Optional[int] = None  # resize before cropping; default image_size * 256 / 227
    recipe: str = "paper"  # paper | rrc | resize
    hflip: bool = True  # random horizontal flips in training (the paper's); off where mirrors are other classes
    classes_per_batch: int = 60  # C
    samples_per_class: int = 3  # K
    val_fraction: float = 0.2  # training classes held out (class-disjoint) for model selection
    allow_partial: bool = False
    num_workers: int = 0
    # `ranklist tune`: K class-disjoint folds of the training classes; fold `fold` validates, the rest train,
    # no test phase (0: off)
    folds: int = 0
    fold: int = 0


@dataclass
class ModelConfig:
    """The recipe's model section: backbone, embedding levels and size, freezing."""

    backbone: str = "efficientnet_lite0"
    embedding_dim: int = 512  # per level
    levels: list[str] = field(default_factory=lambda: ["L", "M", "H"])
    pretrained: bool = True
    weights: Optional[str] = None  # a weights file (BN-Inception's converted ImageNet state dict)
    freeze_bn: bool = False
    freeze_blocks: int = 0  # stem + this many backbone blocks fixed (weights, BN statistics): a cheaper step
    gradient_checkpointing: bool = False  # recompute block activations in the backward pass: less memory, more compute


@dataclass
class LossConfig:
    """The recipe's loss section: the loss, its preset and parameters, cross-batch memory."""

    name: str = "rll"  # a name of ranklist.losses.LOSSES
    preset: Optional[str] = None  # a named setting of the loss (RLL: cvpr2019 | tpami2021_code | default)
    params: dict[str, Any] = field(
        default_factory=dict
    )  # override the defaults / preset (docs/loss.md, docs/baselines.md)
    memory_size: int = 0  # RLL only: cross-batch memory of this many recent embeddings (0: off)
    memory_warmup: int = 0  # iterations before the memory is used


@dataclass
class OptimConfig:
    """The recipe's optimiser section: optimiser, learning rates and schedule."""

    name: str = "sgd"  # sgd (the paper's) | adamw
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-5
    new_layer_lr_mult: float = 10.0
    layer_decay: float = 1.0  # backbone block d of N at lr * layer_decay ** (N - d) (ViT fine-tuning; 1: off)
    milestones: list[int] = field(default_factory=list)  # iterations where lr *= gamma
    gamma: float = 0.1
    warmup_iterations: int = 0
    grad_clip: Optional[float] = None


@dataclass
class TrainConfig:
    """The recipe's train section: iterations, validation, logging, checkpoints, seed and device."""

    iterations: int = 10000
    val_every: int = 1000
    log_every: int = 50
    checkpoint_every: int = 1000
    seed: int = 0
    device: str = "cpu"
    threads: Optional[int] = None  # torch threads on CPU; default: torch's own choice
    channels_last: bool = True  # NHWC memory format: oneDNN's native layout, faster convolutions on CPU
    # event files in RUN/tensorboard/ (reporting/tensorboard.py; the `tensorboard` extra); on in the shipped recipes
    tensorboard: bool = False
    # deterministic algorithms only (cuDNN, cuBLAS workspace): CUDA runs repeat bit for bit (training/determinism.py)
    deterministic: bool = False


@dataclass
class EvalConfig:
    """The recipe's eval section: the metrics and how the test split is scored."""

    ks: list[int] = field(default_factory=lambda: list(DEFAULT_KS))
    batch_size: int = 128
    nmi: bool = True
    baseline: bool = (
        True  # score the pretrained backbone before training too (costs one more forward and scoring of the test split)
    )
    grid_queries: int = 8  # rows of the retrieval grid


@dataclass
class PrecisionConfig:
    """Which forwards run in bf16; each is fp32 | bf16 | auto (bf16 where the device computes it natively)."""

    train: str = "fp32"  # the training forward under autocast (auto: on CUDA cards that compute bf16 only)
    frozen: str = "fp32"  # the frozen blocks' training forward (auto: where there are frozen blocks)
    eval: str = "fp32"  # the embedding forward of evaluation; checkpoints record it for every later embedding


@dataclass
class RunConfig:
    """A whole recipe: every section, as loaded and checked from YAML with overrides."""

    name: str = "run"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    precision: PrecisionConfig = field(default_factory=PrecisionConfig)


class ConfigError(ValueError):
    """A bad configuration file, key or value; the message says which."""


def _valid_keys(node: Any, prefix: str = "") -> list[str]:
    keys = []
    for key, value in node.items():
        name = f"{prefix}{key}"
        nested = OmegaConf.is_dict(value) and len(value) > 0  # an open mapping (loss.params) is one key
        keys.extend(_valid_keys(value, f"{name}.") if nested else [name])
    return keys


class _UniqueKeyLoader(yaml.SafeLoader):
    """safe_load that refuses a key given twice in one mapping (plain YAML keeps the last one silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            # (type, value): YAML's 1 and true are different keys; unhashable keys are never repeats.
            marker = (type(key), key) if isinstance(key, (str, int, float, bool)) else id(key_node)
            if marker in seen:
                raise yaml.constructor.ConstructorError(None, None, f"key {key!r} is given twice", key_node.start_mark)
            seen.add(marker)
        return super().construct_mapping(node, deep)


def _read_yaml(path: Path) -> dict[str, Any]:
    """A recipe file's mapping; a missing, malformed or non-mapping file, or a key given twice, is a
    ConfigError naming it."""
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        with path.open() as stream:  # a stream: the error's position names the file
            data = yaml.load(stream, Loader=_UniqueKeyLoader)
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise ConfigError(f"config file {path} is not valid YAML: {' '.join(str(error).split())}") from None
    if not isinstance(data, dict):
        raise ConfigError(
            f"config file {path} must hold a mapping of sections (data, model, ...), got {type(data).__name__}"
        )
    return data


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> RunConfig:
    """Defaults <- YAML file <- dotted overrides ("a.b=value"), checked and typed."""
    schema = OmegaConf.structured(RunConfig)
    try:
        merged = schema
        if path is not None:
            path = Path(path)
            merged = OmegaConf.merge(merged, _read_yaml(path))
        for item in overrides or []:
            if "=" not in item:
                raise ConfigError(f"override {item!r} is not of the form key=value")
            merged = OmegaConf.merge(merged, OmegaConf.from_dotlist([item]))
    except (ConfigKeyError, ConfigAttributeError) as error:
        key = getattr(error, "full_key", None) or str(error).splitlines()[0]
        if key in RENAMED:
            raise ConfigError(f"config key {key!r} was renamed: use {RENAMED[key]}") from None
        hint = (
            f" (loss hyper-parameters go under loss.params: loss.params.{key[5:]})" if key.startswith("loss.") else ""
        )
        raise ConfigError(f"unknown config key {key!r}{hint}; valid keys: {', '.join(_valid_keys(schema))}") from None
    except ValidationError as error:
        raise ConfigError(
            f"bad config value: {str(error).splitlines()[0]} (key {getattr(error, 'full_key', '?')})"
        ) from None
    config: RunConfig = OmegaConf.to_object(merged)  # type: ignore[assignment]
    check_config(config)
    return config


def check_config(config: RunConfig) -> None:
    """Refuse a configuration with a bad value: one ConfigError naming the key and value."""

    def need(ok: bool, message: str) -> None:
        if not ok:
            raise ConfigError(message)

    d, m, o, t, e, loss = config.data, config.model, config.optim, config.train, config.eval, config.loss
    need(d.image_size >= 16, f"data.image_size must be >= 16, got {d.image_size}")
    need(d.classes_per_batch >= 2, f"data.classes_per_batch must be >= 2, got {d.classes_per_batch}")
    need(d.samples_per_class >= 1, f"data.samples_per_class must be >= 1, got {d.samples_per_class}")
    need(0 <= d.val_fraction < 1, f"data.val_fraction must be in [0, 1), got {d.val_fraction}")
    need(d.num_workers >= 0, f"data.num_workers must be >= 0, got {d.num_workers}")
    need(d.folds == 0 or d.folds >= 2, f"data.folds must be 0 (off) or >= 2, got {d.folds}")
    need(
        d.folds == 0 or 0 <= d.fold < d.folds,
        f"data.fold must be in 0..{d.folds - 1} (data.folds={d.folds}), got {d.fold}",
    )
    need(m.embedding_dim >= 1, f"model.embedding_dim must be >= 1, got {m.embedding_dim}")
    need(m.freeze_blocks >= 0, f"model.freeze_blocks must be >= 0, got {m.freeze_blocks}")
    need(o.name in OPTIMIZERS, f"optim.name must be one of {sorted(OPTIMIZERS)}, got {o.name!r}")
    need(o.lr > 0, f"optim.lr must be > 0, got {o.lr}")
    need(0 <= o.momentum < 1, f"optim.momentum must be in [0, 1), got {o.momentum}")
    need(o.weight_decay >= 0, f"optim.weight_decay must be >= 0, got {o.weight_decay}")
    need(o.new_layer_lr_mult > 0, f"optim.new_layer_lr_mult must be > 0, got {o.new_layer_lr_mult}")
    need(0 < o.layer_decay <= 1, f"optim.layer_decay must be in (0, 1], got {o.layer_decay}")
    need(0 < o.gamma <= 1, f"optim.gamma must be in (0, 1], got {o.gamma}")
    need(o.warmup_iterations >= 0, f"optim.warmup_iterations must be >= 0, got {o.warmup_iterations}")
    need(o.grad_clip is None or o.grad_clip > 0, f"optim.grad_clip must be > 0 or null, got {o.grad_clip}")
    need(list(o.milestones) == sorted(o.milestones), f"optim.milestones must be increasing, got {o.milestones}")
    need(t.iterations >= 1, f"train.iterations must be >= 1, got {t.iterations}")
    for key in ("val_every", "log_every", "checkpoint_every"):
        need(getattr(t, key) >= 1, f"train.{key} must be >= 1, got {getattr(t, key)}")
    need(t.threads is None or t.threads >= 1, f"train.threads must be >= 1 or null, got {t.threads}")
    need(bool(e.ks) and min(e.ks) >= 1, f"eval.ks must be positive, got {e.ks}")
    need(e.batch_size >= 1, f"eval.batch_size must be >= 1, got {e.batch_size}")
    need(
        loss.memory_size >= 0 and loss.memory_warmup >= 0,
        f"loss.memory_size and loss.memory_warmup must be >= 0, got {loss.memory_size}, {loss.memory_warmup}",
    )
    need(
        loss.memory_size == 0 or loss.name == "rll",
        f"loss.memory_size works with loss.name=rll only, got {loss.name!r}",
    )
    need(e.grid_queries >= 1, f"eval.grid_queries must be >= 1, got {e.grid_queries}")
    for purpose, setting in vars(config.precision).items():
        need(setting in PRECISIONS, f"precision.{purpose} must be one of {list(PRECISIONS)}, got {setting!r}")
    from ranklist.losses import check_loss

    try:
        check_loss(loss.name, loss.preset, loss.params)
    except ValueError as error:
        raise ConfigError(f"loss: {error}") from None


def comparable_config(config: RunConfig | dict[str, Any]) -> dict[str, Any]:
    """A config as it trains, as JSON data (a RunConfig, or one stored in a run's summary): its name
    aside, the loss as its resolved parameters (a preset or a default named explicitly is the same loss)."""
    from ranklist.losses import loss_params

    data = json.loads(json.dumps(asdict(config) if isinstance(config, RunConfig) else config))
    loss = data["loss"]
    params = json.loads(json.dumps(loss_params(loss["name"], loss["preset"], loss["params"])))
    return {**data, "name": None, "loss": {**loss, "preset": None, "params": params}}


def config_to_yaml(config: RunConfig) -> str:
    """The configuration as YAML (what a run folder's config.yaml holds)."""
    return OmegaConf.to_yaml(OmegaConf.structured(config))
