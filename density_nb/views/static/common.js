// density_nb views, the module they all import (each view's ESM loads it from its `_common` trait; see
// loadCommon in static/density.js and static/dashboard.js): the theme (static/theme.json, the `_theme` trait)
// with its colour maps and CSS variables, number formats, visible whitespace, DOM helpers, Spearman's rho, and
// saving a view as SVG or PNG. views/theme.py does the same colour and number arithmetic for the Python SVG.
// Plain ESM, no dependencies, no network; text is only ever set with textContent.

export const SVG = "http://www.w3.org/2000/svg";

// ---- the theme ------------------------------------------------------------------------------------------
let theme = null;
/** Use the theme ``text`` (static/theme.json) from now on: colour maps, palettes, labels and formats. Its
 * palettes become CSS variables on the page, --dnb-l-NAME (light) and --dnb-d-NAME (dark, over the light
 * ones), which static/*.css reads (one style element, replaced when the theme changes). */
export function useTheme(text) {
  theme = JSON.parse(text);
  const light = theme.palettes.light, dark = { ...light, ...theme.palettes.dark };
  const vars = (mode, colours) => Object.entries(colours).map(([k, v]) => `--dnb-${mode}-${k.replace(/_/g, "-")}: ${v};`);
  let style = document.getElementById("dnb-theme");
  if (!style) {
    style = document.createElement("style");
    style.id = "dnb-theme";
    document.head.appendChild(style);
  }
  style.textContent = `:root { ${[...vars("l", light), ...vars("d", dark)].join(" ")} }`;
  return theme;
}
/** A label of the theme (``group``: "parts", "baselines", "columns", ...), or ``key`` itself. */
export const label = (group, key) => theme.labels[group]?.[key] ?? key;

// ---- colours -------------------------------------------------------------------------------------------
/** A colour map's RGB stops, by name ("viridis") or by the view that uses it ("strip", "shares", "heads"). */
export const stops = (name) => theme.maps[theme.map_of[name] ?? name];
/** The map ``colours`` (RGB stops) at ``t`` in [0, 1], linear between stops; null where ``t`` is not a number. */
export function interp(colours, t) {
  if (!Number.isFinite(t)) return null;
  t = Math.min(1, Math.max(0, t));
  const x = t * (colours.length - 1);
  const i = Math.min(colours.length - 2, Math.floor(x));
  const f = x - i;
  const a = colours[i], b = colours[i + 1];
  return [0, 1, 2].map((j) => Math.round(a[j] + (b[j] - a[j]) * f));
}
export const rgb = (c) => `rgb(${c[0]}, ${c[1]}, ${c[2]})`;
/** Relative luminance (WCAG) of an RGB colour. */
export const luminance = (c) => {
  const l = c.map((v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); });
  return 0.2126 * l[0] + 0.7152 * l[1] + 0.0722 * l[2];
};
/** Background on the map ``name`` at ``t`` and the text colour readable on it; null where ``t`` is missing. */
export function mapColours(name, t) {
  const c = t === null || t === undefined ? null : interp(stops(name), t);
  if (!c) return null;
  const on = theme.text_on;
  return [rgb(c), luminance(c) > on.threshold ? on.dark : on.light];
}
/** The map ``name`` as a left-to-right CSS gradient (legends). */
export const gradientCss = (name) => {
  const cs = stops(name);
  return `linear-gradient(to right, ${cs.map((c, i) => `${rgb(c)} ${(100 * i / (cs.length - 1)).toFixed(1)}%`).join(", ")})`;
};

// ---- measures and their colour scale (as views/theme.py computes them) ---------------------------------------
/** The theme's entry of a measure: label, short name, fixed range, "linear" or "log" scale. */
export const measureSpec = (name) => theme.measures[name] ?? { label: name, short: name, range: [0, 1], scale: "linear" };
/** The measures of the theme that ``have`` (an object keyed by measure) holds, in the theme's order. */
export const knownMeasures = (have) => Object.keys(theme.measures).filter((m) => m !== "about" && have && m in have);
/** The colour range of ``name`` over ``values``: "fixed" (its range in the theme) or "fitted" (the theme's
 * percentiles of the finite values, of log10 for a log measure; the fixed range when they are too close). */
