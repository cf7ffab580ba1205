// One past request: its result (or its live progress), its input, re-run (same input or a new
// seed), copy as code, and where the server has them: replay, and a diff against another request.
import { api, hasRoute, model as getModel, session } from "./api.js";
import { h, badge, when, copy, fill } from "./dom.js";
import { randomSeed } from "./form.js";
import { PREFILL } from "./model.js";
import { snippets } from "./snippets.js";
import { track } from "./tracker.js";
import { resultView } from "./viewers.js";
import { workflowGraph } from "./workflow.js";
import { trainingView } from "./training.js";

// The stored (resolved) input, cut down to what the model's schema takes and with the fields
// the server fills in itself left out, so that it can be sent again as it is.
export function cleanInput(schema, input) {
  const props = schema?.properties || {};
  const out = {};
  for (const [k, v] of Object.entries(input || {})) {
    if (!(k in props) || v === null || (Array.isArray(v) && !v.length)) continue;
    out[k] = k === "loras" ? v.map(({ path, scale }) => ({ path, scale })) : v;
  }
  return out;
}

export async function render(view, modelId, requestId) {
  const m = await getModel(modelId);
  const root = `/v1/queue/${modelId}/requests/${requestId}`;
  const status = await api(`${root}/status?logs=true`);
  const body = status.state === "succeeded" ? await api(root).catch(() => null) : null;
  const input = cleanInput(m.input_schema, body?.input);
  const stops = [];
  const main = h("div.request-main");
  const side = h("div.request-side");

  if (status.status === "COMPLETED") {
    main.append(body ? resultView(body, body.input) : h("p.error", {}, status.error ? `${status.error_type}: ${status.error}` : status.state));
    if (status.steps) main.append(h("h2", {}, "Steps"), workflowGraph(m.steps || [], status.steps));
    if (m.task === "lora-training") { const t = trainingView(); t.update(status, body); main.append(t.el); }
    if (status.logs?.length) main.append(h("details", {}, h("summary.small", {}, "logs"),
      h("pre.logs", {}, status.logs.map((l) => `${new Date(l.timestamp * 1000).toLocaleTimeString()} ${l.source} ${l.message}`).join("\n"))));
  } else {
    const run = track({ model: m, requestId, input, onDone: () => render(view, modelId, requestId) });
    stops.push(run.stop);
    main.append(run.el);
  }

  if (Object.keys(input).length) {
    side.append(rerun(modelId, input), codeTabs(modelId, m.task, input));
  } else {
    side.append(h("p.small.muted", {}, "Its input is recorded with its result: re-run and code need a succeeded request."));
  }
  side.append(await extras(requestId));

  fill(view, 
    h("h1", {}, "Request ", h("code", {}, requestId)),
    h("p", {}, h("a", { href: `#/model/${modelId}` }, modelId), " ", badge(status.state, status.state), " ",
      h("span.small.muted", {}, `created ${when(status.created_at)}${status.finished_at ? `, finished ${when(status.finished_at)}` : ""}`)),
    h("div.columns.wide-left", {}, h("div.panel", {}, main), h("div.panel", {}, side)),
  );
  return () => stops.forEach((stop) => stop());
}

function rerun(modelId, input) {
  const go = async (body, button) => {
    button.disabled = true;
    try {
      const handle = await api(`/v1/queue/${modelId}`, { method: "POST", json: body });
      location.hash = `#/request/${modelId}/${handle.request_id}`;
    } catch (error) {
      button.after(h("p.error", {}, error.message));
      button.disabled = false;
    }
  };
  const same = h("button.primary", { id: "rerun-same", onclick: () => go(input, same) }, "Re-run");
  const fresh = h("button", { id: "rerun-seed", onclick: () => go({ ...input, seed: randomSeed() }, fresh) }, "Re-run with a new seed");
  const edit = h("button", { id: "edit-in-form", onclick: () => {
    sessionStorage.setItem(PREFILL, JSON.stringify({ model: modelId, input }));
    location.hash = `#/model/${modelId}`;
  } }, "Edit in the form");
  return h("div", {}, h("h2", {}, "Input"), h("pre.input", {}, JSON.stringify(input, null, 2)),
    h("div.toolbar", {}, same, fresh, edit));
}

