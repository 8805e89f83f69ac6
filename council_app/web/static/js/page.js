// A session page: loads /summary and /status, draws the header (status, costs, steps),
// the offline banner, and hands the body to one view. Views get a SessionPage, which owns
// the status every part of the screen is drawn from (describeSession in status.js).

import { api, errorText } from "./api.js";
import { formatTokens, formatWhen, h, render, truncate } from "./dom.js";
import { costText, costTable } from "./costs.js";
import { currentGeneration, navigate, onLeave } from "./router.js";
import { refreshSessions, showLiveStatus } from "./sidebar.js";
import { describeSession, statusRank } from "./status.js";
import { notice, toast } from "./ui.js";
import { renderCouncil } from "./views/council.js";
import { renderResults } from "./views/results.js";
import { renderRun } from "./views/run.js";
import { renderVerdict } from "./views/verdict.js";

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

/** What a view gets: the session's data, the header, navigation and polling helpers. */
export class SessionPage {
  constructor(id, gen, summary, status) {
    this.id = id;
    this.gen = gen;
    this.summary = summary;
    this.status = status;
    this.header = null;
    this.me = null;
  }

  isCurrent() {
    return this.gen === currentGeneration();
  }

  onLeave(fn) {
    onLeave(fn);
  }

  path(view) {
    return `/s/${encodeURIComponent(this.id)}${view ? `/${view}` : ""}`;
  }

  go(view) {
    if (this.isCurrent()) navigate(this.path(view));
  }

  /** The one description of this session's state (header, sidebar and views use it). */
  get info() {
    // /status has no synthesis_error (the verdict runs in the request); /summary does.
    const synthesisError = this.summary && this.summary.synthesis_error;
    return describeSession(synthesisError ? { synthesis_error: synthesisError, ...this.status } : this.status);
  }