export function colourRange(values, name, how = "fitted") {
  const spec = measureSpec(name), log = spec.scale === "log";
  const to = (v) => (log ? Math.log10(v) : v);
  const fixed = spec.range.map(to);
  if (how === "fixed") return spec.range.slice();
  const v = Array.from(values || []).filter((x) => fin(x) && (!log || x > 0)).map(to).sort((a, b) => a - b);
  if (!v.length) return spec.range.slice();
  const [lo, hi] = theme.fit.percentiles.map((q) => quantile(v, q / 100));
  if (!(hi - lo >= theme.fit.min_span * (fixed[1] - fixed[0]))) return spec.range.slice();
  return log ? [10 ** lo, 10 ** hi] : [lo, hi];
}
/** Where ``v`` lies on ``range`` of measure ``name``, in [0, 1] (clipped; log10 for a log measure); null if missing. */
export function scalePosition(v, range, name) {
  if (!fin(v)) return null;
  const log = measureSpec(name).scale === "log";
  if (log && !(v > 0)) return 0;
  const [a, b, x] = log ? [Math.log10(range[0]), Math.log10(range[1]), Math.log10(v)] : [range[0], range[1], v];
  return Math.min(1, Math.max(0, (x - a) / (b - a || 1)));
}
/** A value of measure ``name`` written as its legend and tooltips write it (sizes as sizes). */
export const fmtMeasure = (v, name) => (measureSpec(name).scale === "log" ? fmtS(v) : fmt(v));

// ---- the difference of a measure between two results, on the diverging map (as views/theme.py) ----------------
/** ``b`` − ``a`` in measure ``name`` (decades, log10 b − log10 a, for a log measure); null where either is missing. */
export function difference(a, b, name) {
  if (!fin(a) || !fin(b)) return null;
  if (measureSpec(name).scale === "log") return a > 0 && b > 0 ? Math.log10(b) - Math.log10(a) : null;
  return b - a;
}
/** Half the width of the diverging scale −m … m: "fixed": the width of the measure's range (decades for a log
 * measure); "fitted": the theme's upper fit percentile of the differences' sizes, or the fixed width when that is
 * below min_span of it. */
export function differenceRange(values, name, how = "fitted") {
  const spec = measureSpec(name);
  const fixed = spec.scale === "log" ? Math.log10(spec.range[1]) - Math.log10(spec.range[0]) : spec.range[1] - spec.range[0];
  if (how === "fixed") return fixed;
  const v = Array.from(values || []).filter(fin).map(Math.abs).sort((a, b) => a - b);
  if (!v.length) return fixed;
  const top = quantile(v, theme.fit.percentiles[1] / 100);
  return top >= theme.fit.min_span * fixed ? top : fixed;
}
/** Where the difference ``v`` lies on −``half`` … ``half``, in [0, 1] (0.5: none); null if missing. */
export const differencePosition = (v, half) => (fin(v) ? Math.min(1, Math.max(0, 0.5 + v / (2 * half))) : null);
/** A difference as legends and tooltips write it: signed, "dec" (decades) for a log measure. */
export const fmtDifference = (v, name) => (fin(v) ? `${v > 0 ? "+" : ""}${fmt(v)}${measureSpec(name).scale === "log" ? " dec" : ""}` : "–");

/** A log axis for the positive ``values``: whole decades from the smallest (not below 1e-3) to the largest, and
 * at most six ticks; {lo, hi, ticks}. */
