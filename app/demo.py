"""Demo data: one organization whose customers' progress is played through the real engine."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from app.accounts.models import Operator, Organization, Role
from app.accounts.service import create_organization
from app.accounts.viewer import Viewer
from app.customers.models import Customer
from app.db import transaction
from app.errors import Conflict
from app.events.models import EventStream, OutboxEvent
from app.kit.clock import utcnow
from app.onboarding import engine
from app.onboarding.definitions import TemplateDef
from app.onboarding.engine import Outcome, WorkflowState
from app.onboarding.models import Workflow, WorkflowStage, WorkflowTask, WorkflowTemplate
from app.onboarding.snapshot import new_rows
from app.onboarding.states import TaskAction, TaskStatus, WorkflowStatus
from app.onboarding.templates import bundled_default, definition_of, install_template

USER_TYPES = {"startup": 34, "smb": 36, "mid_market": 20, "enterprise": 10}
CHANNELS = {
    "organic": 30,
    "paid_search": 20,
    "referral": 14,
    "partner": 10,
    "outbound": 11,
    "webinar": 15,
}
_PACE = {"startup": 1.3, "smb": 1.0, "mid_market": 0.8, "enterprise": 0.6}
_COMMITMENT = {"startup": 0.9, "smb": 1.0, "mid_market": 1.1, "enterprise": 1.25}
_CHANNEL_COMMITMENT = {
    "organic": 1.0,
    "paid_search": 0.75,
    "referral": 1.3,
    "partner": 1.2,
    "outbound": 0.8,
    "webinar": 1.1,
}
_FIRST = ["Olivia", "Liam", "Emma", "Noah", "Ava", "Mateo", "Sofia", "Lucas", "Mia", "Ethan", "Amara", "Kenji", "Priya", "Omar", "Chloe", "Diego", "Hannah", "Felix", "Zara", "Jonas", "Leila", "Marco", "Nora", "Samuel", "Aisha", "Tomas", "Grace", "Ravi", "Elena", "Hugo", "Maya", "Daniel", "Ines", "Kofi", "Julia", "Arjun", "Clara", "Malik", "Freya", "Lena"]
_LAST = ["Smith", "Garcia", "Chen", "Patel", "Müller", "Okafor", "Rossi", "Kim", "Nguyen", "Johansson", "Silva", "Dubois", "Cohen", "Tanaka", "Novak", "Brown", "Schmidt", "Martins", "Ali", "Kowalski", "Andersen", "Reyes", "Murphy", "Fischer", "Haddad", "Costa", "Singh", "Moreau", "Walsh", "Ivanova", "Berg", "Lopez", "Park", "Mensah", "Weber", "Hughes", "Laine", "Romero"]
_COMPANY_A = ["Northwind", "Bluebird", "Summit", "Granite", "Harbor", "Evergreen", "Copper", "Lumen", "Atlas", "Beacon", "Cedar", "Falcon", "Juniper", "Keystone", "Meridian", "Orchid", "Pioneer", "Quartz", "Redwood", "Sterling", "Tidewater", "Vertex", "Willow", "Zenith", "Brightline", "Clearwater", "Ironclad", "Maple", "Nimbus", "Silverline", "Foxglove", "Harborview", "Kestrel", "Lighthouse", "Mosaic", "Northstar", "Oakridge", "Paragon", "Riverbend", "Trailhead"]
_COMPANY_B = ["Labs", "Analytics", "Systems", "Health", "Logistics", "Studio", "Partners", "Software", "Foods", "Capital", "Energy", "Robotics", "Media", "Retail", "Cloud", "Works", "Group", "Bio", "Apparel", "Insurance", "Legal", "Travel", "Dental", "Academy"]
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
_RECORDED = {
    "task.started",
    "task.progressed",
    "task.completed",
    "task.skipped",
    "task.failed",
    "task.retried",
    "stage.completed",
    "badge.earned",
    "workflow.completed",
}
_CHUNK = 200


@dataclass
class DemoResult:
    """What the CLI prints after seeding: who to sign in as, and how much there is."""

    organization: Organization
    admin: Operator
    csm: Operator
    sample_customer: Customer
    customers: int


@dataclass
class _Journey:
    """One customer's simulated workflow and the history that produced it."""

    state: WorkflowState
    last_activity: datetime
    actions: int = 0
    events: list[tuple[datetime, str, dict[str, Any]]] = field(default_factory=list)
    touched: dict[str, datetime] = field(default_factory=dict)

    def record(self, out: Outcome, at: datetime, *, acted: bool) -> None:
        """Keep the outcome's notable events (with fresh figures) and when things changed."""
        snapshot = _figures(self.state)
        for kind, payload in out.events:
            if kind in _RECORDED:
                self.events.append((at, kind, {**payload, "workflow": snapshot}))
        for key in out.changed_tasks:
            self.touched[key] = at
        if acted:
            self.actions += 1
            self.last_activity = at


