// A form generated from a model's input JSON Schema (GET /v1/models): sliders and number fields
// within the limits, selects for enums, file fields that upload through POST /v1/files, a seed
// with a dice button, and the optional fields folded away under "Advanced".
import { upload } from "./api.js";
import { h, dieIcon } from "./dom.js";

const FILE_NAMES = /(^|_)(image|images|mask|audio|video|file|zip|melody|reference)(_|$)/;
const MAX_SEED = 4294967295;

export const randomSeed = () => Math.floor(Math.random() * MAX_SEED);

// The schema of one property with $ref followed and `anyOf: [X, null]` unwrapped.
function resolve(prop, defs) {
  let p = prop;
  if (p.$ref) p = defs[p.$ref.split("/").pop()] || {};
  if (p.anyOf) {
    const branches = p.anyOf.filter((b) => b.type !== "null");
    const nullable = branches.length < p.anyOf.length;
    const main = branches.find((b) => b.type === "string") || branches[0] || {};
    const rest = { ...p };
    delete rest.anyOf;
    return { ...resolve(main, defs), ...rest, nullable, union: branches.length > 1 };
  }
  return p;
}

function kindOf(name, p) {
  if (name === "seed") return "seed";
  if (p.enum) return "enum";
  if (p.type === "boolean") return "boolean";
  if (p.type === "integer" || p.type === "number") return "number";
  if (p.type === "array" && p.items?.enum) return "multi";
  if (p.type === "string" && (p.format === "uri" || p.contentMediaType || FILE_NAMES.test(name))) return "file";
  if (p.type === "string") return "text";
  return "json";
}

export function isPrompt(name) { return /prompt|^text$|^scene$/.test(name); }

export function buildForm(schema, { values = {}, onSubmit } = {}) {
  const defs = schema.$defs || {};
  const required = new Set(schema.required || []);
  const fields = new Map();
  const main = h("div.main-fields");
  const advancedBody = h("div");
  const advanced = h("details.advanced", { id: "advanced" }, h("summary", {}, "Advanced"), advancedBody);
  const formError = h("p.error", { id: "form-error" });
  const submit = h("button.primary", { type: "submit", id: "submit" }, "Run");
  const form = h("form.schema", { novalidate: true, id: "model-form" }, main, advanced, formError, submit);

  for (const [name, raw] of Object.entries(schema.properties || {})) {
    if (raw.readOnly) continue;
    const p = resolve(raw, defs);
    const field = makeField(name, p, required.has(name));
    fields.set(name, field);
    const start = name in values ? values[name] : p.default;
    if (start !== undefined && start !== null) field.set(start);
    const primary = required.has(name) || isPrompt(name) || name === "seed";
    (primary ? main : advancedBody).append(field.el);
  }
  if (!advancedBody.children.length) advanced.remove();

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    onSubmit?.(collect());
  });

  function collect() {
    const body = {};
    for (const [name, field] of fields) {
      const value = field.get();
      if (value !== undefined) body[name] = value;
    }
    return body;
  }

  function clearErrors() {
    formError.textContent = "";
    for (const field of fields.values()) field.error("");
  }

  // A 422's detail names its field as loc ["body", name, ...]: shown beside that field.
  function showError(error) {
    clearErrors();
    let placed = false;
    for (const d of error.detail || []) {
      const loc = d.loc || [];
      const field = loc[0] === "body" ? fields.get(String(loc[1])) : null;
      if (field) { field.error(d.msg); placed = true; if (!field.el.closest("details")?.open) field.el.closest("details")?.setAttribute("open", ""); }
    }
    if (!placed) formError.textContent = error.message;
  }

  return { el: form, collect, showError, clearErrors, submit, set: (name, v) => fields.get(name)?.set(v) };
}

function makeField(name, p, isRequired) {
  const kind = kindOf(name, p);
  const id = `field-${name}`;
  const label = h("label.name", { for: id }, p.title || name, isRequired ? " *" : "");
  const help = p.description ? h("div.help", {}, p.description) : null;
  const err = h("p.error.field-error", { id: `error-${name}` });
  const wrap = h("div.field", { dataset: { name, kind } });
  const control = CONTROLS[kind](name, p, id);
  wrap.append(label, control.el, help || "", err);
  return {
    el: wrap,
    get: control.get,
    set: control.set,
    error(msg) { err.textContent = msg; wrap.classList.toggle("invalid", Boolean(msg)); },
  };
}

