"""MiniLM fine-tuned on CPU for the themes: the top transformer layer(s) and a multi-label head, trained
end to end (BCE, class-balanced) on frozen, cached states of the lower layers.

Why only the top: on the 2 shared cores a forward + backward pass of the whole MiniLM runs at 1.6-3 texts/s
(128 word pieces, load 11 to 5; ``benchmarks/themes_finetune.py --cost``), an epoch over the labels 12-25
minutes, and the decision layer needs 6 fits per evaluation. The lower ``6 - tuned_layers`` layers are run once per text
(inference only, bfloat16 autocast) and their token states kept on disk by text hash
(``<cache_dir>/minilm-lower-<digest>/chunk-*.npz``), so each further fit costs only the tuned layers.

- ``LowerStates``: the cache of frozen lower-layer token states (fp16) per text.
- ``TopClassifier``: the tuned layers (initialised from MiniLM's own) + masked mean pooling + a linear head.
- ``train_top`` / ``score_top``: seeded, deterministic training and scoring on those states.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

N_LAYERS = 6
DIMENSIONS = 384
CHUNK = 256
CACHE_VERSION = 1


def text_hash(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def load_bert(layers: slice | None = None) -> Any:
    """The local MiniLM (``transformers`` BertModel, eager attention), optionally keeping only ``layers``."""
    import torch
    from transformers import AutoModel

    from edumine.models.embeddings.weights import minilm_path

    model = AutoModel.from_pretrained(str(minilm_path()), attn_implementation="eager").eval()
    if layers is not None:
        model.encoder.layer = torch.nn.ModuleList(list(model.encoder.layer)[layers])
    return model


class LowerStates:
    """Token states after MiniLM's first ``6 - tuned_layers`` layers, per text, cached by text hash.

    Texts are cut to ``max_seq_length`` word pieces like ``embeddings.minilm_onnx.v1`` (head, or head +
    ``head_tail`` last pieces). Vectors are computed under bfloat16 autocast and stored as float16."""

    def __init__(self, cache_dir: str | Path | None, max_seq_length: int = 128, head_tail: int = 0,
                 tuned_layers: int = 1, batch_size: int = 16, threads: int | None = None) -> None:
        self.cache_dir = cache_dir
        self.max_seq_length = max_seq_length
        self.head_tail = head_tail
        self.tuned_layers = tuned_layers
        self.batch_size = batch_size
        self.threads = threads
        self._memory: dict[str, np.ndarray] = {}
        self._loaded = False
        self._model: Any = None

    @property
    def key(self) -> str:
        params = {"max_seq_length": self.max_seq_length, "head_tail": self.head_tail,
                  "lower_layers": N_LAYERS - self.tuned_layers, "version": CACHE_VERSION}
        return "minilm-lower-" + hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]

    @property
    def folder(self) -> Path | None:
        return None if self.cache_dir is None else Path(self.cache_dir) / self.key

    def token_ids(self, texts: list[str]) -> list[list[int]]:
        from edumine.models.embeddings.onnx import MiniLMOnnxEmbedder

        return MiniLMOnnxEmbedder(max_seq_length=self.max_seq_length, head_tail=self.head_tail).token_ids(texts)

    def _load_disk(self) -> None:
        self._loaded = True
        if self.folder is None or not self.folder.is_dir():
            return
        for file in sorted(self.folder.glob("chunk-*.npz")):
            try:
                with np.load(file, allow_pickle=False) as data:
                    offsets = np.concatenate([[0], np.cumsum(data["lengths"])])
                    flat = data["states"]
                    for i, key in enumerate(data["keys"]):
                        self._memory.setdefault(str(key), flat[offsets[i]:offsets[i + 1]])
            except (OSError, ValueError, KeyError) as exc:
                log.warning("ignoring an unreadable state cache %s (%s); it will be rebuilt", file, exc)

    def _save_chunk(self, keys: list[str], states: list[np.ndarray]) -> None:
        if self.folder is None:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha1("".join(keys).encode()).hexdigest()[:10]
        tmp = self.folder / f".tmp-{uuid.uuid4().hex}.npz"
        np.savez(tmp, keys=np.array(keys), lengths=np.array([len(s) for s in states]),
                 states=np.concatenate(states).astype(np.float16))
        os.replace(tmp, self.folder / f"chunk-{digest}.npz")

    def _lower_model(self) -> Any:
        if self._model is None:
            self._model = load_bert(slice(0, N_LAYERS - self.tuned_layers))
        return self._model

    def _encode(self, texts: list[str]) -> list[np.ndarray]:
        import torch

        model = self._lower_model()
        ids = self.token_ids(texts)
        order = np.argsort([len(x) for x in ids], kind="stable")
        out: list[np.ndarray] = [np.zeros((0, DIMENSIONS), np.float16)] * len(texts)
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            for start in range(0, len(order), self.batch_size):
                rows = order[start:start + self.batch_size]
                input_ids, mask = pad([ids[i] for i in rows])
                hidden = model(input_ids=torch.from_numpy(input_ids), attention_mask=torch.from_numpy(mask),
                               token_type_ids=torch.zeros_like(torch.from_numpy(input_ids))).last_hidden_state
                hidden = hidden.float().numpy()
                for r, i in enumerate(rows):
                    out[i] = hidden[r, :len(ids[i])].astype(np.float16)
        return out

    def states(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Token states (float16, (pieces, 384)) of each text, computing and caching the missing ones."""
        if not self._loaded:
            self._load_disk()
        hashes = [text_hash(t) for t in texts]
        todo = sorted({h: t for h, t in zip(hashes, texts) if h not in self._memory}.items())
        if todo:
            log.info("MiniLM lower layers over %d new text(s)", len(todo))
            with _threads(self.threads):
                for start in range(0, len(todo), CHUNK):  # saved as they go: a stopped run keeps its work
                    chunk = todo[start:start + CHUNK]
                    fresh = self._encode([t for _, t in chunk])
                    self._save_chunk([h for h, _ in chunk], fresh)
                    for (h, _), state in zip(chunk, fresh):
                        self._memory[h] = state
        return [self._memory[h] for h in hashes]


