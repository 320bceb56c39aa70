"""A bare Strawberry app with the shape of Liftoff's workflow API, over static in-memory data.

The types and field names are those of `schema.graphql` (Workflow, Stage, Task, HelpResource,
SuccessCriterion, Badge, UnlockConditions, Reward, Celebration, UpdateTaskPayload), so the very
same documents run against both apps. The data is the bundled default template (4 stages,
13 tasks) held in memory: no database and no authentication. It is the floor the benchmark
measures Liftoff against, and a fair one: `create_app` gets every advantage Liftoff gives itself
(the same parse cache, validation verdicts kept by document text as Liftoff keeps them, the same
garbage-collector settings after start-up, and the same GraphQL-layer speedups: extension hooks
planned once, argument plans kept per field, plain leaves and empty lists answered without
graphql-core's field path).
`create_uncached_app` is the same app without them, printed for reference only.
`create_pg_app` is the fair app that also stores each `updateTask` change in the benchmark's
PostgreSQL database (`DATABASE_URL`) through asyncpg, in one statement: a reference for what
persistence alone costs, not a baseline.

Run: `uvicorn bench.bare_app:create_app --factory --port 8001`.
"""

from __future__ import annotations

import os
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import Any

import asyncpg
import strawberry
import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from strawberry.asgi import GraphQL
from strawberry.extensions import ParserCache, SchemaExtension
from strawberry.extensions.runner import SchemaExtensionsRunner
from strawberry.schema.schema import validate_document
from strawberry.types import ExecutionContext

from app.graphql import arguments
from app.graphql.execution import PlainLeaves
from app.graphql.hooks import WrappedOnce
from app.kit.heap import settle_heap

TEMPLATE = Path(__file__).resolve().parent.parent / "app/onboarding/templates/default.yaml"


@strawberry.enum
class TaskStatus(Enum):
    LOCKED = "LOCKED"
    AVAILABLE = "AVAILABLE"
    IN_PROGRESS = "IN_PROGRESS"
    COMPLETED = "COMPLETED"
    SKIPPED = "SKIPPED"
    FAILED = "FAILED"


@strawberry.enum
class TaskAction(Enum):
    START = "START"
    PROGRESS = "PROGRESS"
    COMPLETE = "COMPLETE"
    SKIP = "SKIP"
    FAIL = "FAIL"
    RETRY = "RETRY"


@strawberry.enum
class StageStatus(Enum):
    LOCKED = "LOCKED"
    UNLOCKED = "UNLOCKED"
    IN_PROGRESS = "IN_PROGRESS"
    COMPLETED = "COMPLETED"


@strawberry.enum
class WorkflowStatus(Enum):
    ACTIVE = "ACTIVE"
    COMPLETED = "COMPLETED"


@strawberry.enum
class CelebrationKind(Enum):
    STAGE_COMPLETED = "STAGE_COMPLETED"
    BADGE_EARNED = "BADGE_EARNED"
    WORKFLOW_COMPLETED = "WORKFLOW_COMPLETED"
    MILESTONE_ACHIEVED = "MILESTONE_ACHIEVED"


DONE = (TaskStatus.COMPLETED, TaskStatus.SKIPPED)


@strawberry.type
class HelpResource:
    title: str
    url: str
    kind: str


@strawberry.type
class SuccessCriterion:
    event: str
    count: int


@strawberry.type
class Badge:
    key: str
    name: str
    description: str
    icon: str | None
    stage_key: str | None
    awarded_at: datetime | None


@strawberry.type
class UnlockConditions:
    previous_stages_complete: bool
    min_points: int | None
    days_since_signup: int | None
    tasks_completed: list[str]


@strawberry.type
class Reward:
    points: int
    badge: Badge | None


