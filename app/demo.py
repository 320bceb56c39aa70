"""Demo data: one organization whose customers' progress is played through the real engine."""

from __future__ import annotations

import asyncio
import multiprocessing
import random
import uuid
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from tortoise.connection import get_connection
from tortoise.models import Model

from app import demo_clone
from app.accounts.models import Operator, Organization, Role
from app.accounts.viewer import Viewer
from app.analytics import maintain as analytics
from app.automation import service as automation
from app.customers.models import Customer
from app.db import connect_kwargs, transaction
from app.deliveries import service as deliveries
from app.demo_bulk import (
    ChunkJob,
    DemoChunk,
    DemoCustomer,
    chunk_rng,
    json_text,
    onboarding_rows,
    run_chunk,
    signup_time,
    split,
    template_of,
    write_chunk,
)
from app.demo_clone import ORIGINALS
from app.demo_sample import sample_customer, task_to_do
from app.demo_usage import seed_milestones, seed_usage
from app.errors import Conflict, ValidationFailed
from app.health import daily
from app.health.demo import seed_health
from app.health.recompute import recompute_customers
from app.kit.clock import utcnow
from app.onboarding import engine
from app.onboarding.definitions import TemplateDef
from app.onboarding.engine import Outcome, WorkflowState
from app.onboarding.models import WorkflowTemplate
from app.onboarding.snapshot import derived
from app.onboarding.states import StageStatus, TaskAction, TaskStatus, WorkflowStatus
from app.onboarding.templates import open_organization


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


# user type: (weight, pace, commitment); channel: (weight, commitment)
USER_TYPES = {
    "startup": (34, 1.3, 0.9),
    "smb": (36, 1.0, 1.0),
    "mid_market": (20, 0.8, 1.1),
    "enterprise": (10, 0.6, 1.25),
}
CHANNELS = {
    "organic": (30, 1.0),
    "paid_search": (20, 0.75),
    "referral": (14, 1.3),
    "partner": (10, 1.2),
    "outbound": (11, 0.8),
    "webinar": (15, 1.1),
}
_FIRST = _words(
    "Olivia Liam Emma Noah Ava Mateo Sofia Lucas Mia Ethan Amara Kenji Priya Omar Chloe Diego"
    " Hannah Felix Zara Jonas Leila Marco Nora Samuel Aisha Tomas Grace Ravi Elena Hugo Maya"
    " Daniel Ines Kofi Julia Arjun Clara Malik Freya Lena"
)
_LAST = _words(
    "Smith Garcia Chen Patel Müller Okafor Rossi Kim Nguyen Johansson Silva Dubois Cohen Tanaka"
    " Novak Brown Schmidt Martins Ali Kowalski Andersen Reyes Murphy Fischer Haddad Costa Singh"
    " Moreau Walsh Ivanova Berg Lopez Park Mensah Weber Hughes Laine Romero"
)
_COMPANY_A = _words(
    "Northwind Bluebird Summit Granite Harbor Evergreen Copper Lumen Atlas Beacon Cedar Falcon"
    " Juniper Keystone Meridian Orchid Pioneer Quartz Redwood Sterling Tidewater Vertex Willow"
    " Zenith Brightline Clearwater Ironclad Maple Nimbus Silverline Foxglove Harborview Kestrel"
    " Lighthouse Mosaic Northstar Oakridge Paragon Riverbend Trailhead"
)
_COMPANY_B = _words(
    "Labs Analytics Systems Health Logistics Studio Partners Software Foods Capital Energy"
    " Robotics Media Retail Cloud Works Group Bio Apparel Insurance Legal Travel Dental Academy"
)
_FAIL_REASONS = {
    "verify_email": "The verification link had expired.",
    "connect_data_source": "The CRM connection was refused: invalid API token.",
    "invite_team": "The invitation bounced: mailbox does not exist.",
    "create_first_project": "Project import failed on a malformed CSV row.",
    "add_client": "The client's VAT number did not validate.",
    "build_report": "The report timed out on a large date range.",
    "set_up_integration": "OAuth consent was denied by the workspace admin.",
}
_OPEN = (TaskStatus.AVAILABLE, TaskStatus.IN_PROGRESS, TaskStatus.FAILED)
_UNRECORDED = {"task.unlocked", "stage.unlocked", "points.awarded"}
_CHUNK = 1000
_ANALYZE = (
    "ANALYZE customer, workflow, workflow_stage, workflow_task, event_stream, outbox_event,"
    " usage_event, usage_event_key, usage_daily, milestone_achievement, health_score,"
    " health_snapshot, analytics_customer"
)


