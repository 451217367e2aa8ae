"""Cross-batch memory for the Ranked List Loss (after Wang et al., "Cross-Batch Memory for
Embedding Learning", CVPR 2020).

A ring buffer keeps the most recent `size` embeddings (detached) and labels. After
`warmup_iterations` calls, each query's ranked list spans the current batch and the memory:
L = RLL(queries = batch, references = [batch; memory], each query excluding itself). Memory entries
are constants (they never receive gradient), which matches RLL's "query" gradient; with "full"
gradients only the current batch's references receive gradient. Unlike XBM, no separate batch-only
loss is added: the memory only lengthens each ranked list. The batch is enqueued after the loss.
"""

from __future__ import annotations

import torch

from ranklist.losses.ranked_list import RankedListLoss


class CrossBatchMemory(torch.nn.Module):
    """RLL over the batch and a queue of recent embeddings (cross-batch memory), after a warm-up."""

    def __init__(self, loss: RankedListLoss, size: int, warmup_iterations: int = 0) -> None:
        super().__init__()
        if size < 1 or warmup_iterations < 0:
            raise ValueError(
                f"need size >= 1 and warmup_iterations >= 0, got size={size}, warmup_iterations={warmup_iterations}"
            )
        self.loss, self.size, self.warmup_iterations = loss, int(size), int(warmup_iterations)
        self.register_buffer("embeddings", torch.empty(0))
        self.register_buffer("labels", torch.empty(0, dtype=torch.long))
        self.register_buffer("state", torch.zeros(3, dtype=torch.long))  # write position, filled, calls

    @property
    def filled(self) -> int:
        return int(self.state[1])

    def memory(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The stored embeddings and labels, oldest first."""
        position, filled = int(self.state[0]), self.filled
        if filled < self.size:
            return self.embeddings[:filled], self.labels[:filled]
        order = torch.arange(position, position + self.size, device=self.embeddings.device) % self.size
        return self.embeddings[order], self.labels[order]

    @torch.no_grad()
    def enqueue(self, embeddings: torch.Tensor, labels: torch.Tensor) -> None:
        embeddings, labels = embeddings.detach()[-self.size :], labels.detach().long()[-self.size :]
        if self.embeddings.numel() == 0:
            self.embeddings = embeddings.new_zeros(self.size, embeddings.shape[1])
            self.labels = labels.new_zeros(self.size)
        rows = (int(self.state[0]) + torch.arange(len(labels), device=labels.device)) % self.size
        self.embeddings[rows] = embeddings.to(self.embeddings.dtype)
        self.labels[rows] = labels
        self.state[0] = (int(self.state[0]) + len(labels)) % self.size
        self.state[1] = min(self.size, self.filled + len(labels))

    def _load_from_state_dict(
        self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
    ) -> None:
        # The buffers are allocated at the first enqueue, so a fresh module (a resumed run) holds
        # empty ones: take the saved memory's shape (its rows must be this memory's size).
        for name in ("embeddings", "labels"):
            saved, current = state_dict.get(prefix + name), getattr(self, name)
            if saved is None or saved.shape == current.shape:
                continue
            if saved.numel() and saved.shape[0] != self.size:
                error_msgs.append(
                    f"{prefix}{name} holds {saved.shape[0]} rows but this cross-batch memory has size {self.size}"
                )
                continue
            setattr(self, name, torch.empty(saved.shape, dtype=saved.dtype, device=current.device))
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        self.state[2] += 1
        if int(self.state[2]) > self.warmup_iterations and self.filled > 0:
            mem_emb, mem_labels = self.memory()
            refs = torch.cat([embeddings, mem_emb.to(embeddings.dtype)])
            ref_labels = torch.cat([labels.long(), mem_labels])
            self_index = torch.arange(len(labels), device=labels.device)
            value = self.loss(embeddings, labels, ref_emb=refs, ref_labels=ref_labels, self_index=self_index)
        else:
            value = self.loss(embeddings, labels)
        self.enqueue(embeddings, labels)
        return value
