"""Jinja2 templates of rule actions, rendered in a sandbox (rules are written by admins)."""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, select_autoescape
from jinja2.sandbox import SandboxedEnvironment

_TEXT = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
_HTML = SandboxedEnvironment(undefined=StrictUndefined, autoescape=select_autoescape(default=True))


def syntax_problem(source: str) -> str | None:
    """Why a template cannot be parsed, or None."""
    try:
        _TEXT.parse(source)
    except TemplateSyntaxError as exc:
        return f"line {exc.lineno}: {exc.message}"
    return None


@lru_cache(maxsize=2048)
def _compiled(source: str, html: bool) -> Any:
    return (_HTML if html else _TEXT).from_string(source)


def render(source: str, variables: Mapping[str, Any], *, html: bool = False) -> str:
    """Render a template; unknown variables and sandbox violations raise."""
    return str(_compiled(source, html).render(**variables))


def render_data(value: Any, variables: Mapping[str, Any]) -> Any:
    """Render every string inside plain data (a webhook body, a property value)."""
    if isinstance(value, str):
        return render(value, variables) if "{" in value else value
    if isinstance(value, list):
        return [render_data(v, variables) for v in value]
    if isinstance(value, Mapping):
        return {k: render_data(v, variables) for k, v in value.items()}
    return value


def template_problems(value: Any, path: str) -> list[str]:
    """Syntax errors of every template string inside plain data."""
    if isinstance(value, str):
        problem = syntax_problem(value) if "{" in value else None
        return [f"{path}: template error, {problem}"] if problem else []
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in template_problems(v, f"{path}[{i}]")]
    if isinstance(value, Mapping):
        return [p for k, v in value.items() for p in template_problems(v, f"{path}.{k}")]
    return []
