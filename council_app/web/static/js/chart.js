// Horizontal bar charts in plain HTML: the labels are real text at the page's font size,
// so they stay readable (>= 12 px) on a phone, where a scaled-down SVG shrank them. Bar
// widths are set through the CSSOM (allowed by the strict CSP, unlike style attributes);
// labels go in as text, so names chosen by a model cannot inject markup.

import { h } from "./dom.js";

/**
 * A bar chart of labelled values.
 * @param {{label: string, value: number|null, note?: string}[]} rows
 * @param {{max?: number, title: string, className?: string}} options
 */
export function barChart(rows, { max = 5, title, className = "" } = {}) {
  const top = Math.max(max, ...rows.map((r) => Number(r.value) || 0));
  const summary = rows.map((r) => `${r.label}: ${hasValue(r) ? formatScore(r.value) : "no score"}`).join(", ");
  const chart = h("div", { class: ["bar-chart", className], role: "img", "aria-label": `${title}. ${summary || "No data"}` });
  if (!rows.length) {
    chart.append(h("p", { class: "chart-empty" }, "No scores"));
    return chart;
  }
  for (const row of rows) {
    const value = Number(row.value);
    const bar = h("span", { class: "chart-bar" });
    bar.style.width = hasValue(row) && top > 0 ? `${Math.max(1, (value / top) * 100).toFixed(1)}%` : "0";
    chart.append(
      h(
        "div",
        { class: "chart-row", title: `${row.label}: ${hasValue(row) ? formatScore(value) : "no score"}${row.note ? ` — ${row.note}` : ""}`, "aria-hidden": "true" },
        h("span", { class: "chart-label" }, row.label),
        h("span", { class: "chart-track" }, bar),
        h("span", { class: "chart-value" }, hasValue(row) ? formatScore(value) : "—"),
      ),
    );
  }
  return chart;
}

function hasValue(row) {
  return row.value !== null && row.value !== undefined && !Number.isNaN(Number(row.value));
}

export function formatScore(value) {
  const n = Number(value);
  if (Number.isNaN(n)) return "—";
  return Number.isInteger(n) ? String(n) : n.toFixed(1);
}
