import json
import os
import subprocess
import sys

from tests.data.fixtures import make_fashion_mnist
from tests.distributed.test_distributed import free_port


def test_torchrun_trains_with_two_processes(tmp_path):
    root = make_fashion_mnist(tmp_path / "fm")
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(f"""
name: tiny-ddp
data: {{name: fashion_mnist, root: {root}, image_size: 16, resize: 18, classes_per_batch: 2, samples_per_class: 3, val_fraction: 0.0}}
model: {{backbone: small_cnn, pretrained: false, embedding_dim: 8}}
train: {{iterations: 3, val_every: 3, log_every: 1, checkpoint_every: 3, threads: 1}}
eval: {{ks: [1], batch_size: 16, grid_queries: 2, nmi: false}}
""")
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
           f"--master_port={free_port()}", "-m", "ranklist", "train", str(recipe), "--out", str(out), "--no-progress"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["iterations"] == 3 and "concat" in summary["test"]
    assert summary["dataset"]["train_classes"] == 5  # each process took 2 of them per step