@dataclass
class DemoResult:
    """What the CLI prints after seeding: who to sign in as, and how much there is."""

    organization: Organization
    admin: Operator
    csm: Operator
    sample_customer: Customer
    customers: int
    sample_task: str | None = None  # a task of the sample customer that can be completed now


@dataclass
class _Journey:
    """One customer's simulated workflow and the history that produced it."""

    state: WorkflowState
    last_activity: datetime
    actions: int = 0
    events: list[tuple[datetime, str, dict[str, Any]]] = field(default_factory=list)
    touched: dict[str, datetime] = field(default_factory=dict)

    def record(self, out: Outcome, at: datetime, *, acted: bool) -> None:
        """Keep the outcome's notable events (with fresh figures) and when tasks changed."""
        snapshot = _figures(self.state)
        for kind, payload in out.events:
            if kind not in _UNRECORDED:
                self.events.append((at, kind, {**payload, "workflow": snapshot}))
        self.touched.update(dict.fromkeys(out.changed_tasks, at))
        if acted:
            self.actions, self.last_activity = self.actions + 1, at


def _figures(state: WorkflowState) -> dict[str, Any]:
    """The progress figures every workflow event carries (workflowId is filled in later)."""
    progress, minutes, current = derived(state)
    return {
        "workflowId": None,
        "status": state.status.value,
        "points": state.points,
        "progress": progress,
        "minutesRemaining": minutes,
        "currentStage": current,
    }


def _choose(rng: random.Random, state: WorkflowState, key: str) -> tuple[TaskAction, Any]:
    """What a customer plausibly does next with an open task, and its arguments."""
    task = state.tasks[key]
    if task.status is TaskStatus.FAILED:
        return TaskAction.RETRY, {}
    if task.status is TaskStatus.AVAILABLE:
        if not task.required and rng.random() < 0.4:
            return TaskAction.SKIP, {}
        return (TaskAction.START if rng.random() < 0.45 else TaskAction.COMPLETE), {}
    if task.required and task.attempts == 0 and rng.random() < 0.07:
        return TaskAction.FAIL, {"reason": _FAIL_REASONS.get(key, "It did not work at first.")}
    if task.progress < 50 and rng.random() < 0.2:
        return TaskAction.PROGRESS, {"progress": rng.choice((20, 30, 40, 60, 75))}
    return TaskAction.COMPLETE, {}


def _simulate(
    rng: random.Random,
    template: TemplateDef,
    *,
    signup: datetime,
    user_type: str,
    channel: str,
    version: int,
    now: datetime,
) -> _Journey:
    """Play one customer's onboarding through the engine, from signup until `now`."""
    state = engine.initial_state(template, signed_up_at=signup, now=signup)
    journey = _Journey(state=state, last_activity=signup)
    started = {"template": template.key, "version": version, "workflow": _figures(state)}
    journey.events.append((signup, "workflow.started", started))
    _, pace, commitment = USER_TYPES[user_type]
    commitment *= CHANNELS[channel][1] * rng.lognormvariate(0, 0.3)
    pace *= rng.lognormvariate(0, 0.45)
    if rng.random() < 0.04:
        return journey  # signed up and never came back
    at, gave_up = signup + timedelta(minutes=rng.uniform(2, 120)), set[str]()
    while state.status is WorkflowStatus.ACTIVE and at < now:
        open_keys = [k for k, t in state.tasks.items() if t.status in _OPEN and k not in gave_up]
        if not open_keys:  # nothing to do unless a stage waiting on time unlocks
            waits = [
                signup + timedelta(days=s.unlock["days_since_signup"])
                for s in state.stages
                if s.status is StageStatus.LOCKED and s.unlock.get("days_since_signup")
            ]
            at = max([at, *waits]) + timedelta(hours=rng.uniform(2, 48))
            if at >= now:
                break
            out = Outcome()  # back after the wait: the engine unlocks what now qualifies
            engine.settle(state, out, now=at)
            journey.record(out, at, acted=False)
            if not out.unlocked_tasks:
                break
            continue
        key = open_keys[0] if rng.random() < 0.75 else rng.choice(open_keys)
        if state.tasks[key].status is TaskStatus.FAILED and rng.random() < 0.4:
            gave_up.add(key)  # leaves the failure in place and moves on
            continue
        action, kwargs = _choose(rng, state, key)
        journey.record(
            engine.apply_task_action(state, key, action, now=at, **kwargs), at, acted=True
        )
        if rng.random() < 0.018 / commitment:
            break  # loses interest: stalls here
        if rng.random() < 0.55:
            at += timedelta(minutes=rng.uniform(1, 25))  # same session
        elif rng.random() < 0.03:
            at += timedelta(days=rng.uniform(5, 20))  # goes quiet, may come back
        else:
            at += timedelta(hours=2 + rng.expovariate(pace / 54))
    return journey


