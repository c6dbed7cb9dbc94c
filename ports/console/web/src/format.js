// Dates in the viewer's time zone, UTC on hover; small DOM helpers.

const fmt = new Intl.DateTimeFormat(undefined, {
  year: "numeric", month: "short", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit",
});

export const viewerZone = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";

// h builds an element: h("a", {href: "#"}, "text", child, ...). Text is
// always set as text, never parsed as HTML.
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

// timeEl shows an RFC 3339 time in the viewer's zone, with the exact UTC
// time as its title and datetime.
export function timeEl(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return h("time", { datetime: iso, title: `${iso} (UTC: ${d.toISOString()})` }, fmt.format(d));
}

// toLocalInput turns an RFC 3339 time into a datetime-local value in the
// viewer's zone; fromLocalInput does the reverse (UTC, RFC 3339).
export function toLocalInput(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "";
  const p = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

export function fromLocalInput(v) {
  if (!v) return "";
  const d = new Date(v); // a datetime-local value is read in the viewer's zone
  return Number.isNaN(d.getTime()) ? "" : d.toISOString();
}

export const num = (n) => Number(n).toLocaleString();
