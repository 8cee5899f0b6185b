"""Link dumps, ad spam and spam series: found from what the community did with the posts, not from their words.

A year of r/teaching has ad and link spam ("Easy Way to Earn Money !! Bangla Tutorial", "Palm Coast Home
Builders & Swimming Pool Contractors", one poster's 40 colouring-page links) and spam series (a poster's blog
posts, "(From the Desk of MargaretB) Part Three: ...", "... Flax Golden Tales » MeroFuture"): link posts whose
whole text is a title, that nobody took up. With semantic vectors the ads form coherent clusters ("tutorial,
earn, money, ways"), so the label-coverage checks of edumine.models.topics.catchall pass them (0.36), and such a
cluster was the ninth largest topic; a series joins whatever cluster its titles are near. Their words do not
give them away; what the community did with them does.

Engagement counts only where it had time to happen: a record retrieved a day or more after it was posted, at a
known time (Pushshift's first ingest read posts seconds after they appeared, when every post had 0 comments and
a score of 1). Where engagement is unknown nothing is marked. Only Reddit link posts (an outside link,
``link_url``, and no body) are: self posts, comments, forum and blog posts never are.

- ``ignored_link_posts``: a link post with no comments and a score of 1 or less (a post starts at 1, its
  author's vote). ``link_dump_topics`` returns the clusters **most** of whose core docs (``link_dump_share``,
  0.5 from ``topics.kmeans.v4`` on) are such posts; the topic model sends them to the outliers as it does a
  catch-all (its core, the docs outside every core nearest it, its centroid kept for nightly updates). A news
  topic of link posts is not one: the teachers' walkout headlines of the same year (69 % link posts) drew
  comments, and 19 % of their core was ignored.
- ``series_sizes``: a link post whose author posted others that nobody took up either (each at most 1 comment
  and a score of at most 2), with how many: an author with ``link_series_min_posts`` (5 from
  ``topics.kmeans.v4`` on) or more such posts, and none taken up, is a spam series, and the topic model sends
  each of those posts to the outliers, whatever cluster it is in. On the same year: the colouring pages (40),
  an ed-tech blog (27), MargaretB (12), TEFL and nursery ads from India (10, 9), Makarios School (9), the "earn
  money" tutorials (7), MeroFuture (6); posters of as many links that drew even a few votes (an Amazon-deals
  poster, a reading-aloud channel, researchers sharing papers) are not series.

``TopicModel.link_dumps_`` marks the docs either rule moved and the run's ``scores.link_dump_share`` gives their
share (docs/topics.md).
"""

from __future__ import annotations

from typing import Any

import numpy as np

MATURE_AFTER_DAYS = 1  # engagement is read only on records retrieved at least this long after posting
SERIES_MAX_COMMENTS, SERIES_MAX_SCORE = 1, 2  # a series post nobody took up: at most this many comments, this score
COLUMNS = ("uid", "author", "kind", "link_url", "body", "num_comments", "score", "created_at", "retrieved_at",
           "retrieval_estimated")


def known_link_posts(posts: Any) -> Any:
    """Boolean array over the rows of ``posts`` (a pyarrow table with ``COLUMNS``): Reddit link posts without a
    body whose engagement is known (retrieved a day or more after posting, at a known time)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    no_body = pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(pc.fill_null(posts["body"], ""))), 0)
    link_post = pc.and_(pc.and_(pc.equal(pc.fill_null(posts["kind"], ""), "post"), pc.is_valid(posts["link_url"])),
                        no_body)
    age = pc.subtract(posts["retrieved_at"].cast(pa.timestamp("us", "UTC")),
                      posts["created_at"].cast(pa.timestamp("us", "UTC")))
    mature = pc.and_(pc.greater_equal(pc.fill_null(age, pa.scalar(0, pa.duration("us"))),
                                      pa.scalar(MATURE_AFTER_DAYS * 86_400_000_000, pa.duration("us"))),
                     pc.invert(pc.fill_null(posts["retrieval_estimated"], False)))
    return pc.and_(link_post, mature)


def ignored_link_posts(posts: Any, known: Any = None) -> Any:
    """Boolean array over the rows of ``posts``: the link posts that the community ignored (no comments, a
    score of 1 or less), where their engagement is known (``known``: ``known_link_posts(posts)``)."""
    import pyarrow.compute as pc

    unanswered = pc.and_(pc.equal(pc.fill_null(posts["num_comments"], -1), 0),
                         pc.less_equal(pc.fill_null(posts["score"], 2), 1))
    return pc.and_(known_link_posts(posts) if known is None else known, unanswered)


def series_sizes(posts: Any, known: Any = None) -> np.ndarray:
    """Per row of ``posts``: for a link post of known engagement whose author's link posts (those of known
    engagement, in ``posts``) nobody took up (each at most ``SERIES_MAX_COMMENTS`` comments and a score of at
    most ``SERIES_MAX_SCORE``), how many such posts the author has; 0 for every other row (``known``:
    ``known_link_posts(posts)``)."""
    import pyarrow.compute as pc

    counted = (known_link_posts(posts) if known is None else known).to_numpy(zero_copy_only=False)
    quiet = pc.and_(pc.less_equal(pc.fill_null(posts["num_comments"], SERIES_MAX_COMMENTS + 1), SERIES_MAX_COMMENTS),
                    pc.less_equal(pc.fill_null(posts["score"], SERIES_MAX_SCORE + 1), SERIES_MAX_SCORE))
    quiet = quiet.to_numpy(zero_copy_only=False)
    authors = pc.fill_null(posts["author"], "").to_numpy(zero_copy_only=False)
    sizes = np.zeros(len(authors), dtype=np.int64)
    rows = np.flatnonzero(counted & (authors != ""))
    if not len(rows):
        return sizes
    names, index = np.unique(authors[rows], return_inverse=True)
    posted = np.bincount(index, minlength=len(names))
    loud = np.bincount(index, weights=(~quiet[rows]).astype(np.float64), minlength=len(names)) > 0
    sizes[rows] = np.where(loud[index], 0, posted[index])
    return sizes


def doc_signals(posts: Any, uids: list[str]) -> dict[str, np.ndarray]:
    """What ``TopicModel.fit`` takes from the posts table, in the order of ``uids`` (a uid without a posts
    row has neither): ``ignored`` (``ignored_link_posts``) and ``series_size`` (``series_sizes``)."""
    known = known_link_posts(posts)
    row_of = {uid: row for row, uid in enumerate(posts["uid"].to_pylist())}
    rows = np.fromiter((row_of.get(uid, -1) for uid in uids), dtype=np.int64, count=len(uids))
    found = rows >= 0
    ignored = np.zeros(len(uids), dtype=bool)
    ignored[found] = ignored_link_posts(posts, known).to_numpy(zero_copy_only=False)[rows[found]]
    sizes = np.zeros(len(uids), dtype=np.int64)
    sizes[found] = series_sizes(posts, known)[rows[found]]
    return {"ignored": ignored, "series_size": sizes}


def link_dump_topics(ignored: np.ndarray, topics: np.ndarray, core: np.ndarray, min_share: float) -> list[int]:
    """Clusters (ids of ``topics``, -1 left out) in which at least ``min_share`` of the core docs are
    ``ignored``; none when ``min_share`` is 0."""
    if min_share <= 0 or not ignored.any():
        return []
    rows = core & (topics != -1)
    ids, counts = np.unique(topics[rows], return_counts=True)
    marked = np.bincount(np.searchsorted(ids, topics[rows & ignored]), minlength=len(ids))
    return [int(t) for t, m, n in zip(ids, marked, counts) if m >= min_share * n]
