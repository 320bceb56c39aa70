"""Rule conditions: nested all / any / not over facts, typed operators, explained results."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

Op = Literal[
    "eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in", "contains", "starts_with", "exists"
]
OPS: tuple[str, ...] = (
    "eq",
    "ne",
    "gt",
    "gte",
    "lt",
    "lte",
    "in",
    "not_in",
    "contains",
    "starts_with",
    "exists",
)
ORDERED = {"gt", "gte", "lt", "lte"}
MAX_NESTING = 8
_MISSING = object()


@dataclass(frozen=True)
class ConditionResult:
    """Whether one condition held, with the value seen and why; groups carry their children."""

    path: str
    kind: str  # "all" | "any" | "not" | "fact"
    held: bool
    fact: str | None = None
    op: str | None = None
    expected: Any = None
    seen: Any = None
    reason: str = ""
    children: tuple[ConditionResult, ...] = field(default_factory=tuple)

    def flatten(self) -> list[dict[str, Any]]:
        """Every condition of the tree, depth first, as plain data."""
        row = {
            "path": self.path,
            "kind": self.kind,
            "held": self.held,
            "fact": self.fact,
            "op": self.op,
            "expected": self.expected,
            "seen": _plain(self.seen),
            "reason": self.reason,
        }
        out = [row]
        for child in self.children:
            out.extend(child.flatten())
        return out


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


ALWAYS = ConditionResult(path="", kind="all", held=True, reason="no conditions")


def lookup(facts: Mapping[str, Any], name: str) -> Any:
    """The value at a dotted fact name (`customer.properties.plan`), or _MISSING."""
    value: Any = facts
    for part in name.split("."):
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        else:
            return _MISSING
    return value


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "list"
    if isinstance(value, datetime):
        return "datetime"
    return "object"


def as_datetime(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and len(value) >= 10 and value[4:5] == "-":
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
        if parsed.tzinfo is None:
            from datetime import UTC

            parsed = parsed.replace(tzinfo=UTC)
        return parsed
    return None


def _ordered(seen: Any, expected: Any) -> tuple[Any, Any] | str:
    """Both sides as comparable values of one type, or the reason they are not."""
    if _kind(expected) == "number":
        if _kind(seen) != "number":
            return f"expected a number, saw {_kind(seen)}"
        return seen, expected
    want = as_datetime(expected)
    got = as_datetime(seen)
    if want is None:
        return f"cannot order by {_kind(expected)}"
    if got is None:
        return f"expected a date, saw {_kind(seen)}"
    return got, want


def _same_type(seen: Any, expected: Any) -> bool:
    a, b = _kind(seen), _kind(expected)
    return a == b or {a, b} == {"datetime", "string"}


def _equal(seen: Any, expected: Any) -> bool:
    if isinstance(seen, datetime) or isinstance(expected, datetime):
        return as_datetime(seen) == as_datetime(expected)
    return bool(seen == expected) and _kind(seen) == _kind(expected)


def compare(op: str, seen: Any, expected: Any) -> tuple[bool, str]:
    """Apply one operator; return whether it held and a reason in words."""
    if op == "exists":
        want = True if expected is None else bool(expected)
        present = seen is not _MISSING and seen is not None
        return present == want, ("present" if present else "absent")
    if seen is _MISSING:
        return False, "no such fact"
    if op in ("eq", "ne"):
        if seen is not None and expected is not None and not _same_type(seen, expected):
            reason = f"type differs: saw {_kind(seen)}, expected {_kind(expected)}"
            return op == "ne", reason
        equal = _equal(seen, expected)
        return (equal if op == "eq" else not equal), ("equal" if equal else "not equal")
    if op in ORDERED:
        pair = _ordered(seen, expected)
        if isinstance(pair, str):
            return False, pair
        a, b = pair
        held = {"gt": a > b, "gte": a >= b, "lt": a < b, "lte": a <= b}[op]
        return held, f"{_plain(a)} {op} {_plain(b)}: {'yes' if held else 'no'}"
    if op in ("in", "not_in"):
        members = list(expected or [])
        inside = any(_equal(seen, m) for m in members)
        return (inside if op == "in" else not inside), ("in list" if inside else "not in list")
    if op == "contains":
        if isinstance(seen, str):
            if not isinstance(expected, str):
                return False, "a string contains only strings"
            found = expected in seen
        elif isinstance(seen, (list, tuple)):
            found = any(_equal(item, expected) for item in seen)
        else:
            return False, f"expected a string or list, saw {_kind(seen)}"
        return found, ("contains it" if found else "does not contain it")
    if op == "starts_with":
        if not isinstance(seen, str):
            return False, f"expected a string, saw {_kind(seen)}"
        held = isinstance(expected, str) and seen.startswith(expected)
        return held, ("starts with it" if held else "does not start with it")
    return False, f"unknown operator {op!r}"


def evaluate(
    condition: Mapping[str, Any] | None, facts: Mapping[str, Any], path: str = "$"
) -> ConditionResult:
    """Evaluate a (validated) condition tree over facts; every branch is evaluated and explained."""
    if not condition:
        return ALWAYS
    if "all" in condition or "any" in condition:
        kind = "all" if "all" in condition else "any"
        children = tuple(
            evaluate(c, facts, f"{path}.{kind}[{i}]") for i, c in enumerate(condition[kind])
        )
        held = all(c.held for c in children) if kind == "all" else any(c.held for c in children)
        counted = sum(c.held for c in children)
        reason = f"{counted} of {len(children)} held"
        return ConditionResult(path, kind, held, reason=reason, children=children)
    if "not" in condition:
        inner = evaluate(condition["not"], facts, f"{path}.not")
        reason = "inner condition did not hold" if not inner.held else "inner condition held"
        return ConditionResult(path, "not", not inner.held, reason=reason, children=(inner,))
    name, op, expected = condition["fact"], condition["op"], condition.get("value")
    seen = lookup(facts, name)
    held, reason = compare(op, seen, expected)
    shown = None if seen is _MISSING else seen
    return ConditionResult(path, "fact", held, name, op, expected, shown, reason)


def problems(condition: Any, path: str = "conditions", depth: int = 0) -> list[str]:
    """Every reason a raw condition tree is malformed (empty when it is fine)."""
    if depth > MAX_NESTING:
        return [f"{path}: nested deeper than {MAX_NESTING} levels"]
    if not isinstance(condition, Mapping):
        return [f"{path}: a condition must be a mapping"]
    groups = [k for k in ("all", "any", "not") if k in condition]
    if groups:
        if len(condition) != 1:
            return [f"{path}: a group has exactly one key (all, any or not)"]
        key = groups[0]
        if key == "not":
            return problems(condition["not"], f"{path}.not", depth + 1)
        items = condition[key]
        if not isinstance(items, list) or not items:
            return [f"{path}.{key}: must be a non-empty list of conditions"]
        out: list[str] = []
        for i, item in enumerate(items):
            out.extend(problems(item, f"{path}.{key}[{i}]", depth + 1))
        return out
    return _leaf_problems(condition, path)


def _leaf_problems(condition: Mapping[str, Any], path: str) -> list[str]:
    out: list[str] = []
    extra = set(condition) - {"fact", "op", "value"}
    if extra:
        out.append(f"{path}: unknown keys {sorted(extra)} (use fact, op, value, or all/any/not)")
    name = condition.get("fact")
    if not isinstance(name, str) or not name or any(not p for p in name.split(".")):
        out.append(f"{path}.fact: a dotted fact name such as customer.userType is required")
    op = condition.get("op")
    if op not in OPS:
        out.append(f"{path}.op: must be one of {', '.join(OPS)}")
        return out
    value = condition.get("value", _MISSING)
    if op == "exists":
        if value not in (_MISSING, None) and not isinstance(value, bool):
            out.append(f"{path}.value: exists takes true or false")
    elif value is _MISSING:
        out.append(f"{path}.value: {op} needs a value")
    elif op in ORDERED:
        if _kind(value) != "number" and as_datetime(value) is None:
            out.append(f"{path}.value: {op} compares with a number or an ISO date")
    elif op in ("in", "not_in"):
        if not isinstance(value, list) or not value:
            out.append(f"{path}.value: {op} needs a non-empty list")
    elif op == "starts_with":
        if not isinstance(value, str):
            out.append(f"{path}.value: starts_with needs a string")
    elif op in ("eq", "ne", "contains") and _kind(value) in ("list", "object"):
        out.append(f"{path}.value: {op} compares with a single value, not a {_kind(value)}")
    return out


Check = Callable[[Mapping[str, Any]], bool]


def _fetch(parts: tuple[str, ...], facts: Mapping[str, Any]) -> Any:
    value: Any = facts
    for part in parts:
        if isinstance(value, dict) and part in value:
            value = value[part]
        else:
            return _MISSING
    return value


def _compile_leaf(condition: Mapping[str, Any]) -> Check:
    parts = tuple(condition["fact"].split("."))
    op, expected = condition["op"], condition.get("value")

    def slow(facts: Mapping[str, Any]) -> bool:
        return compare(op, _fetch(parts, facts), expected)[0]

    if op in ("eq", "ne") and isinstance(expected, str):
        want = op == "eq"

        def text(facts: Mapping[str, Any]) -> bool:
            seen = _fetch(parts, facts)
            if type(seen) is str:
                return (seen == expected) is want
            return slow(facts)

        return text
    if op in ("in", "not_in") and expected and all(isinstance(v, str) for v in expected):
        members, want = frozenset(expected), op == "in"

        def member(facts: Mapping[str, Any]) -> bool:
            seen = _fetch(parts, facts)
            if type(seen) is str:
                return (seen in members) is want
            return slow(facts)

        return member
    if op in ORDERED and _kind(expected) == "number":
        test: Callable[[Any], bool] = {
            "gt": lambda a: a > expected,
            "gte": lambda a: a >= expected,
            "lt": lambda a: a < expected,
            "lte": lambda a: a <= expected,
        }[op]

        def number(facts: Mapping[str, Any]) -> bool:
            seen = _fetch(parts, facts)
            if type(seen) is int or type(seen) is float:
                return bool(test(seen))
            return slow(facts)

        return number
    return slow


def compile_condition(condition: Mapping[str, Any] | None) -> Check:
    """A fast yes/no form of `evaluate` for a validated tree (short-circuits, explains
    nothing): the engine asks it first and explains only the conditions that held."""
    if not condition:
        return lambda facts: True
    if "all" in condition:
        checks = tuple(compile_condition(c) for c in condition["all"])
        return lambda facts: all(c(facts) for c in checks)
    if "any" in condition:
        checks = tuple(compile_condition(c) for c in condition["any"])
        return lambda facts: any(c(facts) for c in checks)
    if "not" in condition:
        inner = compile_condition(condition["not"])
        return lambda facts: not inner(facts)
    return _compile_leaf(condition)


def discriminator(condition: Mapping[str, Any] | None) -> tuple[str, frozenset[str]] | None:
    """A fact and the string values it must have for the condition to hold (from a top-level
    `eq`/`in` leaf, or one inside a top-level `all`), or None: lets the engine index rules
    by that fact and evaluate only those an event's facts can satisfy."""
    if not condition:
        return None
    leaves = condition.get("all", [condition])
    for leaf in leaves:
        if "fact" not in leaf:
            continue
        value = leaf.get("value")
        if leaf["op"] == "eq" and isinstance(value, str):
            return leaf["fact"], frozenset([value])
        if leaf["op"] == "in" and value and all(isinstance(v, str) for v in value):
            return leaf["fact"], frozenset(value)
    return None


def fact_value(facts: Mapping[str, Any], name: str) -> Any:
    """The value at a dotted fact name, or None when absent."""
    value = lookup(facts, name)
    return None if value is _MISSING else value
