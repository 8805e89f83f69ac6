// Entry point: a tiny history-API router, the session sidebar and the session header.
// Views live in views/*.js and receive a SessionPage that owns the header counters.

import { api, errorText, onTokenNeeded } from "./api.js";
import { clear, formatCost, formatTokens, h, humanize, render, truncate } from "./dom.js";
import { badgeKind, statusRank } from "./status.js";
import { confirmDialog, notice, toast, tokenDialog } from "./ui.js";
import { renderStart } from "./views/start.js";
import { renderCouncil } from "./views/council.js";
import { renderRun } from "./views/run.js";
import { renderResults } from "./views/results.js";
import { renderVerdict } from "./views/verdict.js";

const root = document.getElementById("app");
const viewEl = document.getElementById("view");
const sidebar = document.getElementById("sidebar");
const sidebarToggle = document.getElementById("sidebar-toggle");

export const config = {
  allowedExtensions: (root.dataset.allowedExtensions || "").split(",").filter(Boolean),
  maxUploadMb: Number(root.dataset.maxUploadMb) || 20,
};

const VIEWS = [
  { key: "council", label: "Council", minRank: 0, render: renderCouncil },
  { key: "run", label: "Execute & review", minRank: 2, render: renderRun },
  { key: "results", label: "Results", minRank: 4, render: renderResults },
  { key: "verdict", label: "Verdict", minRank: 6, render: renderVerdict },
];

function defaultView(status) {
  const rank = statusRank(status);
  if (rank <= 2) return "council";
  if (rank <= 5) return "run";
  if (rank === 6) return "results";
  return "verdict";
}

// --------------------------------------------------------------------------- routing

let generation = 0;
let cleanups = [];

function parseLocation() {
  const match = /^\/s\/([^/]+)(?:\/([a-z]+))?\/?$/.exec(window.location.pathname);
  if (!match) return { sessionId: null, view: null };
  return { sessionId: decodeURIComponent(match[1]), view: match[2] || null };
}

/** Go to an in-app path without reloading; the back button works as usual. */
export function navigate(path, { replace = false, state = null } = {}) {
  if (replace) window.history.replaceState(state, "", path);
  else window.history.pushState(state, "", path);
  route();
}

function runCleanups() {
  for (const fn of cleanups) {
    try {
      fn();
    } catch {
      /* a view's cleanup must not break navigation */
    }
  }
  cleanups = [];
}

async function route() {
  runCleanups();
  generation += 1;
  const gen = generation;
  closeSidebar();
  const { sessionId, view } = parseLocation();
  highlightSession(sessionId);
  clear(viewEl);
  if (!sessionId) {
    document.title = "Agent Council";
    renderStart(viewEl, { config, navigate, refreshSessions, isCurrent: () => gen === generation });
  } else {
    await renderSession(sessionId, view, gen);
  }
  // After an in-app navigation, move focus to the new page's heading (as a page load
  // would reset it); on the first load leave it alone so Tab reaches the skip link.
  const heading = viewEl.querySelector("h1");
  if (heading && gen === generation && gen > 1 && window.history.state?.focus !== false) {
    heading.setAttribute("tabindex", "-1");
    heading.focus({ preventScroll: true });
  }
}

document.addEventListener("click", (event) => {
  const link = event.target.closest("a[href]");
  if (!link || event.defaultPrevented || event.button !== 0) return;
  if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  if (link.target || link.hasAttribute("download") || link.origin !== window.location.origin) return;
  if (!(link.pathname === "/" || link.pathname.startsWith("/s/"))) return;
  // In-page anchors (the skip link, markdown "#..." links) keep their native behaviour.
  if (link.hash && link.pathname === window.location.pathname) return;
  event.preventDefault();
  if (link.pathname + link.search !== window.location.pathname + window.location.search) {
    navigate(link.pathname + link.search);
  } else {
    route();
  }
});

window.addEventListener("popstate", () => route());

// --------------------------------------------------------------------------- session page

/** What a view gets: the session's data, the header, navigation and polling helpers. */
class SessionPage {
  constructor(id, gen, summary, status) {
    this.id = id;
    this.gen = gen;
    this.summary = summary;
    this.status = status;
    this.header = null;
  }

  isCurrent() {
    return this.gen === generation;
  }

  onLeave(fn) {
    cleanups.push(fn);
  }

  path(view) {
    return `/s/${encodeURIComponent(this.id)}${view ? `/${view}` : ""}`;
  }

  go(view) {
    if (this.isCurrent()) navigate(this.path(view));
  }

  /** Fetch /status and update the header; returns the status (or null after leaving). */
  async refreshStatus() {
    const status = await api.status(this.id);
    if (!this.isCurrent()) return null;
    this.applyStatus(status);
    return status;
  }

  async refreshSummary() {
    const summary = await api.summary(this.id);
    if (this.isCurrent()) this.summary = summary;
    return summary;
  }

