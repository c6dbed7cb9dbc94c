// The auditq console: a client of the request subjects of
// docs/contract.md over the NATS WebSocket listener. Views, chosen by the
// URL's fragment so that every view and filter can be bookmarked:
//   #/trail?filters   the trail and its search
//   #/event/ID        one event, its fields, raw JSON and checked proof
//                     (?tenant=T: of tenant T; an id is unique within its
//                     tenant only)
//   #/reports         generate a report
//   #/stored          stored reports, newest first; #/stored/ID one of them
import { ApiError, connect, exportEvents, isAuthError, loadConfig, refusal, request, requestText } from "./api.js";
import { fromLocalInput, h, num, timeEl, toLocalInput, viewerZone } from "./format.js";
import { keyRing, parseProof, verifyProof } from "./proof.js";
import { barChart, columnChart, ratioBar } from "./charts.js";

const main = document.getElementById("main");
const connEl = document.getElementById("conn");

// The actions of the trail's own read records (config.json's
// readActions, the service's list): hidden unless asked for.
let readActions = new Set();
const FILTERS = ["action", "userId", "resourceType", "resourceId", "sessionId", "requestId"];
const LABELS = { action: "Action", userId: "User", resourceType: "Resource type", resourceId: "Resource id", sessionId: "Session", requestId: "Request" };
const POLL_MS = 5000;

let stopView = () => {};
// Whether the service runs with tenants (config.json): the trail then has
// a tenant filter and a tenant column.
let tenantsOn = false;

function setStatus(s) {
  connEl.textContent = { connected: "connected", reconnecting: "reconnecting…", disconnected: "disconnected" }[s] || s;
  connEl.className = "conn " + s;
}

function errorBox(err) {
  const msg = refusal(err) || apiMessage(err);
  return h("p", { class: "error", role: "alert" }, msg);
}

// apiMessage says what an error answer or failure was; a 403 is auditq's
// refusal of this login (a reader bound to another tenant).
function apiMessage(err) {
  if (err instanceof ApiError && err.code === "403") return `Refused by auditq (403): ${err.message}`;
  return err instanceof ApiError ? `${err.code}: ${err.message}` : String(err && err.message ? err.message : err);
}

