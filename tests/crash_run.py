"""One pipeline run for tests/test_crash_matrix.py, in its own process so that a kill point can SIGKILL it.

    python tests/crash_run.py SETTINGS.json

SETTINGS.json holds the config data (``load_config(data=...)``); ``EDUMINE_KILL_AT`` picks the kill point.
"""

import json
import sys

from edumine.config import load_config
from edumine.pipelines.runner import run_pipeline

if __name__ == "__main__":
    with open(sys.argv[1], encoding="utf-8") as handle:
        run_pipeline(load_config(data=json.load(handle)))
