"""The study: Optuna storage (SQLite in DIR by default, any database URL), a seeded TPE sampler, a
median pruner between folds, and the loop that runs trials until the study holds its target.

A killed `ranklist tune` continues when re-run: finished trials stay in the storage. A trial that
was running when its process died is failed and queued again with the same values: at once when
that process ran on this machine (its pid is gone), or after GRACE_S without a heartbeat from
another machine. `--trials N` is the study's total: processes sharing a storage stop together
when N trials are finished or running. On one machine, a file lock in DIR makes "count, then start
a trial" atomic; across machines two processes may overshoot N by one.
"""

from __future__ import annotations

import fcntl
import inspect
import json
import os
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path

from ranklist.evaluation.evaluator import show_progress
from ranklist.training.config import load_config
from ranklist.tuning.objective import FOLD_VALUES, INTERRUPTED, REASON, TuneSettings, objective, trial_failures
from ranklist.tuning.tuned_values import untuned_value

HEARTBEAT_S = 60  # a running trial writes a heartbeat this often ...
GRACE_S = 300  # ... and is failed and queued again this long after its last one
MAX_RETRY = 2  # an interrupted trial is queued again at most this often
OPEN_ATTEMPTS = 3  # opening a new shared database while another process creates its tables
PRUNER_STARTUP_TRIALS = 5  # no pruning before this many trials have finished
SETTINGS_ATTR = "ranklist_settings"
RECIPE_ATTR = "recipe"  # marks the trial that runs the recipe's own values
HOST, PID = "host", "pid"


def storage_url(out: Path, storage: str | None) -> str:
    """The study's storage URL: `storage`, or a SQLite file tune.db in `out`."""
    return storage or f"sqlite:///{(out / 'tune.db').resolve()}"


def redacted(url: str) -> str:
    """The URL without its password (tune.json is shared)."""
    scheme, sep, rest = url.partition("://")
    if "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    return f"{scheme}{sep}{credentials.split(':', 1)[0]}:***@{host}"


def open_study(settings: TuneSettings, url: str, name: str):
    """Create the study or load it; a study made with other settings is refused."""
    import optuna
    from optuna.storages import RDBStorage

    engine = (
        {"connect_args": {"timeout": 120}} if url.startswith("sqlite") else None
    )  # waits for another process's write
    # Optuna 4.9 renamed the stale-trial callback and its keyword; both spellings work until 6.
    keyword = (
        "heartbeat_stale_trial_callback"
        if "heartbeat_stale_trial_callback" in inspect.signature(RDBStorage).parameters
        else "failed_trial_callback"
    )
    for attempt in range(OPEN_ATTEMPTS):
        try:
            storage = RDBStorage(
                url,
                engine_kwargs=engine,
                heartbeat_interval=HEARTBEAT_S,
                grace_period=GRACE_S,
                **{keyword: retry_callback()(max_retry=MAX_RETRY)},
            )
            break
        except Exception as error:  # SQLAlchemy's errors for a bad URL, a missing driver, a refused connection
            if attempt + 1 == OPEN_ATTEMPTS or not _schema_race(error):
                raise ValueError(
                    f"--storage {redacted(url)!r} cannot be opened: {type(error).__name__}: "
                    f"{' '.join(str(error).split())[:300]}"
                ) from None
            time.sleep(1.0 + attempt)  # another machine is creating the same new database's tables
    pruner = optuna.pruners.MedianPruner(n_startup_trials=PRUNER_STARTUP_TRIALS, n_warmup_steps=0)
    study = optuna.create_study(
        storage=storage,
        study_name=name,
        direction="maximize",
        load_if_exists=True,
        sampler=sampler(settings.seed),
        pruner=pruner,
    )
    wanted = json.loads(json.dumps(settings.fingerprint()))
    recorded = study.user_attrs.get(SETTINGS_ATTR)
    if recorded is None:
        study.set_user_attr(SETTINGS_ATTR, wanted)
    elif recorded != wanted:
        differ = sorted(key for key in wanted if recorded.get(key) != wanted[key])
        raise ValueError(
            f"study {name!r} in {redacted(url)} was made with other settings ({', '.join(differ)} differ: "
            f"{', '.join(f'{k}={recorded.get(k)!r}' for k in differ)}); use another --out, --storage or --study"
        )
    return study


def enqueue_recipe(study, settings: TuneSettings, log: Callable[[str], None] = print) -> None:
    """A new study's first trial runs the recipe as given (its own value of each searched key), so the
    best found is never below the recipe on validation and the gain of tuning is measured; skipped,
    with a line saying why, when one of those values lies outside the space."""
    if study.get_trials(deepcopy=False):
        return
    config = load_config(settings.recipe, settings.overrides)
    values = {param.key: untuned_value(config, param.key) for param in settings.space.params}
    outside = [f"{p.key}={values[p.key]!r}" for p in settings.space.params if not p.contains(values[p.key])]
    if outside:
        log(f"no trial of the recipe as given: outside the space: {', '.join(outside)}")
        return
    study.enqueue_trial(values, user_attrs={RECIPE_ATTR: True})


def _schema_race(error: Exception) -> bool:
    """An error of two processes creating one database's tables at once (worth another try)."""
    text = str(error)
    return type(error).__name__ in ("IntegrityError", "OperationalError") and (
        "already exists" in text or "UNIQUE constraint" in text
    )


def sampler(seed: int):
    """TPE, seeded; the constant liar keeps processes sharing a study from proposing the same point."""
    import optuna

    return optuna.samplers.TPESampler(seed=seed, constant_liar=True)


def retry_callback():
    """The class that queues a failed trial's values again (Optuna >= 4.9 name, else the older one)."""
    from optuna import storages

    return getattr(storages, "RetryHeartbeatStaleTrialCallback", None) or storages.RetryFailedTrialCallback


