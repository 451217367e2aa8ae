import pytest

from ranklist.training import ConfigError, load_config
from ranklist.training.demo import demo_config


def test_defaults_file_and_dotted_overrides(tiny_recipe):
    config = load_config(tiny_recipe, ["loss.neg_temperature=12", "model.levels=[H]", "loss.alpha=null"])
    assert config.loss.neg_temperature == 12.0 and config.model.levels == ["H"] and config.loss.alpha is None
    assert config.data.classes_per_batch == 2 and config.optim.momentum == 0.9  # file, then defaults


def test_unknown_keys_list_the_valid_ones(tiny_recipe):
    with pytest.raises(ConfigError, match=r"unknown config key .*loss.temperature.*valid keys: .*loss.neg_temperature"):
        load_config(tiny_recipe, ["loss.temperature=3"])


@pytest.mark.parametrize("override,message", [
    ("optim.lr=-1", "optim.lr must be > 0, got -1.0"),
    ("loss.margin=-0.2", "loss: margin must be a finite number >= 0.0, got -0.2"),
    ("loss.imbalance=2", r"imbalance must be a finite number in \[0.0, 1.0\], got 2.0"),
    ("data.samples_per_class=0", "data.samples_per_class must be >= 1, got 0"),
    ("train.iterations=abc", "bad config value"),
    ("loss.gradient=both", "loss.gradient must be one of .* got 'both'"),
    ("noequals", "not of the form key=value"),
    ("optim.name=lamb", "optim.name must be 'sgd' or 'adamw', got 'lamb'"),
])
def test_bad_values_are_named(tiny_recipe, override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(tiny_recipe, [override])


def test_missing_file():
    with pytest.raises(ConfigError, match="config file not found: nope.yaml"):
        load_config("nope.yaml")


def test_recipes_load_with_the_papers_values():
    sop = load_config("configs/sop.yaml")
    assert (sop.data.classes_per_batch, sop.data.samples_per_class, sop.model.embedding_dim) == (60, 3, 512)
    assert (sop.loss.alpha, sop.loss.margin, sop.loss.neg_temperature, sop.optim.lr) == (1.2, 0.4, 10.0, 0.01)
    assert load_config("configs/cub200.yaml").optim.lr == 0.001
    inshop = load_config("configs/inshop.yaml")
    assert (inshop.data.classes_per_batch, inshop.loss.neg_temperature, inshop.model.embedding_dim) == (22, 12.0, 128)
    assert demo_config() == load_config("configs/demo.yaml")
