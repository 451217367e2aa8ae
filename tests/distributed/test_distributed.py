import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ranklist import ranked_list_loss
from ranklist.losses.distributed import DistributedRankedListLoss, distributed_ranked_list_loss

pytestmark = pytest.mark.heavy  # gloo process groups in subprocesses


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_gloo_processes_equal_one_process_on_the_concatenated_batch():
    env = {**os.environ, "INIT_METHOD": f"tcp://127.0.0.1:{free_port()}", "WORLD_SIZE": "2", "OMP_NUM_THREADS": "1"}
    root = Path(__file__).resolve().parents[2]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.distributed.worker"],
            cwd=root,
            env={**env, "RANK": str(r)},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for r in range(2)
    ]
    outputs = []
    for proc in procs:
        try:
            outputs.append(proc.communicate(timeout=120)[0])
        except subprocess.TimeoutExpired:
            for p in procs:
                p.kill()
            raise
    for proc, out in zip(procs, outputs):
        assert proc.returncode == 0, out[-3000:]


def test_single_process_is_the_plain_loss():
    g = torch.Generator().manual_seed(0)
    x, labels = torch.randn(12, 4, generator=g), torch.randint(0, 3, (12,), generator=g)
    torch.testing.assert_close(
        distributed_ranked_list_loss(x, labels, reduction="official"), ranked_list_loss(x, labels, reduction="official")
    )
    torch.testing.assert_close(DistributedRankedListLoss()(x, labels), ranked_list_loss(x, labels))