class _threads:
    """Run torch with ``n`` intra-op threads inside the block (restored after)."""

    def __init__(self, n: int | None) -> None:
        self.n = n

    def __enter__(self) -> None:
        import torch

        self.before = torch.get_num_threads()
        if self.n:
            torch.set_num_threads(self.n)

    def __exit__(self, *exc: object) -> None:
        import torch

        torch.set_num_threads(self.before)


def pad(sequences: Sequence[Sequence[int] | np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Right-padded int64 ids (or float32 states, for 2-d items) and their 0/1 mask."""
    width = max(len(s) for s in sequences)
    first = np.asarray(sequences[0])
    if first.ndim == 2:
        values = np.zeros((len(sequences), width, first.shape[1]), dtype=np.float32)
    else:
        values = np.zeros((len(sequences), width), dtype=np.int64)
    mask = np.zeros((len(sequences), width), dtype=np.int64)
    for r, s in enumerate(sequences):
        values[r, :len(s)] = s
        mask[r, :len(s)] = 1
    return values, mask


def top_module(tuned_layers: int, n_themes: int, dropout: float = 0.1) -> Any:
    """MiniLM's top ``tuned_layers`` layers (its own weights) + masked mean pooling + a linear head."""
    import torch

    class TopClassifier(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layers = load_bert(slice(N_LAYERS - tuned_layers, N_LAYERS)).encoder.layer
            self.dropout = torch.nn.Dropout(dropout)
            self.head = torch.nn.Linear(DIMENSIONS, n_themes)

        def pooled(self, hidden: Any, mask: Any) -> Any:
            additive = (1.0 - mask[:, None, None, :].to(hidden.dtype)) * torch.finfo(hidden.dtype).min
            for layer in self.layers:
                hidden = layer(hidden, attention_mask=additive)
                hidden = hidden[0] if isinstance(hidden, tuple) else hidden
            weights = mask[:, :, None].to(hidden.dtype)
            return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)

        def forward(self, hidden: Any, mask: Any) -> Any:
            return self.head(self.dropout(self.pooled(hidden, mask)))

    return TopClassifier()


def _batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Batches of similar length (little padding), in a seeded random order."""
    order = np.argsort(lengths + rng.random(len(lengths)) * 8, kind="stable")
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    rng.shuffle(batches)
    return batches


def train_top(states: list[np.ndarray], Y: np.ndarray, *, tuned_layers: int, epochs: int, lr: float,
              head_lr: float, batch_size: int, max_pos_weight: float, weights: np.ndarray | None = None,
              probe_steps: int = 0, seed: int = 0, threads: int | None = None) -> dict[str, Any]:
    """Train the top layers + head (BCE with pos_weight = negatives/positives per theme, capped), seeded;
    returns the module's state dict (CPU tensors). With ``probe_steps`` the head is first fitted alone on
    the frozen layers' pooled vectors (full batch, Adam; "linear probe, then fine-tune"): a random head
    would pull the tuned layer off its pretrained features in the first steps."""
    import torch

    Y = np.asarray(Y, dtype=np.float32)
    weights = np.ones(len(states), np.float32) if weights is None else np.asarray(weights, np.float32)
    with _threads(threads):
        torch.manual_seed(seed)
        model = top_module(tuned_layers, Y.shape[1])
        positives = Y.sum(axis=0)
        pos_weight = np.clip((len(Y) - positives) / np.maximum(positives, 1.0), 1.0, max_pos_weight)
        loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor(pos_weight, dtype=torch.float32),
                                             reduction="none")
        optimizer = torch.optim.AdamW([{"params": model.layers.parameters(), "lr": lr},
                                       {"params": model.head.parameters(), "lr": head_lr}], weight_decay=0.01)
        if probe_steps:
            _probe_head(model, states, Y, weights, loss_fn, probe_steps, head_lr)
        rng = np.random.default_rng(seed)
        lengths = np.array([len(s) for s in states])
        steps = epochs * int(np.ceil(len(states) / batch_size))
        warmup = max(1, steps // 10)
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: min((step + 1) / warmup, max(0.0, (steps - step) / max(1, steps - warmup))))
        model.train()
        for epoch in range(epochs):
            total = 0.0
            for rows in _batches(lengths, batch_size, rng):
                hidden, mask = pad([states[i] for i in rows])
                logits = model(torch.from_numpy(hidden), torch.from_numpy(mask))
                loss = loss_fn(logits, torch.from_numpy(Y[rows])).mean(dim=1)
                loss = (loss * torch.from_numpy(weights[rows])).sum() / float(weights[rows].sum())
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                schedule.step()
                total += float(loss.detach()) * len(rows)
            log.info("fine-tuning epoch %d/%d: loss %.4f", epoch + 1, epochs, total / len(states))
        return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _probe_head(model: Any, states: list[np.ndarray], Y: np.ndarray, weights: np.ndarray, loss_fn: Any,
                steps: int, lr: float) -> None:
    import torch

    model.eval()
    pooled = np.zeros((len(states), DIMENSIONS), np.float32)
    order = np.argsort([len(s) for s in states], kind="stable")
    with torch.inference_mode():
        for start in range(0, len(order), 32):
            rows = order[start:start + 32]
            hidden, mask = pad([states[i] for i in rows])
            pooled[rows] = model.pooled(torch.from_numpy(hidden), torch.from_numpy(mask)).numpy()
    X, target, w = torch.from_numpy(pooled), torch.from_numpy(Y), torch.from_numpy(weights)
    optimizer = torch.optim.Adam(model.head.parameters(), lr=max(lr, 1e-2))
    for _ in range(steps):
        loss = (loss_fn(model.head(X), target).mean(dim=1) * w).sum() / w.sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    log.info("linear probe: loss %.4f after %d steps", float(loss.detach()), steps)
    model.train()


def score_top(state_dict: dict[str, Any], states: list[np.ndarray], *, tuned_layers: int, n_themes: int,
              batch_size: int = 32, threads: int | None = None, pooled: bool = False) -> np.ndarray:
    """Sigmoid scores (or, with ``pooled``, the pooled 384-d vectors) of texts' lower states."""
    import torch

    if not states:
        return np.zeros((0, DIMENSIONS if pooled else n_themes), np.float32)
    with _threads(threads):
        model = top_module(tuned_layers, n_themes)
        model.load_state_dict(state_dict)
        model.eval()
        order = np.argsort([len(s) for s in states], kind="stable")
        out = np.zeros((len(states), DIMENSIONS if pooled else n_themes), np.float32)
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                rows = order[start:start + batch_size]
                hidden, mask = pad([states[i] for i in rows])
                h, m = torch.from_numpy(hidden), torch.from_numpy(mask)
                values = model.pooled(h, m) if pooled else torch.sigmoid(model(h, m))
                out[rows] = values.float().numpy()
        return out
