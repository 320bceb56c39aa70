// A customer's health (when the server scores health): score, parts, risks, history, override.
import { html, useState, useEffect } from "./vendor.js";
import { gql, subscribe, fmt } from "./api.js";
import { ErrorBox, Bar, LineChart } from "./ui.js";

const HEALTH = `query Health($id: ID!) {
  customer(id: $id) { id health { score level computedScore confidence delta7d
    components { key label value weight contribution hasData explanation }
    riskFactors { component message impact }
    override { score level reason expiresAt createdBy } } }
  healthHistory(customerId: $id, days: 30) { takenAt score level }
}`;
const LEVEL_TONE = { HEALTHY: "healthy", AT_RISK: "at-risk", CRITICAL: "critical" };

function OverrideForm({ id, health, onDone }) {
  const week = new Date(Date.now() + 7 * 86400e3).toISOString().slice(0, 10);
  const [score, setScore] = useState("");
  const [level, setLevel] = useState("");
  const [reason, setReason] = useState("");
  const [until, setUntil] = useState(week);
  const [result, setResult] = useState(null);
  async function submit(e) {
    e.preventDefault();
    setResult(null);
    const input = { customerId: id, reason, expiresAt: new Date(`${until}T23:59:00Z`).toISOString() };
    if (score !== "") input.score = Number(score);
    if (level) input.level = level;
    try {
      await gql(`mutation OverrideHealth($input: OverrideHealthInput!) { overrideHealthScore(input: $input) { score level } }`, { input });
      setResult({ ok: "Override saved." });
      onDone();
    } catch (error) { setResult({ error }); }
  }
  async function clear() {
    setResult(null);
    try {
      await gql(`mutation ClearHealth($id: ID!) { clearHealthOverride(customerId: $id) { score level } }`, { id });
      setResult({ ok: "Override ended." });
      onDone();
    } catch (error) { setResult({ error }); }
  }
  return html`<form class="override health-override" onSubmit=${submit} aria-labelledby="ho-title">
    <h3 id="ho-title">Health override</h3>
    <label>Score (0-100) <input name="score" type="number" min="0" max="100" step="1" value=${score} onInput=${(e) => setScore(e.target.value)} /></label>
    <label>Level <select name="level" value=${level} onChange=${(e) => setLevel(e.target.value)}>
      <option value="">from the score</option><option value="HEALTHY">Healthy</option><option value="AT_RISK">At risk</option><option value="CRITICAL">Critical</option></select></label>
    <label>Reason <input name="reason" value=${reason} onInput=${(e) => setReason(e.target.value)} placeholder="kept with the override" /></label>
    <label>Until <input name="until" type="date" value=${until} onInput=${(e) => setUntil(e.target.value)} /></label>
    <button type="submit">Override health</button>
    ${health?.override && html`<button type="button" onClick=${clear}>End the override</button>`}
    ${result?.ok && html`<p class="ok" role="status">${result.ok}</p>`}
    <${ErrorBox} error=${result?.error} />
  </form>`;
}

export function HealthPanel({ id, features, onLoaded }) {
  const [data, setData] = useState(null);
  const [error, setError] = useState(null);
  async function load() {
    try { const d = await gql(HEALTH, { id }); setData(d); setError(null); onLoaded?.(d.customer.health); } catch (e) { setError(e); }
  }
  useEffect(() => {
    load();
    if (!features.has("Subscription.healthChanged")) return undefined;
    return subscribe(`subscription HealthMoves($id: ID) { healthChanged(customerId: $id) { id score level } }`, { id }, () => load());
  }, [id]);
  const health = data?.customer.health;
  const history = data?.healthHistory || [];
  return html`<section class="card health" aria-labelledby="health-title"><h2 id="health-title">Health</h2>
    <${ErrorBox} error=${error} />
    ${data && !health && html`<p class="muted">Not scored yet.</p>`}
    ${health && html`
      <p class="health-score" data-field="health"><strong>${Math.round(health.score)}</strong> / 100
        <span class="status level-${LEVEL_TONE[health.level]}">${fmt.label(health.level)}</span>
        ${health.delta7d != null && html`<span class="muted small">${health.delta7d >= 0 ? "+" : ""}${health.delta7d.toFixed(1)} in 7 days</span>`}
        <span class="muted small">confidence ${Math.round(health.confidence)} %</span></p>
      ${health.override && html`<p class="notice small">Set by ${health.override.createdBy} until ${fmt.date(health.override.expiresAt)}: ${health.override.reason}
        (computed: ${Math.round(health.computedScore)})</p>`}
      <table class="components"><thead><tr><th scope="col">Component</th><th scope="col">Value</th><th scope="col">Weight</th><th scope="col">Points</th></tr></thead>
        <tbody>${health.components.map((c) => html`<tr title=${c.explanation}><td>${c.label}</td>
          <td>${c.hasData ? html`<${Bar} value=${c.value} label=${`${c.label} ${Math.round(c.value)}`} /> ${Math.round(c.value)}` : html`<span class="muted">no data</span>`}</td>
          <td class="num">${Math.round(c.weight * (c.weight <= 1 ? 100 : 1))} %</td><td class="num">${c.contribution.toFixed(1)}</td></tr>`)}</tbody></table>
      ${health.riskFactors.length > 0 && html`<h3>Risk factors</h3><ul class="risks">${health.riskFactors.map((r) => html`<li>${r.message} <span class="muted small">(−${r.impact.toFixed(1)})</span></li>`)}</ul>`}
      ${history.length > 1 && html`<h3>Last 30 days</h3><${LineChart} label="Health score over the last 30 days" height=${160}
        xs=${history.map((h) => Date.parse(h.takenAt) / 1000)} series=${[{ label: "Score", values: history.map((h) => h.score) }]} />`}`}
    ${features.has("Mutation.overrideHealthScore") && data && html`<${OverrideForm} id=${id} health=${health} onDone=${load} />`}
  </section>`;
}
