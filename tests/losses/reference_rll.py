"""A slow, obvious float64 Ranked List Loss, written straight from docs/loss.md (a loop per query).

Weights are constants (Python floats), or with weight_gradient=True tensors that autograd
differentiates (pytorch-metric-learning's reading; the "official" query weights stay constants).
"query" gradient: the gallery side of each pair is detached.
Gradients come from autograd on this loop, so they check the kernel's closed form independently.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def reference_ranked_list_loss(
    emb,
    labels,
    *,
    margin=0.4,
    alpha=1.2,
    neg_temperature=10.0,
    pos_temperature=0.0,
    imbalance=0.5,
    reduction="mean",
    gradient="query",
    ref_emb=None,
    ref_labels=None,
    self_index=None,
    return_weight_sums=False,
    weight_gradient=False,
    column_eps=0.0,
):
    """column_eps: added to each weight sum once per reference column (pytorch-metric-learning
    adds 1e-5 per column); 0 is docs/loss.md."""
    f = F.normalize(emb.double(), dim=1)
    if ref_emb is None:
        r, ref_labels = f, labels
        self_index = list(range(len(f)))
    else:
        r = F.normalize(ref_emb.double(), dim=1)
        self_index = [-1] * len(f) if self_index is None else self_index.tolist()
    if alpha is None:
        neg_b, pos_b = 1 + margin / 2, 1 - margin / 2
    else:
        neg_b, pos_b = alpha, alpha - margin
    losses, sums = [], []
    for i in range(len(f)):
        pos_d, neg_d = [], []
        for j in range(len(r)):
            if j == self_index[i]:
                continue
            rj = r[j].detach() if gradient == "query" else r[j]
            d = torch.linalg.vector_norm(f[i] - rj)
            if int(labels[i]) == int(ref_labels[j]):
                if d.item() > pos_b:
                    pos_d.append(d)
            elif d.item() < neg_b:
                neg_d.append(d)
        if weight_gradient:
            w_pos = [torch.exp(pos_temperature * (d - pos_b)) for d in pos_d]
            w_neg = [torch.exp(neg_temperature * (neg_b - d)) for d in neg_d]
        else:
            w_pos = [math.exp(pos_temperature * (d.item() - pos_b)) for d in pos_d]
            w_neg = [math.exp(neg_temperature * (neg_b - d.item())) for d in neg_d]
        zero = f[i].sum() * 0
        pad = column_eps * len(r)
        loss_p = sum((w * (d - pos_b) for w, d in zip(w_pos, pos_d)), zero) / max(sum(w_pos) + pad, 1e-300)
        loss_n = sum((w * (neg_b - d) for w, d in zip(w_neg, neg_d)), zero) / max(sum(w_neg) + pad, 1e-300)
        losses.append((1 - imbalance) * loss_p + imbalance * loss_n)
        sums.append(sum(float(torch.as_tensor(w).detach()) for w in w_pos + w_neg))
    losses = torch.stack(losses)
    sums = torch.tensor(sums, dtype=torch.float64)
    if reduction == "mean":
        out = losses.mean()
    elif reduction == "sum":
        out = losses.sum()
    elif reduction == "official":
        out = (sums / sums.sum() * losses).sum() if sums.sum() > 0 else losses.sum() * 0
    else:
        out = losses
    return (out, sums) if return_weight_sums else out
