"""Clusterings of the topic model, chosen in config by a versioned registered name (``topics.clustering``).

A behaviour change ships under a new name, so an old config keeps reproducing its topics:

| name | what | defaults: k, catch-alls (core, assigned), link dumps, series, threshold |
|---|---|---|
| ``topics.kmeans.v1`` | trimmed k-means (issue 7); catch-alls kept | √n, 0, 0, 0, 0, 0.35 |
| ``topics.kmeans.v2`` | the same clusters; catch-all clusters to the outliers (issue 17) | √n, 0.3, 0, 0, 0, 0.25 |
| ``topics.kmeans.v3`` | v2, and topics diluted by nearest assignment to the outliers too (issue 17) | √n, 0.3, 0.2, 0, 0, 0.25 |
| ``topics.kmeans.v4`` | v3, and link dumps and spam series to the outliers too (issue 17) | √n, 0.3, 0.2, 0.5, 5, 0.25 |
| ``topics.hdbscan.v1`` | HDBSCAN (the ``hdbscan`` library), BERTopic's own clusterer | -, 0, 0, 0, 0, 0.35 |
| ``topics.gmm.v1`` | Gaussian mixture; soft assignments (a doc's probability: its posterior) | √n, 0.3, 0, 0, 0, 0.25 |

The bare names of configs and saved models written before the registry, ``kmeans`` and ``hdbscan``, are
registered too, as ``topics.kmeans.v1`` and ``topics.hdbscan.v1``: what they produced when they were written.

The version defaults are for the knobs whose defaults changed with a version (``n_clusters``,
``catchall_coverage``, ``assigned_coverage``, ``link_dump_share``, ``link_series_min_posts``,
``outlier_threshold``): the params model leaves them null, meaning "the clustering's default", and
``resolve_params`` fills them in; a value set in config always wins.

``n_clusters`` is a number, ``auto`` (the square root of the number of docs, 10 to 500) or a criterion that
picks k from a small grid around √n (``K_GRID``): ``silhouette`` (cosine silhouette of the clusters on a
sample, k-means and GMM), ``bic`` (the mixture's Bayesian information criterion, GMM only) or ``npmi``
(``select_k_by_npmi``: the whole topic model fitted on 80 % of a sample, each k's topic words scored by NPMI on
the other 20 %; the best k among those whose diversity reaches ``MIN_DIVERSITY`` and whose outlier share on
the 80 % stays within ``MAX_OUTLIERS``: NPMI alone favours a few broad topics, whose catch-alls then take
most docs to the outliers).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from edumine.progress import phase
from edumine.registry import topic_clusterings

log = logging.getLogger(__name__)

AUTO_CLUSTERS = (10, 500)  # the range of n_clusters="auto" (the square root of the number of docs)
K_CRITERIA = ("silhouette", "bic", "npmi")
K_GRID = (0.5, 0.7, 1.0, 1.4, 2.0)  # candidate k as multiples of √n
SELECTION_SAMPLE = 20_000  # docs a criterion looks at (k then scales with √n to the whole corpus)
MIN_DIVERSITY = 0.65  # the npmi criterion's floor on topic diversity (issue 17's target)
MAX_OUTLIERS = 0.30  # and its ceiling on the outlier share (the same target)
BLOCK_ROWS = 65_536


def auto_clusters(n_docs: int) -> int:
    """k for ``n_clusters="auto"``: about the square root of the corpus size (100 at 10 k docs, 316 at 100 k),
    within AUTO_CLUSTERS so a million docs still give a readable number of topics."""
    low, high = AUTO_CLUSTERS
    return int(min(high, max(low, round(n_docs ** 0.5))))


def candidate_ks(n_docs: int) -> list[int]:
    """The k a criterion chooses from: K_GRID times √n, within AUTO_CLUSTERS and at most n/5."""
    low, high = AUTO_CLUSTERS
    root = n_docs ** 0.5
    ks = {int(min(high, max(low, round(root * f)))) for f in K_GRID}
    return sorted(k for k in ks if k <= max(2, n_docs // 5)) or [max(2, min(low, n_docs // 5))]


# -- the clusterers (scikit-learn style: fit(X) sets labels_, -1 for docs outside every core) -------------
def _trim_labels(labels: np.ndarray, distance: np.ndarray, n_clusters: int, trim: float) -> np.ndarray:
    """In each cluster the ``trim`` share of docs with the largest ``distance`` leave the core (-1)."""
    labels = labels.copy()
    if trim > 0:
        for cluster in range(n_clusters):
            rows = np.flatnonzero(labels == cluster)
            if len(rows) > 1:
                cut = np.quantile(distance[rows], 1 - trim)
                labels[rows[distance[rows] > cut]] = -1
    return labels


class TrimmedKMeans:
    """MiniBatchKMeans whose ``trim`` share of documents farthest from their centroid (per cluster) become
    outliers (-1): topic words then come from each cluster's core, as with HDBSCAN, at k-means' speed."""

    def __init__(self, n_clusters: int = 50, trim: float = 0.0, random_state: int = 0) -> None:
        self.n_clusters = n_clusters
        self.trim = trim
        self.random_state = random_state

    def fit(self, X: np.ndarray, y: Any = None) -> TrimmedKMeans:
        from sklearn.cluster import MiniBatchKMeans

        with phase(f"topics: k-means fit (k={self.n_clusters})", len(X), logger=log):
            self.kmeans_ = MiniBatchKMeans(n_clusters=self.n_clusters, n_init=3, batch_size=4096,
                                           random_state=self.random_state).fit(X)
        labels = self.kmeans_.labels_.astype(np.int64)
        centers = self.kmeans_.cluster_centers_
        distance = np.empty(len(X), dtype=X.dtype)
        for start in range(0, len(X), BLOCK_ROWS):
            stop = start + BLOCK_ROWS
            distance[start:stop] = np.linalg.norm(X[start:stop] - centers[labels[start:stop]], axis=1)
        self.labels_ = _trim_labels(labels, distance, self.n_clusters, self.trim)
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.kmeans_.predict(X)


class TrimmedGMM:
    """A Gaussian mixture (diagonal covariances, k-means start) with soft assignments: ``probabilities_`` is
    each doc's posterior for its component. A component's core is its docs with the highest log-density
    under it; the ``trim`` share with the lowest leave the core (-1), as k-means' farthest docs do."""

    def __init__(self, n_clusters: int = 50, trim: float = 0.0, random_state: int = 0,
                 covariance_type: str = "diag", reg_covar: float = 1e-4) -> None:
        self.n_clusters = n_clusters
        self.trim = trim
        self.random_state = random_state
        self.covariance_type = covariance_type
        self.reg_covar = reg_covar

    def fit(self, X: np.ndarray, y: Any = None) -> TrimmedGMM:
        from sklearn.mixture import GaussianMixture

        with phase(f"topics: Gaussian mixture fit (k={self.n_clusters})", len(X), logger=log):
            self.gmm_ = GaussianMixture(n_components=self.n_clusters, covariance_type=self.covariance_type,
                                        reg_covar=self.reg_covar, max_iter=100, init_params="k-means++",
                                        random_state=self.random_state).fit(X)
            posterior = self.gmm_.predict_proba(X)
        labels = posterior.argmax(axis=1).astype(np.int64)
        self.probabilities_ = posterior[np.arange(len(X)), labels].astype(np.float32)
        # log-density of each doc under its own component (the mixture weight left out: a small component's
        # typical docs are as much its core as a large one's)
        density = self._component_log_density(X, labels)
        self.labels_ = _trim_labels(labels, -density, self.n_clusters, self.trim)
        return self

    def _component_log_density(self, X: np.ndarray, labels: np.ndarray) -> np.ndarray:
        means = self.gmm_.means_[labels]
        if self.covariance_type == "diag":
            variances = self.gmm_.covariances_[labels]
        elif self.covariance_type == "spherical":
            variances = np.repeat(self.gmm_.covariances_[labels][:, None], X.shape[1], axis=1)
        else:  # full / tied: rank by the squared Euclidean distance to the mean instead
            return -np.sum((X - means) ** 2, axis=1)
        return -0.5 * np.sum((X - means) ** 2 / variances + np.log(variances), axis=1)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.gmm_.predict(X)