function codeTabs(modelId, task, input) {
  const codes = snippets(modelId, task, input, { keyed: Boolean(session.key) });
  const pre = h("pre.code", { id: "code" });
  const copyButton = h("button", { id: "copy-code", onclick: () => copy(pre.textContent, copyButton) }, "Copy");
  const tabs = Object.keys(codes).map((name) => h("button", { type: "button", dataset: { tab: name }, onclick: () => pick(name) }, name));
  function pick(name) {
    pre.textContent = codes[name];
    pre.dataset.lang = name;
    tabs.forEach((t) => t.classList.toggle("on", t.dataset.tab === name));
  }
  pick("curl");
  return h("div", {}, h("h2", {}, "As code"), h("div.tabs", {}, tabs, copyButton), pre);
}

// Replay and diff, shown only when this server answers them.
async function extras(requestId) {
  const box = h("div.extras");
  const [replay, diff] = await Promise.all([
    hasRoute("/v1/requests/{request_id}/replay", "post"),
    hasRoute("/v1/requests/{a}/diff/{b}", "get"),
  ]);
  const replayOut = h("div.replay-out");
  const diffOut = h("div.diff-out");
  const fail = (el, out) => (error) => {
    if (error.status === 404 && error.type === "not_found") el.remove(); // the server has no such route
    else fill(out, h("p.error", {}, error.message));
  };
  if (replay) {
    const button = h("button", { id: "replay", onclick: () => {
      button.disabled = true;
      fill(replayOut, h("p.small.muted", {}, "running it again…"));
      api(`/v1/requests/${requestId}/replay`, { method: "POST" }).then((a) => fill(replayOut, replayView(a)), fail(button, replayOut))
        .finally(() => (button.disabled = false));
    } }, "Replay and check it is identical");
    box.append(h("h2", {}, "Reproduce"), button, replayOut);
  }
  if (diff) {
    const other = h("input", { type: "text", id: "diff-other", placeholder: "another request id", list: "diff-ids" });
    const ids = h("datalist", { id: "diff-ids" });
    api("/v1/requests?limit=50&top_level=true").then((p) => ids.append(...p.requests.filter((r) => r.request_id !== requestId)
      .map((r) => h("option", { value: r.request_id }, `${r.model_id} ${when(r.created_at)}`)))).catch(() => {});
    const row = h("div.toolbar", {}, other, ids, h("button", { id: "diff", onclick: () => {
      if (other.value.trim()) api(`/v1/requests/${requestId}/diff/${other.value.trim()}`).then((d) => fill(diffOut, diffView(d)), fail(row, diffOut));
    } }, "Diff"));
    box.append(h("h2", {}, "Compare with another request"), row, diffOut);
  }
  return box;
}

const verdict = (outputs) => (!outputs ? "outputs not comparable yet (both must have succeeded)"
  : outputs.identical ? "identical outputs" : "the outputs differ");

function replayView(answer) {
  const link = answer.request_id && answer.response_url
    ? h("a", { href: `#/request/${answer.response_url.split("/v1/queue/")[1]?.split("/requests/")[0]}/${answer.request_id}` }, answer.request_id) : null;
  return h("div.replay", {},
    h("p.replay-verdict", { dataset: { identical: String(Boolean(answer.comparison?.identical)) } },
      answer.comparison ? verdict(answer.comparison) : `still ${answer.status || answer.state}: diff it once it ends`),
    link ? h("p.small", {}, "replayed as ", link) : null,
    h("details", {}, h("summary.small", {}, "answer"), h("pre", {}, JSON.stringify(answer, null, 2))));
}

function diffView(answer) {
  const rows = answer.differences || [];
  const show = (v) => (typeof v === "string" ? v : JSON.stringify(v));
  return h("div.diff", {},
    h("p.diff-verdict", {}, `${rows.length} difference${rows.length === 1 ? "" : "s"} in input, model and environment; ${verdict(answer.outputs)}`),
    rows.length ? h("table.differences", {}, h("thead", {}, h("tr", {}, h("th", {}, "what"), h("th", {}, answer.a?.slice(0, 8) || "a"), h("th", {}, answer.b?.slice(0, 8) || "b"))),
      h("tbody", {}, rows.map((d) => h("tr", {}, h("td", {}, h("code", {}, d.path)), h("td.small", {}, show(d.a)), h("td.small", {}, show(d.b)))))) : null,
    h("details", {}, h("summary.small", {}, "answer"), h("pre", {}, JSON.stringify(answer, null, 2))));
}
