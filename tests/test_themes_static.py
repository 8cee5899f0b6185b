"""``embeddings.static_minilm.v1`` (the static MiniLM, built in the main environment on first use) and
``themes.tfidf_static_logreg.v1`` on it: built once per checkout (``data/test-models/static``, like the ONNX
export), keyed by weights + settings; the classifier is cached by codebook + labels + settings, identical when
trained twice, never retrained on a rerun; the fine-tuned table (``tune_epochs``) is seeded and cached."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import SHARED
from edumine.models.embeddings.backends import make_embedder
from edumine.models.themes.classifier import ThemesConfig, load_or_train
from edumine.models.themes.codebook import load_codebook
from edumine.models.themes.data import label_matrix, label_texts, load_labels
from edumine.models.themes.estimators import make_estimator

CODEBOOK = SHARED / "codebook" / "sdl_themes.yaml"
LABELS = SHARED / "labels" / "sdl_train.jsonl"
NAME = "themes.tfidf_static_logreg.v1"
TEXTS = ["Any advice for my first interview for a teaching job?", "Free fraction worksheets I made, enjoy", ""]


@pytest.fixture(scope="module")
def small_labels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every 20th labelled text (132 rows: posts and comments, every theme but the rarest)."""
    rows = [line for i, line in enumerate(LABELS.read_text().splitlines()) if i % 20 == 0]
    path = tmp_path_factory.mktemp("labels") / "small.jsonl"
    path.write_text("\n".join(rows) + "\n")
    return path


def test_the_static_backend_builds_once_and_embeds_like_minilm_pieces() -> None:
    embedder = make_embedder("embeddings.static_minilm.v1")
    vectors = embedder.encode(["I love teaching fractions", "I love teaching fractions!", "tax forms for my job",
                               ""])
    assert vectors.shape == (4, 256) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors[:3], axis=1), 1.0, atol=1e-5) and not vectors[3].any()
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]       # near texts are near
    build = json.loads((embedder.folder / "build.json").read_text())
    assert build["pca_dims"] == 256 and build["weights"] == embedder.params()["weights"]
    # the cache key follows what changes the vectors; the artefact folder is keyed by weights + settings
    other = make_embedder("embeddings.static_minilm.v1", pca_dims=None)
    assert other.key != embedder.key and other.folder != embedder.folder
    assert embedder.key == make_embedder("embeddings.static_minilm.v1", batch_size=7).key


@pytest.mark.slow  # builds the table again (~1 minute of one core)
def test_the_static_build_is_bit_identical(tmp_path: Path) -> None:
    embedder = make_embedder("embeddings.static_minilm.v1")
    embedder.model()
    again = make_embedder("embeddings.static_minilm.v1", artefact_dir=tmp_path)
    again.model()
    assert again.folder.name == embedder.folder.name
    assert (again.folder / "model.safetensors").read_bytes() == (embedder.folder / "model.safetensors").read_bytes()


