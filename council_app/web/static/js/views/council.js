// Council view: build the council, then edit its agents as cards (add, duplicate, delete)
// and save with PUT /council. A 422's errors[] land next to the field they name
// ("agents[1].name"), so the person sees exactly what to fix.

import { api, errorText } from "../api.js";
import { h, render, uid } from "../dom.js";
import { statusRank } from "../status.js";
import { confirmDialog, errorNotice, notice, progressBar, toast, withBusy } from "../ui.js";
import { EFFORTS, MAX_AGENTS } from "/ui/domain.js";

const MAX_PERSONA = 4000;

let modelsInfo = null;
/** GET /api/models once per page load (the model list is cached server-side too). */
function loadModels() {
  if (!modelsInfo) modelsInfo = api.models().catch(() => null);
  return modelsInfo;
}

export async function renderCouncil(page, container) {
  const council = page.summary && page.summary.council_config;
  if (council && Array.isArray(council.agents) && council.agents.length) {
    renderEditor(page, container, council);
  } else {
    renderBuild(page, container);
  }
}

function councilFrom(response) {
  if (response && response.council_config) return response.council_config;
  return response;
}

async function build(page, container, force) {
  const response = await api.buildCouncil(page.id, force);
  if (!page.isCurrent()) return;
  const council = councilFrom(response);
  page.summary = { ...page.summary, council_config: council };
  if (window.history.state && window.history.state.autobuild) window.history.replaceState({ focus: false }, "");
  await page.refreshStatus();
  if (!page.isCurrent()) return;
  if (council && Array.isArray(council.agents) && council.agents.length) {
    renderEditor(page, container, council);
    toast(`Council built: ${council.agents.length} agents`);
  } else {
    await page.refreshSummary();
    renderCouncil(page, container);
  }
}

function renderBuild(page, container) {
  const status = page.status && page.status.status;
  const stored = status === "build_error" ? (page.status && page.status.build_error) || (page.summary && page.summary.build_error) : null;
  // One error slot: the stored failure after a reload, replaced by a live one.
  const error = h("div", { "data-testid": "build-error" }, status === "build_error" ? errorNotice("Building the council failed", stored || "the reason was not recorded") : null);
  const button = h("button", { type: "button", class: "button button-primary", "data-testid": "build-button" }, status === "build_error" ? "Try again" : "Build council");
  const progress = h("div", { class: "build-progress", hidden: true }, progressBar(null, "Building the council"), h("p", { role: "status" }, "The chairman is choosing the council members…"));

  async function start() {
    render(error);
    progress.hidden = false;
    page.markRunning("build_in_progress");
    try {
      await withBusy(button, "Building…", () => build(page, container, false));
    } catch (err) {
      if (!page.isCurrent()) return;
      progress.hidden = true;
      render(error, errorNotice("Building the council failed", errorText(err)));
      button.textContent = "Try again";
      page.refreshStatus().catch(() => {});
    }
  }
  button.addEventListener("click", start);

  render(
    container,
    h(
      "section",
      { class: "panel" },
      h("h2", null, "Build the council"),
      h("p", null, "The chairman reads your question and files, then proposes a council of agents with distinct personas. You can edit every agent before running it."),
      error,
      progress,
      h("div", { class: "form-actions" }, button),
    ),
  );

  if (status === "build_in_progress") {
    progress.hidden = false;
    button.disabled = true;
    page.poll(async () => {
      const s = await page.refreshStatus();
      if (!s || s.status === "build_in_progress") return true;
      await page.refreshSummary();
      if (page.isCurrent()) renderCouncil(page, container);
      return false;
    });
  } else if (window.history.state && window.history.state.autobuild) {
    start();
  }
}

function freshName(base, agents) {
  const names = new Set(agents.map((a) => a.name));
  if (!names.has(base)) return base;
  let n = 2;
  while (names.has(`${base} ${n}`)) n += 1;
  return `${base} ${n}`;
}

function uniqueName(base, agents) {
  return freshName(`${base} (copy)`, agents);
}

