"""The names of the metrics and embedding views, defined once for evaluation, reports and studies."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ranklist.models.embedding_model import LEVELS

CONCAT = "concat"  # the view of all levels concatenated, then L2-normalised
MAP_AT_R = "map@r"
R_PRECISION = "r_precision"
NMI = "nmi"
NUM_QUERIES = "num_queries"
EXCLUDED = "num_excluded_queries"
RECALL_PREFIX = "recall@"
DEFAULT_KS = (1, 2, 4, 8)  # the Recall@K reported by default (the CUB-200 and CARS196 tables' K)
VIEW_ORDER = (*LEVELS, CONCAT)
_DISPLAY = {MAP_AT_R: "MAP@R", R_PRECISION: "R-Prec", NMI: "NMI"}


def recall_key(k: int) -> str:
    """The key of Recall@k: 4 -> "recall@4"."""
    return f"{RECALL_PREFIX}{k}"


RECALL_AT_1 = recall_key(1)  # the headline metric
VALIDATION_PREFIX = "val/"  # metrics.jsonl's keys of a validation pass: "val/recall@1", ...


def validation_key(metric: str) -> str:
    """The metrics.jsonl key of a validation metric: "recall@1" -> "val/recall@1"."""
    return f"{VALIDATION_PREFIX}{metric}"


def validation_metrics(record: Mapping[str, float]) -> dict[str, float]:
    """The validation metrics of a metrics.jsonl record, without their prefix."""
    return {key[len(VALIDATION_PREFIX) :]: value for key, value in record.items() if key.startswith(VALIDATION_PREFIX)}


# What a validation split can score per query (NMI scores a clustering): what tuning may maximise.
QUERY_METRICS = (MAP_AT_R, RECALL_AT_1, R_PRECISION)


def recall_ks(keys: Iterable[str]) -> list[int]:
    """The K of every Recall@K among `keys`, ascending."""
    return sorted({int(key[len(RECALL_PREFIX) :]) for key in keys if key.startswith(RECALL_PREFIX)})


def score_columns(rows: Iterable[Mapping[str, object]]) -> list[str]:
    """The metric keys present in any row, in display order: Recall@K ascending, MAP@R, R-Precision, NMI."""
    rows = list(rows)
    present = {key for row in rows for key in row}
    return [recall_key(k) for k in recall_ks(present)] + [key for key in (MAP_AT_R, R_PRECISION, NMI) if key in present]


def display_name(key: str) -> str:
    """ "recall@4" -> "R@4", "map@r" -> "MAP@R", ..."""
    if key.startswith(RECALL_PREFIX):
        return f"R@{key[len(RECALL_PREFIX) :]}"
    return _DISPLAY.get(key, key)


def headline_view(results: Mapping[str, object]) -> str:
    """The view reports lead with: the concatenation when there is one, else the only level."""
    return CONCAT if CONCAT in results else next(iter(results))
