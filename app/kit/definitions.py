"""Readable definitions (YAML/JSON) validated into pydantic models, refused with every reason."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from app.errors import DomainError

D = TypeVar("D", bound=BaseModel)


def reasons_of(exc: ValidationError, prefix: str = "") -> list[str]:
    """Each pydantic error as `path: message`."""
    return [
        f"{prefix}{'.'.join(str(p) for p in err['loc']) or 'definition'}: {err['msg']}"
        for err in exc.errors()
    ]


def load_text(text: str, *, error: type[DomainError], what: str) -> Any:
    """Parse YAML (a superset of JSON) into plain data, refusing unreadable text, aliases
    (whose expansion can grow without bound) and nesting deeper than Python can follow."""
    import yaml

    class Loader(yaml.SafeLoader):
        def compose_node(self, parent: Any, index: Any) -> Any:
            if self.check_event(yaml.AliasEvent):
                event = self.peek_event()  # type: ignore[no-untyped-call]
                raise yaml.MarkedYAMLError(
                    problem="aliases (*name) are not accepted", problem_mark=event.start_mark
                )
            return super().compose_node(parent, index)

    try:
        return yaml.load(text, Loader=Loader)
    except RecursionError:
        reason = "nested too deeply"
        raise error(f"{what} text is {reason}.", reasons=[reason]) from None
    except yaml.YAMLError as exc:
        raise error(f"{what} text is not valid YAML or JSON: {exc}", reasons=[str(exc)]) from None


def validate(
    cls: type[D],
    raw: Any,
    *,
    error: type[DomainError],
    what: str,
    problems: Callable[[D], list[str]],
) -> D:
    """`raw` as a `cls`, or `error` listing every reason: types first, then `problems`."""
    if not isinstance(raw, dict):
        raise error(f"A {what.lower()} must be a mapping.", reasons=["not a mapping"])
    try:
        parsed = cls.model_validate(raw)
    except ValidationError as exc:
        reasons = reasons_of(exc)
        raise error(f"{what} is invalid: " + "; ".join(reasons), reasons=reasons) from None
    found = problems(parsed)
    if found:
        raise error(f"{what} is invalid: " + "; ".join(found), reasons=found)
    return parsed
