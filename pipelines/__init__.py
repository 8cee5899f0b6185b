"""Prefect flows, the plain runner and the stages they run.

Installed as ``edumine.pipelines``; the folder name alone is not a package to import."""

if __name__ != "edumine.pipelines":  # run from the repo root, `import pipelines` would load a second copy
    raise ImportError("import edumine.pipelines, not pipelines: the folder pipelines/ installs as edumine.pipelines")
