// Hand-drawn SVG charts; each has a text alternative and its figures as
// data attributes (the browser test compares them with the API's).
const NS = "http://www.w3.org/2000/svg";

function s(tag, attrs, text) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

// barChart draws horizontal bars for rows [{label, value}] with a title.
export function barChart(title, rows, { unit = "", color = "var(--accent)" } = {}) {
  const fig = document.createElement("figure");
  fig.className = "chart";
  const cap = document.createElement("figcaption");
  cap.textContent = title;
  fig.append(cap);
  if (rows.length === 0) {
    const p = document.createElement("p");
    p.className = "muted";
    p.textContent = "none in this period";
    fig.append(p);
    return fig;
  }
  const max = Math.max(...rows.map((r) => r.value), 1);
  const rowH = 26;
  const height = rows.length * rowH + 4;
  const svg = s("svg", { viewBox: `0 0 600 ${height}`, width: "100%", role: "img", "aria-label": `${title}: ` + rows.map((r) => `${r.label} ${r.value}${unit}`).join(", ") });
  rows.forEach((r, i) => {
    const y = i * rowH + 2;
    const w = Math.max(2, (r.value / max) * 330);
    const label = r.label.length > 34 ? r.label.slice(0, 33) + "…" : r.label;
    const t = s("text", { x: 0, y: y + 17, class: "lbl" }, label);
    t.append(s("title", {}, r.label));
    svg.append(t);
    svg.append(s("rect", { x: 220, y: y + 4, width: w, height: rowH - 8, rx: 3, fill: color }));
    svg.append(s("text", { x: 226 + w, y: y + 17, class: "val" }, `${r.value.toLocaleString()}${unit}`));
  });
  fig.append(svg);
  const table = document.createElement("table");
  table.className = "sr-only";
  table.dataset.chart = title;
  for (const r of rows) {
    const tr = table.insertRow();
    tr.insertCell().textContent = r.label;
    const td = tr.insertCell();
    td.textContent = String(r.value);
    td.dataset.value = String(r.value);
  }
  fig.append(table);
  return fig;
}

// ratioBar draws one bar split into successful and failed events.
export function ratioBar(ok, failed) {
  const total = ok + failed;
  const svg = s("svg", { viewBox: "0 0 600 28", width: "100%", role: "img", "aria-label": `${ok} successful and ${failed} failed events` });
  const w = total ? (ok / total) * 600 : 0;
  svg.append(s("rect", { x: 0, y: 2, width: 600, height: 24, rx: 4, fill: total ? "var(--bad)" : "var(--line)" }));
  if (w > 0) svg.append(s("rect", { x: 0, y: 2, width: w, height: 24, rx: 4, fill: "var(--good)" }));
  return svg;
}

// columnChart draws one column per period, oldest first: total events,
// with the failed ones in red at its foot. rows: [{label, total, failed}].
export function columnChart(title, rows) {
  const fig = document.createElement("figure");
  fig.className = "chart";
  const cap = document.createElement("figcaption");
  cap.textContent = title;
  fig.append(cap);
  const max = Math.max(...rows.map((r) => r.total), 1);
  const W = 600;
  const H = 160;
  const step = W / rows.length;
  const bw = Math.max(2, Math.min(40, step * 0.7));
  const svg = s("svg", { viewBox: `0 0 ${W} ${H + 18}`, width: "100%", role: "img", "aria-label": `${title}: ` + rows.map((r) => `${r.label} ${r.total} events, ${r.failed} failed`).join("; ") });
  svg.append(s("line", { x1: 0, y1: H, x2: W, y2: H, stroke: "var(--line)" }));
  rows.forEach((r, i) => {
    const x = i * step + (step - bw) / 2;
    const ht = (r.total / max) * (H - 16);
    const hf = (r.failed / max) * (H - 16);
    const col = s("g", {});
    col.append(s("title", {}, `${r.label}: ${r.total} events, ${r.failed} failed`));
    col.append(s("rect", { x, y: H - ht, width: bw, height: ht, fill: "var(--accent)" }));
    if (hf > 0) col.append(s("rect", { x, y: H - hf, width: bw, height: hf, fill: "var(--bad)" }));
    col.append(s("text", { x: x + bw / 2, y: H - ht - 3, "text-anchor": "middle", class: "val" }, r.total.toLocaleString()));
    svg.append(col);
  });
  svg.append(s("text", { x: 0, y: H + 15, class: "val" }, rows[0].label.slice(0, 10)));
  svg.append(s("text", { x: W, y: H + 15, "text-anchor": "end", class: "val" }, rows[rows.length - 1].label.slice(0, 10)));
  fig.append(svg);
  const table = document.createElement("table");
  table.className = "sr-only";
  table.dataset.chart = title;
  for (const r of rows) {
    const tr = table.insertRow();
    tr.insertCell().textContent = r.label;
    const td = tr.insertCell();
    td.textContent = `${r.total} events, ${r.failed} failed`;
    td.dataset.value = String(r.total);
    td.dataset.failed = String(r.failed);
  }
  fig.append(table);
  return fig;
}
