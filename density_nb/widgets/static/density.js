// density_nb widgets: token strip, s-slider with TV/KL curve, layer × head grid, and the linked explorer.
// Plain ESM, no dependencies, no network. Text from the data is only ever set with textContent.
// Model traits: view ("explorer" | "strip" | "slider" | "grid"), data (dict), shares (bytes,
// uint8 percent [R, K, L, H + 1], column H = MLP), root (token position), stratum (grid index), metric ("tv" | "kl").

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
// 101 precomputed share colours (percent → css) so a slider move only assigns strings.
const SHARE_BG = Array.from({ length: 101 }, (_, p) => rgb(interp(CIVIDIS, p / 100)));

// ---- formatting -------------------------------------------------------------------------------
const fmt = (x, d = 3) => (x === null || x === undefined || !Number.isFinite(x) ? "–" : Number(x.toPrecision(d)).toString());
const fmtS = (s) => {
  if (s === null || s === undefined || !Number.isFinite(s)) return "–";
  if (s >= 0.01) return Number(s.toPrecision(3)).toString();
  const [m, e] = s.toExponential(1).split("e");
  return `${m}e${Number(e)}`;
};
const fmtInt = (n) => (Number.isFinite(n) ? Math.round(n).toLocaleString("en-US") : "–");
// A token whose text is "" continues a character split over several tokens (the first shows it).
const CONTINUATION = "◌";
// Visible whitespace: "·" for spaces, "→" for tabs, "↵" for newlines (the line break follows the token).
function showText(s) {
  if (s === "") return `${CONTINUATION} (rest of the character before)`;
  return String(s).replace(/ /g, "·").replace(/\t/g, "→").replace(/\r?\n/g, "↵")
    .replace(/[\u0000-\u001f\u007f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`);
}

// ---- tiny DOM helpers (text is always set with textContent) --------------------------------------
function h(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

/** A colour-bar legend: label, low tick, gradient, high tick (decorative: numbers are in tooltips). */
function gradientLegend(label, lo, hi, stops) {
  const legend = h("div", "dnb-legend");
  legend.setAttribute("aria-hidden", "true");
  legend.appendChild(h("span", "dnb-legend-label", label));
  legend.appendChild(h("span", "dnb-legend-tick", lo));
  const bar = h("span", "dnb-legend-bar");
  bar.style.backgroundImage = gradientCss(stops);
  legend.appendChild(bar);
  legend.appendChild(h("span", "dnb-legend-tick", hi));
  return legend;
}
function s(tag, attrs) {
  const e = document.createElementNS(SVG, tag);
  if (attrs) for (const k in attrs) e.setAttribute(k, attrs[k]);
  return e;
}

// ---- shared state --------------------------------------------------------------------------------
function makeContext(model, rootEl) {
  const d = model.get("data") || {};
  const tokens = d.tokens || [];
  const roots = d.roots || [];
  const grid = d.grid || [];
  const R = roots.length, K = grid.length, L = d.n_layers || 0, H = d.n_heads || 0;
  const rootIndex = new Map(roots.map((r, i) => [r, i]));
  let shares = model.get("shares");
  if (shares && !(shares instanceof Uint8Array)) {
    if (shares instanceof DataView) shares = new Uint8Array(shares.buffer, shares.byteOffset, shares.byteLength);
    else if (shares instanceof ArrayBuffer) shares = new Uint8Array(shares);
    else if (shares.buffer instanceof ArrayBuffer) shares = new Uint8Array(shares.buffer, shares.byteOffset || 0, shares.byteLength);
    else shares = null;
  }
  if (shares && shares.length !== R * K * L * (H + 1)) shares = null;
  const tip = h("div", "dnb-tip");
  tip.setAttribute("role", "tooltip");
  tip.hidden = true;
  rootEl.appendChild(tip);
  const ctx = {
    model, d, tokens, roots, grid, R, K, L, H, rootIndex, shares, tip,
    logGrid: grid.map((g) => Math.log10(Math.max(g, 1e-12))),
    rootIdx() {
      const i = rootIndex.get(model.get("root"));
      return i === undefined ? (R ? 0 : -1) : i;
    },
    stratum() { return Math.min(Math.max(0, model.get("stratum") | 0), Math.max(0, K - 1)); },
    metric() { return model.get("metric") === "kl" ? "kl" : "tv"; },
    select(name, value, save = true) {
      model.set(name, value);
      if (save) model.save_changes();
    },
    tokenLabel(pos) { return pos >= 0 && pos < tokens.length ? `“${showText(tokens[pos])}”` : "(end of text)"; },
    showTip(target, lines) {
      tip.replaceChildren();
      lines.forEach((line, i) => tip.appendChild(h("div", i === 0 ? "dnb-tip-head" : "", line)));
      tip.hidden = false;
      const box = rootEl.getBoundingClientRect();
      const t = target.getBoundingClientRect();
      const w = tip.offsetWidth;
      let left = t.left - box.left + t.width / 2 - w / 2;
      left = Math.max(0, Math.min(left, box.width - w));
      tip.style.left = `${left}px`;
      tip.style.top = `${t.bottom - box.top + 6}px`;
    },
    hideTip() { tip.hidden = true; },
  };
  return ctx;
}

// ---- TokenStrip -------------------------------------------------------------------------------------
function makeStrip(ctx) {
  const { d, tokens, roots, rootIndex } = ctx;
  const wrap = h("section", "dnb-part dnb-strip-part");
  wrap.setAttribute("aria-label", "Token strip");
  const strip = h("div", "dnb-strip");
  strip.setAttribute("role", "listbox");
  strip.setAttribute("aria-label", "Tokens coloured by the computation density of the step that predicts them; arrow keys move, Enter selects");
  const els = [];
  const predicting = []; // token position -> root index that predicts it (root position = token − 1), or -1
  const focusable = [];
  for (let i = 0; i < tokens.length; i++) {
    const ri = rootIndex.has(i - 1) ? rootIndex.get(i - 1) : -1;
    predicting.push(ri);
    const span = h("span", "dnb-tok");
    span.dataset.pos = String(i);
    const text = tokens[i];
    if (!text.length) {
      span.classList.add("dnb-cont");
      span.appendChild(h("span", "dnb-ws", CONTINUATION));
    }
    for (const part of text.split(/(\s)/)) {
      if (!part) continue;
      if (part === " ") span.appendChild(h("span", "dnb-ws", "·"));
      else if (part === "\t") span.appendChild(h("span", "dnb-ws", "→"));
      else if (part === "\n") span.appendChild(h("span", "dnb-ws", "↵"));
      else if (part === "\r") continue;
      else if (/\s/.test(part)) span.appendChild(h("span", "dnb-ws", "␣"));
      else span.appendChild(document.createTextNode(part));
    }
    const dens = ri >= 0 ? d.density[ri] : null;
    if (ri >= 0 && dens !== null && Number.isFinite(dens)) {
      const c = interp(VIRIDIS, dens);
      span.style.backgroundColor = rgb(c);
      span.style.color = luminance(c) > 0.22 ? "#111" : "#fff";
      span.classList.add("dnb-pred");
      span.setAttribute("role", "option");
      span.setAttribute("aria-selected", "false");
      span.setAttribute("aria-label", `token ${i} ${showText(text)}: density ${fmt(dens)}`);
      span.tabIndex = -1;
      span.setAttribute("data-lm-suppress-shortcuts", "true");
      focusable.push(span);
    } else {
      span.classList.add("dnb-none");
      span.setAttribute("aria-hidden", "true");
    }
    els.push(span);
    // line breaks: a token that starts with newlines starts a new line; other newlines break after it
    const lead = (text.match(/^\s*?\n/) ? 1 : 0);
    const newlines = (text.match(/\n/g) || []).length - lead;
    if (lead && i > 0) strip.appendChild(document.createElement("br"));
    strip.appendChild(span);
    for (let k = 0; k < newlines; k++) strip.appendChild(document.createElement("br"));
  }
  // A root at the last position predicts past the text: show it as a trailing "next" marker.
  const lastRi = rootIndex.has(tokens.length - 1) ? rootIndex.get(tokens.length - 1) : -1;
  let after = null;
  if (lastRi >= 0) {
    after = h("span", "dnb-next", "⋯");
    after.dataset.pos = String(tokens.length);
    const c = interp(VIRIDIS, d.density[lastRi]);
    if (c) { after.style.backgroundColor = rgb(c); after.style.color = luminance(c) > 0.22 ? "#111" : "#fff"; }
    after.setAttribute("role", "option");
    after.setAttribute("aria-selected", "false");
    after.setAttribute("aria-label", `prediction after the text: density ${fmt(d.density[lastRi])}`);
    after.tabIndex = -1;
    after.setAttribute("data-lm-suppress-shortcuts", "true");
    focusable.push(after);
    strip.appendChild(after);
  }
  const riOf = (el) => { const p = Number(el.dataset.pos); return p < tokens.length ? predicting[p] : lastRi; };

  const tipLines = (el) => {
    const p = Number(el.dataset.pos);
    const ri = riOf(el);
    if (ri < 0) return [`${ctx.tokenLabel(p)} (token ${p})`, "no prediction traced for this token"];
    const lines = [p < tokens.length ? `${ctx.tokenLabel(p)} — token ${p}, predicted at step ${roots[ri]}` : `after the text — predicted at step ${roots[ri]}`];
    lines.push(`density ${fmt(d.density[ri])}   s_top1 ${fmtS(d.s_top1[ri])}`);
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
  strip.addEventListener("keydown", (e) => {
    const cur = e.target.closest(".dnb-pred, .dnb-next");
    if (!cur) return;
    const i = focusable.indexOf(cur);
    let j = -1;
    if (e.key === "ArrowRight" || e.key === "ArrowDown") j = Math.min(focusable.length - 1, i + 1);
    else if (e.key === "ArrowLeft" || e.key === "ArrowUp") j = Math.max(0, i - 1);
    else if (e.key === "Home") j = 0;
    else if (e.key === "End") j = focusable.length - 1;
    else if (e.key === "Enter" || e.key === " " || e.key === "Spacebar") { e.preventDefault(); choose(cur); return; }
    else return;
    e.preventDefault();
    cur.tabIndex = -1;
    focusable[j].tabIndex = 0;
    focusable[j].focus();
  });

  const legend = gradientLegend("density", "0", "1", VIRIDIS);
  legend.appendChild(h("span", "dnb-legend-sep", ""));
  legend.appendChild(h("span", "dnb-legend-swatch", "abc"));
  legend.appendChild(h("span", "dnb-legend-label", "no prediction"));
  legend.appendChild(h("span", "dnb-legend-note", "· space  ↵ newline — colour = density of the step predicting the token (hover for numbers)"));
  const mean = d.density && d.density.length ? d.density.filter(Number.isFinite).reduce((a, b) => a + b, 0) / d.density.filter(Number.isFinite).length : NaN;
  const head = h("div", "dnb-title", `${d.model || "model"} · ${tokens.length} tokens · ${roots.length} steps · mean density ${fmt(mean)}`);
  wrap.append(head, strip, legend);

  let selected = null;
  function update() {
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
  if (focusable.length) focusable[0].tabIndex = 0;
  return { el: wrap, update, strip };
}

// ---- SubgraphSlider -------------------------------------------------------------------------------
function makeSlider(ctx) {
  const { d, roots, grid, K, tokens, logGrid } = ctx;
  const wrap = h("section", "dnb-part dnb-slider-part");
  wrap.setAttribute("aria-label", "Subgraph size");
  const title = h("div", "dnb-title");
  const controls = h("div", "dnb-controls");
  const group = h("div", "dnb-toggle");
  group.setAttribute("role", "group");
  group.setAttribute("aria-label", "Distance shown in the chart");
  const btn = {};
  for (const [m, label, desc] of [["tv", "TV", "total variation distance"], ["kl", "KL", "KL divergence (full ‖ subgraph)"]]) {
    const b = h("button", "dnb-btn", label);
    b.type = "button";
    b.setAttribute("data-lm-suppress-shortcuts", "true");
    b.title = desc;
    b.setAttribute("aria-label", `Show ${desc}`);
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
  const gBands = s("g", { class: "dnb-bands" });
  const gAxes = s("g", { class: "dnb-axes" });
  const gY = s("g", { class: "dnb-yaxis" });
  const sTop = s("line", { class: "dnb-stop1", y1: mt - 4, y2: mt + ph });
  const sTopLabel = s("text", { class: "dnb-stop1-label", y: mt - 6, "text-anchor": "start" });
  const pathRand = s("path", { class: "dnb-curve-random" });
  const path = s("path", { class: "dnb-curve" });
  const gDots = s("g", { class: "dnb-dots" });
  const marker = s("line", { class: "dnb-marker", y1: mt, y2: mt + ph });
  const markerDot = s("circle", { class: "dnb-marker-dot", r: 4.5 });
  svg.append(gBands, gAxes, gY, sTop, sTopLabel, pathRand, path, gDots, marker, markerDot);
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

  const legend = h("div", "dnb-chart-legend");
  legend.setAttribute("aria-hidden", "true");
  const li = (cls, text) => { const e = h("span", "dnb-li"); e.append(h("span", `dnb-key ${cls}`), h("span", "", text)); return e; };
  const liRandom = li("dnb-key-random", "random subgraph");
  legend.append(li("dnb-key-curve", "traced subgraph"), liRandom, li("dnb-key-band", "top-1 agrees"), li("dnb-key-stop1", "s_top1"), li("dnb-key-marker", "current s"));

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
  function drawCurve() {
    ri = ctx.rootIdx();
    metric = ctx.metric();
    btn.tv.setAttribute("aria-pressed", String(metric === "tv"));
    btn.kl.setAttribute("aria-pressed", String(metric === "kl"));
    gBands.replaceChildren(); gY.replaceChildren(); gDots.replaceChildren();
    if (ri < 0) { path.setAttribute("d", ""); pathRand.setAttribute("d", ""); title.textContent = "no roots"; return; }
    const pos = roots[ri];
    title.textContent = `Step ${pos}: after ${ctx.tokenLabel(pos)} → predicts ${ctx.tokenLabel(pos + 1)}; full model's top: “${showText(d.top_token[ri] ?? "")}”`;
    ys = (d[metric] || [])[ri] || [];
    const rand = d[`${metric}_random`] ? d[`${metric}_random`][ri] : null;
    let ymax = 1;
    if (metric === "kl") {
      ymax = Math.max(1e-6, ...ys.filter(Number.isFinite), ...(rand || []).filter(Number.isFinite));
      const mag = Math.pow(10, Math.floor(Math.log10(ymax)));
      ymax = Math.ceil(ymax / mag * 2) / 2 * mag;
    }
    Y = (v) => mt + ph - (Math.min(Math.max(v, 0), ymax) / ymax) * ph;
    yl.textContent = metric === "tv" ? "TV distance" : "KL (nats)";
    for (const v of [0, ymax / 2, ymax]) {
      gY.appendChild(s("line", { x1: ml - 4, x2: ml + pw, y1: Y(v), y2: Y(v), class: v === 0 ? "dnb-axis" : "dnb-gridline" }));
      const t = s("text", { x: ml - 6, y: Y(v) + 3.5, "text-anchor": "end", class: "dnb-ticklabel" });
      t.textContent = fmt(v, 2);
      gY.appendChild(t);
    }
    // top-1 agreement bands, one per grid point spanning half-way to its neighbours
    const bits = d.top1[ri] || "";
    for (let k = 0; k < K; k++) {
      if (bits[k] !== "1") continue;
      const x0 = X(k ? (logGrid[k - 1] + logGrid[k]) / 2 : logGrid[0]);
      const x1 = X(k < K - 1 ? (logGrid[k] + logGrid[k + 1]) / 2 : logGrid[K - 1]);
      gBands.appendChild(s("rect", { x: x0, y: mt, width: Math.max(0.5, x1 - x0), height: ph, class: "dnb-band" }));
    }
    const st = d.s_top1[ri];
    if (st !== null && Number.isFinite(st)) {
      const x = X(Math.log10(st));
      sTop.setAttribute("x1", x); sTop.setAttribute("x2", x); sTop.style.display = "";
      sTopLabel.setAttribute("x", x + 3); sTopLabel.textContent = `s_top1 ${fmtS(st)}`; sTopLabel.style.display = "";
      if (x > ml + pw - 70) { sTopLabel.setAttribute("text-anchor", "end"); sTopLabel.setAttribute("x", x - 3); } else sTopLabel.setAttribute("text-anchor", "start");
    } else { sTop.style.display = "none"; sTopLabel.style.display = "none"; }
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
    path.setAttribute("d", line(ys));
    pathRand.setAttribute("d", rand ? line(rand) : "");
    liRandom.style.display = rand ? "" : "none";
    for (let k = 0; k < K; k++) {
      if (!Number.isFinite(ys[k])) continue;
      gDots.appendChild(s("circle", { cx: X(logGrid[k]).toFixed(1), cy: Y(ys[k]).toFixed(1), r: 1.8, class: "dnb-dot" }));
    }
    svg.setAttribute("aria-label", `${metric === "tv" ? "TV" : "KL"} versus log subgraph size for step ${pos}; top-1 first agrees at s = ${fmtS(st)}`);
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
    let text = `s = ${fmtS(grid[k])}, |S| = ${fmtInt(ne)} of ${fmtInt(te)} edges, TV = ${fmt(tv)}, KL = ${fmt(kl)}, top-1 ${ok ? "✓" : "✗"}`;
    if (d.tv_random) text += ` (random subgraph: TV = ${fmt(d.tv_random[ri][k])})`;
    readout.textContent = text;
    input.setAttribute("aria-valuetext", `s = ${fmtS(grid[k])}, ${fmtInt(ne)} edges, TV ${fmt(tv)}, KL ${fmt(kl)}, top-1 ${ok ? "agrees" : "differs"}`);
  }
  function update(what) {
    if (what !== "stratum") drawCurve();
    drawMarker();
  }
  return { el: wrap, update, input };
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
    return { el: wrap, update() {} };
  }
  const table = h("div", "dnb-grid");
  table.setAttribute("role", "img");
  table.style.gridTemplateColumns = `auto repeat(${H}, var(--dnb-cell)) calc(var(--dnb-cell) + 6px) 56px`;
  const hdr = (t, cls = "") => { const e = h("div", `dnb-gh ${cls}`, t); return e; };
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
  const legend = gradientLegend("share of edges included", "0%", "100%", CIVIDIS);
  const lk = h("span", "dnb-li");
  lk.append(h("span", "dnb-key dnb-key-attn"), h("span", "", "attention (mean of heads)"));
  const lm = h("span", "dnb-li");
  lm.append(h("span", "dnb-key dnb-key-mlp"), h("span", "", "MLP"));
  legend.append(lk, lm);
  wrap.append(table, legend);

  const base = () => (ctx.rootIdx() * K + ctx.stratum()) * L * (H + 1);
  table.addEventListener("mouseover", (e) => {
    const c = e.target.closest(".dnb-cell, .dnb-bars");
    if (!c) return;
    const l = Number(c.dataset.l), o = base() + l * (H + 1);
    const k = ctx.stratum();
    if (c.classList.contains("dnb-bars")) {
      let sum = 0;
      for (let j = 0; j < H; j++) sum += shares[o + j];
      ctx.showTip(c, [`layer ${l} at s = ${fmtS(grid[k])}`, `attention: ${fmt(sum / H)}% of head edges (mean of ${H} heads)`, `MLP: ${shares[o + H]}% of its edges`]);
    } else {
      const j = Number(c.dataset.h);
      ctx.showTip(c, [j === H ? `layer ${l}, MLP` : `layer ${l}, head ${j}`, `${shares[o + j]}% of its edges included at s = ${fmtS(grid[k])}`]);
    }
  });
  table.addEventListener("mouseout", () => ctx.hideTip());

  function update() {
    const ri = ctx.rootIdx(), k = ctx.stratum();
    if (ri < 0) return;
    const o0 = base();
    let attnAll = 0, mlpAll = 0;
    for (let l = 0; l < L; l++) {
      const o = o0 + l * (H + 1);
      let sum = 0;
      for (let j = 0; j <= H; j++) {
        const v = shares[o + j];
        cells[l * (H + 1) + j].style.backgroundColor = SHARE_BG[v];
        if (j < H) sum += v;
      }
      const attn = H ? sum / H : 0, mlp = shares[o + H];
      attnAll += attn; mlpAll += mlp;
      bars[l][0].style.width = `${attn}%`;
      bars[l][1].style.width = `${mlp}%`;
    }
    title.textContent = `Edges included per head and MLP — step ${roots[ri]}, s = ${fmtS(grid[k])}`;
    table.setAttribute("aria-label", `Layer × head grid at s = ${fmtS(grid[k])}: attention heads include ${fmt(attnAll / L)}% and MLPs ${fmt(mlpAll / L)}% of their edges on average; hover a cell for its number`);
  }
  return { el: wrap, update, cells };
}