def _sample(n_docs: int, size: int, random_state: int) -> np.ndarray:
    if n_docs <= size:
        return np.arange(n_docs)
    return np.sort(np.random.default_rng(random_state).choice(n_docs, size, replace=False))


def scale_k(k: int, n_sample: int, n_docs: int) -> int:
    """A k chosen on ``n_sample`` docs carried to ``n_docs``: the same multiple of √n."""
    low, high = AUTO_CLUSTERS
    if n_sample >= n_docs:
        return k
    return int(min(high, max(low, round(k * (n_docs / n_sample) ** 0.5))))


def select_k_by_fit(X: np.ndarray, criterion: str, make: Any, random_state: int) -> tuple[int, dict[int, float]]:
    """k from ``candidate_ks`` by ``silhouette`` (highest; cosine, on a sample) or ``bic`` (lowest), fitting
    ``make(k)`` on a sample of at most SELECTION_SAMPLE docs."""
    from sklearn.metrics import silhouette_score

    rows = _sample(len(X), SELECTION_SAMPLE, random_state)
    sample = X[rows]
    scores: dict[int, float] = {}
    for k in candidate_ks(len(sample)):
        fitted = make(k).fit(sample)
        if criterion == "bic":
            scores[k] = -float(fitted.gmm_.bic(sample))  # higher is better, like the others
        else:
            labels = getattr(fitted, "kmeans_", None)
            labels = labels.labels_ if labels is not None else fitted.gmm_.predict(sample)
            scores[k] = float(silhouette_score(sample, labels, metric="cosine",
                                               sample_size=min(len(sample), 5_000), random_state=random_state))
    best = max(scores, key=lambda k: scores[k])
    return scale_k(best, len(sample), len(X)), scores


