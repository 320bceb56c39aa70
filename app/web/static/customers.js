// Customers: search, filters, sorting of the page shown, pagination over the Relay connection, CSV.
import { html, useState, useEffect, useMemo } from "./vendor.js";
import { gql, schemaFeatures, percent, fmt } from "./api.js";
import { ErrorBox, Bar } from "./ui.js";

const PAGE = 25;
function listQuery(features) {
  const ordered = features.has("Query.customers(orderBy)");
  const health = features.has("Customer.health") ? "health { score level }" : "";
  return `query Customers($first: Int, $after: String, $filter: CustomerFilter${ordered ? ", $orderBy: CustomerOrder!" : ""}) {
  customers(first: $first, after: $after, filter: $filter${ordered ? ", orderBy: $orderBy" : ""}) {
    totalCount pageInfo { hasNextPage endCursor }
    edges { node { id name email company userType acquisitionChannel signedUpAt ${health}
      workflow { status points progress paused currentStage { name } } } }
  }
}`;
}
const COLUMNS = [
  ["name", "Customer"], ["userType", "User type"], ["acquisitionChannel", "Channel"],
  ["status", "Workflow"], ["progress", "Progress"], ["points", "Points"], ["signedUpAt", "Signed up"],
];
const HEALTH_COLUMN = ["health", "Health"];

function row(node) {
  const wf = node.workflow || {};
  return {
    id: node.id, name: node.name, email: node.email, company: node.company || "",
    userType: node.userType, acquisitionChannel: node.acquisitionChannel,
    status: wf.status ? (wf.paused ? `${wf.status} (paused)` : wf.status) : "NONE",
    stage: wf.currentStage?.name || "", progress: percent(wf.progress) ?? 0,
    points: wf.points ?? 0, signedUpAt: node.signedUpAt,
    health: node.health ? Math.round(node.health.score) : null, level: node.health?.level || "",
  };
}

function csv(rows) {
  const fields = ["id", "name", "email", "company", "userType", "acquisitionChannel", "status", "stage", "progress", "points", "health", "level", "signedUpAt"];
  const cell = (v) => { const s = String(v ?? ""); return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s; };
  return [fields.join(","), ...rows.map((r) => fields.map((f) => cell(f === "progress" ? Math.round(r[f]) : r[f])).join(","))].join("\n") + "\n";
}

