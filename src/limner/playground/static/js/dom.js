// A tiny element builder: h("div.card", {onclick}, child, "text", ...).
export function h(tag, attrs = {}, ...children) {
  const [name, ...classes] = tag.split(".");
  const el = document.createElement(name || "div");
  if (classes.length) el.className = classes.join(" ");
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k in el && typeof v !== "string") el[k] = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

const SVG = "http://www.w3.org/2000/svg";
export function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  for (const child of children.flat()) el.append(child instanceof Node ? child : String(child));
  return el;
}

export const when = (t) => (t ? new Date(t * 1000).toLocaleString() : "");
export const badge = (text, kind = text) => h(`span.badge.${kind}`, {}, text);

export function errorBox(error) {
  return h("p.error", { role: "alert" }, error?.message || String(error));
}

export async function copy(text, button) {
  try { await navigator.clipboard.writeText(text); } catch { /* not allowed here: the text is on screen */ }
  if (button) { const was = button.textContent; button.textContent = "copied"; setTimeout(() => (button.textContent = was), 1200); }
}

// replaceChildren without the nulls (the DOM would write them as the text "null").
export function fill(el, ...children) {
  el.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return el;
}

// A die (for the seed's "random" button), drawn so that it shows without an emoji font.
export function dieIcon() {
  const dot = (cx, cy) => s("circle", { cx, cy, r: 1.6, fill: "currentColor" });
  return s("svg", { width: 18, height: 18, viewBox: "0 0 20 20", "aria-hidden": "true" },
    s("rect", { x: 1.5, y: 1.5, width: 17, height: 17, rx: 4, fill: "none", stroke: "currentColor", "stroke-width": 1.6 }),
    dot(6, 6), dot(14, 6), dot(10, 10), dot(6, 14), dot(14, 14));
}
