"""Demo data: one organization whose customers' progress is played through the real engine."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from tortoise.expressions import Subquery
from tortoise.models import Model

from app.accounts.models import Operator, Organization, Role
from app.customers.models import Customer
from app.db import transaction
from app.errors import Conflict, ValidationFailed
from app.events.models import EventStream, OutboxEvent
from app.kit.clock import utcnow
from app.onboarding import engine
from app.onboarding.definitions import TemplateDef
from app.onboarding.engine import Outcome, WorkflowState
from app.onboarding.models import Workflow, WorkflowStage, WorkflowTask, WorkflowTemplate
from app.onboarding.snapshot import new_rows
from app.onboarding.states import StageStatus, TaskAction, TaskStatus, WorkflowStatus
from app.onboarding.templates import definition_of, open_organization


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
_MODELS = (Customer, Workflow, WorkflowStage, WorkflowTask, EventStream, OutboxEvent)
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
    current = state.current_stage
    return {
        "workflowId": None,
        "status": state.status.value,
        "points": state.points,
        "progress": state.progress,
        "minutesRemaining": state.minutes_remaining,
        "currentStage": current.key if current else None,
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
    rng: random.Random, template: TemplateDef, customer: Customer, *, version: int, now: datetime
) -> _Journey:
    """Play one customer's onboarding through the engine, from signup until `now`."""
    signup = customer.signed_up_at
    state = engine.initial_state(template, signed_up_at=signup, now=signup)
    journey = _Journey(state=state, last_activity=signup)
    started = {"template": template.key, "version": version, "workflow": _figures(state)}
    journey.events.append((signup, "workflow.started", started))
    _, pace, commitment = USER_TYPES[customer.user_type]
    commitment *= CHANNELS[customer.acquisition_channel][1] * rng.lognormvariate(0, 0.3)
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


@dataclass
class _Seeder:
    """Builds the rows of simulated customers in memory, then bulk-inserts them."""

    rng: random.Random
    template: WorkflowTemplate
    now: datetime
    actor: str
    rows: dict[type[Model], list[Any]] = field(default_factory=dict)
    definition: TemplateDef = field(init=False)

    def __post_init__(self) -> None:
        self.definition = definition_of(self.template)

    def add(self, name: str, company: str, email: str) -> None:
        """One customer with its workflow, stages, tasks, event stream and event history."""
        rng, now, definition = self.rng, self.now, self.definition
        org_id = self.template.organization_id  # type: ignore[attr-defined]
        user_type = rng.choices(list(USER_TYPES), [w for w, _, _ in USER_TYPES.values()])[0]
        channel = rng.choices(list(CHANNELS), [w for w, _ in CHANNELS.values()])[0]
        signup = now - timedelta(seconds=600 + (89.9 * 86400 - 600) * rng.random() ** 1.8)
        tags = ["key-account"] if user_type == "enterprise" else []
        customer = Customer(
            id=uuid.uuid4(),
            organization_id=org_id,
            external_id=f"cus_{rng.getrandbits(48):012x}",
            email=email,
            name=name,
            company=company,
            user_type=user_type,
            acquisition_channel=channel,
            tags=tags + (["referred"] if channel == "referral" else []),
            signed_up_at=signup,
            created_at=signup,
        )
        journey = _simulate(rng, definition, customer, version=self.template.version, now=now)
        workflow, stages, tasks = new_rows(
            journey.state,
            organization_id=org_id,
            customer_id=customer.id,
            template_id=self.template.id,
            template=definition,
            now=journey.last_activity,
        )
        workflow.started_at = workflow.created_at = signup
        workflow.version = journey.actions
        for task in tasks:
            task.updated_at = journey.touched.get(task.key, signup)
        created = {"customerId": str(customer.id), "name": name, "email": email}
        history = [(signup, "customer.created", created), *journey.events]
        events = []
        for seq, (at, kind, payload) in enumerate(history, start=1):
            if "workflow" in payload:
                payload["workflow"]["workflowId"] = str(workflow.id)
            events.append(
                OutboxEvent(
                    organization_id=org_id,
                    customer_id=customer.id,
                    stream=customer.id,
                    sequence=seq,
                    type=kind,
                    payload=payload,
                    actor=self.actor if seq <= 2 else f"customer:{email}",
                    created_at=at,
                    published_at=now,  # history: the relay must not publish it again
                )
            )
        stream = EventStream(id=customer.id, organization_id=org_id, last_sequence=len(history))
        parts: tuple[list[Any], ...] = ([customer], [workflow], stages, tasks, [stream], events)
        for model, new in zip(_MODELS, parts, strict=True):
            self.rows.setdefault(model, []).extend(new)

    async def flush(self) -> None:
        """Insert the rows built so far, parents first."""
        for model in _MODELS:
            await model.bulk_create(self.rows.pop(model, []))


async def _existing(slug: str) -> DemoResult | None:
    """The result of an earlier seeding of `slug`, if there was one."""
    org = await Organization.get_or_none(slug=slug)
    if org is None:
        return None
    operators = Operator.filter(organization_id=org.id).order_by("created_at")
    admin = await operators.filter(role=Role.ADMIN).first()
    csm = await operators.filter(role=Role.CSM).first()
    active = Workflow.filter(organization_id=org.id, status=WorkflowStatus.ACTIVE)
    failed = WorkflowTask.filter(organization_id=org.id, status=TaskStatus.FAILED)
    in_flight = (  # midway (Setup or Features), active lately, nothing failed: a good sample
        active.filter(
            points__gte=50, points__lt=400, last_activity_at__gte=utcnow() - timedelta(days=3)
        )
        .exclude(id__in=Subquery(failed.values_list("workflow_id", flat=True)))
        .order_by("-last_activity_at")
    )
    workflow = (
        await in_flight.first()
        or await active.first()
        or await Workflow.filter(organization_id=org.id).first()
    )
    if admin is None or workflow is None:
        raise Conflict(f"Organization {slug!r} exists but holds no demo data; pick another slug.")
    customer = await Customer.get(id=workflow.customer_id)  # type: ignore[attr-defined]
    count = await Customer.filter(organization_id=org.id).count()
    return DemoResult(org, admin, csm or admin, customer, count)


async def seed_demo(
    *,
    customers: int = 1200,
    seed: int = 7,
    slug: str = "demo",
    progress: Callable[[int, int], None] | None = None,
) -> DemoResult:
    """Create the demo organization with `customers` customers, or return it if it exists."""
    if customers < 1:
        raise ValidationFailed("The demo needs at least one customer.", field="customers")
    found = await _existing(slug)
    if found is not None:
        return found
    rng, now = random.Random(seed), utcnow()
    try:
        async with transaction():  # all or nothing: a half-seeded demo is never "existing"
            new = await open_organization(
                name="Acme Analytics",
                slug=slug,
                admin_email=f"admin@{slug}.example",
                admin_name="Alex Rivera",
                created_by="demo",
            )
            org, template = new.organization, new.template
            assert template is not None
            csm = await Operator.create(
                organization=org, email=f"csm@{slug}.example", name="Casey Morgan", role=Role.CSM
            )
            seeder = _Seeder(rng, template, now, actor=f"csm:{csm.email}")
            people = _people(rng, customers)
            for start in range(0, customers, _CHUNK):
                for person in people[start : start + _CHUNK]:
                    seeder.add(*person)
                await seeder.flush()
                if progress is not None:
                    progress(min(start + _CHUNK, customers), customers)
    except Conflict:
        pass  # another process seeded `slug` at the same time: return what it made
    found = await _existing(slug)
    assert found is not None
    return found
