// The workflow's statuses, in order, and what the UI makes of them.

const STATUS_RANK = {
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

/** Statuses during which a background step is running. */
export const RUNNING = new Set(["build_in_progress", "executing", "reviewing", "synthesizing"]);

/** How far along the workflow a status is (0 = nothing built yet). */
export function statusRank(status) {
  return STATUS_RANK[status] ?? 0;
}

/** The colour family of a status badge. */
export function badgeKind(status) {
  if (!status) return "neutral";
  if (status.endsWith("_error")) return "error";
  if (RUNNING.has(status)) return "running";
  if (status.endsWith("_complete") || status === "ready_to_execute") return "done";
  return "neutral";
}
