// Activity chart: events per time bucket, stacked by outcome, as inline SVG (no library).

const SVG = "http://www.w3.org/2000/svg";
const HOUR = 3600e3;
const DAY = 24 * HOUR;
export const OUTCOME_ORDER = ["success", "failure", "denied", ""];
const OUTCOME_LABEL = { success: "success", failure: "failure", denied: "denied", "": "other" };

const floorTo = {
  hour: (t) => Math.floor(t / HOUR) * HOUR,
  day: (t) => Math.floor(t / DAY) * DAY,
  week: (t) => {
    const d = Math.floor(t / DAY) * DAY;
    const dow = (new Date(d).getUTCDay() + 6) % 7; // Monday = 0
    return d - dow * DAY;
  },
  month: (t) => {
    const d = new Date(t);
    return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1);
  },
};
const nextOf = {
  hour: (t) => t + HOUR,
  day: (t) => t + DAY,
  week: (t) => t + 7 * DAY,
  month: (t) => {
    const d = new Date(t);
    return Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1);
  },
};

/** The Summarize bucket for a time range (ms; start may be null for "all time"). */
export function bucketFor(startMs, endMs) {
  if (startMs == null) return "TIME_BUCKET_DAY";
  return endMs - startMs <= 2 * DAY + 1 ? "TIME_BUCKET_HOUR" : "TIME_BUCKET_DAY";
}

/**
 * Buckets for drawing: [{start, end, counts: {outcome: n}, total}], gaps filled with zeros,
 * day buckets merged into weeks or months when there would be too many bars.
 */
export function buildBuckets(rows, bucketEnum, startMs, endMs, maxBars = 120) {
  let unit = bucketEnum === "TIME_BUCKET_HOUR" ? "hour" : "day";
  const points = rows.map((r) => ({
    t: Date.parse(r.bucketStart),
    key: (r.keys && r.keys[0]) || "",
    n: Number(r.count ?? 0),
  }));
  let lo = startMs ?? (points.length ? Math.min(...points.map((p) => p.t)) : null);
  let hi = endMs ?? (points.length ? Math.max(...points.map((p) => p.t)) + 1 : null);
  if (points.length) {
    lo = Math.min(lo, ...points.map((p) => p.t));
    hi = Math.max(hi, ...points.map((p) => p.t + 1));
  }
  if (lo == null || hi == null) return { unit, buckets: [] };
  const span = hi - lo;
  if (unit === "day" && span / DAY > maxBars) unit = span / (7 * DAY) > maxBars ? "month" : "week";
  if (unit === "hour" && span / HOUR > maxBars) unit = "day";
  const buckets = [];
  const index = new Map();
  for (let t = floorTo[unit](lo); t < hi && buckets.length < 5000; t = nextOf[unit](t)) {
    const b = { start: t, end: nextOf[unit](t), counts: {}, total: 0 };
    index.set(t, b);
    buckets.push(b);
  }
  for (const p of points) {
    const b = index.get(floorTo[unit](p.t));
    if (!b) continue;
    b.counts[p.key] = (b.counts[p.key] ?? 0) + p.n;
    b.total += p.n;
  }
  return { unit, buckets };
}

