"""The paper's published results, and a run's results beside them with the gap.

Numbers: Wang et al., "Ranked List Loss for Deep Metric Learning", CVPR 2019: Table 1 (CARS196 and
CUB-200-2011: Recall@1/2/4/8 and NMI) and Table 2 (SOP: Recall@1/10/100 and NMI), the rows RLL-H
(the high-level embedding alone) and RLL-(L,M,H) (the three levels concatenated), in %. In-shop's
numbers are in the TPAMI 2021 version, which is not among this project's sources (only its
abstract is): a reproduction of In-shop prints ours alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class PaperResult:
    source: str
    rows: dict[str, dict[str, float]]  # row -> metric key (recall@K, nmi) -> %


_CVPR = "Wang et al., CVPR 2019"
PAPER_RESULTS: dict[str, PaperResult] = {
    "cub200": PaperResult(
        f"{_CVPR}, Table 1 (CUB-200-2011)",
        {
            "RLL-H": {"recall@1": 57.4, "recall@2": 69.7, "recall@4": 79.2, "recall@8": 86.9, "nmi": 63.6},
            "RLL-(L,M,H)": {"recall@1": 61.3, "recall@2": 72.7, "recall@4": 82.7, "recall@8": 89.4, "nmi": 66.1},
        },
    ),
    "cars196": PaperResult(
        f"{_CVPR}, Table 1 (CARS196)",
        {
            "RLL-H": {"recall@1": 74.0, "recall@2": 83.6, "recall@4": 90.1, "recall@8": 94.1, "nmi": 65.4},
            "RLL-(L,M,H)": {"recall@1": 82.1, "recall@2": 89.3, "recall@4": 93.7, "recall@8": 96.7, "nmi": 71.8},
        },
    ),
    "sop": PaperResult(
        f"{_CVPR}, Table 2 (SOP)",
        {
            "RLL-H": {"recall@1": 76.1, "recall@10": 89.1, "recall@100": 95.4, "nmi": 89.7},
            "RLL-(L,M,H)": {"recall@1": 79.8, "recall@10": 91.3, "recall@100": 96.3, "nmi": 90.4},
        },
    ),
}
# Which of a run's test views each row of the paper is.
ROW_VIEWS = {"RLL-H": "H", "RLL-(L,M,H)": "concat"}


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
        keys = list(published) + [k for k in ours if k.startswith("recall@") and k not in published]
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
            f"| {row['row']} (our view `{row['view']}`) | "
            + " | ".join(k.replace("recall@", "R@").upper() for k in keys)
            + " |",
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
