"""The schema: each domain's Query and Mutation merged, with the security extensions."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import strawberry
from graphql.error import GraphQLError
from strawberry.extensions import MaskErrors, ParserCache, SchemaExtension
from strawberry.extensions.runner import SchemaExtensionsRunner
from strawberry.tools import merge_types
from strawberry.types import ExecutionContext

from app.graphql import arguments
from app.graphql.accounts.apikeys import Mutation as ApiKeysMutation
from app.graphql.accounts.apikeys import Query as ApiKeysQuery
from app.graphql.accounts.queries import Query as AccountsQuery
from app.graphql.accounts.ratelimits import Mutation as RateLimitsMutation
from app.graphql.accounts.ratelimits import Query as RateLimitsQuery
from app.graphql.accounts.signin import Mutation as SignInMutation
from app.graphql.accounts.tokens import Mutation as TokensMutation
from app.graphql.analytics.exports import Mutation as ExportMutation
from app.graphql.analytics.exports import Query as ExportQuery
from app.graphql.analytics.queries import Query as AnalyticsQuery
from app.graphql.analytics.subscriptions import Subscription as AnalyticsSubscription
from app.graphql.audit.queries import Query as AuditQuery
from app.graphql.automation.mutations import Mutation as AutomationMutation
from app.graphql.automation.queries import Query as AutomationQuery
from app.graphql.automation.subscriptions import Subscription as AutomationSubscription
from app.graphql.customers.queries import Mutation as CustomersMutation
from app.graphql.customers.queries import Query as CustomersQuery
from app.graphql.errors import ErrorCodes, domain_error_of, is_callers_error
from app.graphql.events.sharing import shared_result
from app.graphql.events.subscriptions import Subscription as EventsSubscription
from app.graphql.events.types import SHAREABLE
from app.graphql.execution import PlainLeaves
from app.graphql.guard import Limits, guard
from app.graphql.health.queries import Mutation as HealthMutation
from app.graphql.health.queries import Query as HealthQuery
from app.graphql.health.subscriptions import Subscription as HealthSubscription
from app.graphql.hooks import WrappedOnce
from app.graphql.milestones.queries import Mutation as MilestonesMutation
from app.graphql.milestones.queries import Query as MilestonesQuery
from app.graphql.observe import Observe, counted, root_field
from app.graphql.onboarding.mutations import Mutation as OnboardingMutation
from app.graphql.onboarding.queries import Query as OnboardingQuery
from app.graphql.ratelimits import rate_limits
from app.graphql.usage.mutations import Mutation as UsageMutation
from app.kit.ratelimit import Limiter
from app.settings import Settings, get_settings

log = logging.getLogger("app.graphql")

Query = merge_types(
    "Query",
    (
        AccountsQuery,
        CustomersQuery,
        OnboardingQuery,
        AnalyticsQuery,
        ExportQuery,
        AutomationQuery,
        HealthQuery,
        MilestonesQuery,
        AuditQuery,
        ApiKeysQuery,
        RateLimitsQuery,
    ),
)
Subscription = merge_types(
    "Subscription",
    (EventsSubscription, AnalyticsSubscription, AutomationSubscription, HealthSubscription),
)
Mutation = merge_types(
    "Mutation",
    (
        CustomersMutation,
        OnboardingMutation,
        SignInMutation,
        ExportMutation,
        AutomationMutation,
        HealthMutation,
        MilestonesMutation,
        TokensMutation,
        ApiKeysMutation,
        UsageMutation,
        RateLimitsMutation,
    ),
)


class LiftoffSchema(strawberry.Schema):
    """Logs unexpected errors with their traceback; expected ones are the caller's business;
    counts running subscriptions by field."""

    async def stream(  # type: ignore[override]
        self,
        query: str | None,
        variable_values: dict[str, Any] | None = None,
        context_value: Any | None = None,
        root_value: Any | None = None,
        operation_name: str | None = None,
        operation_extensions: dict[str, Any] | None = None,
        allowed_operation_types: Any = None,
    ) -> Any:
        result = await super().stream(
            query,
            variable_values,
            context_value,
            root_value,
            operation_name,
            operation_extensions,
            allowed_operation_types,
        )
        field = root_field(query, operation_name) if query else None
        if field is not None and hasattr(result, "__anext__"):
            return counted(result, field)
        return result

    def create_extensions_runner(
        self, execution_context: ExecutionContext, extensions: list[SchemaExtension]
    ) -> SchemaExtensionsRunner:
        return QuickResults(execution_context, extensions)

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        for error in errors:
            if not is_callers_error(error) and domain_error_of(error) is None:
                log.error("unexpected error in %s", error.path, exc_info=error.original_error)


class FreshPerEvent(PlainLeaves):
    """graphql-core 3.3 copies one executor per subscription event but shares its field memo,
    which gains an entry per event and never shrinks while the subscription lives; give each
    event its own memo so long-lived subscriptions keep flat memory. Events of the shareable
    types run once per document and variables: only the first subscriber's event copies an
    executor, the others get its result."""

    def build_per_event_executor(self, payload: Any) -> Any:
        if isinstance(payload, SHAREABLE):
            return _SharedEvent(self, payload)
        return self._fresh_executor(payload)

    def _fresh_executor(self, payload: Any) -> Any:
        executor = super().build_per_event_executor(payload)
        executor._relevant_sub_fields = {}
        return executor


class _SharedEvent:
    """Stands for a per-event executor of a shareable event: the result of the first
    subscriber's execution of the same document and variables over the same payload."""

    __slots__ = ("parent", "payload")

    def __init__(self, parent: FreshPerEvent, payload: Any) -> None:
        self.parent, self.payload = parent, payload

    def execute_operation(self, serially: bool | None = None) -> Any:
        parent, payload = self.parent, self.payload
        return shared_result(
            payload,
            parent.operation,
            parent.variable_values.coerced,
            lambda: parent._fresh_executor(payload).execute_operation(serially),
        )


