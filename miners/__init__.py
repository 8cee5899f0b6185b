"""Miners: sources that turn what users bring (dumps, exports, APIs) into lake records.

Each source kind is registered under a versioned name; importing this package registers the built-in
ones. Heavy or optional client libraries are imported inside the sources that need them.
"""

if __name__ != "edumine.miners":  # run from the repo root, `import miners` would load a second copy
    raise ImportError("import edumine.miners, not miners: the folder miners/ installs as edumine.miners")


from edumine.miners import reddit_dumps, tabular  # noqa: F401  (registration side effects)
from edumine.miners import discourse, feeds, reddit_praw, wordpress  # noqa: F401  (live sources; clients load lazily)
from edumine.miners import reddit_arcticshift  # noqa: F401  (live, keyless)
