// The one place that turns the API's typed status into what the UI says. The header, the
// sidebar entry and the page body all call describeSession(), so they cannot disagree.
// Member states come from the typed `members[step]` ({state, text, preview}) the API sends;
// the legacy words ("Thinking...", "Critique Complete") are read only when it is absent.

import { MEMBER_STATES, RUNNING_STATUSES, SESSION_STATUSES } from "/ui/domain.js";

export { MEMBER_STATES, SESSION_STATUSES };

/** How far along the workflow each SessionStatus is (the e2e tests check none is missing). */
export const STATUS_RANK = {
  idle: 0,
  build_in_progress: 1,
  build_error: 1,
  build_complete: 2,
  ready_to_execute: 2,
  executing: 3,
  execution_error: 3,
  execution_complete: 4,
  reviewing: 5,
  review_error: 5,
  review_complete: 6,
  synthesizing: 7,
  verdict_complete: 8,
};

/** Statuses during which a step is running (domain.RUNNING). */
export const RUNNING = new Set(RUNNING_STATUSES);

/** Which member states are final, and which mean work is under way. */
const FINAL_MEMBER = new Set(["done", "failed", "cancelled", "skipped"]);
const WORKING_MEMBER = new Set(["thinking", "searching"]);

export const MEMBER_LABEL = {
  queued: "Queued",
  thinking: "Thinking",
  searching: "Searching the web",
  done: "Done",
  failed: "Failed",
  cancelled: "Cancelled",
  skipped: "Skipped",
  waiting: "Not started",
};

// Only for servers that send words instead of {state, text}.
const LEGACY_WORDS = [
  [/^queued|^waiting|^pending/i, "queued"],
  [/^search/i, "searching"],
  [/^(thinking|reviewing|writing|working)/i, "thinking"],
  [/^skipped/i, "skipped"],
  [/cancel/i, "cancelled"],
  [/fail|error/i, "failed"],
  [/^(done|critique complete|complete|finished)/i, "done"],
];

/** How far along the workflow a status is (0 = nothing built yet). */
export function statusRank(status) {
  return STATUS_RANK[status] ?? 0;
}

/**
 * One member's state, from a lane's value: the typed {state, text, preview} of
 * `members[step]`, or an old server's word. `lane` ("execute" | "review") picks the words.
 * The returned `text` is the streamed answer so far (the API's `preview`).
 * @returns {{state: string, label: string, text: string, working: boolean, final: boolean}}
 */
export function memberState(raw, fallback = "waiting", lane = "execute") {
  let state = fallback;
  let text = "";
  if (raw && typeof raw === "object") {
    state = String(raw.state || fallback).toLowerCase();
    // `text` is the step's word ("Thinking..."); `preview` is the answer as it streams.
    text = typeof raw.preview === "string" ? raw.preview : "";
  } else if (typeof raw === "string" && raw) {
    const hit = LEGACY_WORDS.find(([re]) => re.test(raw.trim()));
    state = hit ? hit[1] : "thinking";
  }
  const label = lane === "review" && state === "thinking" ? "Reviewing" : MEMBER_LABEL[state] || state.replace(/_/g, " ");
  return {
    state,
    label,
    text,
    working: WORKING_MEMBER.has(state),
    final: FINAL_MEMBER.has(state),
  };
}

const LEGACY_LANE = { execute: "execution_status", review: "review_status" };

/**
 * One step's members as the API reports them: the typed `members[step]` ({name: {state,
 * text, preview}}) when the server sends it, else the legacy word map of that step.
 */
export function laneOf(status, step) {
  const typed = status && status.members && status.members[step];
  if (typed && typeof typed === "object" && Object.keys(typed).length) return typed;
  return (status && status[LEGACY_LANE[step]]) || {};
}

/** Every named member of a lane (the "ALL" line of old servers is not a member). */
export function laneMembers(lane, step = "execute") {
  const out = new Map();
  for (const [name, raw] of Object.entries(lane || {})) {
    if (name !== "ALL") out.set(name, memberState(raw, "waiting", step));
  }
  return out;
}

