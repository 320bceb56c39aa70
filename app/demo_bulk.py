"""Bulk writing of demo customers: states played by the real engine in memory, rows written
with PostgreSQL COPY, chunk by chunk, in worker processes when there are many.

Each chunk is one transaction on its own connection: customers, workflows, stages, tasks,
event streams and their event history, then whatever the chunk writers add (see
`ChunkWriter`). A chunk's random generator is seeded from (seed, chunk number), so the same
seed gives the same demo however many processes write it.
"""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import asyncpg
from tortoise.models import Model

from app.customers.models import Customer
from app.events.models import EventStream, OutboxEvent
from app.onboarding.definitions import TemplateDef
from app.onboarding.engine import WorkflowState
from app.onboarding.models import Workflow, WorkflowStage, WorkflowTask
from app.onboarding.snapshot import derived

json_text = json.JSONEncoder(separators=(",", ":")).encode


@dataclass(frozen=True)
class ChunkJob:
    """What one chunk needs, picklable for a worker process."""

    connect: dict[str, Any]
    organization_id: uuid.UUID
    template_id: uuid.UUID
    template_version: int
    definition: dict[str, Any]
    now: datetime
    seed: int
    number: int
    people: list[tuple[str, str, str]]
    actor: str


@dataclass
class DemoCustomer:
    """One seeded customer as chunk writers see it: who, since when, and where it stands."""

    id: uuid.UUID
    email: str
    user_type: str
    acquisition_channel: str
    signed_up_at: datetime
    last_activity_at: datetime
    state: WorkflowState


@dataclass
class DemoChunk:
    """A chunk being written: its customers, its open transaction's connection, its random
    generator (seeded for this chunk) and the time the demo is seeded at."""

    organization_id: uuid.UUID
    customers: list[DemoCustomer]
    connection: asyncpg.Connection
    rng: random.Random
    now: datetime
    rows: dict[type[Model], list[dict[str, Any]]] = field(default_factory=dict)


ChunkWriter = Callable[[DemoChunk], Awaitable[None]]
"""Adds more demo data for a chunk's customers inside its transaction (usage history...)."""

CHUNK_WRITERS: list[ChunkWriter] = []
"""Writers run after the onboarding rows of every chunk, in order; domains append theirs."""

_ORDER: tuple[type[Model], ...] = (
    Customer,
    Workflow,
    WorkflowStage,
    WorkflowTask,
    EventStream,
    OutboxEvent,
)


class Table:
    """A model's table for COPY: the columns given per row, plus the model's Python defaults
    for any other column the database cannot fill by itself."""

    def __init__(self, model: type[Model], columns: list[tuple[str, bool]]) -> None:
        self.name = model._meta.db_table
        self.model = model
        self.columns = columns  # (name, the database fills it when omitted)

    @classmethod
    async def of(cls, connection: asyncpg.Connection, model: type[Model]) -> Table:
        rows = await connection.fetch(
            "SELECT column_name, column_default IS NOT NULL OR is_nullable = 'YES' AS optional"
            " FROM information_schema.columns WHERE table_name = $1 AND table_schema ="
            " current_schema() ORDER BY ordinal_position",
            model._meta.db_table,
        )
        return cls(model, [(r["column_name"], r["optional"]) for r in rows])

    def records(self, rows: list[dict[str, Any]]) -> tuple[list[str], list[tuple[Any, ...]]]:
        """The columns to COPY and a tuple per row."""
        if not rows:
            return [], []
        given = rows[0].keys()
        fill: dict[str, Any] = {}
        names = []
        for name, optional in self.columns:
            if name in given:
                names.append(name)
                continue
            default = self._default(name)
            if default is not _NONE:
                fill[name] = default
                names.append(name)
            elif not optional:
                raise RuntimeError(f"demo rows of {self.name} lack required column {name}")
        return names, [tuple(row[n] if n in row else fill[n] for n in names) for row in rows]

    def _default(self, column: str) -> Any:
        f = self.model._meta.fields_map.get(column)
        if f is None or f.default is None:
            return _NONE
        value = f.default() if callable(f.default) else f.default
        return f.to_db_value(value, self.model)


_NONE = object()


@dataclass
class _Template:
    """Per-template constants, encoded once."""

    definition: TemplateDef
    stage_text: dict[str, tuple[str, str, str | None]]  # description, unlock, badge
    task_text: dict[str, tuple[str, str, str, str, str | None]]  # title, desc, deps, help, crit

    @classmethod
    def of(cls, definition: TemplateDef) -> _Template:
        stages, tasks = {}, {}
        for s in definition.stages:
            badge = s.reward.badge.model_dump() if s.reward.badge else None
            stages[s.key] = (
                s.description,
                json_text(s.unlock.model_dump()),
                json_text(badge) if badge else None,
            )
            for t in s.tasks:
                crit = t.success_criterion
                tasks[t.key] = (
                    t.title,
                    t.description,
                    json_text(list(t.depends_on)),
                    json_text([h.model_dump() for h in t.help]),
                    json_text(crit.model_dump()) if crit else None,
                )
        return cls(definition, stages, tasks)


