import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.data.fixtures import make_fashion_mnist
from tests.distributed.test_distributed import free_port

pytestmark = pytest.mark.heavy  # gloo process groups in subprocesses


def test_loss_parameters_are_synchronised_across_processes(tmp_path):
    """proxy-NCA's proxies under 2 gloo processes: identical at the start on every process, their
    gradients averaged, so that model and proxies after 3 steps equal 1 process on the global batch."""
    root = make_fashion_mnist(tmp_path / "fm")
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(f"""
data: {{name: fashion_mnist, root: {root}, image_size: 16, resize: 18, classes_per_batch: 2, samples_per_class: 3, \
val_fraction: 0.0}}
model: {{backbone: small_cnn, pretrained: false, embedding_dim: 8}}
optim: {{lr: 0.05}}
train: {{threads: 1}}
""")
    env = {
        **os.environ,
        "INIT_METHOD": f"tcp://127.0.0.1:{free_port()}",
        "WORLD_SIZE": "2",
        "OMP_NUM_THREADS": "1",
        "RECIPE": str(recipe),
    }
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.distributed.loss_parameters_worker"],
            cwd=Path(__file__).resolve().parents[2],
            env={**env, "RANK": str(r)},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for r in range(2)
    ]
    outputs = []
    try:
        outputs = [proc.communicate(timeout=120)[0] for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    for proc, out in zip(procs, outputs):
        assert proc.returncode == 0, out[-3000:]
