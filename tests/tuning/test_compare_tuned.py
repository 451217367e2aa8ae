"""`ranklist compare-tuned`: tuned recipes x seeds through the study machinery, then the statistics."""

import json

import numpy as np
import pytest

from ranklist.cli import main
from ranklist.evaluation.paired import paired_difference, t_interval
from ranklist.tuning.compare import per_query_values


def tuned_folder(recipe, space, out, *overrides: str):
    assert (
        main(
            [
                "tune",
                str(recipe),
                *overrides,
                "--space",
                str(space),
                "--out",
                str(out),
                "--trials",
                "1",
                "--folds",
                "2",
                "--no-progress",
            ]
        )
        == 0
    )
    return out


@pytest.mark.heavy
def test_tuned_recipes_are_compared_over_paired_seeds_and_queries(tiny_recipe, tmp_path, capsys):
    space = tmp_path / "lr.yaml"
    space.write_text("optim.lr: {type: float, low: 0.01, high: 0.1, log: true}\n")
    rll = tuned_folder(tiny_recipe, space, tmp_path / "tune" / "rll")
    contrastive = tuned_folder(
        tiny_recipe, space, tmp_path / "tune" / "contrastive", "loss.name=contrastive", "loss.preset=null"
    )
    out = tmp_path / "cmp" / "tuned"
    argv = [
        "compare-tuned",
        str(rll),
        str(contrastive),
        "--seeds",
        "0",
        "1",
        "--resamples",
        "200",
        "--out",
        str(out),
        "--no-progress",
    ]
    assert main(argv) == 0
    result = json.loads((out / "tuned.json").read_text())
    assert list(result["table"]) == ["rll", "contrastive"] and result["reference"] == "rll"
    runs = result["runs"]
    for name in ("rll", "contrastive"):
        values = [run["map@r"] for run in runs[name]]
        assert (
            result["table"][name]["map@r"]["low"] == pytest.approx(t_interval(values).low)
            and result["table"][name]["map@r"]["n"] == 2
        )
    theirs, ours = ({r["seed"]: r["recall@1"] for r in runs[n]} for n in ("contrastive", "rll"))
    assert result["differences"]["contrastive"]["recall@1"]["mean"] == pytest.approx(
        paired_difference(theirs, ours).mean
    )
    boot = result["bootstrap"]["differences"]["contrastive"]["map@r"]
    # the bootstrap's per-query values are the runs' own test scores, query by query
    seed0 = {n: tmp_path / "cmp" / next(r["run"] for r in runs[n] if r["seed"] == 0) for n in runs}
    per_query = {n: per_query_values(folder) for n, folder in seed0.items()}
    for name, folder in seed0.items():
        test = json.loads((folder / "summary.json").read_text())["test"]["concat"]
        assert float(np.mean(per_query[name]["map@r"])) == pytest.approx(test["map@r"], abs=1e-9)
        assert float(np.mean(per_query[name]["recall@1"])) == pytest.approx(test["recall@1"], abs=1e-9)
    assert boot["difference"] == pytest.approx(
        float(np.mean(per_query["contrastive"]["map@r"] - per_query["rll"]["map@r"]))
    )
    assert boot["low"] <= boot["difference"] <= boot["high"] and boot["queries"] == len(per_query["rll"]["map@r"])
    markdown = (out / "tuned.md").read_text()
    assert "| loss | MAP@R | R@1 | R-Prec |" in markdown and "## Paired difference to rll (seeds paired)" in markdown
    assert (out / "tuned.png").stat().st_size > 10_000
    lr = json.loads((rll / "tune.json").read_text())["best"]["params"]["optim.lr"]
    assert result["tuned_values"]["rll"] == {"optim.lr": {"tuned": lr, "untuned": 0.05}}
    assert f"| rll | `optim.lr` | {lr:.4g} | 0.05 |" in markdown
    stamp = (out / "rll-seed0" / "summary.json").stat().st_mtime_ns
    assert main(argv) == 0  # finished runs are reused
    assert (out / "rll-seed0" / "summary.json").stat().st_mtime_ns == stamp
    capsys.readouterr()
    assert main([*argv, "--reference", "triplet"]) == 2
    assert "--reference 'triplet' is not among the tuned losses ['rll', 'contrastive']" in capsys.readouterr().err
    assert main(["compare-tuned", str(tmp_path), "--out", str(out)]) == 2
    assert "holds no best.yaml" in capsys.readouterr().err


def synthetic_study(seeds=(0, 1, 2, 3, 4)):
    rng = np.random.default_rng(0)
    level = {"rll": 0.42, "multi_similarity": 0.41, "contrastive": 0.38}
    runs = {
        name: [
            {
                "seed": s,
                "run": f"tuned/{name}-seed{s}",
                "map@r": m + rng.normal(0, 0.005),
                "recall@1": m + 0.2 + rng.normal(0, 0.005),
                "r_precision": m + 0.05,
                "nmi": 0.8 + rng.normal(0, 0.01),
                "train_time_s": 60.0,
            }
            for s in seeds
        ]
        for name, m in level.items()
    }
    return {"runs": runs, "seeds": list(seeds), "wall_time_s": 1.0, "commit": "abc1234", "hardware": {}}


def test_the_statistics_table_and_plot_of_a_tuned_comparison(tmp_path):
    from dataclasses import asdict

    from ranklist.evaluation.paired import paired_bootstrap
    from ranklist.tuning.compare import tuned_statistics
    from ranklist.tuning.compare_report import plot_tuned, tuned_markdown

    study = synthetic_study()
    result = tuned_statistics(study, "rll")
    assert list(result["table"]) == ["rll", "multi_similarity", "contrastive"] and set(result["differences"]) == {
        "multi_similarity",
        "contrastive",
    }
    nmi = [r["nmi"] for r in study["runs"]["contrastive"]]
    assert result["table"]["contrastive"]["nmi"] == asdict(t_interval(nmi))
    ms = {r["seed"]: r["map@r"] for r in study["runs"]["multi_similarity"]}
    rll = {r["seed"]: r["map@r"] for r in study["runs"]["rll"]}
    assert result["differences"]["multi_similarity"]["map@r"] == asdict(paired_difference(ms, rll))
    queries = np.random.default_rng(1).random(300)
    result["bootstrap"] = {
        "seed": 0,
        "resamples": 100,
        "differences": {
            name: {
                m: asdict(paired_bootstrap(queries - shift, queries, resamples=100))
                for m in ("map@r", "recall@1", "r_precision")
            }
            for name, shift in (("multi_similarity", 0.01), ("contrastive", 0.04))
        },
    }
    markdown = tuned_markdown(result)
    assert "| loss | MAP@R | R@1 | R-Prec | NMI |" in markdown  # MAP@R first, then Recall@1, R-Precision, NMI
    assert "| **rll** |" in markdown and "| contrastive | -4.00 [" in markdown
    plot_tuned(result, tmp_path / "tuned.png")
    assert (tmp_path / "tuned.png").stat().st_size > 10_000
