// The customer's onboarding checklist (CUSTOMER token): stages, tasks, buttons, live celebrations.
import { html, render, useState, useEffect, useRef } from "./vendor.js";
import { gql, subscribe, session, sessionFromFragment, forget, percent, fmt } from "./api.js";
import { ErrorBox, Bar, celebrate, badgeIcon } from "./ui.js";

const WORKFLOW = `query Checklist {
  viewer { subject customer { id name } }
  workflow { id status points progress paused estimatedMinutesRemaining
    badges { key name icon awardedAt }
    currentStage { key }
    stages { key name description status progress
      unlockConditions { previousStagesComplete minPoints daysSinceSignup tasksCompleted }
      reward { points badge { name } }
      tasks { id key title description status progress points estimatedMinutes required dependsOn failureReason
        helpResources { title url kind } } } }
}`;
const UPDATE = `mutation Move($input: UpdateTaskInput!) { updateTask(input: $input) { task { key status } pointsAwarded } }`;

function actionsFor(task) {
  switch (task.status) {
    case "AVAILABLE": return [["START", "Start"], ["COMPLETE", "Mark complete"], ...(task.required ? [] : [["SKIP", "Skip"]])];
    case "IN_PROGRESS": return [["COMPLETE", "Mark complete"], ...(task.required ? [] : [["SKIP", "Skip"]])];
    case "FAILED": return [["RETRY", "Retry"]];
    default: return [];
  }
}

function lockedBecause(task, stage, titles) {
  const reasons = [];
  if (stage.status === "LOCKED") {
    const c = stage.unlockConditions;
    if (c.previousStagesComplete) reasons.push("the previous stages are complete");
    if (c.minPoints) reasons.push(`you have ${c.minPoints} points`);
    if (c.daysSinceSignup) reasons.push(`${c.daysSinceSignup} days after signup`);
    if (c.tasksCompleted.length) reasons.push(`${c.tasksCompleted.map((k) => titles[k] || k).join(", ")} ${c.tasksCompleted.length > 1 ? "are" : "is"} done`);
  }
  const open = task.dependsOn.filter((k) => !["COMPLETED", "SKIPPED"].includes(titles.__status[k]));
  if (open.length) reasons.push(`${open.map((k) => `“${titles[k] || k}”`).join(" and ")} ${open.length > 1 ? "are" : "is"} done`);
  return reasons.length ? `Unlocks when ${reasons.join(" and ")}.` : "Unlocks soon.";
}

function Task({ task, stage, titles, onAct, busy }) {
  return html`<li class="task task-${task.status.toLowerCase()}" data-task=${task.key} data-status=${task.status}>
    <div class="task-head">
      <span class="check" aria-hidden="true">${{ COMPLETED: "✔", SKIPPED: "↷", FAILED: "!", LOCKED: "🔒", IN_PROGRESS: "…" }[task.status] || "○"}</span>
      <div class="task-main">
        <h3>${task.title} ${!task.required && html`<span class="tag">optional</span>`}</h3>
        <p class="muted small">${task.estimatedMinutes} min · ${task.points} points · <span class="status status-${task.status.toLowerCase()}">${fmt.label(task.status)}</span></p>
        ${task.description && html`<p>${task.description}</p>`}
        ${task.status === "LOCKED" && html`<p class="locked-reason">${lockedBecause(task, stage, titles)}</p>`}
        ${task.failureReason && task.status === "FAILED" && html`<p class="warn">${task.failureReason}</p>`}
        ${task.helpResources.length > 0 && html`<ul class="help">${task.helpResources.map((r) => html`<li>
          <a href=${r.url} target="_blank" rel="noopener noreferrer">${r.title}</a> <span class="muted small">${r.kind}</span></li>`)}</ul>`}
      </div>
      <div class="task-actions">${actionsFor(task).map(([action, label]) => html`
        <button type="button" class=${action === "COMPLETE" ? "primary" : ""} disabled=${busy}
          onClick=${() => onAct(task, action)} aria-label=${`${label}: ${task.title}`}>${label}</button>`)}</div>
    </div></li>`;
}

