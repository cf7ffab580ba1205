// History: past requests from GET /v1/requests (they survive restarts), newest first, with
// filters and infinite scroll (cursor pages loaded as the end of the list comes into view).
import { api, models, pathOf } from "./api.js";
import { h, badge, when, fill } from "./dom.js";
import { filesOf } from "./viewers.js";

const PAGE = 24;
const STATUSES = ["", "queued", "running", "succeeded", "failed", "canceled"];

export async function render(view) {
  const all = await models();
  const tasks = [...new Set(all.map((m) => m.task))].sort();
  const status = h("select", { id: "history-status" }, STATUSES.map((s) => h("option", { value: s }, s || "any status")));
  const task = h("select", { id: "history-task" }, h("option", { value: "" }, "all tasks"), tasks.map((t) => h("option", { value: t }, t)));
  const model = h("input", { type: "search", id: "history-model", placeholder: "model id", list: "history-models" });
  const ids = h("datalist", { id: "history-models" }, all.map((m) => h("option", { value: m.id })));
  const grid = h("div.grid", { id: "history-grid" });
  const sentinel = h("div.sentinel");
  const end = h("p.muted.small", { id: "history-end" });
  let cursor = null, loading = false, generation = 0;

  async function more() {
    if (loading || cursor === undefined) return;
    loading = true;
    const mine = generation;
    const query = new URLSearchParams({ limit: PAGE, top_level: "true" });
    if (cursor) query.set("cursor", cursor);
    if (status.value) query.set("status", status.value);
    if (task.value) query.set("task", task.value);
    if (model.value.trim()) query.set("model", model.value.trim());
    try {
      const page = await api(`/v1/requests?${query}`);
      if (mine !== generation) return;
      grid.append(...page.requests.map(card));
      cursor = page.next_cursor ?? undefined;
      end.textContent = cursor === undefined ? (grid.children.length ? "that is all" : "no requests yet") : "";
    } catch (error) {
      end.textContent = error.message;
    } finally {
      loading = false;
    }
    if (cursor !== undefined && sentinel.getBoundingClientRect().top < innerHeight) more();
  }

  function restart() {
    generation += 1;
    cursor = null;
    loading = false;
    grid.replaceChildren();
    more();
  }
  [status, task].forEach((el) => el.addEventListener("change", restart));
  model.addEventListener("change", restart);
  const observer = new IntersectionObserver((entries) => entries.some((e) => e.isIntersecting) && more());
  observer.observe(sentinel);

  fill(view, h("h1", {}, "History"), h("div.toolbar", {}, status, task, model, ids), grid, sentinel, end);
  restart();
  return () => observer.disconnect();
}

function card(r) {
  const thumb = h("div.thumb.empty", {}, r.task);
  if (r.state === "succeeded") {
    api(pathOf(r.response_url)).then((body) => {
      const image = filesOf(body).find((f) => (f.content_type || "").startsWith("image/"));
      if (image) thumb.replaceWith(h("img.thumb", { src: image.url, alt: r.request_id, loading: "lazy" }));
    }).catch(() => {});
  }
  return h("a.card.request", { href: `#/request/${r.model_id}/${r.request_id}`, dataset: { request: r.request_id } },
    thumb,
    h("h3", {}, r.model_id),
    h("div", {}, badge(r.state, r.state), " ", h("span.small.muted", {}, when(r.created_at))),
    h("p.small.muted", {}, r.request_id),
  );
}
