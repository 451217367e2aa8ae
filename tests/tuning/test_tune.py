"""End to end: `ranklist tune` on a tiny recipe (2 iterations a fold, about a second a trial)."""

import json
import os
import socket
import subprocess
import sys

import optuna
import pytest
import yaml

from ranklist.cli import main
from tests.tuning.conftest import csv_without_test_images, write_recipe


def tune(recipe, space, out, *extra: str) -> int:
    return main(["tune", str(recipe), "--space", str(space), "--out", str(out), "--no-progress", *extra])


@pytest.mark.heavy
def test_a_tiny_study_writes_its_records_a_trainable_best_recipe_and_plots(tiny_recipe, tiny_space, tmp_path):
    out = tmp_path / "study"
    assert tune(tiny_recipe, tiny_space, out, "--trials", "2", "--folds", "2") == 0
    result = json.loads((out / "tune.json").read_text())
    assert [t["state"] for t in result["trials"]] == ["COMPLETE", "COMPLETE"]
    recipe_trial = {"optim.lr": 0.05, "loss.params.margin": 0.4, "loss.params.gradient": "query"}
    assert result["trials"][0]["recipe"] and result["trials"][0]["params"] == recipe_trial  # the recipe as given
    assert not result["trials"][1]["recipe"] and "(the recipe)" in (out / "tune.md").read_text()
    for trial in result["trials"]:
        assert len(trial["fold_values"]) == 2 and trial["value"] == pytest.approx(sum(trial["fold_values"]) / 2)
        assert (
            set(trial["params"]) == {"optim.lr", "loss.params.margin", "loss.params.gradient"} and trial["seconds"] > 0
        )
        for fold in range(2):  # each fold an ordinary run folder, its checkpoints removed, its test never run
            summary = json.loads(
                (out / "trials" / f"{trial['number']:04d}" / f"fold{fold}" / "summary.json").read_text()
            )
            assert (
                summary["config"]["data"]["folds"] == 2
                and summary["config"]["data"]["fold"] == fold
                and summary["test"] == {}
            )
            assert summary["validation"]["map@r"] == trial["fold_values"][fold]
            assert not (out / "trials" / f"{trial['number']:04d}" / f"fold{fold}" / "checkpoints").exists()
    best = max(result["trials"], key=lambda t: t["value"])
    assert result["best"]["number"] == best["number"] and result["settings"]["metric"] == "map@r"
    assert (out / "history.png").stat().st_size > 5000 and (out / "importance.png").stat().st_size > 5000
    assert "![optimisation history](history.png)" in (out / "tune.md").read_text()
    recipe = yaml.safe_load((out / "best.yaml").read_text())
    assert (
        recipe["optim"]["lr"] == best["params"]["optim.lr"]
        and recipe["loss"]["params"]["gradient"] == best["params"]["loss.params.gradient"]
    )
    assert (
        recipe["data"]["folds"] == 0 and recipe["data"]["val_fraction"] == 0.2
    )  # all training classes, the recipe's own protocol
    assert main(["train", str(out / "best.yaml"), "--out", str(tmp_path / "best-run"), "--no-progress"]) == 0
    assert "recall@1" in json.loads((tmp_path / "best-run" / "summary.json").read_text())["test"]["concat"]


@pytest.mark.heavy
def test_a_rerun_continues_the_study_without_redoing_finished_trials(tiny_recipe, tiny_space, tmp_path):
    out = tmp_path / "study"
    assert tune(tiny_recipe, tiny_space, out, "--trials", "1", "--folds", "2") == 0
    first = out / "trials" / "0000" / "fold1" / "summary.json"
    stamp, value = first.stat().st_mtime_ns, json.loads((out / "tune.json").read_text())["trials"][0]["value"]
    assert tune(tiny_recipe, tiny_space, out, "--trials", "2", "--folds", "2") == 0
    trials = json.loads((out / "tune.json").read_text())["trials"]
    assert [t["number"] for t in trials] == [0, 1] and trials[0]["value"] == value
    assert first.stat().st_mtime_ns == stamp  # trial 0 was not trained again
    assert tune(tiny_recipe, tiny_space, out, "--trials", "2", "--folds", "2") == 0  # the target is met: nothing to do
    assert len(json.loads((out / "tune.json").read_text())["trials"]) == 2


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


