"""Retrieval and clustering metrics (docs/evaluation.md) and the evaluator that embeds a split."""

from ranklist.evaluation.clustering import nmi, normalized_mutual_information
from ranklist.evaluation.evaluator import CONCAT, Evaluator, embed_dataset
from ranklist.evaluation.retrieval import retrieval_metrics, scan_gallery

__all__ = [
    "CONCAT",
    "Evaluator",
    "embed_dataset",
    "nmi",
    "normalized_mutual_information",
    "retrieval_metrics",
    "scan_gallery",
]
