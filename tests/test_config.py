from pathlib import Path

import pytest

from edumine.config import apply_overrides, load_config
from edumine.errors import ConfigError

from conftest import ROOT


def test_minimal_config_from_the_issue_validates(tmp_path: Path) -> None:
    config_file = tmp_path / "c.yaml"
    config_file.write_text("""
lake: data/lake
sources:
  - kind: reddit.dumps.v1
    paths: ["../shared/corpora/reddit-teaching-2017-18/*.zst"]
    subreddits: [teaching, teachingresources]
    since: 2017-01-01
  - kind: tabular.v1
    paths: ["../shared/corpora/reddit-top-posts-2009-13/*.csv"]
    platform: reddit
    kind_of_record: post
    columns: {id: id, created: created_utc, title: title, body: selftext, community: subreddit, score: score}
""")
    config = load_config(config_file, base_dir=tmp_path)
    assert config.sources[0].kind == "reddit.dumps.v1"
    assert config.sources[1].columns.created == "created_utc"
    assert config.lake == tmp_path / "data" / "lake"
    assert config.sources[0].paths[0].startswith(str(tmp_path.parent))
    assert config.windows.unit == "semester"


def test_every_error_is_reported_at_once_with_its_dotted_path() -> None:
    data = {"lake": "x", "bogus": 1, "windows": {"unit": "fortnight"},
            "sources": [{"kind": "reddit.dumps.v1", "paths": [], "subredits": ["a"]},
                        {"kind": "tabular.v1", "paths": ["a.csv"], "columns": {"id": "id"}},
                        {"kind": "nope.v1"}]}
    with pytest.raises(ConfigError) as caught:
        load_config(data=data)
    paths = {path for path, _ in caught.value.problems}
    assert {"bogus", "windows.unit", "sources.0.paths", "sources.0.subredits", "sources.1.columns.created",
            "sources.2"} <= paths
    text = str(caught.value)
    assert "unknown key" in text and "nope.v1" in text and "reddit.dumps.v1" in text


def test_overrides_set_nested_keys_and_list_items() -> None:
    data = {"sources": [{"kind": "reddit.dumps.v1", "paths": ["a"]}]}
    apply_overrides(data, ["windows.unit=year", "sources.0.since=2018-01-01", "collect.chunk_rows=500"])
    config = load_config(data=data)
    assert config.windows.unit == "year"
    assert str(config.sources[0].since) == "2018-01-01"
    assert config.collect.chunk_rows == 500
    with pytest.raises(ConfigError, match="list index"):
        apply_overrides(data, ["sources.5.since=2018-01-01"])
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        apply_overrides(data, ["windows.unit"])


def test_default_config_is_valid_and_hash_is_stable() -> None:
    first = load_config(ROOT / "configs" / "default.yaml", base_dir=ROOT)
    second = load_config(ROOT / "configs" / "default.yaml", base_dir=ROOT)
    assert first.config_hash() == second.config_hash()
    changed = load_config(ROOT / "configs" / "default.yaml", ["windows.unit=year"], base_dir=ROOT)
    assert changed.config_hash() != first.config_hash()


def test_missing_shared_corpora_says_where_to_point_sources(tmp_path: Path) -> None:
    from edumine.pipelines.runner import check_inputs

    config = load_config(ROOT / "configs" / "default.yaml", base_dir=tmp_path / "elsewhere")
    with pytest.raises(ConfigError) as caught:
        check_inputs(config)
    assert len(caught.value.problems) == 4
    assert "sources.0.paths" in str(caught.value) and "Pushshift" in str(caught.value)


FOUR_TYPOS = """
lake: {lake}
sources:
  - kind: reddit.dumps.v1
    paths: ["{missing}/*.zst"]
topics:
  embeddings: {{backend: embeddings.tfidf_svdd.v1}}
themes:
  classifier: themes.tfidf_minilm_logreg
  params: {{codebook_weigth: 2}}
"""