@pytest.mark.heavy
def test_a_trial_left_running_by_a_dead_process_is_failed_and_run_again_with_its_values(
    tiny_recipe, tiny_space, tmp_path
):
    out = tmp_path / "study"
    assert tune(tiny_recipe, tiny_space, out, "--trials", "1", "--folds", "2") == 0
    study = optuna.load_study(study_name="space", storage=f"sqlite:///{out / 'tune.db'}")
    params = {"optim.lr": 0.02, "loss.params.margin": 0.5, "loss.params.gradient": "full"}
    distributions = study.trials[0].distributions
    # What a process killed in its trial leaves: a RUNNING trial owned by a pid that is gone.
    study.add_trial(
        optuna.create_trial(
            state=optuna.trial.TrialState.RUNNING,
            params=params,
            distributions=distributions,
            user_attrs={"host": socket.gethostname(), "pid": _dead_pid(), "fold_values": [0.5]},
        )
    )
    assert tune(tiny_recipe, tiny_space, out, "--trials", "2", "--folds", "2") == 0
    trials = json.loads((out / "tune.json").read_text())["trials"]
    assert [(t["number"], t["state"]) for t in trials] == [(0, "COMPLETE"), (1, "FAIL"), (2, "COMPLETE")]
    assert trials[1]["reason"].startswith("interrupted: its process") and trials[2]["retry_of"] == 1
    assert trials[2]["params"] == params and trials[2]["reason"] is None and len(trials[2]["fold_values"]) == 2


@pytest.mark.heavy
def test_a_failing_trial_is_recorded_with_its_reason_and_the_study_goes_on(tiny_recipe, tmp_path):
    space = tmp_path / "lr.yaml"
    space.write_text(
        "optim.lr: {type: categorical, choices: [1.0e+30, 0.01]}\n"
        "optim.momentum: {type: categorical, choices: [0.0, 0.5]}\n"
    )
    out = tmp_path / "study"
    assert tune(tiny_recipe, space, out, "--trials", "4", "--folds", "2") == 0
    trials = json.loads((out / "tune.json").read_text())["trials"]
    assert len(trials) == 4
    failed = [t for t in trials if t["state"] == "FAIL"]
    # the trainer stops a diverged run, the loss refuses non-finite embeddings, or the fold's loss check finds a NaN
    assert failed and all(
        t["params"]["optim.lr"] == 1e30 and any(word in t["reason"] for word in ("finite", "nan")) for t in failed
    )
    assert all(t["state"] == "COMPLETE" for t in trials if t["params"]["optim.lr"] == 0.01)


@pytest.mark.heavy
def test_tuning_never_needs_the_test_split(tmp_path):
    csv = csv_without_test_images(tmp_path / "images")
    recipe = write_recipe(tmp_path / "csv.yaml", f"name: csv, root: {csv}")
    space = tmp_path / "space.yaml"
    space.write_text("optim.lr: {type: float, low: 0.01, high: 0.1}\n")
    assert (
        main(["train", str(recipe), "--out", str(tmp_path / "run"), "--no-progress"]) == 2
    )  # training does test: its images are missing
    assert tune(recipe, space, tmp_path / "study", "--trials", "1", "--folds", "3") == 0
    assert json.loads((tmp_path / "study" / "tune.json").read_text())["trials"][0]["state"] == "COMPLETE"


@pytest.mark.heavy
def test_user_errors_are_one_line(tiny_recipe, tiny_space, tmp_path, capsys):
    out = tmp_path / "study"
    assert tune(tiny_recipe, tiny_space, out, "--trials", "1", "--folds", "2", "--metric", "nmi") == 2
    assert "--metric must be one of ['map@r', 'recall@1', 'r_precision']" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("loss.params.margn: {type: float, low: 0.1, high: 1.0}\n")
    assert tune(tiny_recipe, bad, out, "--trials", "1", "--folds", "2") == 2
    assert "loss.params.margn=0.1 is refused by the recipe" in capsys.readouterr().err
    assert tune(tiny_recipe, tiny_space, out, "--trials", "1", "--folds", "2") == 0
    assert (
        tune(tiny_recipe, tiny_space, out, "--trials", "1", "--folds", "2", "--metric", "recall@1") == 2
    )  # the study maximises map@r
    assert "was made with other settings (metric differ: metric='map@r')" in capsys.readouterr().err
    assert (
        tune(
            tiny_recipe,
            tiny_space,
            tmp_path / "db",
            "--trials",
            "1",
            "--folds",
            "2",
            "--storage",
            "postgresql://me:secret@nowhere/x",
        )
        == 2
    )
    assert (
        "--storage 'postgresql://me:***@nowhere/x' cannot be opened" in capsys.readouterr().err
    )  # no password in the message
    assert tune(tiny_recipe, tiny_space, tmp_path / "other", "--trials", "1", "--folds", "3") == 2  # 5 training classes
    assert "5 training classes cannot make 3 folds of at least 2 classes each" in capsys.readouterr().err
    assert not (tmp_path / "other").exists()