function Checklist() {
  const [who] = useState(() => sessionFromFragment() || session());
  const [data, setData] = useState(null);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const [party, setParty] = useState(null);
  const timer = useRef(null);

  async function load() {
    try { setData(await gql(WORKFLOW)); setError(null); } catch (e) { setError(e); }
  }
  const reload = () => { clearTimeout(timer.current); timer.current = setTimeout(load, 100); };

  useEffect(() => {
    if (!who || who.role !== "CUSTOMER") return undefined;
    load();
    const stopProgress = subscribe(`subscription Progress($afterSequence: Int) { workflowProgress(afterSequence: $afterSequence) { id sequence type replayed } }`,
      {}, () => reload(), { resume: true, onError: setError });
    const stopParty = subscribe(`subscription Celebrations { celebrations { id kind title message points badge { name } } }`, {},
      (d) => { setParty((list) => [d.celebrations, ...(list || [])].slice(0, 3)); celebrate(); }, { onError: setError });
    return () => { stopProgress(); stopParty(); };
  }, []);

  if (!who) {
    return html`<main class="card signin"><h1>Your onboarding</h1>
      <p>Open this page from your product, or with the sign-in link you received.</p><p><a href="/signin">Sign in</a></p></main>`;
  }
  if (who.role !== "CUSTOMER") {
    return html`<main class="card"><h1>The checklist is for customers</h1>
      <p>You are signed in as ${who.subject} (${who.role}). <a href="/dashboard">Open the dashboard</a>.</p></main>`;
  }

  async function act(task, action) {
    setBusy(true);
    setError(null);
    try { await gql(UPDATE, { input: { taskId: task.id, action } }); await load(); } catch (e) { setError(e); } finally { setBusy(false); }
  }

  const wf = data?.workflow;
  const titles = { __status: {} };
  for (const s of wf?.stages || []) for (const t of s.tasks) { titles[t.key] = t.title; titles.__status[t.key] = t.status; }
  const progress = wf ? percent(wf.progress) : 0;
  return html`
    <header class="checklist-head">
      <div><h1>Welcome${data?.viewer.customer ? `, ${data.viewer.customer.name.split(" ")[0]}` : ""}!</h1>
        <p class="muted">Your onboarding: ${fmt.minutes(wf?.estimatedMinutesRemaining)} of work left.</p></div>
      <div class="score" aria-label="Your points and progress">
        <span><strong data-field="points">${fmt.int(wf?.points)}</strong> points</span>
        <span><strong data-field="progress">${Math.round(progress)} %</strong> done</span>
        <button type="button" class="link" onClick=${() => { forget(); location.replace("/signin?signed-out"); }}>Sign out</button>
      </div>
    </header>
    ${party && html`<div class="celebration-banner" role="status" aria-live="assertive">
      ${party.map((c) => html`<p key=${c.id} data-kind=${c.kind}>🎉 <strong>${c.title}</strong> ${c.message}</p>`)}
      <button type="button" class="link" onClick=${() => setParty(null)} aria-label="Dismiss">✕</button></div>`}
    <${ErrorBox} error=${error} />
    ${wf?.paused && html`<p class="notice" role="status">Your onboarding is paused by your account team.</p>`}
    ${wf && html`<${Bar} value=${progress} label=${`${Math.round(progress)} percent done`} />`}
    ${wf?.badges.length > 0 && html`<ul class="badges" aria-label="Your badges">${wf.badges.map((b) => html`<li>${badgeIcon(b.icon)} ${b.name}</li>`)}</ul>`}
    ${!data && !error && html`<p class="loading">Loading…</p>`}
    ${data && !wf && html`<p class="muted">No onboarding workflow yet.</p>`}
    ${wf && wf.stages.map((s) => html`<section class="card stage stage-${s.status.toLowerCase()}" data-stage=${s.key} aria-labelledby=${`stage-${s.key}`}>
      <div class="stage-head"><h2 id=${`stage-${s.key}`}>${s.name}</h2>
        <span class="status status-${s.status.toLowerCase()}">${fmt.label(s.status)}</span>
        <span class="muted small">reward: ${s.reward.points} points${s.reward.badge ? ` + “${s.reward.badge.name}” badge` : ""}</span></div>
      <${Bar} value=${percent(s.progress)} label=${`${s.name} ${Math.round(percent(s.progress))} percent`} />
      ${s.description && html`<p class="muted">${s.description}</p>`}
      <ul class="task-list">${s.tasks.map((t) => html`<${Task} key=${t.key} task=${t} stage=${s} titles=${titles} onAct=${act} busy=${busy} />`)}</ul>
    </section>`)}`;
}

const root = document.getElementById("app");
root.textContent = "";
render(html`<${Checklist} />`, root);
