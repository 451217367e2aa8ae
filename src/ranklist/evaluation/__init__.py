"""Retrieval and clustering metrics (docs/evaluation.md) and the evaluator that embeds a split."""

from ranklist.evaluation.clustering import nmi, normalized_mutual_information
from ranklist.evaluation.evaluator import Embedded, Evaluator, embed_dataset
from ranklist.evaluation.metric_names import CONCAT
from ranklist.evaluation.retrieval import retrieval_metrics, scan_gallery

__all__ = [
    "CONCAT",
    "Embedded",
    "Evaluator",
    "embed_dataset",
    "nmi",
    "normalized_mutual_information",
    "retrieval_metrics",
    "scan_gallery",
]
