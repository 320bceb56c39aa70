"""Which budgets a GraphQL operation spends: per token subject, per organization and per
client address; reads, writes, sign-ins and subscriptions counted apart."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from graphql import FieldNode, OperationType, get_operation_ast
from graphql.error import GraphQLError
from strawberry.types import ExecutionContext

from app.accounts.ratelimits import overrides_of
from app.accounts.viewer import Viewer
from app.errors import RateLimited
from app.kit.ratelimit import Limiter
from app.ops import metrics
from app.settings import Settings

log = logging.getLogger(__name__)

SIGN_IN_FIELDS = frozenset({"login", "redeemSignInLink"})
INGEST_FIELDS = frozenset({"ingestEvents"})


def client_address(request: Any) -> str:
    """The caller's address as the server saw it (the host of the scope's `client`, which
    Starlette's `request.client` wraps)."""
    client = getattr(request, "scope", {}).get("client")
    return str(client[0]) if client else "unknown"


def budgets(
    settings: Settings,
    *,
    kind: str,
    subject: str | None,
    organization: str | None,
    address: str,
    overrides: Mapping[str, str] | None = None,
) -> list[tuple[str, str, str]]:
    """(budget, scope, key) to spend for one operation of `kind`; `overrides` are the
    organization's own budgets (`app/accounts/ratelimits.py`)."""
    own = overrides or {}
    if kind == "ingest" and subject is not None and organization is not None:
        # servers send batches at a steady rate from few addresses: their own budget
        budget = own.get("ingest", settings.rate_ingest)
        return [(budget, "ingest:subject", f"{organization}:{subject}")]
    spend = [(settings.rate_per_address, "address", address)]
    if kind == "sign-in":
        spend.append((settings.rate_sign_ins, "sign-in", address))
    if subject is not None and organization is not None:
        per_subject = {
            "read": own.get("reads", settings.rate_reads),
            "write": own.get("writes", settings.rate_writes),
            "subscribe": own.get("subscribes", settings.rate_subscribes),
        }.get(kind)
        if per_subject:
            spend.append((per_subject, f"{kind}:subject", f"{organization}:{subject}"))
        budget = own.get("organization", settings.rate_per_organization)
        spend.append((budget, "organization", organization))
    return spend


async def organization_overrides(viewer: Viewer | None) -> Mapping[str, str] | None:
    """The viewer's organization's own budgets; none when they cannot be read (the
    defaults apply rather than refusing the request)."""
    if viewer is None:
        return None
    try:
        return await overrides_of(viewer.organization_id)
    except Exception as exc:
        log.warning("rate-limit overrides unavailable (%s); using the defaults", exc)
        return None


def refusal(scope: str, retry_after: float) -> RateLimited:
    metrics.RATE_LIMITED.labels(budget=scope).inc()
    return RateLimited(
        f"Too many requests ({scope} budget); retry in {retry_after:g} seconds.",
        retryAfter=retry_after,
        scope=scope,
    )


async def check(limiter: Limiter, spend: list[tuple[str, str, str]]) -> RateLimited | None:
    """Spend every budget (one round trip to Redis); the first one exhausted, as a refusal."""
    refused = await limiter.hit_all([(text, (scope, key)) for text, scope, key in spend])
    if refused is None:
        return None
    n, wait = refused
    return refusal(spend[n][1], wait)


def operation_kind(document: Any, operation_name: str | None) -> str:
    operation = get_operation_ast(document, operation_name)
    if operation is None or operation.operation is OperationType.QUERY:
        return "read"
    if operation.operation is OperationType.SUBSCRIPTION:
        return "subscribe"
    fields = {s.name.value for s in operation.selection_set.selections if isinstance(s, FieldNode)}
    if fields and fields <= INGEST_FIELDS:
        return "ingest"
    return "sign-in" if fields & SIGN_IN_FIELDS else "write"


def rate_limits(
    settings: Settings, limiter: Limiter
) -> Callable[[ExecutionContext], Awaitable[None]]:
    """What spends the budgets of an operation, before it is validated (`app.graphql.schema`
    runs it in its validation hook); a refusal is the operation's only error (RATE_LIMITED,
    with `retryAfter` seconds)."""

    async def spend_budgets(execution: ExecutionContext) -> None:
        context = execution.context
        viewer = getattr(context, "_viewer", None)
        spend = budgets(
            settings,
            kind=operation_kind(execution.graphql_document, execution.operation_name),
            subject=viewer.subject if viewer else None,
            organization=str(viewer.organization_id) if viewer else None,
            address=client_address(getattr(context, "request", None)),
            overrides=await organization_overrides(viewer),
        )
        refused = await check(limiter, spend)
        if refused is not None:
            response = getattr(context, "response", None)
            if response is not None and hasattr(response, "status_code"):
                response.status_code = 429
                response.headers["Retry-After"] = str(int(refused.details["retryAfter"]))
            error = GraphQLError(refused.message, original_error=refused)
            execution.pre_execution_errors = [error]

    return spend_budgets
