// Shared widgets: the confirmation dialog, the token prompt, toasts, busy buttons.

import { h } from "./dom.js";

/** Ask a yes/no question in the native <dialog> (focus-trapped, Esc cancels). */
export function confirmDialog({ title, text, ok = "OK", danger = true, returnFocus = null }) {
  const dialog = document.getElementById("confirm-dialog");
  document.getElementById("confirm-title").textContent = title;
  document.getElementById("confirm-text").textContent = text;
  const okButton = document.getElementById("confirm-ok");
  okButton.textContent = ok;
  okButton.className = `button ${danger ? "button-danger" : "button-primary"}`;
  const opener = document.activeElement;
  return new Promise((resolve) => {
    dialog.returnValue = "";
    dialog.addEventListener(
      "close",
      () => {
        resolve(dialog.returnValue === "ok");
        // The opener may have been re-rendered meanwhile; returnFocus finds its successor.
        if (opener && opener.isConnected) opener.focus();
        else if (returnFocus) returnFocus();
      },
      { once: true },
    );
    dialog.showModal();
    document.getElementById("confirm-cancel").focus();
  });
}

/** Ask for a bearer token (token auth mode); resolves to the token or "". */
export function tokenDialog() {
  const dialog = document.getElementById("token-dialog");
  const input = document.getElementById("token-input");
  if (dialog.open) return Promise.resolve("");
  input.value = "";
  return new Promise((resolve) => {
    dialog.returnValue = "";
    dialog.addEventListener(
      "close",
      () => resolve(dialog.returnValue === "ok" ? input.value.trim() : ""),
      { once: true },
    );
    dialog.showModal();
    input.focus();
  });
}

/** A short message in the top bar (never over the page) that screen readers announce. */
export function toast(message, kind = "info") {
  const region = document.getElementById("toasts");
  // One at a time: a queue of them would need room the top bar does not have.
  for (const old of region.querySelectorAll(".toast")) old.remove();
  const item = h("div", { class: `toast toast-${kind}`, title: message }, message);
  region.append(item);
  setTimeout(() => item.remove(), 4000);
}

/**
 * A stored or live error, shown once: what failed, the reason in a sentence, and the
 * provider's raw detail behind a disclosure. `message` is the API's text, which may
 * already start with `title` ("Building the council failed: ..."); that prefix is not
 * repeated.
 */
export function errorNotice(title, message, { testid = null } = {}) {
  let text = String(message || "").trim();
  const bare = title.replace(/[.:]\s*$/, "");
  if (text.toLowerCase().startsWith(bare.toLowerCase())) text = text.slice(bare.length).replace(/^[\s:.-]+/, "");
  const reason = readableReason(text);
  const rest = text.length > reason.length ? text : "";
  return h(
    "div",
    { class: "notice notice-error error-notice", role: "alert", "data-testid": testid },
    h("p", { class: "error-title" }, h("strong", null, `${bare}.`), reason ? ` ${sentence(reason)}` : ""),
    rest ? h("details", { class: "error-detail" }, h("summary", null, "Provider detail"), h("pre", null, rest)) : null,
  );
}

/**
 * The readable head of an error: "HTTP 502 from the gateway: {json...}" keeps "HTTP 502
 * from the gateway"; a short source label ("offline provider: member 'X' fails on
 * purpose (...)") keeps the clause after it too. A parenthesised aside goes.
 */
export function readableReason(text) {
  const parts = String(text || "").split(": ");
  let head = parts[0];
  if (parts.length > 1 && head.split(/\s+/).length <= 3 && !/\d/.test(head)) head = `${head}: ${parts[1]}`;
  head = head.replace(/\s*\([^)]*\)?\s*$/, "").trim();
  return head.length <= 160 ? head : `${head.slice(0, 157)}…`;
}

function sentence(text) {
  const t = text.trim();
  if (!t) return "";
  const first = t[0].toUpperCase() + t.slice(1);
  return /[.!?…]$/.test(first) ? first : `${first}.`;
}

/** Run an async action with the button disabled and a busy label; restores it after. */
export async function withBusy(button, busyLabel, action) {
  const label = button.textContent;
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  button.textContent = busyLabel;
  try {
    return await action();
  } finally {
    if (button.isConnected) {
      button.disabled = false;
      button.removeAttribute("aria-busy");
      // The action may have relabelled the button (e.g. "Synthesize again"); keep that.
      if (button.textContent === busyLabel) button.textContent = label;
    }
  }
}

/** An inline error/notice box. */
export function notice(kind, ...children) {
  return h("div", { class: `notice notice-${kind}`, role: kind === "error" ? "alert" : "status" }, ...children);
}

/** A <progress> bar; value null makes it indeterminate (animated "working"). */
export function progressBar(value, label, kind = "") {
  const bar = h("progress", { max: 100, class: ["progress", kind && `progress-${kind}`], "aria-label": label });
  if (value !== null && value !== undefined) bar.value = Math.max(0, Math.min(100, Number(value) || 0));
  return bar;
}

export function updateProgress(bar, value, kind = "") {
  bar.className = ["progress", kind && `progress-${kind}`].filter(Boolean).join(" ");
  if (value === null || value === undefined) bar.removeAttribute("value");
  else bar.value = Math.max(0, Math.min(100, Number(value) || 0));
}
