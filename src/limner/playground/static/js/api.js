// Every call the playground makes to the API, with the session's API key (if any).
const KEY = "limner.key";

export const session = {
  get key() { return sessionStorage.getItem(KEY); },
  set key(value) { value ? sessionStorage.setItem(KEY, value) : sessionStorage.removeItem(KEY); },
};

// An error answer in limner's shape: {detail: [{loc, msg, type}], error_type}.
export class ApiError extends Error {
  constructor(status, body) {
    const detail = Array.isArray(body?.detail) ? body.detail : [];
    super(detail.map((d) => d.msg).join("; ") || body?.detail || `HTTP ${status}`);
    this.status = status;
    this.type = body?.error_type ?? null;
    this.detail = detail;
  }
}

export function authHeaders() {
  const key = session.key;
  return key ? { Authorization: `Key ${key}` } : {};
}

// A JSON call; rejects with an ApiError. A 401 also tells the page to ask for a key.
export async function api(path, { method = "GET", json, body, headers = {}, signal } = {}) {
  const init = { method, headers: { ...authHeaders(), ...headers }, signal };
  if (json !== undefined) {
    init.body = JSON.stringify(json);
    init.headers["Content-Type"] = "application/json";
  } else if (body !== undefined) {
    init.body = body;
  }
  const answer = await fetch(path, init);
  const text = await answer.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = text; }
  if (answer.status === 401) window.dispatchEvent(new CustomEvent("limner:key-required"));
  if (!answer.ok) throw new ApiError(answer.status, data);
  return data;
}

// The path part of a URL the server gave out (same origin), so calls keep the page's key.
export const pathOf = (url) => { const u = new URL(url, location.href); return u.pathname + u.search; };

export function upload(file) {
  const form = new FormData();
  form.append("file", file, file.name || "pasted");
  return api("/v1/files", { method: "POST", body: form });
}

// The status stream (Server-Sent Events) read through fetch, since EventSource cannot send
// the Authorization header. Yields each status object; falls back to polling if it breaks.
export async function* statuses(modelId, requestId, signal) {
  const root = `/v1/queue/${modelId}/requests/${requestId}/status`;
  try {
    const answer = await fetch(`${root}/stream?logs=true`, { headers: authHeaders(), signal });
    if (!answer.ok || !answer.body) throw new ApiError(answer.status, null);
    const reader = answer.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value.replace(/\r\n/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const event = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const data = event.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trim()).join("\n");
        if (data) {
          const status = JSON.parse(data);
          yield status;
          if (status.status === "COMPLETED") return;
        }
      }
    }
  } catch (error) {
    if (signal?.aborted) return;
  }
  for (;;) { // polling, until the job ends
    if (signal?.aborted) return;
    const status = await api(`${root}?logs=true`, { signal });
    yield status;
    if (status.status === "COMPLETED") return;
    await new Promise((r) => setTimeout(r, 500));
  }
}

// Which optional routes this server has (replay, diff are newer than some servers).
let spec = null;
export async function hasRoute(path, method) {
  spec ??= api("/openapi.json").catch(() => ({ paths: {} }));
  const paths = (await spec).paths || {};
  return Boolean(paths[path]?.[method]);
}

let catalog = null;
export function models(refresh = false) {
  if (refresh || !catalog) catalog = api("/v1/models").then((b) => b.models).catch((e) => { catalog = null; throw e; });
  return catalog;
}

export async function model(id) {
  return (await models()).find((m) => m.id === id) ?? api(`/v1/models/${id}`);
}
