"""The embedded PostgreSQL stops with the server on SIGHUP, SIGINT and SIGTERM, survives a crash.

Real `liftoff serve` processes on one data folder, stopped with real signals; a SIGKILLed one
leaves its server and its pid behind, and the next start adopts that server and still stops
it cleanly. Also the container's default command: no configuration, the embedded default.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.processes import (
    ROOT,
    LiftoffServer,
    liftoff_env,
    stop_embedded_postgres,
)

pytestmark = [pytest.mark.e2e, pytest.mark.embedded]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("lifecycle") / "data"
    folder.mkdir()
    yield folder
    stop_embedded_postgres(folder / "pgdata")


def postmaster_pid(pgdata: Path) -> int | None:
    """The running postmaster of `pgdata`, if any."""
    try:
        pid = int((pgdata / "postmaster.pid").read_text().split()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    return pid


def wait_stopped(pgdata: Path, within: float = 30) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if postmaster_pid(pgdata) is None:
            return True
        time.sleep(0.2)
    return False


def serve(data_dir: Path, name: str, *args: str) -> LiftoffServer:
    env = liftoff_env({"LIFTOFF_DATA_DIR": str(data_dir)})
    return LiftoffServer(env=env, log_path=data_dir / f"{name}.log", args=list(args)).start()


def stop_with(server: LiftoffServer, sig: signal.Signals, timeout: float = 60) -> int:
    process = server._process
    assert process is not None
    process.send_signal(sig)
    try:
        return process.wait(timeout=timeout)
    finally:
        server.stop()  # only acts if it is still running


@pytest.mark.parametrize(
    "sig", [signal.SIGHUP, signal.SIGINT, signal.SIGTERM], ids=lambda s: s.name
)
def test_each_stop_signal_stops_the_embedded_postgres(data_dir: Path, sig: signal.Signals) -> None:
    pgdata = data_dir / "pgdata"
    # `serve` keeps a SIGHUP its parent ignores ignored (as under nohup), so the server is
    # started with the default disposition whatever the test runner was started with
    inherited = signal.signal(signal.SIGHUP, signal.SIG_DFL)
    try:
        server = serve(data_dir, f"stop-{sig.name}")
    finally:
        signal.signal(signal.SIGHUP, inherited)
    assert postmaster_pid(pgdata) is not None
    stop_with(server, sig)
    output = server.output()
    assert wait_stopped(pgdata), (
        f"{sig.name} left the embedded PostgreSQL running:\n{output[-3000:]}"
    )
    assert "Traceback" not in output, output[-3000:]
    # pg_ctl's command lines and output are DEBUG, not INFO
    assert "pg_ctl" not in output and "Running commandline" not in output, output[-3000:]
    assert json.loads((pgdata / ".handle_pids.json").read_text()) == []


def test_a_crash_leaves_a_server_that_the_next_start_adopts_and_stops(data_dir: Path) -> None:
    pgdata = data_dir / "pgdata"
    crashed = serve(data_dir, "crashed")
    crashed_pid = crashed.pid
    postgres = postmaster_pid(pgdata)
    assert crashed._process is not None and postgres is not None
    crashed._process.kill()  # no shutdown code runs
    crashed._process.wait()
    crashed.stop()
    assert postmaster_pid(pgdata) == postgres  # left running, its user list holds a dead pid
    assert crashed_pid in json.loads((pgdata / ".handle_pids.json").read_text())

    again = serve(data_dir, "adopting")
    assert postmaster_pid(pgdata) == postgres  # adopted, not restarted
    assert httpx.get(f"{again.url}/healthz", timeout=10).status_code == 200
    stop_with(again, signal.SIGTERM)
    assert wait_stopped(pgdata), again.output()[-3000:]


def test_a_server_that_died_with_the_crash_is_restarted(data_dir: Path) -> None:
    pgdata = data_dir / "pgdata"
    crashed = serve(data_dir, "crashed-both")
    postgres = postmaster_pid(pgdata)
    assert crashed._process is not None and postgres is not None
    crashed._process.kill()
    crashed._process.wait()
    crashed.stop()
    stop_embedded_postgres(pgdata)  # the server is gone too; the pid list still names the dead
    assert postmaster_pid(pgdata) is None
    restarted = serve(data_dir, "restarted")
    assert postmaster_pid(pgdata) not in (None, postgres)
    stop_with(restarted, signal.SIGTERM)
    assert wait_stopped(pgdata), restarted.output()[-3000:]


def docker_default_command() -> list[str]:
    """The Dockerfile's CMD (the arguments after the `liftoff` entrypoint)."""
    text = (ROOT / "Dockerfile").read_text()
    found = re.search(r"^CMD (\[.*\])\s*$", text, re.MULTILINE)
    assert found, "the Dockerfile has no JSON-form CMD"
    command: list[str] = json.loads(found.group(1))
    return command


def test_the_image_default_command_starts_without_any_configuration(tmp_path: Path) -> None:
    command = docker_default_command()
    assert command[0] == "serve"
    env = liftoff_env({"LIFTOFF_DATA_DIR": str(tmp_path / "data")})  # as the image: no URLs
    server = LiftoffServer(
        env=env, log_path=tmp_path / "image.log", args=command[1:], host="127.0.0.1"
    )
    # The image binds 0.0.0.0; LiftoffServer adds --host 127.0.0.1 --port N before these args,
    # and the CMD's own --host comes last, so the server listens on every interface.
    with server:
        assert (
            httpx.get(f"http://127.0.0.1:{server.port}/healthz", timeout=10).json()["status"]
            == "ok"
        )
    assert server.stopped_gracefully, server.output()[-3000:]
    assert wait_stopped(tmp_path / "data" / "pgdata")


def test_compose_refuses_to_start_without_a_secret() -> None:
    import yaml

    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    secrets = {
        name: service["environment"]["LIFTOFF_SECRET_KEY"]
        for name, service in compose["services"].items()
        if "LIFTOFF_SECRET_KEY" in (service.get("environment") or {})
    }
    assert {"api", "worker", "migrate"} <= set(secrets)
    for value in secrets.values():
        assert value.startswith("${LIFTOFF_SECRET_KEY:?"), value  # required: no placeholder
    probe = (
        subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
        if (Path("/usr/bin/docker").exists() or Path("/usr/local/bin/docker").exists())
        else None
    )
    if probe is not None and probe.returncode == 0:
        env = {k: v for k, v in os.environ.items() if k != "LIFTOFF_SECRET_KEY"}
        done = subprocess.run(
            ["docker", "compose", "config", "--quiet"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
        )
        assert done.returncode != 0 and "LIFTOFF_SECRET_KEY" in done.stderr, done.stderr
