"""configs/staudt-willet-carpenter-2021.yaml run on the shared corpora (paths and communities given with --set),
and the report's table in the paper's shape: metrics as rows, community x semester as columns."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from conftest import CORPORA, ROOT

CONFIG = ROOT / "configs" / "staudt-willet-carpenter-2021.yaml"
DUMPS = CORPORA / "reddit-teaching-2017-18"
COMMUNITIES = ["teachingresources", "teaching"]


@pytest.fixture(scope="module")
def replication(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from edumine.config import load_config
    from edumine.pipelines.runner import run_pipeline

    base = tmp_path_factory.mktemp("swc2021")
    overrides = [f"lake={base / 'lake'}", f"privacy.key_file={base / 'pseudonym.key'}",
                 f"sources.0.paths=[{json.dumps(str(DUMPS / '*.zst'))}]",
                 f"sources.0.subreddits={json.dumps(COMMUNITIES)}",
                 f"paper_table.communities={json.dumps(COMMUNITIES)}"]
    ctx = run_pipeline(load_config(CONFIG, overrides))
    manifest = json.loads(ctx.manifest_path.read_text())
    assert manifest["status"] == "completed"
    assert set(manifest["outputs"]) >= {"metrics", "paper_table", "report"}
    assert not {"preprocess", "topics", "lineage", "themes"} & set(manifest["outputs"])
    return base / "lake"


def raw_posts_per_semester() -> pd.Series:
    """Posts per community and semester straight from the Pushshift dumps, without the pipeline."""
    import zstandard

    rows = []
    for path in DUMPS.glob("*_submissions.zst"):
        with open(path, "rb") as handle:
            text = zstandard.ZstdDecompressor(max_window_size=2**31).stream_reader(handle).read().decode()
        rows += [json.loads(line) for line in text.splitlines() if line.strip()]
    frame = pd.DataFrame(rows)
    frame = frame[frame["subreddit"].str.lower().isin(COMMUNITIES)].drop_duplicates("id")
    created = pd.to_datetime(frame["created_utc"].astype(float), unit="s")
    label = created.dt.year.astype(str) + "H" + (1 + (created.dt.month > 6)).astype(str)
    return frame.groupby([frame["subreddit"].str.lower(), label]).size()


def test_the_table_has_the_papers_shape_and_the_pipelines_numbers(replication: Path) -> None:
    from edumine.report.paper import PAPER_METRICS, paper_wide

    long = pd.read_parquet(replication / "paper_table")
    wide = paper_wide(long)
    assert list(wide.index) == PAPER_METRICS                                     # metrics as rows, in order
    assert list(wide.columns) == [(c, w) for c in COMMUNITIES for w in ("2017H2", "2018H1")]  # community x semester

    activity = pd.read_parquet(replication / "community_activity")
    for _, row in activity.iterrows():
        for metric in PAPER_METRICS:
            value = wide.loc[metric, (row["community"], row["window_label"])]
            assert (pd.isna(value) and pd.isna(row[metric])) or value == pytest.approx(row[metric]), metric
    raw = raw_posts_per_semester()
    for (community, label), count in raw.items():
        assert wide.loc["posts", (community, label)] == count
    assert wide.loc["comments", ("teaching", "2017H2")] == 0                     # posts-only dump: no comments...
    assert pd.isna(wide.loc["response_rate", ("teaching", "2017H2")])             # ...so rates are unknown


def test_the_report_shows_it(replication: Path) -> None:
    page = (replication / "report.html").read_text(encoding="utf-8")
    section = re.search(r'<section id="paper_table" data-status="ok">(.*?)</section>', page, re.S)
    assert section, "no paper_table section"
    body = section.group(1)
    assert "Staudt Willet &amp; Carpenter, 2021" in body
    assert re.findall(r'<th colspan="(\d)">r/(\w+)</th>', body) == [("2", "teachingresources"), ("2", "teaching")]
    rows = re.findall(r"<tr><th>(\w+)</th>", body.split("<tbody>")[1])
    from edumine.report.paper import PAPER_METRICS

    assert rows == PAPER_METRICS
    posts = re.search(r"<tr><th>posts</th>(.*?)</tr>", body).group(1)
    raw = raw_posts_per_semester()
    assert re.findall(r'<td class="num">([\d,]+)</td>', posts) == \
        [f"{raw[(c, w)]:,}" for c in COMMUNITIES for w in ("2017H2", "2018H1")]


def test_bad_metric_names_are_config_errors(tmp_path: Path) -> None:
    from edumine.config import load_config
    from edumine.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown metrics"):
        load_config(CONFIG, [f"lake={tmp_path}", "paper_table.metrics=[posts, replies]"])
