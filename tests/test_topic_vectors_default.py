"""The topic stage's default vectors are chosen when the config loads (models/topics/shared_vectors.py):
TF-IDF+SVD next to the theme stage's contextual encoder, sharing its vectors (one encoder pass per doc), or
TF-IDF+SVD alone; a backend or params given on purpose are never replaced."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import CORPORA, SHARED, make_config

LABELS = SHARED / "labels" / "sdl_train.jsonl"
RMHD = [{"kind": "tabular.v1", "name": "rmhd", "paths": [str(CORPORA / "reddit-teaching-2018-19" / "*.csv")],
         "columns": {"created": "date", "body": "post", "community": "subreddit", "author": "author"}}]
TFIDF = {"backend": "embeddings.tfidf_svd.v1", "params": {"ngram_max": 1}}


def _embeddings(tmp_path: Path, **sections: object) -> dict:
    config = make_config(tmp_path / "lake", RMHD, default_vectors=True, **sections)
    return config.topics.embeddings.model_dump(mode="json")


def test_by_default_topics_pair_tfidf_with_the_theme_stage_encoder(tmp_path: Path) -> None:
    from edumine.models.topics.shared_vectors import theme_encoder

    config = make_config(tmp_path / "lake", RMHD, default_vectors=True)
    backend, params = theme_encoder(config.themes)
    assert backend == "embeddings.minilm_onnx.v1"
    chosen = config.topics.embeddings
    assert chosen.backend == "embeddings.concat.v1"
    assert chosen.params == {"parts": [TFIDF, {"backend": backend, "params": params}]}
    # A theme model with other encoder settings: the topic stage follows them (the same cache key).
    custom = {"classifier": "themes.minilm_logreg.v2", "params": {"backend_params": {"max_seq_length": 128}}}
    part = _embeddings(tmp_path, themes=custom)["params"]["parts"][1]
    assert part == {"backend": "embeddings.minilm_onnx.v1", "params": {"max_seq_length": 128}}


@pytest.mark.parametrize("themes", [{"enabled": False}, {"classifier": "themes.tfidf_logreg.v1"},
                                    {"classifier": "themes.tfidf_static_logreg.v1"}],
                         ids=["themes off", "no encoder", "static encoder"])
def test_topics_stay_on_tfidf_without_a_contextual_theme_encoder(tmp_path: Path, themes: dict) -> None:
    chosen = _embeddings(tmp_path, themes=themes)
    assert (chosen["backend"], chosen["params"]) == (TFIDF["backend"], TFIDF["params"])


def test_a_backend_or_params_given_on_purpose_are_kept(tmp_path: Path) -> None:
    given = _embeddings(tmp_path, topics={"embeddings": {"backend": "embeddings.tfidf_svd.v1"}})
    assert (given["backend"], given["params"]) == (TFIDF["backend"], TFIDF["params"])
    given = _embeddings(tmp_path, topics={"embeddings": {"params": {"dims": 64}}})
    assert (given["backend"], given["params"]) == ("embeddings.tfidf_svd.v1", {"dims": 64})
    # Only the cache folder given: the backend is still chosen, the folder kept.
    given = _embeddings(tmp_path, topics={"embeddings": {"cache_dir": str(tmp_path / "vectors")}})
    assert given["backend"] == "embeddings.concat.v1" and given["cache_dir"] == str(tmp_path / "vectors")


def test_resolved_choice_is_what_the_run_manifest_records(tmp_path: Path) -> None:
    from edumine.config import config_as_dict, load_config

    config = make_config(tmp_path / "lake", RMHD, default_vectors=True)
    recorded = config_as_dict(config)
    # Reloading the recorded config gives the same choice, given explicitly this time.
    again = load_config(data=recorded)
    assert again.topics.embeddings == config.topics.embeddings
    assert json.dumps(recorded["topics"]["embeddings"]).count("embeddings.minilm_onnx.v1") == 1


def test_topics_and_themes_encode_each_doc_once_and_a_lost_cache_keeps_its_state(tmp_path: Path) -> None:
    """The theme stage (it runs first) encodes the posts it labels; the topic stage reads their vectors from the
    shared cache and encodes only what the theme stage does not label. The TF-IDF part's fitted state is kept
    beside the saved topic model, so a lost cache is rebuilt with the same state (same key, same vectors), not
    refitted."""
    import shutil

    import numpy as np

    from edumine.models.embeddings.backends import EmbeddingCache
    from edumine.pipelines.runner import run_pipeline

    subset = tmp_path / "subset.jsonl"  # every 20th shared label keeps the label embedding to seconds
    subset.write_text("".join(line for i, line in enumerate(LABELS.read_text().splitlines(keepends=True))
                              if i % 20 == 0))
    themes = {"codebook": str(SHARED / "codebook" / "sdl_themes.yaml"), "labels": [str(subset)],
              "imported_labels": str(tmp_path / "imported.jsonl"), "classifier": "themes.minilm_logreg.v2",
              "eval_folds": 0, "threshold_folds": 2, "model_dir": str(tmp_path / "models"),
              "cache_dir": str(tmp_path / "texts")}
    lake = tmp_path / "lake"
    config = make_config(lake, RMHD, default_vectors=True, themes=themes)
    outputs = run_pipeline(config, only=["preprocess", "topics", "themes"]).outputs
    embedding, themed = outputs["topics"]["embedding"], outputs["themes"]
    assert embedding["backend"] == "embeddings.concat.v1"
    tfidf, minilm = embedding["parts"]
    assert minilm["backend"] == "embeddings.minilm_onnx.v1" and themed["embedding"]["key"] == minilm["key"]
    assert list(outputs).index("themes") < list(outputs).index("topics")
    assert themed["embedding"]["embedded"] == themed["docs"] == outputs["topics"]["docs"] > 100
    assert minilm["embedded"] == 0 and minilm["from_cache"] == outputs["topics"]["docs"]

    saved = Path(json.loads((lake / "models" / "topics" / "latest.json").read_text())["path"])
    assert (saved / "embedder" / "part-0" / "state.pkl").is_file()  # the fitted TF-IDF part
    assert not (saved / "embedder" / "part-1").exists()  # MiniLM is not fitted: nothing to keep

    cache = lake / "cache" / "embeddings"
    before, _ = EmbeddingCache(cache, tfidf["key"]).get(*_uids_and_hashes(lake))
    shutil.rmtree(cache / tfidf["key"])
    shutil.rmtree(cache / tfidf["key"].rsplit("-", 1)[0])  # the fitted state too
    config = make_config(lake, RMHD, default_vectors=True, themes=themes)
    again = run_pipeline(config, only=["topics"]).outputs["topics"]["embedding"]
    assert again["parts"][0]["key"] == tfidf["key"] and again["parts"][0]["embedded"] == len(before)
    assert again["parts"][1]["embedded"] == 0
    after, _ = EmbeddingCache(cache, tfidf["key"]).get(*_uids_and_hashes(lake))
    assert np.allclose(after, before, atol=1e-5)


def _uids_and_hashes(lake: Path) -> tuple[list[str], list[str]]:
    import pyarrow.parquet as pq

    docs = pq.read_table(lake / "docs", columns=["uid", "text_hash", "usable", "kind"]).to_pandas()
    docs = docs[docs["usable"]].drop_duplicates("uid").sort_values("uid")
    return docs["uid"].tolist(), docs["text_hash"].tolist()


def test_a_lost_concatenation_cache_is_rebuilt_from_the_parts_state_kept_by_the_model(tmp_path: Path) -> None:
    """Without the kept state, the TF-IDF part would be refitted on the later corpus (another key, other
    vectors): topics and lineage would then compare vectors from two different spaces."""
    import shutil

    import numpy as np

    from edumine.models.embeddings.backends import make_embedder
    from edumine.models.embeddings.concat import embed_parts_with_cache, keep_parts_state

    first = ["student behaviour classroom management", "math lesson fraction worksheet",
             "job interview district", "classroom management behaviour plan", "fraction lesson math game"] * 4
    later = first + ["math worksheet fraction"] * 3 + ["interview district job offer"] * 3
    uids = [f"u{i}" for i in range(len(later))]
    parts = [{"backend": "embeddings.tfidf_svd.v1", "params": {"dims": 3, "min_df": 1, "max_df": 1.0}},
             {"backend": "embeddings.tfidf_svd.v1", "params": {"dims": 2, "min_df": 1, "max_df": 1.0,
                                                               "ngram_max": 1}}]

    def concat():  # noqa: ANN202
        return make_embedder("embeddings.concat.v1", parts=parts)

    fitted = concat()
    before, info = embed_parts_with_cache(fitted, tmp_path / "cache", uids[:20], ["h"] * 20, first, first)
    keep_parts_state(fitted, tmp_path / "cache", tmp_path / "model")
    shutil.rmtree(tmp_path / "cache")
    refitted, _ = embed_parts_with_cache(concat(), tmp_path / "other", uids, ["h"] * len(uids), later, later)
    again, info_again = embed_parts_with_cache(concat(), tmp_path / "cache", uids, ["h"] * len(uids), later, later,
                                               state_sources=(tmp_path / "model",))
    assert [p["key"] for p in info_again["parts"]] == [p["key"] for p in info["parts"]]
    assert np.allclose(again[:20], before, atol=1e-6) and not np.allclose(refitted[:20], before, atol=1e-3)