def onboarding_rows(
    out: dict[type[Model], list[dict[str, Any]]],
    template: _Template,
    job: ChunkJob,
    customer: DemoCustomer,
    extra: dict[str, Any],
    history: list[tuple[datetime, str, dict[str, Any]]],
    touched: dict[str, datetime],
    actions: int,
) -> None:
    """The rows of one customer: customer, workflow, stages, tasks, stream and events."""
    org, state, signup, now = job.organization_id, customer.state, customer.signed_up_at, job.now
    workflow_id = uuid.uuid4()
    progress, minutes, current = derived(state)
    out[Customer].append(
        {
            "id": customer.id,
            "organization_id": org,
            "email": customer.email,
            "user_type": customer.user_type,
            "acquisition_channel": customer.acquisition_channel,
            "signed_up_at": signup,
            "created_at": signup,
            "workflow_status": state.status.value,
            **extra,
        }
    )
    out[Workflow].append(
        {
            "id": workflow_id,
            "organization_id": org,
            "customer_id": customer.id,
            "template_id": job.template_id,
            "status": state.status.value,
            "points": state.points,
            "badges": json_text(state.badges),
            "paused": state.paused,
            "reminders_enabled": True,
            "started_at": signup,
            "completed_at": state.completed_at,
            "last_activity_at": customer.last_activity_at,
            "version": actions,
            "progress": progress,
            "minutes_remaining": minutes,
            "current_stage_key": current,
            "created_at": signup,
        }
    )
    stage_ids = {}
    for stage in state.stages:
        description, unlock, badge = template.stage_text[stage.key]
        stage_ids[stage.key] = stage_id = uuid.uuid4()
        out[WorkflowStage].append(
            {
                "id": stage_id,
                "organization_id": org,
                "workflow_id": workflow_id,
                "key": stage.key,
                "name": stage.name,
                "description": description,
                "position": stage.position,
                "status": stage.status.value,
                "unlock": unlock,
                "reward_points": stage.reward_points,
                "reward_badge": badge,
                "unlocked_at": stage.unlocked_at,
                "completed_at": stage.completed_at,
            }
        )
    for task in state.tasks.values():
        title, description, depends, helps, criterion = template.task_text[task.key]
        out[WorkflowTask].append(
            {
                "id": uuid.uuid4(),
                "organization_id": org,
                "workflow_id": workflow_id,
                "stage_id": stage_ids[task.stage_key],
                "key": task.key,
                "title": title,
                "description": description,
                "position": task.position,
                "points": task.points,
                "estimated_minutes": task.estimated_minutes,
                "required": task.required,
                "depends_on": depends,
                "help_resources": helps,
                "success_criterion": criterion,
                "status": task.status.value,
                "progress": task.progress,
                "failure_reason": task.failure_reason,
                "attempts": task.attempts,
                "started_at": task.started_at,
                "completed_at": task.completed_at,
                "updated_at": touched.get(task.key, signup),
            }
        )
    out[EventStream].append(
        {"id": customer.id, "organization_id": org, "last_sequence": len(history)}
    )
    who = f"customer:{customer.email}"
    for seq, (at, kind, payload) in enumerate(history, start=1):
        if "workflow" in payload:
            payload["workflow"]["workflowId"] = str(workflow_id)
        out[OutboxEvent].append(
            {
                "organization_id": org,
                "customer_id": customer.id,
                "stream": customer.id,
                "sequence": seq,
                "type": kind,
                "payload": json_text(payload),
                "actor": job.actor if seq <= 2 else who,
                "created_at": at,
                "published_at": now,  # history: the relay must not publish it again
            }
        )


async def write_chunk(
    connection: asyncpg.Connection, job: ChunkJob, build: Callable[..., DemoChunk]
) -> int:
    """Build one chunk's rows with `build` and COPY them in one transaction."""
    tables = {m: await Table.of(connection, m) for m in _ORDER}
    async with connection.transaction():
        # demo data can be re-seeded: do not wait for each chunk's WAL flush
        await connection.execute("SET LOCAL synchronous_commit TO off")
        chunk = build(job, connection)
        for model in _ORDER:
            names, records = tables[model].records(chunk.rows.pop(model, []))
            if records:
                await connection.copy_records_to_table(
                    tables[model].name, records=records, columns=names
                )
        for writer in CHUNK_WRITERS:
            await writer(chunk)
    return len(job.people)


def run_chunk(job: ChunkJob, build: Callable[..., DemoChunk]) -> int:
    """A worker process's entry: one chunk over a connection of its own."""

    async def go() -> int:
        connection = await asyncpg.connect(**job.connect)
        try:
            return await write_chunk(connection, job, build)
        finally:
            await connection.close()

    return asyncio.run(go())


def chunk_rng(seed: int, number: int) -> random.Random:
    """The random generator of chunk `number` of a demo seeded with `seed`."""
    return random.Random(seed * 1_000_003 + number)


def template_of(definition: dict[str, Any]) -> _Template:
    return _Template.of(TemplateDef.model_validate(definition))


def signup_time(rng: random.Random, now: datetime) -> datetime:
    """A sign-up within the last 90 days, more of them recent."""
    return now - timedelta(seconds=600 + (89.9 * 86400 - 600) * rng.random() ** 1.8)


def split(people: Sequence[tuple[str, str, str]], size: int) -> list[list[tuple[str, str, str]]]:
    return [list(people[i : i + size]) for i in range(0, len(people), size)]
