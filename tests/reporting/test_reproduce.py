"""`ranklist reproduce` end to end on fixture data: fetched from a local server, trained with tiny
settings, compared with the paper's table; and the table against the paper's text."""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
from pathlib import Path

import pytest

from ranklist.cli import main
from ranklist.data import benchmarks, sources
from ranklist.data.download import MIRROR_ENV
from ranklist.data.fetch import with_digest
from ranklist.data.sources import Digest
from ranklist.reporting.paper import PAPER_RESULTS, comparison, comparison_markdown
from tests.data.fetch_server import serving
from tests.data.fixtures import make_cub

# shared/ lies beside the repository (the developers' checkout and CI's clone alike)
PAPER_TEXT = Path(__file__).resolve().parents[3] / "shared" / "paper" / "rll_cvpr2019.txt"
TINY = [
    "data.image_size=64",
    "data.resize=72",
    "data.classes_per_batch=4",
    "data.samples_per_class=2",
    "data.num_workers=0",
    "train.iterations=2",
    "train.val_every=2",
    "train.checkpoint_every=2",
    "train.device=cpu",
    "train.threads=1",
    "eval.batch_size=64",
    "eval.grid_queries=2",
    "model.embedding_dim=8",
]


def _fixtures(tmp_path: Path) -> dict[str, bytes]:
    import torch

    from ranklist.models.bn_inception import BNInception

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        archive.add(make_cub(tmp_path / "src" / "CUB_200_2011", per_class=2), arcname="CUB_200_2011")
    weights = io.BytesIO()
    torch.save(BNInception().state_dict(), weights)
    return {"CUB_200_2011.tgz": buffer.getvalue(), "bn_inception-239d2248.pth": weights.getvalue()}


@pytest.mark.heavy
def test_reproduce_cub_end_to_end(tmp_path, monkeypatch, capsys):
    files = _fixtures(tmp_path)
    # Test hooks: the fixtures' checksums and counts (the real registry and count check are what run).
    fixture = with_digest(
        sources.SOURCES,
        "cub200",
        {"CUB_200_2011.tgz": Digest("sha256", hashlib.sha256(files["CUB_200_2011.tgz"]).hexdigest(), "fixture")},
    )
    fixture = with_digest(
        fixture,
        "bn_inception",
        {
            "bn_inception-239d2248.pth": Digest(
                "sha256", hashlib.sha256(files["bn_inception-239d2248.pth"]).hexdigest(), "fixture"
            )
        },
    )
    for name in ("cub200", "bn_inception"):
        monkeypatch.setitem(sources.SOURCES, name, fixture[name])
    monkeypatch.setitem(benchmarks.PUBLISHED, "cub200", {"trainval": (200, 100), "test": (200, 100)})
    out = tmp_path / "run"
    with serving(files) as server:
        monkeypatch.setenv(MIRROR_ENV, server.url)
        argv = [
            "reproduce",
            "cub200",
            *TINY,
            "--root",
            str(tmp_path / "data"),
            "--weights",
            str(tmp_path / "weights"),
            "--out",
            str(out),
            "--no-progress",
        ]
        assert main(argv) == 0
    printed = capsys.readouterr().out
    assert (
        "Wang et al., CVPR 2019, Table 1 (CUB-200-2011)" in printed
        and "| RLL-(L,M,H) (our view `concat`) | R@1 | R@2 | R@4 | R@8 | NMI |" in printed
    )
    assert "| paper | 61.3 | 72.7 | 82.7 | 89.4 | 66.1 |" in printed
    result = json.loads((out / "reproduction.json").read_text())
    summary = json.loads((out / "summary.json").read_text())
    r1 = result["rows"][1]["metrics"]["recall@1"]
    assert r1["ours"] == pytest.approx(100 * summary["test"]["concat"]["recall@1"]) and r1["gap"] == pytest.approx(
        r1["ours"] - 61.3, abs=0.01
    )
    assert summary["config"]["data"]["root"] == str(tmp_path / "data" / "CUB_200_2011")
    assert summary["config"]["model"]["weights"] == str(tmp_path / "weights" / "bn_inception-239d2248.pth")
    assert summary["config"]["model"]["backbone"] == "bn_inception" and summary["config"]["loss"]["name"] == "rll"
    assert (out / "reproduction.md").read_text().startswith("# Reproduction: cub200")
    assert (
        "before" in summary["pair_distances"]["wrong_side"]
    )  # the paper's picture, with the pretrained weights' baseline


def test_paper_table_matches_the_papers_text():
    """Every number of PAPER_RESULTS is in the paper's row, in order (Table 1: CARS196 then CUB)."""
    text = PAPER_TEXT.read_text() if PAPER_TEXT.is_file() else pytest.skip("the paper's text is not here")
    for row in ("RLL-H", "RLL-(L,M,H)"):
        lines = [line for line in text.splitlines() if line.startswith(row + "\t")]
        table1, table2 = ([float(x) for x in re.split(r"\s+", line.split("\t", 1)[1].strip())] for line in lines)
        expected_cars = list(PAPER_RESULTS["cars196"].rows[row].values())
        expected_cub = list(PAPER_RESULTS["cub200"].rows[row].values())
        assert table1 == expected_cars + expected_cub
        assert table2 == list(PAPER_RESULTS["sop"].rows[row].values())


def test_comparison_without_published_numbers_and_with_extra_ks():
    test = {"concat": {"recall@1": 0.5, "recall@10": 0.9, "nmi": 0.7}, "H": {"recall@1": 0.4, "nmi": float("nan")}}
    result = comparison("inshop", test)
    assert result["source"] is None and result["rows"][0]["metrics"]["recall@1"] == {
        "paper": None,
        "ours": 40.0,
        "gap": None,
    }
    assert "no published numbers" in comparison_markdown(result)
    sop = comparison(
        "sop", {"concat": {"recall@1": 0.8, "recall@10": 0.9, "recall@100": 0.95, "recall@1000": 0.99, "nmi": 0.9}}
    )
    metrics = sop["rows"][0]["metrics"]
    assert list(metrics) == ["recall@1", "recall@10", "recall@100", "nmi", "recall@1000"]
    assert metrics["recall@1"]["gap"] == pytest.approx(0.2) and metrics["recall@1000"]["paper"] is None
