"""Multi-label theme estimators, registry-named: ``fit(texts, Y)`` and ``predict_proba(texts) -> (n, themes)``.

All follow scikit-learn's contract (keyword parameters stored as given, learned state ends in ``_``) and
are deterministic for a given ``seed``. Each may learn from the codebook's own text (definitions, examples,
cues) as extra positive examples (``codebook_weight > 0``): that is what lets themes with two or five
labelled posts be recognised at all.

- ``themes.tfidf_logreg.v1``: TF-IDF word 1-2-grams, one balanced logistic regression per theme.
- ``themes.minilm_logreg.v1``: MiniLM sentence embeddings, one balanced logistic regression per theme.
- ``themes.zeroshot.v1``: cosine similarity of a post to the codebook's descriptions of each theme,
  turned into a probability by a one-feature logistic fit (no labels needed beyond calibration).
- ``themes.minilm_logreg.v2``: the same on a registered embedding backend (default MiniLM int8 ONNX).
- ``themes.tfidf_minilm_logreg.v1``: TF-IDF 1-2-grams and MiniLM vectors side by side, one logistic
  regression per theme.
- ``themes.ensemble.v1``: the mean of the TF-IDF and MiniLM probabilities, with the zero-shot score
  mixed in for thin themes (fewer than ``thin_below`` labelled posts).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from edumine.estimator import Estimator

from edumine.models.themes.codebook import Codebook
from edumine import registry

classifiers = registry.theme_classifiers


def codebook_documents(codebook: Codebook) -> tuple[list[str], np.ndarray]:
    """The codebook as labelled documents: each description of a theme is a positive for that theme only."""
    texts, rows = [], []
    for index, theme in enumerate(codebook.themes):
        for text in theme.descriptions():
            texts.append(text)
            row = np.zeros(len(codebook.themes), dtype=np.int8)
            row[index] = 1
            rows.append(row)
    return texts, np.array(rows, dtype=np.int8).reshape(len(rows), len(codebook.themes))


def _logistic(C: float, seed: int):  # noqa: ANN202
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=C, class_weight="balanced", max_iter=2000, solver="liblinear", random_state=seed)


class _PerThemeLinear(Estimator):
    """One logistic regression per theme over features from ``_features``; constant for a theme never seen."""

    def _features_fit(self, texts: Sequence[str]) -> Any:
        raise NotImplementedError

    def _features(self, texts: Sequence[str]) -> Any:
        raise NotImplementedError

    def _training_set(self, texts: Sequence[str], Y: np.ndarray) -> tuple[list[str], np.ndarray, np.ndarray]:
        texts, Y = list(texts), np.asarray(Y)
        weights = np.ones(len(texts))
        if self.codebook is not None and self.codebook_weight > 0:
            extra_texts, extra_Y = codebook_documents(self.codebook)
            texts += extra_texts
            Y = np.vstack([Y, extra_Y])
            weights = np.concatenate([weights, np.full(len(extra_texts), float(self.codebook_weight))])
        return texts, Y, weights

    def fit(self, texts: Sequence[str], Y: np.ndarray) -> _PerThemeLinear:
        all_texts, all_Y, weights = self._training_set(texts, Y)
        X = self._features_fit(all_texts)
        self.models_: list[Any] = []
        for column in range(all_Y.shape[1]):
            y = all_Y[:, column]
            if y.min() == y.max():
                self.models_.append(float(y[0]))
            else:
                self.models_.append(_logistic(self.C, self.seed).fit(X, y, sample_weight=weights))
        self.n_themes_ = all_Y.shape[1]
        return self

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        X = self._features(list(texts))
        out = np.zeros((X.shape[0], self.n_themes_))
        for column, model in enumerate(self.models_):
            out[:, column] = model if isinstance(model, float) else model.predict_proba(X)[:, 1]
        return out


@classifiers.register("themes.tfidf_logreg.v1")
class TfidfLogReg(_PerThemeLinear):
    def __init__(self, codebook: Codebook | None = None, C: float = 10.0, ngram_max: int = 2, min_df: int = 2,
                 codebook_weight: float = 1.0, seed: int = 0) -> None:
        self.codebook = codebook
        self.C = C
        self.ngram_max = ngram_max
        self.min_df = min_df
        self.codebook_weight = codebook_weight
        self.seed = seed

    def _features_fit(self, texts: Sequence[str]) -> Any:
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.vectorizer_ = TfidfVectorizer(ngram_range=(1, self.ngram_max), min_df=self.min_df, sublinear_tf=True,
                                           strip_accents="unicode", lowercase=True, stop_words=None)
        return self.vectorizer_.fit_transform(texts)

    def _features(self, texts: Sequence[str]) -> Any:
        return self.vectorizer_.transform(texts)


class _Embedding:
    """Mixin: MiniLM vectors from a shared, cached embedder (not pickled with the model)."""

    def _embedder(self):  # noqa: ANN202
        from edumine.models.themes.embed import shared_embedder

        return shared_embedder(self.cache_dir, self.precision)

    def _embed(self, texts: Sequence[str]) -> np.ndarray:
        return self._embedder().embed(list(texts))


@classifiers.register("themes.minilm_logreg.v1")
class MiniLMLogReg(_Embedding, _PerThemeLinear):
    """The default: best cross-validated macro-F1 on the shared labels (benchmarks/themes_eval.py), with the
    codebook's descriptions weighted 3x so that the two- and five-example themes are learnt at all."""

    def __init__(self, codebook: Codebook | None = None, C: float = 1.0, codebook_weight: float = 3.0,
                 cache_dir: str | None = None, precision: str = "bfloat16", seed: int = 0) -> None:
        self.codebook = codebook
        self.C = C
        self.codebook_weight = codebook_weight
        self.cache_dir = cache_dir
        self.precision = precision
        self.seed = seed

    def _features_fit(self, texts: Sequence[str]) -> np.ndarray:
        return self._embed(texts)

    def _features(self, texts: Sequence[str]) -> np.ndarray:
        return self._embed(texts)