def _people(rng: random.Random, count: int) -> list[tuple[str, str, str]]:
    """`count` (name, company, email) triples; emails unique, on the reserved `.example` TLD."""
    companies = [f"{a} {b}" for a in _COMPANY_A for b in _COMPANY_B]
    rng.shuffle(companies)
    seen: set[str] = set()
    people = []
    for i in range(count):
        first, last, company = rng.choice(_FIRST), rng.choice(_LAST), companies[i % len(companies)]
        local = f"{first}.{last}".lower().replace("ü", "ue")
        domain = company.lower().replace(" ", "") + ".example"
        email, n = f"{local}@{domain}", 1
        while email in seen:
            n += 1
            email = f"{local}{n}@{domain}"
        seen.add(email)
        people.append((f"{first} {last}", company, email))
    return people


def build_chunk(job: ChunkJob, connection: Any) -> DemoChunk:
    """One chunk of simulated customers: their journeys through the engine and their rows."""
    rng = chunk_rng(job.seed, job.number)
    template = template_of(job.definition)
    chunk = DemoChunk(job.organization_id, [], connection, rng, job.now)
    rows: dict[type[Model], list[dict[str, Any]]] = defaultdict(list)
    for name, company, email in job.people:
        user_type = rng.choices(list(USER_TYPES), [w for w, _, _ in USER_TYPES.values()])[0]
        channel = rng.choices(list(CHANNELS), [w for w, _ in CHANNELS.values()])[0]
        signup = signup_time(rng, job.now)
        customer_id = uuid.uuid4()
        journey = _simulate(
            rng,
            template.definition,
            signup=signup,
            user_type=user_type,
            channel=channel,
            version=job.template_version,
            now=job.now,
        )
        seeded = DemoCustomer(
            customer_id, email, user_type, channel, signup, journey.last_activity, journey.state
        )
        chunk.customers.append(seeded)
        tags = ["key-account"] if user_type == "enterprise" else []
        extra = {
            "external_id": f"cus_{rng.getrandbits(48):012x}",
            "name": name,
            "company": company,
            "tags": json_text(tags + (["referred"] if channel == "referral" else [])),
        }
        created = {"customerId": str(customer_id), "name": name, "email": email}
        history = [(signup, "customer.created", created), *journey.events]
        onboarding_rows(
            rows, template, job, seeded, extra, history, journey.touched, journey.actions
        )
    chunk.rows = dict(rows)
    return chunk


async def _existing(slug: str) -> DemoResult | None:
    """The result of an earlier seeding of `slug`, if there was one that finished.

    The demo's CSM is created last; a demo organization without it was interrupted
    mid-way and is removed, so it is seeded again from scratch.
    """
    org = await Organization.get_or_none(slug=slug)
    if org is None:
        return None
    operators = Operator.filter(organization_id=org.id).order_by("created_at")
    admin = await operators.filter(role=Role.ADMIN).first()
    csm = await operators.filter(role=Role.CSM, email=f"csm@{slug}.example").first()
    by_demo = await WorkflowTemplate.filter(organization_id=org.id, created_by="demo").exists()
    if csm is None and by_demo:
        await org.delete()  # an interrupted seeding: its rows go with it (cascade)
        return None
    customer = await sample_customer(org.id)
    if admin is None or customer is None:
        raise Conflict(f"Organization {slug!r} exists but holds no demo data; pick another slug.")
    count = await Customer.filter(organization_id=org.id).count()
    task = await task_to_do(customer.id)
    return DemoResult(org, admin, csm or admin, customer, count, sample_task=task)


async def _write(jobs: list[ChunkJob], workers: int, progress: Callable[[int], None]) -> None:
    """Write every chunk: in this process, or in `workers` processes with connections of
    their own."""
    if workers <= 1:
        async with get_connection("default").acquire_connection() as connection:
            for job in jobs:
                progress(await write_chunk(connection, job, build_chunk))
        return
    loop = asyncio.get_running_loop()
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        pending = [loop.run_in_executor(pool, run_chunk, job, build_chunk) for job in jobs]
        try:
            for done in asyncio.as_completed(pending):
                progress(await done)
        except BaseException:
            for future in pending:
                future.cancel()
            raise


async def _automation(viewer: Viewer) -> None:
    """Turn the default rules on and register the CRM endpoint their webhook posts to (a
    name that never resolves, so its deliveries show retries, the dead letter and replay)."""
    for rule in await automation.list_rules(viewer, enabled=False):
        await automation.set_enabled(viewer, str(rule.id), enabled=True)
    await deliveries.create_endpoint(
        viewer,
        url="https://crm.acme-analytics.invalid/webhooks/liftoff",
        event_types=["onboarding.completed"],
        description="CRM (demo: unreachable on purpose)",
    )