function parseHash() {
  const raw = location.hash.replace(/^#\/?/, "");
  const [path, qs] = raw.split("?", 2);
  return { parts: path.split("/").filter(Boolean).map(decodeURIComponent), params: new URLSearchParams(qs || "") };
}

function go(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

function route() {
  stopView();
  stopView = () => {};
  const { parts, params } = parseHash();
  const view = parts[0] || "trail";
  for (const a of document.querySelectorAll("nav a")) {
    if (a.dataset.view === (view === "event" ? "trail" : view)) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  main.replaceChildren();
  if (view === "event" && parts[1]) eventView(parts[1], params.get("tenant"));
  else if (view === "reports") reportsView();
  else if (view === "stored" && parts[1]) storedReportView(parts[1]);
  else if (view === "stored") storedView(params);
  else if (view === "operations") operationsView();
  else trailView(params);
}

// ---- the trail and its search

function queryOf(params) {
  const q = {};
  for (const f of FILTERS) if (params.get(f)) q[f] = params.get(f);
  // Empty: every tenant the login may read.
  if (tenantsOn && params.get("tenant")) q.tenant = params.get("tenant");
  if (params.get("success") === "true" || params.get("success") === "false") q.success = params.get("success") === "true";
  if (params.get("from")) q.from = params.get("from");
  if (params.get("to")) q.to = params.get("to");
  q.limit = Number(params.get("limit")) || 50;
  return q;
}

// fetchPage returns up to q.limit events from cursor on, leaving out the
// trail's own reads unless showReads: it asks for the rest until the page
// is full, the trail ends or 20 requests were made.
async function fetchPage(q, cursor, showReads) {
  const events = [];
  let hidden = 0;
  let next = cursor || null;
  for (let i = 0; i < 20; i++) {
    const ans = await request("audit.query", { ...q, limit: q.limit - events.length, ...(next ? { cursor: next } : {}) });
    for (const e of ans.events) {
      if (!showReads && readActions.has(e.action)) hidden++;
      else events.push(e);
    }
    next = ans.nextCursor;
    if (!next || events.length >= q.limit || showReads) break;
  }
  return { events, next, hidden };
}

function trailHash(params) {
  const p = new URLSearchParams();
  for (const [k, v] of params) if (v !== "") p.append(k, v);
  const s = p.toString();
  return "#/trail" + (s ? "?" + s : "");
}

function eventRow(e, fresh) {
  const resource = `${e.resourceType}/${e.resourceId}`;
  return h("tr", { class: fresh ? "fresh" : undefined, "data-id": e.id },
    h("td", {}, timeEl(e.timestamp)),
    h("td", {}, e.userId ?? h("span", { class: "muted" }, "(system)")),
    h("td", {}, e.action),
    h("td", {}, resource),
    h("td", {}, e.success === false ? h("span", { class: "badge bad" }, "failed") : h("span", { class: "badge good" }, "ok")),
    tenantsOn ? h("td", { class: "tenant" }, e.tenant ?? h("span", { class: "muted" }, "(default)")) : "",
    h("td", {}, h("a", { href: eventHref(e.id, e.tenant), "aria-label": `Open event ${e.id}` }, e.id)));
}

function trailView(params) {
  const showReads = params.get("reads") === "1";
  const q = queryOf(params);
  const cursor = params.get("cursor");
  const back = params.getAll("back");
  // The trail's own reads are hidden unless asked for, or searched for by
  // action.
  const hideReads = !showReads && !q.action;

  const field = (name, label, attrs = {}) =>
    h("label", {}, label, h("input", { name, value: params.get(name) || "", autocomplete: "off", ...attrs }));
  const form = h("form", { class: "filters", role: "search", "aria-label": "Search the trail" },
    tenantsOn ? field("tenant", "Tenant", { placeholder: "every tenant", "aria-describedby": "tenant-help" }) : "",
    tenantsOn ? h("p", { class: "muted small", id: "tenant-help" }, "A tenant's name (acme); empty: every tenant this login may read.") : "",
    field("action", "Action", { placeholder: "user.login or user.*" }),
    field("userId", "User"),
    field("resourceType", "Resource type"),
    field("resourceId", "Resource id"),
    field("sessionId", "Session"),
    field("requestId", "Request"),
    h("label", {}, "Outcome", h("select", { name: "success" },
      h("option", { value: "" }, "any"),
      h("option", { value: "true", selected: params.get("success") === "true" }, "succeeded"),
      h("option", { value: "false", selected: params.get("success") === "false" }, "failed"))),
    h("label", {}, `From (${viewerZone})`, h("input", { type: "datetime-local", step: "1", name: "from", value: toLocalInput(params.get("from")) })),
    h("label", {}, `To, exclusive (${viewerZone})`, h("input", { type: "datetime-local", step: "1", name: "to", value: toLocalInput(params.get("to")) })),
    h("label", {}, "Per page", h("select", { name: "limit" },
      ...[...new Set([25, 50, 100, 200, q.limit])].sort((a, b) => a - b).map((n) => h("option", { value: n, selected: q.limit === n }, n)))),
    h("label", { class: "check" }, h("input", { type: "checkbox", name: "reads", value: "1", checked: showReads }),
      `Show the trail's own reads (${[...readActions].join(", ")})`),
    h("div", { class: "buttons" },
      h("button", { type: "submit" }, "Search"),
      h("button", { type: "button", class: "secondary", onclick: () => go("#/trail") }, "Clear")));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const fd = new FormData(form);
    const p = new URLSearchParams();
    if (tenantsOn) p.set("tenant", String(fd.get("tenant") || "").trim());
    for (const f of FILTERS) p.set(f, String(fd.get(f) || "").trim());
    p.set("success", String(fd.get("success") || ""));
    p.set("from", fromLocalInput(String(fd.get("from") || "")));
    p.set("to", fromLocalInput(String(fd.get("to") || "")));
    if (Number(fd.get("limit")) !== 50) p.set("limit", String(fd.get("limit")));
    if (fd.get("reads")) p.set("reads", "1");
    go(trailHash(p));
  });

  const status = h("p", { class: "muted", role: "status", "aria-live": "polite", id: "trail-status" }, "Loading…");
  const tbody = h("tbody", { id: "trail-rows" });
  const table = h("table", { class: "events", "aria-describedby": "trail-status" },
    h("caption", { class: "sr-only" }, "Events, newest first"),
    h("thead", {}, h("tr", {}, ...["Time", "User", "Action", "Resource", "Outcome", ...(tenantsOn ? ["Tenant"] : []), "Event id"].map((c) => h("th", { scope: "col" }, c)))),
    tbody);
  const pager = h("nav", { class: "pager", "aria-label": "Pages" });
  const active = FILTERS.filter((f) => q[f]).map((f) => `${LABELS[f]} ${q[f]}`);
  if (q.tenant) active.unshift(`Tenant ${q.tenant}`);
  if (q.success !== undefined) active.push(q.success ? "succeeded" : "failed");
  if (q.from) active.push(`from ${q.from}`);
  if (q.to) active.push(`before ${q.to}`);
  main.append(
    h("h1", {}, cursor ? "Trail: older events" : "Trail: newest events"),
    h("details", { class: "search", open: active.length > 0 || undefined },
      h("summary", {}, active.length ? `Search: ${active.join(", ")}` : "Search and filter"), form),
    exportPanel(q, hideReads),
    status, h("div", { class: "scroll" }, table), pager);

  const shown = new Set();
  let newest = null;
  let stopped = false;
  stopView = () => { stopped = true; };

  const render = (page) => {
    for (const e of page.events) shown.add(e.id);
    newest = page.events.length ? page.events[0].timestamp : null;
    tbody.replaceChildren(...page.events.map((e) => eventRow(e, false)));
    const hiddenNote = hideReads && page.hidden ? ` (${page.hidden} of the trail's own reads hidden)` : "";
    status.textContent = page.events.length ? `${page.events.length} events${hiddenNote}` : `No events match${hiddenNote}.`;
    pager.replaceChildren();
    if (cursor) {
      const prev = new URLSearchParams(params);
      prev.delete("back");
      prev.delete("cursor");
      back.slice(0, -1).forEach((b) => prev.append("back", b));
      const last = back[back.length - 1];
      if (last) prev.set("cursor", last);
      pager.append(h("a", { class: "button", href: trailHash(prev), rel: "prev" }, "← Newer"));
      const first = new URLSearchParams(params);
      first.delete("back");
      first.delete("cursor");
      pager.append(h("a", { class: "button secondary", href: trailHash(first) }, "Newest"));
    }
    if (page.next) {
      const nx = new URLSearchParams(params);
      nx.delete("back");
      nx.delete("cursor");
      [...back, cursor || ""].forEach((b) => nx.append("back", b));
      nx.set("cursor", page.next);
      pager.append(h("a", { class: "button", href: trailHash(nx), rel: "next" }, "Older →"));
    }
  };

  fetchPage(q, cursor, !hideReads).then((page) => {
    if (stopped) return;
    render(page);
    // A user-timing mark: how long the first page took (docs/console.md).
    if (!performance.getEntriesByName("auditq-first-rows").length) performance.mark("auditq-first-rows");
    if (!cursor) poll();
  }, (err) => {
    status.replaceWith(errorBox(err));
  });

  // On the newest page, new events appear without a reload: every few
  // seconds, the events since the newest shown are asked for and put on top.
  const poll = () => {
    const timer = setTimeout(async () => {
      if (stopped) return;
      if (!document.hidden) {
        try {
          const since = { ...q, limit: 1000 };
          if (newest && (!q.from || Date.parse(newest) > Date.parse(q.from))) since.from = newest;
          const ans = await request("audit.query", since);
          // The next poll starts at the newest event seen, hidden or not.
          if (ans.events.length && Date.parse(ans.events[0].timestamp) > Date.parse(newest || 0)) newest = ans.events[0].timestamp;
          const fresh = ans.events.filter((e) => !shown.has(e.id) && !(hideReads && readActions.has(e.action)));
          if (fresh.length && !stopped) {
            for (const e of fresh) shown.add(e.id);
            tbody.prepend(...fresh.map((e) => eventRow(e, true)));
            const more = ans.nextCursor ? " (more than 1,000 arrived at once: reload for every one)" : "";
            status.textContent = `${tbody.rows.length} events, ${fresh.length} new${more}`;
          }
        } catch {
          // the connection status says what is wrong; try again later
        }
      }
      if (!stopped) poll();
    }, POLL_MS);
    const prevStop = stopView;
    stopView = () => { prevStop(); clearTimeout(timer); };
  };
}

// exportPanel exports every event of the filter q (not one page) through
// audit.export, as CSV or NDJSON, and saves it as a download.
function exportPanel(q, hideReads) {
  const filter = { ...q };
  delete filter.limit;
  const fmt = h("select", { name: "format", id: "export-format" }, h("option", { value: "csv" }, "CSV"), h("option", { value: "ndjson" }, "NDJSON"));
  const state = h("span", { id: "export-state", role: "status", "aria-live": "polite", class: "muted" });
  const cancel = h("button", { type: "button", class: "secondary", id: "export-cancel", hidden: true }, "Cancel export");
  const btn = h("button", { type: "button", id: "export-button", "aria-describedby": "export-help" }, "Export all matching events");
  let ctl = null;
  cancel.addEventListener("click", () => ctl && ctl.abort());
  btn.addEventListener("click", async () => {
    ctl = new AbortController();
    btn.disabled = true;
    cancel.hidden = false;
    state.className = "muted";
    delete state.dataset.events;
    state.textContent = "Exporting…";
    const format = fmt.value;
    try {
      const { blob, summary } = await exportEvents({ ...filter, format }, {
        signal: ctl.signal,
        onProgress: (p) => { state.textContent = `Exporting: ${num(p.events)} events, ${num(p.bytes)} bytes so far…`; },
      });
      const name = `auditq-export-${new Date().toISOString().replace(/[:.]/g, "-")}.${format === "csv" ? "csv" : "ndjson"}`;
      const url = URL.createObjectURL(blob);
      const a = h("a", { href: url, download: name, hidden: true });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60000);
      state.className = "ok";
      state.dataset.events = summary.events;
      state.textContent = `Saved ${name}: ${num(summary.events)} events, ${num(summary.bytes)} bytes${summary.checked ? ", SHA-256 checked" : ""}.`;
    } catch (err) {
      state.className = "error";
      state.textContent = (refusal(err) || apiMessage(err)) +
        (err.events ? ` (after ${num(err.events)} events; auditq export --resume ${err.cursor} continues it)` : "");
    } finally {
      btn.disabled = false;
      cancel.hidden = true;
    }
  });
  return h("section", { class: "export", "aria-labelledby": "export-h" },
    h("h2", { id: "export-h", class: "sr-only" }, "Export"),
    h("label", { class: "inline" }, "Format", fmt), btn, cancel, state,
    h("p", { class: "muted small", id: "export-help" }, "Every event of the current filter, newest first, not only this page",
      hideReads ? " (the trail's own reads included: the export has no filter to leave them out)." : "."));
}