function cleanAgent(agent) {
  const out = { ...agent };
  out.name = String(out.name || "").trim();
  out.enable_web_search = Boolean(out.enable_web_search);
  if (!out.model || !String(out.model).trim()) delete out.model;
  else out.model = String(out.model).trim();
  return out;
}

function renderEditor(page, container, original) {
  const state = {
    ...original,
    agents: original.agents.map((a) => ({ reasoning_effort: "medium", enable_web_search: false, ...a })),
  };
  const fieldErrors = new Map(); // field path -> <p class="field-error">
  const errorSummary = h("div", { class: "error-summary", "data-testid": "council-errors" });
  const cards = h("ol", { class: "agent-grid", "aria-label": "Council agents" });

  const nameId = uid("council-name");
  const modelListId = uid("models");
  const modelList = h("datalist", { id: modelListId, "data-testid": "model-list" });
  const strategyId = uid("strategy");

  function errorSlot(path) {
    const el = h("p", { class: "field-error", id: uid("err"), "data-error-for": path });
    fieldErrors.set(path, el);
    return el;
  }

  function field(path, label, control, extra = null) {
    const slot = errorSlot(path);
    control.setAttribute("aria-describedby", [control.getAttribute("aria-describedby"), slot.id].filter(Boolean).join(" "));
    control.dataset.field = path;
    const controlId = control.id || uid("f");
    control.id = controlId;
    return h("div", { class: "field", dataset: { fieldWrap: path } }, h("label", { class: "field-label", for: controlId }, label), control, extra, slot);
  }

  function agentCard(agent, index) {
    const base = `agents[${index}]`;
    const name = h("input", {
      type: "text",
      value: agent.name || "",
      autocomplete: "off",
      maxlength: 200,
      oninput: (e) => {
        agent.name = e.target.value;
        title.textContent = agent.name.trim() || `Agent ${index + 1}`;
      },
    });
    const counter = h("span", { class: "char-count", "aria-live": "off" });
    const updateCounter = () => {
      const n = (agent.persona || "").length;
      counter.textContent = `${n} / ${MAX_PERSONA}`;
      counter.classList.toggle("over", n > MAX_PERSONA);
    };
    const persona = h("textarea", {
      rows: 6,
      value: agent.persona || "",
      oninput: (e) => {
        agent.persona = e.target.value;
        updateCounter();
      },
    });
    updateCounter();
    const effort = h(
      "select",
      { onchange: (e) => (agent.reasoning_effort = e.target.value) },
      EFFORTS.map((value) => h("option", { value, selected: value === agent.reasoning_effort }, value)),
    );
    if (!EFFORTS.includes(agent.reasoning_effort)) {
      effort.append(h("option", { value: agent.reasoning_effort, selected: true }, String(agent.reasoning_effort)));
    }
    const webId = uid("web");
    const web = h("input", {
      type: "checkbox",
      id: webId,
      checked: Boolean(agent.enable_web_search),
      dataset: { field: `${base}.enable_web_search` },
      onchange: (e) => (agent.enable_web_search = e.target.checked),
    });
    const model = h("input", {
      type: "text",
      list: modelListId,
      value: agent.model || "",
      placeholder: "Server default",
      autocomplete: "off",
      spellcheck: "false",
      oninput: (e) => (agent.model = e.target.value),
    });
    const title = h("h3", { class: "agent-title" }, (agent.name || "").trim() || `Agent ${index + 1}`);
    const cardError = errorSlot(base);
    const webError = errorSlot(`${base}.enable_web_search`);
    web.setAttribute("aria-describedby", webError.id);
    return h(
      "li",
      { class: "card agent-card", dataset: { index, testid: "agent-card" } },
      h(
        "div",
        { class: "card-head" },
        h("span", { class: "agent-number", "aria-hidden": "true" }, String(index + 1)),
        title,
        h(
          "div",
          { class: "card-actions" },
          h(
            "button",
            {
              type: "button",
              class: "button button-small",
              disabled: state.agents.length >= MAX_AGENTS,
              "aria-label": `Duplicate ${agent.name || `agent ${index + 1}`}`,
              onclick: () => {
                const copy = { ...agent, name: uniqueName(agent.name || "Agent", state.agents) };
                state.agents.splice(index + 1, 0, copy);
                draw();
                focusCard(index + 1);
              },
            },
            "Duplicate",
          ),
          h(
            "button",
            {
              type: "button",
              class: "button button-small button-danger-quiet",
              disabled: state.agents.length <= 1,
              "aria-label": `Delete ${agent.name || `agent ${index + 1}`}`,
              onclick: () => {
                state.agents.splice(index, 1);
                draw();
                focusCard(Math.min(index, state.agents.length - 1));
              },
            },
            "Delete",
          ),
        ),
      ),
      cardError,
      field(`${base}.name`, "Name", name),
      field(`${base}.persona`, "Persona", persona, counter),
      h(
        "div",
        { class: "field-row" },
        field(`${base}.reasoning_effort`, "Reasoning effort", effort),
        field(`${base}.model`, "Model", model),
        h(
          "div",
          { class: "field field-check", dataset: { fieldWrap: `${base}.enable_web_search` } },
          h("label", { for: webId, class: "check" }, web, " Web search"),
          webError,
        ),
      ),
    );
  }

  function focusCard(index) {
    const input = cards.querySelector(`[data-field="agents[${index}].name"]`);
    if (input) input.focus();
  }

  function draw() {
    clearErrors();
    for (const key of [...fieldErrors.keys()]) if (key.startsWith("agents[")) fieldErrors.delete(key);
    render(cards, state.agents.map(agentCard));
    addButton.disabled = state.agents.length >= MAX_AGENTS;
    countNote.textContent = `${state.agents.length} of at most ${MAX_AGENTS} agents`;
  }

  function clearErrors() {
    errorSummary.textContent = "";
    for (const el of fieldErrors.values()) el.textContent = "";
    for (const el of container.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
  }

  function showErrors(err) {
    clearErrors();
    const unplaced = [];
    let first = null;
    for (const item of err.errors || []) {
      const path = String(item.field || "");
      const slot = fieldErrors.get(path);
      if (slot) {
        slot.textContent = item.message;
        const control = container.querySelector(`[data-field="${CSS.escape(path)}"]`);
        if (control) {
          control.setAttribute("aria-invalid", "true");
          first = first || control;
        } else {
          first = first || slot;
        }
      } else {
        unplaced.push(path ? `${path}: ${item.message}` : item.message);
      }
    }
    const count = (err.errors || []).length;
    render(
      errorSummary,
      notice(
        "error",
        h("strong", null, count ? `Not saved: ${count === 1 ? "1 problem" : `${count} problems`} to fix.` : "Not saved."),
        " ",
        err.errors && err.errors.length ? null : errorText(err),
        unplaced.length ? h("ul", null, unplaced.map((text) => h("li", null, text))) : null,
      ),
    );
    if (first) {
      if (!first.hasAttribute("tabindex") && !/^(INPUT|SELECT|TEXTAREA|BUTTON)$/.test(first.tagName)) first.setAttribute("tabindex", "-1");
      first.focus();
    }
  }

  function payload() {
    const out = { ...state, agents: state.agents.map(cleanAgent) };
    const chairman = String(out.chairman_model || "").trim();
    if (chairman) out.chairman_model = chairman;
    else if (original.chairman_model) out.chairman_model = null; // back to the server default
    else delete out.chairman_model;
    return out;
  }

  async function save() {
    try {
      const response = await api.saveCouncil(page.id, payload());
      if (!page.isCurrent()) return false;
      clearErrors();
      const saved = councilFrom(response);
      page.summary = { ...page.summary, council_config: saved && saved.agents ? saved : payload() };
      page.refreshStatus().catch(() => {});
      return true;
    } catch (err) {
      if (!page.isCurrent()) return false;
      if (err && err.status === 422) showErrors(err);
      else render(errorSummary, notice("error", `Not saved: ${errorText(err)}`));
      return false;
    }
  }

  const councilName = h("input", {
    id: nameId,
    type: "text",
    value: state.council_name || "",
    oninput: (e) => (state.council_name = e.target.value),
  });
  const strategy = h("textarea", {
    id: strategyId,
    rows: 3,
    value: state.strategy_summary || "",
    oninput: (e) => (state.strategy_summary = e.target.value),
  });
  const chairmanModel = h("input", {
    type: "text",
    list: modelListId,
    value: state.chairman_model || "",
    placeholder: "Server default",
    autocomplete: "off",
    spellcheck: "false",
    "data-testid": "chairman-model",
    oninput: (e) => (state.chairman_model = e.target.value),
  });
  const searchNote = h("p", { class: "hint", hidden: true, "data-testid": "web-search-note" });
  // Suggestions from GET /api/models; the API still judges (a 422 names the field).
  loadModels().then((info) => {
    if (!info || !page.isCurrent()) return;
    render(modelList, (info.models || []).map((name) => h("option", { value: name })));
    if (info.default_chairman_model) chairmanModel.placeholder = `Server default (${info.default_chairman_model})`;
    const web = info.provider && info.provider.web_search;
    if (web && web.available === false) {
      searchNote.hidden = false;
      searchNote.textContent = "This provider has no web search: agents with “Web search” on answer without it.";
    }
  });
  const addButton = h(
    "button",
    {
      type: "button",
      class: "button",
      "data-testid": "add-agent",
      onclick: () => {
        state.agents.push({
          name: freshName("New agent", state.agents),
          persona: "",
          reasoning_effort: "medium",
          enable_web_search: false,
        });
        draw();
        focusCard(state.agents.length - 1);
      },
    },
    "Add agent",
  );
  const countNote = h("span", { class: "hint" });
  const saveButton = h("button", { type: "button", class: "button", "data-testid": "save-council" }, "Save council");
  const runButton = h("button", { type: "button", class: "button button-primary", "data-testid": "save-and-execute" }, "Save and execute");
  const rebuildButton = h("button", { type: "button", class: "button button-quiet" }, "Rebuild from scratch");

  saveButton.addEventListener("click", () =>
    withBusy(saveButton, "Saving…", async () => {
      if (await save()) toast("Council saved");
    }),
  );
  runButton.addEventListener("click", () =>
    withBusy(runButton, "Starting…", async () => {
      if (!(await save())) return;
      try {
        const already = page.status && page.status.status;
        await api.execute(page.id, already && /^(execution|review|verdict|synthesiz)/.test(already));
        page.go("run");
      } catch (err) {
        if (page.isCurrent()) render(errorSummary, notice("error", `Could not start: ${errorText(err)}`));
      }
    }),
  );
  rebuildButton.addEventListener("click", async () => {
    const ok = await confirmDialog({
      title: "Rebuild the council?",
      text: "The chairman proposes a new council; your edits to these agents are lost.",
      ok: "Rebuild",
    });
    if (!ok) return;
    await withBusy(rebuildButton, "Rebuilding…", async () => {
      try {
        await build(page, container, true);
      } catch (err) {
        if (page.isCurrent()) render(errorSummary, notice("error", `Rebuild failed: ${errorText(err)}`));
      }
    });
  });

  const form = h(
    "form",
    { class: "council-form", novalidate: true, onsubmit: (e) => e.preventDefault() },
    h(
      "div",
      { class: "panel council-meta" },
      field("council_name", "Council name", councilName),
      field("strategy_summary", "Strategy", strategy),
      field("chairman_model", "Chairman model (writes the verdict)", chairmanModel),
      modelList,
    ),
    statusRank(page.status && page.status.status) >= 3
      ? notice("info", "Saving changes starts over from here: the proposals, reviews and verdict are cleared.")
      : null,
    errorSummary,
    h("div", { class: "section-head" }, h("h2", null, "Agents"), countNote),
    searchNote,
    cards,
    h("div", { class: "form-actions sticky-actions" }, addButton, h("span", { class: "spacer" }), rebuildButton, saveButton, runButton),
  );
  render(container, form);
  draw();
}
