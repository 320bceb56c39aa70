// The sign-in page: email and password, or a single-use link (`/signin#link=<secret>`).
import { html, render, useState, useEffect } from "./vendor.js";
import { gql, remember, session, forget } from "./api.js";

const SIGNED_IN = `token expiresAt subject role customerId organization { id slug name }`;

function destination(role) {
  const next = new URLSearchParams(location.search).get("next");
  const home = role === "CUSTOMER" ? "/checklist" : "/dashboard";
  return next && next.startsWith(role === "CUSTOMER" ? "/checklist" : "/dashboard") ? next : home;
}

function enter(payload) {
  remember(payload);
  location.replace(destination(payload.role));
}

function SignIn() {
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [organization, setOrganization] = useState("");
  const [askOrg, setAskOrg] = useState(false);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const [notice, setNotice] = useState(null);

  useEffect(() => {
    const link = new URLSearchParams(location.hash.slice(1)).get("link");
    if (!link) {
      if (new URLSearchParams(location.search).has("signed-out")) setNotice("You are signed out.");
      return;
    }
    history.replaceState(null, "", location.pathname + location.search);
    forget();
    setBusy(true);
    setNotice("Signing you in with your link…");
    gql(`mutation($s: String!) { redeemSignInLink(secret: $s) { ${SIGNED_IN} } }`, { s: link })
      .then((data) => enter(data.redeemSignInLink))
      .catch((e) => { setNotice(null); setError(e.message); setBusy(false); });
  }, []);

  async function submit(event) {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const data = await gql(
        `mutation($e: String!, $p: String!, $o: String) { login(email: $e, password: $p, organization: $o) { ${SIGNED_IN} } }`,
        { e: email, p: password, o: organization || null },
      );
      enter(data.login);
    } catch (e) {
      if (e.errors?.[0]?.extensions?.field === "organization") setAskOrg(true);
      setError(e.message);
      setBusy(false);
    }
  }

  return html`
    <main class="signin card" aria-labelledby="signin-title">
      <h1 id="signin-title"><span class="logo" aria-hidden="true">▲</span> Liftoff</h1>
      <p class="muted">Sign in to the customer-success dashboard.</p>
      ${notice && html`<p class="notice" role="status">${notice}</p>`}
      ${error && html`<p class="error" role="alert" id="signin-error">${error}</p>`}
      <form onSubmit=${submit} aria-describedby=${error ? "signin-error" : undefined}>
        <label>Email <input type="email" name="email" autocomplete="username" required
          value=${email} onInput=${(e) => setEmail(e.target.value)} /></label>
        <label>Password <input type="password" name="password" autocomplete="current-password" required
          value=${password} onInput=${(e) => setPassword(e.target.value)} /></label>
        ${askOrg && html`<label>Organization (slug) <input name="organization" required
          value=${organization} onInput=${(e) => setOrganization(e.target.value)} /></label>`}
        <button type="submit" disabled=${busy}>${busy ? "Signing in…" : "Sign in"}</button>
      </form>
      <p class="muted small">No password? Ask an admin for a sign-in link
        (<code>liftoff login-link --org ORG --email you@…</code>); it works once, for 15 minutes.</p>
      ${session() && html`<p class="small">Already signed in as ${session().subject}:
        <a href=${destination(session().role)}>continue</a>.</p>`}
    </main>`;
}

const root = document.getElementById("app");
root.textContent = "";
render(html`<${SignIn} />`, root);
