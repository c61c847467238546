// density_nb widgets, shared ground: the colour maps and tiny DOM helpers that static/density.js and
// static/dashboard.js both use. widgets/_export.esm puts this file (then export.js) in front of each
// view's module; widgets/_svg.py reads the colour maps from here, so the Python drawing matches.

const SVG = "http://www.w3.org/2000/svg";

// Colour-blind-safe sequential maps (matplotlib viridis / cividis, 9 stops each).
const VIRIDIS = [[68, 1, 84], [71, 44, 122], [59, 81, 139], [44, 113, 142], [33, 144, 141], [39, 173, 129], [92, 200, 99], [170, 220, 50], [253, 231, 37]];
const CIVIDIS = [[0, 34, 78], [18, 53, 112], [59, 73, 108], [87, 93, 109], [112, 113, 115], [138, 134, 120], [166, 156, 117], [196, 180, 107], [254, 232, 56]];

function interp(stops, t) {
  if (!Number.isFinite(t)) return null;
  t = Math.min(1, Math.max(0, t));
  const x = t * (stops.length - 1);
  const i = Math.min(stops.length - 2, Math.floor(x));
  const f = x - i;
  const a = stops[i], b = stops[i + 1];
  return [0, 1, 2].map((j) => Math.round(a[j] + (b[j] - a[j]) * f));
}
const rgb = (c) => `rgb(${c[0]}, ${c[1]}, ${c[2]})`;
const luminance = (c) => {
  const l = c.map((v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); });
  return 0.2126 * l[0] + 0.7152 * l[1] + 0.0722 * l[2];
};
const gradientCss = (stops) => `linear-gradient(to right, ${stops.map((c, i) => `${rgb(c)} ${(100 * i / (stops.length - 1)).toFixed(1)}%`).join(", ")})`;

// ---- tiny DOM helpers (text is always set with textContent) --------------------------------------
function h(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}
function s(tag, attrs, text) {
  const e = document.createElementNS(SVG, tag);
  if (attrs) for (const k in attrs) e.setAttribute(k, attrs[k]);
  if (text !== undefined) e.textContent = text;
  return e;
}
/** A button of ours: plain type, keys stay with the widget, described for screen readers. */
function button(cls, text, label) {
  const b = h("button", cls, text);
  b.type = "button";
  b.setAttribute("data-lm-suppress-shortcuts", "true");
  if (label) { b.title = label; b.setAttribute("aria-label", label); }
  return b;
}
