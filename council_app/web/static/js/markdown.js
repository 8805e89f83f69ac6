// A small Markdown renderer for model output that cannot inject HTML: it builds DOM nodes
// directly and puts every piece of text in a text node, so "<script>" stays text. Raw HTML
// in the source is shown literally. Links only keep http(s), mailto and in-page targets.
//
// Supported: ATX headings, paragraphs, emphasis (** __ * _), ~~strike~~, `code`, fenced
// code blocks, block quotes, nested bullet and numbered lists, GFM tables, rules, links.

import { h } from "./dom.js";

const SAFE_URL = /^(https?:|mailto:|#)/i;

const INLINE_RULES = [
  { kind: "code", re: /`([^`\n]+)`/ },
  // The URL may hold one level of balanced parentheses: [x](https://w.org/a_(b)).
  { kind: "link", re: /\[([^\]\n]+)\]\(\s*<?((?:[^()\s<>]|\([^()\s]*\))+)>?(?:\s+"[^"]*")?\s*\)/ },
  { kind: "strong", re: /\*\*(?=\S)([\s\S]*?\S)\*\*|__(?=\S)([\s\S]*?\S)__/ },
  { kind: "del", re: /~~(?=\S)([\s\S]*?\S)~~/ },
  { kind: "em", re: /\*(?=[^\s*])([^*]*?[^\s*])\*|(?<![\w])_(?=[^\s_])([^_]*?[^\s_])_(?![\w])/ },
  { kind: "autolink", re: /\bhttps?:\/\/[^\s<>()]+[^\s<>().,;:!?'"]/ },
];

/** Inline Markdown to an array of DOM nodes. */
export function renderInline(text) {
  const nodes = [];
  let rest = String(text);
  while (rest) {
    let best = null;
    for (const rule of INLINE_RULES) {
      const match = rule.re.exec(rest);
      if (match && (best === null || match.index < best.match.index)) best = { rule, match };
    }
    if (!best) {
      nodes.push(document.createTextNode(rest));
      break;
    }
    const { rule, match } = best;
    if (match.index > 0) nodes.push(document.createTextNode(rest.slice(0, match.index)));
    const inner = match[1] !== undefined ? match[1] : match[2];
    switch (rule.kind) {
      case "code":
        nodes.push(h("code", null, inner));
        break;
      case "link": {
        const href = match[2];
        if (SAFE_URL.test(href)) {
          const external = !href.startsWith("#");
          nodes.push(
            h(
              "a",
              { href, rel: external ? "noopener noreferrer nofollow" : null, target: external ? "_blank" : null },
              renderInline(match[1]),
            ),
          );
        } else {
          nodes.push(...renderInline(match[1]));
        }
        break;
      }
      case "autolink":
        nodes.push(h("a", { href: match[0], rel: "noopener noreferrer nofollow", target: "_blank" }, match[0]));
        break;
      default:
        nodes.push(h(rule.kind, null, renderInline(inner)));
    }
    rest = rest.slice(match.index + match[0].length);
  }
  return nodes;
}

const FENCE = /^ {0,3}(`{3,}|~{3,})\s*([\w+-]*)/;
const HEADING = /^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$/;
const RULE = /^ {0,3}([-*_])(\s*\1){2,}\s*$/;
const QUOTE = /^ {0,3}>\s?/;
const LIST_ITEM = /^(\s*)([-*+]|\d{1,9}[.)])\s+(.*)$/;
const TABLE_SEP = /^\s*\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*$/;

function splitRow(line) {
  let row = line.trim();
  if (row.startsWith("|")) row = row.slice(1);
  if (row.endsWith("|") && !row.endsWith("\\|")) row = row.slice(0, -1);
  return row.split(/(?<!\\)\|/).map((cell) => cell.trim().replace(/\\\|/g, "|"));
}

function isBlockStart(line, next) {
  return (
    FENCE.test(line) ||
    HEADING.test(line) ||
    RULE.test(line) ||
    QUOTE.test(line) ||
    LIST_ITEM.test(line) ||
    (line.includes("|") && next !== undefined && TABLE_SEP.test(next))
  );
}

function renderTable(lines) {
  const head = splitRow(lines[0]);
  const aligns = splitRow(lines[1]).map((cell) => {
    const left = cell.startsWith(":");
    const right = cell.endsWith(":");
    if (left && right) return "center";
    if (right) return "right";
    return null;
  });
  const cell = (tag, text, i) =>
    h(tag, { class: aligns[i] ? `align-${aligns[i]}` : null }, renderInline(text));
  const body = lines.slice(2).map((line) => {
    const cells = splitRow(line);
    return h("tr", null, head.map((_, i) => cell("td", cells[i] || "", i)));
  });
  return h(
    "div",
    { class: "table-wrap" },
    h("table", null, h("thead", null, h("tr", null, head.map((text, i) => cell("th", text, i)))), h("tbody", null, body)),
  );
}

