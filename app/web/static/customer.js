// One customer: its workflow live, points and badges, timeline, and operator actions.
import { html, useState, useEffect, useRef } from "./vendor.js";
import { gql, subscribe, schemaFeatures, percent, fmt } from "./api.js";
import { ErrorBox, Bar, Missing, celebrate, badgeIcon, CELEBRATION } from "./ui.js";
import { HealthPanel } from "./health.js";
import { Milestones } from "./milestones.js";

const CUSTOMER = `query Customer($id: ID!) {
  customer(id: $id) { id name email company userType acquisitionChannel tags signedUpAt
    workflow { id status points progress paused remindersEnabled estimatedMinutesRemaining lastActivityAt
      badges { key name icon awardedAt } currentStage { key name }
      stages { key name status progress completedAt
        tasks { key title status points required estimatedMinutes failureReason } } } }
}`;
const PROGRESS = `subscription CustomerProgress($id: ID, $afterSequence: Int) {
  workflowProgress(customerId: $id, afterSequence: $afterSequence) {
    id sequence type replayed occurredAt taskKey stageKey status pointsAwarded points payload } }`;
const CELEBRATIONS = `subscription CustomerCelebrations($id: ID) {
  celebrations(customerId: $id) { id sequence kind title message points badge { name } } }`;

function describe(e) {
  if (e.type === "celebration" && e.payload?.title) return `🎉 ${e.payload.title}`;
  const what = e.taskKey || e.stageKey || "";
  const status = e.status ? ` → ${fmt.label(e.status)}` : "";
  const points = e.pointsAwarded ? ` (+${e.pointsAwarded} points)` : "";
  return `${e.type}${what ? ` · ${what}` : ""}${status}${points}`;
}

function StageOverride({ customerId, stages, onDone }) {
  const [stageKey, setStageKey] = useState(stages[0]?.key || "");
  const [action, setAction] = useState("UNLOCK");
  const [reason, setReason] = useState("");
  const [result, setResult] = useState(null);
  async function submit(e) {
    e.preventDefault();
    setResult(null);
    try {
      const data = await gql(`mutation Override($input: UpdateStageInput!) { updateStage(input: $input) { key name status } }`,
        { input: { customerId, stageKey, action, reason } });
      setResult({ ok: `${data.updateStage.name} is now ${fmt.label(data.updateStage.status)}.` });
      onDone();
    } catch (error) { setResult({ error }); }
  }
  return html`<form class="override" onSubmit=${submit} aria-labelledby="override-title">
    <h3 id="override-title">Stage override</h3>
    <label>Stage <select name="stage" value=${stageKey} onChange=${(e) => setStageKey(e.target.value)}>
      ${stages.map((s) => html`<option value=${s.key}>${s.name} (${fmt.label(s.status)})</option>`)}</select></label>
    <label>Action <select name="action" value=${action} onChange=${(e) => setAction(e.target.value)}>
      <option value="UNLOCK">Unlock</option><option value="COMPLETE">Complete</option><option value="RESET">Reset</option></select></label>
    <label>Reason <input name="reason" value=${reason} onInput=${(e) => setReason(e.target.value)} placeholder="kept in the audit trail" /></label>
    <button type="submit">Apply override</button>
    ${result?.ok && html`<p class="ok" role="status">${result.ok}</p>`}
    <${ErrorBox} error=${result?.error} />
  </form>`;
}

function PauseResume({ customerId, workflow, onDone }) {
  const [error, setError] = useState(null);
  async function toggle() {
    setError(null);
    try {
      await gql(`mutation Pause($input: WorkflowSettingsInput!) { updateWorkflowSettings(input: $input) { id paused } }`,
        { input: { customerId, paused: !workflow.paused } });
      onDone();
    } catch (e) { setError(e); }
  }
  return html`<div class="pause"><h3>Workflow</h3>
    <p>${workflow.paused ? "Paused: the customer cannot move tasks." : "Running."} Reminders ${workflow.remindersEnabled ? "on" : "off"}.</p>
    <button type="button" onClick=${toggle}>${workflow.paused ? "Resume workflow" : "Pause workflow"}</button>
    <${ErrorBox} error=${error} /></div>`;
}