function download(name, text) {
  const url = URL.createObjectURL(new Blob([text], { type: "text/csv" }));
  const a = Object.assign(document.createElement("a"), { href: url, download: name });
  document.body.appendChild(a); a.click(); a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

export function Customers({ who, params }) {
  const [filter, setFilter] = useState({
    search: params.get("search") || "", userType: params.get("userType") || "",
    acquisitionChannel: params.get("channel") || "", workflowStatus: params.get("status") || "",
    healthLevel: params.get("health") || "",
  });
  const [orderBy, setOrderBy] = useState("CREATED_ASC");
  const [features, setFeatures] = useState(null);
  const [cursors, setCursors] = useState([null]);
  const [result, setResult] = useState(null);
  const [error, setError] = useState(null);
  const [sort, setSort] = useState({ key: null, dir: 1 });
  const [seen, setSeen] = useState({ userType: new Set(), acquisitionChannel: new Set() });

  useEffect(() => {
    schemaFeatures().then(setFeatures);
  }, []);
  const after = cursors[cursors.length - 1];
  useEffect(() => {
    if (!features) return undefined;
    const timer = setTimeout(async () => {
      const f = Object.fromEntries(Object.entries(filter).filter(([, v]) => v));
      const variables = { first: PAGE, after, filter: f };
      if (features.has("Query.customers(orderBy)")) variables.orderBy = orderBy;
      try {
        const data = await gql(listQuery(features), variables);
        setResult(data.customers);
        setError(null);
        setSeen((s) => {
          const next = { userType: new Set(s.userType), acquisitionChannel: new Set(s.acquisitionChannel) };
          for (const e of data.customers.edges) { next.userType.add(e.node.userType); next.acquisitionChannel.add(e.node.acquisitionChannel); }
          return next;
        });
      } catch (e) { setError(e); }
    }, 250);
    return () => clearTimeout(timer);
  }, [JSON.stringify(filter), after, orderBy, features]);

  const columns = features?.has("Customer.health") ? [...COLUMNS.slice(0, 5), HEALTH_COLUMN, ...COLUMNS.slice(5)] : COLUMNS;
  const rows = useMemo(() => {
    const list = (result?.edges || []).map((e) => row(e.node));
    if (!sort.key) return list;
    return [...list].sort((a, b) => (a[sort.key] > b[sort.key] ? 1 : a[sort.key] < b[sort.key] ? -1 : 0) * sort.dir);
  }, [result, sort]);

  const set = (key) => (e) => { setFilter({ ...filter, [key]: e.target.value }); setCursors([null]); };
  const sortBy = (key) => setSort(sort.key === key ? { key, dir: -sort.dir } : { key, dir: 1 });
  const page = cursors.length;
  const pages = result ? Math.max(1, Math.ceil(result.totalCount / PAGE)) : 1;

  return html`
    <h1 class="page-title">Customers</h1>
    <form class="filters card" role="search" onSubmit=${(e) => e.preventDefault()} aria-label="Filter customers">
      <label>Search <input type="search" name="search" placeholder="name, email, company" value=${filter.search} onInput=${set("search")} /></label>
      <label>User type <input name="userType" list="user-types" value=${filter.userType} onInput=${set("userType")} />
        <datalist id="user-types">${[...seen.userType].sort().map((v) => html`<option value=${v} />`)}</datalist></label>
      <label>Channel <input name="channel" list="channels" value=${filter.acquisitionChannel} onInput=${set("acquisitionChannel")} />
        <datalist id="channels">${[...seen.acquisitionChannel].sort().map((v) => html`<option value=${v} />`)}</datalist></label>
      <label>Workflow <select name="status" value=${filter.workflowStatus} onChange=${set("workflowStatus")}>
        <option value="">any</option><option value="ACTIVE">active</option><option value="COMPLETED">completed</option></select></label>
      ${features?.has("CustomerFilter.healthLevel") && html`<label>Health <select name="health" value=${filter.healthLevel} onChange=${set("healthLevel")}>
        <option value="">any</option><option value="HEALTHY">healthy</option><option value="AT_RISK">at risk</option><option value="CRITICAL">critical</option></select></label>`}
      ${features?.has("Query.customers(orderBy)") && html`<label>Order <select name="order" value=${orderBy} onChange=${(e) => { setOrderBy(e.target.value); setCursors([null]); }}>
        <option value="CREATED_ASC">signup order</option><option value="HEALTH_ASC">health, lowest first</option><option value="HEALTH_DESC">health, highest first</option></select></label>`}
      ${who.role === "ADMIN" && html`<button type="button" onClick=${() => download(`customers-page-${page}.csv`, csv(rows))} disabled=${!rows.length}>Download CSV of this view</button>`}
    </form>
    <${ErrorBox} error=${error} />
    <p class="muted" aria-live="polite" id="result-count">${result ? `${fmt.int(result.totalCount)} customers match · page ${page} of ${pages}` : "Loading…"}${sort.key ? " · sorted within this page" : ""}</p>
    <div class="table-wrap"><table class="customers">
      <thead><tr>${columns.map(([key, label]) => html`
        <th scope="col" aria-sort=${sort.key === key ? (sort.dir > 0 ? "ascending" : "descending") : "none"}>
          <button type="button" class="sort" onClick=${() => sortBy(key)}>${label}${sort.key === key ? (sort.dir > 0 ? " ▲" : " ▼") : ""}</button></th>`)}</tr></thead>
      <tbody>${rows.map((r) => html`<tr key=${r.id}>
        <td><a href=${`#/customers/${r.id}`}>${r.name}</a><div class="muted small">${r.email}${r.company ? ` · ${r.company}` : ""}</div></td>
        <td>${r.userType}</td><td>${r.acquisitionChannel}</td>
        <td><span class="status status-${r.status.split(" ")[0].toLowerCase()}">${fmt.label(r.status)}</span><div class="muted small">${r.stage}</div></td>
        <td class="num"><${Bar} value=${r.progress} label=${`${Math.round(r.progress)} percent`} /> ${Math.round(r.progress)} %</td>
        ${columns.includes(HEALTH_COLUMN) && html`<td class="num">${r.health == null ? html`<span class="muted">not scored</span>` : html`${r.health} <span class="status level-${r.level.toLowerCase().replace("_", "-")}">${fmt.label(r.level)}</span>`}</td>`}
        <td class="num">${fmt.int(r.points)}</td><td>${fmt.date(r.signedUpAt)}</td></tr>`)}
      </tbody></table></div>
    <nav class="pager" aria-label="Pages">
      <button type="button" disabled=${page === 1} onClick=${() => setCursors(cursors.slice(0, -1))}>← Previous</button>
      <button type="button" disabled=${!result?.pageInfo.hasNextPage} onClick=${() => setCursors([...cursors, result.pageInfo.endCursor])}>Next →</button>
    </nav>`;
}
