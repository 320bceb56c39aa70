"""The PDF report a CS lead sends on: title page, headline figures, funnel chart, cohort
table, trend chart and recommendations, drawn with fpdf2 from the exported data."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from fpdf import FPDF

from app.analytics.render import FORECAST_STAGE_KEYS

INK = (33, 37, 41)
BLUE = (45, 110, 200)
GREEN = (60, 160, 90)
GREY = (200, 205, 210)


def text(value: Any) -> str:
    """Printable in the PDF's core font (Latin-1); anything else becomes '?'."""
    if value is None:
        return "n/a"
    if isinstance(value, float):
        value = f"{value:,.1f}"
    elif isinstance(value, int):
        value = f"{value:,}"
    return str(value).encode("latin-1", "replace").decode("latin-1")


class _Doc(FPDF):
    def footer(self) -> None:
        self.set_y(-12)
        self.set_font("helvetica", size=8)
        self.set_text_color(120, 120, 120)
        self.cell(0, 8, f"Liftoff onboarding analytics - page {self.page_no()}", align="C")


def _heading(pdf: FPDF, title: str) -> None:
    pdf.set_font("helvetica", "B", 15)
    pdf.set_text_color(*INK)
    pdf.cell(0, 10, text(title), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)


def _table(
    pdf: FPDF, header: Sequence[str], rows: Sequence[Sequence[Any]], widths: Sequence[int]
) -> None:
    pdf.set_font("helvetica", "B", 9)
    pdf.set_fill_color(235, 238, 242)
    for h, w in zip(header, widths, strict=True):
        pdf.cell(w, 7, text(h), border=1, fill=True)
    pdf.ln()
    pdf.set_font("helvetica", size=9)
    for row in rows:
        if pdf.get_y() > pdf.h - 25:
            pdf.add_page()
        for v, w in zip(row, widths, strict=True):
            pdf.cell(w, 6, text(v), border=1)
        pdf.ln()
    pdf.ln(4)


def _bars(
    pdf: FPDF,
    labels: Sequence[str],
    series: Sequence[tuple[str, Sequence[int], tuple[int, int, int]]],
) -> None:
    """Horizontal grouped bars, one group per label."""
    top, left, width = pdf.get_y(), pdf.l_margin + 45, pdf.w - pdf.l_margin - pdf.r_margin - 60
    peak = max([v for _, values, _ in series for v in values] + [1])
    bar = 5
    pdf.set_font("helvetica", size=8)
    y = top
    for i, label in enumerate(labels):
        pdf.set_xy(pdf.l_margin, y)
        pdf.cell(44, bar * len(series), text(label), align="R")
        for j, (_, values, color) in enumerate(series):
            pdf.set_fill_color(*color)
            length = width * values[i] / peak
            pdf.rect(left, y + j * bar, max(length, 0.3), bar - 1, style="F")
            pdf.set_xy(left + length + 1, y + j * bar)
            pdf.cell(20, bar - 1, text(values[i]))
        y += bar * len(series) + 3
    pdf.set_xy(pdf.l_margin, y)
    _legend(pdf, [(name, color) for name, _, color in series])


def _legend(pdf: FPDF, items: Sequence[tuple[str, tuple[int, int, int]]]) -> None:
    x = pdf.l_margin
    y = pdf.get_y() + 1
    for name, color in items:
        pdf.set_fill_color(*color)
        pdf.rect(x, y + 1, 4, 3, style="F")
        pdf.set_xy(x + 5, y)
        pdf.cell(35, 5, text(name))
        x += 40
    pdf.set_xy(pdf.l_margin, y + 8)


