"""The topic stage's default vectors, chosen when the config is loaded.

When the config names no ``topics.embeddings`` backend, the topic stage clusters TF-IDF+SVD over the lemmas
side by side with the theme stage's encoder (``embeddings.concat.v1``) if the theme stage is enabled and embeds
every doc it labels with a contextual encoder (MiniLM); otherwise TF-IDF+SVD alone. The two stages read and
write the same vectors in the lake's ``cache/embeddings`` (keyed by backend, uid and text hash), so a doc is
encoded once for both. On the fair benchmark (benchmarks/results/topics.md) the pair gave more coherent topics,
fewer outliers and better agreement with the community of origin than TF-IDF+SVD alone; the static MiniLM did
not help, so a theme stage on it leaves the topic stage on TF-IDF+SVD.

The choice follows the config, not which stages a run plans: the same config always gives the same vectors.
The resolved config (in every run's manifest) names the backend and parts chosen.
"""

from __future__ import annotations

from typing import Any

# The topic stage's TF-IDF+SVD: unigrams embed ~1.8x faster than the backend's own 1-2 grams at 10 k docs (~11x
# at 100 k) at the same topic quality (docs/topics.md). Alone or as a concatenation's first part.
TFIDF: dict[str, Any] = {"backend": "embeddings.tfidf_svd.v1", "params": {"ngram_max": 1}}

# Encoders whose vectors next to TF-IDF+SVD made more coherent topics on the fair benchmark.
SHARES_WITH_TOPICS = frozenset({"embeddings.minilm_onnx.v1", "embeddings.minilm.v1"})


def theme_encoder(themes: Any) -> tuple[str, dict[str, Any]] | None:
    """(backend, params) the theme stage's classifier embeds docs with, or None for one without a backend."""
    from edumine import registry

    estimator = registry.theme_classifiers.get(themes.classifier)(**themes.params)
    spec = getattr(estimator, "embedding_spec", None)
    return spec() if callable(spec) else None


def default_embeddings(themes: Any | None) -> dict[str, Any]:
    """``topics.embeddings`` (backend and params) for a config that names none, given its ``themes`` section."""
    tfidf = {"backend": TFIDF["backend"], "params": dict(TFIDF["params"])}
    spec = theme_encoder(themes) if themes is not None and themes.enabled else None
    if spec is None or spec[0] not in SHARES_WITH_TOPICS:
        return tfidf
    name, params = spec
    return {"backend": "embeddings.concat.v1",
            "params": {"parts": [tfidf, {"backend": name, "params": dict(params)}]}}
