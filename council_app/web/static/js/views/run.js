// Execute-and-review view: one card per agent with its typed state (queued, thinking,
// searching, done, failed, cancelled, skipped), its answer as it streams, and its cost;
// refreshed from GET /status every ~1 s while a step runs, and stopped when it ends.
// The phase panels say the same thing as the header: both read page.info.

import { api, errorText } from "../api.js";
import { costText } from "../costs.js";
import { formatTokens, h, render } from "../dom.js";
import { laneMembers, laneOf, memberState, stopKind } from "../status.js";
import { errorNotice, notice, progressBar, toast, updateProgress, withBusy } from "../ui.js";

const POLL_MS = 1000;
// After we start a step the server may need a moment before /status says it runs.
const GRACE_POLLS = 8;
const LIVE_CHARS = 1200;

/** A member's bar: empty while queued or skipped, moving while working, full when final. */
export function barOf(member) {
  switch (member.state) {
    case "done":
      return { value: 100, kind: "done" };
    case "failed":
      return { value: 100, kind: "error" };
    case "cancelled":
      return { value: 100, kind: "cancelled" };
    case "skipped":
      return { value: 0, kind: "skipped" };
    default:
      return member.working ? { value: null, kind: "active" } : { value: 0, kind: "" };
  }
}

function agentNames(page, status) {
  const names = [];
  const add = (name) => {
    if (name && name !== "ALL" && !names.includes(name)) names.push(name);
  };
  const council = page.summary && page.summary.council_config;
  for (const agent of (council && council.agents) || []) add(agent.name);
  for (const name of laneMembers(laneOf(status, "execute")).keys()) add(name);
  for (const name of laneMembers(laneOf(status, "review")).keys()) add(name);
  return names;
}

/** A member as the lane reports it, or what the session's progress implies. */
function memberIn(lane, name, rank, doneFrom, which) {
  const raw = lane ? lane[name] : undefined;
  if (raw !== undefined && raw !== null && raw !== "") return memberState(raw, "waiting", which);
  return memberState(null, rank >= doneFrom ? "done" : "waiting", which);
}

