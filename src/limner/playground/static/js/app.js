// The page: hash routes to one module per page, and the API key prompt.
import { api, models, session } from "./api.js";
import { h, errorBox } from "./dom.js";
import * as modelsPage from "./models.js";
import * as modelPage from "./model.js";
import * as historyPage from "./history.js";
import * as requestPage from "./request.js";
import * as batchesPage from "./batches.js";

const view = document.getElementById("view");
const ROUTES = [
  [/^#\/?(models)?$/, () => modelsPage.render(view), "models"],
  [/^#\/model\/([^/]+\/[^/]+)$/, (m) => modelPage.render(view, decodeURIComponent(m[1])), "models"],
  [/^#\/history$/, () => historyPage.render(view), "history"],
  [/^#\/request\/([^/]+\/[^/]+)\/([^/]+)$/, (m) => requestPage.render(view, m[1], m[2]), "history"],
  [/^#\/batches$/, () => batchesPage.render(view), "batches"],
];

let leave = null; // the current page's clean-up (stops its streams)

async function route() {
  if (leave) { leave(); leave = null; }
  const hash = location.hash || "#/models";
  for (const [pattern, page, nav] of ROUTES) {
    const match = hash.match(pattern);
    if (!match) continue;
    document.querySelectorAll("[data-nav]").forEach((a) => a.classList.toggle("active", a.dataset.nav === nav));
    view.replaceChildren(h("p.muted", {}, "loading…"));
    try {
      leave = (await page(match)) || null;
    } catch (error) {
      view.replaceChildren(errorBox(error));
    }
    return;
  }
  view.replaceChildren(h("p", {}, "No such page. ", h("a", { href: "#/models" }, "Models")));
}

// Keys: asked for when the server answers 401, kept in sessionStorage for this tab.
const dialog = document.getElementById("key-dialog");
function showKeyState() {
  const state = document.getElementById("key-state");
  state.replaceChildren();
  if (session.key) {
    state.append("API key set", h("button", { id: "key-forget", onclick: () => { session.key = null; location.reload(); } }, "forget"));
  }
}
function askKey() {
  if (!dialog.open) dialog.showModal();
}
window.addEventListener("limner:key-required", askKey);
document.getElementById("key-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const key = document.getElementById("key-input").value.trim();
  const error = document.getElementById("key-error");
  session.key = key;
  try {
    await api("/v1/requests?limit=1");
    error.textContent = "";
    dialog.close();
    showKeyState();
    await models(true);
    route();
  } catch (e) {
    session.key = null;
    error.textContent = e.message;
  }
});

window.addEventListener("hashchange", route);
showKeyState();
route();
