// auditum web console: search, event detail with before/after diff, export with a hash check,
// activity chart, and in-page proof verification. Talks only to the same-origin JSON API
// under /api/v1/ (proto3 JSON mapping). The API key lives in sessionStorage, never in a URL.
import {
  verifyProof, columnsOfStoredEvent, parseVerifierKey, sha256, toHex, fromBase64,
} from "./verify.js";
import { renderDiff } from "./diff.js";
import { renderChart, bucketFor } from "./chart.js";

const $ = (id) => document.getElementById(id);
const KEY_STORE = "auditum.apiKey"; // sessionStorage: this tab only
const TRUST_STORE = "auditum.trustedKeys"; // localStorage: {log: verifier key}
const TENANT_STORE = "auditum.lastTenant"; // localStorage

const state = {
  info: null,
  key: null,
  applied: null, // the params of the search on screen
  gen: 0,
  events: [],
  byRow: new Map(),
  nextPageToken: "",
  loading: false,
  detail: null, // the StoredEvent open in the dialog
  detailRow: null,
  proofText: null,
  chart: null,
};

// ------------------------------------------------------------------ small helpers

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) if (c !== null && c !== undefined && c !== false) e.append(c);
  return e;
}

function announce(text) {
  const live = $("live");
  live.textContent = "";
  // A fresh text node makes screen readers announce repeated messages too.
  setTimeout(() => (live.textContent = text), 30);
}

function showBanner(text, kind = "error") {
  $("banner-text").textContent = text;
  $("banner").className = `banner banner-${kind}`;
  $("banner").hidden = false;
}

function hideBanner() {
  $("banner").hidden = true;
}

const plural = (n, word) => `${Number(n).toLocaleString("en")} ${word}${Number(n) === 1 ? "" : "s"}`;

/** "2026-11-30T10:00:00.123456Z" → "2026-11-30 10:00:00" (exact text, no Date rounding). */
function shortTime(ts) {
  if (!ts) return "—";
  const m = /^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2})/.exec(ts);
  return m ? `${m[1]} ${m[2]}` : ts;
}

function fmtBytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

