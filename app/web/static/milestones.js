// A customer's milestones (when the server has them): progress, what is missing, rewards.
import { html, useState, useEffect } from "./vendor.js";
import { gql, fmt } from "./api.js";
import { ErrorBox, Bar, badgeIcon } from "./ui.js";

export function Milestones({ id, version }) {
  const [list, setList] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => {
    let current = true; // an answer that comes after a newer request was sent is dropped
    gql(`query Milestones($id: ID) { milestones(customerId: $id) { key name description icon percent missing achievedAt timesAchieved repeatable } }`, { id })
      .then((d) => { if (current) { setList(d.milestones); setError(null); } })
      .catch((e) => { if (current) setError(e); });
    return () => { current = false; };
  }, [id, version]);
  return html`<section class="card" aria-labelledby="ms-title"><h2 id="ms-title">Milestones</h2>
    <${ErrorBox} error=${error} />
    ${list && list.length === 0 && html`<p class="muted">No milestones defined.</p>`}
    ${list && html`<ul class="milestones">${list.map((m) => html`<li key=${m.key} data-milestone=${m.key} class=${m.achievedAt ? "achieved" : ""}>
      <span>${badgeIcon(m.icon)} <strong>${m.name}</strong> ${m.achievedAt ? html`<span class="status status-completed">${m.repeatable && m.timesAchieved > 1 ? `×${m.timesAchieved}` : "reached"}</span>` : ""}</span>
      <${Bar} value=${m.percent} label=${`${m.name} ${Math.round(m.percent)} percent`} />
      <span class="muted small">${m.achievedAt ? `first on ${fmt.date(m.achievedAt)}` : m.missing}</span></li>`)}</ul>`}
  </section>`;
}
