"""Scheduled runs as a data holder meets them: a real Prefect server on loopback, ``mobility
serve``, and runs triggered with ``prefect deployment run``; plus the commands' temporary server.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import psutil
import pytest

import flows
from flows.deployments import deployments
from flows.prefect_api import api_unhealthy
from sample_data.synth import SynthConfig, generate
from schemas.workspace import Workspace
from tests.conftest import KEY_ENVIRON, workspace_with_policy

if TYPE_CHECKING:
    from collections.abc import Iterator

    from prefect.client.schemas.objects import FlowRun

BIN = Path(sys.executable).parent
TIME_ZONE = "America/Bogota"  # not the template's default, so the test sees it carried over
DAILY_RELEASES = 7  # six daily indicators, mobility_distance in two value columns


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _environ(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_SERVER_ANALYTICS_ENABLED="false", **KEY_ENVIRON, **extra)
    return env


def _workspace(root: Path, start: dt.date, days: int) -> Path:
    export = root / "export"
    generate(SynthConfig(subscribers=1_200, days=days, start=start, seed=5), export)
    ws = workspace_with_policy(root / "ws", export)
    config = (ws / "mobility.toml").read_text()
    (ws / "mobility.toml").write_text(
        config.replace('timezone = "Africa/Lagos"', f'timezone = "{TIME_ZONE}"', 1)
    )
    shutil.copytree(export / "raw", ws / "drops")
    return ws


# --- the module layout -----------------------------------------------------------------------


def _module_names(folder: Path) -> set[str]:
    return {
        p.stem if p.suffix == ".py" else p.name
        for p in folder.iterdir()
        if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").exists()
    }


def test_no_project_module_shadows_an_installed_package() -> None:
    # A file-path entrypoint puts its folder on sys.path: `flows/distributed.py` there once hid
    # Dask's `distributed` and made every deployment run fail in 0 s. Deployments now load by
    # module path, and no module of a package folder is named like an installed one.
    installed = set(importlib.metadata.packages_distributions()) | set(sys.stdlib_module_names)
    root = Path(flows.__file__).parent.parent
    folders = [  # not in hidden folders: virtual environments (.venv, a benchmark's), caches
        p.parent
        for p in root.glob("*/**/__init__.py")
        if not any(part.startswith(".") for part in p.relative_to(root).parts)
    ]
    assert root / "flows" in folders
    clashes = {
        f"{folder.relative_to(root)}/{name}"
        for folder in folders
        for name in _module_names(folder) & installed
    }
    assert clashes == set()


def test_deployments_carry_the_time_zone_a_module_entrypoint_and_one_run_at_a_time(
    tmp_path: Path,
) -> None:
    ws = Workspace.open(_workspace(tmp_path, dt.date(2026, 3, 2), 1))
    daily, backfill = deployments(ws)
    assert (daily.name, backfill.name) == ("daily", "backfill")
    schedule = daily.schedules[0].schedule
    assert (schedule.cron, schedule.timezone) == ("0 6 * * *", TIME_ZONE)
    assert backfill.schedules == []
    for deployment in (daily, backfill):
        assert deployment.entrypoint in {"flows.daily.daily_flow", "flows.daily.backfill_flow"}
        assert deployment.concurrency_limit == 1
        assert deployment.parameters["workspace"] == str(ws.root)


# --- a real server, `mobility serve`, `prefect deployment run` --------------------------------


@pytest.fixture
def prefect_server(tmp_path: Path) -> Iterator[dict[str, str]]:
    """`prefect server start` on a free loopback port with its own PREFECT_HOME; yields the
    environment that points at it."""
    port = _free_port()
    home = tmp_path / "prefect-home"
    env = _environ(PREFECT_HOME=str(home), PREFECT_UI_ENABLED="false")
    log = (tmp_path / "server.log").open("wb")
    server = subprocess.Popen(
        [BIN / "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    api = f"http://127.0.0.1:{port}/api"
    try:
        _wait_for(lambda: api_unhealthy(api) is None, 180, "the Prefect server to answer")
        yield {**env, "PREFECT_API_URL": api}
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        log.close()


def _wait_for(condition: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.5)
    pytest.fail(f"timed out after {seconds} s waiting for {what}")


def _trigger(env: dict[str, str], deployment: str, **params: str) -> str:
    args = [BIN / "prefect", "--no-prompt", "deployment", "run", deployment]
    for name, value in params.items():
        args += ["--param", f"{name}={value}"]
    out = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120, check=True)
    for line in out.stdout.splitlines():
        if "UUID:" in line:
            return line.split("UUID:")[1].strip()
    raise AssertionError(out.stdout + out.stderr)


def _finished(env: dict[str, str], run_id: str, seconds: float = 300) -> FlowRun:
    from prefect.client.orchestration import get_client  # noqa: PLC0415
    from prefect.settings import PREFECT_API_URL, temporary_settings  # noqa: PLC0415

    with (
        temporary_settings({PREFECT_API_URL: env["PREFECT_API_URL"]}),
        get_client(sync_client=True) as client,
    ):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            run = client.read_flow_run(run_id)
            if run.state is not None and run.state.is_final():
                return run
            time.sleep(1)
    pytest.fail(f"flow run {run_id} did not finish in {seconds} s")


def _deployment(env: dict[str, str], name: str) -> Any:
    """The deployment ``name`` as the server holds it, or None while it is not registered."""
    from prefect.client.orchestration import get_client  # noqa: PLC0415
    from prefect.exceptions import ObjectNotFound  # noqa: PLC0415
    from prefect.settings import PREFECT_API_URL, temporary_settings  # noqa: PLC0415

    with (
        temporary_settings({PREFECT_API_URL: env["PREFECT_API_URL"]}),
        get_client(sync_client=True) as client,
    ):
        try:
            return client.read_deployment_by_name(name)
        except ObjectNotFound:
            return None


def _logs(env: dict[str, str], run_id: str) -> str:
    from prefect.client.orchestration import get_client  # noqa: PLC0415
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId  # noqa: PLC0415
    from prefect.settings import PREFECT_API_URL, temporary_settings  # noqa: PLC0415

    with (
        temporary_settings({PREFECT_API_URL: env["PREFECT_API_URL"]}),
        get_client(sync_client=True) as client,
    ):
        logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])))
    return "\n".join(log.message for log in logs)


def _mobility(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [BIN / "mobility", *args], env=env, capture_output=True, text=True, timeout=300,
        check=False,
    )  # fmt: skip


@pytest.mark.slow
def test_served_deployments_run_to_completion_on_a_real_server(
    tmp_path: Path, prefect_server: dict[str, str]
) -> None:
    env = prefect_server
    today = dt.datetime.now(ZoneInfo(TIME_ZONE)).date()
    scheduled = today - dt.timedelta(days=1)  # the template's lag_days
    earlier = scheduled - dt.timedelta(days=1)
    root = _workspace(tmp_path, earlier, 2)
    log = (tmp_path / "serve.log").open("wb")
    serve = subprocess.Popen(
        [BIN / "mobility", "serve", "--workspace", str(root)],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        _wait_for(
            lambda: b"Serving" in (tmp_path / "serve.log").read_bytes(), 120, "mobility serve"
        )
        # Both deployments are registered; the server holds the schedule in the workspace's zone.
        for name in ("mobility-daily/daily", "mobility-backfill/backfill"):
            _wait_for(lambda name=name: _deployment(env, name) is not None, 120, name)
        schedule = _deployment(env, "mobility-daily/daily").schedules[0].schedule
        assert (getattr(schedule, "cron", None), schedule.timezone) == ("0 6 * * *", TIME_ZONE)
        # Two runs at once: the schedule's (no parameters) and one day by hand.
        plain = _trigger(env, "mobility-daily/daily")
        by_hand = _trigger(env, "mobility-daily/daily", day=str(earlier))
        runs = [_finished(env, plain), _finished(env, by_hand)]
        for run in runs:
            assert run.state is not None
            assert run.state.is_completed(), (run.state, _logs(env, str(run.id)))
        assert runs[0].parameters.get("day") is None
        # One run of the deployment at a time: the second waited for the first.
        assert all(r.start_time is not None and r.end_time is not None for r in runs)
        first, second = sorted(runs, key=lambda r: str(r.start_time))
        assert first.end_time is not None
        assert second.start_time is not None
        assert first.end_time <= second.start_time

        ledger = _mobility(env, "audit", "verify", "--workspace", str(root), "--json")
        assert ledger.returncode == 0, ledger.stdout + ledger.stderr
        verified = json.loads(ledger.stdout)
        assert verified["passed"]
        assert verified["pending"] == 0
        released = sorted((root / "releases").glob("*/*/metadata.json"))
        assert len(released) == 2 * DAILY_RELEASES
        days = {json.loads(p.read_text())["period"]["start"] for p in released}
        assert days == {str(earlier), str(scheduled)}

        # A backfill over both days, as a deployment run: every release is the stored one.
        backfill = _finished(
            env,
            _trigger(env, "mobility-backfill/backfill", start=str(earlier), end=str(scheduled)),
        )
        assert backfill.state is not None
        assert backfill.state.is_completed(), _logs(env, str(backfill.id))
        assert sorted((root / "releases").glob("*/*/metadata.json")) == released
        again = _mobility(env, "audit", "verify", "--workspace", str(root), "--json")
        assert json.loads(again.stdout)["head"] == verified["head"]  # nothing charged again

        # A day without data fails, and says why and what to do in the run's logs and state.
        no_data = str(today + dt.timedelta(days=30))
        empty = _finished(env, _trigger(env, "mobility-daily/daily", day=no_data))
        assert empty.state is not None
        assert empty.state.is_failed()
        assert "No data for" in (empty.state.message or "")
        assert "Put the operator's export" in _logs(env, str(empty.id))
    finally:
        os.killpg(serve.pid, signal.SIGTERM)
        serve.wait(timeout=60)
        log.close()


# --- the commands' temporary server ------------------------------------------------------------


@pytest.fixture
def one_day(tmp_path: Path) -> Path:
    return _workspace(tmp_path, dt.date(2026, 3, 2), 1)


@pytest.mark.slow  # a cold `mobility run` process waiting on its temporary server
def test_a_temporary_server_that_does_not_start_in_time_is_one_clear_line(one_day: Path) -> None:
    env = _environ(PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="1")
    out = _mobility(env, "run", "--date", "2026-03-02", "--workspace", str(one_day))
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("error: The temporary Prefect server did not start")
    assert "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS" in lines[0]
    assert "PREFECT_API_URL" in lines[0]


def _server_children(pid: int) -> list[psutil.Process]:
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    return [c for c in children if "uvicorn" in " ".join(c.cmdline())]


@pytest.mark.slow
def test_killing_a_run_leaves_no_temporary_server_behind(one_day: Path) -> None:
    run = subprocess.Popen(
        [BIN / "mobility", "run", "--date", "2026-03-02", "--workspace", str(one_day)],
        env=_environ(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    servers: list[psutil.Process] = []

    def started() -> bool:
        servers[:] = _server_children(run.pid)
        return bool(servers)

    try:
        _wait_for(started, 120, "the run's temporary Prefect server")
    finally:
        run.send_signal(signal.SIGKILL)
        run.wait()
    gone, alive = psutil.wait_procs(servers, timeout=20)
    assert alive == [], [p.cmdline() for p in alive]
    assert gone
