// density_nb widgets: token strip, s-slider with the TV/KL curve and baselines, what the subgraph predicts,
// layer × head grid, the linked explorer, the live view (generation, long traces) and the comparison of
// several results of one text aligned by characters.
// Plain ESM, no dependencies, no network. Text from the data is only ever set with textContent.
// Model traits: view ("explorer" | "strip" | "slider" | "preview" | "grid" | "live" | "compare"), data (dict),
// shares (bytes: log-coded uint8 [R, K, L, H + 1], column H = MLP, see views/data.py), root (token
// position), stratum (grid index), metric ("tv" | "kl"), scale ("log" | "linear"), status (live view),
// span (compare view: selected characters [start, end)); _common and _theme (static/common.js, static/theme.json).

// ---- static/common.js: the module every view shares ------------------------------------------------------
let CONTINUATION, THEME, addExportButtons, asBytes, button, colourRange, count, difference, differencePosition, differenceRange, logAxis, fmt,
  fmtDifference, fmtInt, fmtMeasure, fmtPct, fmtS, gradientCss, h, interp, knownMeasures, label, mapColours, measureSpec, rgb, s, scalePosition,
  showChar, showText, shown, stops, visibleParts;
let loaded = "";
/** Import static/common.js from the `_common` trait (anywidget re-sends it when the file is saved, as `_esm`)
 * and use the `_theme` trait's theme; true when either changed since the last call. */
