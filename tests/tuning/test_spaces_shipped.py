from pathlib import Path

import pytest

from ranklist.losses import LOSS_NAMES
from ranklist.tuning.objective import TuneSettings, check_space_against_recipe
from ranklist.tuning.space import load_space

SPACES = Path(__file__).resolve().parents[2] / "configs" / "spaces"


def test_every_loss_has_a_space():
    assert sorted(p.stem for p in SPACES.glob("*.yaml")) == sorted(LOSS_NAMES)


@pytest.mark.parametrize("loss", LOSS_NAMES)
def test_each_shipped_space_fits_the_demo_recipe_at_every_bound(loss):
    space = load_space(SPACES / f"{loss}.yaml")
    choose = [] if loss == "rll" else [f"loss.name={loss}", "loss.preset=null"]
    check_space_against_recipe(TuneSettings(str(SPACES.parents[0] / "demo.yaml"), choose, space, folds=4))
    assert "optim.lr" in space.keys()


def test_the_demo_recipe_space_fits_the_demo_and_holds_its_values():
    """configs/spaces/recipes/demo.yaml (issue 23, part 4): every bound loads, and the recipe as given
    is inside it, so a study of it starts with the demo itself."""
    from ranklist.training.config import load_config
    from ranklist.tuning.tuned_values import untuned_value

    space = load_space(SPACES / "recipes" / "demo.yaml")
    recipe = str(SPACES.parents[0] / "demo.yaml")
    check_space_against_recipe(TuneSettings(recipe, [], space, folds=2))
    config = load_config(recipe, [])
    assert all(param.contains(untuned_value(config, param.key)) for param in space.params)
