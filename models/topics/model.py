"""BERTopic over precomputed embeddings, with configurable reduction, clustering and outlier handling.

``TopicModel`` follows the scikit-learn estimator contract: keyword parameters are stored as given (their
defaults are ``TopicModelParams``', edumine.models.topics.params; the clustering is a versioned registered
name, edumine.models.topics.clustering), ``fit(lemmas, embeddings)`` learns ``model_`` (the BERTopic
instance), ``center_`` (the corpus mean vector subtracted from every embedding: without it, static model2vec
vectors are so lopsided that BERTopic puts almost every post in one topic), ``n_clusters_`` (the k used),
``topics_``, ``core_``, ``catchall_`` (docs of the catch-all clusters that ``catchall_coverage`` sent to the
outliers; of the link-dump clusters and spam series that ``link_dump_share`` and ``link_series_min_posts``
sent there, those in ``link_dumps_``, edumine.models.topics.link_dumps; and of the topics that
``assigned_coverage`` found diluted after nearest assignment, those in ``diluted_``;
edumine.models.topics.catchall), ``catchall_centroids_`` (those clusters' unit centroids, for nightly updates)
and ``probabilities_``. ``random_state`` reaches every component. The vectorizer reads the
lemmas (stop words, punctuation and contraction fragments already out), so topic words are content words.

``save`` writes BERTopic's safetensors serialisation (topic embeddings, c-TF-IDF matrix and vocabulary)
plus ``edumine.safetensors`` (the centre vector, the catch-all centroids) and ``manifest.json`` (params as
given and as applied, config hash, corpus size, library versions); ``TopicModel.load(folder)`` reads it back
without importing bertopic (``SavedBERTopic``: a nightly update needs only the arrays) and ``transform``
assigns new documents to the nearest topic embedding, as BERTopic does for a model loaded from safetensors.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from edumine.models.topics.catchall import GivenClusters, drop_core_catchalls, drop_diluted_topics
from edumine.models.topics.clustering import (AUTO_CLUSTERS, K_CRITERIA, TrimmedGMM, TrimmedKMeans,  # noqa: F401
                                              auto_clusters, clustering_for, select_k_by_fit, select_k_by_npmi)
from edumine.models.topics.params import TopicModelParams, resolve_params
from edumine.progress import Progress, phase

log = logging.getLogger(__name__)

REDUCTIONS = ("umap", "pca", "none")
# "nearest": a doc outside every topic's core joins the topic whose embedding is nearest when the cosine is
# at least ``outlier_threshold``; topic words stay those of the cores. The others are BERTopic's
# ``reduce_outliers`` strategies, after which the topic words are recomputed from all assigned docs.
OUTLIER_STRATEGIES = ("none", "nearest", "embeddings", "c-tf-idf", "distributions")
_D = TopicModelParams()  # the defaults of every TopicModel keyword


BLOCK_ROWS = 65_536  # rows per block for per-doc arithmetic: temporaries stay ~64 MB at any corpus size


def normalise(vectors: np.ndarray, center: np.ndarray | None) -> np.ndarray:
    """Centred, unit-length float32 copy of ``vectors`` (one copy: a million 256-d docs are 1 GB each)."""
    out = np.array(vectors, dtype=np.float32)
    if center is not None:
        out -= center.astype(np.float32, copy=False)
    for start in range(0, len(out), BLOCK_ROWS):  # np.linalg.norm squares a full-size temporary
        block = out[start: start + BLOCK_ROWS]
        norms = np.linalg.norm(block, axis=1, keepdims=True)
        block /= np.where(norms == 0, 1, norms)
    return out


def _no_representative_docs(self: Any, documents: Any) -> None:
    self.representative_docs_ = {}


def _no_reduction(embeddings: np.ndarray, y: Any = None, partial_fit: bool = False) -> np.ndarray:
    return embeddings


def topic_matrix(model: Any) -> tuple[np.ndarray, np.ndarray]:
    """Unit-length embeddings of a fitted BERTopic model's real topics (the outlier row left out), and their ids."""
    ids = np.array(sorted(int(t) for t in model.get_topics() if t != -1), dtype=np.int64)
    offset = int(getattr(model, "_outliers", 0))
    matrix = np.asarray(model.topic_embeddings_, dtype=np.float32)[offset: offset + len(ids)]
    return matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12), ids