@classifiers.register("themes.zeroshot.v1")
class ZeroShot(_Embedding, Estimator):
    """Similarity to each theme's descriptions (the best match among definition, examples and cues),
    centred on the corpus so that generic "teacher post" similarity does not dominate."""

    def __init__(self, codebook: Codebook | None = None, cache_dir: str | None = None,
                 precision: str = "bfloat16", slope: float = 25.0, seed: int = 0) -> None:
        self.codebook = codebook
        self.cache_dir = cache_dir
        self.precision = precision
        self.slope = slope
        self.seed = seed

    def _similarity(self, X: np.ndarray) -> np.ndarray:
        centred = X - self.mean_
        centred /= np.maximum(np.linalg.norm(centred, axis=1, keepdims=True), 1e-12)
        sims = centred @ self.prototypes_.T
        out = np.full((len(X), len(self.owners_)), -1.0)
        for theme, columns in enumerate(self.owners_):
            out[:, theme] = sims[:, columns].max(axis=1)
        return out

    def fit(self, texts: Sequence[str], Y: np.ndarray) -> ZeroShot:
        if self.codebook is None:
            raise ValueError("themes.zeroshot.v1 needs the codebook")
        X = self._embed(texts)
        self.mean_ = X.mean(axis=0)
        descriptions, owners = [], []
        for theme in self.codebook.themes:
            texts_for_theme = theme.descriptions()
            owners.append(list(range(len(descriptions), len(descriptions) + len(texts_for_theme))))
            descriptions += texts_for_theme
        prototypes = self._embed(descriptions) - self.mean_
        self.prototypes_ = prototypes / np.maximum(np.linalg.norm(prototypes, axis=1, keepdims=True), 1e-12)
        self.owners_ = owners
        sims = self._similarity(X)
        Y = np.asarray(Y)
        # A per-theme centre: the similarity that the theme's share of posts exceeds (its base rate).
        self.centres_ = np.array([np.quantile(sims[:, t], 1 - max(Y[:, t].mean(), 0.01)) for t in range(Y.shape[1])])
        return self

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        sims = self._similarity(self._embed(texts))
        return 1.0 / (1.0 + np.exp(-self.slope * (sims - self.centres_)))