// ---- one event

// eventHref is the address of event id of tenant (absent: the default
// tenant).
function eventHref(id, tenant) {
  return `#/event/${encodeURIComponent(id)}` + (tenant ? `?tenant=${encodeURIComponent(tenant)}` : "");
}

// eventKey is the body of audit.event.get and audit.event.proof for event
// id of tenant.
function eventKey(id, tenant) {
  return tenant ? { id, tenant } : { id };
}

function eventView(id, tenant) {
  main.append(h("p", {}, h("a", { href: "#/trail", onclick: (e) => { if (history.length > 1) { e.preventDefault(); history.back(); } } }, "← Back to the trail")),
    h("h1", {}, "Event ", h("code", {}, id)));
  const proofBox = h("section", { class: "proof", "aria-labelledby": "proof-h" },
    h("h2", { id: "proof-h" }, "Tamper evidence"),
    h("p", { id: "proof-state", class: "state checking", role: "status", "aria-live": "polite" }, "Checking the proof in this browser…"));
  const body = h("div");
  main.append(body);
  requestText("audit.event.get", eventKey(id, tenant)).then(async (text) => {
    const e = JSON.parse(text);
    const rows = [
      ["Time", timeEl(e.timestamp)], ["Received", timeEl(e.receivedAt)], ["User", e.userId ?? "(system)"], ["Action", e.action],
      ...(tenantsOn ? [["Tenant", e.tenant ?? "(default)"]] : []),
      ["Resource", `${e.resourceType}/${e.resourceId}`], ["Outcome", e.success === false ? "failed" : "succeeded"],
      ["Error", e.errorMessage], ["IP address", e.ipAddress], ["User agent", e.userAgent], ["Session", e.sessionId], ["Request", e.requestId],
    ].filter(([, v]) => v !== undefined && v !== null && v !== "");
    body.append(
      h("dl", { class: "fields" }, ...rows.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])),
      e.details ? h("section", {}, h("h2", {}, "Details"), h("pre", { class: "json", tabindex: "0" }, JSON.stringify(e.details, null, 2))) : "",
      proofBox,
      h("section", {}, h("h2", {}, "Raw JSON"), h("pre", { class: "json", tabindex: "0", id: "raw-json" }, JSON.stringify(JSON.parse(text), null, 2))));
    await checkProof(e, proofBox);
  }, (err) => body.append(errorBox(err)));
}

