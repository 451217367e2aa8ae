"""The paper's published results, and a run's results beside them with the gap.

Numbers: Wang et al., "Ranked List Loss for Deep Metric Learning", CVPR 2019: Table 1 (CARS196 and
CUB-200-2011: Recall@1/2/4/8 and NMI) and Table 2 (SOP: Recall@1/10/100 and NMI), the rows RLL-H
(the high-level embedding alone) and RLL-(L,M,H) (the three levels concatenated), in %. In-shop's
numbers are in the TPAMI 2021 version, which is not among this project's sources (only its
abstract is): a reproduction of In-shop prints ours alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ranklist.evaluation.metric_names import CONCAT, NMI, RECALL_PREFIX, display_name, recall_key


@dataclass(frozen=True)
class PaperResult:
    """A paper's published results for one dataset: its source and rows of metrics in %."""

    source: str
    rows: dict[str, dict[str, float]]  # row -> metric key (recall@K, nmi) -> %


def _published(ks: Sequence[int], recalls: Sequence[float], nmi: float) -> dict[str, float]:
    """One row of a paper table: Recall@K for each K, then NMI, in %."""
    return {**{recall_key(k): value for k, value in zip(ks, recalls, strict=True)}, NMI: nmi}


_CVPR = "Wang et al., CVPR 2019"
PAPER_RESULTS: dict[str, PaperResult] = {
    "cub200": PaperResult(
        f"{_CVPR}, Table 1 (CUB-200-2011)",
        {
            "RLL-H": _published((1, 2, 4, 8), (57.4, 69.7, 79.2, 86.9), 63.6),
            "RLL-(L,M,H)": _published((1, 2, 4, 8), (61.3, 72.7, 82.7, 89.4), 66.1),
        },
    ),
    "cars196": PaperResult(
        f"{_CVPR}, Table 1 (CARS196)",
        {
            "RLL-H": _published((1, 2, 4, 8), (74.0, 83.6, 90.1, 94.1), 65.4),
            "RLL-(L,M,H)": _published((1, 2, 4, 8), (82.1, 89.3, 93.7, 96.7), 71.8),
        },
    ),
    "sop": PaperResult(
        f"{_CVPR}, Table 2 (SOP)",
        {
            "RLL-H": _published((1, 10, 100), (76.1, 89.1, 95.4), 89.7),
            "RLL-(L,M,H)": _published((1, 10, 100), (79.8, 91.3, 96.3), 90.4),
        },
    ),
}
# Which of a run's test views each row of the paper is.
ROW_VIEWS = {"RLL-H": "H", "RLL-(L,M,H)": CONCAT}


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def comparison(dataset: str, test: dict[str, dict[str, float]]) -> dict[str, Any]:
    """{"source", "rows": [{"row", "view", "metrics": {key: {"paper", "ours", "gap"}}}]}: ours in %,
    gap = ours - paper in points; metrics the run has but the paper lacks have paper None."""
    paper = PAPER_RESULTS.get(dataset)
    rows = []
    for row, view in ROW_VIEWS.items():
        ours = test.get(view)
        if ours is None:
            continue
        published = paper.rows[row] if paper else {}
        keys = list(published) + [k for k in ours if k.startswith(RECALL_PREFIX) and k not in published]
        metrics = {}
        for key in keys:
            value = ours.get(key)
            mine = None if value is None or value != value else 100 * value
            theirs = published.get(key)
            metrics[key] = {
                "paper": theirs,
                "ours": mine,
                "gap": None if mine is None or theirs is None else round(mine - theirs, 2),
            }
        rows.append({"row": row, "view": view, "metrics": metrics})
    return {"dataset": dataset, "source": paper.source if paper else None, "rows": rows}


def comparison_markdown(result: dict[str, Any]) -> str:
    """The comparison as a table: one line per row of the paper, each metric as `ours (paper, gap)`."""
    source = result["source"] or "no published numbers among this project's sources (In-shop: the TPAMI 2021 paper)"
    lines = [f"Test metrics (%) beside {source}; gap = ours - paper, in points.", ""]
    for row in result["rows"]:
        keys = list(row["metrics"])
        lines += [
            f"| {row['row']} (our view `{row['view']}`) | " + " | ".join(display_name(k) for k in keys) + " |",
            "|---|" + "---|" * len(keys),
        ]
        for label, field in (("paper", "paper"), ("ours", "ours"), ("gap", "gap")):
            cells = [
                (f"{m[field]:+.1f}" if field == "gap" and m[field] is not None else _cell(m[field]))
                for m in row["metrics"].values()
            ]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)
