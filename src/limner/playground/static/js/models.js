// Models: every model and workflow of GET /v1/models, with search, a task filter and availability.
import { models } from "./api.js";
import { h, badge, fill } from "./dom.js";

export async function render(view) {
  const all = await models();
  const tasks = [...new Set(all.map((m) => m.task))].sort();
  const search = h("input", { type: "search", id: "model-search", placeholder: "search models", autofocus: true });
  const task = h("select", { id: "task-filter" }, h("option", { value: "" }, "all tasks"), tasks.map((t) => h("option", { value: t }, t)));
  const onlyOk = h("input", { type: "checkbox", id: "available-only" });
  const grid = h("div.grid", { id: "model-grid" });
  const count = h("span.muted.small");

  function draw() {
    const words = search.value.toLowerCase().split(/\s+/).filter(Boolean);
    const shown = all.filter((m) => {
      const text = [m.id, m.title, m.description, m.task, ...(m.tags || [])].join(" ").toLowerCase();
      return words.every((w) => text.includes(w)) && (!task.value || m.task === task.value) && (!onlyOk.checked || m.available?.ok);
    });
    count.textContent = `${shown.length} of ${all.length}`;
    grid.replaceChildren(...shown.map(card));
  }
  [search, task, onlyOk].forEach((el) => el.addEventListener("input", draw));
  fill(view, 
    h("h1", {}, "Models"),
    h("div.toolbar", {}, search, task, h("label", {}, onlyOk, " available here"), count),
    grid,
  );
  draw();
}

function card(m) {
  const ok = m.available?.ok;
  return h("a.card.model", { href: `#/model/${m.id}`, dataset: { model: m.id } },
    h("h3", {}, m.id),
    h("div", {}, badge(m.task, "task"), " ", h("span", { title: m.available?.reason || "" }, badge(ok ? "available" : "unavailable", ok ? "ok" : "no"))),
    h("p.small", {}, m.title || ""),
    ok ? null : h("p.small.muted", {}, m.available?.reason || ""),
  );
}