function download(blob, name) {
  const url = URL.createObjectURL(blob);
  const a = el("a", { href: url, download: name, hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

// ------------------------------------------------------------------ API

class ApiError extends Error {
  constructor(status, body) {
    super(body?.message || `HTTP ${status}`);
    this.status = status;
    this.code = body?.code || httpCode(status);
    this.field = body?.field || "";
  }
}

function httpCode(status) {
  return (
    { 400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND", 409: "ALREADY_EXISTS", 429: "RESOURCE_EXHAUSTED", 499: "CANCELLED", 500: "INTERNAL", 501: "UNIMPLEMENTED", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED" }[status] ||
    (status === 0 ? "UNAVAILABLE" : `HTTP_${status}`)
  );
}

async function errorOf(resp) {
  let body = null;
  try {
    const text = await resp.text();
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  if (!body || typeof body !== "object") body = { message: `${resp.status} ${resp.statusText}`.trim() };
  return new ApiError(resp.status, body);
}

function headers(key = state.key, json = true) {
  const h = { Accept: "application/json" };
  if (json) h["Content-Type"] = "application/json";
  if (key) h.Authorization = `Bearer ${key}`;
  return h;
}

async function request(path, body, { key = state.key, raw = false, signal } = {}) {
  let resp;
  try {
    resp = await fetch(path, {
      method: body === undefined ? "GET" : "POST",
      headers: headers(key, body !== undefined),
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
      credentials: "same-origin",
      signal,
    });
  } catch (e) {
    if (e.name === "AbortError") throw e;
    throw new ApiError(0, { code: "UNAVAILABLE", message: `cannot reach the server (${e.message})` });
  }
  if (!resp.ok) {
    const err = await errorOf(resp);
    if (err.status === 401 && key && key === state.key && state.info && !state.info.developmentMode) signedOut(err);
    throw err;
  }
  if (raw) return resp;
  try {
    return await resp.json();
  } catch {
    throw new ApiError(resp.status, { code: "INTERNAL", message: `the answer to ${path} is not JSON` });
  }
}

const rpc = (service, method, body, opts) => request(`/api/v1/${service}/${method}`, body, opts);

function describe(err) {
  const what = {
    PERMISSION_DENIED: "Permission denied",
    UNAUTHENTICATED: "Not signed in",
    INVALID_ARGUMENT: "Invalid search",
    OUT_OF_RANGE: "Out of range",
    FAILED_PRECONDITION: "Not possible now",
    NOT_FOUND: "Not found",
    RESOURCE_EXHAUSTED: "Too many requests, try again in a moment",
    UNAVAILABLE: "The server is unavailable",
    DEADLINE_EXCEEDED: "The server took too long",
    INTERNAL: "Server error",
  }[err.code] || err.code || "Error";
  return `${what}: ${err.message}`;
}

// ------------------------------------------------------------------ search parameters

// [URL name, input id, EventFilter JSON name]
const FIELDS = [
  ["tenant", "f-tenant", "tenantId"],
  ["actor", "f-actor", "actorId"],
  ["action", "f-action", "actions"],
  ["actor_type", "f-actor-type", "actorType"],
  ["outcome", "f-outcome", "outcome"],
  ["target_type", "f-target-type", "targetType"],
  ["target_id", "f-target-id", "targetId"],
  ["request_id", "f-request-id", "requestId"],
  ["correlation_id", "f-correlation-id", "correlationId"],
  ["session_id", "f-session-id", "sessionId"],
  ["source_ip", "f-source-ip", "sourceIp"],
];
const MORE = FIELDS.slice(3).map((f) => f[1]);
const PRESETS = { "1h": 3600e3, "24h": 86400e3, "7d": 7 * 86400e3, "30d": 30 * 86400e3 };
const DEFAULTS = { preset: "24h", order: "desc", size: "50" };
// Error `field` (snake or camel, with or without "filter.") → input id.
const FIELD_INPUT = {
  tenant_id: "f-tenant", start_time: "f-since", end_time: "f-until", actor_id: "f-actor", actor_type: "f-actor-type",
  actions: "f-action", target_type: "f-target-type", target_id: "f-target-id", outcome: "f-outcome",
  request_id: "f-request-id", correlation_id: "f-correlation-id", session_id: "f-session-id", source_ip: "f-source-ip",
  page_size: "f-size",
};

/** datetime-local value (read as UTC) → RFC 3339; "" stays "". */
function localToRfc(v) {
  if (!v) return "";
  const full = v.length === 16 ? `${v}:00` : v;
  return `${full}Z`;
}
const rfcToLocal = (v) => (v ? v.replace(/Z$/, "").replace(/\.\d+$/, "") : "");

function readForm() {
  const p = {};
  for (const [name, id] of FIELDS) p[name] = $(id).value.trim();
  p.action = p.action.split(",").map((s) => s.trim()).filter(Boolean).join(",");
  p.preset = $("f-preset").value;
  if (p.preset === "custom") {
    p.since = localToRfc($("f-since").value);
    p.until = localToRfc($("f-until").value);
  }
  p.order = $("f-order").value;
  p.size = $("f-size").value;
  return p;
}

function setSize(size) {
  const sel = $("f-size");
  if (![...sel.options].some((o) => o.value === size)) sel.append(el("option", { value: size, text: size }));
  sel.value = size;
}

function writeForm(p) {
  for (const [name, id] of FIELDS) $(id).value = name === "action" ? (p.action || "").split(",").join(", ") : p[name] || "";
  $("f-preset").value = p.preset || DEFAULTS.preset;
  $("f-since").value = rfcToLocal(p.since);
  $("f-until").value = rfcToLocal(p.until);
  $("f-order").value = p.order === "asc" ? "asc" : "desc";
  setSize(p.size || DEFAULTS.size);
  syncPreset();
  const extra = MORE.filter((id) => $(id).value).length + (p.order === "asc" ? 1 : 0);
  $("more-count").textContent = extra ? `(${extra} set)` : "";
  $("more-filters").open = extra > 0;
}

function syncPreset() {
  document.querySelector(".search").classList.toggle("is-custom", $("f-preset").value === "custom");
}

function paramsFromHash() {
  const h = location.hash.replace(/^#\??/, "");
  if (!h) return null;
  const q = new URLSearchParams(h);
  const p = {};
  for (const [name] of FIELDS) p[name] = q.get(name) || "";
  p.preset = q.get("preset") || (q.get("since") || q.get("until") ? "custom" : DEFAULTS.preset);
  if (!(p.preset in PRESETS) && p.preset !== "all" && p.preset !== "custom") p.preset = DEFAULTS.preset;
  p.since = q.get("since") || "";
  p.until = q.get("until") || "";
  p.order = q.get("order") === "asc" ? "asc" : "desc";
  const size = Number(q.get("size"));
  p.size = Number.isInteger(size) && size >= 1 && size <= 1000 ? String(size) : DEFAULTS.size;
  return p;
}

function hashOf(p) {
  const q = new URLSearchParams();
  for (const [name] of FIELDS) if (p[name]) q.set(name, p[name]);
  q.set("preset", p.preset);
  if (p.preset === "custom") {
    if (p.since) q.set("since", p.since);
    if (p.until) q.set("until", p.until);
  }
  if (p.order !== DEFAULTS.order) q.set("order", p.order);
  if (p.size !== DEFAULTS.size) q.set("size", p.size);
  return "#" + q.toString();
}

/** The EventFilter JSON and the time range (ms) of params, presets resolved now. */
function filterOf(p) {
  const f = {};
  for (const [name, , json] of FIELDS) {
    if (!p[name]) continue;
    f[json] = name === "action" ? p.action.split(",") : p[name];
  }
  let startMs = null;
  let endMs = null;
  if (p.preset in PRESETS) {
    endMs = Date.now();
    startMs = endMs - PRESETS[p.preset];
    f.startTime = new Date(startMs).toISOString();
  } else if (p.preset === "custom") {
    if (p.since) {
      f.startTime = p.since;
      startMs = Date.parse(p.since);
    }
    if (p.until) {
      f.endTime = p.until;
      endMs = Date.parse(p.until);
    }
  }
  return { filter: f, startMs, endMs };
}

function validate(p) {
  const errs = [];
  if (!p.tenant) errs.push(["f-tenant", "Enter the tenant to search."]);
  if (p.tenant && !/^[A-Za-z0-9._:-]+$/.test(p.tenant)) errs.push(["f-tenant", "A tenant id uses only letters, digits and . _ : -"]);
  if (p.preset === "custom") {
    for (const [k, id] of [["since", "f-since"], ["until", "f-until"]]) {
      if (p[k] && Number.isNaN(Date.parse(p[k]))) errs.push([id, "Enter a valid date and time."]);
    }
    if (p.since && p.until && Date.parse(p.since) >= Date.parse(p.until)) errs.push(["f-until", "Until must be after since."]);
  }
  return errs;
}

function clearFieldErrors() {
  for (const e of document.querySelectorAll(".search .field-error")) {
    e.hidden = true;
    e.textContent = "";
  }
  for (const i of document.querySelectorAll(".search [aria-invalid]")) i.removeAttribute("aria-invalid");
}

function fieldError(inputId, text) {
  const input = $(inputId);
  const err = $(`e-${inputId.slice(2)}`);
  if (!input || !err) return false;
  if (input.closest(".custom-range") && $("f-preset").value !== "custom") return false;
  if (MORE.includes(inputId) || inputId === "f-size") $("more-filters").open = true;
  input.setAttribute("aria-invalid", "true");
  // "filter.source_ip: must be …" → "must be …": the input already names the field.
  err.textContent = text.replace(/^[a-z][\w.[\]]*: /, "");
  err.hidden = false;
  return true;
}

function inputForField(field) {
  const name = field
    .replace(/^(request\.)?filter\./, "")
    .replace(/\[\d+\]$/, "")
    .replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
  return FIELD_INPUT[name] || FIELD_INPUT[name.split(".").pop()] || null;
}

// ------------------------------------------------------------------ sign-in

function show(view) {
  for (const v of ["loading-view", "login-view", "app-view"]) $(v).hidden = v !== view;
}

function renderWho() {
  const info = state.info || {};
  $("dev-badge").hidden = !info.developmentMode;
  $("ro-badge").hidden = !info.readOnly;
  $("signout").hidden = !state.key || info.developmentMode;
  const who = $("who");
  who.replaceChildren();
  if (info.key) {
    who.append(
      el("span", { class: "who-key", title: "API key id" }, el("span", { class: "visually-hidden", text: "Signed in with key " }), info.key.id || "key"),
      el("span", { class: "who-meta", text: `${info.key.tenant ? `tenant ${info.key.tenant}` : "all tenants"} · ${(info.key.scopes || []).join(", ") || "no scopes"}` }),
    );
    who.hidden = false;
  } else {
    who.hidden = true;
  }
}

async function boot() {
  wire();
  state.key = sessionStorage.getItem(KEY_STORE);
  let info;
  for (;;) {
    try {
      info = await request("/api/v1/info", undefined, { key: state.key });
      break;
    } catch (e) {
      if (e.status === 401 && state.key) {
        sessionStorage.removeItem(KEY_STORE);
        state.key = null;
        $("login-error").textContent = "Your saved key was not accepted any more; sign in again.";
        $("login-error").hidden = false;
        continue;
      }
      show("loading-view");
      $("loading-view").replaceChildren(
        el("div", { class: "card" },
          el("h1", { text: "Cannot reach auditum" }),
          el("p", { class: "muted", text: describe(e) }),
          el("button", { type: "button", class: "btn btn-primary", onclick: () => location.reload(), text: "Retry" })),
      );
      $("loading-view").removeAttribute("aria-busy");
      return;
    }
  }
  state.info = info;
  if (info.developmentMode || (state.key && info.key) || (state.key && !("key" in info))) enterApp();
  else showLogin();
}

function showLogin(message) {
  show("login-view");
  renderWho();
  if (message) {
    $("login-error").textContent = message;
    $("login-error").hidden = false;
  }
  $("login-key").focus();
}

async function login(ev) {
  ev.preventDefault();
  const key = $("login-key").value.trim();
  const err = $("login-error");
  err.hidden = true;
  if (!key) {
    err.textContent = "Paste an API key.";
    err.hidden = false;
    $("login-key").setAttribute("aria-invalid", "true");
    $("login-key").focus();
    return;
  }
  $("login-submit").disabled = true;
  $("login-submit").textContent = "Signing in…";
  try {
    const info = await request("/api/v1/info", undefined, { key });
    sessionStorage.setItem(KEY_STORE, key);
    state.key = key;
    state.info = info;
    $("login-key").value = "";
    $("login-key").removeAttribute("aria-invalid");
    enterApp();
    announce(`Signed in${info.key?.id ? ` as ${info.key.id}` : ""}.`);
  } catch (e) {
    err.textContent = e.status === 401 ? `This key was not accepted: ${e.message}` : describe(e);
    err.hidden = false;
    $("login-key").setAttribute("aria-invalid", "true");
    $("login-key").focus();
  } finally {
    $("login-submit").disabled = false;
    $("login-submit").textContent = "Sign in";
  }
}

function clearData() {
  state.gen++;
  state.applied = null;
  state.events = [];
  state.byRow.clear();
  state.nextPageToken = "";
  state.chart = null;
  $("results-body").replaceChildren();
  $("results").hidden = true;
  $("results-count").textContent = "";
  $("load-more").hidden = true;
  $("end-note").hidden = true;
  $("chart").replaceChildren(el("p", { class: "empty muted", text: "Run a search to see activity." }));
  $("chart-total").textContent = "";
  $("export-result").hidden = true;
  $("export-result").replaceChildren();
  if ($("detail").open) $("detail").close();
}

function signOut() {
  sessionStorage.removeItem(KEY_STORE);
  state.key = null;
  if (state.info) delete state.info.key;
  clearData();
  hideBanner();
  showLogin();
  announce("Signed out.");
}

function signedOut(err) {
  sessionStorage.removeItem(KEY_STORE);
  state.key = null;
  clearData();
  showLogin(`Your key was rejected (${err.message}); sign in again.`);
}

function enterApp() {
  show("app-view");
  renderWho();
  const p = paramsFromHash();
  if (p) {
    writeForm(p);
    runSearch(p);
    return;
  }
  const tenant = state.info?.key?.tenant || localStorage.getItem(TENANT_STORE) || "";
  writeForm({ ...DEFAULTS, tenant });
  resultsState(
    tenant ? "" : "Enter a tenant and search.",
  );
  if (tenant) runSearch(readForm());
  else $("f-tenant").focus();
}

// ------------------------------------------------------------------ search

function resultsState(text, kind = "") {
  const s = $("results-state");
  s.replaceChildren();
  s.className = `state ${kind}`;
  if (!text) return;
  if (kind === "loading") s.append(el("span", { class: "spinner", "aria-hidden": "true" }));
  s.append(el("span", { text }));
}

function onSubmit(ev) {
  ev.preventDefault();
  const p = readForm();
  clearFieldErrors();
  const errs = validate(p);
  if (errs.length) {
    for (const [id, text] of errs) fieldError(id, text);
    $(errs[0][0]).focus();
    announce(errs.map((e) => e[1]).join(" "));
    return;
  }
  navigate(p);
}

function navigate(p) {
  const h = hashOf(p);
  if (h === location.hash) runSearch(p);
  else location.hash = h; // hashchange runs it, and Back returns to the previous search
}

function onHashChange() {
  if (!state.info || $("app-view").hidden) return;
  const p = paramsFromHash();
  if (!p) return;
  writeForm(p);
  runSearch(p);
}

function runSearch(p) {
  const gen = ++state.gen;
  clearFieldErrors();
  hideBanner();
  if ($("detail").open) $("detail").close();
  state.applied = p;
  state.events = [];
  state.byRow.clear();
  state.nextPageToken = "";
  $("results-body").replaceChildren();
  $("results").hidden = true;
  $("load-more").hidden = true;
  $("end-note").hidden = true;
  $("results-count").textContent = "";
  $("export-result").hidden = true;
  localStorage.setItem(TENANT_STORE, p.tenant);
  const range = filterOf(p);
  state.range = range;
  document.title = `${p.tenant} · auditum console`;
  resultsState("Searching…", "loading");
  document.documentElement.dataset.search = "loading"; // for tests and tools: loading, done, error
  loadPage(gen);
  loadChart(gen);
}

async function loadPage(gen) {
  const p = state.applied;
  if (state.loading && gen === state.loadingGen) return;
  state.loading = true;
  state.loadingGen = gen;
  const more = $("load-more");
  more.disabled = true;
  more.setAttribute("aria-busy", "true");
  if (state.events.length) more.textContent = "Loading…";
  const body = { filter: state.range.filter, pageSize: Number(p.size) };
  if (state.nextPageToken) body.pageToken = state.nextPageToken;
  if (p.order === "desc") body.descending = true;
  try {
    const resp = await rpc("QueryService", "Query", body);
    if (gen !== state.gen) return;
    const events = resp.events || [];
    const first = state.events.length;
    state.events.push(...events);
    state.nextPageToken = resp.nextPageToken || "";
    appendRows(events);
    const n = state.events.length;
    $("results").hidden = n === 0;
    if (n === 0) {
      resultsState("No events match this search. Widen the time range or remove a filter.", "empty");
    } else resultsState("");
    $("results-count").textContent = state.nextPageToken ? `${plural(n, "event")} loaded, more available` : plural(n, "event");
    more.hidden = !state.nextPageToken;
    $("end-note").hidden = !!state.nextPageToken || n === 0;
    announce(first === 0 ? `${plural(n, "event")} found${state.nextPageToken ? ", more available" : ""}.` : `${plural(events.length, "more event")} loaded.`);
    document.documentElement.dataset.search = "done";
    if (first > 0 && !state.nextPageToken) {
      const rows = $("results-body").rows;
      if (rows[first]) rows[first].focus();
    }
  } catch (e) {
    if (gen !== state.gen) return;
    searchError(e);
    document.documentElement.dataset.search = "error";
  } finally {
    if (gen === state.loadingGen) {
      state.loading = false;
      more.disabled = false;
      more.removeAttribute("aria-busy");
      more.textContent = "Load more";
    }
  }
}

function searchError(e) {
  let shown = false;
  if (e.field) {
    const id = inputForField(e.field);
    if (id) shown = fieldError(id, e.message);
  }
  showBanner(describe(e));
  if (e.code === "PERMISSION_DENIED") {
    resultsState(`This key may not read tenant “${state.applied?.tenant}”. No events are shown.`, "error");
  } else if (e.code === "UNAUTHENTICATED") {
    resultsState("Sign in to search.", "error");
  } else {
    resultsState(shown ? "Fix the highlighted field and search again." : "The search failed.", "error");
  }
  if (shown) $(inputForField(e.field)).focus();
}

const ACTOR_TYPE = { ACTOR_TYPE_USER: "user", ACTOR_TYPE_SERVICE: "service", ACTOR_TYPE_API_KEY: "api key", ACTOR_TYPE_SYSTEM: "system", ACTOR_TYPE_ANONYMOUS: "anonymous" };
const OUTCOME = { OUTCOME_RESULT_SUCCESS: "success", OUTCOME_RESULT_FAILURE: "failure", OUTCOME_RESULT_DENIED: "denied" };

function rowKey(s) {
  return `${s.log || "default"}/${s.seq || "0"}`;
}

function appendRows(events) {
  const body = $("results-body");
  const frag = document.createDocumentFragment();
  for (const s of events) {
    const e = s.event || {};
    const key = rowKey(s);
    state.byRow.set(key, s);
    const outcome = OUTCOME[e.outcome?.result] || "—";
    const actor = e.actor || {};
    const target = e.target || {};
    const tr = el(
      "tr",
      { "data-testid": "result-row", "data-seq": s.seq || "0", "data-key": key, tabindex: "0", class: "row", "aria-label": `${e.action} by ${actor.id}, ${outcome}, seq ${s.seq || 0}. Open event.` },
      el("td", { "data-label": "Occurred" }, el("time", { datetime: e.occurredAt, title: e.occurredAt, text: shortTime(e.occurredAt) })),
      el("td", { "data-label": "Action" }, el("code", { class: "action", text: e.action || "" })),
      el("td", { "data-label": "Actor" },
        el("span", { class: "actor-id", text: actor.id || "—" }),
        actor.name || actor.type
          ? el("span", { class: "muted sub-line", text: [actor.name, ACTOR_TYPE[actor.type] || actor.type].filter(Boolean).join(" · ") })
          : null),
      el("td", { "data-label": "Target" }, target.type || target.id ? `${target.type || ""}${target.type && target.id ? " · " : ""}${target.id || ""}` : el("span", { class: "muted", text: "—" })),
      el("td", { "data-label": "Outcome" }, el("span", { class: `pill o-${outcome}`, text: outcome })),
      el("td", { "data-label": "Seq", class: "num" }, s.seq || "0"),
      el("td", { "data-label": "Status" }, s.sealed
        ? el("span", { class: "sealed", title: `sealed in batch ${s.batchIndex || 0}`, text: `sealed · batch ${s.batchIndex || 0}` })
        : el("span", { class: "unsealed", title: "not sealed yet: in the open batch", text: "unsealed" })),
    );
    frag.append(tr);
  }
  body.append(frag);
}

function onRowActivate(ev) {
  const tr = ev.target.closest("tr.row");
  if (!tr) return;
  if (ev.type === "keydown" && ev.key !== "Enter" && ev.key !== " ") return;
  if (ev.type === "keydown") ev.preventDefault();
  const s = state.byRow.get(tr.dataset.key);
  if (s) openDetail(s, tr);
}

// ------------------------------------------------------------------ chart

async function loadChart(gen) {
  const { filter, startMs, endMs } = state.range;
  const choice = $("chart-bucket").value;
  const bucket = choice === "auto" ? bucketFor(startMs, endMs) : choice;
  const chart = $("chart");
  chart.setAttribute("aria-busy", "true");
  chart.classList.add("is-loading");
  try {
    const resp = await rpc("QueryService", "Summarize", { filter, groupBy: ["SUMMARY_DIMENSION_OUTCOME"], bucket });
    if (gen !== state.gen) return;
    state.chart = { rows: resp.rows || [], bucket, startMs, endMs: endMs ?? (startMs != null ? Date.now() : null), total: resp.totalEvents || "0" };
    drawChart();
    $("chart-total").textContent = plural(state.chart.total, "event");
  } catch (e) {
    if (gen !== state.gen) return;
    state.chart = null;
    chart.replaceChildren(el("p", { class: "empty muted", text: `Activity unavailable. ${describe(e)}` }));
    $("chart-total").textContent = "";
  } finally {
    if (gen === state.gen) {
      chart.removeAttribute("aria-busy");
      chart.classList.remove("is-loading");
    }
  }
}

function drawChart() {
  if (!state.chart) return;
  renderChart($("chart"), {
    ...state.chart,
    onPick: (start, end) => {
      const p = { ...state.applied, preset: "custom", since: new Date(start).toISOString().replace(".000Z", "Z"), until: new Date(end).toISOString().replace(".000Z", "Z") };
      writeForm(p);
      navigate(p);
    },
  });
}

// ------------------------------------------------------------------ event detail

const COLUMN_LABELS = {
  seq: "seq", id: "id", tenant_id: "tenant_id", occurred_at: "occurred_at", received_at: "received_at",
};

function storedColumns(s) {
  const e = s.event || {};
  const json = (v) => (v && typeof v === "object" && Object.keys(v).length ? JSON.stringify(v, null, 2) : null);
  const c = columnsOfStoredEvent(s);
  return [
    ["seq", s.seq || "0"],
    ["id", c.id],
    ["tenant_id", c.tenant_id],
    ["occurred_at", e.occurredAt || null],
    ["received_at", s.receivedAt || null],
    ["action", c.action],
    ["actor_id", c.actor_id],
    ["actor_type", c.actor_type],
    ["actor_name", c.actor_name],
    ["target_type", c.target_type],
    ["target_id", c.target_id],
    ["target_name", c.target_name],
    ["outcome", c.outcome],
    ["error_code", c.error_code],
    ["reason", c.reason],
    ["request_id", c.request_id],
    ["correlation_id", c.correlation_id],
    ["session_id", c.session_id],
    ["source_ip", c.source_ip],
    ["user_agent", c.user_agent],
    ["service", c.service],
    ["before", json(e.before)],
    ["after", json(e.after)],
    ["metadata", json(e.metadata)],
    ["sealed", s.sealed ? "true" : "false"],
    ["batch_index", s.sealed ? s.batchIndex || "0" : null],
    ["leaf_hash", s.leafHash ? toHex(fromBase64(s.leafHash)) : null],
    ["log", s.log || "default"],
    ...(e.subjectId ? [["subject_id", e.subjectId]] : []),
  ];
}

function trustedKeys() {
  try {
    return JSON.parse(localStorage.getItem(TRUST_STORE) || "{}") || {};
  } catch {
    return {};
  }
}

async function keyNote(log) {
  const note = $("trusted-key-note");
  const text = trustedKeys()[log];
  if (!text) {
    note.textContent = `No key pinned for log “${log}”. Paste its verifier key (name+id+key): the server prints it at start and keeps it in <data dir>/keys/${log}.vkey. Get it from the operator out of band, not from this page.`;
    return;
  }
  try {
    const k = await parseVerifierKey(text);
    note.textContent = `Pinned in this browser for log “${log}”: ${k.name} (key id ${k.keyIdHex}).`;
  } catch (e) {
    note.textContent = `The pinned key is not valid: ${e.message}`;
  }
}

function openDetail(s, row) {
  state.detail = s;
  state.detailRow = row || null;
  state.proofText = null;
  const e = s.event || {};
  const log = s.log || "default";
  const outcome = OUTCOME[e.outcome?.result] || "";
  $("detail-title").replaceChildren(el("code", { text: e.action || "event" }), " ", el("span", { class: `pill o-${outcome}`, text: outcome }));
  $("detail-sub").textContent = `${shortTime(e.occurredAt)} UTC · seq ${s.seq || 0} · log ${log} · ${s.sealed ? `sealed in batch ${s.batchIndex || 0}` : "not sealed yet"}`;

  // One-click trails.
  const trail = $("detail-trail");
  trail.replaceChildren();
  const base = { tenant: e.tenantId || state.applied?.tenant || "", preset: "all", order: state.applied?.order || "desc", size: state.applied?.size || DEFAULTS.size };
  const ctx = e.context || {};
  const links = [
    ["Request trail", "request_id", ctx.requestId],
    ["Correlation trail", "correlation_id", ctx.correlationId],
    ["Session trail", "session_id", ctx.sessionId],
    ["Actor timeline", "actor", e.actor?.id],
    ["Target history", "target_id", e.target?.id],
  ];
  for (const [label, name, value] of links) {
    if (!value) continue;
    trail.append(
      el("button", {
        type: "button",
        class: "btn btn-small",
        title: `Search every event of tenant ${base.tenant} with ${name} = ${value}`,
        onclick: () => {
          const p = { ...base, [name]: value };
          if (name === "target_id" && e.target?.type) p.target_type = e.target.type;
          $("detail").close();
          writeForm(p);
          navigate(p);
        },
      }, `${label}: `, el("span", { class: "mono", text: value })),
    );
  }
  if (!trail.children.length) trail.append(el("p", { class: "muted small", text: "No request, session or actor to follow." }));

  // Proof.
  $("trusted-key").value = trustedKeys()[log] || "";
  keyNote(log);
  const status = $("verify-status");
  status.className = "verify-status";
  status.textContent = s.sealed ? "" : "This event is not sealed yet: its proof is available after the next seal.";
  $("verify-steps").hidden = true;
  $("verify-steps").replaceChildren();
  $("proof-save").hidden = true;

  $("detail-diff").replaceChildren(renderDiff(e.before ?? null, e.after ?? null));

  const dl = $("detail-cols");
  dl.replaceChildren();
  for (const [name, value] of storedColumns(s)) {
    const isJson = ["before", "after", "metadata"].includes(name) && value;
    dl.append(
      el("div", { class: "col" },
        el("dt", { text: COLUMN_LABELS[name] || name }),
        el("dd", {}, value === null || value === undefined || value === ""
          ? el("span", { class: "muted mono", text: "null" })
          : isJson ? el("pre", { class: "json", text: value }) : el("span", { class: "mono", text: String(value) }))),
    );
  }
  const dlg = $("detail");
  if (!dlg.open) dlg.showModal();
  dlg.querySelector(".detail-inner").scrollTop = 0;
  $("detail-close").focus();
}

function closeDetail() {
  $("detail").close();
}

async function verify() {
  const s = state.detail;
  if (!s) return;
  const log = s.log || "default";
  const status = $("verify-status");
  const steps = $("verify-steps");
  const btn = $("verify-button");
  const keyText = $("trusted-key").value.trim();
  const fail = (text) => {
    status.className = "verify-status is-failed";
    status.textContent = text;
  };
  steps.hidden = true;
  if (!keyText) {
    fail("failed: trusted key — paste the log's verifier key first.");
    $("trusted-key").focus();
    return;
  }
  try {
    await parseVerifierKey(keyText);
  } catch (e) {
    fail(`failed: trusted key — ${e.message}`);
    $("trusted-key").focus();
    return;
  }
  const pinned = trustedKeys();
  if (pinned[log] !== keyText) {
    pinned[log] = keyText;
    localStorage.setItem(TRUST_STORE, JSON.stringify(pinned));
    keyNote(log);
  }
  btn.disabled = true;
  btn.setAttribute("aria-busy", "true");
  status.className = "verify-status is-busy";
  status.textContent = "Fetching the proof…";
  let proofText;
  try {
    const body = { log: s.log || "", seq: s.seq || "0" };
    const resp = await rpc("ProofService", "GetEventProof", body);
    proofText = resp.proofJson;
    if (typeof proofText !== "string") throw new ApiError(200, { code: "INTERNAL", message: "the response has no proofJson" });
  } catch (e) {
    btn.disabled = false;
    btn.removeAttribute("aria-busy");
    if (state.detail !== s) return; // another event was opened meanwhile
    if (e.code === "FAILED_PRECONDITION" || /not (yet )?sealed|unsealed/i.test(e.message)) {
      status.className = "verify-status is-pending";
      status.textContent = `Not sealed yet: the proof is available after the next seal. (${e.message})`;
    } else {
      fail(`failed: fetching the proof — ${describe(e)}`);
    }
    return;
  }
  status.textContent = "Checking the proof in this page…";
  const expected = {
    columns: columnsOfStoredEvent(s),
    leafHashHex: s.leafHash ? toHex(fromBase64(s.leafHash)) : null,
    log,
  };
  const result = await verifyProof(proofText, keyText, expected);
  btn.disabled = false;
  btn.removeAttribute("aria-busy");
  if (state.detail !== s) return;
  state.proofText = proofText;
  $("proof-save").hidden = false;
  status.className = `verify-status ${result.ok ? "is-ok" : "is-failed"}`;
  status.replaceChildren(
    el("span", { class: "vs-icon", "aria-hidden": "true", text: result.ok ? "✓" : "✗" }),
    el("span", { text: result.summary }),
  );
  steps.replaceChildren();
  for (const st of result.steps) {
    steps.append(
      el("li", { class: `step step-${st.status}` },
        el("span", { class: "step-mark", "aria-hidden": "true", text: st.status === "ok" ? "✓" : st.status === "failed" ? "✗" : "–" }),
        el("span", { class: "step-name", text: st.name }),
        el("span", { class: "visually-hidden", text: st.status === "ok" ? ": passed" : st.status === "failed" ? ": failed" : ": not checked" }),
        st.detail ? el("span", { class: "step-detail mono", text: st.detail }) : null),
    );
  }
  steps.hidden = false;
}

function saveProof() {
  const s = state.detail;
  if (!state.proofText || !s) return;
  download(new Blob([state.proofText], { type: "application/json" }), `auditum-proof-${s.log || "default"}-${s.seq || 0}.json`);
  announce("Proof saved. Check it offline with auditum verify-proof.");
}

// ------------------------------------------------------------------ export

const EXT = { EXPORT_FORMAT_JSONL: "jsonl", EXPORT_FORMAT_CSV: "csv", EXPORT_FORMAT_PARQUET: "parquet" };
const MIME = { jsonl: "application/x-ndjson", csv: "text/csv", parquet: "application/vnd.apache.parquet" };

function fileNameOf(resp, fallback) {
  const cd = resp.headers.get("content-disposition") || "";
  const star = /filename\*\s*=\s*UTF-8''([^;]+)/i.exec(cd);
  if (star) {
    try {
      return decodeURIComponent(star[1]).replace(/[/\\]/g, "_");
    } catch {
      /* fall through */
    }
  }
  const m = /filename\s*=\s*"?([^";]+)"?/i.exec(cd);
  return m ? m[1].replace(/[/\\]/g, "_") : fallback;
}

async function runExport() {
  const p = state.applied;
  const out = $("export-result");
  if (!p) {
    out.hidden = false;
    out.replaceChildren(el("p", { class: "field-error", text: "Run a search first: the export uses the search on screen." }));
    return;
  }
  const btn = $("export-button");
  const format = $("export-format").value;
  const ext = EXT[format];
  const includeUnsealed = $("export-unsealed").checked;
  const { filter } = state.range; // exactly the search on screen
  btn.disabled = true;
  btn.setAttribute("aria-busy", "true");
  out.hidden = false;
  const progress = el("p", { class: "muted", role: "status" }, el("span", { class: "spinner", "aria-hidden": "true" }), " Exporting…");
  out.replaceChildren(progress);
  const fail = (text) => out.replaceChildren(el("p", { class: "field-error", role: "alert", text }));
  try {
    const body = { filter, format };
    if (includeUnsealed) body.includeUnsealed = true;
    const resp = await rpc("QueryService", "Export", body, { raw: true });
    const id = resp.headers.get("auditum-export-id");
    const chunks = [];
    let received = 0;
    let streamError = null;
    try {
      const reader = resp.body.getReader();
      let last = 0;
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        chunks.push(value);
        received += value.length;
        if (received - last > 256 * 1024) {
          last = received;
          progress.lastChild.textContent = ` Exporting… ${fmtBytes(received)} received`;
        }
      }
    } catch (e) {
      streamError = e;
    }
    if (!id) {
      fail(streamError ? `Export failed mid-stream: ${streamError.message}` : "The server sent no auditum-export-id header, so the export's summary cannot be fetched.");
      return;
    }
    let summary;
    try {
      summary = await request(`/api/v1/exports/${encodeURIComponent(id)}/summary`);
    } catch (e) {
      fail(`Export failed${streamError ? " mid-stream" : ""}: ${describe(e)}`);
      return;
    }
    if (streamError) {
      fail(`Export failed mid-stream: ${streamError.message}`);
      return;
    }
    const blob = new Blob(chunks, { type: MIME[ext] });
    const bytes = new Uint8Array(await blob.arrayBuffer());
    const hash = toHex(await sha256(bytes));
    const match = hash === summary.sha256;
    const stamp = new Date().toISOString().replace(/[-:]/g, "").replace(/\.\d+Z$/, "Z");
    const name = fileNameOf(resp, `auditum-${p.tenant}-${stamp}.${ext}`);
    if (match) download(blob, name);
    const summaryText = summaryJson(summary, bytes.length, ext);
    out.replaceChildren(
      el("p", { class: match ? "check ok" : "check bad", role: match ? "status" : "alert" },
        el("span", { "aria-hidden": "true", text: match ? "✓ " : "✗ " }),
        match
          ? `Downloaded ${name}: the SHA-256 of the ${fmtBytes(bytes.length)} received matches the summary.`
          : `The SHA-256 of the bytes received does not match the summary: the file is incomplete or altered. It was not saved.`),
      el("dl", { class: "summary" },
        el("dt", { text: "Rows" }), el("dd", { text: `${summary.rows || "0"}${summary.unsealedRows && summary.unsealedRows !== "0" ? ` (${summary.unsealedRows} unsealed)` : ""}` }),
        el("dt", { text: "SHA-256 (summary)" }), el("dd", { class: "mono break", text: summary.sha256 || "—" }),
        el("dt", { text: "SHA-256 (received)" }), el("dd", { class: "mono break", text: hash }),
        el("dt", { text: "Checkpoint" }), el("dd", {}, summary.checkpoint ? el("pre", { class: "note", text: summary.checkpoint }) : el("span", { class: "muted", text: "none (nothing sealed yet)" }))),
      el("div", { class: "form-actions" },
        el("button", { type: "button", class: "btn btn-small", onclick: () => download(blob, name), text: match ? "Download again" : "Download anyway" }),
        el("button", { type: "button", class: "btn btn-small", id: "export-summary-save", onclick: () => download(new Blob([summaryText], { type: "application/json" }), `${name}.summary.json`), text: "Save summary (JSON)" })),
    );
    announce(match ? `Export downloaded, ${summary.rows || 0} rows, hash verified.` : "Export hash mismatch.");
  } catch (e) {
    fail(`Export failed: ${describe(e)}`);
  } finally {
    btn.disabled = false;
    btn.removeAttribute("aria-busy");
  }
}

/** The summary as `auditum export` writes FILE.summary.json (integers exact). */
function summaryJson(s, bytes, format) {
  const int = (v) => (/^\d+$/.test(String(v ?? "0")) ? String(v ?? "0") : "0");
  return (
    "{\n" +
    `  "bytes": ${bytes},\n` +
    `  "checkpoint": ${JSON.stringify(s.checkpoint || "")},\n` +
    `  "format": ${JSON.stringify(format)},\n` +
    `  "rows": ${int(s.rows)},\n` +
    `  "sha256": ${JSON.stringify(s.sha256 || "")},\n` +
    `  "unsealed_rows": ${int(s.unsealedRows)}\n` +
    "}\n"
  );
}

// ------------------------------------------------------------------ wiring

function wire() {
  $("login-form").addEventListener("submit", login);
  $("login-key").addEventListener("input", () => $("login-key").removeAttribute("aria-invalid"));
  $("signout").addEventListener("click", signOut);
  $("banner-close").addEventListener("click", hideBanner);
  $("search-form").addEventListener("submit", onSubmit);
  $("search-form").addEventListener("input", (ev) => {
    const t = ev.target;
    if (t.getAttribute && t.getAttribute("aria-invalid")) {
      t.removeAttribute("aria-invalid");
      const err = $(`e-${t.id.slice(2)}`);
      if (err) err.hidden = true;
    }
  });
  $("f-preset").addEventListener("change", () => {
    if ($("f-preset").value === "custom" && !$("f-since").value && state.range?.startMs != null) {
      $("f-since").value = rfcToLocal(new Date(state.range.startMs).toISOString().replace(/\.\d+Z$/, "Z"));
    }
    syncPreset();
  });
  $("search-reset").addEventListener("click", () => {
    const tenant = $("f-tenant").value;
    writeForm({ ...DEFAULTS, tenant });
    clearFieldErrors();
    $("f-tenant").focus();
  });
  $("copy-link").addEventListener("click", async () => {
    const p = state.applied || readForm();
    const url = location.href.replace(/#.*$/, "") + hashOf(p);
    try {
      await navigator.clipboard.writeText(url);
      announce("Link to this search copied.");
      showBanner("Link copied. It holds the search, never your key.", "info");
    } catch {
      showBanner(`Copy this link: ${url}`, "info");
    }
  });
  $("load-more").addEventListener("click", () => loadPage(state.gen));
  $("results-body").addEventListener("click", onRowActivate);
  $("results-body").addEventListener("keydown", onRowActivate);
  $("chart-bucket").addEventListener("change", () => state.applied && loadChart(state.gen));
  $("export-button").addEventListener("click", runExport);
  $("detail-close").addEventListener("click", closeDetail);
  $("detail").addEventListener("click", (ev) => {
    if (ev.target === $("detail")) closeDetail(); // backdrop
  });
  $("detail").addEventListener("close", () => {
    if (state.detailRow && state.detailRow.isConnected) state.detailRow.focus();
  });
  $("verify-button").addEventListener("click", verify);
  $("trusted-key").addEventListener("keydown", (ev) => {
    if (ev.key === "Enter") {
      ev.preventDefault();
      verify();
    }
  });
  $("proof-save").addEventListener("click", saveProof);
  window.addEventListener("hashchange", onHashChange);
  let t = 0;
  let width = 0;
  new ResizeObserver(() => {
    const w = $("chart").clientWidth;
    if (w === width) return;
    width = w;
    clearTimeout(t);
    t = setTimeout(drawChart, 120);
  }).observe($("chart"));
}

boot();
