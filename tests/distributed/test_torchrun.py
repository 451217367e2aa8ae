import json
import os
import subprocess
import sys

import pytest
import torch

from ranklist.data import build_dataset, build_transform
from ranklist.evaluation import Evaluator
from ranklist.models import load_model
from ranklist.training import Trainer, load_config
from ranklist.training.trainer import RunFolderError
from tests.data.fixtures import make_fashion_mnist, write_image
from tests.distributed.test_distributed import free_port

pytestmark = pytest.mark.heavy  # torchrun runs with two processes


def torchrun(*args: str) -> None:
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--master_addr=127.0.0.1",
        f"--master_port={free_port()}",
        "-m",
        "ranklist",
        "train",
        *args,
        "--no-progress",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]


def test_torchrun_trains_with_two_processes(tmp_path):
    root = make_fashion_mnist(tmp_path / "fm")
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(f"""
name: tiny-ddp
data: {{name: fashion_mnist, root: {root}, image_size: 16, resize: 18, classes_per_batch: 2, samples_per_class: 3, \
val_fraction: 0.0}}
model: {{backbone: small_cnn, pretrained: false, embedding_dim: 8}}
train: {{iterations: 3, val_every: 3, log_every: 1, checkpoint_every: 3, threads: 1}}
eval: {{ks: [1], batch_size: 16, grid_queries: 2, nmi: false}}
""")
    out = tmp_path / "run"
    torchrun(str(recipe), "--out", str(out))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["iterations"] == 3 and "concat" in summary["test"]
    assert summary["dataset"]["train_classes"] == 5  # each process took 2 of them per step


def test_torchrun_scores_the_pretrained_baseline_in_the_shared_test_pass(tmp_path):
    """Both processes embed shards of the test split with the final model and the rebuilt pretrained
    backbone together; the baseline scores as one process scores that backbone alone."""
    from ranklist.training.run import build_run_model
    from ranklist.training.trainer import BackboneBaseline

    root = make_fashion_mnist(tmp_path / "fm")
    recipe = tmp_path / "pretrained.yaml"
    recipe.write_text(f"""
name: pretrained-ddp
data: {{name: fashion_mnist, root: {root}, image_size: 32, resize: 36, classes_per_batch: 2, samples_per_class: 3, \
val_fraction: 0.0}}
model: {{backbone: efficientnet_lite0, pretrained: true, embedding_dim: 8, freeze_blocks: 3}}
train: {{iterations: 1, val_every: 1, log_every: 1, checkpoint_every: 1, threads: 1}}
eval: {{ks: [1, 2], batch_size: 16, grid_queries: 2, nmi: false}}
""")
    out = tmp_path / "run"
    torchrun(str(recipe), "--out", str(out))
    summary = json.loads((out / "summary.json").read_text())
    config = load_config(recipe)
    pretrained = build_run_model(config)
    test = build_dataset(
        "fashion_mnist",
        "test",
        root=config.data.root,
        transform=build_transform(False, image_size=32, resize=36, normalization=pretrained.normalization),
    )
    want = Evaluator(ks=(1, 2), batch_size=16, progress=False, compute_nmi=False).evaluate(
        BackboneBaseline(pretrained), test
    )["H"]
    assert summary["baseline"]["test"]["H"] == pytest.approx(want, abs=1e-6)


@pytest.fixture
def folder_recipe(tmp_path):
    """20 classes of 4 images: 10 test classes, 8 training and 2 validation classes."""
    for c in range(20):
        for k in range(4):
            write_image(tmp_path / "imgs" / f"class_{c:02d}" / f"{k}.png", 13 * c + 3 * k, size=20)
    recipe = tmp_path / "folder.yaml"
    recipe.write_text(f"""
name: folder-ddp
data: {{name: folder, root: {tmp_path / "imgs"}, image_size: 16, resize: 18, classes_per_batch: 2, \
samples_per_class: 3, val_fraction: 0.2}}
model: {{backbone: small_cnn, pretrained: false, embedding_dim: 8}}
optim: {{lr: 0.05}}
train: {{iterations: 4, val_every: 2, log_every: 1, checkpoint_every: 2, threads: 1}}
eval: {{ks: [1, 2], batch_size: 7, grid_queries: 2}}
""")
    return recipe


def test_torchrun_evaluates_shards_and_resumes_exactly(folder_recipe, tmp_path):
    straight, split = tmp_path / "straight", tmp_path / "split"
    torchrun(str(folder_recipe), "--out", str(straight))
    torchrun(str(folder_recipe), "train.iterations=2", "--out", str(split))
    with pytest.raises(RunFolderError, match="checkpointed by 2 process"):  # one process cannot continue it exactly
        Trainer(load_config(folder_recipe), split, progress=False, log=lambda m: None).run(resume=True)
    torchrun(str(folder_recipe), "--out", str(split), "--resume")

    a = torch.load(straight / "checkpoints/last.pt", weights_only=False)
    b = torch.load(split / "checkpoints/last.pt", weights_only=False)
    assert a["step"] == b["step"] == 4 and len(a["rng"]) == 2
    for key, value in a["model_state"].items():
        assert torch.equal(value, b["model_state"][key]), key

    def log(run):  # everything but the wall-clock times
        return [
            {k: v for k, v in json.loads(line).items() if k != "time_s"}
            for line in (run / "metrics.jsonl").read_text().splitlines()
        ]

    assert log(split) == log(straight)

    # The shards embedded by both processes score as one process scores the selected checkpoint.
    summary = json.loads((straight / "summary.json").read_text())
    config = load_config(folder_recipe)
    model = load_model(straight / "checkpoints" / "best.pt")
    test = build_dataset(
        "folder",
        "test",
        root=config.data.root,
        val_fraction=0.2,
        transform=build_transform(False, image_size=16, resize=18, normalization=model.normalization),
    )
    want = Evaluator(ks=(1, 2), batch_size=7, progress=False).evaluate(model, test)
    assert set(summary["test"]) == set(want)
    for view, metrics in want.items():
        assert summary["test"][view] == pytest.approx(metrics, abs=1e-6), view
