// Small DOM helpers. Every string becomes a text node or a property value, never markup:
// this file is the reason the UI has no innerHTML anywhere.

const SVG_NS = "http://www.w3.org/2000/svg";

// Properties set as DOM properties rather than attributes (so value/checked stay live).
const PROPS = new Set(["value", "checked", "disabled", "selected", "hidden", "open", "indeterminate"]);

function applyProps(el, props) {
  for (const [key, val] of Object.entries(props || {})) {
    if (val === undefined || val === null || val === false) continue;
    if (key === "class") {
      el.setAttribute("class", Array.isArray(val) ? val.filter(Boolean).join(" ") : val);
    } else if (key === "text") {
      el.textContent = String(val);
    } else if (key === "dataset") {
      for (const [k, v] of Object.entries(val)) el.dataset[k] = String(v);
    } else if (key.startsWith("on") && typeof val === "function") {
      el.addEventListener(key.slice(2).toLowerCase(), val);
    } else if (PROPS.has(key)) {
      el[key] = val;
    } else {
      el.setAttribute(key, val === true ? "" : String(val));
    }
  }
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Create an HTML element: h("p", {class: "x"}, "text", otherNode). */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  applyProps(el, props);
  append(el, children);
  return el;
}

/** Create an SVG element; attributes only, text via textContent. */
export function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [key, val] of Object.entries(attrs || {})) {
    if (val === undefined || val === null) continue;
    if (key === "text") el.textContent = String(val);
    else el.setAttribute(key, String(val));
  }
  append(el, children);
  return el;
}

/** Remove every child of an element. */
export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

/** Replace an element's children. */
export function render(el, ...children) {
  clear(el);
  append(el, children);
  return el;
}

let idCounter = 0;
/** A document-unique id for label/aria wiring. */
export function uid(prefix = "id") {
  idCounter += 1;
  return `${prefix}-${idCounter}`;
}

/** Dollars, with more decimals for the tiny amounts one model call costs. */
export function formatCost(usd) {
  const value = Number(usd) || 0;
  if (value === 0) return "$0.00";
  if (value < 0.01) return `$${value.toFixed(4)}`;
  if (value < 100) return `$${value.toFixed(2)}`;
  return `$${Math.round(value).toLocaleString("en-US")}`;
}

export function formatTokens(n) {
  return (Number(n) || 0).toLocaleString("en-US");
}

export function formatBytes(n) {
  const value = Number(n) || 0;
  if (value < 1024) return `${value} B`;
  if (value < 1024 * 1024) return `${(value / 1024).toFixed(1)} KB`;
  return `${(value / (1024 * 1024)).toFixed(1)} MB`;
}

/** A short local date-time, or the raw value when it does not parse. */
export function formatWhen(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return String(iso);
  return date.toLocaleString(undefined, {
    month: "short",
    day: "numeric",
    hour: "2-digit",
    minute: "2-digit",
  });
}

/** Human words for the API's status values ("execution_complete" -> "Execution complete"). */
export function humanize(value) {
  const text = String(value || "").replace(/_/g, " ").trim();
  return text ? text[0].toUpperCase() + text.slice(1) : "";
}

/** Cut long text for one-line places; the full text goes in a title attribute. */
export function truncate(text, max) {
  const value = String(text || "");
  return value.length > max ? `${value.slice(0, max - 1).trimEnd()}…` : value;
}