export function CustomerPage({ id, who }) {
  const [customer, setCustomer] = useState(null);
  const [error, setError] = useState(null);
  const [timeline, setTimeline] = useState([]);
  const [party, setParty] = useState(null);
  const [features, setFeatures] = useState(null);
  const [liveError, setLiveError] = useState(null);
  const [revision, setRevision] = useState(0);
  const timer = useRef(null);

  async function load() {
    try { setCustomer((await gql(CUSTOMER, { id })).customer); setError(null); } catch (e) { setError(e); }
  }
  // Live events come in bursts: one reload of the customer and its milestones after the last.
  const reload = () => {
    clearTimeout(timer.current);
    timer.current = setTimeout(() => { load(); setRevision((r) => r + 1); }, 150);
  };

  useEffect(() => {
    schemaFeatures().then(setFeatures);
    setTimeline([]);
    load();
    // From sequence 0: the retained history first (replayed), then live, with no gap after a reconnect.
    const stopProgress = subscribe(PROGRESS, { id, afterSequence: 0 }, (data) => {
      const e = data.workflowProgress;
      setTimeline((list) => [e, ...list].slice(0, 200));
      setLiveError(null);
      if (!e.replayed) reload();
    }, { resume: true, onError: setLiveError });
    const stopParty = subscribe(CELEBRATIONS, { id }, (data) => {
      setParty((list) => [data.celebrations, ...(list || [])].slice(0, 3));
      celebrate();
    }, { onError: setLiveError });
    return () => { stopProgress(); stopParty(); clearTimeout(timer.current); };
  }, [id]);

  // A failed refresh keeps the page (and what is typed in its forms) and says what failed.
  if (error && !customer) return html`<h1 class="page-title">Customer</h1><${ErrorBox} error=${error} />`;
  if (!customer) return html`<p class="loading">Loading…</p>`;
  const wf = customer.workflow;
  const progress = wf ? percent(wf.progress) : 0;
  return html`
    <p><a href="#/customers">← Customers</a></p>
    <h1 class="page-title">${customer.name} <span class="muted small">${customer.email}</span></h1>
    ${party && html`<div class="celebration-banner" role="status" aria-live="assertive">
      ${party.map((c) => html`<p key=${c.id} data-kind=${c.kind}>🎉 <strong>${c.title}</strong> ${c.message}</p>`)}</div>`}
    <${ErrorBox} error=${error} />
    <${ErrorBox} error=${liveError} />
    <section class="kpis" aria-label="Workflow figures">
      <div class="kpi"><span class="kpi-label">Progress</span><strong class="kpi-value" data-field="progress">${Math.round(progress)} %</strong></div>
      <div class="kpi"><span class="kpi-label">Points</span><strong class="kpi-value" data-field="points">${fmt.int(wf?.points)}</strong></div>
      <div class="kpi"><span class="kpi-label">Status</span><strong class="kpi-value">${wf ? fmt.label(wf.status) : "—"}${wf?.paused ? " · paused" : ""}</strong></div>
      <div class="kpi"><span class="kpi-label">Time left</span><strong class="kpi-value">${fmt.minutes(wf?.estimatedMinutesRemaining)}</strong></div>
    </section>
    <div class="grid">
      <section class="card" aria-labelledby="wf-title"><h2 id="wf-title">Workflow</h2>
        ${wf ? wf.stages.map((s) => html`<div class="stage" data-stage=${s.key}>
          <h3>${s.name} <span class="status status-${s.status.toLowerCase()}">${fmt.label(s.status)}</span></h3>
          <${Bar} value=${percent(s.progress)} label=${`${s.name} ${Math.round(percent(s.progress))} percent`} />
          <ul class="tasks">${s.tasks.map((t) => html`<li data-task=${t.key} data-status=${t.status}>
            <span class="status status-${t.status.toLowerCase()}">${fmt.label(t.status)}</span> ${t.title}
            <span class="muted small">${t.points} pts · ${t.estimatedMinutes} min${t.required ? "" : " · optional"}</span>
            ${t.failureReason && html`<div class="warn small">${t.failureReason}</div>`}</li>`)}</ul></div>`)
          : html`<p class="muted">No workflow.</p>`}
      </section>
      <div class="stack">
        <section class="card" aria-labelledby="badges-title"><h2 id="badges-title">Badges</h2>
          ${wf?.badges.length ? html`<ul class="badges">${wf.badges.map((b) => html`<li title=${fmt.date(b.awardedAt)}>${badgeIcon(b.icon)} ${b.name}</li>`)}</ul>` : html`<p class="muted">None yet.</p>`}
        </section>
        ${features?.has("Customer.health") ? html`<${HealthPanel} id=${customer.id} features=${features} />`
          : html`<section class="card" aria-labelledby="health-title"><h2 id="health-title">Health</h2>
          ${features ? html`<${Missing} what="The health score, its components, risk factors and history" needs="health scores" />` : html`<p class="muted">Loading…</p>`}</section>`}
        ${features?.has("Query.milestones") ? html`<${Milestones} id=${customer.id} version=${revision} />`
          : html`<section class="card" aria-labelledby="ms-title"><h2 id="ms-title">Milestones</h2>
          ${features ? html`<${Missing} what="Milestones" needs="the milestones API" />` : html`<p class="muted">Loading…</p>`}</section>`}
        <section class="card actions" aria-labelledby="actions-title"><h2 id="actions-title">Actions</h2>
          ${wf && html`<${PauseResume} customerId=${customer.id} workflow=${wf} onDone=${load} />`}
          ${wf && who.role === "ADMIN" && html`<${StageOverride} customerId=${customer.id} stages=${wf.stages} onDone=${load} />`}
          ${who.role !== "ADMIN" && html`<p class="muted small">Stage overrides need the ADMIN role.</p>`}
        </section>
        <section class="card timeline" aria-labelledby="tl-title"><h2 id="tl-title">Timeline <span class="live-dot" title="live"></span></h2>
          ${timeline.length === 0 && html`<p class="muted">No events kept for this customer.</p>`}
          <ol aria-live="polite">${timeline.map((e) => html`<li key=${e.id} class=${CELEBRATION.test(e.type) ? "celebration" : ""} data-type=${e.type}>
            <time>${fmt.date(e.occurredAt)} ${fmt.time(e.occurredAt)}</time> ${describe(e)}</li>`)}</ol>
        </section>
      </div>
    </div>`;
}
