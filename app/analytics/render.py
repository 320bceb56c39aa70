"""CSV and JSON files of exported analytics sections (the data the analytics query returned)."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

SECTIONS = ("OVERVIEW", "FUNNEL", "COHORTS", "TRENDS", "FORECAST", "RECOMMENDATIONS", "CUSTOMERS")
CUSTOMER_COLUMNS = (
    "id",
    "email",
    "name",
    "user_type",
    "acquisition_channel",
    "signed_up_at",
    "status",
    "tasks_done_percent",
    "points",
    "completed_at",
    "last_activity_at",
)
_RISKY = ("=", "+", "-", "@", "\t", "\r")

Table = tuple[list[str], list[list[Any]]]

FORECAST_STAGE_KEYS = (
    "stageKey",
    "name",
    "inFlight",
    "completedSample",
    "medianDaysInStage",
    "probabilityStageWithin30Days",
    "probabilityWithin30Days",
    "expectedCompletionsWithin30Days",
)
"""The per-stage forecast figures exported, in column order."""


def safe_cell(value: Any) -> Any:
    """A spreadsheet cannot run it: text starting with = + - @ (or tab, CR) gets a leading '."""
    if isinstance(value, str) and value.startswith(_RISKY):
        return "'" + value
    return value


def _step_rows(steps: Iterable[dict[str, Any]]) -> Iterator[list[Any]]:
    for s in steps:
        for row in (s, *s.get("tasks", [])):
            yield [
                row["stageKey"],
                row.get("taskKey") or "",
                row["name"],
                row["reached"],
                row["completed"],
                row["skipped"],
                row["failed"],
                row["activeHere"],
                row["dropped"],
                row["conversion"],
                row["completionRate"],
                row["dropOffRate"],
                row["medianHours"],
                row["p90Hours"],
            ]


_FIGURES = (
    "customers",
    "started",
    "completed",
    "completionRate",
    "inFlight",
    "activeLast7Days",
    "medianHoursToComplete",
    "p90HoursToComplete",
    "pointsAwarded",
    "badgesAwarded",
)


def tables(section: str, data: dict[str, Any]) -> dict[str, Table]:
    """The CSV tables of one section: file stem -> (header, rows)."""
    if section == "OVERVIEW":
        o = data["overview"]
        return {"overview": (["metric", "value"], [[k, o[k]] for k in _FIGURES])}
    if section == "FUNNEL":
        header = "stage,task,name,reached,completed,skipped,failed,active_here,dropped,"
        header += "conversion,completion_rate,drop_off_rate,median_hours,p90_hours"
        return {"funnel": (header.split(","), list(_step_rows(data["funnel"]["stages"])))}
    if section == "COHORTS":
        c = data["cohorts"]
        rows = [
            [dimension, f["label"], *(f[k] for k in _FIGURES)]
            for dimension, key in (("user_type", "byUserType"), ("channel", "byAcquisitionChannel"))
            for f in c[key]
        ]
        weeks = [[r["week"], r["customers"], *r["completedByWeek"]] for r in c["bySignupWeek"]]
        return {
            "cohorts": (["dimension", "label", *_FIGURES], rows),
            "retention": (
                ["signup_week", "customers", *(f"completed_by_week_{k}" for k in range(14))],
                weeks,
            ),
        }
    if section == "TRENDS":
        t = data["trends"]
        points = [
            [
                p["start"],
                p["signups"],
                p["completions"],
                p["completionRate"],
                p["medianHoursToComplete"],
            ]
            for p in t["points"]
        ]
        changes = [
            [c["metric"], c["current"], c["previous"], c["absoluteChange"], c["relativeChange"]]
            for c in t["changes"]
        ]
        return {
            "trends": (
                ["start", "signups", "completions", "completion_rate", "median_hours"],
                points,
            ),
            "trend_changes": (
                ["metric", "current", "previous", "absolute", "relative_percent"],
                changes,
            ),
        }
    if section == "FORECAST":
        f = data["forecast"]
        summary = [
            [k, f[k]]
            for k in (
                "inFlight",
                "probabilityWithin30Days",
                "expectedCompletionsWithin30Days",
                "expectedDate",
                "completedSample",
                "censoredSample",
                "method",
            )
        ]
        curve = [
            [p["days"], p["stillOnboarding"], p["atRisk"], p["completed"], p["censored"]]
            for p in f["curve"]
        ]
        stages = [[s[k] for k in FORECAST_STAGE_KEYS] for s in f.get("stages", [])]
        return {
            "forecast": (["metric", "value"], summary),
            "forecast_stages": (
                [
                    "stage_key",
                    "stage",
                    "in_flight",
                    "completed_sample",
                    "median_days_in_stage",
                    "probability_stage_within_30_days",
                    "probability_within_30_days",
                    "expected_completions_within_30_days",
                ],
                stages,
            ),
            "survival_curve": (
                ["days", "still_onboarding", "at_risk", "completed", "censored"],
                curve,
            ),
        }
    if section == "RECOMMENDATIONS":
        rows = [
            [
                r["kind"],
                r["message"],
                r["effectSize"],
                r["sampleSize"],
                "; ".join(f"{e['label']}: {e['value']}" for e in r["evidence"]),
            ]
            for r in data["recommendations"]
        ]
        return {
            "recommendations": (["kind", "message", "effect_size", "sample_size", "evidence"], rows)
        }
    raise ValueError(section)


