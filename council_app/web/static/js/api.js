// Client for the public JSON API. The UI uses nothing else, so this file is also a
// compact example of how to drive a council from any program.

const TOKEN_KEY = "agent-council-token";

/** An API error: the JSON body {error, message, detail[, errors]} plus the HTTP status. */
export class ApiError extends Error {
  constructor(status, body) {
    const info = body && typeof body === "object" ? body : {};
    super(info.message || `HTTP ${status}`);
    this.status = status;
    this.code = info.error || "";
    this.detail = info.detail;
    this.errors = Array.isArray(info.errors) ? info.errors : [];
  }

  /** The text to show a person: the API's detail, else its message. */
  get userText() {
    const detail = this.detail;
    if (typeof detail === "string" && detail.trim()) return detail;
    if (detail && typeof detail === "object") return JSON.stringify(detail);
    if (this.message) return this.message;
    return `Request failed (HTTP ${this.status})`;
  }
}

/** Turn anything thrown by a request into text for an inline error. */
export function errorText(err) {
  if (err instanceof ApiError) return err.userText;
  if (err instanceof TypeError) return "The server could not be reached. Check that it is running.";
  return String((err && err.message) || err);
}

let askForToken = null;
/** Install the callback that asks the person for a bearer token after a 401. */
export function onTokenNeeded(callback) {
  askForToken = callback;
}

function storedToken() {
  try {
    return window.localStorage.getItem(TOKEN_KEY) || "";
  } catch {
    return "";
  }
}

export function setToken(token) {
  try {
    if (token) window.localStorage.setItem(TOKEN_KEY, token);
    else window.localStorage.removeItem(TOKEN_KEY);
  } catch {
    /* private mode: the token lasts for this page only */
  }
}

async function request(method, path, { json, form, query, retried = false } = {}) {
  let url = path;
  if (query) {
    const params = new URLSearchParams();
    for (const [key, val] of Object.entries(query)) {
      if (val !== undefined && val !== null && val !== false) params.set(key, String(val));
    }
    const qs = params.toString();
    if (qs) url += `?${qs}`;
  }
  const headers = { Accept: "application/json" };
  const token = storedToken();
  if (token) headers.Authorization = `Bearer ${token}`;
  let body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form) {
    body = form; // the browser sets the multipart boundary
  }
  const response = await fetch(url, { method, headers, body, credentials: "same-origin" });
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = { error: "bad_response", message: `Unexpected response (HTTP ${response.status})` };
    }
  }
  if (response.status === 401 && !retried && askForToken) {
    const fresh = await askForToken();
    if (fresh) {
      setToken(fresh);
      return request(method, path, { json, form, query, retried: true });
    }
  }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

const enc = encodeURIComponent;
const forceQuery = (force) => (force ? { force: "true" } : undefined);

export const api = {
  createSession(question, files, { followUpOf = null } = {}) {
    const form = new FormData();
    form.append("question", question);
    if (followUpOf) form.append("follow_up_of", followUpOf);
    for (const file of files) form.append("files", file, file.name);
    return request("POST", "/api/sessions", { form });
  },
  /** One page of the caller's sessions: {limit, offset} or {limit, cursor}, plus q. */
  listSessions({ limit = 30, offset, cursor, q } = {}) {
    return request("GET", "/api/sessions", { query: { limit, offset, cursor, q } });
  },
  health() {
    return request("GET", "/api/health");
  },
  models() {
    return request("GET", "/api/models");
  },
  me() {
    return request("GET", "/api/me");
  },
  logs(id) {
    return request("GET", `/api/sessions/${enc(id)}/logs`);
  },
  deleteSession(id) {
    return request("DELETE", `/api/sessions/${enc(id)}`);
  },
  buildCouncil(id, force = false) {
    return request("POST", `/api/sessions/${enc(id)}/build_council`, { query: forceQuery(force) });
  },
  saveCouncil(id, config) {
    return request("PUT", `/api/sessions/${enc(id)}/council`, { json: config });
  },
  execute(id, force = false) {
    return request("POST", `/api/sessions/${enc(id)}/execute`, { query: forceQuery(force) });
  },
  /** Ask only the members whose last answer failed; the others keep theirs (and their cost).
   * step: "execute" or "review". */
  retryFailed(id, step = "execute") {
    const path = step === "review" ? "peer_review" : "execute";
    return request("POST", `/api/sessions/${enc(id)}/${path}`, { query: { retry: "failed" } });
  },
  status(id) {
    return request("GET", `/api/sessions/${enc(id)}/status`);
  },
  results(id) {
    return request("GET", `/api/sessions/${enc(id)}/results`);
  },
  peerReview(id, force = false) {
    return request("POST", `/api/sessions/${enc(id)}/peer_review`, { query: forceQuery(force) });
  },
  reviews(id) {
    return request("GET", `/api/sessions/${enc(id)}/reviews`);
  },
  synthesize(id, force = false) {
    return request("POST", `/api/sessions/${enc(id)}/synthesize`, { query: forceQuery(force) });
  },
  cancel(id) {
    return request("POST", `/api/sessions/${enc(id)}/cancel`);
  },
  summary(id) {
    return request("GET", `/api/sessions/${enc(id)}/summary`);
  },
};