export function logAxis(values) {
  const pos = values.filter((v) => fin(v) && v > 0);
  const lo = pos.length ? Math.max(-3, Math.floor(Math.log10(Math.min(...pos)))) : -3;
  const hi = pos.length ? Math.max(lo + 1, Math.ceil(Math.log10(Math.max(...pos)))) : lo + 1;
  const step = Math.ceil((hi - lo) / 5), ticks = [];
  for (let e = lo; e <= hi; e += step) ticks.push(10 ** e);
  return { lo: 10 ** lo, hi: 10 ** hi, ticks };
}

// ---- numbers (as views/theme.py writes them) ------------------------------------------------------------
export const fin = (x) => x !== null && x !== undefined && Number.isFinite(x);
/** ``x`` to ``d`` significant digits without trailing zeros; "–" when missing. */
export const fmt = (x, d = theme.formats.digits) => (fin(x) ? Number(x.toPrecision(d)).toString() : "–");
/** A subgraph size: ``d`` significant digits, in exponent form below the theme's ``s_exp_below`` (1.0e-5). */
export const fmtS = (v, d = theme.formats.s_digits) => {
  if (!fin(v)) return "–";
  if (v >= theme.formats.s_exp_below) return Number(v.toPrecision(d)).toString();
  const [m, e] = v.toExponential(Math.max(0, d - 2)).split("e");
  return `${m}e${Number(e)}`;
};
export const fmtInt = (n) => (fin(n) ? Math.round(n).toLocaleString("en-US") : "–");
/** ``n`` and ``noun`` in the plural unless n is 1: "1 step", "9 tokens". */
export const count = (n, noun) => `${fmtInt(n)} ${noun}${n === 1 ? "" : "s"}`;
export const fmtPct = (v) => { const p = v * 100; return `${p >= 10 ? p.toFixed(0) : Number(p.toPrecision(2))} %`; };

// ---- visible text (as views/text.py shows it) -------------------------------------------------------------
// A token whose text is "" continues a character split over several tokens (the first shows it).
export const CONTINUATION = "◌";
const MARKS = { " ": "·", "\t": "→", "\n": "↵" };
const SPACE = /^[\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]$/;
const CONTROL = /^[\u0000-\u001f\u007f-\u009f]$/;
const FORMAT = /^\p{Cf}$/u;
/** ``text`` as runs of [shown text, is a mark]: a mark for a space (·), a tab (→), a newline (↵), other
 * whitespace (␣) and control characters (\xNN), and, in a token of invisible characters only, for format
 * characters (\uNNNN); a continuation is ◌; a carriage return is dropped. */
export function visibleParts(text) {
  if (text === "") return [[CONTINUATION, true]];
  const chars = Array.from(String(text));
  const alone = chars.every((c) => SPACE.test(c) || CONTROL.test(c) || FORMAT.test(c));
  const parts = [];
  for (const c of chars) {
    if (c === "\r") continue;
    const hex = (n) => c.codePointAt(0).toString(16).padStart(n, "0");
    const [shown, mark] = c in MARKS ? [MARKS[c], true] : SPACE.test(c) ? ["␣", true] : CONTROL.test(c) ? [`\\x${hex(2)}`, true]
      : alone && FORMAT.test(c) ? [`\\u${hex(4)}`, true] : [c, false];
    if (parts.length && parts[parts.length - 1][1] === mark) parts[parts.length - 1][0] += shown;
    else parts.push([shown, mark]);
  }
  return parts;
}
/** ``text`` with its marks (what the strip shows of a token). */
export const shown = (text) => visibleParts(text).map(([t]) => t).join("");
/** ``text`` with its marks, for titles, tooltips and lists (a continuation says what it is). */
export const showText = (text) => (text === "" ? `${CONTINUATION} (rest of the character before)` : shown(text));
/** One character as the comparison view draws it (one column; see views/compare.py char_widths). */
export const showChar = (c) => (c === " " ? "·" : c === "\t" ? "→" : c === "\n" ? "↵" : c === "\r" ? "" : CONTROL.test(c) ? "�" : c);