  applyStatus(status) {
    const before = this.status && this.status.status;
    this.status = status;
    updateHeader(this);
    if (before !== status.status) refreshSessions();
  }

  /** Poll fn every `ms` until it returns false or the person leaves the page. */
  poll(fn, ms = 1500) {
    let timer = null;
    let stopped = false;
    const stop = () => {
      stopped = true;
      if (timer) clearTimeout(timer);
    };
    const tick = async () => {
      if (stopped || !this.isCurrent()) return;
      let again = true;
      try {
        again = await fn();
      } catch (err) {
        toast(`Could not refresh: ${errorText(err)}`, "error");
      }
      if (again !== false && !stopped && this.isCurrent()) timer = setTimeout(tick, ms);
    };
    this.onLeave(stop);
    tick();
    return stop;
  }
}

function counters(page) {
  const tokens = (page.status && page.status.tokens) || (page.summary && page.summary.tokens) || {};
  return { tokens, cost: tokens.total_cost_usd };
}

function buildHeader(page, currentView) {
  const question = (page.summary && page.summary.question) || "";
  const statusBadge = h("span", { class: "badge", "data-testid": "session-status" });
  const stepText = h("span", { class: "step-text", "data-testid": "session-step" });
  const tokenValue = h("span", { class: "counter-value", "data-testid": "token-counter" });
  const tokenDetail = h("span", { class: "counter-detail" });
  const costValue = h("span", { class: "counter-value", "data-testid": "cost-counter" });
  const nav = h("nav", { class: "stepper", "aria-label": "Session steps" });
  const el = h(
    "header",
    { class: "session-header" },
    h(
      "div",
      { class: "session-title" },
      h("p", { class: "eyebrow" }, "Question"),
      h("h1", { class: "question", "data-testid": "session-question", title: question }, question || "Untitled session"),
      h("p", { class: "session-meta" }, statusBadge, " ", stepText),
    ),
    h(
      "div",
      { class: "counters", role: "status", "aria-live": "off", "aria-label": "Running cost and tokens" },
      h("div", { class: "counter" }, h("span", { class: "counter-label" }, "Tokens"), tokenValue, tokenDetail),
      h("div", { class: "counter" }, h("span", { class: "counter-label" }, "Cost"), costValue),
    ),
    nav,
  );
  page.header = { el, statusBadge, stepText, tokenValue, tokenDetail, costValue, nav, currentView };
  updateHeader(page);
  return el;
}

function updateHeader(page) {
  const header = page.header;
  if (!header) return;
  const state = (page.status && page.status.status) || (page.summary && page.summary.status) || "idle";
  const step = (page.status && page.status.current_step) || (page.summary && page.summary.current_step) || "";
  header.statusBadge.textContent = humanize(state);
  header.statusBadge.className = `badge badge-${badgeKind(state)}`;
  header.stepText.textContent = step ? `Step: ${humanize(step)}` : "";
  const { tokens, cost } = counters(page);
  header.tokenValue.textContent = formatTokens(tokens.total_tokens);
  header.tokenDetail.textContent = `in ${formatTokens(tokens.input_tokens)} · out ${formatTokens(tokens.output_tokens)}`;
  header.costValue.textContent = formatCost(cost);
  const rank = statusRank(state);
  const hasCouncil = Boolean(page.summary && page.summary.council_config);
  render(
    header.nav,
    h(
      "ol",
      null,
      VIEWS.map((view, index) => {
        const open = rank >= view.minRank || (view.key === "run" && hasCouncil);
        const label = [h("span", { class: "step-number", "aria-hidden": "true" }, String(index + 1)), view.label];
        const item = open
          ? h("a", { href: page.path(view.key), "aria-current": view.key === header.currentView ? "step" : null }, label)
          : h("span", { class: "step-disabled", "aria-disabled": "true", title: "Not reached yet" }, label);
        return h("li", { class: view.key === header.currentView ? "current" : null }, item);
      }),
    ),
  );
}

async function renderSession(id, requestedView, gen) {
  render(viewEl, h("p", { class: "loading", role: "status" }, "Loading session…"));
  let summary;
  let status;
  try {
    [summary, status] = await Promise.all([api.summary(id), api.status(id)]);
  } catch (err) {
    if (gen !== generation) return;
    const missing = err && (err.status === 404 || err.status === 410);
    render(
      viewEl,
      h("h1", null, missing ? "Session not found" : "Could not load the session"),
      notice("error", missing ? "It may have been deleted, or the link is wrong." : errorText(err)),
      h("p", null, h("a", { href: "/", class: "button" }, "Start a new question")),
    );
    return;
  }
  if (gen !== generation) return;
  const page = new SessionPage(id, gen, summary, status);
  const view = VIEWS.find((v) => v.key === requestedView) ? requestedView : defaultView(status.status);
  if (!requestedView) window.history.replaceState({ focus: false }, "", page.path(view));
  document.title = `${truncate(summary.question || "Session", 60)} · Agent Council`;
  const body = h("div", { class: "session-body" });
  render(viewEl, buildHeader(page, view), body);
  const spec = VIEWS.find((v) => v.key === view);
  try {
    await spec.render(page, body);
  } catch (err) {
    if (page.isCurrent()) render(body, notice("error", errorText(err)));
  }
}

