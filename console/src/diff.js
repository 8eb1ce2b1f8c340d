// Side-by-side JSON diff of an event's `before` and `after` (google.protobuf.Struct values).
// Pure: diffJson lists changes by path; renderDiff builds DOM rows aligned left/right.

const isObj = (v) => v !== null && typeof v === "object";

/** A readable path: a.b[2]."odd key". */
export function pathText(parts) {
  let s = "";
  for (const p of parts) {
    if (typeof p === "number") s += `[${p}]`;
    else s += (s ? "." : "") + (/^[A-Za-z_$][\w$-]*$/.test(p) ? p : JSON.stringify(p));
  }
  return s || "(root)";
}

function keysOf(a, b) {
  if (Array.isArray(a) && Array.isArray(b)) {
    return Array.from({ length: Math.max(a.length, b.length) }, (_, i) => i);
  }
  const seen = new Set([...Object.keys(a), ...Object.keys(b)]);
  return [...seen].sort();
}

const sameKind = (a, b) => isObj(a) && isObj(b) && Array.isArray(a) === Array.isArray(b);
const has = (o, k) => o !== undefined && o !== null && Object.prototype.hasOwnProperty.call(o, k);

/**
 * Changes from `before` to `after` at the leaves: [{kind: "added"|"removed"|"changed", path,
 * before, after}]. Objects and arrays are compared key by key (arrays by index).
 */
export function diffJson(before, after, path = []) {
  const out = [];
  if (sameKind(before, after)) {
    for (const k of keysOf(before, after)) {
      const inB = has(before, k);
      const inA = has(after, k);
      if (inB && !inA) out.push({ kind: "removed", path: [...path, k], before: before[k] });
      else if (!inB && inA) out.push({ kind: "added", path: [...path, k], after: after[k] });
      else out.push(...diffJson(before[k], after[k], [...path, k]));
    }
  } else if (JSON.stringify(before) !== JSON.stringify(after)) {
    out.push({ kind: "changed", path, before, after });
  }
  return out;
}

const INDENT = "  ";

/** Pretty lines of a value as it appears under `label` (a key or index line prefix). */
function lines(value, depth, label, comma) {
  const pad = INDENT.repeat(depth);
  const head = label === null ? "" : `${typeof label === "number" ? "" : JSON.stringify(label) + ": "}`;
  if (!isObj(value)) return [pad + head + JSON.stringify(value) + comma];
  const arr = Array.isArray(value);
  const keys = arr ? value.map((_, i) => i) : Object.keys(value).sort();
  if (!keys.length) return [pad + head + (arr ? "[]" : "{}") + comma];
  const out = [pad + head + (arr ? "[" : "{")];
  keys.forEach((k, i) => out.push(...lines(value[k], depth + 1, k, i < keys.length - 1 ? "," : "")));
  out.push(pad + (arr ? "]" : "}") + comma);
  return out;
}

/**
 * Aligned rows for a side-by-side view: [{left, right, kind}] with kind one of "same",
 * "added", "removed", "changed"; a missing side is null.
 */
export function alignedRows(before, after) {
  const rows = [];
  // cb / ca: the trailing comma of this value on the left / right side.
  const walk = (b, a, depth, label, cb, ca, bHas, aHas) => {
    if (bHas && !aHas) {
      for (const l of lines(b, depth, label, cb)) rows.push({ left: l, right: null, kind: "removed" });
      return;
    }
    if (!bHas && aHas) {
      for (const l of lines(a, depth, label, ca)) rows.push({ left: null, right: l, kind: "added" });
      return;
    }
    if (sameKind(b, a)) {
      const pad = INDENT.repeat(depth);
      const head = label === null || typeof label === "number" ? "" : JSON.stringify(label) + ": ";
      const arr = Array.isArray(b);
      const open = pad + head + (arr ? "[" : "{");
      rows.push({ left: open, right: open, kind: "same" });
      const keys = keysOf(b, a);
      const lastB = keys.filter((k) => has(b, k)).pop();
      const lastA = keys.filter((k) => has(a, k)).pop();
      for (const k of keys) {
        walk(b[k], a[k], depth + 1, k, k === lastB ? "" : ",", k === lastA ? "" : ",", has(b, k), has(a, k));
      }
      const close = pad + (arr ? "]" : "}");
      rows.push({ left: close + cb, right: close + ca, kind: "same" });
      return;
    }
    const lb = lines(b, depth, label, cb);
    const la = lines(a, depth, label, ca);
    const kind = JSON.stringify(b) === JSON.stringify(a) ? "same" : "changed";
    for (let i = 0; i < Math.max(lb.length, la.length); i++) {
      rows.push({ left: lb[i] ?? null, right: la[i] ?? null, kind });
    }
  };
  walk(before ?? {}, after ?? {}, 0, null, "", "", true, true);
  return rows;
}

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

const short = (v) => {
  const s = JSON.stringify(v);
  return s.length > 60 ? s.slice(0, 57) + "…" : s;
};

/** The diff view: a list of changed paths and a side-by-side table. */
export function renderDiff(before, after) {
  const root = el("div", "diff");
  if (before == null && after == null) {
    root.append(el("p", "empty muted", "This event records no before or after state."));
    return root;
  }
  const changes = diffJson(before ?? {}, after ?? {});
  const summary = el("ul", "diff-summary");
  summary.setAttribute("aria-label", "Changed paths");
  if (!changes.length) summary.append(el("li", "muted", "No difference between before and after."));
  for (const c of changes) {
    const li = el("li", `chg chg-${c.kind}`);
    const sign = { added: "+", removed: "−", changed: "~" }[c.kind];
    li.append(el("span", "sign", sign), el("code", "path", pathText(c.path)), " ");
    const what = c.kind === "added" ? `added ${short(c.after)}` : c.kind === "removed" ? `removed (was ${short(c.before)})` : `${short(c.before)} → ${short(c.after)}`;
    li.append(el("span", "what", what));
    summary.append(li);
  }
  root.append(summary);

  const table = el("table", "diff-table");
  const cap = el("caption", "visually-hidden", "Before (left) and after (right), changes marked");
  const head = el("thead");
  const hr = el("tr");
  hr.append(el("th", "", before == null ? "Before (none)" : "Before"), el("th", "", after == null ? "After (none)" : "After"));
  hr.children[0].scope = "col";
  hr.children[1].scope = "col";
  head.append(hr);
  const body = el("tbody");
  for (const r of alignedRows(before, after)) {
    const tr = el("tr", `d-${r.kind}`);
    const l = el("td", r.left === null ? "blank" : r.kind === "removed" || r.kind === "changed" ? "mark-old" : "");
    const rr = el("td", r.right === null ? "blank" : r.kind === "added" || r.kind === "changed" ? "mark-new" : "");
    l.textContent = r.left ?? "";
    rr.textContent = r.right ?? "";
    if (r.kind !== "same") {
      if (r.left !== null) l.setAttribute("aria-label", `${r.kind === "removed" ? "removed" : "changed from"}: ${r.left.trim()}`);
      if (r.right !== null) rr.setAttribute("aria-label", `${r.kind === "added" ? "added" : "changed to"}: ${r.right.trim()}`);
    }
    tr.append(l, rr);
    body.append(tr);
  }
  table.append(cap, head, body);
  const wrap = el("div", "diff-wrap");
  wrap.append(table);
  root.append(wrap);
  return root;
}