function niceMax(v) {
  if (v <= 4) return Math.max(1, v);
  if (v <= 10) return v + (v % 2);
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

const pad2 = (n) => String(n).padStart(2, "0");
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

export function bucketLabel(t, unit, long = false) {
  const d = new Date(t);
  const day = `${d.getUTCDate()} ${MONTHS[d.getUTCMonth()]}`;
  if (unit === "hour") return long ? `${day} ${pad2(d.getUTCHours())}:00–${pad2((d.getUTCHours() + 1) % 24)}:00 UTC` : `${pad2(d.getUTCHours())}:00`;
  if (unit === "month") return `${MONTHS[d.getUTCMonth()]} ${d.getUTCFullYear()}`;
  if (unit === "week") return long ? `week of ${day} ${d.getUTCFullYear()}` : day;
  return long ? `${day} ${d.getUTCFullYear()}` : day;
}

function s(tag, attrs = {}, text) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

/**
 * Renders the chart into `container`. `onPick(start, end)` is called when a bar is activated
 * (click, Enter or Space).
 */
export function renderChart(container, { rows, bucket, startMs, endMs, onPick }) {
  container.replaceChildren();
  const { unit, buckets } = buildBuckets(rows, bucket, startMs, endMs);
  const total = buckets.reduce((n, b) => n + b.total, 0);
  if (!buckets.length || total === 0) {
    const p = document.createElement("p");
    p.className = "empty muted";
    p.textContent = "No events in this range.";
    container.append(p);
    return { total: 0, unit };
  }
  const width = Math.max(280, container.clientWidth || 640);
  const height = 180;
  const m = { l: 36, r: 8, t: 10, b: 24 };
  const w = width - m.l - m.r;
  const h = height - m.t - m.b;
  const max = niceMax(Math.max(...buckets.map((b) => b.total)));
  const step = w / buckets.length;
  const barW = Math.max(1, Math.min(36, step * 0.78));

  const byOutcome = {};
  for (const b of buckets) for (const [k, n] of Object.entries(b.counts)) byOutcome[k] = (byOutcome[k] ?? 0) + n;
  const busiest = buckets.reduce((a, b) => (b.total > a.total ? b : a));
  const desc =
    `${total} events from ${bucketLabel(buckets[0].start, unit, true)} to ${bucketLabel(buckets[buckets.length - 1].start, unit, true)}: ` +
    OUTCOME_ORDER.filter((k) => byOutcome[k]).map((k) => `${byOutcome[k]} ${OUTCOME_LABEL[k]}`).join(", ") +
    `. Busiest ${unit}: ${bucketLabel(busiest.start, unit, true)} with ${busiest.total}.`;

  const svg = s("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "group", "aria-label": desc, class: "chart-svg" });
  const ticks = max % 2 === 0 || max > 10 ? [0, max / 2, max] : [0, max];
  for (const v of ticks) {
    const y = m.t + h - (v / max) * h;
    svg.append(s("line", { x1: m.l, x2: width - m.r, y1: y, y2: y, class: "grid-line" }));
    svg.append(s("text", { x: m.l - 6, y: y + 4, "text-anchor": "end", class: "axis" }, Number.isInteger(v) ? String(v) : v.toFixed(1)));
  }
  const labelEvery = Math.ceil(buckets.length / Math.max(2, Math.floor(w / 64)));
  buckets.forEach((b, i) => {
    const x = m.l + i * step + (step - barW) / 2;
    const g = s("g", { class: "bar" });
    let y = m.t + h;
    for (const k of OUTCOME_ORDER) {
      const n = b.counts[k];
      if (!n) continue;
      const bh = (n / max) * h;
      y -= bh;
      g.append(s("rect", { x, y, width: barW, height: Math.max(bh, 0.5), class: `o-${k || "other"}` }));
    }
    const label = `${bucketLabel(b.start, unit, true)}: ${b.total} event${b.total === 1 ? "" : "s"}` +
      (b.total ? ` (${OUTCOME_ORDER.filter((k) => b.counts[k]).map((k) => `${b.counts[k]} ${OUTCOME_LABEL[k]}`).join(", ")})` : "");
    // A transparent hit area over the whole column, so small bars are easy to hit.
    const hit = s("rect", { x: m.l + i * step, y: m.t, width: step, height: h, class: "hit" });
    hit.append(s("title", {}, label + (onPick && b.total ? ". Click to search this range." : "")));
    g.prepend(hit);
    if (onPick && b.total) {
      g.setAttribute("tabindex", "0");
      g.setAttribute("role", "button");
      g.setAttribute("aria-label", `${label}. Search this range`);
      const pick = () => onPick(b.start, b.end);
      g.addEventListener("click", pick);
      g.addEventListener("keydown", (e) => {
        if (e.key === "Enter" || e.key === " ") {
          e.preventDefault();
          pick();
        }
      });
    }
    svg.append(g);
    if (i % labelEvery === 0) {
      svg.append(s("text", { x: m.l + i * step + step / 2, y: height - 6, "text-anchor": "middle", class: "axis" }, bucketLabel(b.start, unit)));
    }
  });
  container.append(svg);

  const legend = document.createElement("ul");
  legend.className = "legend";
  for (const k of OUTCOME_ORDER) {
    if (!byOutcome[k]) continue;
    const li = document.createElement("li");
    const sw = document.createElement("span");
    sw.className = `swatch o-${k || "other"}`;
    sw.setAttribute("aria-hidden", "true");
    li.append(sw, `${OUTCOME_LABEL[k]} ${byOutcome[k].toLocaleString("en")}`);
    legend.append(li);
  }
  const per = document.createElement("li");
  per.className = "muted";
  per.textContent = `per ${unit}, UTC`;
  legend.append(per);
  container.append(legend);
  return { total, unit };
}