def select_k_by_npmi(estimator: Any, lemmas: list[str], embeddings: np.ndarray) -> tuple[int, dict[int, Any]]:
    """k by held-out coherence: on a sample (at most SELECTION_SAMPLE docs), the topic model with each
    candidate k is fitted on 80 % and its topic words (top 10) scored by NPMI over the other 20 %'s lemmas;
    the best NPMI among the ks whose diversity reaches MIN_DIVERSITY and outlier share stays within
    MAX_OUTLIERS (all ks when none does)."""
    from edumine.models.topics.evaluation import npmi_coherence, topic_diversity

    rows = _sample(len(lemmas), SELECTION_SAMPLE, estimator.random_state)
    order = np.random.default_rng(estimator.random_state).permutation(rows)
    cut = int(len(order) * 0.8)
    train, held = np.sort(order[:cut]), np.sort(order[cut:])
    reference = [lemmas[i].split() for i in held]
    scores: dict[int, Any] = {}
    for k in candidate_ks(len(train)):
        params = {**estimator.get_params(), "n_clusters": k}
        model = type(estimator)(**params).fit([lemmas[i] for i in train], embeddings[train])
        words = [[w for w, _ in model.top_terms(t, 25)] for t in model.topic_ids() if t != -1]
        scores[k] = {"npmi": round(npmi_coherence(words, reference, top_n=10, window_size=10), 4),
                     "diversity": round(topic_diversity(words, top_n=25), 4),
                     "outliers": round(float(np.mean(model.topics_ == -1)), 4)}
    allowed = [k for k, s in scores.items() if s["diversity"] >= MIN_DIVERSITY and s["outliers"] <= MAX_OUTLIERS]
    allowed = allowed or list(scores)
    best = max(allowed, key=lambda k: scores[k]["npmi"])
    return scale_k(best, len(train), len(lemmas)), scores


