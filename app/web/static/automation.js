// Automation: rules with their success rates and recent runs, once the server has them.
import { html, useState, useEffect } from "./vendor.js";
import { gql, schemaFeatures, percent, fmt } from "./api.js";
import { ErrorBox, Missing } from "./ui.js";

const RULES = `query AutomationRules {
  automationRules { id name description enabled cooldownSeconds }
  automationStats(period: LAST_30_DAYS) { ruleId name enabled runs succeeded failed inFlight skipped
    successRate p50Ms p90Ms lastRunAt goalCompletionRate failuresByReason { reason count } }
}`;
const RUNS = `query RuleRuns($ruleId: ID, $after: String) {
  ruleExecutions(ruleId: $ruleId, first: 100, after: $after) { totalCount pageInfo { hasNextPage endCursor }
    edges { node { id customerId status reason triggerType durationMs createdAt actions { type status error } } } }
}`;

/** The newest runs of a rule (the connection lists oldest first: read up to 500, keep the last). */
async function recentRuns(ruleId, keep = 10) {
  let after = null;
  let nodes = [];
  let total = 0;
  for (let page = 0; page < 5; page += 1) {
    const data = (await gql(RUNS, { ruleId, after })).ruleExecutions;
    total = data.totalCount;
    nodes = [...nodes, ...data.edges.map((e) => e.node)].slice(-keep);
    if (!data.pageInfo.hasNextPage) break;
    after = data.pageInfo.endCursor;
  }
  return { total, runs: nodes.reverse() };
}

function Runs({ ruleId }) {
  const [state, setState] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => { recentRuns(ruleId).then(setState).catch(setError); }, [ruleId]);
  if (error) return html`<${ErrorBox} error=${error} />`;
  if (!state) return html`<p class="muted">Loading runs…</p>`;
  if (!state.runs.length) return html`<p class="muted">No runs yet.</p>`;
  return html`<table class="runs"><caption class="muted small">Latest ${state.runs.length} of ${fmt.int(state.total)} runs</caption>
    <thead><tr><th scope="col">When</th><th scope="col">Customer</th><th scope="col">Status</th><th scope="col">Actions</th><th scope="col">Took</th></tr></thead>
    <tbody>${state.runs.map((r) => html`<tr key=${r.id}>
      <td>${fmt.date(r.createdAt)} ${fmt.time(r.createdAt)}</td>
      <td><a href=${`#/customers/${r.customerId}`}>open</a></td>
      <td><span class="status status-${r.status === "SUCCEEDED" ? "completed" : r.status === "FAILED" ? "failed" : "locked"}">${fmt.label(r.status)}</span>
        ${r.reason && html`<div class="muted small">${r.reason}</div>`}</td>
      <td>${r.actions.map((a) => html`<div class="small">${a.type}: ${fmt.label(a.status)}${a.error ? ` — ${a.error}` : ""}</div>`)}</td>
      <td class="num">${Math.round(r.durationMs)} ms</td></tr>`)}</tbody></table>`;
}

export function Automation() {
  const [features, setFeatures] = useState(null);
  const [data, setData] = useState(null);
  const [error, setError] = useState(null);
  const [open, setOpen] = useState(null);
  useEffect(() => {
    schemaFeatures().then((f) => {
      setFeatures(f);
      if (f.has("Query.automationRules") && f.has("Query.automationStats")) gql(RULES).then(setData).catch(setError);
    }).catch(() => setFeatures(new Map()));
  }, []);
  if (!features) return html`<p class="loading">Loading…</p>`;
  if (!features.has("Query.automationRules") || !features.has("Query.automationStats")) {
    return html`<h1 class="page-title">Automation</h1>
      <section class="card"><${Missing} what="Automation rules with their success rates and recent runs" needs="the automation API" /></section>`;
  }
  const stats = Object.fromEntries((data?.automationStats || []).map((s) => [s.ruleId, s]));
  return html`<h1 class="page-title">Automation</h1>
    <${ErrorBox} error=${error} />
    ${!data && !error && html`<p class="loading">Loading…</p>`}
    ${data && data.automationRules.length === 0 && html`<p class="muted">No rules yet.</p>`}
    ${data && html`<div class="table-wrap"><table class="rules">
      <caption class="muted small">Last 30 days</caption>
      <thead><tr><th scope="col">Rule</th><th scope="col">Enabled</th><th scope="col">Runs</th><th scope="col">Success rate</th>
        <th scope="col">Failed</th><th scope="col">Goal reached</th><th scope="col">p50 / p90</th><th scope="col">Last run</th><th scope="col"></th></tr></thead>
      <tbody>${data.automationRules.map((rule) => {
        const s = stats[rule.id];
        return html`<tr key=${rule.id} data-rule=${rule.id}>
          <td><strong>${rule.name}</strong><div class="muted small">${rule.description}</div></td>
          <td>${rule.enabled ? "yes" : "no"}</td>
          <td class="num">${fmt.int(s?.runs ?? 0)}</td>
          <td class="num" data-field="success-rate">${s?.successRate == null ? "—" : fmt.pct(percent(s.successRate, "share"))}</td>
          <td class="num">${fmt.int(s?.failed ?? 0)}${s?.failuresByReason.length ? html`<div class="muted small">${s.failuresByReason.map((f) => `${f.reason} ×${f.count}`).join(", ")}</div>` : ""}</td>
          <td class="num">${s?.goalCompletionRate == null ? "—" : fmt.pct(percent(s.goalCompletionRate, "share"))}</td>
          <td class="num">${s?.p50Ms == null ? "—" : `${Math.round(s.p50Ms)} / ${Math.round(s.p90Ms)} ms`}</td>
          <td>${s?.lastRunAt ? fmt.date(s.lastRunAt) : "—"}</td>
          <td><button type="button" aria-expanded=${open === rule.id} onClick=${() => setOpen(open === rule.id ? null : rule.id)}>${open === rule.id ? "Hide runs" : "Recent runs"}</button></td>
        </tr>${open === rule.id && html`<tr class="runs-row"><td colspan="9"><${Runs} ruleId=${rule.id} /></td></tr>`}`;
      })}</tbody></table></div>`}`;
}
