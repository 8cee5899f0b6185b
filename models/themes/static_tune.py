"""Fine-tuning a static (model2vec) embedding table and a multi-label head on CPU, deterministically.

The model is what ``StaticModel.encode`` computes, made trainable: the mean of a text's piece vectors,
unit length, then a linear layer per theme. Only rows of pieces the training texts contain can change; they
are the learned state (``rows`` + ``vectors``), with the head (``head_w``, ``head_b``). Training first fits
the head on the frozen vectors (a linear probe, full batch), then both (AdamW, class-balanced BCE with
``pos_weight = negatives / positives`` capped at ``max_pos_weight``, per-text weights). One torch thread and
a seeded shuffle: the same inputs give bit-identical weights.
"""

from __future__ import annotations

import numpy as np

PROBE_STEPS = 200


def _bags(pieces: list[list[int]], lookup: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flat local ids and offsets of texts (an empty text gets no pieces: a zero vector)."""
    lengths = np.array([len(p) for p in pieces], dtype=np.int64)
    flat = np.concatenate([np.asarray(p, dtype=np.int64) for p in pieces]) if lengths.sum() else np.zeros(0, np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    return lookup[flat], offsets


def _pool(torch, embedding, ids, offsets):  # noqa: ANN001,ANN202
    pooled = torch.nn.functional.embedding_bag(ids, embedding, offsets, mode="mean")
    return pooled / pooled.norm(dim=1, keepdim=True).clamp_min(1e-12)


def train_static(table: np.ndarray, pieces: list[list[int]], Y: np.ndarray, weights: np.ndarray, *, epochs: int,
                 lr: float, batch_size: int, max_pos_weight: float, seed: int) -> dict[str, np.ndarray]:
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(seed)
        rows = np.unique(np.concatenate([np.asarray(p, dtype=np.int64) for p in pieces if p] or [np.zeros(0, np.int64)]))
        lookup = np.zeros(len(table), dtype=np.int64)
        lookup[rows] = np.arange(len(rows))
        embedding = torch.nn.Parameter(torch.from_numpy(table[rows].copy()))
        n_themes = Y.shape[1]
        head = torch.nn.Linear(table.shape[1], n_themes)
        torch.nn.init.zeros_(head.weight)
        torch.nn.init.zeros_(head.bias)
        target = torch.from_numpy(np.asarray(Y, dtype=np.float32))
        sample = torch.from_numpy(np.asarray(weights, dtype=np.float32))
        positives = np.asarray(Y, dtype=np.float64).sum(axis=0)
        pos_weight = torch.from_numpy(np.minimum((len(Y) - positives) / np.maximum(positives, 1.0),
                                                 max_pos_weight).astype(np.float32))
        loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=pos_weight, reduction="none")

        def loss_of(logits, index):  # noqa: ANN001,ANN202
            per_text = loss_fn(logits, target[index]).mean(dim=1)
            return (per_text * sample[index]).sum() / sample[index].sum()

        ids_all, offsets_all = _bags(pieces, lookup)
        ids_t, offsets_t = torch.from_numpy(ids_all), torch.from_numpy(offsets_all)
        everything = torch.arange(len(pieces))
        with torch.no_grad():
            frozen = _pool(torch, embedding, ids_t, offsets_t)
        probe = torch.optim.AdamW(head.parameters(), lr=0.05, weight_decay=0.0)
        for _ in range(PROBE_STEPS):  # the head first, so that tuning starts from a sensible classifier
            probe.zero_grad()
            loss_of(head(frozen), everything).backward()
            probe.step()
        optimiser = torch.optim.AdamW([{"params": [embedding], "lr": lr, "weight_decay": 0.0},
                                       {"params": head.parameters(), "lr": lr, "weight_decay": 1e-4}])
        order_rng = np.random.RandomState(seed)
        for _ in range(epochs):
            order = order_rng.permutation(len(pieces))
            for start in range(0, len(order), batch_size):
                index = np.sort(order[start:start + batch_size])
                ids, offsets = _bags([pieces[i] for i in index], lookup)
                optimiser.zero_grad()
                pooled = _pool(torch, embedding, torch.from_numpy(ids), torch.from_numpy(offsets))
                loss_of(head(pooled), torch.from_numpy(index)).backward()
                optimiser.step()
        return {"rows": rows.astype(np.int32), "vectors": embedding.detach().numpy().copy(),
                "head_w": head.weight.detach().numpy().copy(), "head_b": head.bias.detach().numpy().copy()}
    finally:
        torch.set_num_threads(threads)


def score_static(table: np.ndarray, tuned: dict[str, np.ndarray], pieces: list[list[int]]) -> np.ndarray:
    """Probabilities (texts, themes) of the tuned model; pieces it never saw keep their static vectors."""
    full = np.array(table, dtype=np.float32, copy=True)
    full[tuned["rows"]] = tuned["vectors"]
    pooled = np.zeros((len(pieces), full.shape[1]), dtype=np.float32)
    for i, p in enumerate(pieces):
        if p:
            pooled[i] = full[p].mean(axis=0)
    pooled /= np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
    logits = pooled @ tuned["head_w"].T + tuned["head_b"]
    return 1.0 / (1.0 + np.exp(-logits))
