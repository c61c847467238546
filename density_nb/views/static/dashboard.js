// density_nb corpus dashboard: density distribution with a brush, density against a column with Spearman ρ,
// mean TV curve with its 25–75 % band (phases marked), composition against s beside its base rate, layer × head
// inclusion frequency, two runs' per-prompt scatter, the selection's passages; all linked here, in the browser.
// Each panel is a function of the dashboard's context (dashboardContext) returning {el, update}; makeDashboard
// lays them out and redraws them together.
// Plain ESM, no dependencies, no network. Text from the data is only ever set with textContent.
// Model traits: data (dict: the whole run's aggregates and the layout of ``arrays``), arrays (bytes: per-passage
// quantised arrays, see views/dashboard_state.py), measure, column, head_size, brush (the selection), opened;
// _common and _theme (static/common.js, static/theme.json).

// ---- static/common.js: the module every view shares ------------------------------------------------------
let addExportButtons, asBytes, button, fin, fmt, fmtInt, fmtS, gradientCss, h, mapColours, measureSpec, quantile, s, showText, spearman, themeLabel;
let loaded = "";
/** Import static/common.js from the `_common` trait (anywidget re-sends it when the file is saved, as `_esm`)
 * and use the `_theme` trait's theme; true when either changed since the last call. */
async function loadCommon(model) {
  const text = model.get("_common"), key = text + model.get("_theme");
  if (key === loaded) return false;
  const C = await importText(text);
  C.useTheme(model.get("_theme"));
  ({ addExportButtons, asBytes, button, fin, fmt, fmtInt, fmtS, gradientCss, h, mapColours, measureSpec, quantile, s, showText, spearman, label: themeLabel } = C);
  loaded = key;
  return true;
}
/** ESM source as a module, as anywidget imports `_esm`: from a Blob URL, or from a data: URL on a page whose
 * policy admits scripts from data: and not blob: (the standalone HTML, views/explorer.py). */
function importText(text) {
  const policy = document.querySelector("meta[http-equiv='Content-Security-Policy']")?.content ?? "";
  const dataOnly = /script-src[^;]*data:/.test(policy) && !/script-src[^;]*blob:/.test(policy);
  return import(dataOnly ? `data:text/javascript;charset=utf-8,${encodeURIComponent(text)}` : URL.createObjectURL(new Blob([text], { type: "text/javascript" })));
}

const PARTS_ORDER = ["attention", "mlp", "residual", "depth_q1", "depth_q2", "depth_q3", "depth_q4"];
const BINS = 30; // bars of the distribution
const SHOW = 5; // the sparsest and the densest passages listed

