// density_nb widgets: saving a view as SVG or PNG from the browser, offline, with no server. Shared by every
// view and the corpus dashboard: widgets/_export.py's esm() puts this file in front of a view's module, so
// its three functions (viewToSvg, svgToPng, addExportButtons) share that module's scope.
// The view is copied with its computed styles inlined (theme variables, dark mode and fonts resolved as
// shown) into an SVG <foreignObject>; the PNG is that SVG drawn on a canvas at 2× device pixels; the file is
// downloaded through a blob link. Scrolled parts (a long token strip) are exported whole.

/** The view ``viewEl`` as shown, as a standalone SVG document: ``{ svg, width, height }`` (CSS pixels).
 * Elements marked ``data-dnb-noexport`` (the export buttons) and hidden ones are left out. */
function viewToSvg(viewEl) {
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
    let background = "rgb(255, 255, 255)";
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
async function svgToPng(svg, width, height) {
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
function addExportButtons(toolbarEl, viewEl, baseName) {
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
