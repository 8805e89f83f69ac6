// Start page: the question, context files (drag-and-drop or picker) and "Build council".
// Files are checked against the API's types and size limit up front so a person sees the
// problem early, but the API stays the judge: its 413/415 message is shown inline too.

import { api, errorText } from "../api.js";
import { formatBytes, h, render, uid } from "../dom.js";
import { notice } from "../ui.js";

function extensionOf(name) {
  const dot = name.lastIndexOf(".");
  return dot > 0 ? name.slice(dot).toLowerCase() : "";
}

export function renderStart(container, { config, navigate, refreshSessions, isCurrent }) {
  const allowed = config.allowedExtensions;
  const maxBytes = config.maxUploadMb * 1024 * 1024;
  const files = [];

  const questionId = uid("question");
  const questionError = h("p", { class: "field-error", id: uid("question-error"), role: "alert" });
  const question = h("textarea", {
    id: questionId,
    name: "question",
    rows: 6,
    required: true,
    placeholder: "What should the council decide? Give it the context a good advisor would ask for.",
    "aria-describedby": questionError.id,
    "data-testid": "question",
  });

  const hintId = uid("files-hint");
  const filesError = h("div", { class: "field-error", id: uid("files-error"), role: "alert", "data-testid": "files-error" });
  const input = h("input", {
    type: "file",
    multiple: true,
    accept: allowed.join(","),
    class: "visually-hidden",
    tabindex: "-1",
    "aria-hidden": "true",
    "data-testid": "file-input",
  });
  const pick = h(
    "button",
    { type: "button", class: "button", "aria-describedby": `${hintId} ${filesError.id}`, onclick: () => input.click() },
    "Choose files…",
  );
  const list = h("ul", { class: "file-list", "aria-label": "Files to upload" });
  const drop = h(
    "div",
    { class: "dropzone", "data-testid": "dropzone" },
    h("p", { class: "dropzone-text" }, "Drag files here, or ", pick),
    h(
      "p",
      { class: "hint", id: hintId },
      `Optional context: ${allowed.map((e) => e.slice(1).toUpperCase()).join(", ")} · up to ${config.maxUploadMb} MB each`,
    ),
    input,
  );

  const formError = h("div", { class: "form-error", role: "alert" });
  const submit = h("button", { type: "submit", class: "button button-primary button-large", "data-testid": "build-council" }, "Build council");

  function problemFor(file) {
    if (!allowed.includes(extensionOf(file.name))) {
      return `${extensionOf(file.name) || "This type"} is not accepted; allowed: ${allowed.join(" ")}`;
    }
    if (file.size > maxBytes) return `Larger than the ${config.maxUploadMb} MB limit`;
    return null;
  }

  function drawFiles() {
    render(
      list,
      files.map((file, index) => {
        const problem = problemFor(file);
        return h(
          "li",
          { class: ["file-chip", problem && "file-chip-warning"] },
          h("span", { class: "file-name" }, file.name),
          h("span", { class: "file-size" }, formatBytes(file.size)),
          problem ? h("span", { class: "file-problem" }, problem) : null,
          h(
            "button",
            {
              type: "button",
              class: "icon-button",
              "aria-label": `Remove ${file.name}`,
              onclick: () => {
                files.splice(index, 1);
                drawFiles();
                pick.focus();
              },
            },
            h("span", { "aria-hidden": "true" }, "×"),
          ),
        );
      }),
    );
    const problems = files.filter(problemFor).length;
    filesError.textContent = problems
      ? `${problems === 1 ? "One file does" : `${problems} files do`} not meet the upload rules; the server will refuse ${problems === 1 ? "it" : "them"}.`
      : "";
  }

  function addFiles(fileList) {
    for (const file of fileList) {
      if (!files.some((f) => f.name === file.name && f.size === file.size)) files.push(file);
    }
    drawFiles();
  }

  input.addEventListener("change", () => {
    addFiles(input.files);
    input.value = "";
  });
  for (const type of ["dragenter", "dragover"]) {
    drop.addEventListener(type, (event) => {
      event.preventDefault();
      drop.classList.add("dragging");
    });
  }
  for (const type of ["dragleave", "drop"]) {
    drop.addEventListener(type, () => drop.classList.remove("dragging"));
  }
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    if (event.dataTransfer && event.dataTransfer.files) addFiles(event.dataTransfer.files);
  });

  const form = h(
    "form",
    { class: "start-form", novalidate: true },
    h(
      "div",
      { class: "field" },
      h("label", { class: "field-label", for: questionId }, "Your question"),
      question,
      questionError,
    ),
    h("div", { class: "field" }, h("span", { class: "field-label" }, "Context files"), drop, list, filesError),
    formError,
    h("div", { class: "form-actions" }, submit),
  );

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    questionError.textContent = "";
    formError.textContent = "";
    const text = question.value.trim();
    if (!text) {
      questionError.textContent = "Enter a question for the council.";
      question.setAttribute("aria-invalid", "true");
      question.focus();
      return;
    }
    question.removeAttribute("aria-invalid");
    submit.disabled = true;
    submit.textContent = "Creating session…";
    try {
      const created = await api.createSession(text, files);
      refreshSessions();
      if (isCurrent()) {
        navigate(`/s/${encodeURIComponent(created.session_id)}/council`, { state: { autobuild: true } });
      }
    } catch (err) {
      if (!isCurrent()) return;
      const message = errorText(err);
      if (err && (err.status === 413 || err.status === 415 || /file|upload/i.test(`${err.code} ${message}`))) {
        filesError.textContent = message;
        pick.focus();
      } else if (err && err.status === 400 && /question/i.test(`${err.code} ${message}`)) {
        questionError.textContent = message;
        question.focus();
      } else {
        render(formError, notice("error", message));
      }
    } finally {
      if (submit.isConnected) {
        submit.disabled = false;
        submit.textContent = "Build council";
      }
    }
  });

  render(
    container,
    h(
      "section",
      { class: "start" },
      h("h1", null, "Ask the council"),
      h(
        "p",
        { class: "lede" },
        "A council of AI agents, each with its own persona, answers your question, reviews each other's proposals, and a chairman writes the verdict.",
      ),
      form,
    ),
  );
}
