// The console's only way to the service: the public /api/v1 API with the producer token of the
// tab's session storage (never a cookie, never sent anywhere but this origin).
const KEY = "profile-groups-console";

export function session() {
  try {
    return JSON.parse(sessionStorage.getItem(KEY) || "null");
  } catch {
    return null;
  }
}

export function signIn(clientId, token) {
  sessionStorage.setItem(KEY, JSON.stringify({ clientId, token }));
}

export function signOut() {
  sessionStorage.removeItem(KEY);
}

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.detail || `The service answered ${status}.`);
    this.status = status;
    this.body = body || {};
    this.errors = Array.isArray(body?.errors) ? body.errors : [];
  }
}

function base() {
  const s = session();
  if (!s) throw new ApiError(401, { detail: "Not signed in." });
  return `/api/v1/applications/${encodeURIComponent(s.clientId)}`;
}

// path: relative to the application ("/profile-groups/"), or an absolute `next` URL of a page.
export async function api(method, path, body, { signal } = {}) {
  const s = session();
  let url = path;
  if (/^https?:/.test(path)) {
    const u = new URL(path);
    url = u.pathname + u.search; // pages' next/previous: always this origin
  } else {
    url = base() + path;
  }
  const init = {
    method,
    signal,
    headers: { Authorization: `Bearer ${s?.token ?? ""}`, Accept: "application/json" },
  };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch(url, init);
  } catch (e) {
    if (e.name === "AbortError") throw e;
    throw new ApiError(0, { detail: "The service could not be reached." });
  }
  if (resp.status === 204) return null;
  let data = null;
  const text = await resp.text();
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = { detail: text.slice(0, 200) };
    }
  }
  if (!resp.ok) throw new ApiError(resp.status, data);
  return data;
}

export const get = (path, opts) => api("GET", path, undefined, opts);
export const post = (path, body, opts) => api("POST", path, body ?? {}, opts);
export const patch = (path, body) => api("PATCH", path, body);
export const del = (path, body) => api("DELETE", path, body);

export function qs(params) {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (Array.isArray(v)) v.forEach((x) => x !== "" && u.append(k, x));
    else if (v !== undefined && v !== null && v !== "") u.append(k, v);
  }
  const s = u.toString();
  return s ? `?${s}` : "";
}

// Every page of a list (the catalogue: a few hundred rows at most).
export async function getAll(path) {
  const out = [];
  let page = await get(path);
  out.push(...page.results);
  while (page.next) {
    page = await get(page.next);
    out.push(...page.results);
  }
  return out;
}

let catalogue = null;
// The attribute catalogue: the only source of attributes the builder and the profile screen
// know. Fetched again when a screen that needs it opens, so a new custom attribute shows at once.
export async function loadCatalogue() {
  catalogue = await getAll("/profile-group-attributes/?page_size=1000");
  return catalogue;
}
