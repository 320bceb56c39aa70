// The customer-success dashboard (ADMIN, CSM): overview, customers, a customer, automation.
import { html, render, useState, useEffect } from "./vendor.js";
import { forget, requireSession, session } from "./api.js";
import { Overview } from "./overview.js";
import { Customers } from "./customers.js";
import { CustomerPage } from "./customer.js";
import { Automation } from "./automation.js";

function currentRoute() {
  const [path, query = ""] = location.hash.replace(/^#/, "").split("?");
  return { path: path || "/", params: new URLSearchParams(query) };
}

function useRoute() {
  const [route, setRoute] = useState(currentRoute());
  useEffect(() => {
    const changed = () => setRoute(currentRoute());
    window.addEventListener("hashchange", changed);
    changed(); // a change between the first render and this effect
    return () => window.removeEventListener("hashchange", changed);
  }, []);
  return route;
}

function signOut() {
  forget();
  location.replace("/signin?signed-out");
}

/** GraphiQL (served by this app) with the operator's token in its headers editor. */
function openGraphiQL(event) {
  event.preventDefault();
  const headers = JSON.stringify({ Authorization: `Bearer ${session().token}` }, null, 2);
  try { localStorage.setItem("graphiql:headers", headers); } catch { /* */ }
  window.open("/graphql", "_blank", "noopener");
}

function Refused({ who }) {
  return html`<main class="card refused" role="alert">
    <h1>The dashboard is for the customer-success team</h1>
    <p>It needs an ADMIN or CSM sign-in; you are signed in as ${who.subject} (${who.role}).</p>
    <p><a href="/checklist">Open your checklist</a> · <button type="button" onClick=${signOut}>Sign out</button></p>
  </main>`;
}

function App() {
  const who = requireSession(["ADMIN", "CSM"]);
  const route = useRoute();
  if (!who) return null;
  if (who.refused) return html`<${Refused} who=${who} />`;
  const customer = route.path.match(/^\/customers\/([^/]+)$/);
  const tab = customer ? "customers" : route.path.replace(/^\//, "") || "overview";
  const link = (href, name, key) => html`<a href=${href} aria-current=${tab === key ? "page" : undefined}>${name}</a>`;
  let page;
  if (customer) page = html`<${CustomerPage} id=${decodeURIComponent(customer[1])} who=${who} />`;
  else if (tab === "customers") page = html`<${Customers} who=${who} params=${route.params} />`;
  else if (tab === "automation") page = html`<${Automation} who=${who} />`;
  else page = html`<${Overview} who=${who} />`;
  return html`
    <header class="topbar">
      <a class="brand" href="#/"><span class="logo" aria-hidden="true">▲</span> Liftoff</a>
      <nav aria-label="Dashboard">
        ${link("#/", "Overview", "overview")}
        ${link("#/customers", "Customers", "customers")}
        ${link("#/automation", "Automation", "automation")}
        <a href="/graphql" onClick=${openGraphiQL} title="Opens GraphiQL with your token in the headers">GraphiQL ↗</a>
      </nav>
      <div class="who"><span>${who.subject} · ${who.role}</span>
        <button type="button" class="link" onClick=${signOut}>Sign out</button></div>
    </header>
    <main id="main">${page}</main>`;
}

const root = document.getElementById("app");
root.textContent = "";
render(html`<${App} />`, root);
