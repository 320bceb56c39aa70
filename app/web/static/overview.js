// Overview: headline figures, funnel, trend, health distribution and the live activity feed.
import { html, useState, useEffect, useRef } from "./vendor.js";
import { gql, subscribe, schemaFeatures, fmt } from "./api.js";
import { ErrorBox, Kpi, Bar, Missing, LineChart, CELEBRATION } from "./ui.js";

const COUNTS = `query OverviewCounts {
  all: customers(first: 1) { totalCount }
  active: customers(first: 1, filter: {workflowStatus: ACTIVE}) { totalCount }
  completed: customers(first: 1, filter: {workflowStatus: COMPLETED}) { totalCount }
}`;

const ANALYTICS = `query OverviewAnalytics {
  analytics {
    filter { from to }
    overview { customers completed completionRate medianHoursToComplete p90HoursToComplete inFlight }
    funnel { stages { stageKey name reached completed dropped dropOffRate conversion } }
    trends(granularity: DAY) { points { start signups completions completionRate } }
    healthDistribution { segment healthy atRisk critical }
  }
}`;

function hours(h) {
  if (h == null) return "—";
  return h < 48 ? `${Math.round(h)} h` : `${(h / 24).toFixed(1)} days`;
}

function Funnel({ stages }) {
  const top = Math.max(1, ...stages.map((s) => s.reached));
  return html`<ol class="funnel">${stages.map((s) => html`
    <li><span class="funnel-name">${s.name}</span>
      <${Bar} value=${s.reached} max=${top} label=${`${s.reached} reached ${s.name}`} />
      <span class="funnel-figures">${fmt.int(s.reached)} reached · ${fmt.int(s.completed)} done
        ${s.dropOffRate != null && html` · <span class="warn">${fmt.pct(s.dropOffRate)} dropped</span>`}</span></li>`)}
  </ol>`;
}

function HealthDistribution({ rows }) {
  const total = rows.reduce((n, r) => ({ healthy: n.healthy + r.healthy, atRisk: n.atRisk + r.atRisk, critical: n.critical + r.critical }), { healthy: 0, atRisk: 0, critical: 0 });
  const all = total.healthy + total.atRisk + total.critical || 1;
  return html`<div class="health-dist">
    ${[["healthy", "Healthy", total.healthy], ["at-risk", "At risk", total.atRisk], ["critical", "Critical", total.critical]].map(([tone, label, n]) => html`
      <div class="health-row"><span>${label}</span><${Bar} value=${n} max=${all} tone=${tone} label=${`${n} ${label}`} /><span>${fmt.int(n)}</span></div>`)}
  </div>`;
}

