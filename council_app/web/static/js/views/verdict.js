// Verdict view: synthesize, read the chairman's verdict as rendered (escaped) Markdown,
// copy it, and download the whole session as the /summary JSON.

import { api, errorText } from "../api.js";
import { h, render } from "../dom.js";
import { renderMarkdown } from "../markdown.js";
import { statusRank } from "../status.js";
import { notice, progressBar, toast, withBusy } from "../ui.js";

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
  const blob = new Blob([JSON.stringify(data, null, 2)], { type: "application/json" });
  const url = URL.createObjectURL(blob);
  const link = h("a", { href: url, download: filename, class: "visually-hidden" }, "download");
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

export async function renderVerdict(page, container) {
  const verdictBox = h("article", { class: "markdown verdict", "data-testid": "verdict", "aria-live": "polite" });
  const message = h("div");
  const progress = h("div", { hidden: true, class: "build-progress" }, progressBar(null, "Writing the verdict"), h("p", null, "The chairman is weighing the proposals and reviews…"));
  const synthButton = h("button", { type: "button", class: "button button-primary", "data-testid": "synthesize" }, "Synthesize verdict");
  const copyButton = h("button", { type: "button", class: "button", "data-testid": "copy-verdict" }, "Copy verdict");
  const downloadButton = h("button", { type: "button", class: "button", "data-testid": "download-summary" }, "Download full session");
  let verdict = (page.summary && page.summary.chairman_verdict) || "";

  function show() {
    if (verdict) render(verdictBox, renderMarkdown(verdict));
    else render(verdictBox, h("p", { class: "hint" }, "No verdict yet."));
    synthButton.textContent = verdict ? "Synthesize again" : "Synthesize verdict";
    synthButton.className = verdict ? "button button-quiet" : "button button-primary";
    copyButton.disabled = !verdict;
  }

  synthButton.addEventListener("click", () =>
    withBusy(synthButton, "Synthesizing…", async () => {
      render(message);
      progress.hidden = false;
      try {
        const response = await api.synthesize(page.id, Boolean(verdict));
        if (!page.isCurrent()) return;
        verdict = (response && (response.verdict || response.chairman_verdict)) || "";
        page.summary = { ...page.summary, chairman_verdict: verdict };
        await page.refreshStatus();
      } catch (err) {
        if (page.isCurrent()) render(message, notice("error", `Synthesis failed: ${errorText(err)}`));
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

  const rank = statusRank(page.status && page.status.status);
  render(
    container,
    h(
      "section",
      { class: "verdict-view" },
      h("div", { class: "section-head" }, h("h2", null, "Chairman's verdict")),
      !verdict && rank < 6
        ? notice("info", "The verdict draws on the peer reviews. ", h("a", { href: page.path("run") }, "Finish the review first"), ", or synthesize from what there is.")
        : null,
      h("div", { class: "form-actions" }, synthButton, copyButton, downloadButton),
      message,
      progress,
      h("div", { class: "panel" }, verdictBox),
    ),
  );
  show();
}
