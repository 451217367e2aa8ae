"""What a person reads of a run: summary.md / summary.json and plots."""

from ranklist.reporting.figures import (
    plot_embedding_projection,
    plot_recall_at_k,
    plot_retrieval_grid,
    plot_training_curves,
)
from ranklist.reporting.run_report import write_run_report
from ranklist.reporting.summary import RunSummary, summary_markdown, write_run_summary

__all__ = [
    "plot_embedding_projection",
    "plot_recall_at_k",
    "plot_retrieval_grid",
    "plot_training_curves",
    "RunSummary",
    "summary_markdown",
    "write_run_report",
    "write_run_summary",
]
