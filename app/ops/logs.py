"""Structured logs: JSON lines in production, readable lines in development.

Every log call, ours through `structlog` or any library's through `logging`, is rendered by
one formatter that adds the time, level, logger and the values bound to the current
context (request id, organization, role), so a request's lines can be found together.
"""

from __future__ import annotations

import logging
import os
import random
import re
import sys
from typing import Literal

import structlog

LogFormat = Literal["auto", "json", "console"]

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_NEW_IDS = random.Random()
"""New request ids: 128 random bits, as a uuid4 has, without a system call per request; seeded
from the operating system's randomness, and again in a forked child (ids of two processes
never follow one sequence). Ids name requests in logs and traces; they are no secret."""
os.register_at_fork(after_in_child=_NEW_IDS.seed)
_SECRET_KEYS = ("authorization", "token", "password", "secret", "body", "html", "text")


def request_id_of(header: str | None) -> str:
    """The proxy's `X-Request-ID` when it is a sane token, else a new id (32 hex digits)."""
    if header and _REQUEST_ID.match(header):
        return header
    return f"{_NEW_IDS.getrandbits(128):032x}"


def _drop_secrets(
    _: object, __: str, event: structlog.types.EventDict
) -> structlog.types.EventDict:
    for key in list(event):
        if key != "event" and any(word in key.lower() for word in _SECRET_KEYS):
            event[key] = "[redacted]"
    return event


def configure(*, level: str = "INFO", fmt: LogFormat = "auto") -> None:
    """Route `logging` and `structlog` through one renderer at `level`."""
    json_lines = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _drop_secrets,
    ]
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if json_lines
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        # a call below the logger's level is dropped first, before its values are rendered
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )
    handler = logging.StreamHandler()
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    # One line per GraphQL operation replaces uvicorn's access line.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
