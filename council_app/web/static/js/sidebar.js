// The session sidebar: the caller's sessions, newest first, each with its date and status;
// a search box over the questions; infinite scroll over the API's pages (its cursor when
// it sends one, else offsets); delete with confirmation; the phone drawer.

import { api, errorText } from "./api.js";
import { formatCost, formatWhen, h, render, truncate } from "./dom.js";
import { navigate, onRoute, parseLocation } from "./router.js";
import { describeSession } from "./status.js";
import { confirmDialog, toast } from "./ui.js";

const PAGE_SIZE = 30;
const SEARCH_DELAY_MS = 250;

const sidebar = document.getElementById("sidebar");
const sidebarToggle = document.getElementById("sidebar-toggle");
const listEl = document.getElementById("session-list");
const sidebarNote = document.getElementById("sessions-note");
const searchInput = document.getElementById("session-search");
const moreButton = document.getElementById("sessions-more");

let rows = []; // the rows loaded so far, in API order
let next = { cursor: null, offset: 0, more: false };
let query = "";
let loading = null;
let reloadWanted = false;
let observer = null;
// The open session's status as the page knows it (fresher than the list, and with lanes).
const live = new Map();

function matches(row) {
  if (!query) return true;
  return String(row.question || "").toLowerCase().includes(query.toLowerCase());
}

function highlightSession(sessionId) {
  for (const link of listEl.querySelectorAll("a.session-link")) {
    if (link.dataset.sessionId === sessionId) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

async function loadPage(reset) {
  const params = { limit: PAGE_SIZE, q: query || undefined };
  if (!reset && next.cursor) params.cursor = next.cursor;
  else params.offset = reset ? 0 : next.offset;
  const data = await api.listSessions(params);
  const page = (data && data.sessions) || [];
  const fresh = reset ? [] : rows;
  const seen = new Set(fresh.map((r) => r.session_id));
  rows = [...fresh, ...page.filter((r) => !seen.has(r.session_id))];
  const hasCursor = data && Object.prototype.hasOwnProperty.call(data, "next_cursor");
  next = {
    cursor: hasCursor ? data.next_cursor : null,
    offset: (reset ? 0 : next.offset) + page.length,
    more: hasCursor ? Boolean(data.next_cursor) : page.length >= PAGE_SIZE,
  };
}

function draw() {
  const shown = rows.filter(matches);
  // Re-rendering replaces the buttons: keep keyboard focus on the same control.
  const active = document.activeElement;
  const keep = active && listEl.contains(active) ? focusKey(active) : null;
  render(listEl, shown.map(sessionItem));
  if (keep) focusByKey(keep);
  if (shown.length) sidebarNote.textContent = "";
  else if (query) sidebarNote.textContent = next.more ? "No match yet; loading more…" : `No session matches “${truncate(query, 40)}”.`;
  else sidebarNote.textContent = "No sessions yet. Ask a question to start one.";
  moreButton.hidden = !next.more;
  // Observing afresh reports the sentinel's visibility again: a short page fills up.
  if (observer && next.more) {
    observer.unobserve(moreButton);
    observer.observe(moreButton);
  }
  highlightSession(parseLocation().sessionId);
}

async function load(reset) {
  if (loading) {
    if (reset) reloadWanted = true;
    return loading;
  }
  loading = (async () => {
    try {
      await loadPage(reset);
      draw();
    } catch (err) {
      sidebarNote.textContent = `Could not load sessions: ${errorText(err)}`;
    } finally {
      loading = null;
    }
  })();
  await loading;
  if (reloadWanted) {
    reloadWanted = false;
    return load(true);
  }
  return undefined;
}

/** Reload the list from the first page (after a create, a delete or a status change). */
export function refreshSessions() {
  return load(true);
}

/** Load the next page, if there is one. */
export function loadMoreSessions() {
  if (!next.more) return Promise.resolve();
  return load(false);
}

/** The open page tells the sidebar the status it shows, so both say the same. */
export function showLiveStatus(sessionId, status, extra = {}) {
  live.set(sessionId, status);
  const row = rows.find((r) => r.session_id === sessionId);
  if (!row) return;
  Object.assign(row, { status: status.status }, extra);
  const item = listEl.querySelector(`li.session-item[data-session-id="${CSS.escape(sessionId)}"]`);
  if (!item) return;
  const fresh = sessionItem(row);
  // Redraw only on change: a poll every second must not steal keyboard focus.
  const badge = (el) => el.querySelector("[data-testid=sidebar-status]")?.className;
  if (fresh.textContent === item.textContent && badge(fresh) === badge(item)) return;
  const keep = item.contains(document.activeElement) ? focusKey(document.activeElement) : null;
  item.replaceWith(fresh);
  if (keep) focusByKey(keep);
  highlightSession(parseLocation().sessionId);
}

function focusKey(el) {
  const item = el.closest("li.session-item");
  if (!item) return null;
  return { id: item.dataset.sessionId, part: el.classList.contains("delete-session") ? ".delete-session" : ".session-link" };
}

function focusByKey(key) {
  const el = listEl.querySelector(`li.session-item[data-session-id="${CSS.escape(key.id)}"] ${key.part}`);
  if (el) el.focus();
  return el;
}

function sessionItem(session) {
  const id = session.session_id;
  const question = session.question || "Untitled session";
  const info = describeSession(live.get(id) || { status: session.status });
  const when = session.created_at;
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
        h("span", { class: `badge badge-${info.kind}`, "data-testid": "sidebar-status" }, info.label),
        when ? h("time", { class: "session-date", datetime: String(when), "data-testid": "sidebar-date" }, formatWhen(when)) : null,
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
    rows = rows.filter((r) => r.session_id !== id);
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

/** Wire the sidebar's controls; call once. */
export function startSidebar() {
  sidebarToggle.addEventListener("click", () => {
    const open = !sidebar.classList.contains("open");
    sidebar.classList.toggle("open", open);
    sidebarToggle.setAttribute("aria-expanded", String(open));
    if (open) (sidebar.querySelector("input, a, button") || sidebar).focus();
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

  let timer = null;
  searchInput.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      query = searchInput.value.trim();
      draw(); // filter what is loaded at once, then ask the server
      refreshSessions();
    }, SEARCH_DELAY_MS);
  });

  moreButton.addEventListener("click", () => loadMoreSessions());
  // Infinite scroll: the "Load more" button is also the sentinel.
  if ("IntersectionObserver" in window) {
    observer = new IntersectionObserver(
      (entries) => {
        if (entries.some((e) => e.isIntersecting) && !moreButton.hidden && !loading) loadMoreSessions();
      },
      { root: sidebar, rootMargin: "0px 0px 120px 0px" },
    );
    observer.observe(moreButton);
  }

  onRoute(({ sessionId }) => {
    // Only the open page keeps its entry fresh; the others go back to what the list says.
    for (const id of [...live.keys()]) if (id !== sessionId) live.delete(id);
    closeSidebar();
    highlightSession(sessionId);
  });
  return refreshSessions();
}