export function ActivityFeed({ onEvent }) {
  const [events, setEvents] = useState([]);
  const [error, setError] = useState(null);
  useEffect(() => subscribe(
    `subscription Activity { activity { id sequence type summary customerId actor occurredAt } }`, {},
    (data) => { setError(null); setEvents((list) => [data.activity, ...list].slice(0, 60)); onEvent?.(data.activity); },
    { onError: setError },
  ), []);
  return html`<section class="card feed" aria-labelledby="feed-title">
    <h2 id="feed-title">Live activity <span class="live-dot" title="live"></span></h2>
    <${ErrorBox} error=${error} />
    ${events.length === 0 && html`<p class="muted">Waiting for activity… events appear here the moment they happen.</p>`}
    <ul aria-live="polite">${events.map((e) => html`
      <li key=${e.id} class=${CELEBRATION.test(e.type) ? "celebration" : ""} data-type=${e.type}>
        <time>${fmt.time(e.occurredAt)}</time>
        <span>${CELEBRATION.test(e.type) ? "🎉 " : ""}${e.summary}</span>
        ${e.customerId && html`<a href=${`#/customers/${e.customerId}`}>open</a>`}
      </li>`)}</ul>
  </section>`;
}

export function Overview() {
  const [counts, setCounts] = useState(null);
  const [analytics, setAnalytics] = useState(undefined);
  const [error, setError] = useState(null);
  const [analyticsError, setAnalyticsError] = useState(null);
  const [scored, setHealth] = useState(null);
  const timer = useRef(null);

  async function load() {
    try { setCounts(await gql(COUNTS)); setError(null); } catch (e) { setError(e); }
    const features = await schemaFeatures();
    if (features.has("Query.healthDistribution")) {
      try {
        const d = await gql(`query OverviewHealth { healthDistribution { overall { total levels { level count } } } }`);
        const levels = Object.fromEntries(d.healthDistribution.overall.levels.map((l) => [l.level, l.count]));
        setHealth([{ segment: "all", healthy: levels.HEALTHY || 0, atRisk: levels.AT_RISK || 0, critical: levels.CRITICAL || 0 }]);
      } catch (e) { setAnalyticsError(e); }
    }
    if (!features.has("Query.analytics")) { setAnalytics(null); return; }
    try { setAnalytics((await gql(ANALYTICS)).analytics); setAnalyticsError(null); } catch (e) { setAnalyticsError(e); }
  }
  useEffect(() => { load(); return () => clearTimeout(timer.current); }, []);
  const refresh = () => { clearTimeout(timer.current); timer.current = setTimeout(load, 1500); };

  const all = counts?.all.totalCount;
  const completed = counts?.completed.totalCount;
  const rate = all ? (100 * completed) / all : null;
  // Every scored customer when the health API answers, else the analytics period's.
  const health = scored || analytics?.healthDistribution;
  const atRisk = health ? health.reduce((n, r) => n + r.atRisk + r.critical, 0) : null;
  const points = analytics?.trends.points || [];
  return html`
    <h1 class="page-title">Overview</h1>
    <${ErrorBox} error=${error} />
    <section class="kpis" aria-label="Headline figures" aria-live="polite">
      <${Kpi} id="customers" label="Customers" value=${fmt.int(all)} />
      <${Kpi} id="in-onboarding" label="In onboarding" value=${fmt.int(counts?.active.totalCount)} />
      <${Kpi} id="completed" label="Completed" value=${fmt.int(completed)} />
      <${Kpi} id="completion-rate" label="Completion rate" value=${fmt.pct(rate)} note="completed / all customers" />
      <${Kpi} id="median-time" label="Median time to complete"
        value=${analytics ? hours(analytics.overview.medianHoursToComplete) : "—"}
        note=${analytics ? `signed up ${analytics.filter.from} – ${analytics.filter.to}` : analytics === null ? "needs the analytics API" : ""} />
      <${Kpi} id="at-risk" label="At risk" value=${atRisk == null ? "—" : fmt.int(atRisk)}
        note=${atRisk != null ? "at risk or critical" : analytics === undefined ? "" : "needs health scores"} />
    </section>
    <div class="grid">
      <section class="card" aria-labelledby="funnel-title"><h2 id="funnel-title">Stage funnel</h2>
        <${ErrorBox} error=${analyticsError} />
        ${analytics === undefined ? html`<p class="muted">Loading…</p>` : analytics ? html`<${Funnel} stages=${analytics.funnel.stages} />` : html`<${Missing} what="The funnel and its drop-off" needs="the analytics API" />`}
      </section>
      <section class="card" aria-labelledby="trend-title"><h2 id="trend-title">Completion trend</h2>
        ${analytics && points.length ? html`<${LineChart} label="Signups and completions per day"
            xs=${points.map((p) => Date.parse(p.start) / 1000)}
            series=${[{ label: "Signups", values: points.map((p) => p.signups) }, { label: "Completions", values: points.map((p) => p.completions) }]} />`
          : analytics === undefined ? html`<p class="muted">Loading…</p>`
          : html`<${Missing} what="Daily signups and completions" needs="the analytics API" />`}
      </section>
      <section class="card" aria-labelledby="health-title"><h2 id="health-title">Health distribution</h2>
        ${health ? html`<${HealthDistribution} rows=${health} />` : analytics === undefined ? html`<p class="muted">Loading…</p>` : html`<${Missing} what="Healthy, at-risk and critical customers" needs="health scores" />`}
      </section>
      <${ActivityFeed} onEvent=${refresh} />
    </div>`;
}