def _lines(
    pdf: FPDF,
    labels: Sequence[str],
    series: Sequence[tuple[str, Sequence[float], tuple[int, int, int]]],
) -> None:
    """A line chart with a grey frame and the first and last labels on the x axis."""
    left, top = pdf.l_margin + 10, pdf.get_y() + 2
    width, height = pdf.w - pdf.l_margin - pdf.r_margin - 15, 55
    peak = max([v for _, values, _ in series for v in values] + [1])
    pdf.set_draw_color(*GREY)
    pdf.rect(left, top, width, height)
    pdf.set_font("helvetica", size=7)
    pdf.set_xy(pdf.l_margin - 2, top - 2)
    pdf.cell(12, 4, text(peak))
    steps = max(len(labels) - 1, 1)
    for _, values, color in series:
        pdf.set_draw_color(*color)
        pdf.set_line_width(0.5)
        points = [
            (left + width * i / steps, top + height - height * v / peak)
            for i, v in enumerate(values)
        ]
        if len(points) > 1:
            pdf.polyline(points)
    pdf.set_line_width(0.2)
    if labels:
        pdf.set_xy(left, top + height + 1)
        pdf.cell(30, 4, text(labels[0]))
        pdf.set_xy(left + width - 30, top + height + 1)
        pdf.cell(30, 4, text(labels[-1]), align="R")
    pdf.set_xy(pdf.l_margin, top + height + 7)
    _legend(pdf, [(name, color) for name, _, color in series])


