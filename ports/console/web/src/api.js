// The console's one way to the service: request-reply over the NATS
// WebSocket listener, to the same subjects as `nats req` (docs/contract.md).
import { createInbox, wsconnect, headers as natsHeaders } from "@nats-io/nats-core";

// ApiError is an error answer of the micro service: code ("400", ...),
// message and, for a 400, the field.
export class ApiError extends Error {
  constructor(code, message, field) {
    super(message);
    this.code = code;
    this.field = field;
  }
}

let nc = null;
let inboxPrefix = "";
let requester = "console";
// The server's asynchronous errors (permission violations) for whoever
// waits on a subject that is not a request: an export.
const errorListeners = new Set();
const dec = new TextDecoder();

// loadConfig reads /console/config.json: {websocketUrl, inboxPrefix,
// tenants, readActions}.
export async function loadConfig() {
  const r = await fetch("/console/config.json", { cache: "no-store" });
  if (!r.ok) throw new Error(`/console/config.json answered ${r.status}`);
  return r.json();
}

// isAuthError tells whether a connect failed for want of (valid)
// credentials.
export function isAuthError(err) {
  const s = String((err && (err.message || err.name)) || err).toLowerCase();
  return s.includes("authorization") || s.includes("authentication");
}

// connect opens the connection; creds is {} (no login), {user, pass} or
// {token}. onStatus gets "connected", "reconnecting" or "disconnected".
export async function connect(cfg, creds, onStatus) {
  const opts = { servers: cfg.websocketUrl, name: "auditq-console", maxReconnectAttempts: -1, reconnectTimeWait: 2000 };
  inboxPrefix = inboxPrefixFor(cfg.inboxPrefix, creds.user);
  if (inboxPrefix) opts.inboxPrefix = inboxPrefix;
  if (creds.user) {
    opts.user = creds.user;
    opts.pass = creds.pass;
  } else if (creds.token) {
    opts.token = creds.token;
  }
  nc = await wsconnect(opts);
  requester = creds.user ? `console:${creds.user}` : "console";
  onStatus("connected");
  (async () => {
    for await (const s of nc.status()) {
      if (s.type === "disconnect") onStatus("disconnected");
      else if (s.type === "reconnecting") onStatus("reconnecting");
      else if (s.type === "reconnect") onStatus("connected");
      else if (s.type === "error") for (const f of errorListeners) f(s.error);
    }
  })();
  nc.closed().then(() => onStatus("disconnected"));
}

// inboxPrefixFor is the configured inbox prefix with {user} replaced by
// the logged-in user, each character but A-Z a-z 0-9 _ as "_"
// ("_INBOX_{user}" gives each user of the access configuration its own
// replies: acme-reader's are _INBOX_acme_reader); without a login {user}
// is "console".
export function inboxPrefixFor(prefix, user) {
  return (prefix || "").replaceAll("{user}", (user || "console").replace(/[^A-Za-z0-9_]/g, "_"));
}

// refusal says plainly that the NATS server refused a subject to this
// login, or returns "" for any other error.
export function refusal(err) {
  const pve = isPermissionError(err) ? err : err && isPermissionError(err.cause) ? err.cause : null;
  return pve ? `Refused by the NATS server: this login may not use it (${pve.message}).` : "";
}

// isPermissionError tells whether err is the server's permissions
// violation (nats.js may hand it over as the cause of a request error).
function isPermissionError(err) {
  return !!err && (err.name === "PermissionViolationError" || /^Permissions Violation/.test(String(err.message)));
}

// requestText sends body (an object) to subject and returns the answer's
// text; an error answer throws an ApiError.
export async function requestText(subject, body = {}, timeout = 20000) {
  if (!nc) throw new Error("not connected");
  const h = natsHeaders();
  h.set("Auditq-Requester", requester);
  const m = await nc.request(subject, JSON.stringify(body), { timeout, headers: h });
  const text = dec.decode(m.data);
  const code = m.headers && m.headers.get("Nats-Service-Error-Code");
  if (code) {
    let field;
    let message = (m.headers && m.headers.get("Nats-Service-Error")) || "error";
    try {
      const b = JSON.parse(text);
      field = b.field;
      message = b.error || message;
    } catch {
      // the headers say enough
    }
    throw new ApiError(code, message, field);
  }
  return text;
}

// request is requestText with the answer parsed.
export async function request(subject, body = {}, timeout) {
  return JSON.parse(await requestText(subject, body, timeout));
}