function renderList(lines) {
  // Build nested lists from indentation: each item remembers the indent it started at.
  const root = { indent: -1, el: null, children: [] };
  const stack = [root];
  let lastItem = null;
  for (const line of lines) {
    const match = LIST_ITEM.exec(line);
    if (!match) {
      // Continuation text belongs to the item above.
      if (lastItem) lastItem.text += ` ${line.trim()}`;
      continue;
    }
    const indent = match[1].replace(/\t/g, "    ").length;
    const ordered = /\d/.test(match[2]);
    while (stack.length > 1 && indent <= stack[stack.length - 1].indent) stack.pop();
    const parent = stack[stack.length - 1];
    const item = { indent, ordered, start: ordered ? parseInt(match[2], 10) : null, text: match[3], children: [] };
    parent.children.push(item);
    stack.push(item);
    lastItem = item;
  }
  const build = (items) => {
    const groups = [];
    for (const item of items) {
      const group = groups[groups.length - 1];
      if (group && group.ordered === item.ordered) group.items.push(item);
      else groups.push({ ordered: item.ordered, items: [item] });
    }
    return groups.map((group) => {
      const start = group.ordered && group.items[0].start !== 1 ? group.items[0].start : null;
      return h(
        group.ordered ? "ol" : "ul",
        { start },
        group.items.map((item) => {
          const task = /^\[([ xX])\]\s+/.exec(item.text);
          const text = task ? item.text.slice(task[0].length) : item.text;
          return h(
            "li",
            null,
            task ? h("input", { type: "checkbox", disabled: true, checked: task[1] !== " " }) : null,
            task ? " " : null,
            renderInline(text),
            item.children.length ? build(item.children) : null,
          );
        }),
      );
    });
  };
  return build(root.children);
}

function renderBlocks(lines) {
  const out = [];
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    if (!line.trim()) {
      i += 1;
      continue;
    }
    const fence = FENCE.exec(line);
    if (fence) {
      const marker = fence[1];
      const body = [];
      i += 1;
      while (i < lines.length && !lines[i].trim().startsWith(marker)) {
        body.push(lines[i]);
        i += 1;
      }
      i += 1; // closing fence (or end of input)
      const code = h("code", { class: fence[2] ? `language-${fence[2]}` : null }, body.join("\n"));
      out.push(h("pre", null, code));
      continue;
    }
    const heading = HEADING.exec(line);
    if (heading) {
      // Model headings sit inside a page that already has h1/h2: "#" and "##" become h3.
      const level = Math.min(6, Math.max(3, heading[1].length + 1));
      out.push(h(`h${level}`, null, renderInline(heading[2])));
      i += 1;
      continue;
    }
    if (RULE.test(line)) {
      out.push(h("hr"));
      i += 1;
      continue;
    }
    if (QUOTE.test(line)) {
      const body = [];
      while (i < lines.length && lines[i].trim() && QUOTE.test(lines[i])) {
        body.push(lines[i].replace(QUOTE, ""));
        i += 1;
      }
      out.push(h("blockquote", null, renderBlocks(body)));
      continue;
    }
    if (line.includes("|") && i + 1 < lines.length && TABLE_SEP.test(lines[i + 1])) {
      const rows = [line, lines[i + 1]];
      i += 2;
      while (i < lines.length && lines[i].trim() && lines[i].includes("|")) {
        rows.push(lines[i]);
        i += 1;
      }
      out.push(renderTable(rows));
      continue;
    }
    if (LIST_ITEM.test(line)) {
      const items = [];
      while (i < lines.length) {
        const current = lines[i];
        if (!current.trim()) {
          // A blank line ends the list unless another item (or indented text) follows.
          const next = lines[i + 1];
          if (next !== undefined && (LIST_ITEM.test(next) || /^\s{2,}\S/.test(next))) {
            i += 1;
            continue;
          }
          break;
        }
        if (!LIST_ITEM.test(current) && !/^\s+\S/.test(current) && items.length && isBlockStart(current, lines[i + 1])) break;
        if (!LIST_ITEM.test(current) && !/^\s/.test(current) && items.length) {
          // Lazy continuation of the previous item's paragraph.
          items.push(`  ${current}`);
          i += 1;
          continue;
        }
        items.push(current);
        i += 1;
      }
      out.push(...renderList(items));
      continue;
    }
    const para = [line.trim()];
    i += 1;
    while (i < lines.length && lines[i].trim() && !isBlockStart(lines[i], lines[i + 1])) {
      para.push(lines[i].trim());
      i += 1;
    }
    const parts = [];
    para.forEach((text, index) => {
      if (index > 0) parts.push(para[index - 1].endsWith("\\") ? h("br") : " ");
      parts.push(renderInline(text.replace(/\\$/, "")));
    });
    out.push(h("p", null, parts));
  }
  return out;
}

/** Markdown source to a DocumentFragment of safe DOM nodes. */
export function renderMarkdown(source) {
  const fragment = document.createDocumentFragment();
  const lines = String(source || "").replace(/\r\n?/g, "\n").split("\n");
  fragment.append(...renderBlocks(lines));
  return fragment;
}
