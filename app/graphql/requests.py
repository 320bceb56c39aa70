"""Request limits of the HTTP transport: body size (read in bounded chunks), JSON nesting,
string and list sizes in variables, and the size of the encoded answer."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from graphql import GraphQLError, OperationType, get_operation_ast, parse
from starlette.responses import JSONResponse
from starlette.types import Message, Receive, Scope

from app.headers import request_header

VALIDATION_FAILED = "VALIDATION_FAILED"


@dataclass(frozen=True, slots=True)
class RequestLimits:
    """How large a request and its answer may be."""

    max_body_bytes: int
    max_json_depth: int
    max_string_chars: int
    max_list_items: int
    max_response_bytes: int


class RequestRefused(Exception):
    """A request refused before it reaches GraphQL, with its HTTP status and a reason."""

    def __init__(self, status: int, message: str, **details: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = details

    def response(self) -> JSONResponse:
        extensions = {"code": VALIDATION_FAILED, **self.details}
        body = {"data": None, "errors": [{"message": self.message, "extensions": extensions}]}
        return JSONResponse(body, status_code=self.status)


def too_large(limit: int) -> RequestRefused:
    return RequestRefused(413, f"The request body is over the limit of {limit} bytes.", limit=limit)


def check_declared_length(scope: Scope, limit: int) -> None:
    """Refuse at once a body whose Content-Length is over the limit."""
    declared = request_header(scope, b"content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise too_large(limit)


def bounded(receive: Receive, limit: int) -> Receive:
    """`receive` that refuses the body once more than `limit` bytes have arrived."""
    seen = 0

    async def receive_bounded() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise too_large(limit)
        return message

    return receive_bounded


def decode(data: str | bytes, limits: RequestLimits) -> object:
    """Parse a JSON body and check its shape; RequestRefused (400) when it is out of bounds."""
    try:
        value = json.loads(data)
    except RecursionError:
        raise _nested(limits.max_json_depth) from None
    except json.JSONDecodeError as exc:
        raise RequestRefused(400, f"The body is not valid JSON: {exc}.") from None
    check_shape(value, limits)
    return value


def decode_message(data: str | bytes) -> object:
    """Parse a websocket message; one nested too deep is unreadable like invalid JSON."""
    try:
        return json.loads(data)
    except RecursionError:
        raise json.JSONDecodeError("nested too deep", "", 0) from None


def check_shape(value: object, limits: RequestLimits) -> None:
    """Nesting depth, string lengths and list lengths of decoded JSON, walked without recursion;
    an item's path is put into words only for a refusal."""
    stack: list[tuple[object, _At, int]] = [(value, None, 0)]
    while stack:
        item, at, depth = stack.pop()
        if depth > limits.max_json_depth:
            raise _nested(limits.max_json_depth, _path(at))
        if isinstance(item, str):
            if "\x00" in item:
                path = _path(at)
                raise RequestRefused(400, f"`{path}` contains a NUL character.", field=path)
            if len(item) > limits.max_string_chars and (path := _path(at)) != "query":
                raise RequestRefused(
                    400,
                    f"`{path}` has {len(item)} characters; at most {limits.max_string_chars} "
                    "are accepted.",
                    field=path,
                )
        elif isinstance(item, list):
            if len(item) > limits.max_list_items:
                path = _path(at)
                raise RequestRefused(
                    400,
                    f"`{path}` has {len(item)} items; at most {limits.max_list_items} "
                    "are accepted.",
                    field=path,
                )
            stack.extend((v, (at, i, True), depth + 1) for i, v in enumerate(item))
        elif isinstance(item, dict):
            stack.extend((v, (at, k, False), depth + 1) for k, v in item.items())


_At = tuple[Any, object, bool] | None
"""Where an item sits in decoded JSON: None for the whole body, else (where its container
sits, its key or index, whether that is a list index)."""


def _path(at: _At) -> str:
    """An item's path as refusals name it: `variables.input.name`, `[0].query`, `a.b[2]`."""
    steps: list[tuple[object, bool]] = []
    while at is not None:
        at, key, index = at
        steps.append((key, index))
    path = ""
    for key, index in reversed(steps):
        path = f"{path}[{key}]" if index else f"{path}.{key}" if path else str(key)
    return path


def _nested(limit: int, path: str = "") -> RequestRefused:
    where = f" at `{path}`" if path else ""
    return RequestRefused(
        400, f"The JSON body is nested deeper than {limit} levels{where}.", field=path or None
    )


def refuse_subscription(query: str | None, operation_name: str | None, max_tokens: int) -> None:
    """Subscriptions need a websocket: refuse one sent over HTTP with a clear reason."""
    if not query or "subscription" not in query:
        return
    try:
        operation = get_operation_ast(parse(query, max_tokens=max_tokens), operation_name)
    except GraphQLError:
        return  # the normal path reports the syntax error
    if operation is not None and operation.operation is OperationType.SUBSCRIPTION:
        raise RequestRefused(
            400,
            "Subscriptions run over a websocket: connect to /graphql with the "
            "graphql-transport-ws protocol.",
        )


def response_too_large(size: int, limit: int) -> bytes:
    """The answer sent instead of one whose encoding is over the limit."""
    message = (
        f"The answer would be {size} bytes, over the limit of {limit}; "
        "ask for smaller pages or fewer fields."
    )
    body = {
        "data": None,
        "errors": [
            {"message": message, "extensions": {"code": "QUERY_TOO_COMPLEX", "limit": limit}}
        ],
    }
    return json.dumps(body).encode()