async function checkProof(e, box) {
  const state = box.querySelector("#proof-state");
  const say = (cls, title, detail) => {
    state.className = "state " + cls;
    state.replaceChildren(h("strong", {}, title), detail ? h("span", {}, " " + detail) : "");
  };
  if (!globalThis.crypto || !crypto.subtle) {
    say("error", "Cannot check here:", "this browser offers WebCrypto only on https:// or localhost pages.");
    return;
  }
  try {
    const [proofText, pubkey] = await Promise.all([requestText("audit.event.proof", eventKey(e.id, e.tenant)), request("audit.pubkey", {})]);
    const proof = parseProof(proofText);
    const ring = await keyRing(pubkey);
    const r = await verifyProof(e, proof, ring);
    if (r.state === "verified") say("verified", `Verified at checkpoint ${r.checkpoint.seq}`, `(${r.message}).`);
    else if (r.state === "pending") say("pending", "Pending:", r.message);
    else say("mismatch", "Does not match:", r.message);
    box.dataset.state = r.state;
    box.append(h("details", {}, h("summary", {}, "The proof"), h("pre", { class: "json", tabindex: "0" }, JSON.stringify(proof, null, 2))));
  } catch (err) {
    if (err instanceof ApiError && err.code === "501") say("error", "Not sealed:", "tamper evidence is off on this service.");
    else if (err instanceof ApiError && err.code === "404") say("pending", "Pending:", "the event is not sealed yet.");
    else say("error", "Cannot check:", String(err.message || err));
  }
}

// ---- reports

const REPORT_TYPES = ["daily", "weekly", "monthly", "custom"];

function zones() {
  try {
    return Intl.supportedValuesOf("timeZone");
  } catch {
    return [viewerZone, "UTC"];
  }
}

function reportsView() {
  const list = zones();
  if (!list.includes("UTC")) list.unshift("UTC");
  const typeSel = h("select", { name: "reportType", id: "report-type" }, ...REPORT_TYPES.map((t) => h("option", { value: t }, t)));
  const dateRow = h("label", { id: "report-date-row" }, "Any day in the period (empty: the last complete one)", h("input", { type: "date", name: "date" }));
  const customRows = h("div", { class: "custom", hidden: true },
    h("label", {}, "Start", h("input", { type: "datetime-local", step: "1", name: "startDate" })),
    h("label", {}, "End, exclusive", h("input", { type: "datetime-local", step: "1", name: "endDate" })));
  const tz = h("select", { name: "timeZone" }, ...list.map((z) => h("option", { value: z, selected: z === viewerZone }, z)));
  const out = h("div", { id: "report-out", "aria-live": "polite" });
  const form = h("form", { class: "report-form", "aria-label": "Generate a report" },
    h("label", {}, "Period", typeSel), dateRow, customRows, h("label", {}, "Time zone", tz),
    h("div", { class: "buttons" }, h("button", { type: "submit" }, "Generate report")));
  typeSel.addEventListener("change", () => {
    const custom = typeSel.value === "custom";
    customRows.hidden = !custom;
    dateRow.hidden = custom;
  });
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const fd = new FormData(form);
    const req = { reportType: String(fd.get("reportType")), timeZone: String(fd.get("timeZone")) };
    if (req.reportType === "custom") {
      // The wall-clock times are read in the report's zone, not the viewer's.
      req.startDate = zonedToRFC3339(String(fd.get("startDate") || ""), req.timeZone);
      req.endDate = zonedToRFC3339(String(fd.get("endDate") || ""), req.timeZone);
    } else if (fd.get("date")) {
      req.date = String(fd.get("date"));
    }
    out.replaceChildren(h("p", { class: "muted" }, "Generating…"));
    try {
      const rep = await request("audit.report", req, 60000);
      go(`#/stored/${rep.id}`);
    } catch (err) {
      out.replaceChildren(errorBox(err));
    }
  });
  main.append(h("h1", {}, "Reports"),
    h("p", { class: "muted" }, "A report counts the events of a calendar period (or of any span) in a time zone. Each one is stored: find it again under ", h("a", { href: "#/stored" }, "Stored reports"), "."),
    form, out);
}