// ---- the binary arrays ----------------------------------------------------------------------------------
/** The zlib-compressed trait inflated (the browser's own DecompressionStream). */
async function inflate(bytes) {
  if (!bytes.length) return bytes;
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("deflate"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}
/** Typed arrays of ``data.layout`` from the packed little-endian buffer (copied: aligned and owned). */
function unpack(bytes, layout) {
  const out = {};
  const types = { int32: Int32Array, float32: Float32Array, uint8: Uint8Array };
  for (const [name, { offset, dtype, shape }] of Object.entries(layout || {})) {
    const T = types[dtype];
    const n = shape.reduce((a, b) => a * b, 1);
    out[name] = new T(bytes.slice(offset, offset + n * T.BYTES_PER_ELEMENT).buffer);
  }
  return out;
}
/** Share from the MLP / residual log code (views/data.py encode_shares). */
const logShare = (c, floor) => (c === 0 ? 0 : c === 255 ? 1 : Math.pow(10, Math.log10(floor) * (254 - c) / 253));


// ---- a small SVG chart frame -----------------------------------------------------------------------------
/** {svg, plot, X, Y, W, H}: axes with ticks and titles; ``xlog`` puts x on log10. */
function frame({ width = 420, height = 220, x, y, xlog = false, xTitle = "", yTitle = "", xTicks, yTicks, label, m }) {
  m = m || { l: 44, r: 10, t: 14, b: 34 };
  const W = width - m.l - m.r, H = height - m.t - m.b;
  const tx = (v) => (xlog ? Math.log10(v) : v);
  const [x0, x1] = [tx(x[0]), tx(x[1])];
  const X = (v) => m.l + ((tx(v) - x0) / (x1 - x0 || 1)) * W;
  const Y = (v) => m.t + H - ((v - y[0]) / (y[1] - y[0] || 1)) * H;
  const svg = s("svg", { viewBox: `0 0 ${width} ${height}`, class: "dnb-chart dnb-d-chart", role: "img", "aria-label": label || "" });
  const axes = s("g", { "aria-hidden": "true" });
  for (const v of yTicks || []) {
    axes.appendChild(s("line", { x1: m.l, x2: m.l + W, y1: Y(v), y2: Y(v), class: "dnb-gridline" }));
    axes.appendChild(s("text", { x: m.l - 4, y: Y(v) + 3, "text-anchor": "end" }, fmt(v, 2)));
  }
  for (const v of xTicks || []) {
    axes.appendChild(s("line", { x1: X(v), x2: X(v), y1: m.t + H, y2: m.t + H + 3, class: "dnb-axis" }));
    axes.appendChild(s("text", { x: X(v), y: m.t + H + 13, "text-anchor": "middle" }, xlog ? fmtS(v, 2) : fmt(v, 3)));
  }
  axes.appendChild(s("line", { x1: m.l, x2: m.l + W, y1: m.t + H, y2: m.t + H, class: "dnb-axis" }));
  axes.appendChild(s("line", { x1: m.l, x2: m.l, y1: m.t, y2: m.t + H, class: "dnb-axis" }));
  axes.appendChild(s("text", { x: m.l + W / 2, y: height - 4, "text-anchor": "middle", class: "dnb-d-title" }, xTitle));
  axes.appendChild(s("text", { x: 11, y: m.t + H / 2, "text-anchor": "middle", transform: `rotate(-90 11 ${m.t + H / 2})`, class: "dnb-d-title" }, yTitle));
  svg.appendChild(axes);
  const plot = s("g");
  svg.appendChild(plot);
  return { svg, plot, X, Y, W, H, m, width, height };
}
/** Evenly spaced "nice" ticks over [lo, hi] (``integer``: whole numbers only, for counts). */
function niceTicks(lo, hi, count = 5, integer = false) {
  if (!(hi > lo)) return [lo];
  const step0 = (hi - lo) / count, mag = Math.max(integer ? 1 : 0, Math.pow(10, Math.floor(Math.log10(step0))));
  const step = (integer ? [1, 2, 5, 10] : [1, 2, 2.5, 5, 10]).map((f) => f * mag).find((st) => st >= step0) || step0;
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}
const linePath = (xs, ys, X, Y) => {
  let d = "", pen = false;
  for (let i = 0; i < xs.length; i++) {
    if (!fin(ys[i])) { pen = false; continue; }
    d += `${pen ? "L" : "M"}${X(xs[i]).toFixed(1)},${Y(ys[i]).toFixed(1)}`;
    pen = true;
  }
  return d;
};
const bandPath = (xs, lo, hi, X, Y) => {
  const ok = xs.map((_, i) => fin(lo[i]) && fin(hi[i]));
  const top = xs.map((x, i) => (ok[i] ? `${X(x).toFixed(1)},${Y(hi[i]).toFixed(1)}` : null)).filter(Boolean);
  const bottom = xs.map((x, i) => (ok[i] ? `${X(x).toFixed(1)},${Y(lo[i]).toFixed(1)}` : null)).filter(Boolean).reverse();
  return top.length ? `M${top.join("L")}L${bottom.join("L")}Z` : "";
};
/** A drag rectangle on ``fr`` (pointer events): ``onMove(box)`` while dragging, ``onEnd(box)`` or ``onClick(pt)``. */
function dragBox(fr, { horizontalOnly = false, onMove, onEnd, onClick }) {
  const { svg, m, W, H } = fr;
  const rect = s("rect", { class: "dnb-d-brush", visibility: "hidden" });
  svg.appendChild(rect);
  let start = null;
  const point = (e) => {
    const box = svg.getBoundingClientRect();
    const k = fr.width / box.width;
    return [Math.min(m.l + W, Math.max(m.l, (e.clientX - box.left) * k)), Math.min(m.t + H, Math.max(m.t, (e.clientY - box.top) * k))];
  };
  const current = (e) => {
    const p = point(e);
    const x0 = Math.min(start[0], p[0]), x1 = Math.max(start[0], p[0]);
    const y0 = horizontalOnly ? m.t : Math.min(start[1], p[1]), y1 = horizontalOnly ? m.t + H : Math.max(start[1], p[1]);
    return { x0, x1, y0, y1 };
  };
  svg.addEventListener("pointerdown", (e) => {
    if (e.button !== 0) return;
    start = point(e);
    svg.setPointerCapture?.(e.pointerId);
  });
  svg.addEventListener("pointermove", (e) => {
    if (!start) return;
    const b = current(e);
    if (b.x1 - b.x0 < 3 && b.y1 - b.y0 < 3 && !horizontalOnly) return;
    rect.setAttribute("visibility", "visible");
    rect.setAttribute("x", b.x0); rect.setAttribute("y", b.y0);
    rect.setAttribute("width", b.x1 - b.x0); rect.setAttribute("height", b.y1 - b.y0);
    onMove?.(b);
  });
  svg.addEventListener("pointerup", (e) => {
    if (!start) return;
    const b = current(e);
    const p = point(e);
    start = null;
    rect.setAttribute("visibility", "hidden");
    if (b.x1 - b.x0 < 3 && (horizontalOnly || b.y1 - b.y0 < 3)) onClick?.(p);
    else onEnd?.(b);
  });
  return rect;
}

/** [lo, hi] of the finite values, padded by 2 % (a flat or empty column gets a small range). */
function extent(values) {
  let lo = Infinity, hi = -Infinity;
  for (const v of values) if (Number.isFinite(v)) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  if (!(hi > lo)) { lo = fin(lo) ? lo - 0.01 : 0; hi = lo + 0.02; }
  const pad = (hi - lo) * 0.02;
  return [lo - pad, hi + pad];
}
/** Grey bands (and labels) over the papers' construction and refinement ranges of s. */
function phaseBands(fr, phases, showLabels = true) {
  for (const [name, [a, b]] of Object.entries(phases || {})) {
    fr.plot.appendChild(s("rect", { x: fr.X(a), y: fr.m.t, width: fr.X(b) - fr.X(a), height: fr.H, class: `dnb-d-phase dnb-d-phase-${name}` }));
    if (showLabels) fr.plot.appendChild(s("text", { x: (fr.X(a) + fr.X(b)) / 2, y: fr.m.t + fr.H - 5, "text-anchor": "middle", class: "dnb-d-phase-label" }, name));
  }
}
/** A legend entry: a key of class ``cls`` and its text. */
function legendKey(cls, text) {
  const li = h("span", "dnb-li");
  li.append(h("span", `dnb-key ${cls}`), h("span", "", text));
  return li;
}
/** A section of the dashboard (class ``cls``, named ``aria``) with an ``update`` to fill in. */
function panel(cls, aria) {
  const el = h("section", `dnb-part dnb-d-panel ${cls}`);
  el.setAttribute("aria-label", aria);
  return { el, update() {} };
}
/** ``fn`` at most once per animation frame, with the latest arguments; ``.cancel()`` drops a pending call. */
function throttle(fn) {
  let pending = null, frameId = 0;
  const call = (...args) => {
    if (pending === null) frameId = requestAnimationFrame(() => { const a = pending; pending = null; fn(...a); });
    pending = args;
  };
  call.cancel = () => { if (pending !== null) cancelAnimationFrame(frameId); pending = null; };
  return call;
}

// ---- the dashboard's context: data, columns, selection, brush ----------------------------------------------
/** What every panel reads: the data, the unpacked arrays, the current measure and column, the selection state
 * ``st`` (sel: Int32Array of selected passage indices, null when none is brushed; detail: the picked passage),
 * and what every panel may do: set the brush, pick a passage, redraw the others (``drawAll``, set by makeDashboard). */
function dashboardContext(model, bytes) {
  const d = model.get("data") || {};
  const A = unpack(bytes, d.layout);
  const N = d.n || 0;
  const names = [...(d.measures || []).map((m) => m.key), ...(d.columns || []).map((c) => c.key)];
  const ctx = {
    model, d, A, N, names,
    G: (d.grid || []).length, K: (d.sizes || []).length,
    offline: !model.widget_manager, // the standalone page has no kernel to trace a passage
    st: { sel: null, detail: -1, cleared: "" },
    col(key) {
      const i = names.indexOf(key);
      return i < 0 ? new Float32Array(N).fill(NaN) : A.cols.subarray(i * N, (i + 1) * N);
    },
    label: (key) => [...(d.measures || []), ...(d.columns || [])].find((c) => c.key === key)?.label || key,
    measure: () => (names.includes(model.get("measure")) ? model.get("measure") : names[0]),
    column: () => ((d.columns || []).some((c) => c.key === model.get("column")) ? model.get("column") : (d.columns || [])[0]?.key),
    /** The passages a brush selects (bounds inclusive, on the float32 values the page holds); null for none. */
    selectionOf(b) {
      if (!b || !b.kind) return null;
      const out = [];
      if (b.kind === "range") {
        const v = ctx.col(b.measure);
        const lo = Math.fround(b.lo), hi = Math.fround(b.hi);
        for (let i = 0; i < N; i++) if (v[i] >= lo && v[i] <= hi) out.push(i);
      } else if (b.kind === "box") {
        const x = ctx.col(b.column), y = ctx.col(b.measure);
        const [x0, x1] = b.x.map(Math.fround), [y0, y1] = b.y.map(Math.fround);
        for (let i = 0; i < N; i++) if (x[i] >= x0 && x[i] <= x1 && y[i] >= y0 && y[i] <= y1) out.push(i);
      }
      return Int32Array.from(out);
    },
    setBrush(b, save = true) {
      model.set("brush", b);
      if (save) model.save_changes();
    },
    drawAll: () => {},
    pick: () => {},
  };
  return ctx;
}

// ---- header: title, measure toggle, selection summary -------------------------------------------------------
function headerPanel(ctx) {
  const { d, model, N, st } = ctx;
  const el = h("div", "dnb-d-head");
  const title = h("div", "dnb-title", d.title || "corpus run");
  const controls = h("div", "dnb-controls");
  const toggle = h("div", "dnb-toggle");
  toggle.setAttribute("role", "group");
  toggle.setAttribute("aria-label", "Density measure shown in every view");
  const measureBtns = (d.measures || []).map((m) => {
    const b = button("dnb-btn", m.label, `Show the ${m.label}`);
    b.addEventListener("click", () => { model.set("measure", m.key); model.save_changes(); });
    toggle.appendChild(b);
    return [m.key, b];
  });
  const selText = h("span", "dnb-d-seltext");
  const clear = button("dnb-btn dnb-d-clear", "Clear selection", "Clear the selection (Escape)");
  clear.addEventListener("click", () => ctx.setBrush({}));
  controls.append(h("span", "dnb-controls-label", "Measure"), toggle, selText, clear);
  el.append(title, controls);
  for (const note of d.notes || []) el.appendChild(h("div", "dnb-d-note", note));
  const update = () => {
    for (const [k, b] of measureBtns) b.setAttribute("aria-pressed", k === ctx.measure() ? "true" : "false");
    selText.textContent = st.sel ? `${fmtInt(st.sel.length)} of ${fmtInt(N)} passages selected`
      : `${fmtInt(N)} passages, none selected${st.cleared ? ` (${st.cleared})` : ""}`;
    clear.disabled = !st.sel;
  };
  return { el, update };
}

// ---- distribution ----------------------------------------------------------------------------------------------
/** The measure's histogram over the run (and the selection), brushed by a drag or by its two range inputs. */
function distributionPanel(ctx) {
  const { model, N, st, col, label } = ctx;
  const dist = panel("dnb-d-dist", "Density distribution");
  dist.el.appendChild(h("div", "dnb-d-h", "Density distribution — drag to select passages"));
  const distBox = h("div");
  const sliders = h("div", "dnb-d-sliders");
  const mkRange = (text) => {
    const wrap = h("label", "dnb-d-range");
    const input = h("input", "dnb-range");
    input.type = "range"; input.min = "0"; input.max = String(BINS); input.step = "1";
    input.setAttribute("data-lm-suppress-shortcuts", "true");
    const out = h("span", "dnb-d-rangeval");
    wrap.append(h("span", "", text), input, out);
    sliders.appendChild(wrap);
    return { input, out };
  };
  const loR = mkRange("from"), hiR = mkRange("to");
  dist.el.append(distBox, sliders);
  const edges = (key) => { const [lo, hi] = extent(col(key)); return Array.from({ length: BINS + 1 }, (_, i) => lo + ((hi - lo) * i) / BINS); };
  const sliderBrush = () => {
    const e = edges(ctx.measure());
    const a = Math.min(+loR.input.value, +hiR.input.value), b = Math.max(+loR.input.value, +hiR.input.value);
    if (a === 0 && b === BINS) ctx.setBrush({});
    else ctx.setBrush({ kind: "range", measure: ctx.measure(), lo: e[a], hi: e[b] });
  };
  loR.input.setAttribute("aria-label", "Select passages with density from this bin edge");
  hiR.input.setAttribute("aria-label", "Select passages with density up to this bin edge");
  loR.input.addEventListener("change", sliderBrush);
  hiR.input.addEventListener("change", sliderBrush);
  dist.update = () => {
    const key = ctx.measure(), v = col(key), e = edges(key);
    const lo = e[0], hi = e[BINS], w = (hi - lo) / BINS;
    const all = new Array(BINS).fill(0), sel = new Array(BINS).fill(0);
    const bin = (x) => Math.min(BINS - 1, Math.max(0, Math.floor((x - lo) / w)));
    for (let i = 0; i < N; i++) if (Number.isFinite(v[i])) all[bin(v[i])]++;
    if (st.sel) for (const i of st.sel) if (Number.isFinite(v[i])) sel[bin(v[i])]++;
    const top = Math.max(1, ...all);
    const fr = frame({ x: [lo, hi], y: [0, top * 1.05], xTitle: label(key), yTitle: "passages", xTicks: niceTicks(lo, hi, 5), yTicks: niceTicks(0, top, 4, true),
      label: `Histogram of the ${label(key)} over ${fmtInt(N)} passages${st.sel ? `; ${fmtInt(st.sel.length)} selected` : ""}` });
    all.forEach((c, i) => c && fr.plot.appendChild(s("rect", { x: fr.X(lo + i * w) + 0.5, y: fr.Y(c), width: Math.max(0.5, fr.X(lo + w) - fr.X(lo) - 1), height: fr.Y(0) - fr.Y(c), class: st.sel ? "dnb-d-bar-all dnb-d-dim" : "dnb-d-bar-all" })));
    if (st.sel) sel.forEach((c, i) => c && fr.plot.appendChild(s("rect", { x: fr.X(lo + i * w) + 0.5, y: fr.Y(c), width: Math.max(0.5, fr.X(lo + w) - fr.X(lo) - 1), height: fr.Y(0) - fr.Y(c), class: "dnb-d-bar-sel" })));
    const b = model.get("brush") || {};
    if (b.kind === "range" && b.measure === key) {
      fr.plot.appendChild(s("rect", { x: fr.X(Math.max(lo, b.lo)), y: fr.m.t, width: Math.max(1, fr.X(Math.min(hi, b.hi)) - fr.X(Math.max(lo, b.lo))), height: fr.H, class: "dnb-d-brushed" }));
    }
    const invert = (px) => lo + ((px - fr.m.l) / fr.W) * (hi - lo);
    const preview = throttle((bx) => { st.sel = ctx.selectionOf({ kind: "range", measure: key, lo: invert(bx.x0), hi: invert(bx.x1) }); ctx.drawAll(false, dist); });
    const end = (b2) => { preview.cancel(); ctx.setBrush(b2); };
    dragBox(fr, { horizontalOnly: true, onMove: preview, onEnd: (bx) => end({ kind: "range", measure: key, lo: invert(bx.x0), hi: invert(bx.x1) }), onClick: () => end({}) });
    distBox.replaceChildren(fr.svg);
    const idx = (x) => Math.max(0, Math.min(BINS, Math.round((x - lo) / w)));
    const [a, c] = b.kind === "range" && b.measure === key ? [idx(b.lo), idx(b.hi)] : [0, BINS];
    loR.input.value = String(a); hiR.input.value = String(c);
    loR.out.textContent = fmt(e[a], 3); hiR.out.textContent = fmt(e[c], 3);
    loR.input.setAttribute("aria-valuetext", fmt(e[a], 3)); hiR.input.setAttribute("aria-valuetext", fmt(e[c], 3));
  };
  return dist;
}

// ---- density against a column ------------------------------------------------------------------------------
/** One point per passage, the measure against a column, brushed by a box; a click picks the nearest passage. */
function scatterPanel(ctx) {
  const { d, model, N, st, col, label } = ctx;
  const sc = panel("dnb-d-scatter", "Density against a column");
  const scHead = h("div", "dnb-d-h");
  const colSel = h("select", "dnb-d-select");
  colSel.setAttribute("aria-label", "Column on the x axis");
  colSel.setAttribute("data-lm-suppress-shortcuts", "true");
  for (const c of d.columns || []) { const o = h("option", "", c.label); o.value = c.key; colSel.appendChild(o); }
  colSel.addEventListener("change", () => { model.set("column", colSel.value); model.save_changes(); });
  scHead.append(h("span", "", "Density against "), colSel);
  const rhoLine = h("div", "dnb-d-rho");
  const scBox = h("div");
  sc.el.append(scHead, scBox, rhoLine);
  sc.update = () => {
    const key = ctx.column(), mk = ctx.measure();
    if (!key) { scBox.replaceChildren(h("div", "dnb-d-note", "This run has no columns to plot density against.")); return; }
    colSel.value = key;
    const x = col(key), y = col(mk);
    const [x0, x1] = extent(col(key)), [y0, y1] = extent(col(mk));
    const fr = frame({ x: [x0, x1], y: [y0, y1], xTitle: label(key), yTitle: label(mk), xTicks: niceTicks(x0, x1, 5), yTicks: niceTicks(y0, y1, 4),
      label: `Scatter of the ${label(mk)} against the ${label(key)}, one point per passage` });
    let all = "", sel = "";
    const chosen = new Uint8Array(N);
    if (st.sel) for (const i of st.sel) chosen[i] = 1;
    for (let i = 0; i < N; i++) {
      if (!Number.isFinite(x[i]) || !Number.isFinite(y[i])) continue;
      const p = `M${fr.X(x[i]).toFixed(1)},${fr.Y(y[i]).toFixed(1)}h0`;
      if (chosen[i]) sel += p; else all += p;
    }
    fr.plot.appendChild(s("path", { d: all, class: st.sel ? "dnb-d-pts dnb-d-dim" : "dnb-d-pts" }));
    if (sel) fr.plot.appendChild(s("path", { d: sel, class: "dnb-d-pts dnb-d-pts-sel" }));
    if (st.detail >= 0 && Number.isFinite(x[st.detail])) fr.plot.appendChild(s("circle", { cx: fr.X(x[st.detail]), cy: fr.Y(y[st.detail]), r: 5, class: "dnb-d-picked" }));
    const b = model.get("brush") || {};
    if (b.kind === "box" && b.column === key && b.measure === mk) {
      fr.plot.appendChild(s("rect", { x: fr.X(b.x[0]), y: fr.Y(b.y[1]), width: fr.X(b.x[1]) - fr.X(b.x[0]), height: fr.Y(b.y[0]) - fr.Y(b.y[1]), class: "dnb-d-brushed" }));
    }
    const ix = (px) => x0 + ((px - fr.m.l) / fr.W) * (x1 - x0), iy = (py) => y0 + ((fr.m.t + fr.H - py) / fr.H) * (y1 - y0);
    const boxOf = (bx) => ({ kind: "box", measure: mk, column: key, x: [ix(bx.x0), ix(bx.x1)], y: [iy(bx.y1), iy(bx.y0)] });
    const preview = throttle((bx) => { st.sel = ctx.selectionOf(boxOf(bx)); ctx.drawAll(false, sc); });
    dragBox(fr, {
      onMove: preview,
      onEnd: (bx) => { preview.cancel(); ctx.setBrush(boxOf(bx)); },
      onClick: ([px, py]) => {
        preview.cancel();
        let best = -1, dist2 = 100;
        for (let i = 0; i < N; i++) {
          if (!Number.isFinite(x[i]) || !Number.isFinite(y[i])) continue;
          const dx = fr.X(x[i]) - px, dy = fr.Y(y[i]) - py, q = dx * dx + dy * dy;
          if (q < dist2) { dist2 = q; best = i; }
        }
        if (best >= 0) ctx.pick(best); else ctx.setBrush({});
      },
    });
    scBox.replaceChildren(fr.svg);
    const whole = (d.columns.find((c) => c.key === key)?.rho || {})[mk] || {};
    const now = st.sel ? spearman(Array.from(st.sel, (i) => x[i]), Array.from(st.sel, (i) => y[i])) : null;
    rhoLine.replaceChildren(
      h("span", "dnb-d-rho-all", `Spearman ρ, whole run: ${fmt(whole.rho, 3)} (n = ${fmtInt(whole.n)})`),
      h("span", "dnb-d-rho-sel", now ? `selection: ${fmt(now.rho, 3)} (n = ${fmtInt(now.n)})` : "selection: –"),
    );
    rhoLine.dataset.rhoSel = now && fin(now.rho) ? String(now.rho) : "";
  };
  return sc;
}

// ---- mean TV curve -------------------------------------------------------------------------------------------
/** The run's mean TV against s with its 25–75 % band, the selection's, the picked passage's curve, the phases. */
function curvePanel(ctx) {
  const { d, A, G, st } = ctx;
  const grid = d.grid || [];
  const tvOf = (i, g) => { const c = A.tv[i * G + g]; return c === 255 ? NaN : c / 254; };
  function selCurve(idx) {
    const mean = [], q25 = [], q75 = [];
    const vals = new Float64Array(idx.length);
    for (let g = 0; g < G; g++) {
      let n = 0, sum = 0;
      for (const i of idx) { const v = tvOf(i, g); if (Number.isFinite(v)) { vals[n++] = v; sum += v; } }
      const sorted = vals.subarray(0, n).sort();
      mean.push(n ? sum / n : NaN); q25.push(quantile(sorted, 0.25)); q75.push(quantile(sorted, 0.75));
    }
    return { mean, q25, q75 };
  }
  const cv = panel("dnb-d-curve", "Mean TV curve");
  cv.el.appendChild(h("div", "dnb-d-h", "Mean TV against subgraph size, 25–75 % band"));
  const cvBox = h("div"), cvLegend = h("div", "dnb-chart-legend");
  cv.el.append(cvBox, cvLegend);
  cv.update = () => {
    const c = d.curve || {};
    const fr = frame({ x: [grid[0], 1], y: [0, 1], xlog: true, xTitle: "subgraph size s (share of edges, log)", yTitle: "TV to the full model",
      xTicks: [1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1], yTicks: [0, 0.25, 0.5, 0.75, 1],
      label: `Mean TV against s for the whole run${st.sel ? " and the selection" : ""}, with the construction and refinement phases marked` });
    phaseBands(fr, d.phases);
    const dim = st.sel ? " dnb-d-dim" : "";
    fr.plot.appendChild(s("path", { d: bandPath(grid, c.q25 || [], c.q75 || [], fr.X, fr.Y), class: `dnb-d-band-all${dim}` }));
    fr.plot.appendChild(s("path", { d: linePath(grid, c.mean || [], fr.X, fr.Y), class: `dnb-d-line-all${dim}` }));
    let selMean = null;
    if (st.sel) {
      const sc2 = selCurve(st.sel);
      selMean = sc2.mean;
      fr.plot.appendChild(s("path", { d: bandPath(grid, sc2.q25, sc2.q75, fr.X, fr.Y), class: "dnb-d-band-sel" }));
      fr.plot.appendChild(s("path", { d: linePath(grid, sc2.mean, fr.X, fr.Y), class: "dnb-d-line-sel" }));
    }
    if (st.detail >= 0) fr.plot.appendChild(s("path", { d: linePath(grid, grid.map((_, g) => tvOf(st.detail, g)), fr.X, fr.Y), class: "dnb-d-line-one" }));
    cvBox.replaceChildren(fr.svg);
    cvBox.dataset.selMean = selMean ? JSON.stringify(selMean.map((v) => (fin(v) ? Number(v.toFixed(4)) : null))) : "";
    cvLegend.replaceChildren(legendKey("dnb-d-key-all", `whole run (${fmtInt(c.n)})`));
    if (st.sel) cvLegend.appendChild(legendKey("dnb-d-key-sel", `selection (${fmtInt(st.sel.length)})`));
    if (st.detail >= 0) cvLegend.appendChild(legendKey("dnb-d-key-one", `passage ${A.ids[st.detail]}`));
    cvLegend.appendChild(legendKey("dnb-d-key-phase", "phases: construction 1e-4–1e-2, refinement 1e-2–1"));
  };
  return cv;
}

// ---- composition ----------------------------------------------------------------------------------------------
/** Shares of attention, MLP and residual edges, and of each quarter of the layers, against s (run and selection). */
function compositionPanel(ctx) {
  const { d, A, K, st } = ctx;
  const comp = d.comp || {};
  const cp = panel("dnb-d-comp", "Composition against s");
  cp.el.appendChild(h("div", "dnb-d-h", "Composition of the subgraph against s; dotted: the full graph's base rate"));
  const cpBox = h("div", "dnb-d-comp-charts"), cpLegend = h("div", "dnb-chart-legend");
  cp.el.append(cpBox, cpLegend);
  function selComposition(idx) {
    const P = 7, out = Array.from({ length: P }, () => new Float64Array(K)), n = new Float64Array(K);
    const floor = comp.log_floor || 1e-4;
    for (const i of idx) {
      for (let k = 0; k < K; k++) {
        const o = (i * K + k) * P;
        const c = A.comp.subarray(o, o + P);
        if (!c[0] && !c[1] && !c[2]) continue; // an empty stratum
        n[k]++;
        out[0][k] += c[0] / 255; out[1][k] += logShare(c[1], floor); out[2][k] += logShare(c[2], floor);
        for (let q = 3; q < P; q++) out[q][k] += c[q] / 255;
      }
    }
    return out.map((arr) => Array.from(arr, (v, k) => (n[k] ? v / n[k] : NaN)));
  }
  cp.update = () => {
    if (comp.missing || !A.comp) { cpBox.replaceChildren(h("div", "dnb-d-note", comp.missing || "No composition in this run.")); return; }
    const sel = st.sel ? selComposition(st.sel) : null;
    const groups = [["components", ["attention", "mlp", "residual"]], ["depth", ["depth_q1", "depth_q2", "depth_q3", "depth_q4"]]];
    cpBox.replaceChildren();
    for (const [gname, parts] of groups) {
      const fr = frame({ width: 270, height: 210, x: [d.sizes[0], 1], y: [0, 1], xlog: true, xTitle: "s (log)", yTitle: gname === "depth" ? "share by depth" : "share by kind",
        xTicks: [1e-5, 1e-3, 1e-1], yTicks: [0, 0.5, 1], label: `${gname === "depth" ? "Share of the subgraph's edges in each quarter of the layers" : "Share of attention, MLP and residual edges"} against s${st.sel ? ", whole run and selection" : ""}, with the full graph's base rate`,
        m: { l: 40, r: 8, t: 10, b: 32 } });
      phaseBands(fr, d.phases, false);
      for (const p of parts) {
        const vals = comp.values[p], base = vals[vals.length - 1];
        fr.plot.appendChild(s("line", { x1: fr.m.l, x2: fr.m.l + fr.W, y1: fr.Y(base), y2: fr.Y(base), class: `dnb-d-base dnb-d-part-${p}` }));
        fr.plot.appendChild(s("path", { d: linePath(comp.s, vals, fr.X, fr.Y), class: `dnb-d-part dnb-d-part-${p}${st.sel ? " dnb-d-faint" : ""}` }));
        if (sel) fr.plot.appendChild(s("path", { d: linePath(d.sizes, sel[PARTS_ORDER.indexOf(p)], fr.X, fr.Y), class: `dnb-d-part dnb-d-part-sel dnb-d-part-${p}` }));
      }
      cpBox.appendChild(fr.svg);
    }
    const key = (p) => {
      const li = h("span", "dnb-li");
      const sw = s("svg", { width: 22, height: 8, "aria-hidden": "true" });
      sw.appendChild(s("line", { x1: 1, x2: 21, y1: 4, y2: 4, class: `dnb-d-part dnb-d-part-sel dnb-d-part-${p}` }));
      li.append(sw, h("span", "", themeLabel("parts", p)));
      return li;
    };
    cpLegend.replaceChildren(...PARTS_ORDER.map(key));
    if (st.sel) cpLegend.appendChild(h("span", "dnb-li", "thick: selection; thin: whole run"));
  };
  return cp;
}

// ---- heads ------------------------------------------------------------------------------------------------------
/** Layer × head: the share of each head's edges kept at one of a few sizes, over the run or the selection. */
function headsPanel(ctx) {
  const { d, A, model, N, st } = ctx;
  const heads = d.heads || {};
  const hd = panel("dnb-d-heads", "Layer × head inclusion frequency");
  const hdHead = h("div", "dnb-d-h", "Share of each head's edges kept at s = ");
  const sizeBtns = h("div", "dnb-toggle");
  sizeBtns.setAttribute("role", "group");
  sizeBtns.setAttribute("aria-label", "Subgraph size of the head view");
  const sizeList = (heads.sizes || []).map((v, j) => {
    const b = button("dnb-btn", fmtS(v, 2), `Head view at s = ${fmtS(v, 2)}`);
    b.addEventListener("click", () => { model.set("head_size", j); model.save_changes(); });
    sizeBtns.appendChild(b);
    return b;
  });
  hdHead.appendChild(sizeBtns);
  const hdBox = h("div"), hdNote = h("div", "dnb-d-note");
  hd.el.append(hdHead, hdBox, hdNote);
  hd.update = () => {
    if (heads.missing || !A.heads) { hdHead.hidden = true; hdBox.replaceChildren(h("div", "dnb-d-note", heads.missing || "No head shares in this run.")); return; }
    const S = heads.sizes.length, L = heads.L, Hh = heads.H, C = L * Hh;
    const j = Math.min(Math.max(0, model.get("head_size") | 0), S - 1);
    sizeList.forEach((b, i) => b.setAttribute("aria-pressed", i === j ? "true" : "false"));
    let freq = heads.freq[j];
    if (st.sel) {
      const sum = new Float64Array(C);
      for (const i of st.sel) { const o = (i * S + j) * C; for (let c = 0; c < C; c++) sum[c] += A.heads[o + c] / 255; }
      freq = Array.from(sum, (v) => (st.sel.length ? v / st.sel.length : NaN));
    }
    const top = Math.max(1e-9, ...freq.filter(fin));
    const cell = Math.max(8, Math.min(18, Math.floor(300 / Math.max(L, Hh))));
    const g = h("div", "dnb-d-hgrid");
    g.style.gridTemplateColumns = `2.4em repeat(${Hh}, ${cell}px)`;
    g.setAttribute("role", "img");
    const best = freq.map((v, c) => [v, c]).filter(([v]) => fin(v)).sort((a, b) => b[0] - a[0]).slice(0, 3);
    g.setAttribute("aria-label", `Share of each head's edges kept at s = ${fmtS(heads.sizes[j], 2)}, mean over ${st.sel ? "the selection" : "the whole run"}; highest: ${best.map(([v, c]) => `layer ${Math.floor(c / Hh)} head ${c % Hh} ${fmt(v, 2)}`).join(", ")}`);
    g.appendChild(h("span", "dnb-gh", ""));
    for (let k = 0; k < Hh; k++) g.appendChild(h("span", "dnb-gh", k % 2 === 0 || Hh <= 8 ? String(k) : ""));
    for (let l = 0; l < L; l++) {
      g.appendChild(h("span", "dnb-gl", l % 2 === 0 || L <= 12 ? `L${l}` : ""));
      for (let k = 0; k < Hh; k++) {
        const v = freq[l * Hh + k];
        const c = h("span", "dnb-cell dnb-d-hcell");
        c.style.height = `${cell}px`;
        c.style.background = mapColours("heads", v / top)?.[0] ?? "transparent";
        c.title = `layer ${l}, head ${k}: ${fmt(v, 3)}`;
        g.appendChild(c);
      }
    }
    hdBox.replaceChildren(g);
    const legend = h("div", "dnb-legend");
    legend.setAttribute("aria-hidden", "true");
    const bar = h("span", "dnb-legend-bar");
    bar.style.backgroundImage = gradientCss("heads");
    legend.append(h("span", "", "0"), bar, h("span", "", fmt(top, 2)));
    hdBox.appendChild(legend);
    hdNote.textContent = `mean over ${st.sel ? `the selection (${fmtInt(st.sel.length)})` : `the whole run (${fmtInt(N)})`}; hover a cell for its value`;
  };
  return hd;
}

// ---- two runs -----------------------------------------------------------------------------------------------------
/** The same prompts in two runs: one point per prompt, Spearman ρ for the run and the selection. */
function comparePanel(ctx) {
  const { d, A, N, st, col, label } = ctx;
  const cmpd = d.compare;
  const cm = panel("dnb-d-compare", "Two runs compared prompt by prompt");
  const cmBox = h("div"), cmRho = h("div", "dnb-d-rho");
  if (cmpd) cm.el.append(h("div", "dnb-d-h", `Per prompt: ${cmpd.a} against ${cmpd.b}`), cmBox, cmRho);
  cm.update = () => {
    if (!cmpd) return;
    const mk = ctx.measure(), mi = cmpd.measures.indexOf(mk);
    if (mi < 0 || !cmpd.n) { cmBox.replaceChildren(h("div", "dnb-d-note", cmpd.note || `The second run has no ${label(mk)}.`)); cmRho.replaceChildren(); return; }
    const M = cmpd.n, ia = A.cmp_a, b = A.cmp_b.subarray(mi * M, (mi + 1) * M), a = col(mk);
    const xs = Array.from(ia, (i) => a[i]);
    let lo = Infinity, hi = -Infinity;
    for (const v of [...xs, ...b]) if (Number.isFinite(v)) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
    const pad = (hi - lo || 0.02) * 0.04; lo -= pad; hi += pad;
    const fr = frame({ width: 300, height: 260, x: [lo, hi], y: [lo, hi], xTitle: `${label(mk)}: ${cmpd.a}`, yTitle: `${cmpd.b}`, xTicks: niceTicks(lo, hi, 4), yTicks: niceTicks(lo, hi, 4),
      label: `Scatter of the ${label(mk)} of the same prompts in two runs`, m: { l: 44, r: 8, t: 10, b: 34 } });
    fr.plot.appendChild(s("line", { x1: fr.X(lo), y1: fr.Y(lo), x2: fr.X(hi), y2: fr.Y(hi), class: "dnb-gridline" }));
    const chosen = new Uint8Array(N);
    if (st.sel) for (const i of st.sel) chosen[i] = 1;
    let all = "", sel = "";
    const sx = [], sy = [];
    for (let r = 0; r < M; r++) {
      if (!Number.isFinite(xs[r]) || !Number.isFinite(b[r])) continue;
      const p = `M${fr.X(xs[r]).toFixed(1)},${fr.Y(b[r]).toFixed(1)}h0`;
      if (chosen[ia[r]]) { sel += p; sx.push(xs[r]); sy.push(b[r]); } else all += p;
    }
    fr.plot.appendChild(s("path", { d: all, class: st.sel ? "dnb-d-pts dnb-d-dim" : "dnb-d-pts" }));
    if (sel) fr.plot.appendChild(s("path", { d: sel, class: "dnb-d-pts dnb-d-pts-sel" }));
    cmBox.replaceChildren(fr.svg);
    const whole = cmpd.rho[mk] || {};
    const now = st.sel ? spearman(sx, sy) : null;
    cmRho.replaceChildren(
      h("span", "dnb-d-rho-all", `Spearman ρ across prompts: ${fmt(whole.rho, 3)} (n = ${fmtInt(whole.n)})`),
      h("span", "dnb-d-rho-sel", now ? `selection: ${fmt(now.rho, 3)} (n = ${fmtInt(now.n)})` : "selection: –"),
    );
  };
  return cm;
}

/** A passage's words in the list: the end of its prompt, cut at its start so that the next word stays in view
 * (or, where the run holds no text, the next token's name). */
function passageWords(d, i) {
  const out = h("span", "dnb-d-text");
  const t = d.text?.[i];
  if (t) {
    const prompt = out.appendChild(h("span", "dnb-d-prompt"));
    prompt.appendChild(h("bdi", "", t[0]));
    out.appendChild(h("span", "dnb-d-word", ` ⟨${showText(t[1])}⟩`));
  } else if (d.next) out.appendChild(h("span", "dnb-d-word", `⟨${showText(d.next[i])}⟩`));
  return out;
}

// ---- the selection's passages and the picked one ------------------------------------------------------------------
/** The sparsest and densest passages of the selection (or the run); the picked one's numbers, text and state. */
function passagesPanel(ctx) {
  const { d, A, model, N, st, col, label, names, offline } = ctx;
  const ps = panel("dnb-d-passages", "Passages");
  const psHead = h("div", "dnb-d-h");
  const list = h("div", "dnb-d-list");
  list.setAttribute("role", "list");
  const detail = h("div", "dnb-d-detail");
  detail.setAttribute("aria-live", "polite");
  ps.el.append(psHead, list, detail);
  ps.update = () => {
    const mk = ctx.measure(), v = col(mk), key = ctx.column(), x = col(key);
    const idx = Array.from(st.sel || Array.from({ length: N }, (_, i) => i)).filter((i) => Number.isFinite(v[i])).sort((a, b) => v[a] - v[b]);
    psHead.textContent = `${st.sel ? "Selected" : "All"} passages (${fmtInt(idx.length)}): the ${SHOW} sparsest and the ${SHOW} densest — Enter or a click opens one`;
    const rows = idx.length <= 2 * SHOW ? idx : [...idx.slice(0, SHOW), -1, ...idx.slice(-SHOW)];
    const header = h("div", "dnb-d-prow dnb-d-phead");
    header.setAttribute("aria-hidden", "true");
    const words = d.text ? "end of the prompt ⟨next word⟩" : d.next ? "⟨next token⟩ (the text is not shipped)" : "";
    header.append(h("span", "", "passage"), h("span", "dnb-d-num", measureSpec(mk).short), h("span", "dnb-d-num", key ? themeLabel("columns", key)?.short ?? key : ""), h("span", "", words));
    list.replaceChildren(header);
    for (const i of rows) {
      if (i < 0) { list.appendChild(h("div", "dnb-d-gap", "…")); continue; }
      const b = button("dnb-d-prow");
      b.setAttribute("role", "listitem");
      b.dataset.index = String(i);
      b.append(h("span", "dnb-d-id", `#${A.ids[i]}`), h("span", "dnb-d-num", fmt(v[i], 3)), h("span", "dnb-d-num", key ? fmt(x[i], 3) : ""));
      b.appendChild(passageWords(d, i));
      b.setAttribute("aria-label", `Passage ${A.ids[i]}: ${label(mk)} ${fmt(v[i], 3)}${key ? `, ${label(key)} ${fmt(x[i], 3)}` : ""}; open it`);
      if (i === st.detail) b.setAttribute("aria-current", "true");
      b.addEventListener("click", () => ctx.pick(i));
      list.appendChild(b);
    }
    showDetail();
  };
  function showDetail() {
    detail.replaceChildren();
    const i = st.detail;
    if (i < 0) return;
    const pid = A.ids[i];
    detail.appendChild(h("div", "dnb-tip-head", `Passage ${pid}`));
    const nums = names.map((k) => `${label(k)}: ${fmt(col(k)[i], 3)}`).join(" · ");
    detail.appendChild(h("div", "dnb-d-nums", nums));
    const t = d.text?.[i];
    if (t) {
      const p = h("div", "dnb-d-passage");
      p.append(h("span", "", t[0]), h("span", "dnb-d-next", ` ${showText(t[1])}`));
      detail.appendChild(p);
    }
    const o = model.get("opened") || {};
    let msg;
    if (d.no_text) msg = `Passage ${pid}'s text is not shipped: this run keeps numbers and passage ids (WikiText is not ours to redistribute). Where WikiText-2 is found (DENSITY_NB_DATA, or shared/data beside the checkout), read it with density_nb.teaching.tutorial.corpus_text([${pid}]) and trace it: trace(model, prompt + " " + next_word).`;
    else if (offline) msg = `This page has no kernel, so the explorer of passage ${pid} cannot be traced here. In a notebook: load_runs(DIR).widget() and click it, or load_runs(DIR).passage(${pid}).widget().`;
    else if (o.passage_id === pid && o.state === "tracing") msg = `Tracing passage ${pid} with the run's settings… the explorer appears below the dashboard.`;
    else if (o.passage_id === pid && o.state === "done") msg = `The explorer of passage ${pid} is below the dashboard.`;
    else if (o.passage_id === pid && o.state === "failed") msg = `Could not open passage ${pid}: ${o.note}`;
    else msg = `Opening passage ${pid}…`;
    const note = h("div", `dnb-d-status${o.state === "failed" && o.passage_id === pid ? " dnb-d-error" : ""}`, msg);
    note.dataset.state = d.no_text ? "no-text" : offline ? "offline" : o.passage_id === pid ? o.state || "" : "asked";
    detail.appendChild(note);
  }
  ps.showDetail = showDetail;
  return ps;
}

// ---- the dashboard ------------------------------------------------------------------------------------------------
/** The panels, laid out in three rows and redrawn together; ``drawAll``, ``announce`` and ``showDetail`` for render. */
function makeDashboard(model, bytes) {
  const ctx = dashboardContext(model, bytes);
  const { A, st } = ctx;
  const el = h("div", "dnb-d");
  const live = h("div", "dnb-d-sr");
  live.setAttribute("aria-live", "polite");
  const head = headerPanel(ctx);
  const [dist, sc, cv, cp, hd, cm, ps] = [distributionPanel, scatterPanel, curvePanel, compositionPanel, headsPanel, comparePanel, passagesPanel].map((f) => f(ctx));
  const parts = [head, dist, sc, cv, cp, hd, cm, ps];
  const row1 = h("div", "dnb-row dnb-d-row"), row2 = h("div", "dnb-row dnb-d-row"), row3 = h("div", "dnb-row dnb-d-row");
  row1.append(dist.el, sc.el);
  row2.append(cv.el, cp.el);
  row3.append(hd.el);
  if (ctx.d.compare) row3.appendChild(cm.el);
  row3.appendChild(ps.el);
  el.append(head.el, row1, row2, row3, live);

  /** Redraw every panel but ``skip`` from ``st`` (``fromModel``: first take the selection from the brush trait). */
  ctx.drawAll = (fromModel = true, skip = null) => {
    const t0 = performance.now();
    if (fromModel) st.sel = ctx.selectionOf(model.get("brush"));
    if (st.sel) st.cleared = "";
    for (const p of parts) if (p !== skip) p.update();
    el.dataset.selected = st.sel ? String(st.sel.length) : "";
    el.dataset.redrawMs = (performance.now() - t0).toFixed(2);
  };
  /** Open passage ``i`` (its explorer, through the kernel) and show its details. */
  ctx.pick = (i) => {
    st.detail = i;
    ctx.drawAll(false);
    if (!ctx.offline && !ctx.d.no_text) model.send({ type: "open", passage_id: Number(A.ids[i]) });
    live.textContent = `Passage ${A.ids[i]} picked`;
  };
  const announce = () => {
    live.textContent = st.sel ? `${fmtInt(st.sel.length)} passages selected` : `Selection cleared${st.cleared ? `: ${st.cleared}` : ""}`;
  };
  /** The next redraw says why the selection was cleared (until a new brush is drawn). */
  const clearedBy = (why) => { st.cleared = why; };
  el.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && (model.get("brush") || {}).kind) { e.preventDefault(); ctx.setBrush({}); }
  });
  return { el, drawAll: ctx.drawAll, announce, clearedBy, showDetail: ps.showDetail };
}

