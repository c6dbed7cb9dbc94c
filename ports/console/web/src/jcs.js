// RFC 8785 (JSON Canonicalization Scheme) and the canonical event of
// docs/tamper-evidence.md, rebuilt from an event as audit.event.get shows it.

// jcs returns the RFC 8785 serialisation of a parsed JSON value: members
// sorted by UTF-16 code units, JSON.stringify's string escapes, numbers as
// Number.prototype.toString prints them.
export function jcs(v) {
  if (v === null) return "null";
  switch (typeof v) {
    case "boolean":
      return v ? "true" : "false";
    case "number":
      if (!Number.isFinite(v)) throw new Error("not a finite number");
      return String(v); // String(-0) is "0", as RFC 8785 wants
    case "string":
      return JSON.stringify(v);
    case "object":
      if (Array.isArray(v)) return "[" + v.map(jcs).join(",") + "]";
      return "{" + Object.keys(v).sort().map((k) => JSON.stringify(k) + ":" + jcs(v[k])).join(",") + "}";
    default:
      throw new Error("not a JSON value: " + typeof v);
  }
}

const timeRe = /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$/;

// time6 formats an RFC 3339 time as the canonical encoding does: UTC,
// exactly six fractional digits and a Z. It throws for anything else.
export function time6(s) {
  const m = timeRe.exec(s);
  if (!m) throw new Error(`not an RFC 3339 time: ${s}`);
  const frac = (m[7] || "").padEnd(6, "0");
  if (frac.length > 6) throw new Error(`more than microsecond precision: ${s}`);
  let base = `${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}`;
  if (m[8] !== "Z") {
    const sign = m[8][0] === "-" ? 1 : -1;
    const off = (Number(m[8].slice(1, 3)) * 60 + Number(m[8].slice(4, 6))) * 60000;
    const t = Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]) + sign * off;
    base = new Date(t).toISOString().slice(0, 19);
  }
  return `${base}.${frac}Z`;
}

// canonicalEvent returns the leaf data of an event as audit.event.get
// answers it (timestamp is the event time): the members of the stored row,
// absent optional fields left out (tenant is absent for the default
// tenant, as in the hash).
export function canonicalEvent(e) {
  const o = {
    action: e.action,
    id: e.id,
    occurredAt: time6(e.timestamp),
    receivedAt: time6(e.receivedAt),
    resourceId: String(e.resourceId),
    resourceType: e.resourceType,
    success: e.success !== false,
  };
  for (const k of ["details", "errorMessage", "ipAddress", "requestId", "sessionId", "tenant", "userAgent", "userId"]) {
    if (e[k] !== undefined && e[k] !== null && e[k] !== "") o[k] = e[k];
  }
  return jcs(o);
}
