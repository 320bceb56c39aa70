"""Migrations upgrade databases that already hold rows: a column added to an existing table is
nullable or has a database default (a Python-side default leaves existing rows without one)."""

from __future__ import annotations

import importlib
import pkgutil

from tortoise.migrations import operations as ops

import migrations


def test_columns_added_to_existing_tables_can_be_filled() -> None:
    offenders = []
    for info in pkgutil.iter_modules(migrations.__path__):
        module = importlib.import_module(f"migrations.{info.name}")
        for operation in module.Migration.operations:
            if not isinstance(operation, ops.AddField):
                continue
            field = operation.field
            if field.null or field.has_db_default():
                continue
            offenders.append(f"{info.name}: {operation.model_name}.{operation.name}")
    assert not offenders, f"add a db_default (or null=True) to: {offenders}"
