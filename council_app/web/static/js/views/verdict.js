// Verdict view: synthesize, read the chairman's verdict as rendered (escaped) Markdown,
// copy it, take it away (Markdown files, the summary JSON, a print style sheet for PDF),
// and ask a follow-up: a new session carrying this one's question, verdict and uploads.

import { api, errorText } from "../api.js";
import { h, render, uid } from "../dom.js";
import { downloadText, sessionMarkdown, slug, verdictMarkdown } from "../export.js";
import { renderMarkdown } from "../markdown.js";
import { navigate } from "../router.js";
import { refreshSessions } from "../sidebar.js";
import { errorNotice, notice, progressBar, toast, withBusy } from "../ui.js";

async function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) {
    await navigator.clipboard.writeText(text);
    return;
  }
  // Plain-http fallback: select a temporary textarea and copy.
  const area = h("textarea", { class: "visually-hidden", readonly: true, value: text });
  document.body.append(area);
  area.select();
  const ok = document.execCommand("copy");
  area.remove();
  if (!ok) throw new Error("the browser refused to copy");
}

function downloadJson(data, filename) {
  downloadText(JSON.stringify(data, null, 2), filename, "application/json");
}

/** "Ask a follow-up": a new session with this one's question, verdict and uploads. */
function followUpForm(page) {
  const id = uid("follow-up");
  const text = h("textarea", { id, rows: 3, "data-testid": "follow-up-question", placeholder: "What do you want to ask next, given this verdict?" });
  const error = h("div", { role: "alert" });
  const button = h("button", { type: "submit", class: "button button-primary", "data-testid": "follow-up-submit" }, "Ask the council");
  const form = h(
    "form",
    { class: "panel follow-up no-print", novalidate: true, "data-testid": "follow-up" },
    h("h3", null, "Ask a follow-up"),
    h("p", { class: "hint" }, "Starts a new session that carries this question, the verdict and the uploaded files as context, linked both ways."),
    h("label", { class: "field-label", for: id }, "Follow-up question"),
    text,
    error,
    h("div", { class: "form-actions" }, button),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const question = text.value.trim();
    if (!question) {
      render(error, h("p", { class: "field-error" }, "Enter the follow-up question."));
      text.focus();
      return;
    }
    withBusy(button, "Creating…", async () => {
      try {
        const created = await api.createSession(question, [], { followUpOf: page.id });
        refreshSessions();
        if (page.isCurrent()) navigate(`/s/${encodeURIComponent(created.session_id)}/council`, { state: { autobuild: true } });
      } catch (err) {
        if (page.isCurrent()) render(error, notice("error", `Could not start the follow-up: ${errorText(err)}`));
      }
    });
  });
  return form;
}

export async function renderVerdict(page, container) {
  const verdictBox = h("article", { class: "markdown verdict", "data-testid": "verdict", "aria-live": "polite" });
  const message = h("div");
  const progress = h("div", { hidden: true, class: "build-progress" }, progressBar(null, "Writing the verdict"), h("p", null, "The chairman is weighing the proposals and reviews…"));
  const synthButton = h("button", { type: "button", class: "button button-primary", "data-testid": "synthesize" }, "Synthesize verdict");
  const copyButton = h("button", { type: "button", class: "button", "data-testid": "copy-verdict" }, "Copy verdict");
  const downloadButton = h("button", { type: "button", class: "button", "data-testid": "download-summary" }, "Download full session (JSON)");
  const verdictMdButton = h("button", { type: "button", class: "button", "data-testid": "export-verdict-md" }, "Verdict as Markdown");
  const sessionMdButton = h("button", { type: "button", class: "button", "data-testid": "export-session-md" }, "Session as Markdown");
  const printButton = h("button", { type: "button", class: "button", "data-testid": "print" }, "Print / Save as PDF");
  const followUp = followUpForm(page);
  let verdict = (page.summary && page.summary.chairman_verdict) || "";

  function show() {
    if (verdict) render(verdictBox, renderMarkdown(verdict));
    else render(verdictBox, h("p", { class: "hint" }, "No verdict yet."));
    synthButton.textContent = verdict ? "Synthesize again" : "Synthesize verdict";
    synthButton.className = verdict ? "button button-quiet" : "button button-primary";
    copyButton.disabled = !verdict;
    verdictMdButton.disabled = !verdict;
    followUp.hidden = !verdict;
  }

  synthButton.addEventListener("click", () =>
    withBusy(synthButton, "Synthesizing…", async () => {
      render(message);
      progress.hidden = false;
      page.markRunning("synthesizing"); // the header says so while the chairman writes
      try {
        const response = await api.synthesize(page.id, Boolean(verdict));
        if (!page.isCurrent()) return;
        verdict = (response && (response.verdict || response.chairman_verdict)) || "";
        page.summary = { ...page.summary, chairman_verdict: verdict, synthesis_error: undefined };
        await page.refreshStatus();
      } catch (err) {
        if (page.isCurrent()) {
          render(message, errorNotice("The chairman's verdict failed", errorText(err)));
          page.summary = { ...page.summary, synthesis_error: errorText(err) };
          page.refreshStatus().catch(() => {});
        }
      } finally {
        progress.hidden = true;
      }
      show();
    }),
  );

  copyButton.addEventListener("click", async () => {
    try {
      await copyText(verdict);
      toast("Verdict copied");
    } catch (err) {
      toast(`Could not copy: ${errorText(err)}`, "error");
    }
  });

  downloadButton.addEventListener("click", () =>
    withBusy(downloadButton, "Preparing…", async () => {
      try {
        const summary = await api.summary(page.id);
        downloadJson(summary, `council-session-${page.id}.json`);
      } catch (err) {
        toast(`Could not download: ${errorText(err)}`, "error");
      }
    }),
  );

  verdictMdButton.addEventListener("click", () => {
    downloadText(verdictMarkdown({ ...page.summary, chairman_verdict: verdict }), `verdict-${slug(page.summary && page.summary.question)}.md`);
  });
  sessionMdButton.addEventListener("click", () =>
    withBusy(sessionMdButton, "Preparing…", async () => {
      try {
        const summary = await api.summary(page.id);
        downloadText(sessionMarkdown(summary, page.status), `council-session-${slug(summary.question)}.md`);
      } catch (err) {
        toast(`Could not export: ${errorText(err)}`, "error");
      }
    }),
  );
  printButton.addEventListener("click", () => window.print());

  // A stored synthesis failure survives a reload (shown once, here).
  const storedError = page.summary && page.summary.synthesis_error;
  if (storedError && !verdict) render(message, errorNotice("The chairman's verdict failed", storedError));

  const rank = page.info.rank;
  render(
    container,
    h(
      "section",
      { class: "verdict-view" },
      h("div", { class: "section-head" }, h("h2", null, "Chairman's verdict")),
      !verdict && rank < 6
        ? notice("info", "The verdict draws on the peer reviews. ", h("a", { href: page.path("run") }, "Finish the review first"), ", or synthesize from what there is.")
        : null,
      h("div", { class: "form-actions no-print" }, synthButton, copyButton),
      message,
      progress,
      h("div", { class: "panel" }, verdictBox),
      h(
        "div",
        { class: "panel take-away no-print" },
        h("h3", null, "Take it away"),
        h("div", { class: "form-actions" }, verdictMdButton, sessionMdButton, downloadButton, printButton),
      ),
      followUp,
    ),
  );
  show();
}