@strawberry.type
class Task:
    id: strawberry.ID
    key: str
    title: str
    description: str
    stage_key: str
    position: int
    points: int
    estimated_minutes: int
    required: bool
    depends_on: list[str]
    status: TaskStatus
    progress: int
    failure_reason: str | None
    attempts: int
    started_at: datetime | None
    completed_at: datetime | None
    updated_at: datetime
    help_resources: list[HelpResource]
    success_criterion: SuccessCriterion | None


def _progress(tasks: list[Task]) -> float:
    counted = [t for t in tasks if t.required]
    if not counted:
        return 1.0
    return round(sum(1 for t in counted if t.status in DONE) / len(counted), 4)


@strawberry.type
class Stage:
    id: strawberry.ID
    key: str
    name: str
    description: str
    position: int
    status: StageStatus
    unlocked_at: datetime | None
    completed_at: datetime | None
    unlock_conditions: UnlockConditions
    reward: Reward
    tasks: list[Task]

    @strawberry.field
    def progress(self) -> float:
        return _progress(self.tasks)


@strawberry.type
class Workflow:
    id: strawberry.ID
    status: WorkflowStatus
    points: int
    paused: bool
    reminders_enabled: bool
    started_at: datetime
    completed_at: datetime | None
    last_activity_at: datetime
    version: int
    badges: list[Badge]
    stages: list[Stage]

    @strawberry.field
    def progress(self) -> float:
        return _progress([t for s in self.stages for t in s.tasks])

    @strawberry.field
    def estimated_minutes_remaining(self) -> int:
        left = 0.0
        for t in (t for s in self.stages for t in s.tasks):
            if t.required and t.status not in DONE:
                share = t.progress / 100 if t.status is TaskStatus.IN_PROGRESS else 0.0
                left += t.estimated_minutes * (1 - share)
        return round(left)

    @strawberry.field
    def current_stage(self) -> Stage | None:
        return next(
            (s for s in self.stages if s.status is not StageStatus.COMPLETED),
            self.stages[-1] if self.stages else None,
        )

    def task(self, key: str) -> Task | None:
        return next((t for s in self.stages for t in s.tasks if t.key == key), None)


@strawberry.type
class Celebration:
    kind: CelebrationKind
    title: str
    message: str
    stage_key: str | None
    points: int
    badge: Badge | None


@strawberry.type
class UpdateTaskPayload:
    task: Task
    workflow: Workflow
    unlocked_tasks: list[Task]
    unlocked_stages: list[Stage]
    completed_stages: list[Stage]
    points_awarded: int
    badges_awarded: list[Badge]
    celebrations: list[Celebration]
    workflow_completed: bool


@strawberry.input
class UpdateTaskInput:
    action: TaskAction
    task_id: strawberry.ID | None = None
    task_key: str | None = None
    customer_id: strawberry.ID | None = None
    progress: int | None = None
    reason: str | None = None


def _id() -> strawberry.ID:
    return strawberry.ID(str(uuid.uuid4()))


