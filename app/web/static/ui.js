// Small shared pieces of the pages: errors, KPI tiles, bars, charts, celebrations.
import { html, useEffect, useRef, uPlot, confetti } from "./vendor.js";

export function ErrorBox({ error }) {
  if (!error) return null;
  const code = error.code && error.code !== "ERROR" ? html` <span class="code">${error.code}</span>` : "";
  return html`<p class="error" role="alert">${error.message}${code}</p>`;
}

export function Kpi({ label, value, note, id }) {
  return html`<div class="kpi" data-kpi=${id}>
    <span class="kpi-label">${label}</span>
    <strong class="kpi-value">${value}</strong>
    ${note && html`<span class="kpi-note">${note}</span>`}
  </div>`;
}

export function Bar({ value, max = 100, label, tone = "" }) {
  const width = max ? Math.max(0, Math.min(100, (100 * value) / max)) : 0;
  return html`<span class="bar ${tone}" role="img" aria-label=${label}>
    <span class="bar-fill" style=${{ width: `${width}%` }}></span></span>`;
}

export function Missing({ what, needs }) {
  return html`<p class="missing">${what} appear here once this server has ${needs}.</p>`;
}

/** A uPlot line chart; `series` is [{label, values}] over `xs` (seconds since epoch). */
export function LineChart({ xs, series, height = 220, label }) {
  const box = useRef(null);
  useEffect(() => {
    if (!box.current || !xs.length) return undefined;
    const colors = ["#4f46e5", "#16a34a", "#ea580c", "#0891b2"];
    const chart = new uPlot(
      {
        width: box.current.clientWidth || 600,
        height,
        series: [{}, ...series.map((s, i) => ({ label: s.label, stroke: colors[i % colors.length], width: 2, scale: s.scale || "y" }))],
        axes: [{}, { scale: "y" }, ...(series.some((s) => s.scale === "pct") ? [{ scale: "pct", side: 1, grid: { show: false } }] : [])],
        scales: { x: { time: true } },
      },
      [xs, ...series.map((s) => s.values)],
      box.current,
    );
    const resize = () => chart.setSize({ width: box.current.clientWidth, height });
    window.addEventListener("resize", resize);
    return () => { window.removeEventListener("resize", resize); chart.destroy(); };
  }, [JSON.stringify([xs, series])]);
  return html`<div class="chart" ref=${box} role="img" aria-label=${label}></div>`;
}

let cannon = null;

/** Confetti over the page (no worker, so the strict CSP holds). */
export function celebrate() {
  if (!cannon) {
    const canvas = document.createElement("canvas");
    canvas.className = "confetti";
    canvas.setAttribute("aria-hidden", "true");
    document.body.appendChild(canvas);
    cannon = confetti.create(canvas, { resize: true, useWorker: false });
  }
  if (window.matchMedia("(prefers-reduced-motion: reduce)").matches) return;
  cannon({ particleCount: 140, spread: 80, origin: { y: 0.35 } });
}

export const CELEBRATION = /^(stage\.completed|badge\.earned|workflow\.completed|milestone\.|celebration)/;

const ICONS = { bolt: "⚡", rocket: "🚀", trophy: "🏆", wrench: "🔧", star: "⭐", flag: "🚩", medal: "🏅", fire: "🔥" };

/** A badge's icon name as a glyph (unknown names get a medal). */
export function badgeIcon(name) {
  return ICONS[name] || (name && /\p{Extended_Pictographic}/u.test(name) ? name : "🏅");
}
