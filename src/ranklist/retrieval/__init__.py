"""Retrieval: a faiss index of embeddings (flat, IVF, IVF-PQ) with its items and the fingerprint of
the model that embedded them, saved atomically; built from an embeddings file or from a model."""

from ranklist.retrieval.index import (
    KINDS,
    EmbeddingIndex,
    Items,
    add_to_index,
    build_index,
    next_ids,
    search,
    search_rows,
    stored_vectors,
)
from ranklist.retrieval.storage import is_index, load_index, save_index

__all__ = [
    "KINDS",
    "EmbeddingIndex",
    "Items",
    "add_to_index",
    "build_index",
    "is_index",
    "load_index",
    "next_ids",
    "save_index",
    "search",
    "search_rows",
    "stored_vectors",
]