async function loadCommon(model) {
  const text = model.get("_common"), key = text + model.get("_theme");
  if (key === loaded) return false;
  const C = await importText(text);
  THEME = C.useTheme(model.get("_theme"));
  ({ CONTINUATION, addExportButtons, asBytes, button, colourRange, count, difference, differencePosition, differenceRange, logAxis, fmt,
    fmtDifference, fmtInt, fmtMeasure, fmtPct, fmtS, gradientCss, h, interp, knownMeasures, label, mapColours, measureSpec, rgb, s, scalePosition,
    showChar, showText, shown, stops, visibleParts } = C);
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


/** A colour-bar legend: label, low tick, gradient, high tick (decorative: numbers are in tooltips). */
function gradientLegend(text0, lo, hi, map) {
  const legend = h("div", "dnb-legend");
  legend.setAttribute("aria-hidden", "true");
  const text = h("span", "dnb-legend-label", text0);
  const tickLo = h("span", "dnb-legend-tick", lo), tickHi = h("span", "dnb-legend-tick", hi);
  const bar = h("span", "dnb-legend-bar");
  bar.style.backgroundImage = gradientCss(map);
  legend.append(text, tickLo, bar, tickHi);
  return { legend, text, tickLo, tickHi };
}
/** A tooltip inside ``rootEl``, placed under a target element. */
function makeTip(rootEl) {
  const tip = h("div", "dnb-tip");
  tip.setAttribute("role", "tooltip");
  tip.hidden = true;
  return {
    el: tip,
    /** ``lines`` under ``target`` (or under ``below``, horizontally at the target). */
    show(target, lines, below = target) {
      tip.replaceChildren();
      lines.forEach((line, i) => tip.appendChild(h("div", i === 0 ? "dnb-tip-head" : "", line)));
      tip.hidden = false;
      const box = rootEl.getBoundingClientRect();
      const t = target.getBoundingClientRect();
      const w = tip.offsetWidth;
      let left = t.left - box.left + t.width / 2 - w / 2;
      left = Math.max(0, Math.min(left, box.width - w));
      tip.style.left = `${left}px`;
      tip.style.top = `${below.getBoundingClientRect().bottom - box.top + 6}px`;
    },
    hide() { tip.hidden = true; },
  };
}
/** Roving focus over the elements ``items`` (arrow keys, Home/End); Enter or Space calls ``choose``. */
function rovingKeys(container, items, choose) {
  container.addEventListener("keydown", (e) => {
    const list = items;
    const cur = list.indexOf(e.target);
    if (cur < 0) return;
    let j = -1;
    if (e.key === "ArrowRight" || e.key === "ArrowDown") j = Math.min(list.length - 1, cur + 1);
    else if (e.key === "ArrowLeft" || e.key === "ArrowUp") j = Math.max(0, cur - 1);
    else if (e.key === "Home") j = 0;
    else if (e.key === "End") j = list.length - 1;
    else if (e.key === "Enter" || e.key === " " || e.key === "Spacebar") { e.preventDefault(); choose(e.target); return; }
    else return;
    e.preventDefault();
    list[cur].tabIndex = -1;
    list[j].tabIndex = 0;
    list[j].focus();
  });
}

// ---- shared state of the explorer views --------------------------------------------------------------
function makeContext(model, rootEl) {
  const d = model.get("data") || {};
  const tokens = d.tokens || [];
  const roots = d.roots || [];
  const grid = d.grid || [];
  const R = roots.length, K = grid.length, L = d.n_layers || 0, H = d.n_heads || 0;
  const rootIndex = new Map(roots.map((r, i) => [r, i]));
  let shares = asBytes(model.get("shares"));
  if (shares && shares.length !== R * K * L * (H + 1)) shares = null;
  const tip = makeTip(rootEl);
  return {
    model, d, tokens, roots, grid, R, K, L, H, rootIndex, shares, tip,
    logGrid: grid.map((g) => Math.log10(Math.max(g, 1e-12))),
    rootIdx() {
      const i = rootIndex.get(model.get("root"));
      return i === undefined ? (R ? 0 : -1) : i;
    },
    stratum() { return Math.min(Math.max(0, model.get("stratum") | 0), Math.max(0, K - 1)); },
    metric() { return model.get("metric") === "kl" ? "kl" : "tv"; },
    /** True when stratum k of root ri has no path from the input (uniform output). */
    plateau(ri, k) { return d.input_edges ? d.n_edges[ri][k] < d.input_edges[ri] : false; },
    select(name, value, save = true) {
      model.set(name, value);
      if (save) model.save_changes();
    },
    tokenLabel(pos) { return pos >= 0 && pos < tokens.length ? `“${showText(tokens[pos])}”` : "(end of text)"; },
    showTip: tip.show,
    hideTip: tip.hide,
  };
}

// ---- TokenStrip -------------------------------------------------------------------------------------
/** The spans of one token's text with its marks (views/text.py: spaces, newlines, control characters, ...). */
function fillToken(span, text) {
  if (!text.length) span.classList.add("dnb-cont");
  for (const [part, mark] of visibleParts(text)) span.appendChild(mark ? h("span", "dnb-ws", part) : document.createTextNode(part));
}

/** The line of each token of the strip (views/svg.py strip_rows): tokens fill a line up to ``cols`` columns,
 * each costing its shown columns (``widths``) and the theme's token overhead (its box); a token that starts
 * with a newline starts a line, and its further newlines leave empty lines. */
function stripRows(widths, pieces, cols) {
  const overhead = THEME.layout.token_overhead;
  const rows = [];
  let row = 0, used = 0;
  pieces.forEach((piece, i) => {
    const w = widths[i];
    const lead = /^[ \t\r]*\n/.test(piece) ? 1 : 0;
    if ((lead && i > 0) || (used > 0 && used + w + overhead > cols)) { row += 1; used = 0; }
    rows.push(row);
    used += w + overhead;
    const extra = (piece.match(/\n/g) || []).length - lead;
    if (extra > 0) { row += extra; used = 0; }
  });
  return rows;
}

/** The strip's colours: the measure chosen (``measure`` trait, one the data holds), its values per root and
 * its colour range (``colour_scale``: fitted to the values shown, or to the range ``data.fit`` gives, or fixed). */
function stripScale(ctx) {
  const { d, model } = ctx;
  const chosen = model.get("measure");
  const measure = d.measures && chosen in d.measures ? chosen : "density";
  const values = (d.measures && d.measures[measure]) || d.density || [];
  const how = model.get("colour_scale") === "fixed" ? "fixed" : "fitted";
  const given = how === "fitted" && d.fit && d.fit[measure];
  const range = given ? d.fit[measure].slice() : colourRange(values, measure, how);
  const colours = (ri) => (ri >= 0 ? mapColours("strip", scalePosition(values[ri], range, measure)) : null);
  return { measure, values, how, range, run: Boolean(given), colours };
}

/** A legend of the measure's colour scale: its colour bar with the numbers at both ends, a measure selector (for
 * more than one of ``measures``) and the fitted / fixed toggle (``select(name, value)`` sets the trait), then the
 * ``swatches`` ([css class, text]) and a note; ``show(sc, note)`` shows a scale (stripScale, compareScale). */
function scaleLegend(measures, select, swatches) {
  const grad = gradientLegend("", "", "", "strip");
  const { legend } = grad;
  const controls = h("span", "dnb-li dnb-strip-controls");
  let pick = null;
  if (measures.length > 1) {
    pick = h("select", "dnb-select dnb-measure");
    pick.setAttribute("aria-label", "Measure that colours the tokens");
    pick.setAttribute("data-lm-suppress-shortcuts", "true");
    for (const m of measures) { const o = h("option", "", measureSpec(m).label); o.value = m; pick.appendChild(o); }
    pick.addEventListener("change", () => select("measure", pick.value));
    controls.appendChild(pick);
  }
  const group = h("span", "dnb-toggle");
  group.setAttribute("role", "group");
  group.setAttribute("aria-label", "Colour scale of the tokens");
  const btn = {};
  for (const [how, desc] of [["fitted", "fitted to the values shown (between their percentiles 2 and 98)"], ["fixed", "the measure's whole range"]]) {
    const b = button("dnb-btn dnb-cscale-btn", how, `Colour the tokens on a scale ${desc}`);
    b.dataset.scale = how;
    b.addEventListener("click", () => select("colour_scale", how));
    btn[how] = b;
    group.appendChild(b);
  }
  controls.appendChild(group);
  legend.removeAttribute("aria-hidden");  // its controls are for everyone; the bar itself is decorative
  for (const e of [grad.text, grad.tickLo, grad.tickHi]) e.setAttribute("aria-hidden", "true");
  legend.append(h("span", "dnb-legend-sep", ""), controls);
  for (const [cls, text] of swatches) {  // a swatch and its label wrap together
    const item = h("span", "dnb-li");
    item.setAttribute("aria-hidden", "true");
    item.append(h("span", `dnb-legend-swatch ${cls}`, "abc"), h("span", "dnb-legend-label", text));
    legend.append(h("span", "dnb-legend-sep", ""), item);
  }
  const note = legend.appendChild(h("span", "dnb-legend-note"));
  const show = (sc, text) => {
    const spec = measureSpec(sc.measure);
    grad.text.textContent = spec.label;
    grad.tickLo.textContent = fmtMeasure(sc.range[0], sc.measure);
    grad.tickHi.textContent = fmtMeasure(sc.range[1], sc.measure);
    if (pick) pick.value = sc.measure;
    for (const how of ["fitted", "fixed"]) btn[how].setAttribute("aria-pressed", String(how === sc.how));
    btn.fixed.textContent = `fixed ${fmtMeasure(spec.range[0], sc.measure)}–${fmtMeasure(spec.range[1], sc.measure)}`;
    note.textContent = text;
  };
  return { el: legend, show };
}
/** How a scale was chosen, as the legends say it (``run``: fitted to a corpus run's values). */
function scaleNote(sc) {
  const [lo, hi] = THEME.fit.percentiles;
  return sc.how === "fixed" ? "fixed scale" : `fitted to ${sc.run ? "the run" : "the values shown"} (percentiles ${lo}–${hi})`;
}

function makeStrip(ctx) {
  const { d, tokens, roots, rootIndex } = ctx;
  const generated = d.generated || "";
  const wrap = h("section", "dnb-part dnb-strip-part");
  wrap.setAttribute("aria-label", "Token strip");
  const strip = h("div", "dnb-strip");
  strip.setAttribute("role", "listbox");
  strip.setAttribute("aria-label", "Tokens coloured by the chosen measure of the step that predicts them; arrow keys move, Enter selects");
  const els = [];
  const predicting = []; // token position -> root index that predicts it (root position = token − 1), or -1
  const focusable = [];
  const option = (span, label) => {
    span.setAttribute("role", "option");
    span.setAttribute("aria-selected", "false");
    span.dataset.label = label;
    span.tabIndex = -1;
    span.setAttribute("data-lm-suppress-shortcuts", "true");
    focusable.push(span);
  };
  for (let i = 0; i < tokens.length; i++) {
    const ri = rootIndex.has(i - 1) ? rootIndex.get(i - 1) : -1;
    predicting.push(ri);
    const span = h("span", "dnb-tok");
    span.dataset.pos = String(i);
    fillToken(span, tokens[i]);
    const gen = generated[i] === "1";
    if (gen) span.classList.add("dnb-gen");
    if (ri >= 0 && d.density[ri] !== null && d.density[ri] !== undefined) {
      span.classList.add("dnb-pred");
      option(span, `token ${i} ${showText(tokens[i])}${gen ? " (generated)" : ""}`);
    } else {
      span.classList.add("dnb-none");
      span.setAttribute("aria-hidden", "true");
    }
    els.push(span);
  }
  // A root at the last position predicts past the text: show it as a trailing "next" marker.
  const lastRi = rootIndex.has(tokens.length - 1) ? rootIndex.get(tokens.length - 1) : -1;
  let after = null;
  if (lastRi >= 0) {
    after = h("span", "dnb-next", "⋯");
    after.dataset.pos = String(tokens.length);
    option(after, "prediction after the text");
  }
  const boxes = after ? [...els, after] : els;
  const pieces = after ? [...tokens, "⋯"] : tokens;
  const widths = pieces.map((t, i) => (d.tw && i < tokens.length ? d.tw[i] : Array.from(shown(t)).length));
  const riOf = (el) => { const p = Number(el.dataset.pos); return p < tokens.length ? predicting[p] : lastRi; };
  let sc = stripScale(ctx);

  const tipLines = (el) => {
    const p = Number(el.dataset.pos);
    const ri = riOf(el);
    const gen = generated[p] === "1" ? " (generated)" : "";
    if (ri < 0) return [`${ctx.tokenLabel(p)} (token ${p})${gen}`, "no prediction traced for this token"];
    const lines = [p < tokens.length ? `${ctx.tokenLabel(p)} — token ${p}${gen}, predicted at step ${roots[ri]}` : `after the text — predicted at step ${roots[ri]}`];
    lines.push(`density ${fmt(d.density[ri])}   s_top1 ${fmtS(d.s_top1[ri])}`);
    if (sc.measure !== "density") lines.push(`${measureSpec(sc.measure).label} ${fmtMeasure(sc.values[ri], sc.measure)}`);
    lines.push(`entropy ${fmt(d.entropy[ri])} nats`);
    lines.push(`full model's top prediction: “${showText(d.top_token[ri] ?? "")}” (p = ${fmt(d.top_prob[ri])})`);
    return lines;
  };
  const onOver = (e) => { const t = e.target.closest(".dnb-tok, .dnb-next"); if (t) ctx.showTip(t, tipLines(t)); };
  const onOut = (e) => { if (e.target.closest(".dnb-tok, .dnb-next")) ctx.hideTip(); };
  const choose = (el) => { const ri = riOf(el); if (ri >= 0) ctx.select("root", roots[ri]); };
  strip.addEventListener("mouseover", onOver);
  strip.addEventListener("mouseout", onOut);
  strip.addEventListener("focusin", onOver);
  strip.addEventListener("focusout", onOut);
  strip.addEventListener("click", (e) => { const t = e.target.closest(".dnb-tok, .dnb-next"); if (t) choose(t); });
  rovingKeys(strip, focusable, choose);

  const nGen = (generated.match(/1/g) || []).length;
  const legend = scaleLegend(knownMeasures(d.measures), ctx.select, [["", "no prediction"], ...(nGen ? [["dnb-gen", "written by the model"]] : [])]);
  const finite = (d.density || []).filter(Number.isFinite);
  const mean = finite.length ? finite.reduce((a, b) => a + b, 0) / finite.length : NaN;
  const counts = nGen ? `${count(tokens.length, "token")} (${tokens.length - nGen} prompt + ${nGen} generated)` : count(tokens.length, "token");
  const head = h("div", "dnb-title", `${d.model || "model"} · ${counts} · ${count(roots.length, "step")} · mean density ${fmt(mean)}`);
  wrap.append(head, strip, legend.el);

  /** Colour every token by the chosen measure and scale; the legend says which. */
  function recolour() {
    sc = stripScale(ctx);
    boxes.forEach((el) => {
      const ri = riOf(el);
      const colours = el.classList.contains("dnb-none") ? null : sc.colours(ri);
      [el.style.backgroundColor, el.style.color] = colours || ["", ""];
      if (el.dataset.label) el.setAttribute("aria-label", `${el.dataset.label}: ${measureSpec(sc.measure).short} ${fmtMeasure(sc.values[ri], sc.measure)}`);
    });
    const what = measureSpec(sc.measure).short;
    legend.show(sc, `· space  ↵ newline — colour = ${what} of the step predicting the token, ${scaleNote(sc)} (hover for numbers)`);
  }
  /** The tokens in lines of at most the theme's strip columns (fewer where the strip is narrower). */
  function layout() {
    const probe = strip.appendChild(h("span", "dnb-cmp-probe", "0000000000"));
    const chPx = probe.getBoundingClientRect().width / 10 || 8;
    probe.remove();
    const cols = Math.max(12, Math.min(THEME.layout.strip_columns, Math.floor((strip.clientWidth || 800) / chPx) - 1));
    const rows = stripRows(widths, pieces, cols);
    const lines = Array.from({ length: (rows[rows.length - 1] ?? 0) + 1 }, () => h("div", "dnb-line"));
    boxes.forEach((el, i) => lines[rows[i]].appendChild(el));
    strip.replaceChildren(...lines);
  }

  let selected = null;
  function select() {
    const ri = ctx.rootIdx();
    const pos = ri >= 0 ? roots[ri] + 1 : -1;
    const el = pos >= 0 && pos < tokens.length ? els[pos] : pos === tokens.length ? after : null;
    if (el === selected) return;
    if (selected) { selected.classList.remove("dnb-sel"); selected.setAttribute("aria-selected", "false"); }
    selected = el;
    if (el) {
      el.classList.add("dnb-sel");
      el.setAttribute("aria-selected", "true");
      for (const f of focusable) f.tabIndex = -1;  // roving tab stop follows the selection
      el.tabIndex = 0;
    } else if (focusable.length && !focusable.some((f) => f.tabIndex === 0)) focusable[0].tabIndex = 0;
  }
  function update(what) {
    if (what === "all" || what === "measure" || what === "colour_scale") recolour();
    if (what === "all" || what === "root") select();
  }
  if (focusable.length) focusable[0].tabIndex = 0;
  boxes.forEach((el) => strip.appendChild(el));  // in one line until mounted (laid out once the strip has a width)
  return {
    el: wrap,
    update,
    on: ["root", "measure", "colour_scale"],
    mount() {
      layout();
      if (typeof ResizeObserver === "undefined") return () => {};
      let width = strip.clientWidth;
      const ro = new ResizeObserver(() => { if (Math.abs(strip.clientWidth - width) > 4) { width = strip.clientWidth; layout(); } });
      ro.observe(strip);
      return () => ro.disconnect();
    },
  };
}

// ---- SubgraphSlider -------------------------------------------------------------------------------

function makeSlider(ctx) {
  const { d, roots, grid, K, logGrid } = ctx;
  const baselines = Object.entries(d.baselines || {});
  const hidden = new Set();  // baselines switched off in the legend
  const wrap = h("section", "dnb-part dnb-slider-part");
  wrap.setAttribute("aria-label", "Subgraph size");
  const title = h("div", "dnb-title");
  const controls = h("div", "dnb-controls");
  const group = h("div", "dnb-toggle");
  group.setAttribute("role", "group");
  group.setAttribute("aria-label", "Distance shown in the chart");
  const btn = {};
  for (const [m, label, desc] of [["tv", "TV", "total variation distance"], ["kl", "KL", "KL divergence (full ‖ subgraph)"]]) {
    const b = button("dnb-btn", label, `Show ${desc}`);
    b.addEventListener("click", () => ctx.select("metric", m));
    btn[m] = b;
    group.appendChild(b);
  }
  controls.appendChild(group);

  // chart geometry (viewBox units; the svg scales to its container width)
  const W = 420, Hh = 212, ml = 44, mr = 12, mt = 22, mb = 34;
  const pw = W - ml - mr, ph = Hh - mt - mb;
  const xmin = K ? Math.min(...logGrid, -0.0001) : -5, xmax = 0;
  const X = (lx) => ml + (xmax === xmin ? 0 : (lx - xmin) / (xmax - xmin)) * pw;
  const svg = s("svg", { viewBox: `0 0 ${W} ${Hh}`, class: "dnb-chart", role: "img" });
  const gPlateau = s("rect", { class: "dnb-plateau", y: mt, height: ph, x: ml, width: 0 });
  const gBands = s("g", { class: "dnb-bands" });
  const gAxes = s("g", { class: "dnb-axes" });
  const gY = s("g", { class: "dnb-yaxis" });
  const sTop = s("line", { class: "dnb-stop1", y1: mt - 4, y2: mt + ph });
  const sTopLabel = s("text", { class: "dnb-stop1-label", y: mt - 6, "text-anchor": "start" });
  const basePaths = new Map(baselines.map(([name]) => [name, s("path", { class: `dnb-curve-base dnb-base-${name}` })]));
  const path = s("path", { class: "dnb-curve" });
  const gDots = s("g", { class: "dnb-dots" });
  const marker = s("line", { class: "dnb-marker", y1: mt, y2: mt + ph });
  const markerDot = s("circle", { class: "dnb-marker-dot", r: 4.5 });
  svg.append(gPlateau, gBands, gAxes, gY, sTop, sTopLabel, ...basePaths.values(), path, gDots, marker, markerDot);
  // x axis: decades
  gAxes.appendChild(s("line", { x1: ml, x2: ml + pw, y1: mt + ph, y2: mt + ph, class: "dnb-axis" }));
  for (let e = Math.ceil(xmin); e <= 0; e++) {
    const x = X(e);
    gAxes.appendChild(s("line", { x1: x, x2: x, y1: mt + ph, y2: mt + ph + 4, class: "dnb-axis" }));
    const t = s("text", { x, y: mt + ph + 15, "text-anchor": "middle", class: "dnb-ticklabel" });
    t.textContent = e === 0 ? "1" : `1e${e}`;
    gAxes.appendChild(t);
  }
  const xl = s("text", { x: ml + pw / 2, y: Hh - 3, "text-anchor": "middle", class: "dnb-axislabel" });
  xl.textContent = "subgraph size s (share of edges, log scale)";
  gAxes.appendChild(xl);
  gAxes.appendChild(s("line", { x1: ml, x2: ml, y1: mt, y2: mt + ph, class: "dnb-axis" }));
  const yl = s("text", { x: 11, y: mt + ph / 2, "text-anchor": "middle", class: "dnb-axislabel", transform: `rotate(-90 11 ${mt + ph / 2})` });
  gAxes.appendChild(yl);

  // legend: the traced curve, each baseline (a toggle), the agreement band, s_top1, the plateau, current s
  const legend = h("div", "dnb-chart-legend");
  legend.setAttribute("role", "group");
  legend.setAttribute("aria-label", "Chart legend; the baselines can be switched on and off");
  const li = (cls, text) => { const e = h("span", "dnb-li"); e.setAttribute("aria-hidden", "true"); e.append(h("span", `dnb-key ${cls}`), h("span", "", text)); return e; };
  const liPlateau = li("dnb-key-plateau", "no path from the input");
  const liLog = li("dnb-key-none dnb-key-log", "KL on a log axis (0 and below 1e-3 at its foot)");
  legend.append(li("dnb-key-curve", "traced subgraph"));
  for (const [name, b] of baselines) {
    const t = button("dnb-li dnb-li-toggle", "", `Show the ${b.label} baseline: ${label("baseline_help", name)}`);
    t.dataset.baseline = name;
    t.setAttribute("aria-pressed", "true");
    t.append(h("span", `dnb-key dnb-key-base dnb-base-${name}`), h("span", "", b.label));
    t.addEventListener("click", () => {
      if (hidden.has(name)) hidden.delete(name); else hidden.add(name);
      t.setAttribute("aria-pressed", String(!hidden.has(name)));
      drawCurve();
      drawMarker();
    });
    legend.appendChild(t);
  }
  legend.append(li("dnb-key-band", "top-1 agrees"), li("dnb-key-stop1", "s_top1"), liPlateau, li("dnb-key-marker", "current s"), liLog);

  const input = h("input", "dnb-range");
  input.type = "range";
  input.min = "0";
  input.max = String(Math.max(0, K - 1));
  input.step = "1";
  input.setAttribute("aria-label", "Subgraph size s (stratum of the size grid)");
  input.setAttribute("data-lm-suppress-shortcuts", "true");
  const ends = h("div", "dnb-range-ends");
  ends.setAttribute("aria-hidden", "true");
  ends.append(h("span", "", `s = ${fmtS(grid[0])}`), h("span", "", "full graph (s = 1)"));
  const readout = h("div", "dnb-readout");
  readout.setAttribute("aria-live", "off");
  input.addEventListener("input", () => ctx.select("stratum", Number(input.value), false));
  input.addEventListener("change", () => ctx.select("stratum", Number(input.value), true));
  wrap.append(title, controls, svg, legend, input, ends, readout);

  let Y = (v) => v, ri = -1, metric = "", ys = [];
  const line = (vals) => {
    let p = "", pen = false;
    for (let k = 0; k < K; k++) {
      const v = vals[k];
      if (v === null || v === undefined || !Number.isFinite(v)) { pen = false; continue; }
      p += `${pen ? "L" : "M"}${X(logGrid[k]).toFixed(1)},${Y(v).toFixed(1)}`;
      pen = true;
    }
    return p;
  };
  function drawCurve() {
    ri = ctx.rootIdx();
    metric = ctx.metric();
    btn.tv.setAttribute("aria-pressed", String(metric === "tv"));
    btn.kl.setAttribute("aria-pressed", String(metric === "kl"));
    gBands.replaceChildren(); gY.replaceChildren(); gDots.replaceChildren();
    if (ri < 0) { path.setAttribute("d", ""); for (const p of basePaths.values()) p.setAttribute("d", ""); title.textContent = "no roots"; return; }
    const pos = roots[ri];
    title.textContent = `Step ${pos}: after ${ctx.tokenLabel(pos)} → predicts ${ctx.tokenLabel(pos + 1)}; full model's top: “${showText(d.top_token[ri] ?? "")}”`;
    ys = (d[metric] || [])[ri] || [];
    const shown = baselines.filter(([name]) => !hidden.has(name)).map(([name, b]) => [name, (b[metric] || [])[ri] || []]);
    // TV on [0, 1]; KL on a log axis (a baseline of hundreds of nats does not flatten the traced curve; 0 at its foot)
    let ticks = [0, 0.5, 1];
    if (metric === "kl") {
      const axis = logAxis([...ys, ...shown.flatMap(([, v]) => v)]);
      const [a, b] = [Math.log10(axis.lo), Math.log10(axis.hi)];
      Y = (v) => mt + ph - ((Math.log10(Math.min(Math.max(v, axis.lo), axis.hi)) - a) / (b - a)) * ph;
      ticks = axis.ticks;
    } else Y = (v) => mt + ph - Math.min(Math.max(v, 0), 1) * ph;
    yl.textContent = metric === "tv" ? "TV distance" : "KL (nats, log scale)";
    liLog.style.display = metric === "kl" ? "" : "none";
    ticks.forEach((v, i) => {
      gY.appendChild(s("line", { x1: ml - 4, x2: ml + pw, y1: Y(v), y2: Y(v), class: i === 0 ? "dnb-axis" : "dnb-gridline" }));
      const t = s("text", { x: ml - 6, y: Y(v) + 3.5, "text-anchor": "end", class: "dnb-ticklabel" });
      t.textContent = fmt(v, 2);
      gY.appendChild(t);
    });
    // top-1 agreement bands, one per grid point spanning half-way to its neighbours
    const bits = d.top1[ri] || "";
    for (let k = 0; k < K; k++) {
      if (bits[k] !== "1") continue;
      const x0 = X(k ? (logGrid[k - 1] + logGrid[k]) / 2 : logGrid[0]);
      const x1 = X(k < K - 1 ? (logGrid[k] + logGrid[k + 1]) / 2 : logGrid[K - 1]);
      gBands.appendChild(s("rect", { x: x0, y: mt, width: Math.max(0.5, x1 - x0), height: ph, class: "dnb-band" }));
    }
    // the plateau: strata with no path from the input output the uniform distribution
    let last = -1;
    for (let k = 0; k < K; k++) if (ctx.plateau(ri, k)) last = k;
    const sInput = d.input_edges ? d.input_edges[ri] / d.total_edges[ri] : NaN;
    if (last >= 0) {
      const edge = Number.isFinite(sInput) && sInput > 0 ? Math.min(0, Math.log10(sInput)) : logGrid[last];
      gPlateau.setAttribute("width", Math.max(0, X(Math.max(edge, xmin)) - ml).toFixed(1));
    } else gPlateau.setAttribute("width", "0");
    liPlateau.style.display = last >= 0 ? "" : "none";
    const st = d.s_top1[ri];
    if (st !== null && Number.isFinite(st)) {
      const x = X(Math.log10(st));
      sTop.setAttribute("x1", x); sTop.setAttribute("x2", x); sTop.style.display = "";
      sTopLabel.setAttribute("x", x + 3); sTopLabel.textContent = `s_top1 ${fmtS(st)}`; sTopLabel.style.display = "";
      if (x > ml + pw - 70) { sTopLabel.setAttribute("text-anchor", "end"); sTopLabel.setAttribute("x", x - 3); } else sTopLabel.setAttribute("text-anchor", "start");
    } else { sTop.style.display = "none"; sTopLabel.style.display = "none"; }
    path.setAttribute("d", line(ys));
    for (const [name, p] of basePaths) p.setAttribute("d", hidden.has(name) ? "" : line((d.baselines[name][metric] || [])[ri] || []));
    for (let k = 0; k < K; k++) {
      if (!Number.isFinite(ys[k])) continue;
      gDots.appendChild(s("circle", { cx: X(logGrid[k]).toFixed(1), cy: Y(ys[k]).toFixed(1), r: 1.8, class: "dnb-dot" }));
    }
    const named = shown.length ? `; baselines shown: ${shown.map(([name]) => d.baselines[name].label).join(", ")}` : "";
    const plateauText = last >= 0 ? `; no path from the input below s = ${fmtS(sInput)}` : "";
    svg.setAttribute("aria-label", `${metric === "tv" ? "TV" : "KL"} versus log subgraph size for step ${pos}; top-1 first agrees at s = ${fmtS(st)}${plateauText}${named}`);
  }
  function drawMarker() {
    const k = ctx.stratum();
    if (String(k) !== input.value) input.value = String(k);
    const x = X(logGrid[k] ?? 0);
    marker.setAttribute("x1", x); marker.setAttribute("x2", x);
    const v = ys[k];
    markerDot.setAttribute("cx", x);
    markerDot.setAttribute("cy", Number.isFinite(v) ? Y(v) : mt + ph);
    if (ri < 0) { readout.textContent = ""; return; }
    const ne = d.n_edges[ri][k], te = d.total_edges[ri];
    const ok = (d.top1[ri] || "")[k] === "1";
    const tv = d.tv[ri][k], kl = d.kl[ri][k];
    const flat = ctx.plateau(ri, k);
    let text = `s = ${fmtS(grid[k])}, |S| = ${fmtInt(ne)} of ${fmtInt(te)} edges, TV = ${fmt(tv)}, KL = ${fmt(kl)}, top-1 ${ok ? "✓" : "✗"}`;
    if (flat) text += " — no path from the input yet";
    const base = baselines.filter(([name]) => !hidden.has(name)).map(([, b]) => `${b.label} ${fmt((b[metric] || [])[ri]?.[k])}`);
    if (base.length) text += ` · ${metric === "tv" ? "TV" : "KL"} of ${base.join(", ")}`;
    readout.textContent = text;
    input.setAttribute("aria-valuetext", `s = ${fmtS(grid[k])}, ${fmtInt(ne)} edges, TV ${fmt(tv)}, KL ${fmt(kl)}, top-1 ${ok ? "agrees" : "differs"}${flat ? ", no path from the input yet" : ""}`);
  }
  function update(what) {
    if (what !== "stratum") drawCurve();
    drawMarker();
  }
  return { el: wrap, update, on: ["root", "metric", "stratum"] };
}

// ---- Prediction preview -----------------------------------------------------------------------------
function makePreview(ctx) {
  const { d, grid, roots } = ctx;
  const wrap = h("section", "dnb-part dnb-preview-part");
  wrap.setAttribute("aria-label", "What the subgraph predicts");
  const title = h("div", "dnb-title");
  wrap.appendChild(title);
  const tk = d.topk;
  if (!tk) {
    title.textContent = "No top-k in this result: trace it again with this version of density_nb to see what each subgraph predicts.";
    return { el: wrap, update() {}, on: [] };
  }
  const k = tk.k;
  const tokText = (v) => (tk.vocab[v] === null || tk.vocab[v] === undefined ? `#${tk.vocab_id[v]}` : showText(tk.vocab[v]));
  const columns = h("div", "dnb-pv");
  const column = (heading, withNote) => {
    const col = h("div", "dnb-pv-col");
    const head = h("div", "dnb-pv-head", heading);
    const list = h("ol", "dnb-pv-list");
    const rows = [];
    for (let i = 0; i < k; i++) {
      const row = h("li", "dnb-pv-row");
      const tok = h("span", "dnb-pv-tok");
      const bar = h("span", "dnb-pv-bar");
      const fill = h("span", "dnb-pv-fill");
      bar.setAttribute("aria-hidden", "true");
      bar.appendChild(fill);
      const p = h("span", "dnb-pv-p");
      const mark = h("span", "dnb-pv-mark");
      row.append(tok, bar, p, mark);
      list.appendChild(row);
      rows.push({ row, tok, fill, p, mark });
    }
    col.append(head, list);
    const note = withNote ? col.appendChild(h("div", "dnb-pv-note")) : null;
    columns.appendChild(col);
    return { head, rows, note };
  };
  const sub = column("", true);
  const full = column(`full model — top-${k}`, false);
  const foot = h("div", "dnb-pv-foot");
  wrap.append(columns, foot);

  const fill = (col, ids, probs, next) => {
    let found = false;
    col.rows.forEach((r, i) => {
      const v = ids[i];
      const has = v !== undefined;
      r.row.hidden = !has;
      if (!has) return;
      const isNext = v === next && next >= 0;
      found ||= isNext;
      r.tok.replaceChildren(h("span", "dnb-pv-chip", tokText(v)));  // a chip: "," and "." are as easy to see as words
      r.tok.title = tk.vocab[v] === null ? `token id ${tk.vocab_id[v]} (give the widget a tokenizer to see its text)` : "";
      r.p.textContent = fmt(probs[i], 2);
      r.fill.style.width = `${Math.max(0, Math.min(1, probs[i] || 0)) * 100}%`;
      r.row.classList.toggle("dnb-pv-next", isNext);
      r.mark.textContent = isNext ? "◂ next" : "";
      r.row.setAttribute("aria-label", `${i + 1}. ${tokText(v)}, p = ${fmt(probs[i], 2)}${isNext ? ", the text's next token" : ""}`);
    });
    return found;
  };
  function update() {
    const ri = ctx.rootIdx(), kk = ctx.stratum();
    if (ri < 0) { title.textContent = "no roots"; return; }
    const next = tk.next[ri];
    title.textContent = `What step ${roots[ri]} predicts`;
    sub.head.textContent = `subgraph at s = ${fmtS(grid[kk])} — top-${k}`;
    const flat = ctx.plateau(ri, kk);
    let inSub = false;
    if (flat) {
      fill(sub, [], [], next);
      sub.note.textContent = `No path from the input yet (${fmtInt(d.n_edges[ri][kk])} of the ${fmtInt(d.input_edges[ri])} edges needed to reach it): the subgraph outputs the uniform distribution and predicts nothing.`;
      sub.note.hidden = false;
    } else {
      inSub = fill(sub, tk.sub[ri][kk], tk.sub_p[ri][kk], next);
      sub.note.hidden = true;
    }
    const inFull = fill(full, tk.full[ri], tk.full_p[ri], next);
    if (next < 0) foot.textContent = "The text ends here: no next token to compare with.";
    else {
      const where = [!flat && !inSub ? "the subgraph's" : "", !inFull ? "the full model's" : ""].filter(Boolean).join(" nor ");
      foot.textContent = `◂ the text's next token “${tokText(next)}”${where ? ` (not in ${where} top-${k})` : ""}`;
    }
  }
  return { el: wrap, update, on: ["root", "stratum"] };
}

// ---- HeadGrid ---------------------------------------------------------------------------------------
function makeGrid(ctx) {
  const { d, L, H, K, grid, roots, shares } = ctx;
  const wrap = h("section", "dnb-part dnb-grid-part");
  wrap.setAttribute("aria-label", "Layer by head composition");
  const title = h("div", "dnb-title");
  wrap.appendChild(title);
  if (!shares || !L) {
    title.textContent = "No head/MLP shares in this result.";
    return { el: wrap, update() {}, on: [] };
  }
  // the byte code of views/data.py: 0 none, 255 all, 1–254 log-spaced from the floor to 1
  const floor = d.share_floor || 1e-4, lf = Math.log10(floor);
  const VALUE = Float64Array.from({ length: 256 }, (_, c) => (c === 0 ? 0 : c === 255 ? 1 : Math.pow(10, lf * (254 - c) / 253)));
  const LOGPOS = Float64Array.from({ length: 256 }, (_, c) => (c === 0 ? 0 : Math.min(1, (c - 1) / 253)));
  const NONE = "transparent";
  const BG = {
    linear: Array.from(VALUE, (v, c) => (c ? rgb(interp(stops("shares"), v)) : NONE)),
    log: Array.from(LOGPOS, (t, c) => (c ? rgb(interp(stops("shares"), t)) : NONE)),
  };
  const logPos = (v) => (v > 0 ? Math.min(1, Math.max(0, (Math.log10(v) - lf) / -lf)) : 0);
  const shareText = (c) => (c === 0 ? "none" : c === 255 ? "all" : `≈ ${fmtPct(VALUE[c])}`);
  const scaleOf = () => (ctx.model.get("scale") === "linear" ? "linear" : "log");

  const controls = h("div", "dnb-controls");
  const group = h("div", "dnb-toggle");
  group.setAttribute("role", "group");
  group.setAttribute("aria-label", "Colour scale of the grid");
  const btn = {};
  for (const [m, label, desc] of [["log", "log", "a log colour scale (small shares visible)"], ["linear", "linear", "a linear colour scale"]]) {
    const b = button("dnb-btn dnb-scale-btn", label, `Colour the grid on ${desc}`);
    b.addEventListener("click", () => ctx.select("scale", m));
    btn[m] = b;
    group.appendChild(b);
  }
  controls.append(h("span", "dnb-controls-label", "scale"), group);
  wrap.appendChild(controls);

  const table = h("div", "dnb-grid");
  table.setAttribute("role", "img");
  table.style.gridTemplateColumns = `auto repeat(${H}, var(--dnb-cell)) calc(var(--dnb-cell) + 6px) 56px`;
  const hdr = (t, cls = "") => h("div", `dnb-gh ${cls}`, t);
  table.appendChild(hdr("layer"));
  for (let j = 0; j < H; j++) table.appendChild(hdr(String(j), "dnb-gh-head"));
  table.appendChild(hdr("MLP", "dnb-gh-mlp"));
  table.appendChild(hdr("attn / MLP", "dnb-gh-bar"));
  const cells = [], bars = [];
  for (let l = 0; l < L; l++) {
    table.appendChild(h("div", "dnb-gl", String(l)));
    for (let j = 0; j <= H; j++) {
      const c = h("div", j === H ? "dnb-cell dnb-cell-mlp" : "dnb-cell");
      c.dataset.l = String(l);
      c.dataset.h = String(j);
      cells.push(c);
      table.appendChild(c);
    }
    const bar = h("div", "dnb-bars");
    bar.dataset.l = String(l);
    const a = h("div", "dnb-bar dnb-bar-attn"), m = h("div", "dnb-bar dnb-bar-mlp");
    bar.append(a, m);
    bars.push([a, m]);
    table.appendChild(bar);
  }
  const grad = gradientLegend("", "", "100 %", "shares");
  const legend = grad.legend;
  legend.classList.add("dnb-grid-legend");
  const none = h("span", "dnb-li");
  none.append(h("span", "dnb-key dnb-key-none"), h("span", "", "none"));
  const lk = h("span", "dnb-li");
  lk.append(h("span", "dnb-key dnb-key-attn"), h("span", "", "attention (mean of heads)"));
  const lm = h("span", "dnb-li");
  lm.append(h("span", "dnb-key dnb-key-mlp"), h("span", "", "MLP"));
  legend.append(none, lk, lm);
  wrap.append(table, legend);

  const base = () => (ctx.rootIdx() * K + ctx.stratum()) * L * (H + 1);
  table.addEventListener("mouseover", (e) => {
    const c = e.target.closest(".dnb-cell, .dnb-bars");
    if (!c) return;
    const l = Number(c.dataset.l), o = base() + l * (H + 1);
    const k = ctx.stratum();
    if (c.classList.contains("dnb-bars")) {
      let sum = 0;
      for (let j = 0; j < H; j++) sum += VALUE[shares[o + j]];
      ctx.showTip(c, [`layer ${l} at s = ${fmtS(grid[k])}`, `attention: ≈ ${fmtPct(sum / H)} of head edges (mean of ${H} heads)`, `MLP: ${shareText(shares[o + H])} of its edges`]);
    } else {
      const j = Number(c.dataset.h);
      ctx.showTip(c, [j === H ? `layer ${l}, MLP` : `layer ${l}, head ${j}`, `${shareText(shares[o + j])} of its edges included at s = ${fmtS(grid[k])}`]);
    }
  });
  table.addEventListener("mouseout", () => ctx.hideTip());

  let drawnScale = "";
  function update() {
    const ri = ctx.rootIdx(), k = ctx.stratum();
    if (ri < 0) return;
    const scale = scaleOf();
    if (scale !== drawnScale) {
      drawnScale = scale;
      btn.log.setAttribute("aria-pressed", String(scale === "log"));
      btn.linear.setAttribute("aria-pressed", String(scale === "linear"));
      grad.text.textContent = `share of each head's (MLP's) edges in the subgraph, ${scale} scale`;
      grad.tickLo.textContent = scale === "log" ? fmtPct(floor) : "0 %";
    }
    const bg = BG[scale];
    const o0 = base();
    let attnAll = 0, mlpAll = 0;
    for (let l = 0; l < L; l++) {
      const o = o0 + l * (H + 1);
      let sum = 0;
      for (let j = 0; j <= H; j++) {
        const c = shares[o + j];
        cells[l * (H + 1) + j].style.backgroundColor = bg[c];
        if (j < H) sum += VALUE[c];
      }
      const attn = H ? sum / H : 0, mlp = VALUE[shares[o + H]];
      attnAll += attn; mlpAll += mlp;
      bars[l][0].style.width = `${(scale === "log" ? logPos(attn) : attn) * 100}%`;
      bars[l][1].style.width = `${(scale === "log" ? LOGPOS[shares[o + H]] : mlp) * 100}%`;
    }
    title.textContent = `Edges included per head and MLP — step ${roots[ri]}, s = ${fmtS(grid[k])}`;
    table.setAttribute("aria-label", `Layer × head grid at s = ${fmtS(grid[k])} (${scale} colour scale): attention heads include ≈ ${fmtPct(attnAll / L)} and MLPs ≈ ${fmtPct(mlpAll / L)} of their edges on average; hover a cell for its number`);
  }
  return { el: wrap, update, on: ["root", "stratum", "scale"] };
}

// ---- Live view: progress and cancel -------------------------------------------------------------------
function makeStatus(model) {
  const wrap = h("section", "dnb-part dnb-live");
  wrap.setAttribute("aria-label", "Progress");
  const bar = h("progress", "dnb-progress");
  const text = h("span", "dnb-live-text");
  text.setAttribute("aria-live", "polite");
  const cancel = button("dnb-btn dnb-cancel", "Cancel", "Cancel: stop after the current step and keep what is done");
  cancel.addEventListener("click", () => { cancel.disabled = true; text.textContent = "cancelling after the current step…"; model.send({ type: "cancel" }); });
  wrap.append(bar, text, cancel);
  function update() {
    const st = model.get("status") || {};
    const done = st.done | 0, total = Math.max(1, st.total | 0), unit = st.unit || "steps";
    bar.max = total;
    bar.value = Math.min(done, total);
    bar.setAttribute("aria-label", `${done} of ${total} ${unit} traced`);
    const running = st.state === "running";
    cancel.disabled = !running;
    cancel.hidden = !running;
    const verb = { running: "tracing", done: "done", cancelled: "cancelled, kept", failed: "failed after" }[st.state] || "";
    // before the text's tokens are known (the playground loading a model) only the note says what happens
    const counted = st.total || st.state !== "running" ? `${verb} ${done} of ${st.total | 0} ${unit}` : "";
    text.textContent = [counted, st.note].filter(Boolean).join(" — ");
    wrap.dataset.state = st.state || "";
    wrap.hidden = !st.state;  // a playground that has traced nothing yet shows no progress
  }
  return { el: wrap, update, on: ["status"] };
}

// ---- Playground: a text box, a model, Trace; the strip fills in below; examples, history, compare with… --------
let playgrounds = 0;  // numbers the playgrounds of a page, for the ids that tie labels to controls
/** A <select> of ``values`` (``text(value)`` shows each), labelled ``label``. */
function selectBox(cls, values, label, text = (v) => String(v)) {
  const box = h("select", `dnb-select ${cls}`);
  box.setAttribute("aria-label", label);
  box.setAttribute("data-lm-suppress-shortcuts", "true");
  for (const v of values) { const o = h("option", "", text(v)); o.value = String(v); box.appendChild(o); }
  return box;
}
/** The playground's controls, above its explorer: the text with its counts, the model, grid and baselines, Trace
 * (Ctrl/Cmd+Enter in the text), progress and Cancel, the error, the examples and the history with "compare with…".
 * They are built once (the explorer below is rebuilt on every step), so typing and focus stay. The kernel traces:
 * the view sends "trace", "cancel", "select", "compare", "compare_model" and "close_comparison". */
function makePlayground(model) {
  const opts = model.get("options") || {};
  const models = opts.models || [];
  const uid = `dnb-pg-${++playgrounds}`;
  const wrap = h("section", "dnb-part dnb-pg");
  wrap.setAttribute("aria-label", "Playground: type a text and trace it");
  const save = (name, value) => { model.set(name, value); model.save_changes(); };
  let focusCompare = false;  // the next comparison shown takes the focus (it was asked for from here)

  // the text, its counts and the key that traces it
  const label = h("label", "dnb-pg-label", "Text to trace");
  const area = h("textarea", "dnb-pg-text");
  area.id = `${uid}-text`;
  label.htmlFor = area.id;
  area.rows = 3;
  area.spellcheck = false;
  area.placeholder = "Type a sentence, then press Trace (Ctrl+Enter)";
  area.setAttribute("data-lm-suppress-shortcuts", "true");
  area.setAttribute("aria-keyshortcuts", "Control+Enter Meta+Enter");
  area.value = model.get("text") || "";
  const counts = h("div", "dnb-pg-counts");
  counts.id = `${uid}-counts`;
  area.setAttribute("aria-describedby", counts.id);
  let typing = 0;
  const flush = () => { clearTimeout(typing); typing = 0; if (model.get("text") !== area.value) save("text", area.value); };
  // the text goes with the request: ipywidgets holds back a state update while an earlier one is unanswered, so a
  // plain save could reach the kernel after the "trace" message (which is never held back)
  const trace = () => { flush(); model.send({ type: "trace", text: area.value }); };
  area.addEventListener("input", () => { showCounts(); clearTimeout(typing); typing = setTimeout(flush, 250); });
  area.addEventListener("blur", flush);
  area.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); e.stopPropagation(); trace(); return; }
    if (e.key !== "Tab" && e.key !== "Escape") e.stopPropagation();  // typed keys are the text's, not the notebook's shortcuts
  });

  // the settings and Trace
  const bar = h("div", "dnb-pg-bar");
  const field = (text, control) => { const l = h("label", "dnb-pg-field"); l.append(h("span", "dnb-controls-label", text), control); return l; };
  const pickModel = selectBox("dnb-pg-model", models, "Model");
  pickModel.addEventListener("change", () => { save("model", pickModel.value); showCounts(); });
  const sizes = { fast: "fast (8 sizes + full)", paper: "paper (26 sizes + full)" };
  const pickGrid = selectBox("dnb-pg-grid", opts.grids || [], "Grid of subgraph sizes", (g) => sizes[g] || g);
  pickGrid.addEventListener("change", () => save("grid", pickGrid.value));
  const checks = h("span", "dnb-pg-checks");
  checks.setAttribute("role", "group");
  checks.setAttribute("aria-label", "Baselines to compute too (each costs one more set of passes)");
  checks.appendChild(h("span", "dnb-controls-label", "baselines"));
  const boxes = (opts.baselines || []).map(([name, text, help]) => {
    const l = h("label", "dnb-pg-check");
    const c = h("input");
    c.type = "checkbox";
    c.value = name;
    c.setAttribute("data-lm-suppress-shortcuts", "true");
    l.title = help;
    l.append(c, h("span", "", text));
    c.addEventListener("change", () => save("baselines", boxes.filter((b) => b.checked).map((b) => b.value)));
    checks.appendChild(l);
    return c;
  });
  const go = button("dnb-btn dnb-pg-trace", "Trace", "Trace the text (Ctrl+Enter or ⌘+Enter in the text box); a trace still running is cancelled");
  go.setAttribute("aria-keyshortcuts", "Control+Enter Meta+Enter");
  go.addEventListener("click", trace);
  bar.append(field("model", pickModel), field("grid", pickGrid), checks, go);
  const status = makeStatus(model);
  const error = h("div", "dnb-pg-error");
  error.setAttribute("role", "alert");

  // examples: the teaching corpus's contrasting pairs, one click each
  const examples = h("section", "dnb-pg-box dnb-pg-examples");
  examples.setAttribute("aria-label", "Examples: the teaching corpus's contrasting pairs; arrow keys move, Enter traces one");
  examples.appendChild(h("div", "dnb-pg-head", "Examples: contrasting pairs (a click traces one)"));
  const exampleEls = [];
  for (const g of opts.examples || []) {
    const line = h("div", "dnb-pg-kind");
    line.setAttribute("role", "group");
    line.setAttribute("aria-label", `${g.kind}: ${g.about}`);
    const name = line.appendChild(h("span", "dnb-pg-kindname", g.kind));
    name.title = g.about;
    const pairs = line.appendChild(h("span", "dnb-pg-pairs"));
    for (const p of g.pairs) {
      const pair = pairs.appendChild(h("span", "dnb-pg-pair"));
      pair.appendChild(h("span", "dnb-controls-label", p.pair.split("-").pop()));
      for (const it of p.items) {
        const b = button("dnb-btn dnb-pg-ex", it.role, `Trace the ${it.role} text of pair ${p.pair}`);
        b.title = it.text;
        b.tabIndex = exampleEls.length ? -1 : 0;
        b.addEventListener("click", () => { area.value = it.text; showCounts(); trace(); });
        exampleEls.push(b);
        pair.appendChild(b);
      }
    }
    examples.appendChild(line);
  }
  rovingKeys(examples, exampleEls, (el) => el.click());

  // the history, and compare with…
  const hist = h("section", "dnb-pg-box dnb-pg-hist");
  hist.setAttribute("aria-label", "History of this session");
  hist.appendChild(h("div", "dnb-pg-head", "History (this session; a click shows one again, not re-traced)"));
  const list = h("ol", "dnb-pg-history");
  list.setAttribute("aria-label", "Texts traced in this session; arrow keys move, Enter shows one again");
  const entryEls = [];
  rovingKeys(list, entryEls, (el) => el.click());
  const cmp = h("div", "dnb-pg-cmp");
  cmp.setAttribute("role", "group");
  cmp.setAttribute("aria-label", "Compare two results side by side with their per-token difference");
  const pickA = selectBox("dnb-pg-a", [], "First result (A)"), pickB = selectBox("dnb-pg-b", [], "Second result (B)");
  const cmpGo = button("dnb-btn dnb-pg-cmp-go", "Compare", "Show A and B side by side with the per-token difference B − A of the measure shown");
  cmpGo.addEventListener("click", () => { focusCompare = true; model.send({ type: "compare", a: Number(pickA.value), b: Number(pickB.value) }); });
  const line1 = h("div", "dnb-pg-cmpline");
  line1.append(h("span", "dnb-controls-label", "compare"), pickA, h("span", "dnb-controls-label", "with"), pickB, cmpGo);
  cmp.appendChild(line1);
  const pickOther = selectBox("dnb-pg-other", models, "Another model to trace the text shown on");
  const otherGo = button("dnb-btn dnb-pg-other-go", "Trace and compare", "Trace the text shown on the other model too, then compare the two");
  otherGo.addEventListener("click", () => { focusCompare = true; model.send({ type: "compare_model", model: pickOther.value }); });
  if (models.length > 1) {
    const line2 = h("div", "dnb-pg-cmpline");
    line2.append(h("span", "dnb-controls-label", "or the text shown on"), pickOther, otherGo);
    cmp.appendChild(line2);
  }
  hist.append(list, cmp);
  const lower = h("div", "dnb-pg-lower");
  lower.append(examples, hist);
  wrap.append(label, area, counts, bar, status.el, error, lower);

  function showCounts() {
    const c = model.get("counts") || {}, text = area.value, limit = opts.max_tokens;
    const fresh = c.text === text && c.model === pickModel.value;
    const known = fresh && Number.isFinite(c.tokens);
    const tokens = !fresh ? "counting tokens…" : known ? `${count(c.tokens, "token")} of at most ${fmtInt(limit)}` : "tokens counted when traced";
    const over = known && c.tokens > limit;
    counts.textContent = `${count(Array.from(text).length, "character")} · ${tokens}${over ? " — too long: shorten it" : ""} · Ctrl+Enter (⌘+Enter) traces`;
    counts.classList.toggle("dnb-pg-over", over);
  }
  function showEntries() {
    const entries = model.get("entries") || [], current = model.get("current");
    const focused = entryEls.indexOf(document.activeElement);
    list.replaceChildren();
    entryEls.length = 0;
    entries.forEach((e, i) => {
      const state = e.state === "done" ? "" : ` · cancelled: ${e.roots} of ${e.total}`;
      const one = e.text.replace(/\s+/g, " ").trim();
      const text = `#${i + 1} ${e.model} · “${one.length > 64 ? `${one.slice(0, 63)}…` : one}” · mean density ${fmt(e.mean)}${state}`;
      const b = button("dnb-pg-entry", text, `Show #${i + 1} again (${e.model}, ${e.grid} grid): ${e.text}`);
      b.dataset.index = String(i);
      b.tabIndex = -1;
      if (i === current) b.setAttribute("aria-current", "true");
      b.addEventListener("click", () => model.send({ type: "select", index: i }));
      const li = h("li");
      li.appendChild(b);
      list.appendChild(li);
      entryEls.push(b);
    });
    const stop = entryEls[current] || entryEls[entryEls.length - 1];
    if (stop) stop.tabIndex = 0;
    if (focused >= 0 && entryEls[focused]) { for (const b of entryEls) b.tabIndex = -1; entryEls[focused].tabIndex = 0; entryEls[focused].focus(); }
    if (!entries.length) list.appendChild(h("li", "dnb-pg-empty", "Nothing traced yet."));
    // compare with…: A is the entry before the one shown, B the one shown (or the last two)
    const pair = model.get("compare_pair") || [];
    for (const pick of [pickA, pickB]) {
      const keep = pick.value;
      pick.replaceChildren(...entries.map((e, i) => { const o = h("option", "", `#${i + 1}`); o.value = String(i); o.title = e.text; return o; }));
      if (keep !== "" && Number(keep) < entries.length) pick.value = keep;
    }
    const b = pair.length === 2 ? pair[1] : current >= 0 ? current : entries.length - 1;
    const a = pair.length === 2 ? pair[0] : b > 0 ? b - 1 : b + 1;
    if (entries.length >= 2) { pickA.value = String(a); pickB.value = String(b); }
    pickA.disabled = pickB.disabled = cmpGo.disabled = entries.length < 2;
    otherGo.disabled = current < 0;
  }
  function update(what) {
    if (what === "text" || what === "all") {
      const text = model.get("text") || "";
      if (text !== area.value && document.activeElement !== area) area.value = text;
    }
    if (what === "model" || what === "all") {
      pickModel.value = model.get("model");
      const other = models.find((m) => m !== model.get("model"));
      if (other !== undefined && pickOther.value === model.get("model")) pickOther.value = other;
    }
    if (what === "grid" || what === "all") pickGrid.value = model.get("grid");
    if (what === "baselines" || what === "all") { const on = new Set(model.get("baselines") || []); for (const b of boxes) b.checked = on.has(b.value); }
    if (what === "error" || what === "all") { error.textContent = model.get("error") || ""; error.hidden = !error.textContent; }
    if (what === "status" || what === "all") {
      status.update();
      go.classList.toggle("dnb-pg-busy", (model.get("status") || {}).state === "running");
    }
    if (what === "entries" || what === "current" || what === "compare_pair" || what === "all") showEntries();
    if (what === "text" || what === "model" || what === "counts" || what === "all") showCounts();
  }
  const names = ["text", "model", "grid", "baselines", "error", "status", "entries", "current", "compare_pair", "counts"];
  const listeners = names.map((name) => [`change:${name}`, () => update(name)]);
  for (const [event, fn] of listeners) model.on(event, fn);
  update("all");
  return {
    el: wrap,
    /** True once after the view asked for a comparison: the comparison shown next takes the focus. */
    takeCompareFocus() { const want = focusCompare; focusCompare = false; return want; },
    dispose() { clearTimeout(typing); for (const [event, fn] of listeners) model.off(event, fn); },
  };
}

