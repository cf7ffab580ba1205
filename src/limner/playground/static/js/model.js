// A model's page: its form (from its JSON Schema) and the runs made from it on this page.
import { api, model as getModel } from "./api.js";
import { h, badge, fill } from "./dom.js";
import { buildForm } from "./form.js";
import { track } from "./tracker.js";
import { compareView } from "./viewers.js";
import { workflowGraph } from "./workflow.js";

export const PREFILL = "limner.prefill"; // the input a "re-run"/"edit" hands to this page

export async function render(view, id) {
  const m = await getModel(id);
  const prefill = JSON.parse(sessionStorage.getItem(PREFILL) || "null");
  sessionStorage.removeItem(PREFILL);
  const values = prefill?.model === id ? prefill.input : {};
  const runs = h("div.runs", { id: "runs" });
  const compare = h("div", { id: "compare" });
  const done = []; // finished image results on this page, for side-by-side compare
  const stops = [];

  const form = buildForm(m.input_schema, {
    values,
    onSubmit: async (body) => {
      form.clearErrors();
      form.submit.disabled = true;
      try {
        const handle = await api(`/v1/queue/${id}`, { method: "POST", json: body });
        const run = track({ model: m, requestId: handle.request_id, input: body, onDone: (result) => {
          if (result?.images?.length) { done.push({ id: handle.request_id, result }); drawCompare(); }
        } });
        stops.push(run.stop);
        runs.prepend(run.el);
      } catch (error) {
        form.showError(error);
      } finally {
        form.submit.disabled = false;
      }
    },
  });

  function drawCompare() {
    if (done.length < 2) return;
    const [a, b] = done.slice(-2);
    compare.replaceChildren(h("h2", {}, "Compare the last two"), compareView(a, b));
  }

  const ok = m.available?.ok;
  fill(view, 
    h("h1", {}, m.title || m.id),
    h("p", {}, h("code", {}, m.id), " ", badge(m.task, "task"), " ",
      badge(ok ? "available" : "unavailable", ok ? "ok" : "no"), " ", h("span.muted.small", {}, m.available?.reason || "")),
    m.description ? h("p.muted", {}, m.description) : null,
    m.task === "workflow" && m.steps ? h("div.panel", {}, h("h2", {}, "Steps"), workflowGraph(m.steps, [])) : null,
    h("div.columns", {}, h("div.panel", {}, form.el), h("div", {}, compare, runs)),
  );
  return () => stops.forEach((stop) => stop());
}
