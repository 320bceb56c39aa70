"""Plain-text tables and the cell formats the benchmarks share."""

from __future__ import annotations

import math


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
