"""Retrieval and clustering metrics (SPEC section 6) and the evaluator that embeds a split."""

from ranklist.evaluation.clustering import nmi, normalized_mutual_information
from ranklist.evaluation.evaluator import CONCAT, Evaluator, embed_dataset
from ranklist.evaluation.retrieval import nearest_neighbours, retrieval_metrics

__all__ = [
    "CONCAT", "Evaluator", "embed_dataset","nearest_neighbours", "nmi", "normalized_mutual_information", "retrieval_metrics"]
