"""The outlier pool of nightly topic updates: its table, and a topic found in it added to a fitted model
(``IncrementalTopicUpdate`` in ``models/topics/update.py`` clusters the pool)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


def pool_table(pool: pd.DataFrame) -> Any:
    """The outlier pool as the ``topic_outlier_pool`` table."""
    import pyarrow as pa

    return pa.table({"uid": pa.array(pool["uid"].tolist(), pa.string()),
                     "lemmas": pa.array(pool["lemmas"].tolist(), pa.string()),
                     "vector": pa.array([np.asarray(v, np.float32).tolist() for v in pool["vector"]],
                                        pa.list_(pa.float32()))})


def _pool_terms(model: Any, docs: list[str], top_n: int) -> list[tuple[str, float]]:
    """Top terms of a new topic by c-TF-IDF: its term frequencies times the model's idf (words the model
    has never seen, such as a new tool's name, get the highest idf)."""
    from sklearn.feature_extraction.text import CountVectorizer

    counts = CountVectorizer(token_pattern=r"\S+", lowercase=False).fit(docs)
    tf = np.asarray(counts.transform(docs).sum(axis=0)).ravel().astype(np.float64)
    vocabulary = counts.get_feature_names_out()
    idf = np.ones(len(vocabulary))
    bertopic = model.model_
    known = getattr(getattr(bertopic, "vectorizer_model", None), "vocabulary_", None)
    diag = getattr(getattr(bertopic, "ctfidf_model", None), "_idf_diag", None)
    if known and diag is not None:
        model_idf = np.asarray(diag.diagonal()).ravel()
        idf = np.array([model_idf[known[w]] if w in known else model_idf.max() for w in vocabulary])
    weight = tf / tf.sum() * idf
    order = np.argsort(-weight, kind="stable")[:top_n]
    return [(str(vocabulary[i]), float(weight[i])) for i in order]


def add_topic(model: Any, centroid: np.ndarray, docs: list[str], *, top_n: int = 25) -> int:
    """Add one topic to a fitted ``TopicModel``'s BERTopic model; returns its id. After this the model
    assigns documents by cosine to topic embeddings (BERTopic's rule without a clustering model)."""
    import scipy.sparse as sp
    from bertopic.cluster import BaseCluster
    from bertopic.dimensionality import BaseDimensionalityReduction

    bertopic = model.bertopic_model()  # a model read without bertopic becomes a BERTopic before it changes
    topic_id = max(int(t) for t in bertopic.get_topics()) + 1
    bertopic.topic_embeddings_ = np.vstack([np.asarray(bertopic.topic_embeddings_, np.float32),
                                            np.asarray(centroid, np.float32)[None, :]])
    terms = _pool_terms(model, docs, top_n)
    bertopic.topic_representations_[topic_id] = terms
    bertopic.topic_labels_[topic_id] = f"{topic_id}_" + "_".join(w for w, _ in terms[:4])
    bertopic.topic_sizes_[topic_id] = len(docs)
    if getattr(bertopic, "c_tf_idf_", None) is not None:
        row = bertopic.ctfidf_model.transform(bertopic.vectorizer_model.transform([" ".join(docs)]))
        bertopic.c_tf_idf_ = sp.vstack([sp.csr_matrix(bertopic.c_tf_idf_), sp.csr_matrix(row)]).tocsr()
    bertopic.umap_model = BaseDimensionalityReduction()
    bertopic.hdbscan_model = BaseCluster()
    return topic_id