// ---- render -------------------------------------------------------------------------------------------
function render({ model, el }) {
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
  let parts = [];
  let ctx = null;
  const build = () => {
    root.replaceChildren();
    ctx = makeContext(model, root);
    const view = model.get("view") || "explorer";
    root.dataset.view = view;
    parts = [];
    if (view === "explorer" || view === "strip") parts.push(makeStrip(ctx));
    const row = h("div", "dnb-row");
    if (view === "explorer" || view === "slider") parts.push(makeSlider(ctx));
    if (view === "explorer" || view === "grid") parts.push(makeGrid(ctx));
    for (const p of parts) {
      if (p.el.classList.contains("dnb-strip-part")) root.appendChild(p.el);
      else row.appendChild(p.el);
    }
    if (row.childElementCount) root.appendChild(row);
    root.appendChild(ctx.tip);
    for (const p of parts) p.update("all");
  };
  const update = (what) => () => { for (const p of parts) p.update(what); };
  const listeners = [
    ["change:root", update("root")], ["change:stratum", update("stratum")], ["change:metric", update("metric")],
    ["change:data", build], ["change:shares", build], ["change:view", build],
  ];
  for (const [event, fn] of listeners) model.on(event, fn);
  build();
  return () => {
    for (const [event, fn] of listeners) model.off(event, fn);
    root.remove();
  };
}

export default { render };