def nearest_topics(vectors: np.ndarray, matrix: np.ndarray, ids: np.ndarray, rows: np.ndarray | None = None,
                   block: int = 32_768, description: str = "topics: nearest topic") -> tuple[np.ndarray, np.ndarray]:
    """Nearest topic id and its cosine for unit-length ``vectors`` (only ``rows`` of them, if given), in
    blocks: a million docs by 500 topics at once would take 2 GB. Progress (docs/s) per block."""
    rows = np.arange(len(vectors)) if rows is None else np.asarray(rows)
    best = np.full(len(rows), -1, dtype=np.int64)
    score = np.zeros(len(rows), dtype=np.float32)
    with Progress(description, total=len(rows), logger=log) as progress:
        for start in range(0, len(rows) if len(ids) else 0, block):
            sims = vectors[rows[start: start + block]] @ matrix.T
            best[start: start + block] = ids[sims.argmax(axis=1)]
            score[start: start + block] = sims.max(axis=1)
            progress.advance(len(sims))
    return best, score


def assign_to_nearest(vectors: np.ndarray, topics: np.ndarray, matrix: np.ndarray, ids: np.ndarray,
                      threshold: float) -> np.ndarray:
    """Outliers (-1) join their nearest topic when its cosine is at least ``threshold``; the rest stay -1."""
    topics = np.asarray(topics).copy()
    rows = np.flatnonzero(topics == -1)
    best, score = nearest_topics(vectors, matrix, ids, rows)
    topics[rows] = np.where(score >= threshold, best, -1)
    return topics