/** Draw the dashboard into ``el``; returns its cleanup. */
async function draw(model, el) {
  const root = h("div", "dnb dnb-dash");
  root.setAttribute("data-lm-suppress-shortcuts", "true");
  const OWN_KEYS = new Set(["ArrowLeft", "ArrowRight", "ArrowUp", "ArrowDown", "Home", "End", "PageUp", "PageDown", "Enter", " ", "Escape"]);
  root.addEventListener("keydown", (e) => {
    if (OWN_KEYS.has(e.key) && !e.shiftKey && !e.ctrlKey && !e.altKey && !e.metaKey) e.stopPropagation();
  });
  el.appendChild(root);
  const body = h("div", "dnb-body");
  // Save as SVG / PNG (static/common.js): the views as shown. Last in the tab order.
  const tools = h("div", "dnb-export");
  tools.appendChild(h("span", "dnb-controls-label", "save view as"));
  root.append(body, tools);
  addExportButtons(tools, root, "density_nb-dashboard");
  let dash = null;
  const build = async () => {
    const bytes = await inflate(asBytes(model.get("arrays")) || new Uint8Array(0));
    dash = makeDashboard(model, bytes);
    body.replaceChildren(dash.el);
    dash.drawAll();
  };
  const redraw = () => dash?.drawAll();
  const onBrush = () => { dash?.drawAll(); dash?.announce(); };
  // a brush drawn on one measure selects by that measure: when the measure changes it is cleared, and the page says so
  const onMeasure = () => {
    const b = model.get("brush") || {};
    if (dash && b.kind && b.measure !== model.get("measure")) {
      dash.clearedBy("the measure changed: a selection is drawn on one measure");
      model.set("brush", {});
      model.save_changes();
    } else redraw();
  };
  const listeners = [
    ["change:brush", onBrush], ["change:measure", onMeasure], ["change:column", redraw], ["change:head_size", redraw],
    ["change:opened", () => dash?.showDetail()], ["change:data", build], ["change:arrays", build],
  ];
  for (const [event, fn] of listeners) model.on(event, fn);
  await build();
  return () => {
    for (const [event, fn] of listeners) model.off(event, fn);
    root.remove();
  };
}

/** anywidget's render: the dashboard, drawn again when static/common.js or the theme is saved (hot reload). */
async function render({ model, el }) {
  await loadCommon(model);
  let cleanup = await draw(model, el);
  const reload = async () => { if (await loadCommon(model)) { cleanup(); cleanup = await draw(model, el); } };
  model.on("change:_common change:_theme", reload);
  return () => { model.off("change:_common change:_theme", reload); cleanup(); };
}

export default { render };