@pytest.mark.heavy
def test_two_processes_share_one_study(tiny_recipe, tiny_space, tmp_path):
    out = tmp_path / "study"
    command = [
        sys.executable,
        "-m",
        "ranklist",
        "tune",
        str(tiny_recipe),
        "--space",
        str(tiny_space),
        "--out",
        str(out),
        "--trials",
        "6",
        "--folds",
        "2",
        "--no-progress",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    processes = [
        subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)
    ]
    outputs = [p.communicate(timeout=300) for p in processes]
    assert [p.returncode for p in processes] == [0, 0], outputs
    study = optuna.load_study(study_name="space", storage=f"sqlite:///{out / 'tune.db'}")
    assert sorted(t.number for t in study.trials) == list(range(6))  # together exactly the target, none twice
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    assert {t.user_attrs["pid"] for t in study.trials} == {p.pid for p in processes}  # both worked on it
    assert sorted(path.name for path in (out / "trials").iterdir()) == [f"{n:04d}" for n in range(6)]


@pytest.mark.heavy
def test_a_trial_below_the_median_stops_after_its_first_fold(tiny_recipe, tiny_space, tmp_path, monkeypatch):
    import optuna.trial

    monkeypatch.setattr(
        optuna.trial.Trial, "should_prune", lambda self: self.number >= 1
    )  # what the median pruner decides
    out = tmp_path / "study"
    assert tune(tiny_recipe, tiny_space, out, "--trials", "2", "--folds", "2") == 0
    first, second = json.loads((out / "tune.json").read_text())["trials"]
    assert first["state"] == "COMPLETE" and len(first["fold_values"]) == 2
    assert (
        second["state"] == "PRUNED"
        and len(second["fold_values"]) == 1
        and second["reason"].startswith("pruned after fold 0: running mean")
    )
    assert not (out / "trials" / "0001" / "fold1").exists()  # the other folds never trained
    assert "| 1 | pruned |" in (out / "tune.md").read_text()


@pytest.mark.heavy
def test_a_killed_tune_continues_when_run_again(tiny_recipe, tiny_space, tmp_path):
    import signal
    import time

    out = tmp_path / "study"
    command = [
        sys.executable,
        "-m",
        "ranklist",
        "tune",
        str(tiny_recipe),
        "train.iterations=30",
        "--space",
        str(tiny_space),
        "--out",
        str(out),
        "--trials",
        "3",
        "--folds",
        "2",
        "--no-progress",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while not (out / "trials" / "0001" / "fold0" / "config.yaml").exists():  # trial 1 is training
        assert process.poll() is None and time.monotonic() < deadline, "the tune process ended before its second trial"
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    first = out / "trials" / "0000" / "fold1" / "summary.json"
    stamp = first.stat().st_mtime_ns
    assert subprocess.run(command, env=env, capture_output=True).returncode == 0
    trials = json.loads((out / "tune.json").read_text())["trials"]
    states = [(t["number"], t["state"]) for t in trials]
    assert states == [(0, "COMPLETE"), (1, "FAIL"), (2, "COMPLETE"), (3, "COMPLETE")], states
    assert trials[1]["reason"].startswith(f"interrupted: its process {process.pid}")
    assert (
        trials[2]["retry_of"] == 1 and trials[2]["params"] == trials[1]["params"]
    )  # the killed trial's values, run again
    assert first.stat().st_mtime_ns == stamp  # the finished trial was not run again


def test_the_progress_bar_counts_the_study_and_shows_the_best_so_far(tiny_space):
    import io

    from tqdm import tqdm

    from ranklist.tuning.objective import TuneSettings
    from ranklist.tuning.space import load_space
    from ranklist.tuning.study import _show

    study = optuna.create_study(direction="maximize")  # in memory
    distribution = {"optim.lr": optuna.distributions.FloatDistribution(1e-3, 1e-1, log=True)}
    for value in (0.31, 0.45):
        study.add_trial(optuna.create_trial(value=value, params={"optim.lr": 0.01}, distributions=distribution))
    study.add_trial(
        optuna.create_trial(
            state=optuna.trial.TrialState.FAIL,
            params={"optim.lr": 0.05},
            distributions=distribution,
            user_attrs={"reason": "ValueError: bad"},
        )
    )
    settings = TuneSettings("r.yaml", [], load_space(tiny_space), 2, trials=5)
    stream = io.StringIO()
    bar = tqdm(total=5, desc="tune", file=stream, disable=False)
    assert _show(bar, study, settings, 2) == "trial 2 fail: ValueError: bad (3/5; best 0.4500 in trial 1)"
    assert bar.n == 3 and "3/5" in stream.getvalue() and "best map@r 0.4500" in stream.getvalue()