// zonedToRFC3339 reads a datetime-local value as wall-clock time in zone
// and returns it as RFC 3339 with that zone's offset ("" for "").
function zonedToRFC3339(v, zone) {
  if (!v) return "";
  const [d, t = "00:00:00"] = v.split("T");
  const [Y, M, D] = d.split("-").map(Number);
  const [hh, mm, ss = 0] = t.split(":").map(Number);
  const asUTC = Date.UTC(Y, M - 1, D, hh, mm, ss);
  // The zone's offset at that instant, found by formatting; twice, for
  // times near a change of offset.
  const offsetAt = (ms) => {
    const parts = Object.fromEntries(new Intl.DateTimeFormat("en-US", { timeZone: zone, hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit" })
      .formatToParts(new Date(ms)).map((p) => [p.type, p.value]));
    return Date.UTC(+parts.year, +parts.month - 1, +parts.day, +parts.hour, +parts.minute, +parts.second) - ms;
  };
  let off = offsetAt(asUTC);
  off = offsetAt(asUTC - off);
  const sign = off < 0 ? "-" : "+";
  const a = Math.abs(off) / 60000;
  const p = (n) => String(n).padStart(2, "0");
  return `${d}T${p(hh)}:${p(mm)}:${p(ss)}${sign}${p(Math.floor(a / 60))}:${p(a % 60)}`;
}

function figure(label, text, key, value) {
  return h("div", { class: "figure" }, h("span", { class: "label" }, label), h("span", { class: "value", "data-figure": key, "data-value": value }, text));
}

function renderReport(r) {
  const s = r.summary;
  const period = r.period;
  return h("article", { class: "report", "data-report-id": r.id },
    h("h1", {}, `${r.reportType[0].toUpperCase()}${r.reportType.slice(1)} report #${r.id}`),
    h("p", { class: "muted" }, `${period.timeZone}: from ${period.startDate} to ${period.endDate} (exclusive); in your zone from `, timeEl(period.startDate), " to ", timeEl(period.endDate),
      ". Generated ", timeEl(r.generatedAt), `, trigger ${r.trigger}.`),
    h("div", { class: "figures" },
      figure("Events", num(s.total), "total", s.total), figure("Succeeded", num(s.successful), "successful", s.successful),
      figure("Failed", num(s.failed), "failed", s.failed), figure("Success rate", `${s.successRate}%`, "successRate", s.successRate)),
    h("figure", { class: "chart" }, h("figcaption", {}, "Success rate"), ratioBar(s.successful, s.failed)),
    h("div", { class: "charts" },
      barChart("Top actions", r.topActions.map((x) => ({ label: x.action, value: x.count }))),
      barChart("Top users", r.topUsers.map((x) => ({ label: x.userId, value: x.count }))),
      barChart("Top resource types", r.topResources.map((x) => ({ label: x.resourceType, value: x.count }))),
      barChart("Failures by action", r.failureAnalysis.map((x) => ({ label: x.action, value: x.failed })), { color: "var(--bad)" })),
    h("section", {}, h("h2", {}, "Failure analysis"),
      r.failureAnalysis.length === 0 ? h("p", { class: "muted" }, "No failed events in this period.") :
        h("table", { class: "data", id: "failures" }, h("thead", {}, h("tr", {}, ...["Action", "Failed", "Total", "Failure rate"].map((c) => h("th", { scope: "col" }, c)))),
          h("tbody", {}, ...r.failureAnalysis.map((x) => h("tr", {}, h("td", {}, x.action), h("td", {}, num(x.failed)), h("td", {}, num(x.total)), h("td", {}, `${x.failureRate}%`)))))),
    h("section", {}, h("h2", {}, "Every action"),
      h("table", { class: "data", id: "breakdown" }, h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Action"), h("th", { scope: "col" }, "Events"))),
        h("tbody", {}, ...s.actionBreakdown.map((x) => h("tr", {}, h("td", {}, x.action), h("td", { "data-count": x.count }, num(x.count))))))));
}

function storedReportView(id) {
  main.append(h("p", {}, h("a", { href: "#/stored" }, "← Stored reports")));
  const n = Number(id);
  request("audit.report.get", { id: n }).then((r) => main.append(renderReport(r)), (err) => main.append(errorBox(err)));
}

function storedView(params) {
  const type = params.get("type") || "";
  const cursor = params.get("cursor");
  const back = params.getAll("back");
  const sel = h("select", { name: "type", id: "stored-type" }, h("option", { value: "" }, "all"), ...REPORT_TYPES.map((t) => h("option", { value: t, selected: t === type }, t)));
  sel.addEventListener("change", () => go(sel.value ? `#/stored?type=${sel.value}` : "#/stored"));
  const tbody = h("tbody", { id: "stored-rows" });
  const pager = h("nav", { class: "pager", "aria-label": "Pages" });
  const status = h("p", { class: "muted", role: "status" }, "Loading…");
  main.append(h("h1", {}, "Stored reports"), h("label", { class: "inline" }, "Period ", sel), status,
    h("div", { class: "scroll" }, h("table", { class: "data" },
      h("caption", { class: "sr-only" }, "Stored reports, newest first"),
      h("thead", {}, h("tr", {}, ...["Report", "Period", "From", "To", "Generated", "Trigger"].map((c) => h("th", { scope: "col" }, c)))), tbody)), pager);
  const req = { limit: 25 };
  if (type) req.reportType = type;
  if (cursor) req.cursor = cursor;
  const timeline = h("div", { id: "stored-timeline" });
  main.insertBefore(timeline, status);
  request("audit.report.list", req).then((ans) => {
    status.textContent = ans.reports.length ? "" : "No stored reports yet: generate one under Reports.";
    if (type === "daily" && ans.reports.length) dailyTimeline(ans.reports, timeline);
    tbody.replaceChildren(...ans.reports.map((r) => h("tr", {},
      h("td", {}, h("a", { href: `#/stored/${r.id}` }, `#${r.id}`)), h("td", {}, r.reportType),
      h("td", {}, timeEl(r.period.startDate)), h("td", {}, timeEl(r.period.endDate)), h("td", {}, timeEl(r.generatedAt)), h("td", {}, r.trigger))));
    const base = () => { const p = new URLSearchParams(); if (type) p.set("type", type); return p; };
    if (cursor) {
      const p = base();
      back.slice(0, -1).forEach((b) => p.append("back", b));
      if (back[back.length - 1]) p.set("cursor", back[back.length - 1]);
      pager.append(h("a", { class: "button", href: "#/stored?" + p, rel: "prev" }, "← Newer"));
    }
    if (ans.nextCursor) {
      const p = base();
      [...back, cursor || ""].forEach((b) => p.append("back", b));
      p.set("cursor", ans.nextCursor);
      pager.append(h("a", { class: "button", href: "#/stored?" + p, rel: "next" }, "Older →"));
    }
  }, (err) => status.replaceWith(errorBox(err)));
}

// dailyTimeline draws the events of each listed daily report, oldest on
// the left: the trail over time, in the API's own figures.
async function dailyTimeline(reports, into) {
  const full = new Array(reports.length);
  let next = 0;
  const worker = async () => {
    while (next < reports.length) {
      const i = next++;
      full[i] = await request("audit.report.get", { id: reports[i].id });
    }
  };
  try {
    await Promise.all([worker(), worker(), worker(), worker()]);
  } catch (err) {
    into.replaceChildren(errorBox(err));
    return;
  }
  const rows = full.reverse().map((r) => ({
    label: `${r.period.startDate.slice(0, 10)} ${r.period.timeZone} (#${r.id})`,
    total: r.summary.total,
    failed: r.summary.failed,
  }));
  into.replaceChildren(columnChart("Events per day, from these daily reports", rows));
}

// ---- operations (operator role): the audit.admin.* subjects
// (docs/contract.md, "Operations"). The link appears only when
// audit.admin.status answers; the view itself always asks, so a login
// that may not use these subjects sees the server's refusal.

async function operatorAllowed() {
  try {
    await request("audit.admin.status", {}, 5000);
    return true;
  } catch {
    return false;
  }
}

function rawJSON(label, v) {
  return h("details", {}, h("summary", {}, label), h("pre", { class: "json", tabindex: "0" }, JSON.stringify(v, null, 2)));
}

function seconds(s) {
  if (s < 120) return `${Math.round(s)} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}

function section(id, title) {
  return h("section", { "aria-labelledby": id + "-h", id },
    h("h2", { id: id + "-h" }, title), h("p", { class: "muted", role: "status" }, "Loading…"));
}

function operationsView() {
  const status = section("ops-status", "Status");
  const poison = section("ops-poison", "Poison stream");
  const schedules = section("ops-schedules", "Schedules");
  const cleanups = section("ops-cleanups", "Last cleanups");
  const dryrun = section("ops-dryrun", "Dry-run cleanup");
  const note = document.body.dataset.operator === "no"
    ? h("p", { class: "muted" }, "This login is not an operator's: the server refuses it the operator subjects (audit.admin.*), as each section below shows.")
    : "";
  main.append(h("h1", {}, "Operations"), note, status, poison, schedules, cleanups, dryrun);
  const fill = (sec, ...nodes) => sec.replaceChildren(sec.firstChild, ...nodes);
  let stopped = false;
  stopView = () => { stopped = true; };

  request("audit.admin.status", {}).then((st) => {
    const c = st.checkpoint;
    const v = st.lastVerify;
    const jobs = Object.entries(st.poison || {});
    const pending = Object.entries(st.pending || {});
    fill(status,
      h("dl", { class: "fields", id: "status-fields" },
        h("dt", {}, "Last checkpoint"), h("dd", { id: "status-checkpoint" },
          !st.tamperEvidence ? "tamper evidence is off (AUDITQ_TAMPER_EVIDENCE)"
            : c ? [`#${c.seq} (${c.reason}), `, timeEl(c.time), `, ${seconds(st.checkpointAgeSeconds)} ago`,
              st.nextCheckpointDue ? [", next due ", timeEl(st.nextCheckpointDue)] : ""] : "none yet"),
        h("dt", {}, "Last verify"), h("dd", { id: "status-verify" },
          v ? [h("span", { class: v.ok ? "badge good" : "badge bad" }, v.ok ? "ok" : "failed"), " ", timeEl(v.finishedAt),
            `: ${num(v.events)} events, ${num(v.batches)} batches, ${num(v.checkpoints)} checkpoints`,
            v.checkpointSeq ? `, up to checkpoint #${v.checkpointSeq}` : "",
            v.failureCount ? `; ${num(v.failureCount)} problems, first: ${v.firstFailure}` : "",
            ` (${v.trigger}, ${num(v.durationMs)} ms)`]
            : "never recorded: run auditq verify (docs/operations.md)"),
        h("dt", {}, "Poison backlog"), h("dd", { id: "status-poison" },
          jobs.map(([job, p], i) => [i ? ", " : "", `${job} ${num(p.messages)}`, p.oldest ? [" (oldest ", timeEl(p.oldest), ")"] : ""])),
        h("dt", {}, "Jobs waiting"), h("dd", { id: "status-pending" },
          pending.length ? pending.map(([subj, n], i) => `${i ? ", " : ""}${subj} ${num(n)}`) : "none")),
      rawJSON("The answer of audit.admin.status", st));
  }, (err) => fill(status, errorBox(err)));

  const poisonNote = h("p", { role: "status", "aria-live": "polite", id: "poison-note", class: "muted", tabindex: "-1" });
  const loadPoison = () => request("audit.admin.poison.list", { limit: 50 }).then((ans) => {
    if (stopped) return;
    const msgs = ans.messages;
    if (!msgs.length) {
      fill(poison, poisonNote, h("p", { class: "muted", id: "poison-empty" }, "No poisoned messages."));
      return;
    }
    const more = ans.nextCursor ? h("p", { class: "muted" }, "The newest 50 are shown; auditq poison list pages through the rest.") : "";
    fill(poison, poisonNote, more, h("div", { class: "scroll" }, h("table", { class: "data", id: "poison-rows" },
      h("caption", { class: "sr-only" }, "Poisoned messages, newest first"),
      h("thead", {}, h("tr", {}, ...["Seq", "Stored", "Job", "Message id", "Reason", "Actions"].map((x) => h("th", { scope: "col" }, x)))),
      h("tbody", {}, ...msgs.flatMap((m) => poisonRow(m, poisonNote, loadPoison))))));
  }, (err) => fill(poison, poisonNote, errorBox(err)));
  loadPoison();

  request("audit.admin.schedules", {}).then((ans) => {
    fill(schedules, ans.schedules.length === 0 ? h("p", { class: "muted" }, "No schedules installed (AUDITQ_CLEANUP_CRON, AUDITQ_REPORT_DAILY_CRON).") :
      h("div", { class: "scroll" }, h("table", { class: "data", id: "schedule-rows" },
        h("caption", { class: "sr-only" }, "Installed schedules"),
        h("thead", {}, h("tr", {}, ...["Name", "Pattern", "Fires to", "Job", "Next firing"].map((x) => h("th", { scope: "col" }, x)))),
        h("tbody", {}, ...ans.schedules.map((x) => h("tr", { "data-name": x.name }, h("td", {}, x.name), h("td", {}, h("code", {}, x.pattern), ` (${x.timeZone})`),
          h("td", {}, x.target), h("td", {}, h("code", {}, x.payload)), h("td", { class: "next" }, x.next ? timeEl(x.next) : "cannot be computed")))))));
  }, (err) => fill(schedules, errorBox(err)));

  request("audit.admin.cleanups", { limit: 10 }).then((ans) => {
    fill(cleanups, ans.cleanups.length === 0 ? h("p", { class: "muted" }, "No cleanup has run yet.") :
      h("div", { class: "scroll" }, h("table", { class: "data", id: "cleanup-rows" },
        h("caption", { class: "sr-only" }, "The last cleanup runs, newest first"),
        h("thead", {}, h("tr", {}, ...["Ran", "Cutoff", "Deleted", "Dry run", "Duration", "Trigger", "Job"].map((x) => h("th", { scope: "col" }, x)))),
        h("tbody", {}, ...ans.cleanups.map((x) => h("tr", { "data-job": x.jobId }, h("td", {}, timeEl(x.ranAt)), h("td", {}, timeEl(x.cutoff)),
          h("td", { "data-count": x.deletedCount }, num(x.deletedCount)), h("td", {}, x.dryRun ? "yes" : "no"), h("td", {}, `${num(x.durationMs)} ms`),
          h("td", {}, x.trigger), h("td", {}, h("a", { href: `#/event/${encodeURIComponent(x.eventId)}`, "aria-label": `Open the event of cleanup ${x.jobId}` }, x.jobId))))))));
  }, (err) => fill(cleanups, errorBox(err)));

  // A dry run counts what a cleanup would delete now, deleting nothing:
  // the scheduled cleanup's settings, or a retention in days.
  const result = h("div", { id: "dryrun-result", role: "status", "aria-live": "polite" });
  const days = h("input", { name: "retentionDays", type: "number", min: "1", step: "1", inputmode: "numeric", placeholder: "the schedule's", "aria-describedby": "dryrun-help" });
  const form = h("form", { class: "inline-form", "aria-label": "Dry-run cleanup" },
    h("label", {}, "Retention in days", days),
    h("div", { class: "buttons" }, h("button", { type: "submit", id: "dryrun-button" }, "Count what a cleanup would delete")));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const body = days.value ? { retentionDays: Number(days.value) } : {};
    result.replaceChildren(h("p", { class: "muted" }, "Counting…"));
    try {
      const d = await request("audit.admin.cleanup.dryrun", body);
      result.replaceChildren(h("dl", { class: "fields", "data-would-delete": d.wouldDelete, "data-cutoff": d.cutoff },
        h("dt", {}, "Would delete"), h("dd", { id: "dryrun-count" }, `${num(d.wouldDelete)} events`),
        h("dt", {}, "Cutoff"), h("dd", {}, timeEl(d.cutoff)),
        h("dt", {}, "Settings"), h("dd", {}, d.scheduled ? "the scheduled cleanup's " : "",
          d.retentionDays ? `retention ${d.retentionDays} days` : ["before ", timeEl(d.beforeDate)],
          d.excludeActions.length ? `, keeping ${d.excludeActions.join(", ")}` : ""),
        h("dt", {}, "Counted in"), h("dd", {}, `${num(d.durationMs)} ms; nothing was deleted`)));
    } catch (err) {
      result.replaceChildren(errorBox(err));
    }
  });
  fill(dryrun, h("p", { class: "muted", id: "dryrun-help" }, "Counts the events a cleanup would delete now, through the retention policy and legal holds; deletes nothing. Empty: the scheduled cleanup's settings (AUDITQ_RETENTION_DAYS)."), form, result);
}