def test_the_classifier_is_deterministic_and_a_rerun_does_not_retrain(small_labels: Path, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    def settings(folder: Path) -> ThemesConfig:
        return ThemesConfig(codebook=CODEBOOK, labels=[small_labels], imported_labels=folder / "imported.jsonl",
                            classifier=NAME, eval_folds=0, threshold_folds=2, model_dir=folder / "models",
                            cache_dir=folder / "cache")

    model, folder, trained = load_or_train(settings(tmp_path / "a"))
    assert trained and model.calibrated and folder.name.startswith(NAME + "-")
    P = model.predict_proba(TEXTS)
    assert P.shape == (3, len(model.theme_ids)) and ((P >= 0) & (P <= 1)).all()
    other, other_folder, trained_other = load_or_train(settings(tmp_path / "b"))   # the same inputs elsewhere
    assert trained_other and other_folder.name == folder.name
    assert np.array_equal(other.predict_proba(TEXTS), P) and np.array_equal(other.thresholds_, model.thresholds_)
    assert all(isinstance(m, float) and m == n or np.array_equal(m.coef_, n.coef_)          # the same fitted model
               for m, n in zip(model.estimator_.models_, other.estimator_.models_))

    import edumine.models.themes.classifier as classifier

    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("retrained although the model is cached")

    monkeypatch.setattr(classifier, "train", no_training)
    again, folder_again, trained_again = load_or_train(settings(tmp_path / "a"))
    assert not trained_again and folder_again == folder
    assert np.array_equal(again.predict_proba(TEXTS), P)
    with pytest.raises(AssertionError, match="retrained"):                      # new settings: a new model
        load_or_train(settings(tmp_path / "a").model_copy(update={"params": {"C": 2.0}}))


def test_the_tuned_table_is_seeded_cached_and_changes_the_scores(small_labels: Path, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    codebook = load_codebook(CODEBOOK)
    records = load_labels([small_labels], codebook)
    texts, Y = label_texts(records), label_matrix(records, codebook.ids)
    tuned = {"tune_epochs": 1, "codebook_weight": 1.0}
    a = make_estimator(NAME, codebook, tuned, cache_dir=str(tmp_path / "a")).fit(texts, Y)
    b = make_estimator(NAME, codebook, tuned, cache_dir=str(tmp_path / "b")).fit(texts, Y)
    assert a.tuned_.keys() == b.tuned_.keys() and all(np.array_equal(a.tuned_[k], b.tuned_[k]) for k in a.tuned_)
    assert np.array_equal(a.predict_proba(TEXTS), b.predict_proba(TEXTS))
    frozen = make_estimator(NAME, codebook, {"codebook_weight": 1.0}, cache_dir=str(tmp_path / "a")).fit(texts, Y)
    assert frozen.tuned_ is None and not np.array_equal(frozen.predict_proba(TEXTS), a.predict_proba(TEXTS))
    assert len(list((tmp_path / "a" / "static-tune").glob("*.npz"))) == 1

    import edumine.models.themes.static_tune as static_tune

    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("retrained although the same fit is cached")

    monkeypatch.setattr(static_tune, "train_static", no_training)
    again = make_estimator(NAME, codebook, tuned, cache_dir=str(tmp_path / "a")).fit(texts, Y)
    assert np.array_equal(again.predict_proba(TEXTS), a.predict_proba(TEXTS))
    with pytest.raises(AssertionError, match="retrained"):                      # other labels: a new fit
        make_estimator(NAME, codebook, tuned, cache_dir=str(tmp_path / "a")).fit(texts, np.roll(Y, 1, axis=0))


def test_the_stage_reads_the_static_model_from_its_lake_and_labels_every_usable_post(
        small_labels: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """In a run the static MiniLM lives in the lake's ``models/static`` artefact (a fresh lake builds it there on
    first use; here the checkout's build is copied in, as a previous run would have left it)."""
    import shutil

    import pyarrow.parquet as pq

    from conftest import CORPORA, make_config
    from edumine.pipelines.runner import run_pipeline

    built = make_embedder("embeddings.static_minilm.v1").folder
    make_embedder("embeddings.static_minilm.v1").model()
    lake = tmp_path / "lake"
    shutil.copytree(built, lake / "models" / "static" / built.name)
    monkeypatch.delenv("EDUMINE_STATIC_DIR")
    sources = [{"kind": "tabular.v1", "name": "rmhd", "paths": [str(CORPORA / "reddit-teaching-2018-19" / "*.csv")],
                "columns": {"created": "date", "body": "post", "community": "subreddit", "author": "author"}}]
    themes = {"codebook": str(CODEBOOK), "labels": [str(small_labels)], "imported_labels": str(tmp_path / "i.jsonl"),
              "classifier": NAME, "eval_folds": 0, "threshold_folds": 2, "model_dir": str(tmp_path / "models"),
              "cache_dir": str(tmp_path / "cache")}
    first = run_pipeline(make_config(lake, sources, themes=themes), only=["preprocess", "themes"]).outputs["themes"]
    doc_themes = pq.read_table(lake / "doc_themes").to_pandas()
    assert first["docs"] == len(doc_themes) == first["scored_now"] > 100
    assert doc_themes["model"].str.startswith(NAME + "-").all()
    assert [p.name for p in (lake / "models" / "static").iterdir()] == [built.name]   # read, not rebuilt
    from edumine.models.embeddings import static

    assert str((lake / "models" / "static" / built.name).resolve()) in static._MODELS    # the lake's copy was used