@classifiers.register("themes.ensemble.v1")
class Ensemble(Estimator):
    """Mean of TF-IDF and MiniLM logistic probabilities; zero-shot mixed in (weight ``zeroshot_weight``)
    for themes with fewer than ``thin_below`` labelled posts."""

    def __init__(self, codebook: Codebook | None = None, tfidf_C: float = 10.0, minilm_C: float = 1.0,
                 codebook_weight: float = 1.0, tfidf_weight: float = 0.5, thin_below: int = 10,
                 zeroshot_weight: float = 0.34, cache_dir: str | None = None, precision: str = "bfloat16",
                 seed: int = 0) -> None:
        self.codebook = codebook
        self.tfidf_C = tfidf_C
        self.minilm_C = minilm_C
        self.codebook_weight = codebook_weight
        self.tfidf_weight = tfidf_weight
        self.thin_below = thin_below
        self.zeroshot_weight = zeroshot_weight
        self.cache_dir = cache_dir
        self.precision = precision
        self.seed = seed

    def fit(self, texts: Sequence[str], Y: np.ndarray) -> Ensemble:
        self.tfidf_ = TfidfLogReg(codebook=self.codebook, C=self.tfidf_C, codebook_weight=self.codebook_weight,
                                  seed=self.seed).fit(texts, Y)
        self.minilm_ = MiniLMLogReg(codebook=self.codebook, C=self.minilm_C, codebook_weight=self.codebook_weight,
                                    cache_dir=self.cache_dir, precision=self.precision, seed=self.seed).fit(texts, Y)
        self.thin_ = np.asarray(Y).sum(axis=0) < self.thin_below
        self.zeroshot_ = None
        if self.thin_.any() and self.zeroshot_weight > 0:
            self.zeroshot_ = ZeroShot(codebook=self.codebook, cache_dir=self.cache_dir, precision=self.precision,
                                      seed=self.seed).fit(texts, Y)
        return self

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        w = self.tfidf_weight
        out = w * self.tfidf_.predict_proba(texts) + (1 - w) * self.minilm_.predict_proba(texts)
        if self.zeroshot_ is not None:
            z = self.zeroshot_weight
            zero = self.zeroshot_.predict_proba(texts)
            out[:, self.thin_] = (1 - z) * out[:, self.thin_] + z * zero[:, self.thin_]
        return out


DEFAULT_BACKEND = "embeddings.minilm_onnx.v1"
DEFAULT_BACKEND_PARAMS = {"max_seq_length": 256}


class _BackendEmbedding:
    """Mixin: vectors from a registered ``models.embeddings`` backend, cached by text hash under
    ``cache_dir`` (the theme stage preloads those of lake docs from the lake's shared cache)."""

    def embedding_spec(self) -> tuple[str, dict[str, Any]]:
        return self.backend, dict(DEFAULT_BACKEND_PARAMS if self.backend_params is None else self.backend_params)

    def _embed(self, texts: Sequence[str]) -> np.ndarray:
        from edumine.models.themes.embed import backend_embedder

        name, params = self.embedding_spec()
        return backend_embedder(self.cache_dir, name, params).embed(list(texts))


@classifiers.register("themes.minilm_logreg.v2")
class MiniLMLogRegV2(_BackendEmbedding, _PerThemeLinear):
    """``themes.minilm_logreg.v1`` on a registered embedding backend (default: MiniLM int8 ONNX)."""

    def __init__(self, codebook: Codebook | None = None, C: float = 1.0, codebook_weight: float = 3.0,
                 backend: str = DEFAULT_BACKEND, backend_params: dict[str, Any] | None = None,
                 cache_dir: str | None = None, seed: int = 0) -> None:
        self.codebook = codebook
        self.C = C
        self.codebook_weight = codebook_weight
        self.backend = backend
        self.backend_params = backend_params
        self.cache_dir = cache_dir
        self.seed = seed

    def _features_fit(self, texts: Sequence[str]) -> np.ndarray:
        return self._embed(texts)

    def _features(self, texts: Sequence[str]) -> np.ndarray:
        return self._embed(texts)