// --------------------------------------------------------------------------- sidebar

const listEl = document.getElementById("session-list");
const sidebarNote = document.getElementById("sessions-note");
let sessionsLoading = null;

function highlightSession(sessionId) {
  for (const link of listEl.querySelectorAll("a.session-link")) {
    if (link.dataset.sessionId === sessionId) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

/** Reload the caller's sessions, newest first. */
export async function refreshSessions() {
  if (sessionsLoading) return sessionsLoading;
  sessionsLoading = (async () => {
    try {
      const data = await api.listSessions();
      const sessions = [...((data && data.sessions) || [])].sort((a, b) =>
        String(b.created_at || "").localeCompare(String(a.created_at || "")),
      );
      // Re-rendering replaces the buttons: keep keyboard focus on the same control.
      const active = document.activeElement;
      const keep = active && listEl.contains(active) ? focusKey(active) : null;
      render(listEl, sessions.map(sessionItem));
      if (keep) focusByKey(keep);
      sidebarNote.textContent = sessions.length ? "" : "No sessions yet. Ask a question to start one.";
      highlightSession(parseLocation().sessionId);
    } catch (err) {
      sidebarNote.textContent = `Could not load sessions: ${errorText(err)}`;
    } finally {
      sessionsLoading = null;
    }
  })();
  return sessionsLoading;
}

function focusKey(el) {
  const item = el.closest("li.session-item");
  if (!item) return null;
  return { id: item.dataset.sessionId, part: el.classList.contains("delete-session") ? ".delete-session" : ".session-link" };
}

function focusByKey(key) {
  const selector = `li.session-item[data-session-id="${CSS.escape(key.id)}"] ${key.part}`;
  const el = listEl.querySelector(selector);
  if (el) el.focus();
  return el;
}

function sessionItem(session) {
  const id = session.session_id;
  const question = session.question || "Untitled session";
  const remove = h(
    "button",
    {
      type: "button",
      class: "icon-button delete-session",
      "aria-label": `Delete session: ${truncate(question, 60)}`,
      title: "Delete session",
      onclick: () => deleteSession(id, question),
    },
    h("span", { "aria-hidden": "true" }, "×"),
  );
  return h(
    "li",
    { class: "session-item", dataset: { sessionId: id } },
    h(
      "a",
      { class: "session-link", href: `/s/${encodeURIComponent(id)}`, dataset: { sessionId: id }, title: question },
      h("span", { class: "session-question" }, truncate(question, 90)),
      h(
        "span",
        { class: "session-info" },
        h("span", { class: `badge badge-${badgeKind(session.status)}` }, humanize(session.status || "idle")),
        h("span", null, humanize(session.current_step || "")),
        h("span", { class: "session-cost" }, formatCost(session.last_cost_usd)),
      ),
    ),
    remove,
  );
}

async function deleteSession(id, question) {
  const ok = await confirmDialog({
    title: "Delete this session?",
    text: `“${truncate(question, 120)}” and its results will be removed from your list.`,
    ok: "Delete",
    returnFocus: () => focusByKey({ id, part: ".delete-session" }),
  });
  if (!ok) return;
  try {
    await api.deleteSession(id);
    toast("Session deleted");
    if (parseLocation().sessionId === id) navigate("/");
    await refreshSessions();
  } catch (err) {
    toast(`Could not delete: ${errorText(err)}`, "error");
  }
}

function closeSidebar() {
  sidebar.classList.remove("open");
  sidebarToggle.setAttribute("aria-expanded", "false");
}

sidebarToggle.addEventListener("click", () => {
  const open = !sidebar.classList.contains("open");
  sidebar.classList.toggle("open", open);
  sidebarToggle.setAttribute("aria-expanded", String(open));
  if (open) (sidebar.querySelector("a, button") || sidebar).focus();
});

// The phone drawer closes on a click outside it, like any overlay.
document.addEventListener("click", (event) => {
  if (!sidebar.classList.contains("open")) return;
  if (sidebar.contains(event.target) || sidebarToggle.contains(event.target)) return;
  if (document.querySelector("dialog[open]")) return;
  closeSidebar();
});

document.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && sidebar.classList.contains("open")) {
    closeSidebar();
    sidebarToggle.focus();
  }
});

document.getElementById("sessions-refresh").addEventListener("click", () => refreshSessions());

onTokenNeeded(tokenDialog);

refreshSessions();
route();