// poisonRow is one poisoned message and its hidden detail row: the
// reason, the payload (fetched on demand, editable), Replay (of the
// payload as shown, corrected or not) and Discard (two presses).
function poisonRow(m, note, reload) {
  const detail = h("td", { colspan: 6 });
  const extra = h("tr", { hidden: true, class: "poison-detail", id: `detail-${m.seq}` }, detail);
  let edited = null;
  const act = async (subject, body, done) => {
    try {
      const ans = await request(subject, body);
      note.textContent = done(ans);
      note.className = "ok";
      await reload();
    } catch (err) {
      note.className = "";
      note.replaceChildren(errorBox(err));
    }
    // The row's buttons went with the row: the focus moves to the outcome,
    // once the list is drawn again.
    note.focus();
  };
  const show = async () => {
    detail.replaceChildren(h("p", { class: "muted" }, "Loading…"));
    try {
      const full = await request("audit.admin.poison.get", { seq: m.seq });
      const id = `payload-${m.seq}`;
      const area = h("textarea", { id, rows: 6, spellcheck: "false", class: "payload" }, full.payload ?? "");
      area.addEventListener("input", () => { edited = area.value; });
      detail.replaceChildren(
        h("p", {}, h("strong", {}, "Reason: "), full.reason),
        full.payload === undefined ? h("p", { class: "error" }, `The payload is not UTF-8 text (${full.size} bytes, base64 in the answer); replay it with auditq poison replay.`) :
          h("label", { for: id }, `Payload${full.truncated ? " (truncated: it must be corrected before a replay)" : ""}: edit to correct it, then Replay`),
        full.payload === undefined ? "" : area,
        rawJSON("Headers", full.headers));
      area.focus();
    } catch (err) {
      detail.replaceChildren(errorBox(err));
    }
  };
  return [h("tr", { "data-seq": m.seq },
    h("td", {}, m.seq), h("td", {}, timeEl(m.time)), h("td", {}, m.job), h("td", {}, m.id || ""), h("td", { class: "reason" }, m.reason),
    h("td", { class: "actions" },
      h("button", { type: "button", class: "secondary", "aria-expanded": "false", "aria-controls": `detail-${m.seq}`, "aria-label": `Show the payload of message ${m.seq}`, onclick: (ev) => {
        extra.hidden = !extra.hidden;
        ev.currentTarget.setAttribute("aria-expanded", String(!extra.hidden));
        if (!extra.hidden) show();
      } }, "Payload"),
      h("button", { type: "button", "aria-label": `Replay message ${m.seq}`, onclick: () => {
        const body = { seq: m.seq };
        if (edited !== null) body.payload = edited;
        act("audit.admin.poison.replay", body, (r) => `Message ${m.seq} replayed to ${r.subject} as ${r.id} (stream sequence ${r.seq}${r.duplicate ? ", a duplicate of an earlier replay" : ""}).`);
      } }, "Replay"),
      // Discarding cannot be undone: the first press asks, the second discards.
      h("button", { type: "button", class: "secondary", "aria-label": `Discard message ${m.seq}`, onclick: (ev) => {
        const b = ev.currentTarget;
        if (!b.dataset.armed) {
          b.dataset.armed = "1";
          b.textContent = "Discard for good?";
          return;
        }
        act("audit.admin.poison.discard", { seq: m.seq }, (r) => `Message ${r.discarded.seq} (${r.discarded.id || "no id"}) discarded.`);
      } }, "Discard"))),
  extra];
}