def retried(trials) -> set[int]:
    """Numbers of the trials queued again (interrupted), whose new trial stands in for them."""
    return {number for number in map(retry_callback().retried_trial_number, trials) if number is not None}


def counted(trials, *, waiting: bool = True) -> int:
    """Trials towards the target: all but those failed by an interruption and queued again (and,
    with waiting=False, but those queued and not started yet)."""
    done = retried(trials)
    return sum(t.number not in done and (waiting or t.state.name != "WAITING") for t in trials)


def requeue(study, trial, reason: str) -> None:
    """Fail a trial its process left (killed or interrupted) and queue its values again."""
    from optuna.trial import TrialState

    storage = study._storage  # the study's own storage object (public methods only)
    if trial.state == TrialState.RUNNING:
        storage.set_trial_user_attr(trial._trial_id, REASON, reason)
        storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)
    retry_callback()(max_retry=MAX_RETRY)(study, storage.get_trial(trial._trial_id))


def recover_interrupted(study) -> None:
    """Trials RUNNING for a process of this machine that no longer exists: failed and queued again.
    Trials of other machines are failed by Optuna once their heartbeat is GRACE_S old."""
    from optuna.storages import fail_stale_trials
    from optuna.trial import TrialState

    fail_stale_trials(study)
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        attrs = trial.user_attrs
        if (
            attrs.get(HOST) == socket.gethostname()
            and attrs.get(PID) not in (None, os.getpid())
            and not _alive(attrs[PID])
        ):
            requeue(study, trial, f"{INTERRUPTED}: its process {attrs[PID]} on {attrs[HOST]} ended")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


class StudyLock:
    """An exclusive lock on DIR/.tune.lock (this machine's processes), released at most once per take."""

    def __init__(self, path: Path) -> None:
        self.path, self.handle = path, None

    def take(self) -> None:
        self.handle = open(self.path, "a")
        fcntl.flock(self.handle, fcntl.LOCK_EX)

    def release(self) -> None:
        if self.handle is not None:
            fcntl.flock(self.handle, fcntl.LOCK_UN)
            self.handle.close()
            self.handle = None


def run_trials(
    study,
    settings: TuneSettings,
    out: Path,
    *,
    progress: bool = True,
    after_trial: Callable[[], None] = lambda: None,
    log: Callable[[str], None] = print,
) -> None:
    """Run trials until the study counts settings.trials; `after_trial` runs after each of this process's."""
    from tqdm.auto import tqdm

    lock = StudyLock(out / ".tune.lock")
    bar = tqdm(total=settings.trials, desc="tune", disable=not show_progress(progress))
    _show(bar, study, settings)
    try:
        while (number := _next_trial(study, settings, out, lock)) is not None:
            after_trial()
            line = _show(bar, study, settings, number)
            bar.write(line, file=sys.stderr) if show_progress(progress) else log(line)
    finally:
        bar.close()


def _next_trial(study, settings: TuneSettings, out: Path, lock: StudyLock) -> int | None:
    """Start and finish one trial, unless the study has its count; the trial's number, or None."""
    lock.take()
    mine: list[int] = []
    try:
        recover_interrupted(study)
        trials = study.get_trials(deepcopy=False)
        if counted(trials, waiting=False) >= settings.trials:  # a queued trial is run first (Optuna pops it)
            return None
        study.sampler = sampler(
            settings.seed + len(trials)
        )  # each new trial its own seed: reproducible, and no two alike

        def started(trial) -> None:
            # A queued-again trial inherits its predecessor's attributes: this process owns it now.
            for key, value in ((HOST, socket.gethostname()), (PID, os.getpid()), (REASON, None), (FOLD_VALUES, [])):
                trial.set_user_attr(key, value)
            mine.append(trial.number)
            lock.release()

        try:
            study.optimize(objective(settings, out, started), n_trials=1, catch=trial_failures())
        except KeyboardInterrupt:  # Optuna failed the trial; its values go back in the queue
            _requeue_own_interrupted(study)
            raise
        if not mine:
            raise RuntimeError("Optuna finished a trial without running the objective")
        return mine[0]
    finally:
        lock.release()


def _requeue_own_interrupted(study) -> None:
    trials = study.get_trials(deepcopy=False)
    done = retried(trials)
    for trial in trials:
        attrs = trial.user_attrs
        if (
            (attrs.get(PID), attrs.get(HOST)) == (os.getpid(), socket.gethostname())
            and str(attrs.get(REASON, "")).startswith(INTERRUPTED)
            and trial.number not in done
        ):
            requeue(study, trial, attrs[REASON])


def _show(bar, study, settings: TuneSettings, number: int | None = None) -> str:
    """Update the bar (the study's count, the best so far); one line on trial `number`."""
    trials = study.get_trials(deepcopy=False)
    bar.n = min(counted(trials), settings.trials)
    complete = [t for t in trials if t.state.name == "COMPLETE" and t.value is not None]
    best = max(complete, key=lambda t: t.value, default=None)
    if best is not None:
        bar.set_postfix_str(f"best {settings.metric} {best.value:.4f}")
    bar.refresh()
    if number is None:
        return ""
    trial = next(t for t in trials if t.number == number)
    what = (
        f"{settings.metric} {trial.value:.4f}" if trial.state.name == "COMPLETE" else trial.user_attrs.get(REASON) or ""
    )
    total = f"{min(counted(trials), settings.trials)}/{settings.trials}"
    return f"trial {number} {trial.state.name.lower()}: {what} ({total}" + (
        f"; best {best.value:.4f} in trial {best.number})" if best else ")"
    )
