// Entry point: wires the router, the sidebar and the token prompt, and draws each location
// (the start page, or a session page from page.js).

import { api, onTokenNeeded } from "./api.js";
import { clear } from "./dom.js";
import { offlineBanner, providerOffline, renderSession } from "./page.js";
import { currentGeneration, navigate, startRouter } from "./router.js";
import { refreshSessions, startSidebar } from "./sidebar.js";
import { tokenDialog } from "./ui.js";
import { renderStart } from "./views/start.js";

const root = document.getElementById("app");
const viewEl = document.getElementById("view");

export const config = {
  allowedExtensions: (root.dataset.allowedExtensions || "").split(",").filter(Boolean),
  maxUploadMb: Number(root.dataset.maxUploadMb) || 20,
};

let provider = null;
/** Which provider answers: /api/models says so to every user (/api/health's detail may be
 * for operators only); older servers only have /api/health. Fetched once. */
async function providerIsOffline() {
  if (!provider) {
    provider = api
      .models()
      .catch(() => api.health())
      .then((data) => data && data.provider)
      .catch(() => null);
  }
  return providerOffline(await provider);
}

async function drawLocation({ sessionId, view }, gen) {
  clear(viewEl);
  if (!sessionId) {
    document.title = "Agent Council";
    renderStart(viewEl, { config, navigate, refreshSessions, isCurrent: () => gen === currentGeneration() });
    if ((await providerIsOffline()) && gen === currentGeneration()) viewEl.prepend(offlineBanner());
    return;
  }
  await renderSession(viewEl, sessionId, view, gen);
}

// "Save as PDF": closed <details> would print as their one-line summary; open them for
// the printout and close them again after.
let openedForPrint = [];
window.addEventListener("beforeprint", () => {
  openedForPrint = [...document.querySelectorAll("#view details:not([open])")];
  for (const d of openedForPrint) d.open = true;
});
window.addEventListener("afterprint", () => {
  for (const d of openedForPrint) d.open = false;
  openedForPrint = [];
});

onTokenNeeded(tokenDialog);
startSidebar();
startRouter(drawLocation);
