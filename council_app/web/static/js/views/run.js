// Execute-and-review view: one card per agent with its live progress text and bar,
// refreshed from GET /status every ~1.5 s while a step runs, and stopped when it ends.

import { api, errorText } from "../api.js";
import { h, render } from "../dom.js";
import { statusRank } from "../status.js";
import { notice, progressBar, toast, updateProgress, withBusy } from "../ui.js";

const POLL_MS = 1500;
// After we start a step the server may need a moment before /status says it runs.
const GRACE_POLLS = 8;

/** Map an agent's progress text to a bar: a percentage, done, failed, or "working". */
export function progressOf(text) {
  if (!text) return { value: 0, kind: "" };
  const lower = String(text).toLowerCase();
  if (/fail|error|cancel/.test(lower)) return { value: 100, kind: "error" };
  if (/done|complete|success|finished/.test(lower)) return { value: 100, kind: "done" };
  const pct = /(\d{1,3})\s*%/.exec(lower);
  if (pct) return { value: Number(pct[1]), kind: "active" };
  if (/queued|waiting|pending|not started/.test(lower)) return { value: 0, kind: "" };
  return { value: null, kind: "active" };
}

function agentNames(page, status) {
  const names = [];
  const add = (name) => {
    if (name && name !== "ALL" && !names.includes(name)) names.push(name);
  };
  const council = page.summary && page.summary.council_config;
  for (const agent of (council && council.agents) || []) add(agent.name);
  for (const name of Object.keys((status && status.execution_status) || {})) add(name);
  for (const name of Object.keys((status && status.review_status) || {})) add(name);
  return names;
}

