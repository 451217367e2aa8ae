"""The run folder: created, replaced or resumed without ever losing what a user relies on.

A folder is replaced (--overwrite) only when it is a run folder, and only once the new run has
been built and checked; a resumed run continues with its recorded configuration, and a changed
value is refused by name, except the few that only say how long or how often (RESUMABLE_KEYS),
which are recorded.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from ranklist.atomic import atomic_write_text

RUN_MARKERS = ("config.yaml", "summary.json", "metrics.jsonl", "checkpoints")
RESUMABLE_KEYS = (
    "train.iterations",
    "train.val_every",
    "train.log_every",
    "train.checkpoint_every",
    "train.threads",
    "data.num_workers",
    "eval.batch_size",
)
LAST = Path("checkpoints") / "last.pt"


class RunFolderError(ValueError):
    """The run folder cannot be used as asked (exists, is not a run folder, or has nothing to resume)."""


def is_run_folder(path: Path) -> bool:
    """Whether `path` is a folder a run wrote (it holds one of the run's marker files)."""
    return path.is_dir() and any((path / marker).exists() for marker in RUN_MARKERS)


def check_run_folder(out: Path, *, resume: bool, overwrite: bool, data_root: str | None) -> None:
    """Before any work: the folder can be used as asked (nothing is created or removed here)."""
    if out.exists() and not out.is_dir():
        raise RunFolderError(f"--out {out} is a file, not a run folder")
    if data_root is not None and out.resolve() in (Path(data_root).resolve(), *Path(data_root).resolve().parents):
        raise RunFolderError(f"--out {out} holds the dataset ({data_root}); choose another run folder")
    if resume:
        if not (out / LAST).is_file():
            raise RunFolderError(f"nothing to resume in {out}: no {LAST}")
        return
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise RunFolderError(
                f"run folder {out} already exists and is not empty "
                "(use --resume to continue it or --overwrite to replace it)"
            )
        if not is_run_folder(out):
            raise RunFolderError(
                f"--overwrite refuses to replace {out}: it is not a run folder (none of {', '.join(RUN_MARKERS)})"
            )


def start_run_folder(out: Path, *, overwrite: bool) -> None:
    """Create the folder, replacing an old run folder (already checked by check_run_folder)."""
    if overwrite and is_run_folder(out):
        shutil.rmtree(out)
    (out / "checkpoints").mkdir(parents=True, exist_ok=True)


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(tree, dict):
        return {prefix[:-1]: tree}
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        flat.update(
            _flatten(value, f"{prefix}{key}.") if isinstance(value, dict) and value else {f"{prefix}{key}": value}
        )
    return flat


def config_changes(recorded: dict[str, Any], given: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """{dotted key: (recorded, given)} for every value that differs (the run's name aside)."""
    old, new = _flatten(recorded), _flatten(given)
    return {
        key: (old.get(key), new.get(key))
        for key in sorted(set(old) | set(new))
        if key != "name" and old.get(key) != new.get(key)
    }


def check_resume_config(out: Path, given: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """The changes of a resumed run's configuration, refused unless all are RESUMABLE_KEYS."""
    recorded_path = out / "config.yaml"
    if not recorded_path.is_file():
        raise RunFolderError(f"cannot resume {out}: its config.yaml is missing")
    recorded = OmegaConf.to_container(OmegaConf.load(recorded_path))
    changes = config_changes(recorded, given)
    refused = {k: v for k, v in changes.items() if k not in RESUMABLE_KEYS}
    if refused:
        said = "; ".join(f"{k}: {old!r} recorded, {new!r} given" for k, (old, new) in refused.items())
        raise RunFolderError(
            f"cannot resume {out} with a changed configuration ({said}); resume with the recorded "
            f"values, or start a new run (only {', '.join(RESUMABLE_KEYS)} may change)"
        )
    return changes


def record_resume(out: Path, step: int, changes: dict[str, tuple[Any, Any]], config_yaml: str) -> None:
    """The allowed changes of a resume go into config.yaml (the configuration now in force) and resumes.jsonl."""
    if not changes:
        return
    atomic_write_text(out / "config.yaml", config_yaml)
    with open(out / "resumes.jsonl", "a") as handle:
        handle.write(json.dumps({"step": step, "changed": {k: list(v) for k, v in changes.items()}}) + "\n")
