"""What tuning changed: a searched key's value in the untuned recipe, the loss's default where unset."""

from ranklist.losses.ranked_list import PRESETS
from ranklist.training.config import load_config
from ranklist.tuning.tuned_values import tuned_values, untuned_value


def test_untuned_values_come_from_the_recipe_then_the_loss(tiny_recipe):
    rll = load_config(tiny_recipe, ["loss.preset=cvpr2019", "loss.params.margin=0.3"])
    assert untuned_value(rll, "optim.lr") == 0.05 and untuned_value(rll, "data.classes_per_batch") == 2
    assert untuned_value(rll, "loss.params.margin") == 0.3  # set in the recipe
    assert untuned_value(rll, "loss.params.alpha") == PRESETS["cvpr2019"]["alpha"]  # the preset's (the paper's)
    ms = load_config(tiny_recipe, ["loss.name=multi_similarity", "loss.preset=null"])
    assert untuned_value(ms, "loss.params.alpha") == 2  # the registry's default: the MS paper's
    assert untuned_value(ms, "loss.params.miner.epsilon") == 0.1  # the miner's default


def test_a_hand_written_recipe_has_no_tuned_values(tmp_path):
    (tmp_path / "best.yaml").write_text("name: untuned\n")  # compare-tuned takes such a folder as a reference
    assert tuned_values(tmp_path) == {}
