// A LoRA training run: its loss curve (from the progress while it runs, the result's
// loss_curve once done) and each checkpoint's validation images.
import { h, s } from "./dom.js";

export function lossCurve(points, width = 420, height = 160) {
  const svg = s("svg", { class: "curve", width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "loss curve" });
  if (points.length < 2) return svg;
  const xs = points.map((p) => p.step), ys = points.map((p) => p.loss);
  const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  const px = (x) => 36 + ((x - x0) / (x1 - x0 || 1)) * (width - 46);
  const py = (y) => 10 + (1 - (y - y0) / (y1 - y0 || 1)) * (height - 30);
  svg.append(s("line", { x1: 36, y1: height - 20, x2: width - 10, y2: height - 20 }),
    s("text", { x: 2, y: 14 }, y1.toPrecision(3)), s("text", { x: 2, y: height - 22 }, y0.toPrecision(3)),
    s("text", { x: width - 60, y: height - 4 }, `step ${x1}`),
    s("path", { d: points.map((p, i) => `${i ? "L" : "M"}${px(p.step).toFixed(1)},${py(p.loss).toFixed(1)}`).join(" ") }));
  return svg;
}

export function trainingView() {
  const seen = new Map(); // step -> loss, from progress updates
  const curve = h("div.loss-curve");
  const checkpoints = h("div.checkpoints");
  const el = h("div.training", {}, h("h2", {}, "Loss"), curve, h("h2", {}, "Checkpoints"), checkpoints);
  return {
    el,
    update(status, result) {
      const p = status.progress || {};
      if (p.stage === "training" && typeof p.loss === "number") seen.set(p.step, p.loss);
      const points = result?.loss_curve || [...seen].map(([step, loss]) => ({ step, loss })).sort((a, b) => a.step - b.step);
      curve.replaceChildren(lossCurve(points));
      const made = status.checkpoints || result?.checkpoints || [];
      checkpoints.replaceChildren(...made.map((c) => h("div.checkpoint", {},
        h("p.small", {}, `step ${c.step} · loss ${typeof c.loss === "number" ? c.loss.toFixed(4) : "?"}`, " · ", h("a", { href: c.url, download: "" }, "weights")),
        h("div.gallery", {}, (c.validation_images || []).map((v) => h("img", { src: v.url, alt: `step ${c.step}` }))))));
    },
  };
}