  /** True when the offline stand-in answers for this server. */
  get offline() {
    return providerOffline(this.summary && this.summary.provider);
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

  /** Take a new status (from /status, or the one a step we just started implies). */
  applyStatus(status) {
    const before = this.status && this.status.status;
    this.status = { ...status };
    updateHeader(this);
    const tokens = this.status.tokens || {};
    showLiveStatus(this.id, this.status, { last_cost_usd: tokens.total_cost_usd });
    if (before !== this.status.status && !this.info.running) refreshSessions();
  }

  /** Say at once that a step started, before the next poll confirms it. */
  markRunning(statusKey) {
    this.applyStatus({ ...this.status, status: statusKey });
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

function tokensOf(page) {
  return (page.status && page.status.tokens) || (page.summary && page.summary.tokens) || {};
}

function buildHeader(page, currentView) {
  const question = (page.summary && page.summary.question) || "";
  const statusBadge = h("span", { class: "badge", "data-testid": "session-status" });
  const stepText = h("span", { class: "step-text", "data-testid": "session-step" });
  const tokenValue = h("span", { class: "counter-value", "data-testid": "token-counter" });
  const tokenDetail = h("span", { class: "counter-detail" });
  const costValue = h("span", { class: "counter-value", "data-testid": "cost-counter" });
  const spendValue = h("span", { class: "counter-value", "data-testid": "spend-today" });
  const spendCounter = h("div", { class: "counter", hidden: true }, h("span", { class: "counter-label" }, "Your spend today"), spendValue);
  const breakdown = h("div", { class: "cost-breakdown-body" });
  const nav = h("nav", { class: "stepper", "aria-label": "Session steps" });
  const links = h("p", { class: "session-links" });
  const el = h(
    "header",
    { class: "session-header" },
    h(
      "div",
      { class: "session-title" },
      h("p", { class: "eyebrow" }, "Question"),
      h("h1", { class: "question", "data-testid": "session-question", title: question }, question || "Untitled session"),
      h(
        "p",
        { class: "session-meta" },
        statusBadge,
        " ",
        stepText,
        page.summary && page.summary.created_at
          ? h("time", { class: "session-date", datetime: String(page.summary.created_at), "data-testid": "session-date" }, `Asked ${formatWhen(page.summary.created_at)}`)
          : null,
      ),
      links,
    ),
    h(
      "div",
      { class: "counters", role: "status", "aria-live": "off", "aria-label": "Running cost and tokens" },
      h("div", { class: "counter" }, h("span", { class: "counter-label" }, "Tokens"), tokenValue, tokenDetail),
      h("div", { class: "counter" }, h("span", { class: "counter-label" }, "Cost"), costValue),
      spendCounter,
      h("details", { class: "cost-breakdown", "data-testid": "cost-breakdown" }, h("summary", null, "Cost per agent and step"), breakdown),
    ),
    nav,
  );
  page.header = { el, statusBadge, stepText, tokenValue, tokenDetail, costValue, spendCounter, spendValue, breakdown, nav, links, currentView };
  drawLinks(page);
  updateHeader(page);
  return el;
}

/** Follow-up links, both ways: "follow-up of" the parent, and this session's follow-ups. */
function drawLinks(page) {
  const s = page.summary || {};
  const parent = s.follow_up_of;
  const children = Array.isArray(s.follow_ups) ? s.follow_ups : [];
  render(
    page.header.links,
    parent ? ["Follow-up of ", h("a", { href: `/s/${encodeURIComponent(parent)}`, "data-testid": "follow-up-of" }, "the earlier session")] : null,
    parent && children.length ? " · " : null,
    children.length
      ? [
          "Follow-ups: ",
          children.map((id, i) => [i ? ", " : "", h("a", { href: `/s/${encodeURIComponent(id)}`, "data-testid": "follow-up-link" }, `#${i + 1}`)]),
        ]
      : null,
  );
  page.header.links.hidden = !parent && !children.length;
  // Name the linked sessions by their questions once known (a deleted one keeps "#n").
  for (const link of page.header.links.querySelectorAll("a[href^='/s/']")) {
    const id = decodeURIComponent(link.getAttribute("href").slice(3));
    api
      .summary(id)
      .then((other) => {
        if (page.isCurrent() && other && other.question) {
          link.title = other.question;
          link.textContent = `“${truncate(other.question, 60)}”`;
        }
      })
      .catch(() => {});
  }
}

function updateHeader(page) {
  const header = page.header;
  if (!header) return;
  const info = page.info;
  header.statusBadge.textContent = info.label;
  header.statusBadge.className = `badge badge-${info.kind}`;
  header.stepText.textContent = info.detail;
  const tokens = tokensOf(page);
  header.tokenValue.textContent = formatTokens(tokens.total_tokens);
  header.tokenDetail.textContent = `in ${formatTokens(tokens.input_tokens)} · out ${formatTokens(tokens.output_tokens)}`;
  header.costValue.textContent = costText(tokens);
  render(header.breakdown, costTable(tokens));
  // The user's spend today, shown when budgets are on (a daily budget is set).
  const me = page.me;
  const limit = me && me.daily_budget_usd;
  header.spendCounter.hidden = !(me && limit !== null && limit !== undefined);
  if (!header.spendCounter.hidden) {
    header.spendValue.textContent = `${costText({ total_cost_usd: me.spent_today_usd })} of ${costText({ total_cost_usd: limit })}`;
  }
  const rank = info.rank;
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

/** The API's provider: a name ("offline") from older servers, else {name, offline, ...}. */
export function providerOffline(provider) {
  if (provider && typeof provider === "object") return provider.offline === true || provider.name === "offline";
  return provider === "offline";
}

/** Shown whenever the offline stand-in answers: its text is canned, not a model's. */
export function offlineBanner() {
  return h(
    "div",
    { class: "notice notice-warn offline-banner", role: "note", "data-testid": "offline-banner" },
    h("strong", null, "Offline stand-in: "),
    "these answers are canned demo text, not a model's. To connect a real provider, set ",
    h("code", null, "OPENAI_API_KEY"),
    " (and ",
    h("code", null, "OPENAI_BASE_URL"),
    " for OpenRouter, Ollama, vLLM or LM Studio) in the server's environment or ",
    h("code", null, ".env"),
    ", then restart it.",
  );
}

async function loadMe(page) {
  try {
    page.me = await api.me();
  } catch {
    page.me = null; // no /api/me on this server, or budgets off
  }
  if (page.isCurrent()) updateHeader(page);
}

/** Draw /s/<id>[/<view>]. */
export async function renderSession(viewEl, id, requestedView, gen) {
  render(viewEl, h("p", { class: "loading", role: "status" }, "Loading session…"));
  let summary;
  let status;
  try {
    [summary, status] = await Promise.all([api.summary(id), api.status(id)]);
  } catch (err) {
    if (gen !== currentGeneration()) return;
    const missing = err && (err.status === 404 || err.status === 410);
    render(
      viewEl,
      h("h1", null, missing ? "Session not found" : "Could not load the session"),
      notice("error", missing ? "It may have been deleted, or the link is wrong." : errorText(err)),
      h("p", null, h("a", { href: "/", class: "button" }, "Start a new question")),
    );
    return;
  }
  if (gen !== currentGeneration()) return;
  const page = new SessionPage(id, gen, summary, status);
  const view = VIEWS.find((v) => v.key === requestedView) ? requestedView : defaultView(status.status);
  if (!requestedView) window.history.replaceState({ focus: false }, "", page.path(view));
  document.title = `${truncate(summary.question || "Session", 60)} · Agent Council`;
  const body = h("div", { class: "session-body" });
  render(viewEl, buildHeader(page, view), page.offline ? offlineBanner() : null, body);
  showLiveStatus(id, status);
  loadMe(page);
  const spec = VIEWS.find((v) => v.key === view);
  try {
    await spec.render(page, body);
  } catch (err) {
    if (page.isCurrent()) render(body, notice("error", errorText(err)));
  }
}