// ---- DOM helpers (text is always set with textContent) -------------------------------------------------
export function h(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}
export function s(tag, attrs, text) {
  const e = document.createElementNS(SVG, tag);
  if (attrs) for (const k in attrs) e.setAttribute(k, attrs[k]);
  if (text !== undefined) e.textContent = text;
  return e;
}
/** A button of ours: plain type, keys stay with the widget, described for screen readers. */
export function button(cls, text, label) {
  const b = h("button", cls, text);
  b.type = "button";
  b.setAttribute("data-lm-suppress-shortcuts", "true");
  if (label) { b.title = label; b.setAttribute("aria-label", label); }
  return b;
}
/** Bytes of a binary trait as a Uint8Array (the kernel and the exported page send a DataView); null if none. */
export function asBytes(v) {
  if (!v) return null;
  if (v instanceof Uint8Array) return v;
  if (v instanceof DataView) return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
  if (v instanceof ArrayBuffer) return new Uint8Array(v);
  if (v.buffer instanceof ArrayBuffer) return new Uint8Array(v.buffer, v.byteOffset || 0, v.byteLength);
  return null;
}

// ---- statistics ------------------------------------------------------------------------------------------
/** Average ranks (ties share the mean rank), as scipy.stats.rankdata. */
export function ranks(v) {
  const idx = Array.from(v.keys()).sort((a, b) => v[a] - v[b]);
  const r = new Float64Array(v.length);
  for (let i = 0; i < idx.length;) {
    let j = i;
    while (j + 1 < idx.length && v[idx[j + 1]] === v[idx[i]]) j++;
    for (let k = i; k <= j; k++) r[idx[k]] = (i + j) / 2 + 1;
    i = j + 1;
  }
  return r;
}
/** Spearman ρ of the finite pairs (as density_nb.analysis.stats.spearman): {rho, n}; rho null when undefined. */
export function spearman(x, y) {
  const xs = [], ys = [];
  for (let i = 0; i < x.length; i++) if (Number.isFinite(x[i]) && Number.isFinite(y[i])) { xs.push(x[i]); ys.push(y[i]); }
  const n = xs.length;
  if (n < 3) return { rho: null, n };
  const rx = ranks(xs), ry = ranks(ys);
  const mx = (n + 1) / 2;
  let sxy = 0, sxx = 0, syy = 0;
  for (let i = 0; i < n; i++) { const a = rx[i] - mx, b = ry[i] - mx; sxy += a * b; sxx += a * a; syy += b * b; }
  return { rho: sxx > 0 && syy > 0 ? sxy / Math.sqrt(sxx * syy) : null, n };
}
/** numpy.quantile (linear) of a sorted array. */
export function quantile(sorted, q) {
  if (!sorted.length) return NaN;
  const pos = (sorted.length - 1) * q, i = Math.floor(pos), f = pos - i;
  return i + 1 < sorted.length ? sorted[i] + (sorted[i + 1] - sorted[i]) * f : sorted[i];
}

// ---- saving a view as SVG or PNG, from the browser, offline ---------------------------------------------------
// The view is copied with its computed styles inlined (theme variables, dark mode and fonts resolved as
// shown) into an SVG <foreignObject>; the PNG is that SVG drawn on a canvas at 2× device pixels; the file is
// downloaded through a blob link. Scrolled parts (a long token strip) are exported whole.

/** The view ``viewEl`` as shown, as a standalone SVG document: ``{ svg, width, height }`` (CSS pixels).
 * Elements marked ``data-dnb-noexport`` (the export buttons) and hidden ones are left out. */
