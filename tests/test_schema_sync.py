"""The committed schema.graphql is the schema the code serves."""

from __future__ import annotations

import difflib
from pathlib import Path

from app.graphql.schema import export_sdl

SCHEMA_FILE = Path(__file__).resolve().parents[1] / "schema.graphql"


def test_committed_schema_matches_the_code() -> None:
    committed = SCHEMA_FILE.read_text() if SCHEMA_FILE.exists() else ""
    current = export_sdl()
    diff = "".join(
        difflib.unified_diff(
            committed.splitlines(keepends=True),
            current.splitlines(keepends=True),
            "schema.graphql (committed)",
            "export_sdl() (code)",
            n=2,
        )
    )
    assert current == committed, (
        f"{SCHEMA_FILE.name} is out of date; run `liftoff export-schema` and commit it.\n"
        + diff[:4000]
    )
