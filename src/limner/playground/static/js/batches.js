// Batches: each batch's row counts, its rate, and its failed rows (GET /v1/batches).
import { api, authHeaders, pathOf } from "./api.js";
import { h, badge, when, fill } from "./dom.js";

export async function render(view) {
  const body = h("tbody");
  const more = h("button", { id: "batches-more", hidden: true }, "More");
  const failures = h("div", { id: "batch-failures" });
  let cursor = null;

  async function load() {
    const page = await api(`/v1/batches?limit=20${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
    body.append(...page.data.map((b) => row(b, failures)));
    cursor = page.next_cursor;
    more.hidden = !page.has_more;
    if (!body.children.length) body.append(h("tr", {}, h("td", { colspan: 6 }, "No batches yet (POST /v1/batches or `limner batch`).")));
  }
  more.addEventListener("click", load);
  fill(view, h("h1", {}, "Batches"),
    h("table", { id: "batches" }, h("thead", {}, h("tr", {}, ["batch", "model", "status", "rows", "rate", "failed rows"].map((t) => h("th", {}, t)))), body),
    more, failures);
  await load();
}

// Rows finished per minute, over the time the batch has been running.
function rate(b) {
  const c = b.request_counts || {};
  const finished = (c.succeeded || 0) + (c.failed || 0) + (c.canceled || 0);
  const start = b.in_progress_at || b.created_at;
  const stop = b.finished_at || Date.now() / 1000;
  const minutes = Math.max((stop - start) / 60, 1 / 60);
  return finished ? `${(finished / minutes).toFixed(1)} rows/min` : "—";
}

function row(b, failures) {
  const c = b.request_counts || {};
  const failed = (c.failed || 0) + (c.canceled || 0);
  const show = h("button", { disabled: !failed, onclick: () => showFailures(b, failures) }, `${failed} failed`);
  return h("tr", { dataset: { batch: b.id } },
    h("td", {}, h("code", {}, b.id), h("div.small.muted", {}, when(b.created_at))),
    h("td", {}, b.model),
    h("td", {}, badge(b.status, b.status)),
    h("td.small", {}, `${c.succeeded || 0}/${c.total || 0} done · ${c.running || 0} running · ${c.queued || 0} queued`),
    h("td.small", {}, rate(b)),
    h("td", {}, show));
}

async function showFailures(b, failures) {
  const answer = await fetch(pathOf(b.error_url), { headers: authHeaders() });
  const lines = (await answer.text()).split("\n").filter(Boolean).map((l) => JSON.parse(l));
  failures.replaceChildren(h("h2", {}, `Failed rows of ${b.id}`),
    h("table.failures", {}, h("thead", {}, h("tr", {}, ["custom_id", "status", "error", "request"].map((t) => h("th", {}, t)))),
      h("tbody", {}, lines.map((l) => h("tr", {}, h("td", {}, l.custom_id), h("td", {}, l.status),
        h("td.small", {}, `${l.error?.type || ""}: ${l.error?.message || ""}`), h("td.small", {}, l.request_id || ""))))));
}