def render_pdf(
    *,
    organization: str,
    data: dict[str, Any],
    scope: dict[str, Any],
    generated_at: str,
    progress: Callable[[float], None] = lambda _: None,
) -> bytes:
    """The report of the exported sections."""
    pdf = _Doc(format="A4")
    pdf.set_auto_page_break(auto=True, margin=18)
    pdf.add_page()
    pdf.set_font("helvetica", "B", 24)
    pdf.set_text_color(*INK)
    pdf.ln(40)
    pdf.multi_cell(0, 12, text("Onboarding analytics"), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("helvetica", size=14)
    pdf.multi_cell(0, 9, text(organization), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(6)
    pdf.set_font("helvetica", size=11)
    pdf.multi_cell(
        0,
        7,
        text(f"Period: signups from {scope['from']} to {scope['to']}"),
        new_x="LMARGIN",
        new_y="NEXT",
    )
    chosen = [f"{k}: {v}" for k, v in scope.items() if k not in ("from", "to") and v is not None]
    pdf.multi_cell(
        0,
        7,
        text("Filter: " + (", ".join(chosen) or "all customers")),
        new_x="LMARGIN",
        new_y="NEXT",
    )
    pdf.multi_cell(0, 7, text(f"Generated at {generated_at} (UTC)"), new_x="LMARGIN", new_y="NEXT")
    progress(10)
    if "overview" in data:
        pdf.add_page()
        _heading(pdf, "Headline figures")
        o = data["overview"]
        rows = [
            ("Customers", o["customers"]),
            ("Started", o["started"]),
            ("Completed", o["completed"]),
            ("Completion rate (%)", o["completionRate"]),
            ("In flight", o["inFlight"]),
            ("Active in the last 7 days", o["activeLast7Days"]),
            ("Median hours to complete", o["medianHoursToComplete"]),
            ("p90 hours to complete", o["p90HoursToComplete"]),
            ("Points awarded", o["pointsAwarded"]),
            ("Badges awarded", o["badgesAwarded"]),
        ]
        _table(pdf, ["Figure", "Value"], rows, [90, 60])
    progress(25)
    if "funnel" in data:
        stages = data["funnel"]["stages"]
        pdf.add_page()
        _heading(pdf, "Funnel")
        _bars(
            pdf,
            [s["name"] for s in stages],
            [
                ("Reached", [s["reached"] for s in stages], BLUE),
                ("Completed", [s["completed"] for s in stages], GREEN),
            ],
        )
        _table(
            pdf,
            ["Step", "Reached", "Completed", "Dropped", "Conv. %", "Median h"],
            [
                [
                    ("  " if t is not s else "") + t["name"],
                    t["reached"],
                    t["completed"],
                    t["dropped"],
                    t["conversion"],
                    t["medianHours"],
                ]
                for s in stages
                for t in (s, *s["tasks"])
            ],
            [70, 22, 24, 22, 20, 22],
        )
    progress(45)
    if "cohorts" in data:
        c = data["cohorts"]
        pdf.add_page()
        _heading(pdf, "Cohorts")
        cohort_rows = [
            [
                dim,
                f["label"],
                f["customers"],
                f["completed"],
                f["completionRate"],
                f["medianHoursToComplete"],
            ]
            for dim, key in (("User type", "byUserType"), ("Channel", "byAcquisitionChannel"))
            for f in c[key]
        ]
        _table(
            pdf,
            ["Dimension", "Segment", "Customers", "Completed", "Rate %", "Median h"],
            cohort_rows,
            [28, 50, 25, 25, 22, 25],
        )
        weeks = c["bySignupWeek"]
        if weeks:
            pdf.set_font("helvetica", "B", 11)
            pdf.cell(
                0,
                8,
                text("Completed by week after signup (W+0 .. W+8)"),
                new_x="LMARGIN",
                new_y="NEXT",
            )
            _table(
                pdf,
                ["Signup week", "Customers", *(f"W+{k}" for k in range(9))],
                [[w["week"], w["customers"], *w["completedByWeek"][:9]] for w in weeks],
                [26, 22, *([15] * 9)],
            )
    progress(65)
    if "trends" in data:
        t = data["trends"]
        pdf.add_page()
        _heading(pdf, "Trends")
        points = t["points"]
        _lines(
            pdf,
            [p["start"] for p in points],
            [
                ("Signups", [p["signups"] for p in points], BLUE),
                ("Completions", [p["completions"] for p in points], GREEN),
            ],
        )
        _table(
            pdf,
            ["Against the previous period", "Now", "Before", "Change", "Change %"],
            [
                [c["metric"], c["current"], c["previous"], c["absoluteChange"], c["relativeChange"]]
                for c in t["changes"]
            ],
            [70, 25, 25, 25, 25],
        )
    progress(80)
    if "forecast" in data:
        f = data["forecast"]
        pdf.add_page()
        _heading(pdf, "Forecast")
        _table(
            pdf,
            ["Figure", "Value"],
            [
                ("Customers in flight", f["inFlight"]),
                ("Probability to complete within 30 days (%)", f["probabilityWithin30Days"]),
                ("Expected completions within 30 days", f["expectedCompletionsWithin30Days"]),
                ("Half expected to have completed by", f["expectedDate"]),
            ],
            [110, 60],
        )
        if f.get("stages"):
            _table(
                pdf,
                ["Stage", "In flight", "Passes", "Median days", "Stage 30 d %", "Done 30 d %"],
                [[s[k] for k in FORECAST_STAGE_KEYS[1:7]] for s in f["stages"]],
                [50, 22, 22, 26, 26, 26],
            )
        pdf.set_font("helvetica", size=9)
        pdf.multi_cell(0, 5, text(f["method"]), new_x="LMARGIN", new_y="NEXT")
    if "recommendations" in data:
        pdf.add_page()
        _heading(pdf, "Recommendations")
        pdf.set_font("helvetica", size=10)
        if not data["recommendations"]:
            pdf.multi_cell(
                0,
                6,
                text("No finding reaches its minimum sample and effect size."),
                new_x="LMARGIN",
                new_y="NEXT",
            )
        for r in data["recommendations"]:
            pdf.set_font("helvetica", size=10)
            pdf.multi_cell(0, 6, text(f"- {r['message']}"), new_x="LMARGIN", new_y="NEXT")
            pdf.set_font("helvetica", size=8)
            evidence = "; ".join(f"{e['label']}: {e['value']}" for e in r["evidence"])
            pdf.multi_cell(
                0,
                5,
                text(f"  Evidence: {evidence}; effect {r['effectSize']}; sample {r['sampleSize']}"),
                new_x="LMARGIN",
                new_y="NEXT",
            )
            pdf.ln(2)
    progress(95)
    return bytes(pdf.output())
