// Results view: the aggregated ranking, every proposal with its review scores as a small
// SVG bar chart, and each reviewer's critique. Model text is rendered by markdown.js.

import { api, errorText } from "../api.js";
import { formatScore, barChart } from "../chart.js";
import { formatTokens, h, render } from "../dom.js";
import { renderMarkdown } from "../markdown.js";
import { costText } from "../costs.js";
import { errorNotice, notice } from "../ui.js";

/** "Proposal #2" in a reviewer's words becomes "Proposal #2 (Agent name)". */
export function namedProposals(text, names) {
  return String(text || "").replace(/\bproposal\s*#\s*(\d+)/gi, (match, id) => {
    const name = names.get(String(id));
    return name ? `${match} (${name})` : match;
  });
}

function asText(value) {
  return Array.isArray(value) ? value.map(String).join("; ") : String(value);
}

function mean(values) {
  const nums = values.map(Number).filter((n) => !Number.isNaN(n));
  return nums.length ? nums.reduce((a, b) => a + b, 0) / nums.length : null;
}

/** Proposals ordered by mean review score (ties: more first-place votes, then name). */
export function ranking(results, reviewsData) {
  const aggregated = (reviewsData && reviewsData.aggregated_scores) || {};
  const firsts = new Map();
  for (const review of (reviewsData && reviewsData.reviews) || []) {
    const top = review.parsed && Array.isArray(review.parsed.overall_ranking) ? review.parsed.overall_ranking[0] : null;
    if (top !== null && top !== undefined) firsts.set(String(top), (firsts.get(String(top)) || 0) + 1);
  }
  return results
    .filter((r) => r.proposal_id !== undefined && r.proposal_id !== null && r.status !== "error")
    .map((r) => {
      const entry = aggregated[String(r.proposal_id)] || aggregated[r.proposal_id] || {};
      const scores = entry.scores || [];
      return { result: r, mean: mean(scores), count: scores.length, firsts: firsts.get(String(r.proposal_id)) || 0 };
    })
    .sort(
      (a, b) =>
        (b.mean ?? -Infinity) - (a.mean ?? -Infinity) ||
        b.firsts - a.firsts ||
        String(a.result.agent_name).localeCompare(String(b.result.agent_name)),
    );
}

function scoresFor(proposalId, reviewsData) {
  const rows = [];
  for (const review of (reviewsData && reviewsData.reviews) || []) {
    const per = review.parsed && Array.isArray(review.parsed.per_proposal) ? review.parsed.per_proposal : [];
    const item = per.find((p) => String(p.proposal_id) === String(proposalId));
    if (item && item.score !== undefined && item.score !== null) {
      rows.push({ label: review.reviewer, value: Number(item.score), note: item.tldr || "" });
    }
  }
  if (!rows.length) {
    const agg = ((reviewsData && reviewsData.aggregated_scores) || {})[String(proposalId)];
    (agg && agg.scores ? agg.scores : []).forEach((value, i) => rows.push({ label: `Review ${i + 1}`, value: Number(value) }));
  }
  return rows;
}

/** Reviewers score 1–5 (the review prompt's scale); wider only if a score says so. */
function scaleMax(reviewsData) {
  let max = 0;
  for (const entry of Object.values((reviewsData && reviewsData.aggregated_scores) || {})) {
    for (const v of entry.scores || []) max = Math.max(max, Number(v) || 0);
  }
  return max <= 5 ? 5 : max <= 10 ? 10 : max <= 100 ? 100 : max;
}

const SAFE_URL = /^https?:\/\//i;

/** A source link that opens apart from the app and tells the target nothing. */
function sourceLink(url, title) {
  const text = title || url;
  if (!SAFE_URL.test(String(url || ""))) return h("span", null, text || "(no address)");
  return h("a", { href: url, target: "_blank", rel: "noopener noreferrer", class: "source-link" }, text);
}

/** The web searches an agent ran and the sources it cited, from tools_used / citations. */
export function sourcesOf(item) {
  const searches = [];
  for (const tool of Array.isArray(item.tools_used) ? item.tools_used : []) {
    if (typeof tool === "string") {
      searches.push({ query: tool, sources: [] });
      continue;
    }
    if (!tool || typeof tool !== "object") continue;
    const query = tool.query || (tool.input && tool.input.query) || (tool.arguments && tool.arguments.query) || "";
    const found = tool.sources || tool.results || tool.urls || tool.citations || [];
    searches.push({ query: String(query), sources: Array.isArray(found) ? found : [] });
  }
  const cited = (Array.isArray(item.citations) ? item.citations : []).concat(Array.isArray(item.sources) ? item.sources : []);
  const norm = (src) => (typeof src === "string" ? { url: src, title: "" } : { url: src && (src.url || src.link || src.href), title: src && (src.title || src.name || "") });
  return { searches: searches.map((s) => ({ ...s, sources: s.sources.map(norm) })), cited: cited.map(norm) };
}

