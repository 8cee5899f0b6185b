"""The pyarrow schema of every derived lake table, as its stage writes it; ``edumine/catalog.py`` points at
these (``posts`` and ``quarantine`` are declared in ``edumine/schema.py``).

They are the one description of a table's columns: ``Lake.write`` casts to them, the summary store and the
report read exactly these columns, and the store and report tests build their fixtures from them
(``tests/fixtures_catalog.py``), so a fixture cannot hold a column that no stage writes. Partition columns
(``platform``, ``community``, ``month`` of ``docs``) live in folder names, not here: the catalog's
``partitioning`` names them.

A column's meaning is documented on the docs page of its stage (``docs/topics.md``, ``docs/lineage.md``,
``docs/themes.md``, ``docs/metrics.md``) and, for the tables the store holds, in ``docs/store.md``.
"""

from __future__ import annotations

import pyarrow as pa

from edumine.schema import TS

_WINDOW = [pa.field("window_start", pa.date32()), pa.field("window_label", pa.string())]

DOCS = pa.schema([
    pa.field("uid", pa.string(), nullable=False), pa.field("kind", pa.string()), pa.field("created_at", TS),
    pa.field("text", pa.string()), pa.field("lemmas", pa.string()), pa.field("n_tokens", pa.int32()),
    pa.field("language", pa.string()), pa.field("usable", pa.bool_()), pa.field("reason", pa.string()),
    pa.field("text_hash", pa.string()), pa.field("config_hash", pa.string()),
])

TOPICS = pa.schema([
    pa.field("topic_id", pa.int64()), pa.field("label", pa.string()), pa.field("top_terms", pa.list_(pa.string())),
    pa.field("term_weights", pa.list_(pa.float64())), pa.field("size", pa.int64()), pa.field("share", pa.float64()),
    pa.field("label_coverage", pa.float64()), pa.field("representative_docs", pa.list_(pa.string())),
    pa.field("representative_uids", pa.list_(pa.string())), pa.field("run_id", pa.string()),
])

DOC_TOPICS = pa.schema([
    pa.field("uid", pa.string()), pa.field("topic_id", pa.int64()), pa.field("probability", pa.float32()),
    pa.field("core", pa.bool_()), pa.field("community", pa.string()), *_WINDOW, pa.field("run_id", pa.string()),
])

TOPIC_PREVALENCE = pa.schema([
    *_WINDOW, pa.field("community", pa.string()), pa.field("topic_id", pa.int64()), pa.field("docs", pa.int64()),
    pa.field("total_docs", pa.int64()), pa.field("share", pa.float64()), pa.field("share_low", pa.float64()),
    pa.field("share_high", pa.float64()), pa.field("run_id", pa.string()),
])

TOPIC_LINEAGE = pa.schema([
    pa.field("community", pa.string()), pa.field("from_window", pa.string()),
    pa.field("from_window_start", pa.date32()), pa.field("from_topic", pa.int64()),
    pa.field("to_window", pa.string()), pa.field("to_window_start", pa.date32()), pa.field("to_topic", pa.int64()),
    pa.field("similarity", pa.float64()),
])

TOPIC_EVENTS = pa.schema([
    pa.field("window_label", pa.string()), pa.field("window_start", pa.date32()), pa.field("community", pa.string()),
    pa.field("scope", pa.string()), pa.field("topic_id", pa.int64()), pa.field("event", pa.string()),
    pa.field("related_topics", pa.list_(pa.int64())), pa.field("from_window", pa.string()),
    pa.field("docs_before", pa.int64()), pa.field("docs_after", pa.int64()),
    *[pa.field(name, pa.float64()) for name in ("prevalence_before", "prevalence_after", "prevalence_before_low",
                                                 "prevalence_before_high", "prevalence_after_low",
                                                 "prevalence_after_high")],
    pa.field("similarity", pa.float64()), pa.field("score", pa.float64()),
])

DOC_THEMES = pa.schema([
    pa.field("uid", pa.string()), pa.field("community", pa.string()), pa.field("created_at", TS),
    pa.field("themes", pa.list_(pa.string())), pa.field("scores", pa.map_(pa.string(), pa.float32())),
    pa.field("model", pa.string()),
])

THEME_PREVALENCE = pa.schema([
    *_WINDOW, pa.field("community", pa.string()), pa.field("theme", pa.string()),
    pa.field("theme_label", pa.string()), pa.field("docs", pa.int64()), pa.field("theme_docs", pa.int64()),
    pa.field("share", pa.float64()), pa.field("share_low", pa.float64()), pa.field("share_high", pa.float64()),
    pa.field("model", pa.string()), pa.field("method", pa.string()), pa.field("f1", pa.float64()),
    pa.field("reliable", pa.bool_()),
])

_COUNTS = ("contributions", "posts", "comments", "unknown_author_contributions", "contributors", "posters",
           "responders", "new_contributors", "returning_contributors", "one_time_contributors")
COMMUNITY_ACTIVITY = pa.schema([
    *_WINDOW, pa.field("platform", pa.string()), pa.field("community", pa.string()),
    *[pa.field(name, pa.int64()) for name in _COUNTS],
    *[pa.field(name, pa.float64()) for name in ("response_rate", "responses_per_thread", "self_response_share")],
    *[pa.field(name, pa.int64()) for name in ("comments_without_post", "reply_nodes", "reply_ties")],
    *[pa.field(name, pa.float64()) for name in ("mean_degree", "reciprocity", "transitivity")],
])

# Nightly state: what the last run's lineage and metrics were computed from (docs/lineage.md, docs/metrics.md).
LINEAGE_WINDOWS = pa.schema([
    pa.field("community", pa.string()), pa.field("window_start", pa.date32()), pa.field("docs", pa.int64()),
    pa.field("fingerprint", pa.int64()), pa.field("basis", pa.string()),
])
THEME_WINDOWS = pa.schema([  # docs/themes.md: what the last run's theme_prevalence groups were computed from
    pa.field("window_start", pa.date32()), pa.field("community", pa.string()), pa.field("docs", pa.int64()),
    pa.field("fingerprint", pa.int64()), pa.field("basis", pa.string()),
])
DOCS_SOURCES = pa.schema([
    pa.field("partition", pa.string()), pa.field("posts_signature", pa.string()), pa.field("config_hash", pa.string()),
    pa.field("docs", pa.int64()), pa.field("usable", pa.int64()), pa.field("reasons", pa.string()),
    pa.field("docs_signature", pa.string()),
])
ACTIVITY_RUNS = pa.schema([pa.field("ingest_run", pa.string()), pa.field("unit", pa.string())])

PAPER_TABLE = pa.schema([
    pa.field("metric_order", pa.int64()), pa.field("metric", pa.string()), pa.field("community_order", pa.int64()),
    pa.field("community", pa.string()), *_WINDOW, pa.field("value", pa.float64()),
])
