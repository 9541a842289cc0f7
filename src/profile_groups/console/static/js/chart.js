// Size over time as an SVG: the member count as a line, entered (up) and exited (down) as bars
// per interval, with a table of the same numbers for screen readers and exact reading.
import { h, svg, fmtTime } from "./dom.js";

export function sizeChart(rows, interval) {
  if (!rows.length) return h("p", { class: "muted" }, "No history in this period yet.");
  const W = 720, H = 240, L = 48, R = 12, T = 12, B = 28;
  const n = rows.length;
  const maxCount = Math.max(1, ...rows.map((r) => r.profile_count));
  const maxMove = Math.max(1, ...rows.map((r) => Math.max(r.entered, r.exited)));
  const x = (i) => L + (n === 1 ? (W - L - R) / 2 : (i * (W - L - R)) / (n - 1));
  const y = (v) => T + (H - T - B) * (1 - v / maxCount);
  const mid = H - B - 30;
  const bar = (v) => (v / maxMove) * 28;
  const bw = Math.max(2, Math.min(14, (W - L - R) / n / 3));
  const label = (r) => (interval === "hour" ? fmtTime(r.at).slice(5, 16) : fmtTime(r.at).slice(0, 10));
  const pts = rows.map((r, i) => `${x(i).toFixed(1)},${y(r.profile_count).toFixed(1)}`).join(" ");
  const chart = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": `Members over time: ${rows[n - 1].profile_count} now`, class: "size-svg" },
    svg("line", { x1: L, y1: H - B, x2: W - R, y2: H - B, class: "axis" }),
    svg("text", { x: L - 6, y: y(maxCount) + 4, class: "tick", "text-anchor": "end" }, String(maxCount)),
    svg("text", { x: L - 6, y: H - B + 4, class: "tick", "text-anchor": "end" }, "0"),
    svg("text", { x: L, y: H - 6, class: "tick" }, label(rows[0])),
    svg("text", { x: W - R, y: H - 6, class: "tick", "text-anchor": "end" }, label(rows[n - 1])),
    ...rows.flatMap((r, i) => [
      r.entered ? svg("rect", { x: x(i) - bw, y: mid - bar(r.entered), width: bw, height: bar(r.entered), class: "entered" }, svg("title", {}, `${label(r)}: ${r.entered} entered`)) : null,
      r.exited ? svg("rect", { x: x(i), y: mid, width: bw, height: bar(r.exited), class: "exited" }, svg("title", {}, `${label(r)}: ${r.exited} exited`)) : null,
    ].filter(Boolean)),
    svg("polyline", { points: pts, class: "line" }),
    ...rows.map((r, i) => svg("circle", { cx: x(i), cy: y(r.profile_count), r: 2.5, class: "dot" }, svg("title", {}, `${label(r)}: ${r.profile_count} members`))),
  );
  const legend = h("p", { class: "legend" }, h("span", { class: "key line" }), " members ", h("span", { class: "key entered" }), " entered ", h("span", { class: "key exited" }), " exited");
  const table = h("details", {}, h("summary", {}, "The numbers"),
    h("table", {}, h("thead", {}, h("tr", {}, ["At", "Members", "Entered", "Exited"].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, rows.map((r) => h("tr", {}, h("td", {}, fmtTime(r.at)), h("td", { class: "num" }, r.profile_count), h("td", { class: "num" }, r.entered), h("td", { class: "num" }, r.exited))))));
  return h("div", {}, chart, legend, table);
}