def build_workflow(definition: dict[str, Any], now: datetime) -> Workflow:
    """A workflow as Liftoff holds it after sign-up and START on the first task."""
    stages: list[Stage] = []
    for i, s in enumerate(definition["stages"]):
        first = i == 0
        unlock = s.get("unlock") or {}
        badge = (s.get("reward") or {}).get("badge")
        tasks = []
        for j, t in enumerate(s["tasks"]):
            depends = list(t.get("depends_on") or [])
            status = TaskStatus.LOCKED
            if first and j == 0:
                status = TaskStatus.IN_PROGRESS
            elif first and not depends:
                status = TaskStatus.AVAILABLE
            criterion = t.get("success_criterion")
            tasks.append(
                Task(
                    id=_id(),
                    key=t["key"],
                    title=t["title"],
                    description=t.get("description", ""),
                    stage_key=s["key"],
                    position=i * 1000 + j,
                    points=t.get("points", 0),
                    estimated_minutes=t.get("estimated_minutes", 0),
                    required=t.get("required", True),
                    depends_on=depends,
                    status=status,
                    progress=0,
                    failure_reason=None,
                    attempts=0,
                    started_at=now if status is TaskStatus.IN_PROGRESS else None,
                    completed_at=None,
                    updated_at=now,
                    help_resources=[
                        HelpResource(title=h["title"], url=h["url"], kind=h.get("kind", "article"))
                        for h in t.get("help") or []
                    ],
                    success_criterion=SuccessCriterion(
                        event=criterion["event"], count=criterion.get("count", 1)
                    )
                    if criterion
                    else None,
                )
            )
        stages.append(
            Stage(
                id=_id(),
                key=s["key"],
                name=s["name"],
                description=s.get("description", ""),
                position=i,
                status=StageStatus.IN_PROGRESS if first else StageStatus.LOCKED,
                unlocked_at=now if first else None,
                completed_at=None,
                unlock_conditions=UnlockConditions(
                    previous_stages_complete=unlock.get("previous_stages_complete", True),
                    min_points=unlock.get("min_points"),
                    days_since_signup=unlock.get("days_since_signup"),
                    tasks_completed=list(unlock.get("tasks_completed") or []),
                ),
                reward=Reward(
                    points=(s.get("reward") or {}).get("points", 0),
                    badge=Badge(
                        key=badge["key"],
                        name=badge["name"],
                        description=badge.get("description") or "",
                        icon=badge.get("icon"),
                        stage_key=None,
                        awarded_at=None,
                    )
                    if badge
                    else None,
                ),
                tasks=tasks,
            )
        )
    return Workflow(
        id=_id(),
        status=WorkflowStatus.ACTIVE,
        points=0,
        paused=False,
        reminders_enabled=True,
        started_at=now,
        completed_at=None,
        last_activity_at=now,
        version=1,
        badges=[],
        stages=stages,
    )


class Store:
    """One in-memory workflow per customer id (made on first use), and a default one."""

    def __init__(self, definition: dict[str, Any]) -> None:
        self.definition = definition
        self.default = build_workflow(definition, datetime.now(UTC))
        self.by_customer: dict[str, Workflow] = {}

    def workflow(self, customer_id: str | None) -> Workflow:
        if customer_id is None:
            return self.default
        found = self.by_customer.get(customer_id)
        if found is None:
            found = self.by_customer[customer_id] = build_workflow(
                self.definition, datetime.now(UTC)
            )
        return found


Persist = Callable[[str | None, str | None, int | None], Awaitable[None]]
"""Stores one PROGRESS change: (customer id, task key, percent)."""


def build_schema(
    store: Store, *, cached: bool = True, persist: Persist | None = None
) -> strawberry.Schema:
    """Query.workflow and Mutation.updateTask over `store`, with Liftoff's parse and validation
    caches and extensions runner unless `cached` is false."""

    @strawberry.type
    class Query:
        @strawberry.field
        async def workflow(self, customer_id: strawberry.ID | None = None) -> Workflow | None:
            return store.workflow(customer_id)

    @strawberry.type
    class Mutation:
        @strawberry.mutation
        async def update_task(self, input: UpdateTaskInput) -> UpdateTaskPayload:
            workflow = store.workflow(input.customer_id)
            task = workflow.task(input.task_key or "")
            if task is None:
                raise ValueError(f"no task {input.task_key!r}")
            now = datetime.now(UTC)
            if input.action is TaskAction.PROGRESS:
                if input.progress is None or not 0 <= input.progress <= 100:
                    raise ValueError("PROGRESS needs `progress` between 0 and 100")
                task.progress = input.progress
            if persist is not None:
                await persist(input.customer_id, input.task_key, input.progress)
            task.status = TaskStatus.IN_PROGRESS
            task.started_at = task.started_at or now
            task.updated_at = now
            workflow.last_activity_at = now
            workflow.version += 1
            return UpdateTaskPayload(
                task=task,
                workflow=workflow,
                unlocked_tasks=[],
                unlocked_stages=[],
                completed_stages=[],
                points_awarded=0,
                badges_awarded=[],
                celebrations=[],
                workflow_completed=False,
            )

    if not cached:
        return strawberry.Schema(query=Query, mutation=Mutation)
    arguments.install()
    extensions: list[Any] = [lambda: ParserCache(maxsize=512), text_validation_cache(512)]
    return FairSchema(
        query=Query, mutation=Mutation, extensions=extensions, execution_context_class=PlainLeaves
    )