// ---- start: connect, with a login form when the server wants one

function loginForm(cfg, problem) {
  const err = h("p", { class: "error", role: "alert" }, problem || "");
  const form = h("form", { class: "login", "aria-labelledby": "login-h" },
    h("h1", { id: "login-h" }, "Log in"),
    h("p", { class: "muted" }, "The NATS server asks for credentials: a console user and password, or a token."),
    h("label", {}, "User", h("input", { name: "user", autocomplete: "username" })),
    h("label", {}, "Password", h("input", { name: "pass", type: "password", autocomplete: "current-password" })),
    h("label", {}, "or token", h("input", { name: "token", type: "password", autocomplete: "off" })),
    err, h("div", { class: "buttons" }, h("button", { type: "submit" }, "Log in")));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const fd = new FormData(form);
    const creds = fd.get("user") ? { user: String(fd.get("user")), pass: String(fd.get("pass")) } : { token: String(fd.get("token") || "") };
    try {
      await connect(cfg, creds, setStatus);
      start();
    } catch (e) {
      err.textContent = isAuthError(e) ? "The server refused these credentials." : String(e.message || e);
    }
  });
  main.replaceChildren(form);
  form.querySelector("input").focus();
}

function start() {
  window.addEventListener("hashchange", route);
  route();
  operatorAllowed().then((ok) => {
    document.body.dataset.operator = ok ? "yes" : "no";
    if (ok) document.querySelector("nav").append(h("a", { href: "#/operations", "data-view": "operations" }, "Operations"));
    if (parseHash().parts[0] === "operations") route();
  });
}

(async () => {
  let cfg;
  try {
    cfg = await loadConfig();
  } catch (e) {
    main.replaceChildren(errorBox(e));
    return;
  }
  if (!cfg.websocketUrl) {
    setStatus("not configured");
    main.replaceChildren(h("p", { class: "error", role: "alert" },
      "The console has no NATS WebSocket URL: enable the embedded server's listener (AUDITQ_NATS_WEBSOCKET) or set AUDITQ_CONSOLE_WEBSOCKET_URL."));
    return;
  }
  tenantsOn = cfg.tenants === true;
  readActions = new Set(Array.isArray(cfg.readActions) ? cfg.readActions : []);
  try {
    await connect(cfg, {}, setStatus);
  } catch (e) {
    if (isAuthError(e)) {
      setStatus("login required");
      loginForm(cfg);
      return;
    }
    setStatus("disconnected");
    main.replaceChildren(errorBox(new Error(`cannot reach NATS at ${cfg.websocketUrl}: ${e.message || e}`)));
    return;
  }
  start();
})();
