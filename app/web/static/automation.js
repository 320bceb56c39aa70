// Automation: rules with their success rates and recent runs, once the server has them.
import { html, useState, useEffect } from "./vendor.js";
import { schemaFeatures } from "./api.js";
import { Missing } from "./ui.js";

export function Automation() {
  const [features, setFeatures] = useState(null);
  useEffect(() => { schemaFeatures().then(setFeatures).catch(() => setFeatures(new Map())); }, []);
  if (!features) return html`<p class="loading">Loading…</p>`;
  return html`<h1 class="page-title">Automation</h1>
    <section class="card"><${Missing} what="Automation rules with their success rates and recent runs" needs="the automation API" /></section>`;
}
