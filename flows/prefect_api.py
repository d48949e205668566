"""The Prefect API a command's flow runs report to: a real server, or a temporary one of our own.

With ``PREFECT_API_URL`` set (``prefect server start``, Prefect Cloud, the test harness), runs go
there. Without it, :func:`prefect_api` starts Prefect's temporary local server itself, instead of
letting Prefect start one on first use, for three reasons:

* **start-up time.** On a busy 2-core machine the server can need more than Prefect's default 20 s
  to answer. The wait here defaults to :data:`DEFAULT_STARTUP_TIMEOUT` seconds (unless the user set
  ``PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS``), and if the server still does not answer,
  :class:`PrefectServerError` says so in one line with what to do, instead of a traceback.
* **no orphans.** The server is a child process (uvicorn). If the command is killed (``kill -9``,
  the OOM killer), nothing would stop it: on Linux it is started with a parent-death signal, so
  the kernel terminates it when the command dies, however it dies.
* **one server per command.** Dask workers and every flow of the command report to the same one.
"""

from __future__ import annotations

import inspect
import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING

from schemas.errors import MobilityError

if TYPE_CHECKING:
    from collections.abc import Iterator

    import httpx

STARTUP_TIMEOUT_ENV = "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"
HTTP_OK = 200
DEFAULT_STARTUP_TIMEOUT = 120
"""Seconds to wait for the temporary server (Prefect's own default, 20 s, is too short on a busy
2-core machine: its database migrations alone can take that long)."""

# Run as ``python -c _DIE_WITH_PARENT PARENT_PID ARGS...``: ask the kernel to send SIGTERM to this
# process when its parent dies (PR_SET_PDEATHSIG = 1), then become ARGS. The setting survives
# exec. If the parent died before the request was made, exit at once.
_DIE_WITH_PARENT = """\
import ctypes, os, signal, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.prctl(1, signal.SIGTERM, 0, 0, 0)
if os.getppid() != int(sys.argv[1]):
    sys.exit(1)
os.execv(sys.argv[2], sys.argv[2:])
"""


class PrefectServerError(MobilityError):
    """The temporary Prefect server could not be started. CLI exit status 1."""


def startup_timeout() -> int:
    """Seconds to wait for the temporary server: the user's setting, else our default."""
    raw = os.environ.get(STARTUP_TIMEOUT_ENV)
    if raw is None:
        return DEFAULT_STARTUP_TIMEOUT
    try:
        return max(1, int(float(raw)))
    except ValueError:
        return DEFAULT_STARTUP_TIMEOUT


def api_unhealthy(url: str, client: httpx.Client | None = None) -> str | None:
    """Why the Prefect API at ``url`` (``…/api``) does not answer its health check, or None when
    it does."""
    import httpx  # noqa: PLC0415

    try:
        if client is None:
            response = httpx.get(f"{url.rstrip('/')}/health", timeout=10)
        else:
            response = client.get(f"{url.rstrip('/')}/health")
    except httpx.HTTPError as exc:
        return str(exc) or type(exc).__name__
    if response.status_code != HTTP_OK:
        return f"its health check answered HTTP {response.status_code}"
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class TemporaryServer:
    """Prefect's temporary API server (its app under uvicorn) in a child process tied to this one.

    The same app and settings Prefect's own temporary server uses (no UI, the profile's
    database), started through :data:`_DIE_WITH_PARENT` on Linux.
    """

    def __init__(self) -> None:
        self.port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def api_url(self) -> str:
        """The API's base URL, as ``PREFECT_API_URL`` takes it."""
        return f"http://127.0.0.1:{self.port}/api"

    def _command(self) -> list[str]:
        import prefect  # noqa: PLC0415 - slow import

        uvicorn = [
            sys.executable, "-m", "uvicorn",
            "--app-dir", str(prefect.__module_path__.parent),
            "--factory", "prefect.server.api.server:create_app",
            "--host", "127.0.0.1", "--port", str(self.port),
            "--log-level", "error", "--lifespan", "on",
        ]  # fmt: skip
        if not sys.platform.startswith("linux"):
            return uvicorn
        return [sys.executable, "-c", _DIE_WITH_PARENT, str(os.getpid()), *uvicorn]

    def start(self, timeout: float) -> None:
        """Start the server and wait until it answers; :class:`PrefectServerError` if it does
        not within ``timeout`` seconds, or exits."""
        import httpx  # noqa: PLC0415
        from prefect.settings import get_current_settings  # noqa: PLC0415 - slow import

        env = {
            **os.environ,
            **get_current_settings().to_environment_variables(exclude_unset=True),
            "PREFECT_UI_ENABLED": "0",
            "PREFECT__SERVER_EPHEMERAL": "1",
            "PREFECT__SERVER_FINAL": "1",
        }
        self.process = subprocess.Popen(self._command(), env=env)  # noqa: S603 - our interpreter
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    why = f"the server process exited with status {self.process.returncode}"
                    raise PrefectServerError(_startup_failed(why, timeout))
                if api_unhealthy(self.api_url, client) is None:
                    return
                time.sleep(0.2)
        self.stop()
        raise PrefectServerError(_startup_failed(f"no answer within {timeout:g} s", timeout))

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 5 s)."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _startup_failed(why: str, timeout: float) -> str:
    return (
        f"The temporary Prefect server did not start ({why}). The machine may be busy: raise "
        f"the wait with {STARTUP_TIMEOUT_ENV}={max(300, int(2 * timeout))}, or start a server "
        "once (`prefect server start`) and set PREFECT_API_URL=http://127.0.0.1:4200/api so "
        "that commands use it."
    )


@contextmanager
def prefect_api() -> Iterator[str]:
    """The URL of the Prefect API for this block: ``PREFECT_API_URL``, or a temporary server.

    The temporary server is stopped when the block ends, and dies with this process if it is
    killed. Raises :class:`PrefectServerError` if it does not answer within
    :func:`startup_timeout` seconds.
    """
    from prefect.settings import PREFECT_API_URL, temporary_settings  # noqa: PLC0415 - slow

    url = PREFECT_API_URL.value()
    if url:
        yield str(url)
        return
    server = TemporaryServer()
    try:
        server.start(startup_timeout())
        with temporary_settings({PREFECT_API_URL: server.api_url}):
            try:
                yield str(server.api_url)
            finally:
                _drain_to(server)
    finally:
        server.stop()


def _drain_to(server: TemporaryServer) -> None:
    """Send the logs and events still queued in this process before the server stops (else
    the last lines of a run never reach it, and Prefect prints "Error logging to API")."""
    if server.process is None or server.process.poll() is not None:
        return
    from prefect.events.worker import EventsWorker  # noqa: PLC0415 - slow import
    from prefect.logging.handlers import APILogWorker  # noqa: PLC0415
    from prefect.utilities.asyncutils import run_coro_as_sync  # noqa: PLC0415

    async def drain() -> None:
        try:
            logs = APILogWorker.instance().drain()
            if inspect.isawaitable(logs):
                await logs
        except RuntimeError:  # the worker never started
            pass
        events = EventsWorker.drain_all()
        if inspect.isawaitable(events):
            await events

    run_coro_as_sync(drain())
