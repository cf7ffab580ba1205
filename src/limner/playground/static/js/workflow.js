// A workflow's steps as boxes and arrows (SVG), coloured by each step's status. Steps are laid
// out in columns by depth: a step sits one column right of the deepest step it needs.
import { s } from "./dom.js";

const W = 180, H = 46, GAP_X = 60, GAP_Y = 18;

export function workflowGraph(steps, statuses) {
  const byId = new Map(steps.map((st) => [st.id, st]));
  const status = new Map((statuses || []).map((st) => [st.id.split("[")[0], st]));
  const depth = new Map();
  const depthOf = (id, seen = new Set()) => {
    if (depth.has(id)) return depth.get(id);
    if (seen.has(id)) return 0;
    seen.add(id);
    const needs = (byId.get(id)?.needs || []).filter((n) => byId.has(n));
    const d = needs.length ? 1 + Math.max(...needs.map((n) => depthOf(n, seen))) : 0;
    depth.set(id, d);
    return d;
  };
  steps.forEach((st) => depthOf(st.id));
  const rows = new Map();
  const place = new Map();
  for (const st of steps) {
    const col = depth.get(st.id);
    const row = rows.get(col) || 0;
    rows.set(col, row + 1);
    place.set(st.id, { x: 10 + col * (W + GAP_X), y: 10 + row * (H + GAP_Y) });
  }
  const width = 20 + (Math.max(0, ...depth.values()) + 1) * (W + GAP_X);
  const height = 20 + Math.max(1, ...rows.values()) * (H + GAP_Y);
  const svg = s("svg", { class: "graph", width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "workflow steps" },
    s("defs", {}, s("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto" },
      s("path", { d: "M0,0 L10,5 L0,10 z", fill: "#888" }))));
  for (const st of steps) {
    const to = place.get(st.id);
    for (const need of st.needs || []) {
      const from = place.get(need);
      if (from) svg.append(s("path", { d: `M${from.x + W},${from.y + H / 2} C${from.x + W + GAP_X / 2},${from.y + H / 2} ${to.x - GAP_X / 2},${to.y + H / 2} ${to.x},${to.y + H / 2}` }));
    }
  }
  for (const st of steps) {
    const { x, y } = place.get(st.id);
    const run = status.get(st.id);
    const state = run?.status || "pending";
    const box = s("g", { class: `box ${state}`, "data-step": st.id, "data-status": state },
      s("title", {}, `${st.id}: ${st.model}${run?.error ? ` — ${run.error}` : ""}`),
      s("rect", { x, y, width: W, height: H }),
      s("text", { x: x + 8, y: y + 18, "font-weight": "600" }, st.id + (st.for_each ? " (each)" : "")),
      s("text", { x: x + 8, y: y + 35 }, `${state}${run?.cached ? " · cached" : ""} · ${st.model.split("/").pop()}`.slice(0, 28)));
    // A step that ran links to its own request (its result, logs and input).
    svg.append(run?.request_id ? s("a", { href: `#/request/${st.model}/${run.request_id}` }, box) : box);
  }
  return svg;
}