// ---- Compare: several results of one text, aligned by characters ----------------------------------
/** The comparison's lines as [first, end) characters (views/svg.py line_breaks): at most ``cols`` columns
 * (``cw``: each character's), ending after a newline, else at the last boundary no token straddles
 * (``breakable``: "1" per boundary; a newline right after it stays on the line), else (a token wider than a
 * line) where the line is full. */
function lineBreaks(chars, cw, cols, breakable) {
  const lines = [], n = chars.length;
  let a = 0;
  while (a < n) {
    let w = 0, last = -1, c = a, end = n;
    while (c < n) {
      if (c > a && w + cw[c] > cols) {
        end = last > a ? last : c;
        if (end < n && chars[end] === "\n") end += 1;  // the newline's mark stays at the end of its line
        break;
      }
      w += cw[c];
      c += 1;
      if (chars[c - 1] === "\n") { end = c; break; }
      if (breakable[c] === "1") last = c;
    }
    lines.push([a, end]);
    a = end;
  }
  return lines.length ? lines : [[0, 0]];
}
/** The comparison's colours: one scale for every row (the ``measure`` trait, fitted to every row's values or fixed). */
function compareScale(model, rows) {
  const have = (rows[0] || {}).measures || {};
  const chosen = model.get("measure");
  const measure = chosen in have ? chosen : "density";
  const values = (r) => (r.measures && r.measures[measure]) || r.density;
  const how = model.get("colour_scale") === "fixed" ? "fixed" : "fitted";
  const range = colourRange(rows.flatMap(values), measure, how);
  return { measure, how, range, run: false, values, colours: (r, i) => mapColours("strip", scalePosition(values(r)[i], range, measure)) };
}

