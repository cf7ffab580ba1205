// One run, live: queue position, then the stage, a progress bar with ETA and the logs, then
// step previews (progress.preview_url), then the result in its viewer. A cancel button.
import { api, statuses } from "./api.js";
import { h, badge } from "./dom.js";
import { resultView } from "./viewers.js";
import { workflowGraph } from "./workflow.js";
import { trainingView } from "./training.js";

export function track({ model, requestId, input, onDone }) {
  const controller = new AbortController();
  const state = h("span.state", {}, badge("submitted", "queued"));
  const position = h("span.position.muted.small");
  const stage = h("div.stage.small");
  const timeline = h("div.timeline.small.muted"); // every stage this run went through
  const seen = [];
  const bar = h("div", {});
  const eta = h("span.eta.muted.small");
  const preview = h("img.step-preview", { alt: "step preview", hidden: true, style: "max-width:256px;image-rendering:pixelated" });
  const logs = h("pre.logs", { hidden: true });
  const graph = h("div.graph-slot");
  const training = model.task === "lora-training" ? trainingView() : null;
  const result = h("div.result");
  const cancel = h("button.danger.cancel", { type: "button", onclick: doCancel }, "Cancel");
  const link = h("a.small", { href: `#/request/${model.id}/${requestId}` }, requestId);
  const el = h("section.panel.run", { dataset: { request: requestId } },
    h("div.toolbar", {}, state, position, link, cancel),
    stage, timeline, h("div.progress", {}, bar), eta, graph, training?.el, preview, logs, result);

  async function doCancel() {
    cancel.disabled = true;
    try { await api(`/v1/queue/${model.id}/requests/${requestId}/cancel`, { method: "PUT" }); }
    catch (error) { stage.textContent = error.message; cancel.disabled = false; }
  }

  function show(status) {
    const p = status.progress || {};
    state.replaceChildren(badge(status.state, status.state));
    el.dataset.state = status.state;
    position.textContent = status.state === "queued" && status.queue_position !== undefined ? `position ${status.queue_position + 1} in the queue` : "";
    stage.textContent = p.total ? `${p.stage} ${p.step}/${p.total}` : p.stage || "";
    stage.dataset.stage = p.stage || "";
    if (p.stage && seen.at(-1) !== p.stage) { seen.push(p.stage); timeline.textContent = seen.join(" → "); timeline.dataset.stages = seen.join("|"); }
    bar.style.width = `${status.status === "COMPLETED" && status.state === "succeeded" ? 100 : p.percent || 0}%`;
    eta.textContent = p.eta_s !== null && p.eta_s !== undefined && status.status !== "COMPLETED" ? `about ${Math.ceil(p.eta_s)} s left` : "";
    if (p.preview_url) { preview.src = p.preview_url; preview.hidden = false; }
    if (status.logs?.length) {
      logs.hidden = false;
      logs.textContent = status.logs.map((l) => `${new Date(l.timestamp * 1000).toLocaleTimeString()} ${l.source} ${l.message}`).join("\n");
      logs.scrollTop = logs.scrollHeight;
    }
    if (status.steps) graph.replaceChildren(workflowGraph(model.steps || [], status.steps));
    training?.update(status);
    cancel.hidden = status.status === "COMPLETED";
  }

  async function finish(status) {
    if (status.state === "succeeded") {
      const body = await api(`/v1/queue/${model.id}/requests/${requestId}`);
      preview.hidden = true;
      result.replaceChildren(resultView(body, input));
      training?.update(status, body);
      onDone?.(body);
    } else if (status.error) {
      result.replaceChildren(h("p.error", {}, `${status.error_type}: ${status.error}`));
      onDone?.(null);
    } else {
      onDone?.(null);
    }
    el.dataset.done = "true";
  }

  (async () => {
    let last = null;
    try {
      for await (const status of statuses(model.id, requestId, controller.signal)) { last = status; show(status); }
      if (last) await finish(last);
    } catch (error) {
      if (!controller.signal.aborted) result.replaceChildren(h("p.error", {}, error.message));
    }
  })();

  return { el, stop: () => controller.abort() };
}