function sourcesSection(item) {
  const { searches, cited } = sourcesOf(item);
  if (!searches.length && !cited.length) return null;
  const count = searches.length;
  return h(
    "details",
    { class: "sources", "data-testid": "sources" },
    h("summary", null, count ? `Web search: ${count} quer${count === 1 ? "y" : "ies"}, ${cited.length || searches.reduce((n, s) => n + s.sources.length, 0)} sources` : `Sources (${cited.length})`),
    searches.length
      ? h(
          "ul",
          { class: "search-list" },
          searches.map((s) =>
            h(
              "li",
              null,
              h("span", { class: "search-query" }, "Searched: ", h("q", null, s.query || "(no query recorded)")),
              s.sources.length ? h("ul", null, s.sources.map((src) => h("li", null, sourceLink(src.url, src.title)))) : null,
            ),
          ),
        )
      : null,
    cited.length ? [h("p", { class: "hint" }, "Cited:"), h("ol", { class: "citation-list" }, cited.map((src) => h("li", null, sourceLink(src.url, src.title))))] : null,
  );
}

export async function renderResults(page, container) {
  render(container, h("p", { class: "loading", role: "status" }, "Loading results…"));
  let results;
  try {
    results = await api.results(page.id);
  } catch (err) {
    if (!page.isCurrent()) return;
    render(
      container,
      h("h2", null, "Results"),
      notice(err && err.status === 404 ? "info" : "error", err && err.status === 404 ? "No proposals yet: execute the council first." : errorText(err)),
      h("p", null, h("a", { class: "button", href: page.path("run") }, "Go to execute")),
    );
    return;
  }
  let reviewsData = null;
  let reviewsNote = null;
  try {
    reviewsData = await api.reviews(page.id);
    if (!reviewsData || !Array.isArray(reviewsData.reviews) || !reviewsData.reviews.length) {
      reviewsData = null;
      reviewsNote = "No peer reviews yet.";
    }
  } catch (err) {
    reviewsNote = err && err.status === 404 ? "No peer reviews yet." : `Reviews could not be loaded: ${errorText(err)}`;
  }
  if (!page.isCurrent()) return;

  const items = (results && results.execution_results) || [];
  const names = new Map(items.map((r) => [String(r.proposal_id), r.agent_name]));
  const max = scaleMax(reviewsData);
  const ranked = reviewsData ? ranking(items, reviewsData) : [];

  const rankingSection = reviewsData
    ? h(
        "section",
        { class: "panel", "aria-labelledby": "ranking-title" },
        h("h2", { id: "ranking-title" }, "Aggregated ranking"),
        h(
          "ol",
          { class: "ranking", "data-testid": "ranking" },
          ranked.map((row, index) =>
            h(
              "li",
              { class: "ranking-item" },
              h("span", { class: "rank", "aria-hidden": "true" }, String(index + 1)),
              h("span", { class: "ranking-name" }, row.result.agent_name),
              h(
                "span",
                { class: "ranking-score" },
                row.mean === null ? "no scores" : `${formatScore(row.mean)} / ${max}`,
                h("span", { class: "hint" }, ` · ${row.count} review${row.count === 1 ? "" : "s"}${row.firsts ? ` · ${row.firsts}× ranked first` : ""}`),
              ),
            ),
          ),
        ),
        h("p", { class: "hint", "data-testid": "ranking-caption" }, `Mean of the peer-review scores (scale 1–${max}); ties go to more first-place rankings. Agents that failed are not ranked.`),
      )
    : notice("info", reviewsNote || "No peer reviews yet.", " ", h("a", { href: page.path("run") }, "Run the peer review"));

  const proposals = h(
    "section",
    { "aria-labelledby": "proposals-title" },
    h("h2", { id: "proposals-title" }, "Proposals"),
    h(
      "div",
      { class: "proposal-list" },
      items.map((item) =>
        h(
          "article",
          { class: ["card proposal", item.status === "error" && "failed"], "data-testid": "proposal" },
          h("p", { class: "eyebrow" }, `Proposal #${item.proposal_id}`),
          h("h3", { class: "agent-title" }, item.agent_name),
          item.agent_persona
            ? h("details", { class: "persona" }, h("summary", null, "Persona"), h("p", null, item.agent_persona))
            : null,
          agentCost(page, item.agent_name),
          item.status === "error"
            ? errorNotice("This agent failed", item.error || "unknown error")
            : [
                item.tldr ? h("p", { class: "tldr" }, h("strong", null, "TL;DR "), item.tldr) : null,
                reviewsData
                  ? h(
                      "figure",
                      { class: "chart" },
                      barChart(scoresFor(item.proposal_id, reviewsData), { max, title: `Review scores for ${item.agent_name}` }),
                      h("figcaption", { class: "hint" }, "Score from each reviewer"),
                    )
                  : null,
                sourcesSection(item),
                h(
                  "details",
                  { class: "response" },
                  h("summary", null, "Full proposal"),
                  h("div", { class: "markdown" }, renderMarkdown(item.response || "")),
                ),
              ],
        ),
      ),
    ),
  );

  const reviews = reviewsData
    ? h(
        "section",
        { "aria-labelledby": "reviews-title" },
        h("h2", { id: "reviews-title" }, "Peer reviews"),
        h(
          "div",
          { class: "review-list" },
          (reviewsData.reviews || []).map((review) => {
            if (review.skipped) {
              return h(
                "article",
                { class: "card review skipped", "data-testid": "review-card" },
                h("h3", { class: "agent-title" }, `Review by ${review.reviewer}`),
                h("p", { class: "hint" }, "Skipped: there was no other agent's proposal to review."),
              );
            }
            if (review.error) {
              return h(
                "article",
                { class: "card review failed", "data-testid": "review-card" },
                h("h3", { class: "agent-title" }, `Review by ${review.reviewer}`),
                errorNotice("Review failed", review.error),
              );
            }
            const parsed = review.parsed || {};
            return h(
              "article",
              { class: "card review", "data-testid": "review-card" },
              h("h3", { class: "agent-title" }, `Review by ${review.reviewer}`),
              parsed.overall_tldr || review.tldr ? h("p", { class: "tldr" }, namedProposals(parsed.overall_tldr || review.tldr, names)) : null,
              Array.isArray(parsed.overall_ranking) && parsed.overall_ranking.length
                ? h(
                    "p",
                    { class: "hint" },
                    "Ranking: ",
                    parsed.overall_ranking.map((id) => `#${id} ${names.get(String(id)) || ""}`.trim()).join(" › "),
                  )
                : null,
              (parsed.per_proposal || []).length
                ? h(
                    "details",
                    null,
                    h("summary", null, "Notes per proposal"),
                    (parsed.per_proposal || []).map((p) =>
                      h(
                        "div",
                        { class: "review-note" },
                        h("h4", { class: "review-note-title" }, `Proposal #${p.proposal_id} — ${names.get(String(p.proposal_id)) || "unknown agent"}`, h("span", { class: "review-score" }, ` · ${formatScore(p.score)} / ${max}`)),
                        p.strengths ? h("p", null, h("strong", null, "Strengths: "), asText(p.strengths)) : null,
                        p.weaknesses ? h("p", null, h("strong", null, "Weaknesses: "), asText(p.weaknesses)) : null,
                        p.gaps_risks ? h("p", null, h("strong", null, "Gaps and risks: "), asText(p.gaps_risks)) : null,
                      ),
                    ),
                  )
                : null,
              sourcesSection(review),
              review.critique
                ? h("details", null, h("summary", null, "Full critique"), h("div", { class: "markdown" }, renderMarkdown(review.critique)))
                : null,
            );
          }),
        ),
      )
    : null;

  render(
    container,
    rankingSection,
    proposals,
    reviews,
    statusNext(page),
  );
}

function agentCost(page, name) {
  const spent = (((page.status && page.status.tokens) || {}).by_agent || {})[name];
  if (!spent) return null;
  return h("p", { class: "hint agent-cost", "data-testid": "agent-cost" }, `${formatTokens(spent.total_tokens)} tokens · ${costText(spent)}`);
}

function statusNext(page) {
  const state = page.status && page.status.status;
  if (state === "review_complete" || state === "synthesizing" || state === "verdict_complete") {
    return h("div", { class: "form-actions" }, h("a", { class: "button button-primary", href: page.path("verdict"), "data-testid": "to-verdict" }, "Go to verdict"));
  }
  return null;
}
