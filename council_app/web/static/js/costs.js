// Costs you can read: the session's tokens and dollars per step and per agent, from the
// `tokens` the API sends. A cost the server could not price is shown as unknown, never $0.

import { formatCost, formatTokens, h, humanize } from "./dom.js";

const STEP_ORDER = ["build", "execute", "review", "synthesize"];
const STEP_LABEL = { build: "Build council", execute: "Proposals", review: "Peer review", synthesize: "Verdict" };

/** Calls in a bucket whose price is unknown (several spellings, as the API settles). */
function unknownCalls(bucket) {
  if (!bucket || typeof bucket !== "object") return 0;
  for (const key of ["unknown_cost_calls", "unpriced_calls", "calls_without_price"]) {
    if (Number(bucket[key]) > 0) return Number(bucket[key]);
  }
  if (bucket.cost_known === false || bucket.cost_unknown === true) return 1;
  return 0;
}

/** "$0.0123", "unknown", or "$0.01 + unknown" when part of it could not be priced. */
export function costText(bucket) {
  const b = bucket || {};
  const key = "total_cost_usd" in b ? "total_cost_usd" : "cost_usd";
  const value = b[key];
  const unknown = unknownCalls(b) > 0;
  if (value === null) return "unknown"; // the API could not price it
  if (value === undefined || Number.isNaN(Number(value))) return unknown ? "unknown" : formatCost(0);
  if (unknown) return Number(value) > 0 ? `${formatCost(value)} + unknown` : "unknown";
  return formatCost(value);
}

function rows(group, order) {
  const names = Object.keys(group || {});
  if (order) names.sort((a, b) => (order.indexOf(a) + 1 || 99) - (order.indexOf(b) + 1 || 99));
  return names.map((name) => [name, group[name] || {}]);
}

function table(caption, entries, label) {
  return h(
    "table",
    { class: "cost-table" },
    h("caption", null, caption),
    h("thead", null, h("tr", null, h("th", { scope: "col" }, label), h("th", { scope: "col" }, "Tokens in / out"), h("th", { scope: "col" }, "Cost"))),
    h(
      "tbody",
      null,
      entries.map(([name, b]) =>
        h(
          "tr",
          { dataset: { costRow: name }, class: unknownCalls(b) ? "cost-unknown" : null },
          h("th", { scope: "row" }, name),
          h("td", null, `${formatTokens(b.input_tokens)} / ${formatTokens(b.output_tokens)}`),
          h("td", null, costText(b)),
        ),
      ),
    ),
  );
}

/** Two small tables (per step, per agent), or a note when nothing ran yet. */
export function costTable(tokens) {
  const t = tokens || {};
  const steps = rows(t.by_step, STEP_ORDER).map(([k, v]) => [STEP_LABEL[k] || humanize(k), v]);
  const agents = rows(t.by_agent).map(([k, v]) => [k === "builder" ? "Chairman (build)" : k === "chairman" ? "Chairman (verdict)" : k, v]);
  if (!steps.length && !agents.length) return h("p", { class: "hint" }, "No model calls yet.");
  return [
    table("Per step", steps, "Step"),
    table("Per agent", agents, "Agent"),
    unknownCalls(t) || [...steps, ...agents].some(([, b]) => unknownCalls(b))
      ? h("p", { class: "hint" }, "“unknown”: the model's price is not in the server's price table (COUNCIL_PRICES_FILE).")
      : null,
  ];
}
