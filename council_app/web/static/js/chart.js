// Horizontal bar charts as inline SVG. Labels go in through textContent, so reviewer and
// agent names chosen by a model cannot inject markup. Colours come from the stylesheet.

import { s, truncate } from "./dom.js";

const ROW = 26;
const LABEL_W = 128;
const VALUE_W = 40;
const WIDTH = 420;

/**
 * A bar chart of labelled values.
 * @param {{label: string, value: number|null, note?: string}[]} rows
 * @param {{max?: number, title: string, className?: string}} options
 */
export function barChart(rows, { max = 10, title, className = "" } = {}) {
  const top = Math.max(max, ...rows.map((r) => Number(r.value) || 0));
  const height = Math.max(1, rows.length) * ROW + 6;
  const barSpace = WIDTH - LABEL_W - VALUE_W;
  const summary = rows
    .map((r) => `${r.label}: ${r.value === null || r.value === undefined ? "no score" : r.value}`)
    .join(", ");
  const svg = s("svg", {
    class: `bar-chart ${className}`.trim(),
    viewBox: `0 0 ${WIDTH} ${height}`,
    role: "img",
    "aria-label": `${title}. ${summary || "No data"}`,
    preserveAspectRatio: "xMinYMin meet",
  });
  svg.append(s("title", { text: title }));
  if (!rows.length) {
    svg.append(s("text", { x: 0, y: 18, class: "chart-empty", text: "No scores" }));
    return svg;
  }
  rows.forEach((row, index) => {
    const y = index * ROW + 3;
    const value = Number(row.value);
    const hasValue = row.value !== null && row.value !== undefined && !Number.isNaN(value);
    const width = hasValue && top > 0 ? Math.max(2, (value / top) * barSpace) : 0;
    const group = s("g", { class: "chart-row" });
    group.append(
      s("title", { text: `${row.label}: ${hasValue ? value : "no score"}${row.note ? ` — ${row.note}` : ""}` }),
      s("text", { x: 0, y: y + ROW / 2 + 4, class: "chart-label", text: truncate(row.label, 18) }),
      s("rect", { x: LABEL_W, y: y + 4, width: barSpace, height: ROW - 10, rx: 3, class: "chart-track" }),
      s("rect", { x: LABEL_W, y: y + 4, width: width.toFixed(1), height: ROW - 10, rx: 3, class: "chart-bar" }),
      s("text", {
        x: WIDTH - 2,
        y: y + ROW / 2 + 4,
        "text-anchor": "end",
        class: "chart-value",
        text: hasValue ? formatScore(value) : "—",
      }),
    );
    svg.append(group);
  });
  return svg;
}

export function formatScore(value) {
  const n = Number(value);
  if (Number.isNaN(n)) return "—";
  return Number.isInteger(n) ? String(n) : n.toFixed(1);
}
