"""Plain-text tables and the cell formats the benchmarks share."""

from __future__ import annotations

import math

MAX_ERROR_SHARE = 0.01
"""The share of failed requests a benchmark tolerates; beyond it the run stops (exit 1)."""


class TooManyErrors(RuntimeError):
    """A run where too many requests failed: its figures would measure the failures."""


def fail_on_errors(what: str, ok: int, errors: int, first: str | None) -> None:
    """Raise TooManyErrors when more than MAX_ERROR_SHARE of `what`'s requests failed, with
    the first failure, so refused requests (e.g. RATE_LIMITED) cannot pass for fast ones."""
    total = ok + errors
    if errors and errors > MAX_ERROR_SHARE * total:
        raise TooManyErrors(
            f"{what}: {errors} of {total} requests failed ({errors / total:.0%}, more than the "
            f"{MAX_ERROR_SHARE:.0%} a benchmark tolerates), so its figures would be "
            f"meaningless. First failure: {first}"
        )


def cell(value: float | None, spec: str = "{:.2f}") -> str:
    """`value` formatted, or '-' when there is none (None or NaN)."""
    return "-" if value is None or math.isnan(value) else spec.format(value)


def table(
    heads: list[list[str]],
    rows: list[list[str]],
    *,
    widths: list[int] | None = None,
    align: str | None = None,
    sep: str = "  ",
    rule: bool = False,
) -> list[str]:
    """The lines of a table: one or more header lines, an optional rule of dashes, the rows.

    `widths` defaults to the widest cell of each column; `align` has one '<' (left) or '>'
    (right, the default) per column; `sep` goes between columns.
    """
    lines = [*heads, *rows]
    if widths is None:
        widths = [max(len(line[i]) for line in lines) for i in range(len(heads[0]))]
    aligns = align or ">" * len(widths)

    def line(cells: list[str]) -> str:
        return sep.join(
            c.ljust(w) if a == "<" else c.rjust(w)
            for c, w, a in zip(cells, widths, aligns, strict=True)
        )

    out = [line(h) for h in heads]
    if rule:
        out.append("-" * len(out[0]))
    return out + [line(r) for r in rows]