def text_validation_cache(maxsize: int) -> type[SchemaExtension]:
    """A validation cache keyed by the document's text, as Liftoff's query guard keeps its
    verdicts (`app.graphql.guard`): a repeated document costs one dict lookup, where
    Strawberry's `ValidationCache` hashes the parsed document's whole tree on every request."""
    verdicts: OrderedDict[str, list[Any]] = OrderedDict()

    class TextValidationCache(SchemaExtension):
        def on_validate(self) -> Iterator[None]:
            context = self.execution_context
            query = context.query
            errors = verdicts.get(query) if query is not None else None
            if errors is None:
                errors = validate_document(
                    context.schema._schema, context.graphql_document, context.validation_rules
                )
                if query is not None:
                    verdicts[query] = errors
                    if len(verdicts) > maxsize:
                        verdicts.popitem(last=False)
            else:
                verdicts.move_to_end(query)
            context.pre_execution_errors = errors
            yield

    return TextValidationCache


class FairSchema(strawberry.Schema):
    """Strawberry's schema with Liftoff's GraphQL-layer speedups: extension hooks wrapped once
    per class (`WrappedOnce`), argument plans kept per field (`arguments.install`), and the
    plain-leaf executor (`PlainLeaves`, given by `build_schema`)."""

    def create_extensions_runner(
        self, execution_context: ExecutionContext, extensions: list[SchemaExtension]
    ) -> SchemaExtensionsRunner:
        return WrappedOnce(execution_context, extensions)


async def health(_: Request) -> Response:
    return JSONResponse({"status": "ok"})


_PERSIST = """WITH w AS (
  UPDATE workflow SET version = version + 1, last_activity_at = now()
  WHERE customer_id = $1 RETURNING id
)
UPDATE workflow_task t SET progress = $3, updated_at = now() FROM w
WHERE t.workflow_id = w.id AND t.key = $2"""
"""The task's progress and its workflow's version and activity time, in one statement."""


def _app(*, fair: bool, database_url: str | None = None) -> Starlette:
    store = Store(yaml.safe_load(TEMPLATE.read_text()))
    pools: list[asyncpg.Pool] = []

    async def persist(customer_id: str | None, task_key: str | None, progress: int | None) -> None:
        await pools[0].execute(_PERSIST, uuid.UUID(customer_id or ""), task_key, progress)

    schema = build_schema(store, cached=fair, persist=persist if database_url else None)
    graphql = GraphQL[None, None](schema, graphql_ide=None, allow_queries_via_get=False)

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        if database_url:  # as many connections as Liftoff's pool at most (LIFTOFF_DB_POOL_MAX)
            pools.append(await asyncpg.create_pool(database_url, min_size=1, max_size=10))
        if fair:
            settle_heap()  # what Liftoff's lifespan does after start-up
        try:
            yield
        finally:
            for pool in pools:
                await pool.close()

    return Starlette(
        routes=[Route("/healthz", health), Route("/graphql", graphql)], lifespan=lifespan
    )


def create_app() -> Starlette:
    """The fair bare app: POST /graphql, GET /healthz, with Liftoff's caches and GC settings."""
    return _app(fair=True)


def create_uncached_app() -> Starlette:
    """The bare app without parse/validation caches and with default GC (reference only)."""
    return _app(fair=False)


def create_pg_app() -> Starlette:
    """The fair bare app storing each task change in `DATABASE_URL` in one statement
    (reference only: what persistence alone costs)."""
    return _app(fair=True, database_url=os.environ["DATABASE_URL"])