# -- the registered clusterings ---------------------------------------------------------------------------
class ClusteringParams(BaseModel):
    """The defaults a clustering version brings for the knobs that changed between versions."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    n_clusters: int | str = Field("auto", description="k, auto (√n) or a criterion: " + ", ".join(K_CRITERIA))
    catchall_coverage: float = 0.0
    assigned_coverage: float = 0.0
    link_dump_share: float = 0.0
    link_series_min_posts: int = 0
    outlier_threshold: float = 0.35


class Clustering:
    """A registered clustering: ``Params`` (its version defaults) and ``build`` (the clusterer for a fit)."""

    Params: type[ClusteringParams] = ClusteringParams
    criteria: tuple[str, ...] = ()

    def __init__(self, estimator: Any) -> None:
        self.estimator = estimator

    def build(self, n_docs: int, k: int) -> Any:
        raise NotImplementedError


@topic_clusterings.register("kmeans")  # configs and saved models from before the registry
@topic_clusterings.register("topics.kmeans.v1")
class KMeansV1(Clustering):
    """Trimmed k-means (issue 7): k clusters, the ``kmeans_trim`` share farthest from each centre outside
    its core; catch-all clusters are kept."""

    criteria = ("silhouette", "npmi")

    def build(self, n_docs: int, k: int) -> Any:
        return TrimmedKMeans(n_clusters=k, trim=self.estimator.kmeans_trim,
                             random_state=self.estimator.random_state)


class _V2Params(ClusteringParams):
    catchall_coverage: float = 0.3
    outlier_threshold: float = 0.25


@topic_clusterings.register("topics.kmeans.v2")
class KMeansV2(KMeansV1):
    """Trimmed k-means whose catch-all clusters (label coverage under 0.3) go to the outliers (issue 17),
    docs outside every core joining a topic from cosine 0.25."""

    Params = _V2Params


class _V3Params(_V2Params):
    assigned_coverage: float = 0.2


@topic_clusterings.register("topics.kmeans.v3")
class KMeansV3(KMeansV2):
    """``topics.kmeans.v2``, and after nearest assignment a second catch-all check over each topic's
    assigned docs (label coverage under 0.2: a core that passed, diluted by the docs nearest it)."""

    Params = _V3Params


class _V4Params(_V3Params):
    link_dump_share: float = 0.5
    link_series_min_posts: int = 5


@topic_clusterings.register("topics.kmeans.v4")
class KMeansV4(KMeansV3):
    """``topics.kmeans.v3``, and clusters most of whose core docs are link posts the community ignored, and the
    posts of spam series, go to the outliers with the catch-alls (edumine.models.topics.link_dumps)."""

    Params = _V4Params


@topic_clusterings.register("hdbscan")
@topic_clusterings.register("topics.hdbscan.v1")
class HdbscanV1(Clustering):
    """HDBSCAN (``min_cluster_size``, ``min_samples``); its noise is outside every core."""

    def build(self, n_docs: int, k: int) -> Any:
        from hdbscan import HDBSCAN

        # A corpus smaller than the settings: HDBSCAN's prediction data queries min_samples neighbours and
        # fails when there are fewer docs than that, so both shrink to half the docs there (unchanged elsewhere).
        cap = max(2, n_docs // 2)
        min_samples = self.estimator.min_samples or self.estimator.min_cluster_size
        return HDBSCAN(min_cluster_size=min(self.estimator.min_cluster_size, cap), min_samples=min(min_samples, cap),
                       metric="euclidean", cluster_selection_method="eom", prediction_data=True)


@topic_clusterings.register("topics.gmm.v1")
class GmmV1(Clustering):
    """Gaussian mixture with soft assignments (``TrimmedGMM``); the ``kmeans_trim`` share of each
    component with the lowest density outside its core; catch-alls dropped as in ``topics.kmeans.v2``."""

    Params = _V2Params
    criteria = ("silhouette", "bic", "npmi")

    def build(self, n_docs: int, k: int) -> Any:
        return TrimmedGMM(n_clusters=k, trim=self.estimator.kmeans_trim, random_state=self.estimator.random_state)


def clustering_for(estimator: Any) -> Clustering:
    return topic_clusterings.get(estimator.clustering)(estimator)