export function viewToSvg(viewEl) {
  const SVG_NS = "http://www.w3.org/2000/svg";
  // properties that do not change the picture, or that the element's attributes already give (SVG geometry)
  const SKIP = /^(transition|animation|cursor|pointer-events|will-change|caret|user-select|-webkit-user|touch-action|transform-origin|perspective-origin|inline-size|block-size|min-inline|max-inline|min-block|max-block|inset-|margin-inline|margin-block|padding-inline|padding-block|border-inline|border-block|border-start|border-end|scroll|overscroll|content-visibility|contain|app-region|-webkit-tap|view-transition|anchor|interactivity|field-sizing)/;
  const FORM_CONTROL = /^(button|input|select|textarea|option|optgroup|progress|meter)$/;
  const SVG_GEOMETRY = new Set(["d", "x", "y", "cx", "cy", "r", "rx", "ry", "width", "height"]);
  // inherited properties: left out where the parent already has the same value
  const INHERITED = /^(color|font|line-height|letter-spacing|word-spacing|white-space|text-align|text-indent|text-transform|text-rendering|text-anchor|visibility|fill|stroke|list-style|overflow-wrap|word-break|direction|writing-mode|color-scheme|tab-size|hyphens|quotes|dominant-baseline|paint-order|-webkit-text|-webkit-font|text-shadow|orphans|widows)/;
  // a bare place to measure, in a shadow root: none of the page's CSS reaches it, as none reaches the image
  const host = document.createElement("div");
  host.setAttribute("style", "all: initial; position: fixed; left: -100000px; top: 0;");
  document.body.appendChild(host);
  const bare = host.attachShadow({ mode: "open" });
  const baselines = new Map();
  const baseline = (src) => {  // the computed style of a bare element of the same kind
    const key = `${src.namespaceURI} ${src.localName}`;
    if (!baselines.has(key)) {
      const probe = document.createElementNS(src.namespaceURI, src.localName);
      const holder = src.namespaceURI === SVG_NS && src.localName !== "svg" ? document.createElementNS(SVG_NS, "svg") : probe;
      if (holder !== probe) holder.appendChild(probe);
      bare.appendChild(holder);
      const cs = getComputedStyle(probe);
      const values = {};
      for (let i = 0; i < cs.length; i++) values[cs[i]] = cs.getPropertyValue(cs[i]);
      baselines.set(key, values);
      holder.remove();
    }
    return baselines.get(key);
  };
  // parts scrolled inside the view are exported whole: they and the elements around them lose their height
  const scrolled = new Set(), grows = new Set();
  for (const e of [viewEl, ...viewEl.querySelectorAll("*")]) {
    if (e.scrollHeight > e.clientHeight + 1 && /auto|scroll/.test(getComputedStyle(e).overflowY)) {
      scrolled.add(e);
      for (let p = e.parentElement; p && p !== viewEl.parentElement; p = p.parentElement) grows.add(p);
    }
  }
  const copy = (src, parentCs) => {
    if (src.nodeType === Node.TEXT_NODE) return document.createTextNode(src.nodeValue);
    if (src.nodeType !== Node.ELEMENT_NODE || src.hasAttribute("data-dnb-noexport")) return null;
    const cs = getComputedStyle(src);
    if (cs.display === "none") return null;
    const out = src.cloneNode(false);
    const base = baseline(src);
    const svgChild = src.namespaceURI === SVG_NS && src.localName !== "svg";
    const inherits = parentCs && !FORM_CONTROL.test(src.localName);  // the browser's own style sets their fonts
    const decl = [];
    for (let i = 0; i < cs.length; i++) {
      const name = cs[i];
      if (name.startsWith("--") || SKIP.test(name) || (svgChild && SVG_GEOMETRY.has(name))) continue;
      if ((scrolled.has(src) || grows.has(src)) && /^(height|max-height|min-height|overflow)/.test(name)) continue;
      const value = cs.getPropertyValue(name);
      if (value === base[name] || (inherits && INHERITED.test(name) && value === parentCs.getPropertyValue(name))) continue;
      decl.push(`${name}: ${value}`);
    }
    if (src === viewEl) decl.push("margin: 0");
    out.setAttribute("style", decl.join("; "));
    if (src instanceof HTMLInputElement) out.setAttribute("value", src.value);
    if (src instanceof HTMLInputElement && (src.type === "checkbox" || src.type === "radio")) out.toggleAttribute("checked", src.checked);
    if (src instanceof HTMLTextAreaElement) out.textContent = src.value;
    if (src instanceof HTMLOptionElement) out.toggleAttribute("selected", src.selected);
    if (src instanceof HTMLProgressElement) out.setAttribute("value", String(src.value));
    for (const child of src.childNodes) {
      const c = copy(child, cs);
      if (c) out.appendChild(c);
    }
    return out;
  };
  try {
    const width = Math.ceil(viewEl.getBoundingClientRect().width);
    const clone = copy(viewEl, null);
    clone.style.width = `${width}px`;
    bare.appendChild(clone);
    const height = Math.ceil(clone.getBoundingClientRect().height);
    // the background: the view's own, else the first one behind it, else white
    let background = theme.palettes.light.bg;
    for (let e = viewEl; e; e = e.parentElement) {
      const c = getComputedStyle(e).backgroundColor;
      if (c && c !== "transparent" && !/rgba\(.*,\s*0\)$/.test(c)) { background = c; break; }
    }
    const body = new XMLSerializer().serializeToString(clone);
    const svg = `<svg xmlns="${SVG_NS}" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">`
      + `<rect width="100%" height="100%" fill="${background}"/>`
      + `<foreignObject x="0" y="0" width="${width}" height="${height}">${body}</foreignObject></svg>`;
    return { svg, width, height };
  } finally {
    host.remove();
  }
}