const CONTROLS = {
  text(name, p, id) {
    const long = isPrompt(name) || (p.maxLength || 0) > 200;
    const el = long ? h("textarea", { id, name, rows: 3 }) : h("input", { id, name, type: "text" });
    if (p.maxLength) el.maxLength = p.maxLength;
    return { el, get: () => (el.value === "" ? undefined : el.value), set: (v) => (el.value = v) };
  },
  number(name, p, id) {
    const step = p.multipleOf ?? (p.type === "integer" ? 1 : "any");
    const min = p.minimum ?? p.exclusiveMinimum;
    const max = p.maximum ?? p.exclusiveMaximum;
    const num = h("input", { id, name, type: "number", step, min, max });
    const row = h("div.row", {});
    if (min !== undefined && max !== undefined) {
      const range = h("input", { type: "range", min, max, step: step === "any" ? (max - min) / 100 : step, "aria-label": `${name} slider` });
      range.addEventListener("input", () => (num.value = range.value));
      num.addEventListener("input", () => (range.value = num.value));
      row.append(range);
      num._range = range;
    }
    row.append(num);
    const parse = () => (num.value === "" ? undefined : p.type === "integer" ? parseInt(num.value, 10) : parseFloat(num.value));
    return { el: row, get: parse, set: (v) => { num.value = v; if (num._range) num._range.value = v; } };
  },
  seed(name, p, id) {
    const num = h("input", { id, name, type: "number", min: 0, max: MAX_SEED, step: 1, placeholder: "random" });
    const dice = h("button", { type: "button", id: "dice", title: "a random seed", "aria-label": "random seed", onclick: () => (num.value = randomSeed()) }, dieIcon());
    return { el: h("div.row", {}, num, dice), get: () => (num.value === "" ? undefined : parseInt(num.value, 10)), set: (v) => (num.value = v) };
  },
  enum(name, p, id) {
    const el = h("select", { id, name }, p.nullable ? h("option", { value: "" }, "—") : null, p.enum.map((v) => h("option", { value: v }, v)));
    const typed = (v) => p.enum.find((e) => String(e) === v);
    return { el, get: () => (el.value === "" ? undefined : typed(el.value)), set: (v) => (el.value = v) };
  },
  // A nullable boolean left alone is not sent (the server's default applies). `preview` (step
  // previews) starts on: the playground is where people watch them.
  boolean(name, p, id) {
    const el = h("input", { id, name, type: "checkbox" });
    let touched = !p.nullable || name === "preview";
    if (name === "preview") el.checked = true;
    el.addEventListener("change", () => (touched = true));
    const set = (v) => { el.checked = Boolean(v); touched = true; };
    return { el: h("div.row", {}, el), get: () => (touched ? el.checked : undefined), set };
  },
  multi(name, p, id) {
    const boxes = p.items.enum.map((v) => h("input", { type: "checkbox", value: v, name }));
    const el = h("div.row", { id }, boxes.map((b) => h("label", {}, b, ` ${b.value}`)));
    const get = () => { const on = boxes.filter((b) => b.checked).map((b) => b.value); return on.length ? on : undefined; };
    return { el, get, set: (vs) => boxes.forEach((b) => (b.checked = (vs || []).includes(b.value))) };
  },
  json(name, p, id) {
    const el = h("textarea.json", { id, name, rows: 2, placeholder: p.type === "array" ? "[ … ] (JSON)" : "JSON" });
    const get = () => {
      if (el.value.trim() === "") return undefined;
      try { return JSON.parse(el.value); } catch { return el.value; } // the server names the field
    };
    const set = (v) => { el.value = Array.isArray(v) && v.length === 0 ? "" : JSON.stringify(v); };
    return { el, get, set };
  },
  // A URL field with a file picker, drag and drop and paste: the file goes to POST /v1/files and
  // its URL into the field.
  file(name, p, id) {
    const url = h("input", { id, name, type: "url", placeholder: "https://… or drop a file" });
    const picker = h("input", { type: "file", id: `${id}-file`, "aria-label": `${name} file` });
    const preview = h("img.preview", { alt: "", hidden: true });
    const state = h("div.small.upload-state");
    const drop = h("div.drop", { tabindex: 0, title: "drop or paste a file here" }, "drop, paste or ", picker, state, preview);
    const show = () => {
      const v = url.value;
      preview.hidden = !v || !/^(data:image|https?:)/.test(v);
      if (!preview.hidden) preview.src = v;
    };
    async function send(file) {
      if (!file) return;
      state.textContent = `uploading ${file.name || "file"}…`;
      try {
        const stored = await upload(file);
        url.value = stored.url;
        state.textContent = `uploaded ${stored.content_type || ""} (${stored.file_size ?? file.size} bytes)`;
        show();
        url.dispatchEvent(new Event("input", { bubbles: true }));
      } catch (error) {
        state.textContent = "";
        url.closest(".field")?.querySelector(".field-error")?.replaceChildren(error.message);
      }
    }
    picker.addEventListener("change", () => send(picker.files[0]));
    drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
    drop.addEventListener("dragleave", () => drop.classList.remove("over"));
    drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); send(e.dataTransfer.files[0]); });
    const paste = (e) => { const f = [...(e.clipboardData?.files || [])][0]; if (f) { e.preventDefault(); send(f); } };
    drop.addEventListener("paste", paste);
    url.addEventListener("paste", paste);
    url.addEventListener("change", show);
    return { el: h("div", {}, url, drop), get: () => (url.value === "" ? undefined : url.value), set: (v) => { url.value = v; show(); } };
  },
};
