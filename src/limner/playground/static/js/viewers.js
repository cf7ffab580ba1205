// A viewer for each kind of result: images (with masks over their input), video and audio
// players, 3D meshes (the turntable preview plus a rotatable GLB viewer), and text.
import { h } from "./dom.js";

const SKIP = new Set(["input", "model", "timings", "usage", "cache", "environment"]);

// Every {url, content_type} in a result body, with the key it was found under.
export function filesOf(body, key = "") {
  if (!body || typeof body !== "object") return [];
  if (typeof body.url === "string" && (body.content_type || body.file_size !== undefined)) return [{ key, ...body }];
  if (Array.isArray(body)) return body.flatMap((v) => filesOf(v, key));
  return Object.entries(body).filter(([k]) => !SKIP.has(k) || key).flatMap(([k, v]) => filesOf(v, key ? `${key}.${k}` : k));
}

const kind = (f) => {
  const type = f.content_type || "";
  if (type.startsWith("image/")) return "image";
  if (type.startsWith("video/")) return "video";
  if (type.startsWith("audio/")) return "audio";
  if (type === "model/gltf-binary" || /\.glb(\?|$)/.test(f.url)) return "glb";
  return "other";
};

let modelViewer = null; // loaded on first use: about 1 MB
function glbViewer(file) {
  modelViewer ??= import("/ui/vendor/model-viewer/model-viewer.min.js");
  modelViewer.catch(() => {});
  return h("model-viewer", { src: file.url, "camera-controls": true, "auto-rotate": true, "shadow-intensity": "1", alt: "3D result" });
}

function fileView(f, input) {
  const caption = h("figcaption", {}, `${f.key}${f.width ? ` · ${f.width}×${f.height}` : ""}${f.duration_s ? ` · ${f.duration_s}s` : ""} · `,
    h("a", { href: f.url, download: "" }, "download"));
  switch (kind(f)) {
    case "image":
      if (/mask/.test(f.key) && input?.image) return h("figure", {}, maskOverlay(input.image, f.url), caption);
      return h("figure", {}, h("img.result-image", { src: f.url, alt: f.key }), caption);
    case "video": return h("figure", {}, h("video", { src: f.url, controls: true, loop: true, autoplay: true, muted: true, playsinline: true }), caption);
    case "audio": return h("figure", {}, h("audio", { src: f.url, controls: true }), caption);
    case "glb": return h("figure", { style: "width:100%" }, glbViewer(f), caption);
    default: return h("figure", {}, h("a", { href: f.url, download: "" }, `${f.key} (${f.content_type || "file"})`));
  }
}

// A mask drawn over the image it was made from, with its opacity on a slider.
export function maskOverlay(imageUrl, maskUrl) {
  const mask = h("img.mask", { src: maskUrl, alt: "mask" });
  const opacity = h("input", { type: "range", min: 0, max: 1, step: 0.05, value: 0.5, "aria-label": "mask opacity",
    oninput: () => (mask.style.opacity = opacity.value) });
  return h("div", {}, h("div.overlay", {}, h("img", { src: imageUrl, alt: "input" }), mask), h("div.small", {}, "mask opacity ", opacity));
}

export function resultView(body, input) {
  const files = filesOf(body);
  const texts = Object.entries(body || {}).filter(([k, v]) => typeof v === "string" && /text|output|caption|transcript/.test(k));
  const facts = [body?.seed !== undefined && body?.seed !== null ? `seed ${body.seed}` : null, body?.timings?.inference_s ? `${body.timings.inference_s} s inference` : null,
    body?.cache?.hit ? "cache hit" : null].filter(Boolean).join(" · ");
  return h("div.result-view", {},
    h("div.gallery", {}, files.map((f) => fileView(f, input ?? body?.input))),
    texts.map(([k, v]) => h("div", {}, h("h2", {}, k), h("pre.text-result", {}, v))),
    facts ? h("p.small.muted", {}, facts) : null,
    h("details", {}, h("summary.small", {}, "result JSON"), h("pre", {}, JSON.stringify(body, null, 2))),
  );
}

// Two image results side by side, with what differs in their inputs.
export function compareView(a, b) {
  const first = (r) => filesOf(r.result).find((f) => kind(f) === "image");
  const changed = Object.keys({ ...a.result.input, ...b.result.input })
    .filter((k) => JSON.stringify(a.result.input?.[k]) !== JSON.stringify(b.result.input?.[k]))
    .map((k) => `${k}: ${JSON.stringify(a.result.input?.[k])} → ${JSON.stringify(b.result.input?.[k])}`);
  const side = (r) => h("figure", {}, h("img", { src: first(r)?.url, alt: r.id }), h("figcaption", {}, `${r.id.slice(0, 8)} · seed ${r.result.seed}`));
  return h("div.compare-view", {}, h("div.compare", {}, side(a), side(b)),
    h("p.small.muted", {}, changed.length ? `differs in ${changed.join("; ")}` : "same input"));
}
