// Take the result away: the verdict, or the whole session, as a Markdown file made in the
// browser (a Blob download; nothing leaves for another server).

import { h } from "./dom.js";
import { costText } from "./costs.js";

/** Save text as a file through a temporary blob: link. */
export function downloadText(text, filename, type = "text/markdown") {
  const blob = new Blob([text], { type: `${type};charset=utf-8` });
  const url = URL.createObjectURL(blob);
  const link = h("a", { href: url, download: filename, class: "visually-hidden" }, "download");
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

/** A file name from the question: lower-case words joined by dashes, at most 60 chars. */
export function slug(text, fallback = "council") {
  const s = String(text || "")
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, 60)
    .replace(/-+$/, "");
  return s || fallback;
}

/** A one-line Markdown-safe version of text chosen by a person or a model. */
function inline(text) {
  return String(text ?? "").replace(/\s+/g, " ").replace(/([\\`*_[\]<>#|])/g, "\\$1").trim();
}

function quote(text) {
  return String(text || "")
    .split("\n")
    .map((line) => `> ${line}`)
    .join("\n");
}

/** The verdict alone, under the question. */
export function verdictMarkdown(summary) {
  const s = summary || {};
  return [`# ${inline(s.question) || "Council verdict"}`, "", "## Chairman's verdict", "", String(s.chairman_verdict || "_No verdict yet._").trim(), ""].join("\n");
}

function resultsOf(summary) {
  const r = summary.execution_results;
  const items = r && !Array.isArray(r) ? r.execution_results : r;
  return Array.isArray(items) ? items : [];
}

/** The whole session: question, council, proposals, reviews, ranking, verdict, costs. */
export function sessionMarkdown(summary, status) {
  const s = summary || {};
  const out = [`# ${inline(s.question) || "Council session"}`, ""];
  out.push(`- Session: \`${s.session_id}\``);
  if (s.created_at) out.push(`- Created: ${s.created_at}`);
  out.push(`- Status: ${s.status || (status && status.status) || "unknown"}`);
  const tokens = (status && status.tokens) || s.tokens || {};
  out.push(`- Tokens: ${tokens.total_tokens ?? 0} · Cost: ${costText(tokens)}`);
  if (s.follow_up_of) out.push(`- Follow-up of session \`${s.follow_up_of}\``);
  out.push("", "## Question", "", quote(s.question), "");

  const council = s.council_config || {};
  if (Array.isArray(council.agents) && council.agents.length) {
    out.push(`## Council${council.council_name ? `: ${inline(council.council_name)}` : ""}`, "");
    if (council.strategy_summary) out.push(String(council.strategy_summary).trim(), "");
    for (const a of council.agents) out.push(`- **${inline(a.name)}** — ${inline(a.persona)}`);
    out.push("");
  }

  const results = resultsOf(s);
  if (results.length) {
    out.push("## Proposals", "");
    for (const r of results) {
      out.push(`### Proposal #${r.proposal_id} — ${inline(r.agent_name)}`, "");
      if (r.status === "error") {
        out.push(`_This agent failed: ${inline(r.error || "unknown error")}_`, "");
        continue;
      }
      if (r.tldr) out.push(`**TL;DR** ${String(r.tldr).trim()}`, "");
      out.push(String(r.response || "").trim(), "");
      const cites = [...(r.citations || []), ...((r.tools_used || []).flatMap((t) => (t && (t.sources || t.results || t.urls)) || []))];
      const urls = cites.map((c) => (typeof c === "string" ? c : c && c.url)).filter((u) => /^https?:\/\//i.test(String(u || "")));
      if (urls.length) out.push("Sources:", "", ...[...new Set(urls)].map((u) => `- <${u}>`), "");
    }
  }

  const names = new Map(results.map((r) => [String(r.proposal_id), r.agent_name]));
  const scores = s.aggregated_scores || {};
  if (Object.keys(scores).length) {
    out.push("## Scores (1–5, mean of the peer reviews)", "", "| Proposal | Agent | Mean | Reviews |", "|---|---|---|---|");
    for (const [pid, entry] of Object.entries(scores)) {
      const list = (entry && entry.scores) || [];
      const mean = list.length ? (list.reduce((a, b) => a + Number(b), 0) / list.length).toFixed(2) : "—";
      out.push(`| #${pid} | ${inline(names.get(String(pid)) || "")} | ${mean} | ${list.length} |`);
    }
    out.push("");
  }
  const reviews = Array.isArray(s.peer_reviews) ? s.peer_reviews : [];
  if (reviews.length) {
    out.push("## Peer reviews", "");
    for (const r of reviews) {
      out.push(`### Review by ${inline(r.reviewer)}`, "");
      if (r.error) out.push(`_${r.skipped ? "Skipped" : "Failed"}: ${inline(r.error)}_`, "");
      else out.push(String((r.parsed && r.parsed.overall_tldr) || r.tldr || "").trim(), "");
    }
  }
  out.push("## Chairman's verdict", "", String(s.chairman_verdict || "_No verdict yet._").trim(), "");
  return out.join("\n");
}
