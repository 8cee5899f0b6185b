"""The topic model's parameters and their defaults, in one place.

``TopicModelParams`` is the params model of ``TopicModel`` (edumine.models.topics.model): the estimator's
keyword defaults are read from it, and the topic stage's config section (``TopicsConfig``) extends it with
the stage's own settings, so the estimator, the config and ``edumine config show`` cannot disagree
(tests/test_topics_clustering.py checks it).

``n_clusters``, ``catchall_coverage``, ``assigned_coverage``, ``link_dump_share``, ``link_series_min_posts``
and ``outlier_threshold`` default to null: the default of the chosen clustering version
(edumine.models.topics.clustering), because those defaults changed between versions; ``resolved()`` fills
them in.
"""

from __future__ import annotations

from typing import Annotated, Literal, Optional, Union

from pydantic import Field

from edumine.config import StrictModel

DEFAULT_CLUSTERING = "topics.kmeans.v4"


class TopicModelParams(StrictModel):
    """Keyword parameters of ``TopicModel``; defaults chosen by benchmarks/topics_fair.py (docs/topics.md)."""

    components = {"clustering": ("topic_clusterings", None)}

    reduction: Literal["umap", "pca", "none"] = "none"
    n_components: int = Field(10, ge=2)
    umap_neighbors: int = Field(15, ge=2)
    clustering: str = Field(DEFAULT_CLUSTERING, description="registered clustering, versioned "
                            "(edumine.models.topics.clustering): topics.kmeans.v1|v2|v3|v4, topics.gmm.v1, "
                            "topics.hdbscan.v1; the bare kmeans and hdbscan of older configs mean the v1s")
    n_clusters: Union[Annotated[int, Field(ge=2)], Literal["auto", "silhouette", "bic", "npmi"], None] = Field(
        None, description="topics for kmeans and gmm; auto: the square root of the number of docs, 10 to 500; "
                          "silhouette|bic|npmi: chosen by that criterion from 0.5-2 times the square root; "
                          "null: the clustering's default")
    kmeans_trim: float = Field(0.5, ge=0, lt=1, description="share of each k-means (or GMM) cluster, farthest "
                                                             "from its centre, left out of the cluster's core (the "
                                                             "docs its topic words and embedding come from)")
    min_cluster_size: int = Field(15, ge=2, description="smallest topic for hdbscan")
    min_samples: Optional[int] = None
    center: bool = Field(True, description="subtract the corpus mean vector before clustering")
    min_df: int = Field(2, ge=1, description="topic-word vocabulary: a term must occur in at least this many "
                                             "topics (BERTopic counts over each topic's joined documents, the "
                                             "outlier topic included); 2 is what BERTopic's default comparator uses")
    max_df: float = Field(0.5, gt=0, le=1, description="and in at most this share of the topics")
    ngram_max: int = Field(1, ge=1, le=3)
    binary: bool = Field(True, description="each lemma counted once per doc for the topic words")
    top_n_words: int = Field(10, ge=3)
    reduce_frequent_words: bool = Field(False, description="c-TF-IDF's frequent-word reduction (measured: "
                                                           "lower NPMI, docs/topics.md)")
    bm25_weighting: bool = Field(False, description="c-TF-IDF with BERTopic's BM25 weighting (measured: no "
                                                     "better NPMI on the fair benchmark, docs/topics.md)")
    catchall_coverage: Optional[float] = Field(
        None, ge=0, lt=1, description="topics whose label words are in fewer than this share of their core "
                                      "docs are catch-alls (spam series, link dumps, near-empty texts): their "
                                      "docs go to the outliers before topics are ranked "
                                      "(edumine.models.topics.catchall); 0 keeps them; null: the clustering's "
                                      "default (0.3 from topics.kmeans.v2 on, 0 before)")
    assigned_coverage: Optional[float] = Field(
        None, ge=0, lt=1, description="the same check after outliers joined their nearest topic (outliers: "
                                      "nearest or none), over all of a topic's docs: a topic under it goes to "
                                      "the outliers with its docs and the rest are assigned again; 0 keeps "
                                      "them; null: the clustering's default (0.2 from topics.kmeans.v3 on, 0 "
                                      "before)")
    link_dump_share: Optional[float] = Field(
        None, ge=0, le=1, description="clusters in which at least this share of the core docs are link posts "
                                      "the community ignored (no body, no comments, score 1 or less, engagement "
                                      "known: edumine.models.topics.link_dumps) are link dumps or ad spam: they "
                                      "go to the outliers like catch-alls; 0 keeps them; null: the clustering's "
                                      "default (0.5 from topics.kmeans.v4 on, 0 before)")
    link_series_min_posts: Optional[int] = Field(
        None, ge=0, description="a link post whose author posted at least this many, none of which anyone took "
                                "up (at most 1 comment and a score of 2 each, engagement known), is part of a "
                                "spam series and goes to the outliers (edumine.models.topics.link_dumps); 0 "
                                "keeps them; null: the clustering's default (5 from topics.kmeans.v4 on, 0 "
                                "before)")
    outliers: Literal["none", "nearest", "embeddings", "c-tf-idf", "distributions"] = Field(
        "nearest", description="docs outside every core: none: they stay outliers; nearest: each joins its "
                               "nearest topic if the cosine is at least outlier_threshold, topic words stay "
                               "the cores'; embeddings|c-tf-idf|distributions: BERTopic's reduce_outliers, "
                               "then topic words from all assigned docs")
    outlier_threshold: Optional[float] = Field(
        None, ge=-1, le=1, description="cosine a doc needs to join a topic (nearest, embeddings); nightly "
                                       "updates use it too (lineage.update); null: the clustering's default "
                                       "(0.25 from topics.kmeans.v2 on, 0.35 before)")
    n_representative: int = Field(3, ge=1)
    random_state: int = 0

    def model_params(self) -> dict:
        """The keyword arguments of ``TopicModel`` (as given: nulls stay null)."""
        return {name: getattr(self, name) for name in TopicModelParams.model_fields}

    def resolved(self) -> TopicModelParams:
        """A copy with the clustering's defaults in place of the nulls."""
        return TopicModelParams(**resolve_params(self.model_params()))


VERSIONED = ("n_clusters", "catchall_coverage", "assigned_coverage", "link_dump_share", "link_series_min_posts",
             "outlier_threshold")


def resolve_params(params: dict) -> dict:
    """``params`` with each null of VERSIONED replaced by the default of ``params["clustering"]``."""
    from edumine.registry import topic_clusterings

    defaults = topic_clusterings.params_model(params.get("clustering") or DEFAULT_CLUSTERING)()
    return {**params, **{k: getattr(defaults, k) for k in VERSIONED if params.get(k) is None}}