class _TfidfAndVectors:
    """TF-IDF words side by side with a dense vector per text (``_dense(texts) * _dense_weight()``)."""

    def _features_fit(self, texts: Sequence[str]) -> Any:
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.vectorizer_ = TfidfVectorizer(ngram_range=(1, self.ngram_max), min_df=self.min_df, sublinear_tf=True,
                                           strip_accents="unicode", lowercase=True, dtype=np.float32)
        return self._join(self.vectorizer_.fit_transform(texts), texts)

    def _features(self, texts: Sequence[str]) -> Any:
        return self._join(self.vectorizer_.transform(texts), texts)

    def _join(self, words: Any, texts: Sequence[str]) -> Any:
        from scipy import sparse

        return sparse.hstack([words, sparse.csr_matrix(self._dense(texts) * self._dense_weight())], format="csr")


@classifiers.register("themes.tfidf_minilm_logreg.v1")
class TfidfMiniLMLogReg(_TfidfAndVectors, _BackendEmbedding, _PerThemeLinear):
    """One logistic regression per theme over TF-IDF word 1-2-grams and MiniLM vectors side by side
    (the vectors scaled by ``minilm_weight``): words for topic themes, the embedding for stance. The default:
    best held-out macro-F1 on the shared labels (``benchmarks/themes_compare.py``); unigrams score as well
    as 1-2-grams there at an eighth of the training time."""

    def __init__(self, codebook: Codebook | None = None, C: float = 1.0, minilm_weight: float = 1.0,
                 ngram_max: int = 1, min_df: int = 2, codebook_weight: float = 3.0, backend: str = DEFAULT_BACKEND,
                 backend_params: dict[str, Any] | None = None, cache_dir: str | None = None, seed: int = 0) -> None:
        self.codebook = codebook
        self.C = C
        self.minilm_weight = minilm_weight
        self.ngram_max = ngram_max
        self.min_df = min_df
        self.codebook_weight = codebook_weight
        self.backend = backend
        self.backend_params = backend_params
        self.cache_dir = cache_dir
        self.seed = seed

    def _dense(self, texts: Sequence[str]) -> np.ndarray:
        return self._embed(texts)

    def _dense_weight(self) -> float:
        return self.minilm_weight


def make_estimator(name: str, codebook: Codebook, params: dict[str, Any] | None = None, *,
                   cache_dir: str | None = None, seed: int = 0) -> Any:
    """A fresh estimator by registry name; ``cache_dir`` and ``seed`` go to those that take them."""
    cls = classifiers.get(name)
    accepted = cls._param_names()
    kwargs: dict[str, Any] = {"codebook": codebook, "seed": seed}
    if "cache_dir" in accepted:
        kwargs["cache_dir"] = cache_dir
    unknown = sorted(set(params or {}) - set(accepted))
    if unknown:
        raise ValueError(f"{name} has no parameter(s) {', '.join(unknown)}; it takes {', '.join(accepted)}")
    kwargs.update(params or {})
    return cls(**kwargs)


from edumine.models.themes import zeroshot as _themes_zeroshot  # noqa: E402,F401  (registers themes.zeroshot.v2)
from edumine.models.themes import finetuned as _themes_finetuned  # noqa: E402,F401  (registers themes.minilm_finetuned.v1)
from edumine.models.themes import static as _themes_static  # noqa: E402,F401  (registers themes.tfidf_static_logreg.v1)
from edumine.models.themes import cascade as _themes_cascade  # noqa: E402,F401  (registers themes.cascade.v1)