export async function renderRun(page, container) {
  const cards = new Map(); // agent name -> {el, execText, execBar, reviewText, reviewBar, error}
  const grid = h("ul", { class: "run-grid", "aria-label": "Agents" });

  const execOverall = progressBar(0, "Proposals progress");
  const execText = h("p", { class: "phase-text", role: "status", "data-testid": "execution-text" });
  const execError = h("div");
  const executeButton = h("button", { type: "button", class: "button button-primary", "data-testid": "execute" }, "Execute council");
  const rerunButton = h("button", { type: "button", class: "button button-quiet" }, "Run again");

  const reviewOverall = progressBar(0, "Peer review progress");
  const reviewText = h("p", { class: "phase-text", role: "status", "data-testid": "review-text" });
  const reviewError = h("div");
  const reviewButton = h("button", { type: "button", class: "button button-primary", "data-testid": "start-review" }, "Start peer review");
  const rereviewButton = h("button", { type: "button", class: "button button-quiet" }, "Review again");

  const cancelButton = h("button", { type: "button", class: "button button-danger", "data-testid": "cancel" }, "Cancel");
  const nextLinks = h("div", { class: "form-actions" });
  const execActions = h("div", { class: "form-actions" }, executeButton, rerunButton);
  const reviewActions = h("div", { class: "form-actions" }, reviewButton, rereviewButton);

  let stopPolling = null;
  let grace = 0;
  let loadedErrorsFor = "";

  function card(name) {
    if (cards.has(name)) return cards.get(name);
    const execLine = h("span", { class: "agent-progress-text", "data-testid": "agent-exec-status" }, "Not started");
    const reviewLine = h("span", { class: "agent-progress-text", "data-testid": "agent-review-status" }, "Not started");
    const entry = {
      execText: execLine,
      execBar: progressBar(0, `${name}: proposal`),
      reviewText: reviewLine,
      reviewBar: progressBar(0, `${name}: review`),
      error: h("div", { class: "agent-error", "data-testid": "agent-error" }),
    };
    entry.el = h(
      "li",
      { class: "card run-card", dataset: { agent: name, testid: "run-card" } },
      h("h3", { class: "agent-title" }, name),
      h("div", { class: "progress-line" }, h("span", { class: "progress-label" }, "Proposal"), execLine, entry.execBar),
      h("div", { class: "progress-line" }, h("span", { class: "progress-label" }, "Review"), reviewLine, entry.reviewBar),
      entry.error,
    );
    cards.set(name, entry);
    grid.append(entry.el);
    return entry;
  }

  function update(status) {
    const state = status.status;
    const rank = statusRank(state);
    const exec = status.execution_status || {};
    const review = status.review_status || {};
    for (const name of agentNames(page, status)) {
      const entry = card(name);
      const e = exec[name];
      const r = review[name];
      entry.execText.textContent = e || (rank >= 4 ? "Done" : "Not started");
      const ep = progressOf(e || (rank >= 4 ? "Done" : ""));
      updateProgress(entry.execBar, ep.value, ep.kind);
      entry.reviewText.textContent = r || (rank >= 6 ? "Critique Complete" : "Not started");
      const rp = progressOf(r || (rank >= 6 ? "Done" : ""));
      updateProgress(entry.reviewBar, rp.value, rp.kind);
      entry.el.classList.toggle("failed", ep.kind === "error" || rp.kind === "error");
    }
    const progress = status.progress || {};
    updateProgress(execOverall, progress.execution ?? (rank >= 4 ? 100 : 0), state === "execution_error" ? "error" : rank >= 4 ? "done" : "active");
    updateProgress(reviewOverall, progress.review ?? (rank >= 6 ? 100 : 0), state === "review_error" ? "error" : rank >= 6 ? "done" : "active");
    execText.textContent = exec.ALL || phaseText(state, "execute");
    reviewText.textContent = phaseText(state, "review");
    render(execError, status.execution_error ? notice("error", String(status.execution_error)) : null);
    render(reviewError, status.review_error ? notice("error", String(status.review_error)) : null);

    const executing = state === "executing";
    const reviewing = state === "reviewing";
    executeButton.hidden = rank >= 3;
    rerunButton.hidden = !(rank >= 3 && !executing && !reviewing);
    reviewButton.hidden = !(state === "execution_complete");
    rereviewButton.hidden = !(state === "review_error" || rank >= 6);
    cancelButton.hidden = !(executing || reviewing);
    // One Cancel button, shown in the panel of the step that is running.
    const home = reviewing ? reviewActions : execActions;
    if (cancelButton.parentNode !== home) home.append(cancelButton);
    for (const b of [executeButton, rerunButton, reviewButton, rereviewButton]) b.disabled = executing || reviewing;

    render(
      nextLinks,
      rank >= 4 ? h("a", { class: "button", href: page.path("results"), "data-testid": "to-results" }, "See results") : null,
      rank >= 6 ? h("a", { class: "button button-primary", href: page.path("verdict"), "data-testid": "to-verdict" }, "Go to verdict") : null,
    );
  }

  function phaseText(state, phase) {
    const rank = statusRank(state);
    if (phase === "execute") {
      if (state === "executing") return "Agents are writing their proposals…";
      if (state === "execution_error") return "Execution stopped with an error.";
      if (rank >= 4) return "All proposals are in.";
      return "Not started. Each agent answers the question independently.";
    }
    if (state === "reviewing") return "Agents are reviewing each other's proposals…";
    if (state === "review_error") return "Peer review stopped with an error.";
    if (rank >= 6) return "Peer review complete.";
    if (rank >= 4) return "Ready: every agent scores and critiques the other proposals.";
    return "Runs after the proposals are in.";
  }

  // Per-agent error messages live in /results and /reviews, not in /status.
  async function loadErrors(status) {
    const key = `${status.status}`;
    if (loadedErrorsFor === key) return;
    loadedErrorsFor = key;
    const rank = statusRank(status.status);
    const messages = new Map();
    if (rank >= 3) {
      try {
        const results = await api.results(page.id);
        for (const item of (results && results.execution_results) || []) {
          if (item.status === "error" || item.error) messages.set(item.agent_name, [`Proposal failed: ${item.error || "unknown error"}`]);
        }
      } catch {
        /* 404 until results exist */
      }
    }
    if (rank >= 5) {
      try {
        const data = await api.reviews(page.id);
        for (const item of (data && data.reviews) || []) {
          if (item.error) messages.set(item.reviewer, [...(messages.get(item.reviewer) || []), `Review failed: ${item.error}`]);
        }
      } catch {
        /* 404 until reviews exist */
      }
    }
    if (!page.isCurrent()) return;
    for (const [name, entry] of cards) {
      const list = messages.get(name);
      render(entry.error, list ? list.map((text) => h("p", { class: "field-error" }, text)) : null);
    }
  }

  async function tick() {
    const status = await page.refreshStatus();
    if (!status) return false;
    update(status);
    const running = status.status === "executing" || status.status === "reviewing";
    if (running) {
      grace = 0;
      return true;
    }
    if (grace > 0) {
      grace -= 1;
      return true;
    }
    await page.refreshSummary().catch(() => {});
    await loadErrors(status);
    stopPolling = null;
    return false;
  }

  function watch(startedNow) {
    if (stopPolling) stopPolling();
    grace = startedNow ? GRACE_POLLS : 0;
    stopPolling = page.poll(tick, POLL_MS);
  }

  function starter(button, busy, call) {
    button.addEventListener("click", () =>
      withBusy(button, busy, async () => {
        try {
          const response = await call();
          if (response && typeof response.status === "string" && response.status.startsWith("already")) {
            toast("Already done; showing the stored results");
          }
          loadedErrorsFor = "";
          watch(true);
        } catch (err) {
          if (page.isCurrent()) toast(errorText(err), "error");
        }
      }),
    );
  }

  starter(executeButton, "Starting…", () => api.execute(page.id));
  starter(rerunButton, "Starting…", () => api.execute(page.id, true));
  starter(reviewButton, "Starting…", () => api.peerReview(page.id));
  starter(rereviewButton, "Starting…", () => api.peerReview(page.id, true));
  cancelButton.addEventListener("click", () =>
    withBusy(cancelButton, "Cancelling…", async () => {
      try {
        await api.cancel(page.id);
        toast("Cancel requested");
        watch(true);
      } catch (err) {
        toast(`Could not cancel: ${errorText(err)}`, "error");
      }
    }),
  );

  render(
    container,
    h(
      "section",
      { class: "run" },
      h("h2", null, "Execute and review"),
      h(
        "div",
        { class: "phases" },
        h(
          "div",
          { class: "panel phase" },
          h("h3", null, "1. Proposals"),
          execText,
          execOverall,
          execError,
          execActions,
        ),
        h(
          "div",
          { class: "panel phase" },
          h("h3", null, "2. Peer review"),
          reviewText,
          reviewOverall,
          reviewError,
          reviewActions,
        ),
      ),
      grid,
      nextLinks,
    ),
  );

  update(page.status);
  watch(false);
}
