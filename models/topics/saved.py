"""A saved BERTopic model read back without importing bertopic.

``import bertopic`` pulls in transformers, torch, umap, numba and its plotting (10 s on an idle 2-core machine,
23 s at a load of 15), and ``BERTopic.load`` then tries to build a sentence-transformers model as well. A
nightly topic update needs none of that: it assigns new docs to the nearest topic embedding and reads the top
terms, the vectorizer and the c-TF-IDF idf. ``SavedBERTopic`` reads exactly the files BERTopic's safetensors
serialisation wrote (``topics.json``, ``topic_embeddings.safetensors``, ``ctfidf.safetensors``,
``ctfidf_config.json``) into the same attributes ``BERTopic.load`` would set (same arrays, same CountVectorizer,
same idf diagonal), so every number computed from it is the number a loaded BERTopic gives.

What it does not do (fitting, ``transform``, adding a topic) goes through ``to_bertopic()``, which loads the
real model from the same folder. ``save`` copies the files it was read from: the model has not changed (a
changed model, after ``add_topic``, is a real BERTopic again).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

class IdfDiagonal:
    """The part of BERTopic's ``ClassTfidfTransformer`` a loaded model keeps: its idf diagonal and flags."""

    def __init__(self, idf: np.ndarray, reduce_frequent_words: bool, bm25_weighting: bool) -> None:
        import scipy.sparse as sp

        self._idf_diag = sp.diags(idf, offsets=0, shape=(len(idf), len(idf)), format="csr", dtype=np.float64)
        self.reduce_frequent_words = reduce_frequent_words
        self.bm25_weighting = bm25_weighting


class SavedBERTopic:
    """Read-only view of a BERTopic folder saved with ``serialization="safetensors", save_ctfidf=True``."""

    def __init__(self, folder: Path) -> None:
        from safetensors.numpy import load_file

        self.folder = Path(folder)
        topics = json.loads((self.folder / "topics.json").read_text(encoding="utf-8"))
        self.topic_embeddings_ = load_file(str(self.folder / "topic_embeddings.safetensors"))["topic_embeddings"]
        self.topic_representations_ = {int(k): v for k, v in topics["topic_representations"].items()}
        self.topic_sizes_ = {int(k): v for k, v in topics["topic_sizes"].items()}
        self.topics_ = topics["topics"]
        self.custom_labels_ = topics["custom_labels"]
        self.c_tf_idf_ = self.vectorizer_model = self.ctfidf_model = None
        if (self.folder / "ctfidf.safetensors").is_file():
            self._load_ctfidf()

    def _load_ctfidf(self) -> None:
        import scipy.sparse as sp
        from safetensors.numpy import load_file
        from sklearn.feature_extraction.text import CountVectorizer

        tensors = load_file(str(self.folder / "ctfidf.safetensors"))
        config = json.loads((self.folder / "ctfidf_config.json").read_text(encoding="utf-8"))
        self.c_tf_idf_ = sp.csr_matrix((tensors["data"], tensors["indices"], tensors["indptr"]),
                                       shape=tensors["shape"])
        params = dict(config["vectorizer_model"]["params"])
        params["ngram_range"] = tuple(params["ngram_range"])
        self.vectorizer_model = CountVectorizer(**params)
        self.vectorizer_model.vocabulary_ = config["vectorizer_model"]["vocab"]
        self.ctfidf_model = IdfDiagonal(tensors["diag"], config["ctfidf_model"]["reduce_frequent_words"],
                                        config["ctfidf_model"]["bm25_weighting"])

    @property
    def _outliers(self) -> int:  # BERTopic's rule: an outlier row first when topic -1 has a size
        return 1 if -1 in self.topic_sizes_ else 0

    @property
    def topic_labels_(self) -> dict[int, str]:
        return {key: f"{key}_" + "_".join(word[0] for word in values[:4])
                for key, values in self.topic_representations_.items()}

    def get_topics(self) -> dict[int, Any]:
        return self.topic_representations_

    def get_topic(self, topic: int) -> Any:
        return self.topic_representations_.get(topic, False)

    def to_bertopic(self) -> Any:
        """The real BERTopic model of the same folder (imports bertopic)."""
        from bertopic import BERTopic

        return BERTopic.load(str(self.folder))

    def save(self, path: str | Path, **_: Any) -> None:
        """The files this model was read from, copied to ``path`` (the model is unchanged since)."""
        target = Path(path)
        target.mkdir(parents=True, exist_ok=True)
        for source in sorted(self.folder.iterdir()):
            if source.is_file():
                shutil.copyfile(source, target / source.name)
