"""NMI of k-means clusters against the classes (docs/evaluation.md), with faiss k-means."""

from __future__ import annotations

import numpy as np
import torch


def normalized_mutual_information(clusters: np.ndarray, classes: np.ndarray) -> float:
    """NMI = 2 I(cluster; class) / (H(cluster) + H(class)), from the contingency table (nats)."""
    clusters, classes = np.asarray(clusters), np.asarray(classes)
    if clusters.shape != classes.shape or clusters.ndim != 1:
        raise ValueError(f"clusters {clusters.shape} and classes {classes.shape} must be equal 1-D shapes")
    _, cluster_ids = np.unique(clusters, return_inverse=True)
    _, class_ids = np.unique(classes, return_inverse=True)
    joint = np.zeros((cluster_ids.max() + 1, class_ids.max() + 1))
    np.add.at(joint, (cluster_ids, class_ids), 1.0)
    joint /= joint.sum()
    p_cluster, p_class = joint.sum(axis=1), joint.sum(axis=0)
    nz = joint > 0
    mutual = float((joint[nz] * np.log(joint[nz] / np.outer(p_cluster, p_class)[nz])).sum())
    entropy = float(-(p_cluster * np.log(p_cluster)).sum() - (p_class * np.log(p_class)).sum())
    if entropy == 0.0:  # one cluster and one class: identical partitions
        return 1.0
    return max(0.0, 2.0 * mutual / entropy)


def kmeans_assign(emb: np.ndarray, k: int, *, seed: int = 0, iterations: int = 20, restarts: int = 1) -> np.ndarray:
    """Cluster index of each row: faiss k-means (Lloyd) with k centroids, seeded."""
    import faiss

    data = np.ascontiguousarray(emb, dtype=np.float32)
    kmeans = faiss.Kmeans(
        data.shape[1], k, niter=iterations, nredo=restarts, seed=seed, verbose=False,
        max_points_per_centroid=max(256, data.shape[0] // k + 1),
        min_points_per_centroid=1,  # retrieval test sets have few items per class, by design
    )
    kmeans.train(data)
    _, assignment = kmeans.index.search(data, 1)
    return assignment[:, 0]


def nmi(emb: torch.Tensor, labels: torch.Tensor, *, seed: int = 0, restarts: int = 1) -> float:
    """NMI of k-means (k = number of classes) on the L2-normalised embeddings against the labels."""
    emb = torch.as_tensor(emb).detach()
    labels = torch.as_tensor(labels)
    if emb.dim() != 2 or emb.shape[0] == 0:
        raise ValueError(f"emb must be a non-empty 2-D array [N, D], got shape {tuple(emb.shape)}")
    if labels.dim() != 1 or labels.shape[0] != emb.shape[0]:
        raise ValueError(f"labels has shape {tuple(labels.shape)} but emb has {emb.shape[0]} rows")
    if not torch.isfinite(emb).all():
        raise ValueError("emb has non-finite values")
    data = torch.nn.functional.normalize(emb.float(), dim=1).cpu().numpy()
    classes = labels.cpu().numpy()
    k = len(np.unique(classes))
    if k == 1:
        return 1.0
    return normalized_mutual_information(kmeans_assign(data, k, seed=seed, restarts=restarts), classes)
