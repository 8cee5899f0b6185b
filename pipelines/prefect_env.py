"""Prefect defaults for edumine, set before Prefect is imported (a user's own settings win)."""

from __future__ import annotations

import atexit
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

DEFAULTS = {
    # A flow run with no server configured starts a temporary one: 13-19 s on an idle 2-core machine, so the
    # 20 s default is tight; beside other work (load 11 here) 120 s was not enough: waiting beats failing.
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "300",
    "PREFECT_LOGGING_EXTRA_LOGGERS": "edumine",
    # edumine's loggers also run outside flow runs (tests, the runner without Prefect): no warning for that.
    "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore",
    "PREFECT_RESULTS_PERSIST_BY_DEFAULT": "false",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_UI_ENABLED": "false",
}


def configure_prefect() -> None:
    for key, value in DEFAULTS.items():
        os.environ.setdefault(key, value)
    home = os.environ.get("PREFECT_HOME")
    if home:
        # The temporary server cannot open its database in a folder that does not exist: it fails, and the
        # client then waits out the whole startup timeout before it says anything.
        Path(home).expanduser().mkdir(parents=True, exist_ok=True)


# -- the temporary server ---------------------------------------------------------------------------
# Prefect stops the temporary server it starts for a flow run at interpreter exit (atexit). A SIGTERM kills
# Python without running atexit, and a SIGKILL cannot be caught at all: both left the server running
# (~230 MB each). So edumine stops it on SIGTERM/SIGHUP itself, and notes each server it starts under
# PREFECT_HOME, so that the next edumine process stops one whose owner died.
SERVER_MARKER = "prefect.server.api.server:create_app"


def _records_dir() -> Path:
    home = os.environ.get("PREFECT_HOME") or "~/.prefect"
    return Path(home).expanduser() / "edumine-servers"


def _servers() -> list[Any]:
    launched = [s for s in _LAUNCHED if s.server_process is not None]
    module = sys.modules.get("prefect.server.api.server")
    if module is None:
        return launched
    return launched + [s for s in list(module.SubprocessASGIServer._instances.values())
                       if getattr(s, "server_process", None)]


def _record(pid: int) -> None:
    folder = _records_dir()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{pid}.json").write_text(json.dumps({"server": pid, "owner": os.getpid()}), encoding="utf-8")


# -- starting it early ------------------------------------------------------------------------------
# Prefect starts the temporary server at a flow run's first API call: the run then waits for the server's
# start (its imports, the database), and the flow's process first imports the whole server package itself
# (prefect.server.api.server: ~5 CPU-s, only for the class that launches the subprocess). ``edumine run``
# launches the same server the same way (same command, settings and environment) as soon as the config is
# checked, so it starts while this process imports the pipeline, and the flow reports to it through
# PREFECT_API_URL as to any server. It is stopped and reaped like Prefect's own.
_LAUNCHED: list[LaunchedServer] = []


class LaunchedServer:
    """A temporary Prefect server process started by edumine (``start_server_early``)."""

    def __init__(self, process: subprocess.Popen, port: int) -> None:
        self.server_process: subprocess.Popen | None = process
        self.port = port
        self.api_url = f"http://127.0.0.1:{port}/api"

    def stop(self) -> None:
        process, self.server_process = self.server_process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server_early() -> LaunchedServer | None:
    """Launch the temporary server a flow run would start, now (None where Prefect would start none: an API
    URL is configured, or temporary servers are off). ``wait_for_server`` before the first flow runs.

    The server process is started before this process imports Prefect (4 s at a load of 6): it reads the same
    environment, profile and settings files itself. Where Prefect's settings then say that no temporary server
    is wanted, it is stopped again."""
    import importlib.util

    if os.environ.get("PREFECT_API_URL"):
        return None
    spec = importlib.util.find_spec("prefect")
    if spec is None or spec.origin is None:
        return None
    port = _free_port()
    env = {**os.environ, "PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1", "PREFECT__SERVER_FINAL": "1"}
    process = subprocess.Popen(  # the command Prefect's SubprocessASGIServer runs
        [sys.executable, "-m", "uvicorn", "--app-dir", str(Path(spec.origin).parent.parent), "--factory",
         SERVER_MARKER, "--host", "127.0.0.1", "--port", str(port), "--log-level", "error", "--lifespan", "on"],
        env=env)
    server = LaunchedServer(process, port)
    _LAUNCHED.append(server)
    _record(process.pid)
    atexit.register(stop_servers)

    from prefect.context import refresh_global_settings_context
    from prefect.settings import get_current_settings

    settings = get_current_settings()
    if settings.api.url or not settings.server.ephemeral.enabled:  # a profile names a server, or none is wanted
        _forget(server)
        return None
    os.environ["PREFECT_API_URL"] = server.api_url
    refresh_global_settings_context()  # settings read so far did not have the URL
    return server


