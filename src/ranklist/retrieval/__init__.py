"""Serve retrieval: a faiss index of embeddings (flat, IVF, IVF-PQ), saved atomically."""

from ranklist.retrieval.index import KINDS, EmbeddingIndex, build_index, load_index, save_index, search

__all__ = ["KINDS", "EmbeddingIndex", "build_index", "load_index", "save_index", "search"]