class QuickResults(WrappedOnce):
    """Strawberry builds each extension's stream-result hook and asks each for results on
    every subscription event of every subscriber. Ours add no results, and only error
    masking looks at a streamed result: an event without errors skips both. Hooks are
    wrapped once per extension class (`WrappedOnce`)."""

    def __init__(self, execution_context: ExecutionContext, extensions: list[Any]) -> None:
        super().__init__(execution_context=execution_context, extensions=extensions)
        self.adds_results, self.reads_results = _results_hooks(self.kinds)

    def on_stream_result(self, result: Any) -> Any:
        if self.reads_results or getattr(result, "errors", None):
            return super().on_stream_result(result)
        return _NOTHING

    async def get_extensions_results(self, ctx: ExecutionContext) -> dict[str, Any]:
        if self.adds_results:
            return await super().get_extensions_results(ctx)
        return dict(ctx.extensions_results)


_RESULTS_HOOKS: dict[tuple[Any, ...], tuple[bool, bool]] = {}


def _results_hooks(kinds: tuple[Any, ...]) -> tuple[bool, bool]:
    """Whether any of these extension classes adds results, and whether any (other than error
    masking) reads streamed results; worked out once per list of classes."""
    found = _RESULTS_HOOKS.get(kinds)
    if found is None:
        found = (
            any(k.get_results is not SchemaExtension.get_results for k in kinds),
            any(
                k.on_stream_result is not SchemaExtension.on_stream_result
                and not issubclass(k, MaskErrors)
                for k in kinds
            ),
        )
        if len(_RESULTS_HOOKS) > 4096:  # schemas built over and over (tests) make classes
            _RESULTS_HOOKS.clear()
        _RESULTS_HOOKS[kinds] = found
    return found


class _Nothing:
    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *_: object) -> None:
        return None


_NOTHING = _Nothing()


class DocumentCache(ParserCache):
    """Strawberry's parser cache, except that a bad document is left to the normal parse
    step, which reports it as the caller's error (with its code) instead of escaping; with
    `max_tokens`, documents are parsed (cached or not) under that token limit, as Strawberry's
    `MaxTokensLimiter` sets it, without an operation hook of its own."""

    def __init__(self, maxsize: int | None = 128, *, max_tokens: int | None = None) -> None:
        super().__init__(maxsize=maxsize)
        self.max_tokens = max_tokens

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        if self.max_tokens is not None:
            context.parse_options["max_tokens"] = self.max_tokens
        with contextlib.suppress(GraphQLError):
            context.graphql_document = self.cached_parse_document(
                context.query, **context.parse_options
            )
        yield


def admission(
    spend: Callable[[ExecutionContext], Awaitable[None]],
    hold: Callable[[ExecutionContext], None],
) -> type[SchemaExtension]:
    """The validation extension: an operation's budgets are spent (`spend`, rate limits; a
    refusal is its only error), then it is held to the query limits and validated (`hold`,
    which leaves a refused operation as it is): one validation hook for both."""

    class Admission(SchemaExtension):
        async def on_validate(self) -> AsyncIterator[None]:
            await spend(self.execution_context)
            hold(self.execution_context)
            yield

    return Admission


def build_schema(
    settings: Settings | None = None, *, limiter: Limiter | None = None
) -> strawberry.Schema:
    """The schema with token, cost, depth and alias limits, parse/validation caches and
    error codes; every extension is passed as a factory, so nothing is shared between requests.
    """
    s = settings or get_settings()
    arguments.install()
    limits = Limits(
        max_cost=s.max_query_cost,
        max_depth=s.max_query_depth,
        max_aliases=s.max_aliases,
        validation_seconds=s.max_validation_seconds,
        introspection=s.introspection_mode,
    )
    observe = s.metrics or s.log_level.upper() in ("DEBUG", "INFO")
    extensions: list[Any] = [
        # error codes, and with `observe` the operation's line, metrics and span around them
        Observe if observe else ErrorCodes,
        lambda: DocumentCache(maxsize=512, max_tokens=s.max_tokens),
        admission(
            rate_limits(s, limiter or Limiter(s.redis_url, local_share=s.rate_local_share)),
            guard(limits),
        ),
    ]
    return LiftoffSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=extensions,
        execution_context_class=FreshPerEvent,
    )


def export_sdl() -> str:
    """The schema as SDL text, as kept in schema.graphql."""
    return build_schema(Settings()).as_str() + "\n"