def _figures(state: WorkflowState) -> dict[str, Any]:
    """The progress figures every workflow event carries (workflowId filled in later)."""
    current = state.current_stage
    return {
        "workflowId": None,
        "status": state.status.value,
        "points": state.points,
        "progress": state.progress,
        "minutesRemaining": state.minutes_remaining,
        "currentStage": current.key if current else None,
    }


def _pick(rng: random.Random, weights: dict[str, int]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def _choose_action(rng: random.Random, state: WorkflowState, key: str) -> tuple[TaskAction, Any]:
    """What a customer plausibly does next with an open task, and its argument."""
    task = state.tasks[key]
    if task.status is TaskStatus.FAILED:
        return TaskAction.RETRY, None
    if task.status is TaskStatus.AVAILABLE:
        if not task.required and rng.random() < 0.4:
            return TaskAction.SKIP, None
        return (TaskAction.START if rng.random() < 0.45 else TaskAction.COMPLETE), None
    if task.required and task.attempts == 0 and rng.random() < 0.07:
        return TaskAction.FAIL, _FAIL_REASONS.get(key, "It did not work on the first try.")
    if task.progress < 50 and rng.random() < 0.2:
        return TaskAction.PROGRESS, rng.choice((20, 30, 40, 60, 75))
    return TaskAction.COMPLETE, None


def _simulate(
    rng: random.Random,
    template: TemplateDef,
    *,
    version: int,
    signup: datetime,
    now: datetime,
    type_: str,
    channel: str,
) -> _Journey:
    """Play one customer's onboarding through the engine, from signup until `now`."""
    state = engine.initial_state(template, signed_up_at=signup, now=signup)
    journey = _Journey(state=state, last_activity=signup)
    started = {"template": template.key, "version": version, "workflow": _figures(state)}
    journey.events.append((signup, "workflow.started", started))
    pace = _PACE[type_] * rng.lognormvariate(0, 0.45)
    hazard = 0.045 / (
        _COMMITMENT[type_] * _CHANNEL_COMMITMENT[channel] * rng.lognormvariate(0, 0.3)
    )
    if rng.random() < 0.04:
        return journey  # signed up and never came back
    at, gave_up = signup + timedelta(minutes=rng.uniform(2, 120)), set[str]()
    while state.status is WorkflowStatus.ACTIVE and at < now:
        open_keys = [k for k, t in state.tasks.items() if t.status in _OPEN and k not in gave_up]
        if not open_keys:
            out = Outcome()  # back after a while: stages waiting on time may now unlock
            engine.settle(state, out, now=at)
            journey.record(out, at, acted=False)
            if not out.unlocked_tasks:
                break
            continue
        key = open_keys[0] if rng.random() < 0.75 else rng.choice(open_keys)
        if state.tasks[key].status is TaskStatus.FAILED and rng.random() < 0.4:
            gave_up.add(key)  # leaves the failure in place and moves on
            continue
        action, arg = _choose_action(rng, state, key)
        out = engine.apply_task_action(
            state,
            key,
            action,
            now=at,
            progress=arg if action is TaskAction.PROGRESS else None,
            reason=arg if action is TaskAction.FAIL else None,
        )
        journey.record(out, at, acted=True)
        if rng.random() < hazard:
            break  # loses interest: stalls here
        if rng.random() < 0.55:
            at += timedelta(minutes=rng.uniform(1, 25))  # same session
        elif rng.random() < 0.06:
            at += timedelta(days=rng.uniform(6, 25))  # goes quiet, may come back
        else:
            at += timedelta(hours=2 + rng.expovariate(pace / 36))
    return journey


async def _existing(slug: str) -> DemoResult | None:
    """The result of an earlier seeding of `slug`, if there was one."""
    org = await Organization.get_or_none(slug=slug)
    if org is None:
        return None
    operators = Operator.filter(organization_id=org.id).order_by("created_at")
    admin = await operators.filter(role=Role.ADMIN).first()
    csm = await operators.filter(role=Role.CSM).first()
    recent = utcnow() - timedelta(days=3)
    in_flight = (
        Workflow.filter(organization_id=org.id, status=WorkflowStatus.ACTIVE, points__gt=0)
        .filter(last_activity_at__gte=recent)
        .order_by("-points", "-last_activity_at")
    )
    workflow = await in_flight.first() or await Workflow.filter(organization_id=org.id).first()
    if admin is None or workflow is None:
        raise Conflict(f"Organization {slug!r} exists but holds no demo data; pick another slug.")
    customer = await Customer.get(id=workflow.customer_id)  # type: ignore[attr-defined]
    count = await Customer.filter(organization_id=org.id).count()
    return DemoResult(org, admin, csm or admin, customer, count)


def _people(rng: random.Random, count: int) -> list[tuple[str, str, str]]:
    """`count` (name, company, email) triples, emails unique, on reserved `.example` domains."""
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


@dataclass
class _Batch:
    """Unsaved rows of a chunk of customers, inserted together in foreign-key order."""

    customers: list[Customer] = field(default_factory=list)
    workflows: list[Workflow] = field(default_factory=list)
    stages: list[WorkflowStage] = field(default_factory=list)
    tasks: list[WorkflowTask] = field(default_factory=list)
    streams: list[EventStream] = field(default_factory=list)
    events: list[OutboxEvent] = field(default_factory=list)

    async def save(self) -> None:
        """Bulk-insert every row of the chunk."""
        await Customer.bulk_create(self.customers)
        await Workflow.bulk_create(self.workflows)
        await WorkflowStage.bulk_create(self.stages)
        await WorkflowTask.bulk_create(self.tasks)
        await EventStream.bulk_create(self.streams)
        await OutboxEvent.bulk_create(self.events)


def _add_customer(
    batch: _Batch,
    rng: random.Random,
    *,
    template: WorkflowTemplate,
    definition: TemplateDef,
    person: tuple[str, str, str],
    now: datetime,
    actor: str,
) -> None:
    """Simulate one customer and add its rows: customer, workflow, stages, tasks, events."""
    name, company, email = person
    org_id = template.organization_id  # type: ignore[attr-defined]
    type_, channel = _pick(rng, USER_TYPES), _pick(rng, CHANNELS)
    signup = now - timedelta(seconds=600 + (89.9 * 86400 - 600) * rng.random() ** 1.2)
    tags = ["key-account"] if type_ == "enterprise" else []
    customer = Customer(
        id=uuid.uuid4(),
        organization_id=org_id,
        external_id=f"cus_{rng.getrandbits(48):012x}",
        email=email,
        name=name,
        company=company,
        user_type=type_,
        acquisition_channel=channel,
        tags=tags + (["referred"] if channel == "referral" else []),
        signed_up_at=signup,
        created_at=signup,
    )
    journey = _simulate(
        rng,
        definition,
        version=template.version,
        signup=signup,
        now=now,
        type_=type_,
        channel=channel,
    )
    workflow, stages, tasks = new_rows(
        journey.state,
        organization_id=org_id,
        customer_id=customer.id,
        template_id=template.id,
        template=definition,
        now=journey.last_activity,
    )
    workflow.started_at = workflow.created_at = signup
    workflow.version = journey.actions
    for task in tasks:
        task.updated_at = journey.touched.get(task.key, signup)
    created = {"customerId": str(customer.id), "name": name, "email": email}
    history = [(signup, "customer.created", created), *journey.events]
    for seq, (at, kind, payload) in enumerate(history, start=1):
        if "workflow" in payload:
            payload["workflow"]["workflowId"] = str(workflow.id)
        batch.events.append(
            OutboxEvent(
                organization_id=org_id,
                customer_id=customer.id,
                stream=customer.id,
                sequence=seq,
                type=kind,
                payload=payload,
                actor=actor if seq <= 2 else f"customer:{email}",
                created_at=at,
                published_at=now,
            )
        )
    batch.customers.append(customer)
    batch.workflows.append(workflow)
    batch.stages += stages
    batch.tasks += tasks
    batch.streams.append(
        EventStream(id=customer.id, organization_id=org_id, last_sequence=len(history))
    )


async def seed_demo(
    *,
    customers: int = 1200,
    seed: int = 7,
    slug: str = "demo",
    progress: Callable[[int, int], None] | None = None,
) -> DemoResult:
    """Create the demo organization with `customers` customers, or return it if it exists."""
    found = await _existing(slug)
    if found is not None:
        return found
    rng, now = random.Random(seed), utcnow()
    try:
        async with transaction():
            org, admin = await create_organization(
                name="Acme Analytics",
                slug=slug,
                admin_email=f"admin@{slug}.example",
                admin_name="Alex Rivera",
            )
            await Operator.create(
                organization=org, email=f"csm@{slug}.example", name="Casey Morgan", role=Role.CSM
            )
            viewer = Viewer(subject=admin.email, organization_id=org.id, role=Role.ADMIN)
            template = await install_template(
                viewer, definition=bundled_default(), make_default=True, created_by="demo"
            )
            definition = definition_of(template)
            people = _people(rng, customers)
            for start in range(0, customers, _CHUNK):
                batch = _Batch()
                for person in people[start : start + _CHUNK]:
                    _add_customer(
                        batch,
                        rng,
                        template=template,
                        definition=definition,
                        person=person,
                        now=now,
                        actor=f"csm:csm@{slug}.example",
                    )
                await batch.save()
                if progress is not None:
                    progress(min(start + _CHUNK, customers), customers)
    except Conflict:
        pass  # seeded concurrently by another process: return what it made
    found = await _existing(slug)
    assert found is not None
    return found
