import json

import pytest

from ranklist.cli import main
from ranklist.training.study import ABLATIONS, PAPER_SOP_RECALL1, comparison_variants, study_markdown


@pytest.mark.heavy
def test_compare_writes_table_json_and_plot(tiny_recipe, tmp_path, capsys):
    out = tmp_path / "cmp"
    argv = [
        "compare",
        str(tiny_recipe),
        "train.iterations=2",
        "eval.nmi=false",
        "--losses",
        "rll",
        "contrastive",
        "--seeds",
        "0",
        "1",
        "--out",
        str(out),
        "--no-progress",
    ]
    assert main(argv) == 0
    result = json.loads((out / "study.json").read_text())
    assert set(result["table"]) == {"rll", "contrastive"} and result["table"]["rll"]["recall@1"]["n"] == 2
    assert (out / "study.png").stat().st_size > 1000
    assert "| rll |" in (out / "study.md").read_text() or "| **rll** |" in (out / "study.md").read_text()
    mtime = (out / "rll-seed0" / "summary.json").stat().st_mtime
    assert main(argv) == 0  # finished runs are reused, not retrained
    assert (out / "rll-seed0" / "summary.json").stat().st_mtime == mtime


def test_ablation_names_and_errors(tiny_recipe, tmp_path, capsys):
    assert set(ABLATIONS) == {
        "alpha",
        "margin",
        "temperature",
        "batch",
        "level",
        "gradient",
        "reduction",
        "reading",
        "memory",
        "backbone",
    }
    assert main(["ablate", str(tiny_recipe), "depth", "--out", str(tmp_path / "x")]) == 2
    assert "unknown ablation 'depth'" in capsys.readouterr().err
    assert main(["compare", str(tiny_recipe), "--losses", "arcface", "--out", str(tmp_path / "y")]) == 2
    assert "unknown losses ['arcface']" in capsys.readouterr().err


@pytest.mark.heavy
def test_ablation_titles_make_valid_run_names(tiny_recipe, tmp_path):
    argv = [
        "ablate",
        str(tiny_recipe),
        "memory",
        "train.iterations=1",
        "eval.nmi=false",
        "--out",
        str(tmp_path / "m"),
        "--no-progress",
    ]
    assert main(argv) == 0
    assert set(json.loads((tmp_path / "m" / "study.json").read_text())["table"]) == {"batch only", "memory 1024"}


@pytest.mark.heavy
def test_identical_runs_are_shared_between_studies_and_changed_ones_retrained(tiny_recipe, tmp_path):
    common = ["train.iterations=1", "eval.nmi=false", "--no-progress"]
    assert main(["ablate", str(tiny_recipe), "gradient", *common, "--out", str(tmp_path / "gradient")]) == 0
    query_run = tmp_path / "gradient" / "query-seed0"
    mtime = (query_run / "summary.json").stat().st_mtime
    # "reduction: mean" is the same configuration as "gradient: query": read, not trained again
    assert main(["ablate", str(tiny_recipe), "reduction", *common, "--out", str(tmp_path / "reduction")]) == 0
    result = json.loads((tmp_path / "reduction" / "study.json").read_text())
    assert result["runs"]["mean"][0]["run"] == "gradient/query-seed0"
    assert result["runs"]["official"][0]["run"] == "reduction/official-seed0"
    assert not (tmp_path / "reduction" / "mean-seed0").exists()
    assert (query_run / "summary.json").stat().st_mtime == mtime
    assert (
        result["table"]["mean"]["recall@1"]
        == json.loads((tmp_path / "gradient" / "study.json").read_text())["table"]["query"]["recall@1"]
    )
    assert result["hardware"]["cores"] >= 1 and "commit" in result
    # the same study again with another recipe value: its runs no longer match and are retrained
    assert (
        main(
            [
                "ablate",
                str(tiny_recipe),
                "gradient",
                "train.iterations=2",
                *common[1:],
                "--out",
                str(tmp_path / "gradient"),
            ]
        )
        == 0
    )
    assert json.loads((query_run / "summary.json").read_text())["iterations"] == 2


def test_tables_show_the_papers_numbers_beside_ours():
    run = {"recall@1": {"mean": 0.42, "std": 0.01, "n": 3}, "train_time_s": {"mean": 60.0, "std": 0.0, "n": 3}}
    result = {
        "title": "ablation: margin",
        "base": "demo.yaml",
        "overrides": [],
        "seeds": [0, 1, 2],
        "wall_time_s": 1.0,
        "commit": "abc1234",
        "paper_sop_recall@1": PAPER_SOP_RECALL1["margin"],
        "table": {"m=0.4": run, "m=0.3": run},
    }
    lines = study_markdown(result).splitlines()
    assert "| variant | R@1 | train s | paper: SOP R@1 |" in lines and "commit abc1234" in lines[2]
    assert "| **m=0.4** | 42.0 +- 1.0 | 60 | 79.8 |" in lines and "| m=0.3 | 42.0 +- 1.0 | 60 | - |" in lines
    for study, numbers in PAPER_SOP_RECALL1.items():  # every paper number names a real variant
        assert set(numbers) <= set(ABLATIONS.get(study) or comparison_variants(list(numbers)))


@pytest.mark.heavy
def test_the_pretrained_baseline_is_embedded_once_per_study(tiny_recipe, tmp_path, monkeypatch):
    from ranklist.training import Trainer, load_config, trainer

    calls = []

    class Counted(trainer.BackboneBaseline):
        def forward(self, images):
            calls.append(len(images))
            return super().forward(images)

    monkeypatch.setattr(trainer, "BackboneBaseline", Counted)
    pretrained = [
        "model.backbone=efficientnet_lite0",
        "model.pretrained=true",
        "data.image_size=32",
        "data.resize=36",
        "train.iterations=1",
        "eval.nmi=false",
    ]
    summaries = []
    for margin in (0.2, 0.4):
        config = load_config(tiny_recipe, [*pretrained, f"loss.params.margin={margin}"])
        summaries.append(
            Trainer(
                config, tmp_path / f"m{margin}", progress=False, log=lambda m: None, baseline_cache=tmp_path / "cache"
            ).run()
        )
    assert sum(calls) == 30 and summaries[0]["baseline"] == summaries[1]["baseline"]  # the 30 test images, once


def test_reading_ablation_crosses_both_gradients_with_both_weightings_and_adds_pmls_loss(tiny_recipe):
    from ranklist.losses import loss_params
    from ranklist.training.config import load_config

    resolved = {}
    for name, overrides in ABLATIONS["reading"].items():
        loss = load_config(tiny_recipe, ["loss.preset=default", *overrides]).loss
        resolved[name] = (loss.name, loss_params(loss.name, loss.preset, loss.params))
    readings = {(p["gradient"], p["weight_gradient"]) for n, p in resolved.values() if n == "rll"}
    assert readings == {("query", False), ("full", False), ("query", True), ("full", True)}
    # the default reading is the plain recipe's loss, so the gradient ablation's run is shared
    assert resolved["query"] == ("rll", loss_params("rll", "default"))
    pml_name, pml = resolved["pml_ranked_list"]
    assert pml_name == "pml_ranked_list" and (pml["margin"], pml["Tn"], pml["alpha"]) == (0.4, 10.0, 1.2)
