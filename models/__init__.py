"""Pure model code, by concern: text/, embeddings/, topics/, lineage/, themes/, participation.

Installed as ``edumine.models``; the folder name alone is not a package to import."""

if __name__ != "edumine.models":  # run from the repo root, `import models` would load a second copy
    raise ImportError("import edumine.models, not models: the folder models/ installs as edumine.models")