class TopicModel:
    # Every default is TopicModelParams' (the params model the topic stage's config extends).
    def __init__(self, *, reduction: str = _D.reduction, n_components: int = _D.n_components,
                 umap_neighbors: int = _D.umap_neighbors, clustering: str = _D.clustering,
                 n_clusters: int | str | None = _D.n_clusters, kmeans_trim: float = _D.kmeans_trim,
                 min_cluster_size: int = _D.min_cluster_size, min_samples: int | None = _D.min_samples,
                 center: bool = _D.center, min_df: int = _D.min_df, max_df: float = _D.max_df,
                 ngram_max: int = _D.ngram_max, binary: bool = _D.binary, top_n_words: int = _D.top_n_words,
                 reduce_frequent_words: bool = _D.reduce_frequent_words, bm25_weighting: bool = _D.bm25_weighting,
                 catchall_coverage: float | None = _D.catchall_coverage,
                 assigned_coverage: float | None = _D.assigned_coverage,
                 link_dump_share: float | None = _D.link_dump_share,
                 link_series_min_posts: int | None = _D.link_series_min_posts, outliers: str = _D.outliers,
                 outlier_threshold: float | None = _D.outlier_threshold,
                 n_representative: int = _D.n_representative, random_state: int = _D.random_state) -> None:
        self.reduction = reduction
        self.n_components = n_components
        self.umap_neighbors = umap_neighbors
        self.clustering = clustering
        self.n_clusters = n_clusters
        self.kmeans_trim = kmeans_trim
        self.min_cluster_size = min_cluster_size
        self.min_samples = min_samples
        self.center = center
        self.min_df = min_df
        self.max_df = max_df
        self.ngram_max = ngram_max
        self.binary = binary
        self.top_n_words = top_n_words
        self.reduce_frequent_words = reduce_frequent_words
        self.bm25_weighting = bm25_weighting
        self.catchall_coverage = catchall_coverage
        self.assigned_coverage = assigned_coverage
        self.link_dump_share = link_dump_share
        self.link_series_min_posts = link_series_min_posts
        self.outliers = outliers
        self.outlier_threshold = outlier_threshold
        self.n_representative = n_representative
        self.random_state = random_state

    def get_params(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__init__.__kwdefaults__}  # type: ignore[union-attr]

    # -- building blocks ---------------------------------------------------------------------------
    def _reducer(self, n_docs: int) -> Any:
        if self.reduction == "umap":
            from umap import UMAP

            return UMAP(n_neighbors=min(self.umap_neighbors, max(2, n_docs - 1)), n_components=self.n_components,
                        min_dist=0.0, metric="cosine", random_state=self.random_state, low_memory=True)
        if self.reduction == "pca":
            from sklearn.decomposition import PCA

            # The covariance route is exact, deterministic and O(d^2) in memory: 1 M docs x 256 d is cheap.
            return PCA(n_components=min(self.n_components, n_docs - 1), random_state=self.random_state,
                       svd_solver="covariance_eigh")
        if self.reduction == "none":
            from bertopic.dimensionality import BaseDimensionalityReduction

            return BaseDimensionalityReduction()
        raise ValueError(f"unknown reduction {self.reduction!r}; use one of {', '.join(REDUCTIONS)}")

    def _clusterer(self, n_docs: int, k: int | None = None) -> Any:
        """The clusterer of the registered ``clustering``; ``k`` as chosen (``_choose_k``), else a number or
        ``auto`` in ``n_clusters``."""
        if k is None:
            n_clusters = resolve_params(self.get_params())["n_clusters"]
            k = auto_clusters(n_docs) if not isinstance(n_clusters, int) else n_clusters
        return clustering_for(self).build(n_docs, min(int(k), max(2, n_docs // 5)))

    def _choose_k(self, lemmas: list[str], embeddings: np.ndarray, vectors: np.ndarray, n_clusters: Any) -> int:
        """k for this fit: a number, ``auto`` (√n) or the k a criterion picks (edumine.models.topics.clustering)."""
        if isinstance(n_clusters, int):
            return n_clusters
        if n_clusters == "auto":
            return auto_clusters(len(lemmas))
        if n_clusters not in K_CRITERIA:
            raise ValueError(f"unknown n_clusters {n_clusters!r}; use a number, auto or one of {', '.join(K_CRITERIA)}")
        clustering = clustering_for(self)
        if n_clusters not in clustering.criteria:
            raise ValueError(f"n_clusters {n_clusters!r} does not apply to {self.clustering}; it takes "
                             f"{', '.join(clustering.criteria) or 'no criterion'}")
        with phase(f"topics: choosing k by {n_clusters}", len(lemmas), logger=log):
            if n_clusters == "npmi":
                k, self.k_scores_ = select_k_by_npmi(self, lemmas, embeddings)
            else:
                k, self.k_scores_ = select_k_by_fit(vectors, n_clusters,
                                                    lambda k: clustering.build(len(vectors), k), self.random_state)
        log.info("topics: k = %d by %s (%s)", k, n_clusters, self.k_scores_)
        return k

    def _vectorizer(self, n_docs: int) -> Any:
        from edumine.models.topics.vocabulary import TopicVocabulary

        # Lemmas are already lower-cased and filtered: split on whitespace only (JSON-serialisable params,
        # which BERTopic's safetensors save needs).
        min_df = self.min_df if n_docs >= 50 else 1
        return TopicVocabulary(token_pattern=r"\S+", lowercase=False, min_df=min_df,
                               max_df=self.max_df if n_docs >= 50 else 1.0, ngram_range=(1, self.ngram_max))

    def _documents(self, lemmas: list[str]) -> list[str]:
        """With ``binary``, each lemma once per document: BERTopic joins a topic's documents before counting,
        so this makes a topic's term frequency the number of its documents using the term, and one long post
        repeating a name cannot own a topic."""
        if not self.binary:
            return list(lemmas)
        return [" ".join(dict.fromkeys(text.split())) for text in lemmas]

    # -- fitting -------------------------------------------------------------------------------------
    def _bertopic(self, n_docs: int, reducer: Any, clusterer: Any) -> Any:
        from bertopic import BERTopic
        from bertopic.vectorizers import ClassTfidfTransformer

        model = BERTopic(embedding_model=None, umap_model=reducer, hdbscan_model=clusterer,
                         vectorizer_model=self._vectorizer(n_docs),
                         ctfidf_model=ClassTfidfTransformer(reduce_frequent_words=self.reduce_frequent_words,
                                                            bm25_weighting=self.bm25_weighting),
                         top_n_words=max(self.top_n_words, 25), calculate_probabilities=False, verbose=False)
        # BERTopic's representative documents would be lemma strings (and cost a c-TF-IDF pass per topic);
        # the topic stage picks readable ones from the clean text instead.
        model._save_representative_docs = _no_representative_docs.__get__(model)
        if self.reduction == "none" or isinstance(clusterer, GivenClusters):
            # BERTopic returns np.nan_to_num(reduced): a second copy of every vector, 1 GB at a million docs.
            # Ours are finite (centred and normalised above), and "none" reduces nothing.
            model._reduce_dimensionality = _no_reduction
        return model

    def fit(self, lemmas: list[str], embeddings: np.ndarray, *, ignored: np.ndarray | None = None,
            series_size: np.ndarray | None = None) -> TopicModel:
        """``ignored``, ``series_size``: per doc, a link post the community ignored, and the size of the spam
        series it is part of (0: none), from the posts table (edumine.models.topics.link_dumps); None: not
        known, and nothing is a link dump or a series."""
        if len(lemmas) != len(embeddings):
            raise ValueError(f"{len(lemmas)} documents but {len(embeddings)} embeddings")
        if len(lemmas) < 10:
            raise ValueError(f"too few usable documents to model topics ({len(lemmas)}; need at least 10)")
        if self.outliers not in OUTLIER_STRATEGIES:
            raise ValueError(f"unknown outlier strategy {self.outliers!r}; use one of {', '.join(OUTLIER_STRATEGIES)}")
        resolved = resolve_params(self.get_params())
        self.catchall_coverage_, self.assigned_coverage_ = resolved["catchall_coverage"], resolved["assigned_coverage"]
        self.outlier_threshold_, self.link_dump_share_ = resolved["outlier_threshold"], resolved["link_dump_share"]
        self.link_series_min_posts_ = resolved["link_series_min_posts"]
        ignored = np.zeros(len(lemmas), dtype=bool) if ignored is None else np.asarray(ignored, dtype=bool)
        series = (np.zeros(len(lemmas), dtype=bool) if series_size is None or not self.link_series_min_posts_
                  else np.asarray(series_size) >= self.link_series_min_posts_)
        self.center_ = embeddings.mean(axis=0).astype(np.float32) if self.center else None
        vectors = normalise(embeddings, self.center_)
        self.n_clusters_ = self._choose_k(lemmas, embeddings, vectors, resolved["n_clusters"])
        lemmas = self._documents(lemmas)
        n_docs = len(lemmas)
        clusterer = self._clusterer(n_docs, self.n_clusters_)
        model = self._bertopic(n_docs, self._reducer(n_docs), clusterer)
        with phase(f"topics: BERTopic fit ({self.reduction} reduction, {self.clustering})", n_docs, logger=log):
            topics, probabilities = model.fit_transform(lemmas, embeddings=vectors)
        # A mixture's soft assignment: a core doc's probability is its posterior for its component.
        posterior = clusterer.probabilities_ if isinstance(clusterer, TrimmedGMM) else None
        topics = np.asarray(topics)
        catchall = np.zeros(n_docs, dtype=bool)
        self.catchall_centroids_ = np.zeros((0, vectors.shape[1]), dtype=np.float32)
        self.link_dumps_ = np.zeros(n_docs, dtype=bool)  # docs the link-dump and series checks moved
        if self.catchall_coverage_ > 0 or (self.link_dump_share_ > 0 and ignored.any()) or series.any():
            with phase("topics: catch-all, link-dump and spam-series check", n_docs, logger=log):
                model, topics, catchall = drop_core_catchalls(self, model, lemmas, vectors, topics, ignored, series)
        core = topics != -1
        if self.outliers == "nearest":
            topics = assign_to_nearest(vectors, topics, *topic_matrix(model), self.outlier_threshold_)
            topics[catchall] = -1
        elif self.outliers != "none" and (topics == -1).any():
            with phase(f"topics: outliers by {self.outliers}", n_docs, logger=log):
                topics = np.asarray(model.reduce_outliers(lemmas, list(topics), strategy=self.outliers,
                                                          embeddings=vectors, threshold=self.outlier_threshold_))
                topics[catchall] = -1
                model.update_topics(lemmas, topics=list(topics), vectorizer_model=model.vectorizer_model,
                                    ctfidf_model=model.ctfidf_model, top_n_words=max(self.top_n_words, 25))
                self._refresh_topic_embeddings(model, vectors, topics)
            core = topics != -1
        self.diluted_ = np.zeros(n_docs, dtype=bool)  # docs the second check (assigned_coverage) moved
        if self.assigned_coverage_ > 0 and self.outliers in ("none", "nearest"):
            with phase("topics: catch-all check after assignment", n_docs, logger=log):
                model, topics, core, self.diluted_ = drop_diluted_topics(self, model, lemmas, vectors, topics,
                                                                         core, catchall)
            catchall = catchall | self.diluted_
        probabilities = None if catchall.any() else probabilities
        self.model_ = model
        self.topics_ = topics
        self.core_ = core
        self.catchall_ = catchall
        self.probabilities_ = self._probabilities(vectors, topics, probabilities)
        if posterior is not None:
            self.probabilities_ = np.where(core, posterior, self.probabilities_).astype(np.float32)
        self.n_docs_ = n_docs
        return self

    @staticmethod
    def _refresh_topic_embeddings(model: Any, vectors: np.ndarray, topics: np.ndarray) -> None:
        """Topic embeddings as the mean of their documents, after outliers were reassigned."""
        ids = sorted(set(int(t) for t in topics))
        model.topic_embeddings_ = np.vstack([vectors[topics == t].mean(axis=0) for t in ids])
        model._outliers = 1 if -1 in ids else 0

    def _probabilities(self, vectors: np.ndarray, topics: np.ndarray, given: Any) -> np.ndarray:
        """HDBSCAN's membership strength where it gives one; else the cosine to the topic's embedding."""
        if given is not None and np.ndim(given) == 1 and self.outliers == "none":
            return np.asarray(given, dtype=np.float32)
        return self._cosine_to_topic(vectors, topics)

    def _cosine_to_topic(self, vectors: np.ndarray, topics: np.ndarray) -> np.ndarray:
        # BERTopic keeps one embedding row per topic id in order, the outlier row (-1) first when present.
        embeddings = np.asarray(self.model_.topic_embeddings_, dtype=np.float32)
        rows = np.asarray(topics) + self.model_._outliers
        cosine = np.empty(len(vectors), dtype=np.float32)
        for start in range(0, len(vectors), BLOCK_ROWS):
            stop = start + BLOCK_ROWS
            centroid, block = embeddings[rows[start:stop]], vectors[start:stop]
            norms = np.linalg.norm(centroid, axis=1) * np.linalg.norm(block, axis=1)
            cosine[start:stop] = np.einsum("ij,ij->i", centroid, block) / np.where(norms == 0, 1, norms)
        return np.clip(cosine, 0, 1)

    def transform(self, lemmas: list[str], embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Topic and score of new documents: the nearest topic embedding (cosine), BERTopic's own rule."""
        vectors = normalise(embeddings, getattr(self, "center_", None))
        topics, _ = self.bertopic_model().transform(self._documents(lemmas), embeddings=vectors)
        topics = np.asarray(topics)
        return topics, self._cosine_to_topic(vectors, topics)

    # -- reading the model -----------------------------------------------------------------------------
    def bertopic_model(self) -> Any:
        """``model_`` as a BERTopic instance: a loaded model is read without bertopic (``SavedBERTopic``,
        edumine.models.topics.saved) until something needs BERTopic itself (transform, adding a topic)."""
        from edumine.models.topics.saved import SavedBERTopic

        if isinstance(self.model_, SavedBERTopic):
            self.model_ = self.model_.to_bertopic()
        return self.model_

    def topic_ids(self) -> list[int]:
        return sorted(int(t) for t in self.model_.get_topics())

    def top_terms(self, topic_id: int, n: int | None = None) -> list[tuple[str, float]]:
        terms = self.model_.get_topic(topic_id) or []
        return [(word, float(score)) for word, score in terms if word][: n or self.top_n_words]

    def label(self, topic_id: int) -> str:
        if topic_id == -1:
            return "outliers (no clear topic)"
        words = [word for word, _ in self.top_terms(topic_id, 4)]
        return ", ".join(words) if words else f"topic {topic_id}"

    # -- persistence -----------------------------------------------------------------------------------
    def save(self, folder: Path, manifest: dict[str, Any]) -> None:
        from safetensors.numpy import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.model_.save(str(folder / "bertopic"), serialization="safetensors", save_ctfidf=True,
                         save_embedding_model=False)
        tensors = {"topic_ids": np.array(self.topic_ids(), dtype=np.int64)}
        if self.center_ is not None:
            tensors["center"] = self.center_
        centroids = getattr(self, "catchall_centroids_", None)
        if centroids is not None and len(centroids):
            tensors["catchall_centroids"] = np.ascontiguousarray(centroids, dtype=np.float32)
        save_file(tensors, str(folder / "edumine.safetensors"))
        # The params as given (nulls: the clustering version's defaults) and as they applied.
        applied = {**resolve_params(self.get_params()), "n_clusters": getattr(self, "n_clusters_", None)}
        document = {"params": self.get_params(), "applied_params": applied, "n_docs": self.n_docs_, **manifest}
        (folder / "manifest.json").write_text(json.dumps(document, indent=2, default=str) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, folder: Path) -> TopicModel:
        """The saved model; its BERTopic part is read without importing bertopic (``bertopic_model()``
        loads the real one when needed)."""
        from safetensors.numpy import load_file

        from edumine.models.topics.saved import SavedBERTopic

        folder = Path(folder)
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        model = cls(**manifest["params"])
        model.model_ = SavedBERTopic(folder / "bertopic")
        extra = load_file(str(folder / "edumine.safetensors"))
        model.center_ = extra.get("center")
        model.catchall_centroids_ = extra.get("catchall_centroids")  # None: saved before issue 17 or none dropped
        model.n_docs_ = manifest["n_docs"]
        applied = manifest.get("applied_params") or resolve_params(manifest["params"])
        model.n_clusters_ = applied.get("n_clusters")
        model.catchall_coverage_, model.outlier_threshold_ = applied["catchall_coverage"], applied["outlier_threshold"]
        model.assigned_coverage_ = applied.get("assigned_coverage") or 0.0  # saved before topics.kmeans.v3: off
        model.link_dump_share_ = applied.get("link_dump_share") or 0.0  # saved before topics.kmeans.v4: off
        model.link_series_min_posts_ = applied.get("link_series_min_posts") or 0
        model.manifest_ = manifest
        return model