async def _first_scores(
    organization_id: uuid.UUID, customer_ids: list[uuid.UUID], *, now: datetime
) -> None:
    """Score these customers first, so that the statistics analyzed before the full sweep
    show the organization's scores: with none, the planner finds a customer's stored score
    through the (organization, level) index, scanning every score written since."""
    async with transaction():
        await recompute_customers(organization_id, customer_ids, now=now)


async def _analytics(organization_id: uuid.UUID, *, now: datetime) -> None:
    """The analytics contributions of the customers so far (copies add theirs as they are
    written), so the rollups are right before any worker catches up with the history."""
    ids = await Customer.filter(organization_id=organization_id).values_list("id", flat=True)
    for start in range(0, len(ids), 2000):
        async with transaction():
            await analytics.refresh(ids[start : start + 2000], now=now)  # type: ignore[arg-type]


async def seed_demo(
    *,
    customers: int = 1200,
    seed: int = 7,
    slug: str = "demo",
    progress: Callable[[int, int], None] | None = None,
    workers: int = 1,
    database_url: str | None = None,
    usage_progress: Callable[[int, int], None] | None = None,
    phase: Callable[[str], None] | None = None,
) -> DemoResult:
    """Create the demo organization with `customers` customers, or return it if it exists.

    The first `ORIGINALS` customers are simulated and written in chunks with COPY (by
    `workers` processes on `database_url` when more than one), with their usage, health
    history and milestones; further customers copy them in SQL (`app.demo_clone`), then
    today's health and the analytics rollups cover everyone, the CSM is created last and the
    tables are analyzed.
    """
    if customers < 1:
        raise ValidationFailed("The demo needs at least one customer.", field="customers")
    if workers > 1 and not database_url:
        raise ValueError("writing with several processes needs the database URL")
    found = await _existing(slug)
    if found is not None:
        return found
    rng, now = random.Random(seed), utcnow()
    try:
        async with transaction():
            new = await open_organization(
                name="Acme Analytics",
                slug=slug,
                admin_email=f"admin@{slug}.example",
                admin_name="Alex Rivera",
                created_by="demo",
            )
            await _automation(new.viewer)
    except Conflict:
        found = await _existing(slug)  # another process seeded `slug` at the same time
        if found is None:
            raise
        return found
    org, template = new.organization, new.template
    assert template is not None
    connect = connect_kwargs(database_url) if database_url else {}
    people = _people(rng, customers)
    simulated, copies = people[:ORIGINALS], people[ORIGINALS:]
    jobs = [
        ChunkJob(
            connect=connect,
            organization_id=org.id,
            template_id=template.id,
            template_version=template.version,
            definition=template.definition,
            now=now,
            seed=seed,
            number=number,
            people=chunk,
            actor=f"csm:csm@{slug}.example",
        )
        for number, chunk in enumerate(split(simulated, _CHUNK))
    ]
    written = 0

    def step(name: str) -> None:
        if phase is not None:
            phase(name)

    def advance(count: int) -> None:
        nonlocal written
        written += count
        if progress is not None:
            progress(written, customers)

    try:
        await _write(jobs, workers, advance)
        # Demo data of other domains for the customers just written goes here (whole-org
        # steps), or into demo_bulk.CHUNK_WRITERS (per chunk, inside its COPY transaction).
        await seed_usage(org.id, now=now, seed=seed, progress=usage_progress)
        step("Scoring health over the history")
        await seed_health(org.id, now=now, today=len(copies) == 0)
        step("Evaluating milestones over the history")
        await seed_milestones(org.id, now=now)
        step("Rolling up analytics")
        await _analytics(org.id, now=now)
        if copies:
            step("Copying the simulated customers")
            pool = await demo_clone.originals(org.id, now=now)
            planned = demo_clone.plan(rng, pool, copies, organization_id=org.id)
            await demo_clone.write(
                org.id, planned, now=now, connect=connect, workers=workers, progress=advance
            )
            step("Scoring today's health")
            await _first_scores(org.id, [o.id for o in pool], now=now)
            await get_connection("default").execute_script(_ANALYZE)  # for what follows
            await daily.snapshot_organization(org.id, now=now)
        await Operator.create(
            organization=org, email=f"csm@{slug}.example", name="Casey Morgan", role=Role.CSM
        )
        step("Done")
    except BaseException:
        await org.delete()
        raise
    await get_connection("default").execute_script(_ANALYZE)
    found = await _existing(slug)
    assert found is not None
    return found
