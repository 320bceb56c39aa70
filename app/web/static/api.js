// Talking to Liftoff's own GraphQL API: the session, queries, subscriptions, feature detection.
import { createClient } from "./vendor.js";

const KEY = "liftoff.session";
let memory = null;

/** The signed-in session {token, role, subject, organization, customerId, expiresAt} or null. */
export function session() {
  if (!memory) {
    try { memory = JSON.parse(sessionStorage.getItem(KEY) || "null"); } catch { memory = null; }
  }
  if (memory && Date.parse(memory.expiresAt) <= Date.now()) { forget(); }
  return memory;
}

export function remember(value) {
  memory = value;
  try { sessionStorage.setItem(KEY, JSON.stringify(value)); } catch { /* memory only */ }
}

/** Sign out: the token is forgotten here and in GraphiQL's storage. */
export function forget() {
  memory = null;
  try { sessionStorage.removeItem(KEY); localStorage.removeItem("graphiql:headers"); } catch { /* */ }
  if (wsClient) { wsClient.dispose(); wsClient = null; }
}

/** A session passed by the embedding page as `#token=<CUSTOMER token>` (the fragment never
 * reaches a server); the fragment is removed from the address bar at once. */
export function sessionFromFragment() {
  const params = new URLSearchParams(location.hash.slice(1));
  const token = params.get("token");
  if (!token) return null;
  history.replaceState(null, "", location.pathname + location.search);
  let claims = {};
  try { claims = JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/"))); } catch { /* */ }
  const value = {
    token, role: claims.role, subject: claims.sub, customerId: claims.cid || null,
    organization: { id: claims.org }, expiresAt: new Date((claims.exp || 0) * 1000).toISOString(),
  };
  remember(value);
  return value;
}

export class ApiError extends Error {
  constructor(errors) {
    super(errors.map((e) => e.message).join(" "));
    this.errors = errors;
    this.code = errors[0]?.extensions?.code || "ERROR";
  }
}

/** Run one GraphQL operation as the signed-in user; errors become an ApiError. */
export async function gql(query, variables = {}) {
  const s = session();
  const headers = { "Content-Type": "application/json" };
  if (s) headers.Authorization = `Bearer ${s.token}`;
  let response;
  try {
    response = await fetch("/graphql", { method: "POST", headers, body: JSON.stringify({ query, variables }) });
  } catch {
    throw new ApiError([{ message: "The server cannot be reached; check your connection.", extensions: { code: "NETWORK" } }]);
  }
  const body = await response.json().catch(() => ({ errors: [{ message: `HTTP ${response.status}` }] }));
  if (body.errors?.length) {
    const error = new ApiError(body.errors);
    if (error.code === "UNAUTHENTICATED" && s) { forget(); }
    throw error;
  }
  return body.data;
}

let wsClient = null;

function client() {
  if (!wsClient) {
    const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/graphql`;
    wsClient = createClient({
      url,
      lazy: true,
      retryAttempts: Infinity,
      shouldRetry: () => true,
      connectionParams: () => ({ Authorization: `Bearer ${session()?.token}` }),
    });
  }
  return wsClient;
}

/** Subscribe; `onData` gets each event's data. With `resume` the variable `afterSequence` is
 * kept at the last seen `sequence`, so a reconnect replays exactly what was missed. */
export function subscribe(query, variables, onData, { onError, resume } = {}) {
  const payload = { query, variables: { ...variables } };
  return client().subscribe(payload, {
    next: (message) => {
      if (message.errors) { onError?.(new ApiError(message.errors)); return; }
      const event = Object.values(message.data)[0];
      if (resume && typeof event?.sequence === "number") {
        const last = payload.variables.afterSequence ?? 0;
        if (event.sequence <= last) return; // seen already
        payload.variables.afterSequence = event.sequence;
      }
      onData(message.data);
    },
    error: (error) => onError?.(Array.isArray(error) ? new ApiError(error) : new ApiError([{ message: String(error?.reason || error?.message || "The live connection failed.") }])),
    complete: () => {},
  });
}

let features = null;

/** Everything: what the pages assume when the server does not let this role introspect
 * (outside the embedded default only ADMIN may), since they ship with the API they call. */
const EVERYTHING = { has: () => true, get: () => "" };

/** Which root fields and type fields this server has: pages show what exists (never rejects). */
export async function schemaFeatures() {
  if (!features) {
    features = gql(`{ __schema { types { name fields { name description args { name } } inputFields { name } } } }`).then((data) => {
      // Keys: "Type.field" (its description), "Type.field(arg)" and "Input.field".
      const found = new Map();
      for (const type of data.__schema.types) {
        for (const field of type.fields || []) {
          found.set(`${type.name}.${field.name}`, field.description || "");
          for (const arg of field.args || []) found.set(`${type.name}.${field.name}(${arg.name})`, "");
        }
        for (const field of type.inputFields || []) found.set(`${type.name}.${field.name}`, "");
      }
      return found;
    }).catch(() => EVERYTHING);
  }
  return features;
}

/** A figure as a percentage: progress fields are percent 0-100 already (the API's one
 * progress scale); rates documented as a share 0-1 are passed with scale "share". */
export function percent(value, scale = "percent") {
  if (value == null) return null;
  return scale === "share" ? value * 100 : value;
}

export const fmt = {
  int: (n) => (n == null ? "—" : Number(n).toLocaleString("en")),
  pct: (n) => (n == null ? "—" : `${Math.round(n)} %`),
  date: (d) => (d ? new Date(d).toLocaleDateString("en", { year: "numeric", month: "short", day: "numeric" }) : "—"),
  time: (d) => (d ? new Date(d).toLocaleTimeString("en", { hour: "2-digit", minute: "2-digit", second: "2-digit" }) : ""),
  label: (s) => (s ? s.charAt(0) + s.slice(1).toLowerCase().replace(/_/g, " ") : ""),
  minutes: (m) => (m == null ? "—" : m < 60 ? `${m} min` : `${Math.floor(m / 60)} h ${m % 60} min`),
};

/** Send someone who is not signed in (or has the wrong role) to the sign-in page. */
export function requireSession(roles) {
  const s = session();
  if (!s) {
    location.replace(`/signin?next=${encodeURIComponent(location.pathname + location.hash)}`);
    return null;
  }
  return roles.includes(s.role) ? s : { ...s, refused: true };
}