def test_four_typos_fail_at_load_once_each_before_any_server(tmp_path: Path) -> None:
    """A typo'd backend, a typo'd classifier, an unknown param and a path matching nothing: one message, exit 2,
    no traceback, and nothing started (no Prefect home, no lake)."""
    import os
    import subprocess
    import sys

    config = tmp_path / "typos.yaml"
    config.write_text(FOUR_TYPOS.format(lake=tmp_path / "lake", missing=tmp_path / "nowhere"))
    # PYTHONPROFILEIMPORTTIME lists every module imported (on stderr): the check must not load the heavy ones.
    env = dict(os.environ, PREFECT_HOME=str(tmp_path / "prefect"), PYTHONPROFILEIMPORTTIME="1")
    env.pop("PREFECT_API_URL", None)
    result = subprocess.run([sys.executable, "-m", "edumine.cli", "run", "--config", str(config)], cwd=ROOT,
                            env=env, capture_output=True, text=True, timeout=120)
    imported = {line.rsplit("|", 1)[1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}
    # Regression: theme estimators subclassed sklearn.base.BaseEstimator, whose import (scipy.stats, pandas) was
    # 1.6 of the check's 1.9 CPU-seconds.
    assert not {"sklearn", "scipy", "pandas", "torch", "spacy", "bertopic", "prefect", "onnxruntime"} & imported
    output = result.stdout + "\n".join(line for line in result.stderr.splitlines() if not line.startswith("import time:"))
    assert result.returncode == 2, output
    assert "Traceback" not in output and output.count("error [E-CONFIG]") == 1
    assert "4 problem(s)" in output
    for path, hint in [("sources.0.paths", "no file matches"),
                       ("topics.embeddings.backend", "did you mean 'embeddings.tfidf_svd.v1'"),
                       ("themes.classifier", "did you mean 'themes.tfidf_minilm_logreg.v1'"),
                       ("themes.params.codebook_weigth", "did you mean 'codebook_weight'")]:
        line = next((line for line in output.splitlines() if line.startswith(f"  - {path}: ")), "")
        assert hint in line, (path, output)
    assert not (tmp_path / "prefect").exists() and not (tmp_path / "lake").exists()


def test_unknown_keys_suggest_the_field_meant() -> None:
    data = {"lake": "x", "sources": [{"kind": "reddit.dumps.v1", "paths": ["a.zst"], "subredits": ["a"]}],
            "topics": {"n_clustres": 5}, "windowz": {"unit": "year"},
            "lineage": {"method": "lineage.window_match.v9"}}
    with pytest.raises(ConfigError) as caught:
        load_config(data=data)
    problems = dict(caught.value.problems)
    assert problems["sources.0.subredits"] == "unknown key (did you mean 'subreddits'?)"
    assert problems["topics.n_clustres"] == "unknown key (did you mean 'n_clusters'?)"
    assert problems["windowz"] == "unknown key (did you mean 'windows'?)"
    assert "did you mean 'lineage.window_match.v1'" in problems["lineage.method"]


def test_component_params_come_from_the_registry() -> None:
    from edumine import registry

    params = registry.embedders.params_model("embeddings.tfidf_svd.v1")
    assert params().model_dump()["dims"] == 256  # the estimator's own defaults: one set of defaults
    assert set(registry.theme_classifiers.params_model("themes.tfidf_logreg.v1").model_fields) == \
        {"C", "ngram_max", "min_df", "codebook_weight"}  # codebook, cache_dir and seed are the pipeline's
    problems = registry.embedders.check("embeddings.tfidf_svd.v1", {"dims": "many"}, "b", "p")
    assert problems and problems[0][0] == "p.dims"
    assert registry.embedders.check("embeddings.tfidf_svd.v1", {"dims": 64}, "b", "p") == []
    with pytest.raises(registry.RegistryError, match="did you mean 'embeddings.minilm.v1'"):
        registry.embedders.get("embeddings.minilm.v2")