export async function renderRun(page, container) {
  const cards = new Map();
  const grid = h("ul", { class: "run-grid", "aria-label": "Agents" });

  const execOverall = progressBar(0, "Proposals progress");
  const execText = h("p", { class: "phase-text", role: "status", "data-testid": "execution-text" });
  const execError = h("div", { "data-testid": "execution-error" });
  const executeButton = h("button", { type: "button", class: "button button-primary", "data-testid": "execute" }, "Execute council");
  const rerunButton = h("button", { type: "button", class: "button button-quiet" }, "Run again");
  const retryButton = h("button", { type: "button", class: "button button-warn", "data-testid": "retry-failed" }, "Retry the failed ones");

  const reviewOverall = progressBar(0, "Peer review progress");
  const reviewText = h("p", { class: "phase-text", role: "status", "data-testid": "review-text" });
  const reviewError = h("div", { "data-testid": "review-error" });
  const reviewButton = h("button", { type: "button", class: "button button-primary", "data-testid": "start-review" }, "Start peer review");
  const rereviewButton = h("button", { type: "button", class: "button button-quiet" }, "Review again");
  const retryReviewButton = h("button", { type: "button", class: "button button-warn", "data-testid": "retry-failed-reviews" }, "Retry the failed reviews");

  const cancelButton = h("button", { type: "button", class: "button button-danger", "data-testid": "cancel" }, "Cancel");
  const nextLinks = h("div", { class: "form-actions" });
  const execActions = h("div", { class: "form-actions" }, executeButton, retryButton, rerunButton);
  const reviewActions = h("div", { class: "form-actions" }, reviewButton, retryReviewButton, rereviewButton);

  let stopPolling = null;
  let grace = 0;
  let loadedErrorsFor = "";
  let memberErrors = new Map(); // name -> [{title, message}]

  function card(name) {
    if (cards.has(name)) return cards.get(name);
    const line = (testid) => h("span", { class: "agent-progress-text", "data-testid": testid }, "Not started");
    const entry = {
      execText: line("agent-exec-status"),
      execBar: progressBar(0, `${name}: proposal`),
      reviewText: line("agent-review-status"),
      reviewBar: progressBar(0, `${name}: review`),
      live: h("div", { class: "agent-live", "data-testid": "agent-live-text", hidden: true, "aria-live": "off" }),
      cost: h("p", { class: "agent-cost hint", "data-testid": "agent-cost" }),
      error: h("div", { class: "agent-error", "data-testid": "agent-error" }),
    };
    entry.el = h(
      "li",
      { class: "card run-card", dataset: { agent: name, testid: "run-card" } },
      h("h3", { class: "agent-title" }, name),
      h("div", { class: "progress-line" }, h("span", { class: "progress-label" }, "Proposal"), entry.execText, entry.execBar),
      h("div", { class: "progress-line" }, h("span", { class: "progress-label" }, "Review"), entry.reviewText, entry.reviewBar),
      entry.live,
      entry.cost,
      entry.error,
    );
    cards.set(name, entry);
    grid.append(entry.el);
    return entry;
  }

  function showMember(textEl, bar, member) {
    textEl.textContent = member.label;
    textEl.dataset.state = member.state;
    const b = barOf(member);
    updateProgress(bar, b.value, b.kind);
  }

  function update(status) {
    const info = page.info;
    const state = info.status;
    const rank = info.rank;
    const tokens = status.tokens || {};
    for (const name of agentNames(page, status)) {
      const entry = card(name);
      const e = memberIn(laneOf(status, "execute"), name, rank, 4, "execute");
      const r = memberIn(laneOf(status, "review"), name, rank, 6, "review");
      showMember(entry.execText, entry.execBar, e);
      showMember(entry.reviewText, entry.reviewBar, r);
      // The streamed answer: the review's while reviewing, else the proposal's.
      const liveText = (state === "reviewing" && r.text) || e.text || "";
      entry.live.hidden = !liveText || (rank >= 4 && !r.working && !e.working);
      const shown = liveText.length > LIVE_CHARS ? `…${liveText.slice(-LIVE_CHARS)}` : liveText;
      if (entry.live.textContent !== shown) {
        entry.live.textContent = shown;
        entry.live.scrollTop = entry.live.scrollHeight; // follow the newest words
      }
      entry.el.dataset.state = r.working || state === "reviewing" ? r.state : e.state;
      entry.el.classList.toggle("failed", e.state === "failed" || r.state === "failed");
      const spent = (tokens.by_agent || {})[name];
      entry.cost.textContent = spent ? `${formatTokens(spent.total_tokens)} tokens · ${costText(spent)}` : "";
      const errs = memberErrors.get(name) || [];
      render(entry.error, errs.map((x) => errorNotice(x.title, x.message)));
    }

    const progress = status.progress || {};
    const partialExec = info.kind === "partial" && info.failedStep === "execute";
    const partialReview = info.kind === "partial" && info.failedStep === "review";
    updateProgress(
      execOverall,
      progress.execution ?? (rank >= 4 ? 100 : 0),
      state === "execution_error" ? "error" : partialExec ? "partial" : rank >= 4 ? "done" : state === "executing" ? "active" : "",
    );
    updateProgress(
      reviewOverall,
      progress.review ?? (rank >= 6 ? 100 : 0),
      state === "review_error" ? "error" : partialReview ? "partial" : rank >= 6 ? "done" : state === "reviewing" ? "active" : "",
    );
    execText.textContent = phaseText(info, "execute", status);
    reviewText.textContent = phaseText(info, "review", status);
    execText.className = `phase-text${partialExec ? " phase-partial" : ""}`;
    reviewText.className = `phase-text${partialReview ? " phase-partial" : ""}`;
    render(execError, state === "execution_error" ? stepError("Execution", status.execution_error, info) : null);
    render(reviewError, state === "review_error" ? stepError("Peer review", status.review_error, info) : null);

    const running = state === "executing" || state === "reviewing";
    executeButton.hidden = rank >= 3;
    retryButton.hidden = !(info.failed.length && info.failedStep === "execute" && !running);
    retryButton.textContent = info.failed.length === 1 ? `Retry ${info.failed[0]}` : "Retry the failed ones";
    // When every member failed, "retry the failed ones" is the re-run: one button, not two.
    const allFailed = info.failed.length > 0 && info.failed.length === laneMembers(laneOf(status, "execute")).size;
    rerunButton.hidden = !(rank >= 3 && !running) || (allFailed && !retryButton.hidden);
    reviewButton.hidden = !(state === "execution_complete");
    rereviewButton.hidden = !(state === "review_error" || rank >= 6);
    // Only the reviewers that failed are asked again (POST /peer_review?retry=failed).
    retryReviewButton.hidden = !(info.failed.length && info.failedStep === "review" && !running && rank < 7);
    retryReviewButton.textContent = info.failed.length === 1 ? `Retry ${info.failed[0]}'s review` : "Retry the failed reviews";
    cancelButton.hidden = !running;
    // One Cancel button, shown in the panel of the step that is running.
    const home = state === "reviewing" ? reviewActions : execActions;
    if (cancelButton.parentNode !== home) home.append(cancelButton);
    for (const b of [executeButton, rerunButton, retryButton, reviewButton, retryReviewButton, rereviewButton]) b.disabled = running;

    render(
      nextLinks,
      rank >= 4 ? h("a", { class: "button", href: page.path("results"), "data-testid": "to-results" }, "See results") : null,
      rank >= 6 ? h("a", { class: "button button-primary", href: page.path("verdict"), "data-testid": "to-verdict" }, "Go to verdict") : null,
    );
  }

  /** The run's own error, once: "every agent failed" names them (details on the cards). */
  function stepError(what, message, info) {
    const text = String(message || "");
    if (/^every (agent|review) failed/i.test(text)) {
      return notice(
        "error",
        h("strong", null, `${what} failed: `),
        `no agent succeeded (${info.failed.join(", ") || "all"}). Each card below says why.`,
      );
    }
    const why = stopKind(text);
    if (why === "cancelled") return notice("info", h("strong", null, `${what} cancelled. `), "Start it again when you are ready.");
    if (why === "interrupted") return errorNotice(`${what} was interrupted`, text.replace(/^interrupted:\s*/i, ""));
    return errorNotice(`${what} failed`, text);
  }

  function phaseText(info, phase, status) {
    const state = info.status;
    const rank = info.rank;
    const lane = laneMembers(laneOf(status, phase), phase);
    const finished = [...lane.values()].filter((m) => m.final).length;
    if (phase === "execute") {
      if (state === "executing") return `Agents are writing their proposals… ${finished}/${lane.size} finished`;
      if (state === "execution_error") return "Execution stopped.";
      if (info.kind === "partial" && info.failedStep === "execute") {
        return `${info.detail}. Failed: ${info.failed.join(", ")}.`;
      }
      if (rank >= 4) return "All proposals are in.";
      return "Not started. Each agent answers the question independently.";
    }
    if (state === "reviewing") return `Agents are reviewing each other's proposals… ${finished}/${lane.size} finished`;
    if (state === "review_error") return "Peer review stopped.";
    if (info.kind === "partial" && info.failedStep === "review") return `${info.detail}. Failed: ${info.failed.join(", ")}.`;
    if (rank >= 6) {
      const skipped = [...lane].filter(([, m]) => m.state === "skipped").map(([n]) => n);
      return skipped.length ? `Peer review complete. Skipped (no other proposal to review): ${skipped.join(", ")}.` : "Peer review complete.";
    }
    if (rank >= 4) return "Ready: every agent scores and critiques the other proposals.";
    return "Runs after the proposals are in.";
  }

  // Per-agent error messages live in /results and /reviews, not in /status.
  async function loadErrors(status) {
    const key = `${status.status}`;
    if (loadedErrorsFor === key) return;
    loadedErrorsFor = key;
    const rank = page.info.rank;
    const found = new Map();
    const add = (name, title, message) => found.set(name, [...(found.get(name) || []), { title, message }]);
    if (rank >= 3) {
      try {
        const results = await api.results(page.id);
        for (const item of (results && results.execution_results) || []) {
          if (item.status === "error") add(item.agent_name, "Proposal failed", item.error || "unknown error");
        }
      } catch {
        /* 404 until results exist */
      }
    }
    if (rank >= 5) {
      try {
        const data = await api.reviews(page.id);
        for (const item of (data && data.reviews) || []) {
          if (item.error && !item.skipped) add(item.reviewer, "Review failed", item.error);
        }
      } catch {
        /* 404 until reviews exist */
      }
    }
    if (!page.isCurrent()) return;
    memberErrors = found;
    update(page.status);
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

  function starter(button, runningStatus, call) {
    button.addEventListener("click", () =>
      withBusy(button, "Starting…", async () => {
        try {
          const response = await call();
          if (response && response.status === "nothing_to_retry") {
            toast("Nothing failed: nothing to retry");
          } else if (response && typeof response.status === "string" && response.status.startsWith("already")) {
            toast("Already done; showing the stored results");
          } else if (page.isCurrent()) {
            memberErrors = new Map();
            page.markRunning(runningStatus);
            update(page.status);
          }
          loadedErrorsFor = "";
          watch(true);
        } catch (err) {
          if (page.isCurrent()) toast(errorText(err), "error");
        }
      }),
    );
  }

  starter(executeButton, "executing", () => api.execute(page.id));
  starter(rerunButton, "executing", () => api.execute(page.id, true));
  starter(retryButton, "executing", () => api.retryFailed(page.id, "execute"));
  starter(reviewButton, "reviewing", () => api.peerReview(page.id));
  starter(rereviewButton, "reviewing", () => api.peerReview(page.id, true));
  starter(retryReviewButton, "reviewing", () => api.retryFailed(page.id, "review"));
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
        h("div", { class: "panel phase" }, h("h3", null, "1. Proposals"), execText, execOverall, execError, execActions),
        h("div", { class: "panel phase" }, h("h3", null, "2. Peer review"), reviewText, reviewOverall, reviewError, reviewActions),
      ),
      grid,
      nextLinks,
    ),
  );

  update(page.status);
  watch(false);
}
