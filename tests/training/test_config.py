import pytest

from ranklist.training import ConfigError, load_config
from ranklist.training.demo import demo_config


def test_defaults_file_and_dotted_overrides(tiny_recipe):
    config = load_config(tiny_recipe, ["loss.params.neg_temperature=12", "model.levels=[H]", "loss.params.alpha=null"])
    assert config.loss.params == {"neg_temperature": 12, "alpha": None} and config.model.levels == ["H"]
    assert config.data.classes_per_batch == 2 and config.optim.momentum == 0.9  # file, then defaults


def test_unknown_keys_list_the_valid_ones(tiny_recipe):
    with pytest.raises(
        ConfigError, match=r"unknown config key .*loss.temperature.* loss.params.temperature.*valid keys: .*loss.params"
    ):
        load_config(tiny_recipe, ["loss.temperature=3"])
    with pytest.raises(
        ConfigError,
        match=r"loss: unknown parameters \['temperature'\] for loss 'rll'; valid: \['alpha', .*'neg_temperature'",
    ):
        load_config(tiny_recipe, ["loss.params.temperature=3"])
    with pytest.raises(
        ConfigError,
        match=r"loss: unknown preset 'paper' for loss 'rll'; "
        r"presets: \['cvpr2019', 'default', 'demo', 'tpami2021_code'\]",
    ):
        load_config(tiny_recipe, ["loss.preset=paper"])


def test_presets_are_named_from_a_config(tiny_recipe):
    from ranklist.losses import build_loss

    config = load_config(tiny_recipe, ["loss.preset=tpami2021_code", "loss.params.margin=0.5"])
    loss = build_loss(config.loss.name, embedding_dim=4, num_classes=2, preset=config.loss.preset, **config.loss.params)
    assert loss.options["alpha"] is None and loss.options["reduction"] == "official" and loss.options["margin"] == 0.5


@pytest.mark.parametrize(
    "text,message",
    [
        ("data: [1, 2\n", "is not valid YAML"),
        ("- a\n- b\n", "must hold a mapping of sections (data, model, ...), got list"),
        ("data: {image_size: 12\n", "is not valid YAML"),
        (
            "data:\n  hflip: true\n  recipe: paper\n  hflip: false\n",
            "is not valid YAML: key 'hflip' is given twice.*line 4",
        ),
        ("name: a\nname: b\n", "key 'name' is given twice"),
    ],
)
def test_malformed_files_are_named(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=f"config file {path}.*" + message.replace("(", r"\(").replace(")", r"\)")):
        load_config(path)


@pytest.mark.parametrize(
    "override,message",
    [
        ("optim.lr=-1", "optim.lr must be > 0, got -1.0"),
        (
            "loss.params.margin=-0.2",
            "loss: bad parameters for loss 'rll'.*margin must be a finite number >= 0.0, got -0.2",
        ),
        ("loss.params.imbalance=2", r"imbalance must be a finite number in \[0.0, 1.0\], got 2.0"),
        ("data.samples_per_class=0", "data.samples_per_class must be >= 1, got 0"),
        ("train.iterations=abc", "bad config value"),
        ("loss.params.gradient=both", "loss: bad parameters for loss 'rll'.*gradient.*'both'"),
        ("loss.name=arcface", "unknown loss 'arcface'; choose one of"),
        ("loss.params.neg_margin=x", "loss: unknown parameters"),
        ("eval.grid_queries=0", "eval.grid_queries must be >= 1, got 0"),
        ("precision.eval=fp16", r"precision.eval must be one of \['fp32', 'bf16', 'auto'\], got 'fp16'"),
        ("precision.frozen=half", r"precision.frozen must be one of \['fp32', 'bf16', 'auto'\], got 'half'"),
        ("precision.train=amp", r"precision.train must be one of \['fp32', 'bf16', 'auto'\], got 'amp'"),
        ("optim.amp=true", r"config key 'optim.amp' was renamed: use precision.train \(true: bf16\)"),
        ("eval.precision=bf16", "config key 'eval.precision' was renamed: use precision.eval"),
        ("noequals", "not of the form key=value"),
        ("optim.name=lamb", r"optim.name must be one of \['adamw', 'sgd'\], got 'lamb'"),
    ],
)
def test_bad_values_are_named(tiny_recipe, override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(tiny_recipe, [override])


def test_missing_file():
    with pytest.raises(ConfigError, match="config file not found: nope.yaml"):
        load_config("nope.yaml")


def test_recipes_load_with_the_papers_values():
    sop = load_config("configs/sop.yaml")
    assert (sop.data.classes_per_batch, sop.data.samples_per_class, sop.model.embedding_dim) == (60, 3, 512)
    assert (sop.loss.name, sop.loss.preset, sop.loss.params, sop.optim.lr) == ("rll", "default", {}, 0.01)
    assert load_config("configs/cub200.yaml").optim.lr == 0.001
    inshop = load_config("configs/inshop.yaml")
    assert (inshop.data.classes_per_batch, inshop.loss.params["neg_temperature"], inshop.model.embedding_dim) == (
        22,
        12.0,
        128,
    )
    assert demo_config() == load_config("configs/demo.yaml")
