import json
import re
import subprocess
from pathlib import Path

import pytest
import torch

from ranklist.models import load_model
from ranklist.training import Trainer, load_config
from ranklist.training.optimizers import lr_factor
from ranklist.training.trainer import RunFolderError


def test_lr_schedule_warmup_then_steps():
    assert [lr_factor(s, 2, [4], 0.1) for s in range(6)] == pytest.approx([0.5, 1, 1, 1, 0.1, 0.1])


@pytest.mark.heavy
def test_tiny_run_writes_a_complete_run_folder(tiny_recipe, tmp_path):
    out = tmp_path / "run"
    summary = Trainer(load_config(tiny_recipe), out, progress=False, log=lambda m: None).run()
    for name in [
        "config.yaml",
        "metrics.jsonl",
        "summary.json",
        "summary.md",
        "checkpoints/last.pt",
        "checkpoints/best.pt",
        "plots/training_curves.png",
        "plots/recall_at_k.png",
        "plots/retrieval_grid.png",
        "plots/embedding_projection.png",
    ]:
        assert (out / name).is_file(), name
    assert set(summary["test"]) == {"L", "M", "H", "concat"} and summary["iterations"] == 6
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "loss" in r] == [1, 2, 3, 4, 5, 6]
    assert [r["step"] for r in records if "val/recall@1" in r] == [0, 3, 6]
    assert json.loads((out / "summary.json").read_text())["best"]["metric"] == "val/recall@1"
    assert "| concat |" in (out / "summary.md").read_text()
    # where the time went: every phase of this run, together no more than the wall time
    times = summary["time_s"]
    assert list(times) == [
        "setup",
        "train_steps",
        "validation",
        "checkpoints",
        "test",
        "report",
    ]  # no baseline: not pretrained
    assert all(v >= 0 for v in times.values()) and sum(times.values()) <= summary["wall_time_s"] + 0.5
    assert (
        summary["train_images_per_s"] >= 6 * 6 / max(summary["train_time_s"], 1e-9)
        and "Time (s): setup" in (out / "summary.md").read_text()
    )
    # provenance: the code's commit when it runs from a git checkout (as the tests do)
    if (
        subprocess.run(["git", "-C", str(Path(__file__).parent), "rev-parse", "HEAD"], capture_output=True).returncode
        == 0
    ):
        assert (
            re.fullmatch(r"[0-9a-f]{7,}(\+changes)?", summary["commit"])
            and f"commit {summary['commit']}" in (out / "summary.md").read_text()
        )


@pytest.mark.heavy
def test_resume_is_bit_for_bit(tiny_recipe, tmp_path):
    Trainer(load_config(tiny_recipe), tmp_path / "straight", progress=False, log=lambda m: None).run()
    Trainer(
        load_config(tiny_recipe, ["train.iterations=3"]), tmp_path / "split", progress=False, log=lambda m: None
    ).run()
    Trainer(load_config(tiny_recipe), tmp_path / "split", progress=False, log=lambda m: None).run(resume=True)
    straight = torch.load(tmp_path / "straight/checkpoints/last.pt", weights_only=False)
    resumed = torch.load(tmp_path / "split/checkpoints/last.pt", weights_only=False)
    assert straight["step"] == resumed["step"] == 6
    for key, value in straight["model_state"].items():
        assert torch.equal(value, resumed["model_state"][key]), key

    def log(run):  # everything but the wall-clock times
        records = [json.loads(x) for x in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]
        return [{k: v for k, v in r.items() if k != "time_s"} for r in records]

    assert log("split") == log("straight")


def test_run_folder_is_never_silently_overwritten(tiny_recipe, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "precious.txt").write_text("keep")
    with pytest.raises(RunFolderError, match=f"run folder {out} already exists and is not empty"):
        Trainer(load_config(tiny_recipe), out, progress=False).run()
    assert (out / "precious.txt").read_text() == "keep"
    with pytest.raises(RunFolderError, match="nothing to resume"):
        Trainer(load_config(tiny_recipe), tmp_path / "empty", progress=False).run(resume=True)