/** The comparison of ``model``'s data (``traits``: the names of the traits holding it and its selected span; the
 * playground keeps its comparison in "compare" and "compare_span"). A ``diff`` in the data (views/difference.py)
 * adds a row under each line's rows: the difference, second minus first, of the measure shown, on the diverging map. */
function makeCompare(model, rootEl, traits = { data: "data", span: "span" }) {
  const d = model.get(traits.data) || {};
  const chars = d.chars || [];
  const cw = Array.from(d.cw || "", Number);
  const rows = d.rows || [];
  const pairs = d.pairs || [];
  const tip = makeTip(rootEl);
  const wrap = h("section", "dnb-part dnb-compare-part");
  wrap.setAttribute("aria-label", "Comparison of several results of one text, aligned by characters");
  const title = h("div", "dnb-title", d.heading || `The same text (${chars.length} characters) in ${rows.length} results, aligned by characters`);
  title.tabIndex = -1;  // the playground moves the focus here when it opens a comparison
  const diff = d.diff && rows[d.diff.a] && rows[d.diff.b] ? d.diff : null;
  const runsOf = rows.map((r) => r.start.map(() => []));  // [row][token] -> the diff runs it holds
  if (diff) diff.runs.forEach(([, , ia, ib], k) => { runsOf[diff.a][ia].push(k); runsOf[diff.b][ib].push(k); });
  const keys = h("div", "dnb-cmp-keys");
  rows.forEach((r) => {
    const k = h("div", "dnb-cmp-key");
    k.append(h("span", "dnb-cmp-tag", r.tag), h("span", "", ` ${r.label} — ${r.tokens.length} tokens, mean density ${fmt(r.mean)}`));
    keys.appendChild(k);
  });
  const lines = h("div", "dnb-cmp-lines");
  const detail = h("div", "dnb-cmp-detail");
  detail.setAttribute("aria-live", "polite");
  const select = (name, value) => { model.set(name, value); model.save_changes(); };
  const scaleKey = scaleLegend(Object.keys((rows[0] || {}).measures || {}), select, [["", "no prediction"]]);
  const legend = scaleKey.el;
  const diffKey = diff ? gradientLegend("", "", "", "difference") : null;
  if (diffKey) {
    diffKey.legend.classList.add("dnb-diff-legend");
    diffKey.legend.removeAttribute("aria-hidden");
    diffKey.legend.setAttribute("role", "img");  // named by recolour: the scale in words
  }
  // scatter
  const scatter = h("div", "dnb-cmp-scatter");
  const pick = h("select", "dnb-cmp-pair");
  pick.setAttribute("aria-label", "Pair of results shown in the scatter plot");
  pick.setAttribute("data-lm-suppress-shortcuts", "true");
  pairs.forEach((p, i) => { const o = h("option", "", `${rows[p.a].tag} vs ${rows[p.b].tag}`); o.value = String(i); pick.appendChild(o); });
  pick.hidden = pairs.length < 2;
  const rho = h("div", "dnb-title dnb-cmp-rho");
  const S = 230, m0 = 34, pw = S - m0 - 10;
  const svg = s("svg", { viewBox: `0 0 ${S} ${S}`, class: "dnb-chart dnb-cmp-svg", role: "img" });
  const Xs = (v) => m0 + v * pw, Ys = (v) => S - m0 - v * pw;
  const gPts = s("g", { class: "dnb-cmp-pts" });
  svg.appendChild(s("line", { x1: Xs(0), y1: Ys(0), x2: Xs(1), y2: Ys(1), class: "dnb-gridline" }));
  for (const v of [0, 0.5, 1]) {
    svg.appendChild(s("line", { x1: Xs(v), x2: Xs(v), y1: Ys(0), y2: Ys(0) + 4, class: "dnb-axis" }));
    svg.appendChild(s("line", { x1: Xs(0) - 4, x2: Xs(0), y1: Ys(v), y2: Ys(v), class: "dnb-axis" }));
    const tx = s("text", { x: Xs(v), y: Ys(0) + 14, "text-anchor": "middle", class: "dnb-ticklabel" }); tx.textContent = String(v);
    const ty = s("text", { x: Xs(0) - 6, y: Ys(v) + 3, "text-anchor": "end", class: "dnb-ticklabel" }); ty.textContent = String(v);
    svg.append(tx, ty);
  }
  svg.appendChild(s("line", { x1: Xs(0), x2: Xs(1), y1: Ys(0), y2: Ys(0), class: "dnb-axis" }));
  svg.appendChild(s("line", { x1: Xs(0), x2: Xs(0), y1: Ys(0), y2: Ys(1), class: "dnb-axis" }));
  const xl = s("text", { x: Xs(0.5), y: S - 2, "text-anchor": "middle", class: "dnb-axislabel" });
  const yl = s("text", { x: 10, y: Ys(0.5), "text-anchor": "middle", class: "dnb-axislabel", transform: `rotate(-90 10 ${Ys(0.5)})` });
  svg.append(xl, yl, gPts);
  scatter.append(rho, pick, svg);
  const body = h("div", "dnb-row");
  const left = h("div", "dnb-cmp-left");
  left.append(keys, lines, legend, ...(diffKey ? [diffKey.legend] : []), detail);
  body.append(left, scatter);
  wrap.append(title, body);

  // per row: token -> its elements; char -> token index (empty spans hold no character)
  const charTok = rows.map((r) => {
    const a = new Int32Array(chars.length).fill(-1);
    r.start.forEach((st, i) => { for (let c = st; c < r.end[i]; c++) a[c] = i; });
    return a;
  });
  let tokEls = [];  // [row][token] -> elements (a token crossing a line break has two)
  let breaks = [];  // lines as [first, end) characters
  const x0 = new Float64Array(chars.length + 1);  // column of each character within its line
  const colOf = (c) => x0[c] - x0[breaks.find(([a1, b1]) => c >= a1 && c < b1)?.[0] ?? 0];
  const spanOf = (m, i) => (rows[m].end[i] > rows[m].start[i] ? [rows[m].start[i], rows[m].end[i]] : [Math.max(0, rows[m].start[i] - 1), rows[m].start[i]]);
  const focusables = (m) => tokEls[m].map((els) => els[0]).filter(Boolean);
  const choose = (el) => { const [a, b] = spanOf(Number(el.dataset.m), Number(el.dataset.i)); model.set(traits.span, [a, b]); model.save_changes(); };
  const tokenText = (m, i) => chars.slice(rows[m].start[i], rows[m].end[i]).join("");
  let sc = compareScale(model, rows);
  let ds = null;  // the differences shown (diffScale)
  let diffEls = [];  // [run] -> its elements (a run crossing a line break has two)
  /** Colour every token by the chosen measure, one scale for every row; the legend says which. */
  function recolour() {
    sc = compareScale(model, rows);
    ds = diffScale();
    tokEls.forEach((els, m) => els.forEach((list, i) => {
      const colours = sc.colours(rows[m], i);
      const delta = ds && runsOf[m][i].length ? `, Δ ${runsOf[m][i].map((k) => fmtDifference(ds.values[k], sc.measure)).join(" ")}` : "";
      for (const el of list) {
        if (!el.classList.contains("dnb-none")) [el.style.backgroundColor, el.style.color] = colours || ["", ""];
        el.setAttribute("aria-label", `${el.dataset.label}: ${measureSpec(sc.measure).short} ${fmtMeasure(sc.values(rows[m])[i], sc.measure)}${delta}`);
      }
    }));
    scaleKey.show(sc, `one scale for every row, ${scaleNote(sc)}; each token spans its characters; · space ↵ newline; click or press Enter on a token to select its characters in every row (↑/↓ move between rows)`);
    if (!ds) return;
    diffEls.forEach((els, k) => {
      const colours = mapColours("difference", differencePosition(ds.values[k], ds.half));
      for (const el of els) {
        el.classList.toggle("dnb-none", !colours);
        el.style.backgroundColor = colours ? colours[0] : "";
      }
    });
    const A = rows[diff.a], B = rows[diff.b], short = measureSpec(sc.measure).short;
    diffKey.text.textContent = `Δ = ${B.tag} − ${A.tag}, ${short}${measureSpec(sc.measure).scale === "log" ? " (decades)" : ""}`;
    diffKey.tickLo.textContent = fmtDifference(-ds.half, sc.measure);
    diffKey.tickHi.textContent = fmtDifference(ds.half, sc.measure);
    diffKey.legend.dataset.half = String(ds.half);
    diffKey.legend.setAttribute("aria-label", `Difference row: ${short} of ${B.tag} minus ${A.tag} per token, from ${fmtDifference(-ds.half, sc.measure)} to ${fmtDifference(ds.half, sc.measure)} (${sc.how === "fixed" ? "the measure's whole range" : "fitted to the differences shown"}); white: no change`);
  }
  /** The difference of each diff run in the measure shown and the half width of its diverging scale. */
  function diffScale() {
    if (!diff) return null;
    const va = sc.values(rows[diff.a]), vb = sc.values(rows[diff.b]);
    const values = diff.runs.map(([, , ia, ib]) => difference(va[ia], vb[ib], sc.measure));
    return { values, half: differenceRange(values, sc.measure, sc.how) };
  }

  function layout() {
    const probe = h("span", "dnb-cmp-probe", "0000000000");
    lines.appendChild(probe);
    const chPx = probe.getBoundingClientRect().width / 10 || 8;
    probe.remove();
    const cols = Math.max(12, Math.min(THEME.layout.compare_columns, Math.floor((lines.clientWidth || 600) / chPx) - 4));
    breaks = lineBreaks(chars, cw, cols, d.bk || "1".repeat(chars.length + 1));
    lines.replaceChildren();
    tokEls = rows.map((r) => r.start.map(() => []));
    diffEls = diff ? diff.runs.map(() => []) : [];
    for (const [a0, b0] of breaks) {
      let x = 0;
      for (let c = a0; c < b0; c++) { x0[c] = x; x += cw[c]; }
      x0[b0] = x;
      const block = h("div", "dnb-cmp-line");
      rows.forEach((r, m) => {
        const row = h("div", "dnb-cmp-row");
        row.setAttribute("role", "listbox");
        row.setAttribute("aria-label", `${r.label}: tokens of characters ${a0}–${b0}`);
        row.style.width = `${x + 0.5}ch`;
        const gutter = h("span", "dnb-cmp-tag", r.tag);
        gutter.setAttribute("aria-hidden", "true");
        block.appendChild(gutter);
        for (let i = 0; i < r.start.length; i++) {
          const st = r.start[i], en = r.end[i];
          const zero = en === st;
          if (zero ? !(st >= a0 && (st < b0 || (st === b0 && b0 === chars.length))) : en <= a0 || st >= b0) continue;
          const lo = Math.max(st, a0), hi = Math.min(en, b0);
          const el = h("span", zero ? "dnb-ctok dnb-ctok-zero" : "dnb-ctok");
          el.style.left = `${x0[lo]}ch`;
          if (!zero) {
            el.style.width = `${x0[hi] - x0[lo]}ch`;
            el.textContent = chars.slice(lo, hi).map(showChar).join("");
          }
          if (r.density[i] === null) el.classList.add("dnb-none");
          el.dataset.m = String(m);
          el.dataset.i = String(i);
          el.tabIndex = -1;
          el.setAttribute("role", "option");
          el.setAttribute("aria-selected", "false");
          el.setAttribute("data-lm-suppress-shortcuts", "true");
          el.dataset.label = `${r.tag} token ${i} ${zero ? (r.tokens[i] ? `(special ${showText(r.tokens[i])})` : "(rest of a character)") : showText(tokenText(m, i))}`;
          tokEls[m][i].push(el);
          row.appendChild(el);
        }
        const mark = h("span", "dnb-cmp-span");  // outlines the selected characters on this line
        mark.setAttribute("aria-hidden", "true");
        mark.dataset.a = String(a0);
        mark.dataset.b = String(b0);
        row.appendChild(mark);
        block.appendChild(row);
      });
      if (diff) {  // the difference row: one box per run of characters one token of each result holds
        const gutter = h("span", "dnb-cmp-tag dnb-cmp-dtag", "Δ");
        const row = h("div", "dnb-cmp-row dnb-cmp-drow");
        gutter.setAttribute("aria-hidden", "true");
        row.setAttribute("aria-hidden", "true");  // each token's label and tooltip say its difference
        row.style.width = `${x0[b0] + 0.5}ch`;
        diff.runs.forEach(([st, en], k) => {
          if (en <= a0 || st >= b0) return;
          const lo = Math.max(st, a0), hi = Math.min(en, b0);
          const el = h("span", "dnb-dtok");
          el.style.left = `${x0[lo]}ch`;
          el.style.width = `${x0[hi] - x0[lo]}ch`;
          el.dataset.k = String(k);
          diffEls[k].push(el);
          row.appendChild(el);
        });
        block.append(gutter, row);
      }
      lines.appendChild(block);
    }
    rows.forEach((_, m) => { const f = focusables(m); if (f.length) f[0].tabIndex = 0; });
    recolour();
    selectSpan();
  }

  lines.addEventListener("click", (e) => { const t = e.target.closest(".dnb-ctok"); if (t) choose(t); });
  const tipLines = (el) => {
    const m = Number(el.dataset.m), i = Number(el.dataset.i), r = rows[m];
    const text = r.end[i] > r.start[i] ? `“${showText(tokenText(m, i))}”` : r.tokens[i] ? `special token “${showText(r.tokens[i])}”` : `${CONTINUATION} rest of the character before`;
    const lines2 = [`${r.tag} ${r.label}: ${text} — token ${i}, characters ${r.start[i]}–${r.end[i]}`];
    lines2.push(r.density[i] === null ? "no prediction traced for this token" : `density ${fmt(r.density[i])}   s_top1 ${fmtS(r.s_top1[i])}`);
    if (ds) for (const k of runsOf[m][i]) lines2.push(diffLine(k));
    return lines2;
  };
  /** A diff run's difference, as its tooltip and its tokens' tooltips say it. */
  const diffLine = (k) => {
    const [st, en, ia, ib] = diff.runs[k], A = rows[diff.a], B = rows[diff.b];
    const va = sc.values(A)[ia], vb = sc.values(B)[ib], f = (v) => fmtMeasure(v, sc.measure);
    const on = `Δ ${measureSpec(sc.measure).short} on “${showText(chars.slice(st, en).join(""))}”`;
    if (ds.values[k] === null) return `${on}: none (no prediction traced in ${va === null || va === undefined ? A.tag : B.tag})`;
    return `${on}: ${fmtDifference(ds.values[k], sc.measure)} (${B.tag} ${f(vb)} − ${A.tag} ${f(va)})`;
  };
  // the tooltip goes under the line's block of rows, where it hides no row of the line (nor the selection there)
  const showTip = (t) => tip.show(t, tipLines(t), t.closest(".dnb-cmp-line"));
  lines.addEventListener("mouseover", (e) => {
    const t = e.target.closest(".dnb-ctok");
    if (t) showTip(t);
    const dt = e.target.closest(".dnb-dtok");
    if (dt && ds) tip.show(dt, [diffLine(Number(dt.dataset.k))], dt.closest(".dnb-cmp-line"));
  });
  lines.addEventListener("mouseout", (e) => { if (e.target.closest(".dnb-ctok, .dnb-dtok")) tip.hide(); });
  lines.addEventListener("focusin", (e) => { const t = e.target.closest(".dnb-ctok"); if (t) showTip(t); });
  lines.addEventListener("focusout", () => tip.hide());
  // keys: ←/→ the row's previous/next token, ↑/↓ the token of the row above/below at the same character
  lines.addEventListener("keydown", (e) => {
    const el = e.target.closest(".dnb-ctok");
    if (!el) return;
    const m = Number(el.dataset.m), i = Number(el.dataset.i);
    let target = null;
    if (e.key === "Enter" || e.key === " " || e.key === "Spacebar") { e.preventDefault(); choose(el); return; }
    if (e.key === "ArrowRight" || e.key === "ArrowLeft" || e.key === "Home" || e.key === "End") {
      const f = focusables(m), at = f.indexOf(tokEls[m][i][0]);
      const j = e.key === "Home" ? 0 : e.key === "End" ? f.length - 1 : e.key === "ArrowRight" ? Math.min(f.length - 1, at + 1) : Math.max(0, at - 1);
      target = f[j];
    } else if (e.key === "ArrowUp" || e.key === "ArrowDown") {
      const m2 = e.key === "ArrowDown" ? Math.min(rows.length - 1, m + 1) : Math.max(0, m - 1);
      const c = Math.min(chars.length - 1, spanOf(m, i)[0]);
      let j = c >= 0 ? charTok[m2][c] : -1;
      if (j < 0) j = 0;
      target = tokEls[m2][j]?.[0];
    } else return;
    e.preventDefault();
    if (!target) return;
    for (const els of tokEls[Number(target.dataset.m)]) for (const x of els) x.tabIndex = -1;  // one tab stop per row
    target.tabIndex = 0;
    target.focus();
  });

  let pair = 0;
  let ptEls = [];
  function drawScatter() {
    gPts.replaceChildren();
    ptEls = [];
    const p = pairs[pair];
    if (!p) { rho.textContent = "Needs at least two results."; return; }
    const A = rows[p.a], B = rows[p.b];
    xl.textContent = `density, ${A.tag} (${A.label})`.slice(0, 60);
    yl.textContent = `density, ${B.tag} (${B.label})`.slice(0, 60);
    rho.textContent = `Spearman ρ = ${fmt(p.rho, 2)} over ${p.n} characters`;
    svg.setAttribute("aria-label", `Per-character density of ${A.label} (x) against ${B.label} (y): Spearman rho ${fmt(p.rho, 2)} over ${p.n} characters, ${p.points.length} spans`);
    for (const [x, y, a, b] of p.points) {
      const c = s("circle", { cx: Xs(x).toFixed(1), cy: Ys(y).toFixed(1), r: (1.6 + Math.sqrt(b - a)).toFixed(1), class: "dnb-cmp-pt" });
      c.dataset.a = String(a);
      c.dataset.b = String(b);
      gPts.appendChild(c);
      ptEls.push(c);
    }
    selectSpan();
  }
  pick.addEventListener("change", () => { pair = Number(pick.value) || 0; drawScatter(); });
  gPts.addEventListener("click", (e) => { const c = e.target.closest(".dnb-cmp-pt"); if (c) { model.set(traits.span, [Number(c.dataset.a), Number(c.dataset.b)]); model.save_changes(); } });
  gPts.addEventListener("mouseover", (e) => {
    const c = e.target.closest(".dnb-cmp-pt");
    if (!c) return;
    const a = Number(c.dataset.a), b = Number(c.dataset.b), p = pairs[pair];
    const pt = p.points.find((q) => q[2] === a && q[3] === b);
    tip.show(c, [`“${showText(chars.slice(a, b).join(""))}” (characters ${a}–${b})`, `${rows[p.a].tag} ${fmt(pt[0])}   ${rows[p.b].tag} ${fmt(pt[1])}`]);
  });
  gPts.addEventListener("mouseout", () => tip.hide());

  function selectSpan() {
    const [a, b] = model.get(traits.span) || [0, 0];
    const has = b > a;
    for (const mark of lines.querySelectorAll(".dnb-cmp-span")) {
      const a0 = Number(mark.dataset.a), b0 = Number(mark.dataset.b);
      const lo = Math.max(a, a0), up = Math.min(b, b0);
      mark.hidden = !(has && up > lo);
      if (!mark.hidden) { mark.style.left = `${colOf(lo)}ch`; mark.style.width = `${colOf(up - 1) - colOf(lo) + cw[up - 1]}ch`; }
    }
    const parts = [];
    rows.forEach((r, m) => {
      const hit = [];
      tokEls[m].forEach((els, i) => {
        const [ta, tb] = spanOf(m, i);
        const on = has && ta < b && tb > a;
        for (const el of els) { el.classList.toggle("dnb-sel", on); el.setAttribute("aria-selected", String(on)); }
        if (on) hit.push(i);
      });
      if (has) {
        const toks = hit.map((i) => (r.end[i] > r.start[i] ? `“${showText(tokenText(m, i))}”` : CONTINUATION));
        const dens = hit.map((i) => fmt(r.density[i]));
        parts.push(`${r.tag}: ${hit.length} token${hit.length === 1 ? "" : "s"} ${toks.join(" ")} — density ${dens.join(", ")}`);
      }
    });
    detail.textContent = has ? `Selected “${showText(chars.slice(a, b).join(""))}” (characters ${a}–${b}). ${parts.join("; ")}.` : "Click a token (or press Enter on it) to select its characters in every row.";
    for (const c of ptEls) {
      const on = has && Number(c.dataset.a) < b && Number(c.dataset.b) > a;
      c.classList.toggle("dnb-cmp-pt-sel", on);
      if (on) c.parentNode.appendChild(c);  // draw on top
    }
  }
  return {
    el: wrap,
    tip: tip.el,  // placed beside the part (outside its layout containment), positioned against the widget's root
    mount() {
      layout();
      drawScatter();
      if (typeof ResizeObserver !== "undefined") {
        let width = lines.clientWidth;
        const ro = new ResizeObserver(() => { if (Math.abs(lines.clientWidth - width) > 4) { width = lines.clientWidth; layout(); } });
        ro.observe(lines);
        return () => ro.disconnect();
      }
      return () => {};
    },
    update(what) { if (what === "measure" || what === "colour_scale") recolour(); else selectSpan(); },
    on: ["span", "measure", "colour_scale"],
  };
}

