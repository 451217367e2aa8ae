"""`ranklist tune`: hyper-parameters chosen by class-disjoint cross-validation on the training
classes, with Optuna (docs/tuning.md). Needs the optional extra: pip install 'ranklist[tune]'.

    tune("configs/demo.yaml", ["train.iterations=100"], "configs/spaces/rll.yaml",
         trials=40, folds=4, out=Path("runs/tune/rll"))
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ranklist.errors import require
from ranklist.evaluation.metric_names import MAP_AT_R
from ranklist.tuning.objective import TuneSettings, check_folds, check_metric, check_space_against_recipe
from ranklist.tuning.space import load_space


def require_optuna() -> None:
    """Refuse to tune without Optuna, naming the extra to install."""
    require("optuna", "ranklist tune", extra="tune")


def tune(
    recipe: str | Path,
    overrides: list[str],
    space: str | Path,
    *,
    trials: int,
    folds: int,
    out: Path,
    storage: str | None = None,
    study: str | None = None,
    metric: str = MAP_AT_R,
    seed: int = 0,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> Path:
    """Run the study in `out` until it holds `trials` trials; write its reports; return tune.md's path."""
    require_optuna()
    from ranklist.tuning.report import write_records, write_report
    from ranklist.tuning.study import StudyLock, enqueue_recipe, open_study, redacted, run_trials, storage_url

    if trials < 1:
        raise ValueError(f"--trials must be >= 1, got {trials}")
    if folds < 2:
        raise ValueError(f"--folds must be >= 2, got {folds}")
    settings = TuneSettings(str(recipe), list(overrides), load_space(space), folds, check_metric(metric), seed, trials)
    check_space_against_recipe(settings)  # a bad key or too few classes fails here, before any file is written
    check_folds(settings)
    out.mkdir(parents=True, exist_ok=True)
    url = storage_url(out, storage)
    with quiet_optuna():
        lock = StudyLock(out / ".tune.lock")
        lock.take()  # two processes creating the tables of one new SQLite file at once collide
        try:
            optuna_study = open_study(settings, url, study or Path(space).stem)
            enqueue_recipe(optuna_study, settings, log)
        finally:
            lock.release()
        run_trials(
            optuna_study,
            settings,
            out,
            progress=progress,
            log=log,
            after_trial=lambda: write_records(optuna_study, settings, out, redacted(url)),
        )
        return write_report(optuna_study, settings, out, redacted(url))


@contextmanager
def quiet_optuna() -> Iterator[None]:
    """Optuna's own lines (a traceback per failed trial) and its experimental-feature warnings off:
    each trial gets one line of ours, and tune.json keeps every failure's reason."""
    import optuna

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            yield
    finally:
        optuna.logging.set_verbosity(verbosity)


__all__ = ["TuneSettings", "load_space", "tune"]
