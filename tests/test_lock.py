"""`requirements.lock` (what the Docker image installs) pins every dependency of
pyproject.toml to a version its range allows, with hashes; regenerate it with
`uv pip compile pyproject.toml --python-version 3.11 --universal --generate-hashes
-o requirements.lock` after changing a dependency."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([^\s;\\]+)", re.MULTILINE)


def pinned() -> dict[str, str]:
    text = (ROOT / "requirements.lock").read_text()
    return {canonicalize_name(name): version for name, version in PIN.findall(text)}


def test_every_dependency_is_pinned_within_its_range() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = pinned()
    for line in project["dependencies"]:
        requirement = Requirement(line)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is not in requirements.lock"
        assert requirement.specifier.contains(pins[name], prereleases=True), (line, pins[name])


def test_every_pin_has_a_hash() -> None:
    text = (ROOT / "requirements.lock").read_text()
    assert len(pinned()) > 10
    for block in re.split(r"\n(?=\S)", text.split("\n", 2)[2]):
        assert "--hash=sha256:" in block, block


def test_floors_are_past_known_advisories() -> None:
    pins = pinned()
    floors = {"pyjwt": "2.13.0", "starlette": "1.5.1", "h11": "0.16.0"}
    for name, floor in floors.items():
        assert tuple(map(int, pins[name].split(".")[:3])) >= tuple(map(int, floor.split("."))), (
            name,
            pins[name],
        )