// ---- render -------------------------------------------------------------------------------------------
/** A selector that finds the focused element of ``container`` again after a rebuild (token position or label). */
function focusKey(container) {
  const e = document.activeElement;
  if (!e || !container.contains(e)) return null;
  if (e.dataset.pos !== undefined) return `.dnb-strip [data-pos="${e.dataset.pos}"]`;
  const label = e.getAttribute("aria-label");
  return label ? `[aria-label="${CSS.escape(label)}"]` : null;
}

/** Draw the view named by the `view` trait into ``el``; returns its cleanup. */
function draw(model, el) {
  const root = h("div", "dnb");
  // keys pressed inside the widget (arrows, Home/End, Enter, Space) are ours, not JupyterLab's shortcuts
  // (Lumino matches selectors such as ".jp-Notebook.jp-mod-commandMode :focus" on the focused element
  // itself, so every focusable element of ours carries the attribute too.)
  root.setAttribute("data-lm-suppress-shortcuts", "true");
  // JupyterLab's document-level handler still cancels plain arrow keys (notebook navigation), which
  // would stop the native range input from moving: keep unmodified navigation keys inside the widget.
  const OWN_KEYS = new Set(["ArrowLeft", "ArrowRight", "ArrowUp", "ArrowDown", "Home", "End", "PageUp", "PageDown", "Enter", " "]);
  const keepKeys = (e) => {
    if (OWN_KEYS.has(e.key) && !e.shiftKey && !e.ctrlKey && !e.altKey && !e.metaKey) e.stopPropagation();
  };
  root.addEventListener("keydown", keepKeys);
  el.appendChild(root);
  // The live view's progress bar and Cancel button stay while the explorer below them is rebuilt after
  // every step (so a focused Cancel button keeps its focus).
  const status = model.get("view") === "live" ? makeStatus(model) : null;
  // The playground's controls stay too (typing and focus are kept), and its comparison sits under its explorer.
  const pg = model.get("view") === "playground" ? makePlayground(model) : null;
  const body = h("div", "dnb-body");
  if (status) root.appendChild(status.el);
  if (pg) root.appendChild(pg.el);
  root.appendChild(body);
  const cmpBox = pg ? root.appendChild(h("div", "dnb-pg-comparison")) : null;
  let cmpPart = null;
  let cmpUnmount = () => {};
  const buildComparison = () => {
    cmpUnmount();
    cmpUnmount = () => {};
    cmpPart = null;
    cmpBox.replaceChildren();
    if (!(model.get("comparison") || {}).rows) return;
    const close = button("dnb-btn dnb-pg-close", "Close comparison", "Close the comparison");
    close.addEventListener("click", () => model.send({ type: "close_comparison" }));
    const cmp = makeCompare(model, root, { data: "comparison", span: "compare_span" });
    const head = h("div", "dnb-pg-cmphead");
    head.appendChild(close);
    cmpBox.append(head, cmp.el, cmp.tip);
    cmpUnmount = cmp.mount();
    cmpPart = cmp;
    if (pg.takeCompareFocus()) cmp.el.querySelector(".dnb-title").focus();
  };
  // Save as SVG / PNG (static/common.js): the view as it is shown. Last in the tab order: the keys reach the
  // view's own controls first.
  const tools = h("div", "dnb-export");
  tools.appendChild(h("span", "dnb-controls-label", "save view as"));
  root.appendChild(tools);
  addExportButtons(tools, root, `density_nb-${model.get("view") || "explorer"}`);
  let parts = [];
  let unmount = () => {};
  const build = () => {
    const focused = focusKey(body);  // a live view rebuilds on every step: keep keyboard focus where it was
    unmount();
    unmount = () => {};
    body.replaceChildren();
    const view = model.get("view") || "explorer";
    root.dataset.view = view;
    parts = status ? [status] : [];
    if (view === "compare") {
      const cmp = makeCompare(model, root);
      body.append(cmp.el, cmp.tip);
      unmount = cmp.mount();
      parts.push(cmp);
      return;
    }
    const ctx = makeContext(model, root);
    const growing = view === "live" || view === "playground";
    const all = view === "explorer" || (growing && ctx.R > 0);
    if (all || view === "strip" || view === "live" || (view === "playground" && ctx.tokens.length)) parts.push(makeStrip(ctx));
    if (view === "playground" && !ctx.tokens.length) {
      body.appendChild(h("div", "dnb-pg-empty", "Type a text above and press Trace: its tokens appear here, each coloured once the prediction of it is traced."));
    }
    if (all || view === "slider") parts.push(makeSlider(ctx));
    if (all || view === "preview") parts.push(makePreview(ctx));
    if (all || view === "grid") parts.push(makeGrid(ctx));
    const row = h("div", "dnb-row");
    for (const p of parts) {
      if (p === status) continue;
      if (p.el.classList.contains("dnb-strip-part")) body.appendChild(p.el);
      else row.appendChild(p.el);
    }
    if (row.childElementCount) body.appendChild(row);
    body.appendChild(ctx.tip.el);
    const unmounts = parts.filter((p) => p.mount).map((p) => p.mount());
    unmount = () => { for (const u of unmounts) u(); };
    for (const p of parts) p.update("all");
    if (focused) body.querySelector(focused)?.focus();
  };
  const update = (what) => () => { for (const p of [...parts, ...(cmpPart ? [cmpPart] : [])]) if (p.on.includes(what)) p.update(what); };
  const listeners = [
    ["change:root", update("root")], ["change:stratum", update("stratum")], ["change:metric", update("metric")],
    ["change:scale", update("scale")], ["change:span", update("span")], ["change:status", update("status")],
    ["change:measure", update("measure")], ["change:colour_scale", update("colour_scale")],
    ["change:data", build], ["change:shares", build], ["change:view", build],
    ...(pg ? [["change:comparison", buildComparison], ["change:compare_span", () => cmpPart?.update("span")]] : []),
  ];
  for (const [event, fn] of listeners) model.on(event, fn);
  build();
  if (pg) buildComparison();
  return () => {
    for (const [event, fn] of listeners) model.off(event, fn);
    unmount();
    cmpUnmount();
    pg?.dispose();
    root.remove();
  };
}

/** anywidget's render: the view, drawn again when static/common.js or the theme is saved (hot reload). */
async function render({ model, el }) {
  await loadCommon(model);
  let cleanup = draw(model, el);
  const reload = async () => { if (await loadCommon(model)) { cleanup(); cleanup = draw(model, el); } };
  model.on("change:_common change:_theme", reload);
  return () => { model.off("change:_common change:_theme", reload); cleanup(); };
}

export default { render };