// exportEvents runs an export (docs/export.md): body is the request of
// audit.export (filters and format). The chunks arrive on an inbox of
// this connection; each is kept as a Blob (which the browser may keep
// on disk) and acknowledged on the chunk's Auditq-Export-Ack subject, so
// the service sends at most its window ahead. The sequence, the count,
// the bytes and (up to 256 MiB) the SHA-256 are checked against the
// final summary. onProgress gets {events, chunks, bytes}; signal cancels
// (sending "cancel" on the ack subject). It resolves to {blob, summary};
// an error answer throws an ApiError carrying the cursor to resume from.
export async function exportEvents(body, { onProgress, signal, timeout = 60000 } = {}) {
  if (!nc) throw new Error("not connected");
  const inbox = createInbox(inboxPrefix);
  const sub = nc.subscribe(inbox);
  const parts = [];
  let seq = 0;
  let events = 0;
  let bytes = 0;
  let ack = "";
  let refused = null;
  let ended = false; // the service sent its last message
  const onErr = (err) => {
    if (isPermissionError(err) && (err.subject === "audit.export" || err.subject === inbox || err.subject === ack)) {
      refused = err;
      sub.unsubscribe();
    }
  };
  errorListeners.add(onErr);
  let idle;
  const arm = () => {
    clearTimeout(idle);
    idle = setTimeout(() => sub.unsubscribe(), timeout);
  };
  const cancel = () => {
    if (ack) nc.publish(ack, "cancel");
    sub.unsubscribe();
  };
  if (signal) signal.addEventListener("abort", cancel, { once: true });
  try {
    const h = natsHeaders();
    h.set("Auditq-Requester", requester);
    nc.publish("audit.export", JSON.stringify(body), { reply: inbox, headers: h });
    arm();
    for await (const m of sub) {
      arm();
      const hd = (k) => (m.headers ? m.headers.get(k) : "");
      const code = hd("Nats-Service-Error-Code");
      if (code) {
        let message = hd("Nats-Service-Error") || "error";
        let field;
        try {
          const b = JSON.parse(dec.decode(m.data));
          message = b.error || message;
          field = b.field;
        } catch {
          // the headers say enough
        }
        ended = true;
        const e = new ApiError(code, message, field);
        e.cursor = hd("Auditq-Export-Cursor");
        e.events = events;
        throw e;
      }
      const n = Number(hd("Auditq-Export-Seq"));
      if (n !== seq + 1) throw new Error(`export: message ${n} arrived after ${seq}: a message was lost`);
      seq = n;
      if (hd("Auditq-Export-Status") === "done") {
        ended = true;
        const summary = JSON.parse(dec.decode(m.data));
        if (summary.events !== events || summary.chunks !== seq - 1 || summary.bytes !== bytes) {
          throw new Error(`export: received ${events} events in ${seq - 1} chunks (${bytes} bytes), the service sent ${summary.events} in ${summary.chunks} (${summary.bytes} bytes)`);
        }
        const blob = new Blob(parts, { type: body.format === "csv" ? "text/csv" : "application/x-ndjson" });
        if (bytes <= 256 << 20 && globalThis.crypto && crypto.subtle) {
          const d = new Uint8Array(await crypto.subtle.digest("SHA-256", await blob.arrayBuffer()));
          const hex = [...d].map((b) => b.toString(16).padStart(2, "0")).join("");
          if (hex !== summary.sha256) throw new Error(`export: the file hashes to ${hex}, the service sent ${summary.sha256}`);
          summary.checked = "sha256";
        }
        return { blob, summary };
      }
      parts.push(new Blob([m.data]));
      events += Number(hd("Auditq-Export-Events")) || 0;
      bytes += m.data.length;
      ack = hd("Auditq-Export-Ack") || ack;
      if (ack) nc.publish(ack, String(n));
      if (onProgress) onProgress({ events, chunks: seq, bytes });
    }
    if (refused) throw refused;
    if (signal && signal.aborted) throw new Error(`export cancelled after ${events} events`);
    throw new Error(`export: nothing arrived for ${timeout / 1000} s after ${events} events`);
  } finally {
    // Stopped early on this side (a lost message, a bad summary): the
    // service is told at once rather than after its ack timeout.
    if (!ended && ack && !(signal && signal.aborted)) nc.publish(ack, "cancel");
    clearTimeout(idle);
    errorListeners.delete(onErr);
    if (signal) signal.removeEventListener("abort", cancel);
    sub.unsubscribe();
  }
}