function failedIn(lane) {
  return [...laneMembers(lane)].filter(([, m]) => m.state === "failed").map(([name]) => name);
}

/** The reason a stopped run gives, by the prefix the workflow writes. */
export function stopKind(message) {
  const text = String(message || "").toLowerCase();
  if (text.startsWith("cancelled")) return "cancelled";
  if (text.startsWith("interrupted")) return "interrupted";
  return "failed";
}

export const BASE = {
  idle: ["New question", "neutral", "Build the council to start"],
  build_in_progress: ["Building council", "running", "The chairman is choosing the members"],
  build_error: ["Build failed", "error", "No council yet: try again"],
  build_complete: ["Council ready", "done", "Ready to execute"],
  ready_to_execute: ["Council ready", "done", "Ready to execute"],
  executing: ["Executing", "running", "Agents are answering"],
  execution_error: ["Execution failed", "error", "No proposals to review: run it again"],
  execution_complete: ["Execution complete", "done", "Ready for peer review"],
  reviewing: ["Reviewing", "running", "Agents are reviewing each other"],
  review_error: ["Review failed", "error", "No reviews to weigh: run it again"],
  review_complete: ["Review complete", "done", "Ready for the verdict"],
  synthesizing: ["Synthesizing", "running", "The chairman is writing the verdict"],
  verdict_complete: ["Verdict complete", "done", "The verdict is ready"],
};

/**
 * What the UI says about a session, from /status (or a sidebar row, which lacks lanes).
 * kind: neutral | running | done | partial | error. failed: member names that failed in
 * the step that last ran. detail: one short line for the header and the sidebar.
 */
export function describeSession(status) {
  const s = status || {};
  const key = s.status || "idle";
  const [label0, kind0, detail0] = BASE[key] || [humanizeStatus(key), "neutral", ""];
  let label = label0;
  let kind = kind0;
  let detail = detail0;
  const rank = statusRank(key);
  const execLane = laneOf(s, "execute");
  const reviewLane = laneOf(s, "review");
  const execFailed = failedIn(execLane);
  const reviewFailed = failedIn(reviewLane);
  const execTotal = laneMembers(execLane).size;
  const reviewTotal = laneMembers(reviewLane).size;
  let failed = [];
  let step = "execute";
  if (key === "execution_error" || key === "review_error") {
    const why = stopKind(key === "execution_error" ? s.execution_error : s.review_error);
    const what = key === "execution_error" ? "Execution" : "Review";
    if (why === "cancelled") [label, detail] = [`${what} cancelled`, "Stopped at your request; start it again when ready"];
    if (why === "interrupted") [label, detail] = [`${what} interrupted`, "The server stopped mid-run; start it again"];
  }
  if (key === "execution_complete" && execFailed.length) {
    kind = "partial";
    failed = execFailed;
    label = "Partly complete";
    detail = `${execTotal - execFailed.length}/${execTotal} agents succeeded`;
  } else if (key === "review_complete" && reviewFailed.length) {
    kind = "partial";
    failed = reviewFailed;
    step = "review";
    label = "Review partly complete";
    detail = `${reviewTotal - reviewFailed.length}/${reviewTotal} reviews succeeded`;
  } else if (key === "review_complete" && s.synthesis_error) {
    detail = "The last verdict attempt failed: try again";
  } else if (key === "execution_error") {
    failed = execFailed;
  } else if (key === "review_error") {
    failed = reviewFailed;
    step = "review";
  }
  return { status: key, rank, label, kind, detail, failed, failedStep: step, running: RUNNING.has(key) };
}

function humanizeStatus(value) {
  const text = String(value || "").replace(/_/g, " ").trim();
  return text ? text[0].toUpperCase() + text.slice(1) : "";
}

/** The badge colour family of a description (CSS: .badge-<kind>). */
export function badgeKind(statusOrDescription) {
  if (statusOrDescription && typeof statusOrDescription === "object") return statusOrDescription.kind;
  return describeSession({ status: statusOrDescription }).kind;
}
