// The console's one way to the service: request-reply over the NATS
// WebSocket listener, to the same subjects as `nats req` (docs/contract.md).
import { wsconnect, headers as natsHeaders } from "@nats-io/nats-core";

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
let requester = "console";
const dec = new TextDecoder();

// loadConfig reads /console/config.json: {websocketUrl, inboxPrefix}.
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
  if (cfg.inboxPrefix) opts.inboxPrefix = cfg.inboxPrefix;
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
    }
  })();
  nc.closed().then(() => onStatus("disconnected"));
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
