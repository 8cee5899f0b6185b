"""Preprocessing: clean lemmas without contraction fragments, language and usable flags, incremental docs."""

from __future__ import annotations

import pyarrow.dataset as ds
import pytest

from edumine.models.text.preprocess import EXTRA_STOP_WORDS, PreprocessSettings, Preprocessor, text_hash


@pytest.fixture(scope="module")
def pre() -> Preprocessor:
    return Preprocessor(PreprocessSettings())


def test_lemmas_drop_stop_words_and_contractions_without_apostrophes(pre: Preprocessor) -> None:
    record = {"title": "Im so tired &amp; I dont know what to do", "body":
              "Ive been teaching 3rd graders for years, but my students cant focus. "
              "Classroom management ideas? See https://example.com and u/someone"}
    (result,) = pre.process([record])
    lemmas = result.lemmas.split()
    assert "teach" in lemmas and "student" in lemmas and "classroom" in lemmas
    assert not set(lemmas) & {"im", "dont", "ive", "cant", "nt", "ve", "amp", "https", "someone"}
    assert result.usable and result.reason is None and result.language == "en"
    assert "&amp;" not in result.text and "https" not in result.text


@pytest.mark.parametrize(("record", "reason"), [
    ({"title": "Help", "body": "[removed]", "is_deleted": True}, "deleted"),
    ({"title": "", "body": "[removed]"}, "empty"),
    ({"title": "Los estudiantes no quieren hacer la tarea", "body":
      "Mis alumnos de secundaria nunca hacen la tarea de matemáticas y no sé qué hacer con ellos"},
     "non_english"),
    ({"title": "Great resource", "body": "", "link_url": "https://example.com/x"}, "link_only"),
    ({"title": "Thanks!", "body": "lol ok"}, "too_short"),
])
def test_unusable_docs_carry_a_reason(pre: Preprocessor, record: dict, reason: str) -> None:
    (result,) = pre.process([record])
    assert not result.usable
    assert result.reason == reason


def test_settings_digest_changes_with_settings() -> None:
    assert PreprocessSettings().digest() == PreprocessSettings().digest()
    assert PreprocessSettings(min_tokens=3).digest() != PreprocessSettings().digest()
    assert text_hash("a", "b") != text_hash("ab", "")
    assert {"im", "dont", "ive"} <= EXTRA_STOP_WORDS


def test_real_posts_get_docs_and_a_rerun_processes_nothing(tmp_lake) -> None:  # noqa: ANN001
    from conftest import CORPORA, make_config

    from edumine.pipelines.runner import run_pipeline

    sources = [{"kind": "reddit.dumps.v1", "paths": [str(CORPORA / "reddit-teaching-2017-18" / "*.zst")],
                "subreddits": ["teachingresources"]}]
    config = make_config(tmp_lake, sources, topics={"enabled": False})
    first = run_pipeline(config, only=["preprocess"]).outputs["preprocess"]
    docs = ds.dataset(tmp_lake / "docs", format="parquet", partitioning="hive").to_table()
    assert first["processed"] == first["docs"] == docs.num_rows > 1500
    assert 0.3 < first["usable"] / first["docs"] < 0.95
    assert set(docs.column_names) >= {"uid", "text", "lemmas", "n_tokens", "language", "usable", "reason"}
    usable = docs.filter(docs["usable"])
    assert min(usable["n_tokens"].to_pylist()) >= 5
    second = run_pipeline(config, only=["preprocess"]).outputs["preprocess"]
    assert second["processed"] == 0 and second["partitions_rewritten"] == 0 and second["kept"] == first["docs"]


def test_only_partitions_whose_posts_changed_are_read_and_the_docs_equal_a_full_rebuild(tmp_path) -> None:  # noqa: ANN001
    """docs_sources: a rerun reads no posts partition; a record edited in a later collection rewrites its posts
    partition, which is read and processed again (and only it); the docs then equal a rebuild from nothing."""
    import shutil

    from conftest import CORPORA, make_config
    from dumpfiles import write_zst

    from edumine.lake import Lake
    from edumine.pipelines.runner import run_collect, run_pipeline

    lake = tmp_path / "lake"
    sources = [{"kind": "reddit.dumps.v1", "paths": [str(CORPORA / "reddit-teaching-2017-18" / "*.zst")],
                "subreddits": ["teachingresources"]}]
    config = make_config(lake, sources, topics={"enabled": False})
    first = run_pipeline(config, only=["preprocess"]).outputs["preprocess"]
    second = run_pipeline(config, only=["preprocess"]).outputs["preprocess"]
    assert second["partitions_unchanged"] == second["partitions"] == first["partitions"] > 3
    for key in ("docs", "usable", "not_usable"):
        assert second[key] == first[key], key

    # One post edited (a later retrieval with another text): its partition is rewritten by the merge.
    posts = Lake(lake).read_posts(columns=["uid", "id", "community", "created_at", "month"]).to_pylist()
    post = next(p for p in sorted(posts, key=lambda p: p["uid"]) if p["uid"].startswith("reddit:post:"))
    write_zst(tmp_path / "later" / "edit.zst", [{
        "id": post["id"], "subreddit": post["community"], "created_utc": int(post["created_at"].timestamp()),
        "title": "Fraction strips and number lines", "selftext": "Printable fraction strips for grade four "
        "students, with number line worksheets and answer keys for teachers.", "retrieved_on": 1_700_000_000}])
    later = make_config(lake, [{"kind": "reddit.dumps.v1", "paths": [str(tmp_path / "later" / "*.zst")]}])
    collected = run_collect(later).inputs[0]
    assert collected["updated"] == 1, collected
    third = run_pipeline(config, only=["preprocess"]).outputs["preprocess"]
    assert third["partitions_unchanged"] == third["partitions"] - 1 and third["processed"] == 1
    assert third["partitions_rewritten"] == 1
    docs = Lake(lake).read("docs").to_pylist()
    assert next(d for d in docs if d["uid"] == post["uid"])["lemmas"].startswith("fraction strip")

    rebuilt = tmp_path / "rebuilt" / "lake"
    shutil.copytree(lake, rebuilt)
    shutil.rmtree(rebuilt / "docs")
    shutil.rmtree(rebuilt / "docs_sources")
    full = run_pipeline(make_config(rebuilt, sources, topics={"enabled": False}), only=["preprocess"])
    assert full.outputs["preprocess"]["partitions_unchanged"] == 0
    for key in ("docs", "usable", "not_usable"):
        assert full.outputs["preprocess"][key] == third[key], key
    ordered = ["uid", "kind", "created_at", "text", "lemmas", "n_tokens", "language", "usable", "reason", "text_hash"]
    incremental = Lake(lake).read("docs").select(ordered).sort_by("uid")
    assert incremental.equals(Lake(rebuilt).read("docs").select(ordered).sort_by("uid"))


def test_spacy_loads_without_torch_and_torch_still_imports_after() -> None:
    """thinc imports torch only for layers these pipelines lack: preprocessing a doc must not cost that import,
    and a later stage that needs torch (theme encoders) must still get it."""
    import subprocess
    import sys

    script = ("import sys\n"
              "from edumine.models.text.preprocess import Preprocessor, PreprocessSettings\n"
              "(r,) = Preprocessor(PreprocessSettings()).process([{'title': 'Teaching students fractions', "
              "'body': 'My students struggle with fractions and number lines'}])\n"
              "print('torch' in sys.modules, r.lemmas)\n"
              "import torch\n"
              "print(torch.tensor([1, 2]).sum().item())\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[0].startswith("False ") and "student" in out[0] and "fraction" in out[0]
    assert out[1] == "3"
