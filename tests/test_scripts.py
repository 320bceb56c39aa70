"""scripts/serve: installs only when the project's dependencies changed; a busy port stops it first.

The scripts run in a copy of the project's files whose `.venv` holds two recording stand-ins:
`python` passes everything to this interpreter except `-m pip`, which it only logs, and
`liftoff` logs its arguments. So the test sees what the script would install and start.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "scripts").mkdir()
    for name in ("serve", "test", "check", "ensure-venv"):
        shutil.copy(ROOT / "scripts" / name, tmp_path / "scripts" / name)
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    log = tmp_path / "calls.log"
    (bin_dir / "python").write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = "-m" ] && [ "$2" = "pip" ]; then echo "pip $*" >> {log}; exit 0; fi\n'
        f'exec {sys.executable} "$@"\n'
    )
    (bin_dir / "liftoff").write_text(f'#!/bin/sh\necho "liftoff $*" >> {log}\n')
    for tool in ("python", "liftoff"):
        (bin_dir / tool).chmod(0o755)
    return tmp_path


def run_serve(project: Path, port: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", "scripts/serve", "--port", str(port)],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "PYTHON": sys.executable},
    )


def serve(project: Path) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Run scripts/serve on a free port; return the result and what it called."""
    log = project / "calls.log"
    log.unlink(missing_ok=True)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    done = run_serve(project, port)
    calls = log.read_text().splitlines() if log.exists() else []
    return done, calls


def test_serve_installs_only_when_pyproject_changes(project: Path) -> None:
    done, calls = serve(project)
    assert done.returncode == 0, done.stderr
    assert [c.split()[0] for c in calls] == ["pip", "liftoff"], calls
    assert calls[1].startswith("liftoff serve --demo --port ")

    done, calls = serve(project)  # a restart: nothing to install
    assert done.returncode == 0, done.stderr
    assert [c.split()[0] for c in calls] == ["liftoff"], calls

    with (project / "pyproject.toml").open("a") as fh:
        fh.write("\n# a changed dependency\n")
    done, calls = serve(project)
    assert [c.split()[0] for c in calls] == ["pip", "liftoff"], calls


def test_serve_reports_a_busy_port_before_installing(project: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = run_serve(project, port)
    assert done.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr
    assert not (project / "calls.log").exists()  # nothing installed, nothing started
