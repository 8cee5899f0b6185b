import logging
from pathlib import Path

import pytest

from edumine.privacy import Pseudonymiser, load_key
from edumine.pipelines.runner import run_collect

from conftest import CORPORA, make_config
from dumpfiles import comment, submission, write_zst

PLANTED = "PlantedTeacher42"


def test_no_raw_username_anywhere_in_the_lake(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    dump = write_zst(tmp_path / "in" / "RC.zst", [
        submission("p1", author=PLANTED, selftext=f"thanks u/{PLANTED} and /u/{PLANTED.lower()}!",
                   url=f"https://www.reddit.com/user/{PLANTED}/comments/x"),
        comment("c1", "p1", author=PLANTED, body=f"see reddit.com/u/{PLANTED}"),
        f'{{"id": "bad", "author": "{PLANTED}", "subreddit": ',  # quarantined line carrying the name
    ])
    csv_file = tmp_path / "in" / "export.csv"
    csv_file.write_text(f"author,date,post,subreddit\n{PLANTED},2018/12/02,hello u/{PLANTED},teaching\n")
    sources = [{"kind": "reddit.dumps.v1", "paths": [str(dump)]},
               {"kind": "tabular.v1", "paths": [str(csv_file)],
                "columns": {"created": "date", "body": "post", "community": "subreddit", "author": "author"}}]
    ctx = run_collect(make_config(tmp_path / "lake", sources))
    assert ctx.inputs[0]["added"] == 2 and ctx.inputs[0]["quarantined_total"] == 1
    for path in (tmp_path / "lake").rglob("*"):
        if path.is_file():
            assert PLANTED.lower().encode() not in path.read_bytes().lower(), path
    assert PLANTED.lower() not in caplog.text.lower()
    posts = ctx.lake.read_posts(columns=["uid", "author", "body"]).to_pylist()
    pseudonym = Pseudonymiser(b"edumine-test-key-not-secret").author(PLANTED)
    assert {p["author"] for p in posts} == {pseudonym}
    assert all(f"u/{pseudonym}" in p["body"] for p in posts)


def test_pseudonyms_are_keyed_stable_and_case_insensitive() -> None:
    one, other = Pseudonymiser(b"k1"), Pseudonymiser(b"k2")
    assert one.author("Alice") == one.author("alice") == Pseudonymiser(b"k1").author("ALICE")
    assert one.author("Alice") != other.author("Alice")
    assert one.author("[deleted]") is None and one.author(None) is None and one.author("") is None
    assert len(one.author("bob")) == 18 and one.author("bob").startswith("a_")
    assert one.text("email me, no u/ here") == "email me, no u/ here"


def test_key_file_is_created_private_and_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EDUMINE_PSEUDONYM_KEY")
    key_file = tmp_path / "secrets" / "pseudonym.key"
    key = load_key("EDUMINE_PSEUDONYM_KEY", key_file)
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert load_key("EDUMINE_PSEUDONYM_KEY", key_file) == key
    monkeypatch.setenv("EDUMINE_PSEUDONYM_KEY", "from-env")
    assert load_key("EDUMINE_PSEUDONYM_KEY", key_file) == b"from-env"


def test_key_never_reaches_the_manifest(tmp_path: Path) -> None:
    sources = [{"kind": "tabular.v1", "paths": [str(CORPORA / "reddit-teaching-2018-19" / "*.csv")],
                "columns": {"created": "date", "body": "post", "community": "subreddit", "author": "author"}}]
    ctx = run_collect(make_config(tmp_path / "lake", sources))
    text = ctx.manifest_path.read_text()
    assert "edumine-test-key-not-secret" not in text and ctx.pseudonymiser.key_id in text