def _forget(server: LaunchedServer) -> None:
    pid = server.server_process.pid if server.server_process is not None else None
    server.stop()
    if pid is not None:
        (_records_dir() / f"{pid}.json").unlink(missing_ok=True)


def wait_for_server(server: LaunchedServer | None) -> None:
    """Return once ``server`` answers its health check. A server that exits or does not answer within
    PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS is stopped and forgotten: Prefect then starts its own."""
    if server is None:
        return
    import httpx
    from prefect.context import refresh_global_settings_context

    deadline = time.monotonic() + float(os.environ.get("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", 300))
    with httpx.Client() as client:
        while time.monotonic() < deadline and server.server_process is not None \
                and server.server_process.poll() is None:
            try:
                if client.get(f"{server.api_url}/health").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
    log.warning("the temporary Prefect server started early did not come up; Prefect starts its own")
    _forget(server)
    if os.environ.get("PREFECT_API_URL") == server.api_url:
        del os.environ["PREFECT_API_URL"]
        refresh_global_settings_context()


def note_servers() -> None:
    """Record the temporary servers this process runs (call once a flow has started)."""
    for server in _servers():
        _record(server.server_process.pid)


def stop_servers() -> None:
    """Stop the temporary servers this process started, and forget them."""
    for server in _servers():
        pid = server.server_process.pid
        try:
            server.stop()
        except Exception:  # noqa: BLE001  (stopping is best effort on the way out)
            log.debug("could not stop the temporary Prefect server %s", pid, exc_info=True)
        (_records_dir() / f"{pid}.json").unlink(missing_ok=True)
    folder = _records_dir()  # servers Prefect's own exit handler stopped first: their records are ours too
    for record in folder.glob("*.json") if folder.is_dir() else []:
        try:
            if json.loads(record.read_text(encoding="utf-8")).get("owner") == os.getpid():
                record.unlink(missing_ok=True)
        except (OSError, ValueError, AttributeError):
            continue


def reap_orphans() -> list[int]:
    """Stop temporary servers that an edumine process started and left behind when it was killed."""
    stopped = []
    folder = _records_dir()
    for record in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            data = json.loads(record.read_text(encoding="utf-8"))
            server, owner = int(data["server"]), int(data["owner"])
        except (OSError, ValueError, KeyError, TypeError):
            record.unlink(missing_ok=True)
            continue
        if _alive(owner):
            continue
        if _alive(server) and SERVER_MARKER in _cmdline(server):
            os.kill(server, signal.SIGTERM)
            stopped.append(server)
            log.warning("stopped the temporary Prefect server (pid %d) left by a killed edumine (pid %d)",
                        server, owner)
        record.unlink(missing_ok=True)
    return stopped


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    state = Path(f"/proc/{pid}/stat")
    try:
        return state.read_text().split(")", 1)[1].split()[0] != "Z"  # a zombie is dead
    except (OSError, IndexError):
        return True


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return ""


def install_signal_handlers() -> None:
    """SIGTERM and SIGHUP end edumine like Ctrl-C does (cleanly, temporary server stopped); SIGINT too."""
    if threading.current_thread() is not threading.main_thread():
        return

    def handler(signum: int, frame: Any) -> None:
        # The server is stopped at exit (atexit, below), not here: Prefect's API log worker, registered later,
        # drains first. Stopped here, the worker then retried the dead server for a minute before exiting.
        raise SystemExit(128 + signum)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, handler)
    atexit.register(stop_servers)
