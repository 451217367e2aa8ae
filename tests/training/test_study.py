import json

from ranklist.cli import main
from ranklist.training.study import ABLATIONS


def test_compare_writes_table_json_and_plot(tiny_recipe, tmp_path, capsys):
    out = tmp_path / "cmp"
    argv = ["compare", str(tiny_recipe), "train.iterations=2", "eval.nmi=false", "--losses", "rll", "contrastive",
            "--seeds", "0", "1", "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    result = json.loads((out / "study.json").read_text())
    assert set(result["table"]) == {"rll", "contrastive"} and result["table"]["rll"]["recall@1"]["n"] == 2
    assert (out / "study.png").stat().st_size > 1000
    assert "| rll |" in (out / "study.md").read_text() or "| **rll** |" in (out / "study.md").read_text()
    mtime = (out / "rll-seed0" / "summary.json").stat().st_mtime
    assert main(argv) == 0  # finished runs are reused, not retrained
    assert (out / "rll-seed0" / "summary.json").stat().st_mtime == mtime


def test_ablation_names_and_errors(tiny_recipe, tmp_path, capsys):
    assert set(ABLATIONS) == {"alpha", "margin", "temperature", "batch", "level", "gradient", "reduction", "memory"}
    assert main(["ablate", str(tiny_recipe), "depth", "--out", str(tmp_path / "x")]) == 2
    assert "unknown ablation 'depth'" in capsys.readouterr().err
    assert main(["compare", str(tiny_recipe), "--losses", "arcface", "--out", str(tmp_path / "y")]) == 2
    assert "unknown losses ['arcface']" in capsys.readouterr().err


def test_ablation_titles_make_valid_run_names(tiny_recipe, tmp_path):
    argv = ["ablate", str(tiny_recipe), "memory", "train.iterations=1", "eval.nmi=false", "--out", str(tmp_path / "m"), "--no-progress"]
    assert main(argv) == 0
    assert set(json.loads((tmp_path / "m" / "study.json").read_text())["table"]) == {"batch only", "memory 1024"}
