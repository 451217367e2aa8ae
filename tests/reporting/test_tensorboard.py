"""TensorBoard events of a run, read back with TensorBoard's own reader; the projector's files."""

from __future__ import annotations

import json
import math

import pytest
from PIL import Image

from ranklist.cli import main
from ranklist.reporting import tensorboard as board_module
from ranklist.reporting.tensorboard import final_metrics, flatten
from ranklist.training import Trainer, load_config
from tests.conftest import write_tiny_recipe

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402
from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer  # noqa: E402


@pytest.fixture
def recipe(tmp_path):
    return write_tiny_recipe(tmp_path, train_extra=", tensorboard: true", eval_extra=", nmi: false")


def _events(log_dir):
    accumulator = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    accumulator.Reload()
    return accumulator


@pytest.mark.heavy
def test_a_run_writes_scalars_hparams_figures_and_projector(recipe, tmp_path):
    out = tmp_path / "run"
    summary = Trainer(load_config(recipe), out, progress=False, log=lambda m: None).run()
    events = _events(out / "tensorboard")
    tags = events.Tags()
    assert [e.step for e in events.Scalars("train/loss")] == [1, 2, 3, 4, 5, 6]
    assert [e.value for e in events.Scalars("train/lr")][-1] == pytest.approx(0.005)  # milestone at 4: lr x 0.1
    assert [e.step for e in events.Scalars("val/recall@1")] == [0, 3, 6]
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [e.value for e in events.Scalars("train/loss")] == pytest.approx([r["loss"] for r in records if "loss" in r])
    assert events.Scalars("test/concat/recall@1")[0].value == pytest.approx(summary["test"]["concat"]["recall@1"])
    assert events.Scalars("test/concat/recall@1")[0].step == 6
    assert {"report/training_curves", "report/recall_at_k", "report/pair_distances", "report/retrieval_grid"} <= set(
        tags["images"]
    )
    # the hparams view: the flattened config against the final metrics
    from tensorboard.plugins.hparams import plugin_data_pb2

    contents = events.PluginTagToContent("hparams")
    session = plugin_data_pb2.HParamsPluginData.FromString(contents["_hparams_/session_start_info"]).session_start_info
    assert session.hparams["loss.name"].string_value == "rll" and session.hparams["train.iterations"].number_value == 6
    experiment = plugin_data_pb2.HParamsPluginData.FromString(contents["_hparams_/experiment"]).experiment
    assert "test/concat/recall@1" in {m.name.tag for m in experiment.metric_infos}
    # the projector: config, embeddings, metadata with label and class name, a sprite of thumbnails
    board = out / "tensorboard"
    config = (board / "projector_config.pbtxt").read_text()
    assert "00006/test_embedding/tensors.tsv" in config and "sprite.png" in config and "single_image_dim: 32" in config
    folder = board / "00006" / "test_embedding"
    rows = (folder / "tensors.tsv").read_text().splitlines()
    metadata = (folder / "metadata.tsv").read_text().splitlines()
    n = summary["dataset"]["test_images"]
    assert len(rows) == n and len(rows[0].split("\t")) == 3 * 8  # L, M, H of 8 dimensions, concatenated
    assert metadata[0] == "label\tclass" and len(metadata) == n + 1 and all(len(m.split("\t")) == 2 for m in metadata)
    side = math.ceil(n**0.5) * 32
    assert Image.open(folder / "sprite.png").size == (side, side)


@pytest.mark.heavy
def test_a_study_is_one_root_with_a_folder_per_run(recipe, tmp_path):
    out = tmp_path / "cmp"
    argv = [
        "compare",
        str(recipe),
        "train.iterations=2",
        "--losses",
        "rll",
        "contrastive",
        "--seeds",
        "0",
        "--out",
        str(out),
        "--no-progress",
    ]
    assert main(argv) == 0
    multiplexer = EventMultiplexer()
    multiplexer.AddRunsFromDirectory(str(out))
    multiplexer.Reload()
    runs = {name for name, tags in multiplexer.Runs().items() if "test/concat/recall@1" in tags["scalars"]}
    assert runs == {"rll-seed0/tensorboard", "contrastive-seed0/tensorboard"}


@pytest.mark.heavy
def test_a_resumed_run_drops_the_events_past_its_checkpoint(recipe, tmp_path, monkeypatch):
    """A run that dies at iteration 5 (checkpoint at 4) resumes from 4: the events of 5 are purged and written again."""
    out = tmp_path / "split"
    original = Trainer._after_step

    def dies_at_5(self, run, state, running, started):
        original(self, run, state, running, started)
        if state.step == 5:
            raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "_after_step", dies_at_5)
    with pytest.raises(KeyboardInterrupt):
        Trainer(load_config(recipe, ["train.checkpoint_every=2"]), out, progress=False, log=lambda m: None).run()
    monkeypatch.setattr(Trainer, "_after_step", original)
    Trainer(load_config(recipe, ["train.checkpoint_every=2"]), out, progress=False, log=lambda m: None).run(resume=True)
    events = _events(out / "tensorboard")
    assert [e.step for e in events.Scalars("train/loss")] == [1, 2, 3, 4, 5, 6]
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [e.value for e in events.Scalars("train/loss")] == pytest.approx([r["loss"] for r in records if "loss" in r])
    assert (
        [e.step for e in events.Scalars("val/recall@1")]
        == [r["step"] for r in records if "val/recall@1" in r]
        == [0, 3, 6]
    )


@pytest.mark.heavy
def test_off_or_missing_package_writes_no_events(recipe, tmp_path, monkeypatch):
    Trainer(
        load_config(recipe, ["train.tensorboard=false", "train.iterations=1"]),
        tmp_path / "off",
        progress=False,
        log=lambda m: None,
    ).run()
    assert not (tmp_path / "off" / "tensorboard").exists()
    monkeypatch.setattr(board_module, "_writer_class", lambda: None)
    said = []
    Trainer(load_config(recipe, ["train.iterations=1"]), tmp_path / "missing", progress=False, log=said.append).run()
    assert not (tmp_path / "missing" / "tensorboard").exists()
    assert [m for m in said if "tensorboard package is not installed" in m] == [f"warning: {board_module.MISSING}"]


def test_flatten_and_final_metrics():
    assert flatten({"a": {"b": 1, "c": [1, 2], "d": None, "e": {}}, "f": "x"}) == {
        "a.b": 1,
        "a.c": "[1, 2]",
        "a.d": "null",
        "a.e": "{}",
        "f": "x",
    }
    summary = {
        "test": {"H": {"recall@1": 0.5, "nmi": float("nan")}},
        "baseline": {"test": {"H": {"recall@1": 0.25}}},
        "pair_distances": {"wrong_side": {"after": {"negatives_within_alpha": 0.1}}},
    }
    assert final_metrics(summary) == {
        "test/H/recall@1": 0.5,
        "baseline/H/recall@1": 0.25,
        "pair_distances/after/negatives_within_alpha": 0.1,
    }


def test_shipped_recipes_turn_it_on():
    from pathlib import Path

    recipes = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.yaml"))
    assert len(recipes) >= 5
    for path in recipes:
        assert load_config(path).train.tensorboard, path