def test_failed_start_leaves_no_half_run(tiny_recipe, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(FileNotFoundError):
        Trainer(load_config(tiny_recipe, ["data.root=/nowhere"]), out, progress=False).run()
    assert not out.exists()


@pytest.mark.heavy
def test_baseline_losses_train_by_name(tiny_recipe, tmp_path):
    for name, params in (("proxy_nca", "{softmax_scale: 5.0}"), ("multi_similarity", "{}")):
        config = load_config(
            tiny_recipe, [f"loss.name={name}", f"loss.params={params}", "train.iterations=2", "eval.nmi=false"]
        )
        summary = Trainer(config, tmp_path / name, progress=False, log=lambda m: None).run()
        assert summary["config"]["loss"]["name"] == name
        state = torch.load(tmp_path / name / "checkpoints/last.pt", weights_only=False)
        if name == "proxy_nca":
            assert state["loss_state"]["H.loss.proxies"].shape == (summary["dataset"]["train_classes"], 8)


def test_build_run_passes_the_model_and_optimiser_options(tiny_recipe):
    from ranklist.training.run import build_run

    run = build_run(
        load_config(
            tiny_recipe,
            [
                "model.backbone=efficientnet_lite0",
                "model.pretrained=false",
                "data.image_size=32",
                "data.resize=36",
                "model.freeze_blocks=2",
                "optim.layer_decay=0.5",
            ],
        )
    )
    assert run.model.config["freeze_blocks"] == 2 and run.model.preprocessing.image_size == 32
    assert len({group["lr"] for group in run.optimizer.param_groups}) > 2  # per-depth rates under layer decay


def test_train_step_alone(tiny_recipe):
    from ranklist.training import TrainState, build_run, train_step

    run = build_run(load_config(tiny_recipe))
    indices = next(iter(run.sampler))
    images = torch.stack([run.splits.train[i][0] for i in indices])
    labels = torch.tensor([run.splits.train[i][1] for i in indices])
    run.model.train()
    with torch.no_grad():  # the loss the step minimises, on the weights before it
        outputs = run.model(images.to(memory_format=run.memory_format))
        expected = sum(float(run.losses[level](outputs[level], labels)) for level in run.model.levels)
    before = [p.detach().clone() for p in run.model.parameters()]
    state = TrainState(step=4, batch=1)
    assert train_step(run, state, (images, labels)) == pytest.approx(expected, rel=1e-5)
    assert (state.step, state.batch) == (5, 2) and run.scheduler.last_epoch == 1
    assert any(not torch.equal(a, b) for a, b in zip(before, run.model.parameters()))


@pytest.mark.heavy
def test_without_validation_the_last_model_is_tested(tiny_recipe, tmp_path):
    """data.val_fraction=0 (the paper's protocol, the demo's): every training class trains, no
    selection, the last iteration's model meets the test split once."""
    out = tmp_path / "run"
    summary = Trainer(load_config(tiny_recipe, ["data.val_fraction=0"]), out, progress=False, log=lambda m: None).run()
    assert summary["best"] is None and "val_images" not in summary["dataset"] and "validation" not in summary["time_s"]
    assert summary["dataset"]["train_classes"] == 5 and not (out / "checkpoints" / "best.pt").exists()
    assert "the last iteration's model was tested" in (out / "summary.md").read_text()
    assert load_model(out / "checkpoints" / "last.pt")  # what was tested


@pytest.mark.heavy
def test_the_pretrained_baseline_shares_the_test_pass(tiny_recipe, tmp_path, monkeypatch):
    """The baseline is embedded after training, in the final test's pass: each test image is read
    once for both models, and the summary reports both."""
    from ranklist.evaluation import evaluator

    passes = []
    original = evaluator.embed_dataset
    monkeypatch.setattr(
        evaluator,
        "embed_dataset",
        lambda model, dataset, **kw: passes.append(len(dataset)) or original(model, dataset, **kw),
    )
    overrides = [
        "model.backbone=efficientnet_lite0",
        "model.pretrained=true",
        "data.image_size=32",
        "data.resize=36",
        "train.iterations=1",
        "eval.nmi=false",
        "data.val_fraction=0",
    ]
    summary = Trainer(load_config(tiny_recipe, overrides), tmp_path / "run", progress=False, log=lambda m: None).run()
    assert passes == [summary["dataset"]["test_images"]]  # no validation split: the one pass is the test's
    assert set(summary["baseline"]["test"]["H"]) >= {"recall@1", "map@r"} and set(summary["test"]) == {
        "L",
        "M",
        "H",
        "concat",
    }
    assert list(summary["time_s"]) == ["setup", "train_steps", "checkpoints", "baseline", "test", "report"]
    passes.clear()  # eval.baseline=false: no baseline model, no baseline in the summary
    summary = Trainer(
        load_config(tiny_recipe, [*overrides, "eval.baseline=false"]),
        tmp_path / "off",
        progress=False,
        log=lambda m: None,
    ).run()
    assert (
        "baseline" not in summary
        and "baseline" not in summary["time_s"]
        and passes == [summary["dataset"]["test_images"]]
    )
