"""Real Chromium for page tests: Debian's `chromium`, driven by Playwright, nothing downloaded.

Without Chromium the browser tests are skipped with a message saying how to install it; in CI
(`CI` set) a missing Chromium fails them instead.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("LIFTOFF_TEST_CHROMIUM", "/usr/bin/chromium")

OFFLINE_ARGS = (
    # No name resolves except the loopback address, and anything else goes to a dead proxy:
    # the page can reach the Liftoff server under test and nothing on the internet.
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
    "--proxy-server=http://127.0.0.1:9",
    "--proxy-bypass-list=127.0.0.1",
    "--disable-background-networking",
    "--no-first-run",
    "--no-sandbox",  # tests may run as root
)


def chromium_path() -> str:
    """The Chromium binary; skips the test (fails it in CI) when there is none."""
    found = CHROMIUM if Path(CHROMIUM).is_file() else shutil.which("chromium")
    if found:
        return found
    message = (
        f"Chromium not found at {CHROMIUM}: browser tests need Debian's `chromium` package "
        "(apt-get install -y chromium) or LIFTOFF_TEST_CHROMIUM=/path/to/chromium"
    )
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)
