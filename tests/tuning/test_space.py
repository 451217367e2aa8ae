import pytest

from ranklist.tuning.space import Param, load_space, override, overrides


def write(tmp_path, text: str):
    path = tmp_path / "space.yaml"
    path.write_text(text)
    return path


def test_a_space_reads_every_kind_and_writes_overrides_the_loader_reads_back(tmp_path):
    space = load_space(
        write(
            tmp_path,
            """
optim.lr: {type: float, low: 1e-5, high: 1.0e-2, log: true}
data.classes_per_batch: {type: int, low: 16, high: 64, step: 8}
loss.params.gradient: {type: categorical, choices: [query, full]}
model.levels: {type: categorical, choices: ["[L,M,H]", "[H]"]}
""",
        )
    )
    lr, batch, gradient, levels = space.params
    assert (lr.kind, lr.low, lr.high, lr.log) == (
        "float",
        1e-5,
        1e-2,
        True,
    )  # YAML 1.1 reads 1e-5 as a string: accepted
    assert (batch.kind, batch.corners()) == ("int", [16, 64]) and batch.step == 8
    assert gradient.choices == ("query", "full") and levels.corners() == ["[L,M,H]", "[H]"]
    assert overrides(
        {"optim.lr": 0.1, "train.deterministic": True, "loss.params.alpha": None, "model.levels": "[H]"}
    ) == ["optim.lr=0.1", "train.deterministic=true", "loss.params.alpha=null", "model.levels=[H]"]
    assert override("optim.lr", 1e-7) == "optim.lr=1e-07"
    assert override("loss.params.miner.epsilon", 0.2) == "loss.params[miner.epsilon]=0.2"  # a miner's key holds a dot


def test_a_miner_parameter_reaches_the_loss(tiny_recipe):
    from ranklist.training.config import load_config

    config = load_config(
        tiny_recipe,
        ["loss.name=multi_similarity", override("loss.params.miner.epsilon", 0.3), override("loss.params.alpha", 4.0)],
    )
    assert config.loss.params == {"miner.epsilon": 0.3, "alpha": 4.0}


@pytest.mark.parametrize(
    "text, message",
    [
        ("optim.lr: {type: float, low: 0.1, high: 0.01}", "optim.lr: low 0.1 must be < high 0.01"),
        ("optim.lr: {type: float, low: 0, high: 1, log: true}", "optim.lr: a log range needs low > 0, got 0"),
        (
            "optim.lr: {type: floats, low: 0, high: 1}",
            "optim.lr: type must be one of ['float', 'int', 'categorical'], got 'floats'",
        ),
        ("optim.lr: {type: float, low: x, high: 1}", "optim.lr: low must be a number, got 'x'"),
        ("optim.lr: {type: float, lo: 0, high: 1}", "optim.lr: unknown fields ['lo'] for type float"),
        ("lr: {type: float, low: 0, high: 1}", "lr: the key must be a dotted config key"),
        (
            "data.classes_per_batch: {type: int, low: 2.5, high: 8}",
            "data.classes_per_batch: low must be a finite integer, got 2.5",
        ),
        (
            "loss.params.gradient: {type: categorical, choices: []}",
            "loss.params.gradient: choices must be a non-empty list",
        ),
        (
            "model.levels: {type: categorical, choices: [[L, M]]}",
            "model.levels: choice ['L', 'M'] is a list; write lists and mappings as strings",
        ),
        ("optim.lr: 0.1", "optim.lr: expected a mapping"),
        ("[1, 2]", "must be a mapping of dotted config keys"),
    ],
)
def test_a_bad_space_is_one_line_naming_the_key_and_value(tmp_path, text, message):
    with pytest.raises(ValueError) as error:
        load_space(write(tmp_path, text))
    assert message in str(error.value) and "space.yaml" in str(error.value) and "\n" not in str(error.value)


def test_a_missing_space_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="search space file not found: .*nope.yaml"):
        load_space(tmp_path / "nope.yaml")


def test_a_dimension_contains_only_values_it_can_draw():
    lr = Param("optim.lr", "float", 1e-4, 1e-2, log=True)
    assert lr.contains(1e-3) and lr.contains(1e-4) and not lr.contains(2e-2) and not lr.contains(None)
    assert not lr.contains(True) and not lr.contains("0.001")
    size = Param("data.classes_per_batch", "int", 16, 64, step=8)
    assert size.contains(32) and not size.contains(33) and not size.contains(32.5)
    flag = Param("loss.params.weight_gradient", "categorical", choices=(False, True))
    assert flag.contains(False) and not flag.contains(0)  # False == 0 in Python; not a choice here
    assert Param("model.embedding_dim", "categorical", choices=(128, 256)).contains(128)


def test_a_new_study_runs_the_recipe_first_unless_a_value_is_outside_the_space(tiny_recipe, tmp_path):
    import optuna

    from ranklist.tuning.objective import TuneSettings
    from ranklist.tuning.study import RECIPE_ATTR, enqueue_recipe

    def queued(space_text: str) -> tuple[list, list[str]]:
        (tmp_path / "space.yaml").write_text(space_text)
        study, lines = optuna.create_study(direction="maximize"), []
        enqueue_recipe(study, TuneSettings(str(tiny_recipe), [], load_space(tmp_path / "space.yaml"), 2), lines.append)
        return study.get_trials(), lines

    trials, lines = queued(
        "optim.lr: {type: float, low: 1e-3, high: 1e-1, log: true}\n"
        "loss.params.margin: {type: float, low: 0.1, high: 1.0}\n"
    )
    assert len(trials) == 1 and trials[0].system_attrs["fixed_params"] == {"optim.lr": 0.05, "loss.params.margin": 0.4}
    assert trials[0].user_attrs == {RECIPE_ATTR: True} and not lines
    trials, lines = queued("optim.lr: {type: float, low: 1e-4, high: 1e-2, log: true}\n")
    assert trials == [] and lines == ["no trial of the recipe as given: outside the space: optim.lr=0.05"]


def test_a_study_refuses_to_continue_on_an_edited_recipe_under_the_same_path(tiny_recipe, tiny_space, tmp_path):
    from ranklist.tuning.objective import TuneSettings
    from ranklist.tuning.study import open_study

    url = f"sqlite:///{tmp_path / 'tune.db'}"
    settings = TuneSettings(str(tiny_recipe), [], load_space(tiny_space), 2)
    open_study(settings, url, "s")
    open_study(settings, url, "s")  # the same recipe continues
    text = tiny_recipe.read_text()
    assert "lr: 0.05" in text
    tiny_recipe.write_text(text.replace("lr: 0.05", "lr: 0.01"))
    with pytest.raises(ValueError, match=r"other settings \(recipe_config differ: recipe_config='[0-9a-f]{64}'\)"):
        open_study(settings, url, "s")