def csv_text(header: Sequence[str] | None, rows: Iterable[Sequence[Any]]) -> str:
    """CSV lines (with `header` first unless None); risky cells neutralised."""
    out = io.StringIO()
    writer = csv.writer(out)
    if header is not None:
        writer.writerow(header)
    for row in rows:
        writer.writerow([safe_cell(v) for v in row])
    return out.getvalue()


def row_count(data: dict[str, Any], sections: Sequence[str]) -> int:
    """Data rows over the stored sections' tables."""
    return sum(
        len(rows) for s in sections if s != "CUSTOMERS" for _, rows in tables(s, data).values()
    )


def stored_files(data: dict[str, Any], sections: Sequence[str]) -> dict[str, str]:
    """file name -> CSV text, for every section but the streamed customers."""
    files: dict[str, str] = {}
    for s in sections:
        if s != "CUSTOMERS":
            for stem, (header, rows) in tables(s, data).items():
                files[f"{stem}.csv"] = csv_text(header, rows)
    return files


def json_document(data: dict[str, Any], scope: dict[str, Any], generated_at: str) -> dict[str, Any]:
    return {"generatedAt": generated_at, "filter": scope, "analytics": data}


class _Sink(io.RawIOBase):
    """A write-only stream whose bytes are taken out as they come (for streamed zips)."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        self.chunks.append(bytes(b))
        return len(b)

    def take(self) -> bytes:
        out = b"".join(self.chunks)
        self.chunks.clear()
        return out


async def stream_zip(files: dict[str, str], customers: Any | None) -> Any:
    """A zip of the stored CSV files, plus customers.csv streamed from `customers` (an async
    iterator of row batches); memory stays bounded by one batch."""
    sink = _Sink()
    with zipfile.ZipFile(sink, mode="w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, text in files.items():
            archive.writestr(name, text.encode())
            yield sink.take()
        if customers is not None:
            with archive.open("customers.csv", mode="w", force_zip64=True) as entry:
                entry.write(csv_text(CUSTOMER_COLUMNS, []).encode())
                async for batch in customers:
                    entry.write(csv_text(None, batch).encode())
                    yield sink.take()
    yield sink.take()


def stored_zip(files: dict[str, str]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, mode="w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return out.getvalue()


def json_bytes(document: dict[str, Any]) -> bytes:
    return json.dumps(document, ensure_ascii=False, indent=1).encode()
