"""The schema: each domain's Query and Mutation merged, with the security extensions."""

from __future__ import annotations

import logging
from typing import Any

import strawberry
from graphql.error import GraphQLError
from strawberry.extensions import MaxAliasesLimiter, MaxTokensLimiter, QueryDepthLimiter
from strawberry.tools import merge_types
from strawberry.types import ExecutionContext

from app.graphql.accounts.queries import Query as AccountsQuery
from app.graphql.customers.queries import Mutation as CustomersMutation
from app.graphql.customers.queries import Query as CustomersQuery
from app.graphql.errors import ErrorCodes, domain_error_of, is_callers_error
from app.graphql.events.subscriptions import Subscription
from app.graphql.onboarding.mutations import Mutation as OnboardingMutation
from app.graphql.onboarding.queries import Query as OnboardingQuery
from app.settings import Settings, get_settings

log = logging.getLogger("app.graphql")

Query = merge_types("Query", (AccountsQuery, CustomersQuery, OnboardingQuery))
Mutation = merge_types("Mutation", (CustomersMutation, OnboardingMutation))


class LiftoffSchema(strawberry.Schema):
    """Logs unexpected errors with their traceback; expected ones are the caller's business."""

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        for error in errors:
            if not is_callers_error(error) and domain_error_of(error) is None:
                log.error("unexpected error in %s", error.path, exc_info=error.original_error)


def build_schema(settings: Settings | None = None) -> strawberry.Schema:
    """The schema with depth, alias and token limits and error codes."""
    s = settings or get_settings()
    extensions: list[Any] = [
        lambda: QueryDepthLimiter(max_depth=s.max_query_depth),
        lambda: MaxAliasesLimiter(max_alias_count=s.max_aliases),
        lambda: MaxTokensLimiter(max_token_count=s.max_tokens),
        ErrorCodes,
    ]
    return LiftoffSchema(
        query=Query, mutation=Mutation, subscription=Subscription, extensions=extensions
    )


def export_sdl() -> str:
    """The schema as SDL text, as kept in schema.graphql."""
    return build_schema(Settings()).as_str() + "\n"