/** An SVG document (``width`` × ``height`` CSS pixels) drawn as a PNG blob at 2× device pixels. */
export async function svgToPng(svg, width, height) {
  const img = new Image();
  img.src = `data:image/svg+xml;charset=utf-8,${encodeURIComponent(svg)}`;
  await img.decode();
  const scale = 2 * (window.devicePixelRatio || 1);
  const canvas = document.createElement("canvas");
  canvas.width = Math.round(width * scale);
  canvas.height = Math.round(height * scale);
  const ctx = canvas.getContext("2d");
  ctx.scale(scale, scale);
  ctx.drawImage(img, 0, 0, width, height);
  return new Promise((resolve, reject) => canvas.toBlob((b) => (b ? resolve(b) : reject(new Error("the browser could not encode the PNG"))), "image/png"));
}

/** Put "SVG" and "PNG" buttons in ``toolbarEl`` that save ``viewEl`` as ``baseName``.svg / .png. The toolbar
 * itself is left out of the picture. */
export function addExportButtons(toolbarEl, viewEl, baseName) {
  toolbarEl.setAttribute("data-dnb-noexport", "");
  const note = document.createElement("span");
  note.className = "dnb-export-note";
  note.setAttribute("role", "status");
  const save = (blob, name) => {
    const url = URL.createObjectURL(blob);
    const a = document.createElement("a");
    a.href = url;
    a.download = name;
    a.hidden = true;
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
  };
  for (const kind of ["svg", "png"]) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "dnb-btn dnb-export-btn";
    b.textContent = kind.toUpperCase();
    b.dataset.export = kind;
    b.title = `Save this view as ${kind.toUpperCase()} (as it is shown now)`;
    b.setAttribute("aria-label", b.title);
    b.setAttribute("data-lm-suppress-shortcuts", "true");
    b.addEventListener("click", async () => {
      b.disabled = true;
      note.textContent = "";
      try {
        const { svg, width, height } = viewToSvg(viewEl);
        save(kind === "svg" ? new Blob([svg], { type: "image/svg+xml" }) : await svgToPng(svg, width, height), `${baseName}.${kind}`);
      } catch (err) {
        note.textContent = `Could not save the ${kind.toUpperCase()}: ${err && err.message ? err.message : err}`;
      } finally {
        b.disabled = false;
      }
    });
    toolbarEl.appendChild(b);
  }
  toolbarEl.appendChild(note);
}
