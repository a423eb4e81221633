// The embedding map: up to millions of points drawn with WebGL (a 2-D canvas when WebGL is
// missing) from the typed arrays of /api/projects/{id}/map.bin (12 bytes a point, see
// alsql/web/mapdata.py). Colour by label of record, the model's guess, its confidence or
// "the model disagrees with the label", the legend following the mode; wheel zooms, dragging pans; hovering shows the item
// (thumbnail, label, guess); a click opens it on the labeling page; box or lasso selects a
// region (a vertex dragged off the canvas is clamped to its edge): "label these" makes a round of its unlabeled points (the server decides who is
// inside from the stored coordinates), "show in table" lists them. The search box asks
// /api/projects/{id}/search for the items nearest a text (an encoder with a text tower), rings
// the hits on the map and lists them; its "label these" makes a round of them on the server.
"use strict";
(function () {
  const root = document.getElementById("map-app");
  const pid = root.dataset.project;
  const classes = JSON.parse(root.dataset.classes);
  const canvas = document.getElementById("map");
  const overlay = document.getElementById("map-overlay");
  const octx = overlay.getContext("2d");
  const $ = (id) => document.getElementById(id);
  const W = canvas.width, H = canvas.height, NONE = 255, GREY = [154, 160, 166], RED = [220, 30, 40], GREEN = [40, 150, 80];
  // Opacity per kind of point (recolour and the legend share it).
  const A = { labeled: 0.95, unlabeled: 0.55, model: 0.85, disagrees: 1, agrees: 0.7, quiet: 0.25 };
  const palette = classes.map((c) => hslToRgb(alsql.colour(c.class_id, classes.length)));
  const state = { n: 0, view: null, tool: "pan", poly: null, hover: -1, drawn: 0, hits: [] };
  // colours: RGBA in drawing order (perm: unlabeled first, so labeled points stay on top);
  // shown: 1 per point (by index) when it passes the filters.
  let d = null, colours = null, shown = null, perm = null, grid = null, gl = null, ctx2d = null, prog = null;

  // What the page exposes for tests and scripts: points, points drawn, the renderer.
  // search: the last search's hits (item ids, best first) and how many of them are on this map.
  window.alsqlMap = { points: 0, drawn: 0, renderer: null, ready: false, toScreen, polygonFromScreen: null,
    search: { ids: [], onMap: 0 } };

  function hslToRgb(s) {
    const m = /hsl\((\d+),(\d+)%,(\d+)%\)/.exec(s.replace(/\s/g, ""));
    if (!m) return [0, 0, 0];
    const h = Number(m[1]) / 360, sat = Number(m[2]) / 100, l = Number(m[3]) / 100;
    const q = l < 0.5 ? l * (1 + sat) : l + sat - l * sat, p = 2 * l - q;
    const f = (t) => { t = (t + 1) % 1; return t < 1 / 6 ? p + (q - p) * 6 * t : t < 0.5 ? q : t < 2 / 3 ? p + (q - p) * (2 / 3 - t) * 6 : p; };
    return [f(h + 1 / 3), f(h), f(h - 1 / 3)].map((v) => Math.round(v * 255));
  }

  function parse(buf) {
    const dv = new DataView(buf);
    const magic = String.fromCharCode(dv.getUint8(0), dv.getUint8(1), dv.getUint8(2), dv.getUint8(3));
    if (magic !== "AMAP") throw new Error("the map answer is not in the expected format");
    const n = dv.getUint32(8, true), o = 48;
    return {
      n, model: dv.getUint32(12, true),
      x0: dv.getFloat64(16, true), x1: dv.getFloat64(24, true), y0: dv.getFloat64(32, true), y1: dv.getFloat64(40, true),
      ids: new Uint32Array(buf, o, n), x: new Uint16Array(buf, o + 4 * n, n), y: new Uint16Array(buf, o + 6 * n, n),
      label: new Uint8Array(buf, o + 8 * n, n), pred: new Uint8Array(buf, o + 9 * n, n),
      conf: new Uint8Array(buf, o + 10 * n, n), flags: new Uint8Array(buf, o + 11 * n, n),
    };
  }

  // -- view: map coordinates <-> screen pixels -------------------------------------------
  function resetView() {
    const sx = (d.x1 - d.x0) || 1, sy = (d.y1 - d.y0) || 1;
    state.view = { cx: (d.x0 + d.x1) / 2, cy: (d.y0 + d.y1) / 2, ppu: Math.min((W - 30) / sx, (H - 30) / sy) };
  }
  function dataX(i) { return d.x0 + (d.x[i] / 65535) * (d.x1 - d.x0); }
  function dataY(i) { return d.y0 + (d.y[i] / 65535) * (d.y1 - d.y0); }
  function toScreen(mx, my) { const v = state.view; return [W / 2 + (mx - v.cx) * v.ppu, H / 2 - (my - v.cy) * v.ppu]; }
  function toData(px, py) { const v = state.view; return [v.cx + (px - W / 2) / v.ppu, v.cy - (py - H / 2) / v.ppu]; }
  function canvasPoint(ev, clamp) {  // clamp: a point outside the canvas goes to its nearest edge
    const r = canvas.getBoundingClientRect();
    const px = ((ev.clientX - r.left) * W) / r.width, py = ((ev.clientY - r.top) * H) / r.height;
    return clamp ? [Math.min(W, Math.max(0, px)), Math.min(H, Math.max(0, py))] : [px, py];
  }

  // -- colours (RGBA per point; alpha 0 = filtered out) ---------------------------------
  function recolour() {
    const mode = $("colour-by").value, cls = $("class-filter").value, cmin = Number($("conf-min").value);
    $("conf-value").textContent = cmin.toFixed(2);
    const n = d.n, out = colours || new Uint8Array(4 * n);
    shown = shown || new Uint8Array(n);
    let count = 0;
    for (let j = 0; j < n; j++) {
      const i = perm[j];
      const lab = d.label[i], pr = d.pred[i], cf = d.conf[i] === NONE ? 1 : d.conf[i] / 254;
      let rgb = GREY, a = lab === NONE ? A.unlabeled : A.labeled;
      if (mode === "label") { if (lab !== NONE) rgb = palette[lab] || GREY; }
      else if (mode === "predicted") { if (pr !== NONE) rgb = palette[pr] || GREY; a = A.model; }
      else if (mode === "confidence") { rgb = confRgb(cf); a = A.model; }
      else if (mode === "disagree") {
        if (d.flags[i] & 2) { rgb = RED; a = A.disagrees; } else if (lab !== NONE) { rgb = GREEN; a = A.agrees; } else { a = A.quiet; }
      }
      let keep = cf >= cmin;
      if (cls === "-1") keep = keep && lab === NONE; else if (cls !== "all") keep = keep && lab === Number(cls);
      const k = 4 * j;
      out[k] = rgb[0]; out[k + 1] = rgb[1]; out[k + 2] = rgb[2]; out[k + 3] = keep ? Math.round(a * 255) : 0;
      shown[i] = keep ? 1 : 0;
      if (keep) count++;
    }
    colours = out;
    state.drawn = count;
    legend(mode);
    if (gl) { gl.bindBuffer(gl.ARRAY_BUFFER, prog.colour); gl.bufferData(gl.ARRAY_BUFFER, colours, gl.DYNAMIC_DRAW); }
    draw();
  }

  // -- legend: what the colours of the current mode mean ------------------------------------
  function confRgb(cf) { return [Math.round(230 - 200 * cf), Math.round(60 + 120 * cf), Math.round(60 + 140 * cf)]; }
  function swatch(rgb, a, text) {  // the colour as painted: alpha a over the white canvas
    const s = alsql.el("span"), dot = alsql.el("i");
    dot.style.background = "rgb(" + rgb.map((v) => Math.round(a * v + (1 - a) * 255)).join(",") + ")";
    s.append(dot, text);
    return s;
  }
  function legend(mode) {
    let parts;
    if (mode === "label" || mode === "predicted") {
      const a = mode === "label" ? A.labeled : A.model;
      parts = classes.map((c, i) => swatch(palette[i], a, c.name))
        .concat([mode === "label" ? swatch(GREY, A.unlabeled, "not labeled") : swatch(GREY, A.model, "no guess")]);
    } else if (mode === "confidence") {
      parts = [0, 0.25, 0.5, 0.75, 1].map((c) => swatch(confRgb(c), A.model, Math.round(100 * c) + "%"));
      parts.unshift(alsql.el("span", {}, "model's confidence:"));
    } else {
      parts = [swatch(RED, A.disagrees, "model disagrees with the label"),
        swatch(GREEN, A.agrees, "model agrees with the label"), swatch(GREY, A.quiet, "not labeled")];
    }
    const box = $("legend");
    box.dataset.mode = mode;
    box.replaceChildren(...parts);
  }

  // -- WebGL point layer -----------------------------------------------------------------
  const VS = "attribute vec2 p; attribute vec4 c; uniform vec2 s; uniform vec2 o; uniform float size; varying vec4 v;" +
    "void main(){ gl_Position = vec4(p * s + o, 0.0, 1.0); gl_PointSize = size; v = c; }";
  const FS = "precision mediump float; varying vec4 v; void main(){ if (v.a == 0.0) discard; gl_FragColor = vec4(v.rgb * v.a, v.a); }";
  function initGL() {
    const g = canvas.getContext("webgl", { preserveDrawingBuffer: true, antialias: false, premultipliedAlpha: true });
    if (!g) return null;
    const sh = (type, src) => { const s = g.createShader(type); g.shaderSource(s, src); g.compileShader(s); if (!g.getShaderParameter(s, g.COMPILE_STATUS)) throw new Error(g.getShaderInfoLog(s)); return s; };
    const p = g.createProgram();
    g.attachShader(p, sh(g.VERTEX_SHADER, VS)); g.attachShader(p, sh(g.FRAGMENT_SHADER, FS)); g.linkProgram(p);
    if (!g.getProgramParameter(p, g.LINK_STATUS)) throw new Error(g.getProgramInfoLog(p));
    g.useProgram(p);
    const xy = new Uint16Array(2 * d.n);
    for (let j = 0; j < d.n; j++) { const i = perm[j]; xy[2 * j] = d.x[i]; xy[2 * j + 1] = d.y[i]; }
    const pos = g.createBuffer(); g.bindBuffer(g.ARRAY_BUFFER, pos); g.bufferData(g.ARRAY_BUFFER, xy, g.STATIC_DRAW);
    const lp = g.getAttribLocation(p, "p"); g.enableVertexAttribArray(lp); g.vertexAttribPointer(lp, 2, g.UNSIGNED_SHORT, true, 0, 0);
    const col = g.createBuffer(); g.bindBuffer(g.ARRAY_BUFFER, col);
    const lc = g.getAttribLocation(p, "c"); g.enableVertexAttribArray(lc); g.vertexAttribPointer(lc, 4, g.UNSIGNED_BYTE, true, 0, 0);
    g.enable(g.BLEND); g.blendFunc(g.ONE, g.ONE_MINUS_SRC_ALPHA);
    prog = { p, colour: col, s: g.getUniformLocation(p, "s"), o: g.getUniformLocation(p, "o"), size: g.getUniformLocation(p, "size") };
    return g;
  }
  function pointSize() { return Math.max(1.5, Math.min(8, 3.5 * Math.sqrt(state.view.ppu / state.base) * (d.n > 200000 ? 0.6 : 1))); }
  function draw() {
    if (!d || !d.n) return;
    const v = state.view, sx = (d.x1 - d.x0), sy = (d.y1 - d.y0);
    if (gl) {
      gl.viewport(0, 0, W, H); gl.clearColor(1, 1, 1, 1); gl.clear(gl.COLOR_BUFFER_BIT);
      gl.uniform2f(prog.s, (sx * v.ppu * 2) / W, (sy * v.ppu * 2) / H);
      gl.uniform2f(prog.o, ((d.x0 - v.cx) * v.ppu * 2) / W, ((d.y0 - v.cy) * v.ppu * 2) / H);
      gl.uniform1f(prog.size, pointSize());
      gl.drawArrays(gl.POINTS, 0, d.n);
    } else {
      const img = ctx2d.createImageData(W, H), px = new Uint32Array(img.data.buffer);
      px.fill(0xffffffff);
      const r = pointSize() > 3 ? 1 : 0;
      for (let j = 0; j < d.n; j++) {
        const i = perm[j], a = colours[4 * j + 3]; if (!a) continue;
        const [qx, qy] = toScreen(dataX(i), dataY(i)), x = Math.round(qx), y = Math.round(qy);
        const c = (0xff << 24) | (colours[4 * j + 2] << 16) | (colours[4 * j + 1] << 8) | colours[4 * j];
        for (let dy = -r; dy <= r; dy++) for (let dx = -r; dx <= r; dx++) {
          const X = x + dx, Y = y + dy; if (X >= 0 && X < W && Y >= 0 && Y < H) px[Y * W + X] = c;
        }
      }
      ctx2d.putImageData(img, 0, 0);
    }
    window.alsqlMap.drawn = state.drawn;
    $("map-count").textContent = state.drawn + " of " + d.n + " points (model " + d.model + ")";
    drawOverlay();
  }

  // -- nearest point under the mouse: a 256 x 256 grid over the quantized coordinates ----
  function buildGrid() {
    const n = d.n, start = new Uint32Array(65537), order = new Uint32Array(n);
    const cell = (i) => ((d.y[i] >> 8) << 8) | (d.x[i] >> 8);
    for (let i = 0; i < n; i++) start[cell(i) + 1]++;
    for (let c = 0; c < 65536; c++) start[c + 1] += start[c];
    const fill = start.slice(0, 65536);
    for (let i = 0; i < n; i++) order[fill[cell(i)]++] = i;
    return { start, order };
  }
  function nearest(px, py, radius) {
    const [mx, my] = toData(px, py), v = state.view;
    const qx = ((mx - d.x0) / ((d.x1 - d.x0) || 1)) * 65535, qy = ((my - d.y0) / ((d.y1 - d.y0) || 1)) * 65535;
    const rq = (radius / v.ppu) * 65535 / Math.min((d.x1 - d.x0) || 1, (d.y1 - d.y0) || 1);
    const c0 = Math.max(0, (qx - rq) >> 8), c1 = Math.min(255, (qx + rq) >> 8);
    const r0 = Math.max(0, (qy - rq) >> 8), r1 = Math.min(255, (qy + rq) >> 8);
    let best = -1, bd = radius * radius;
    if (c1 - c0 > 64 || r1 - r0 > 64) return -1;  // zoomed far out: too many cells to search
    for (let r = r0; r <= r1; r++) for (let c = c0; c <= c1; c++) {
      const cell = (r << 8) | c;
      for (let k = grid.start[cell]; k < grid.start[cell + 1]; k++) {
        const i = grid.order[k];
        if (!shown[i]) continue;
        const [sx, sy] = toScreen(dataX(i), dataY(i)), dd = (sx - px) ** 2 + (sy - py) ** 2;
        if (dd < bd) { bd = dd; best = i; }
      }
    }
    return best;
  }

  // -- hover card: label and guess from the arrays at once, the item's details lazily ------
  const details = new Map();
  function thumbUrl(item) {  // alsql.thumbUrl(item), when a page defines it, overrides (e.g. a video poster)
    if (alsql.thumbUrl) { const u = alsql.thumbUrl(item); if (u) return u; }
    const t = item.media_type || "image/";
    if (t.startsWith("audio/")) return "/api/items/" + item.item_id + "/spectrogram.png";
    if (t.startsWith("video/")) return null;  // no poster route yet: the card shows the text only
    return item.image_url || "/api/items/" + item.item_id + "/image";
  }
  function setThumb(img, it) {
    const u = thumbUrl(it);
    img.hidden = !u;
    if (u) img.src = u; else img.removeAttribute("src");
  }
  function className(c) { return c === NONE ? null : (classes[c] ? classes[c].name : "class " + c); }
  function showTip(i, px, py) {
    const tip = $("map-tip"), id = d.ids[i];
    $("tip-id").textContent = id;
    $("tip-label").textContent = className(d.label[i]) || "not labeled";
    $("tip-guess").textContent = d.pred[i] === NONE ? "no guess" :
      className(d.pred[i]) + (d.conf[i] === NONE ? "" : " (" + Math.round((d.conf[i] / 254) * 100) + "%)");
    const img = $("tip-img");
    img.dataset.item = String(id);
    const have = details.get(id);
    if (have) setThumb(img, have);
    else {
      img.removeAttribute("src");
      alsql.get("/api/projects/" + pid + "/items/" + id).then((it) => {
        details.set(id, it);
        if (img.dataset.item === String(id)) setThumb(img, it);
      }).catch(() => {});
    }
    tip.style.left = Math.min(px + 14, W - 190) + "px";
    tip.style.top = Math.min(py + 14, H - 170) + "px";
    tip.hidden = false;
  }

  // -- selection overlay -------------------------------------------------------------------
  function drawOverlay() {
    octx.clearRect(0, 0, W, H);
    const pts = state.poly;
    if (pts && pts.length > 1) {
      octx.beginPath();
      pts.forEach(([mx, my], k) => { const [x, y] = toScreen(mx, my); if (k) octx.lineTo(x, y); else octx.moveTo(x, y); });
      octx.closePath();
      octx.fillStyle = "rgba(30,110,220,0.12)"; octx.strokeStyle = "rgba(30,110,220,0.9)"; octx.lineWidth = 1.5;
      octx.fill(); octx.stroke();
    }
    if (state.hits.length) {  // search hits: orange rings, the best one thicker
      octx.strokeStyle = "rgba(235,120,0,0.95)";
      state.hits.forEach((i, r) => {
        const [x, y] = toScreen(dataX(i), dataY(i));
        octx.beginPath(); octx.arc(x, y, r === 0 ? 8 : 6, 0, 2 * Math.PI); octx.lineWidth = r === 0 ? 3 : 2; octx.stroke();
      });
    }
    if (state.hover >= 0) {
      const [x, y] = toScreen(dataX(state.hover), dataY(state.hover));
      octx.beginPath(); octx.arc(x, y, 6, 0, 2 * Math.PI); octx.strokeStyle = "#111"; octx.lineWidth = 2; octx.stroke();
    }
  }
  function insideCount(poly) {  // what the client sees; the server decides on the stored coordinates
    let n = 0, unl = 0;
    for (let i = 0; i < d.n; i++) {
      const x = dataX(i), y = dataY(i);
      let inside = false;
      for (let a = 0, b = poly.length - 1; a < poly.length; b = a++) {
        const [xa, ya] = poly[a], [xb, yb] = poly[b];
        if ((ya > y) !== (yb > y) && x < ((xb - xa) * (y - ya)) / (yb - ya) + xa) inside = !inside;
      }
      if (inside) { n++; if (!(d.flags[i] & 5)) unl++; }
    }
    return [n, unl];
  }
  function finishSelection() {
    const poly = state.poly;
    if (!poly || poly.length < 3) { clearSelection(); return; }
    const [n, unl] = insideCount(poly);
    $("selection-count").textContent = n + " points selected, about " + unl + " unlabeled";
    $("selection-msg").textContent = "";
    $("selection").hidden = false;
  }
  function clearSelection() {
    state.poly = null; $("selection").hidden = true; $("selection-table").hidden = true; drawOverlay();
  }
  window.alsqlMap.polygonFromScreen = (pts) => { state.poly = pts.map(([x, y]) => toData(x, y)); drawOverlay(); finishSelection(); };

  // -- mouse -------------------------------------------------------------------------------
  let drag = null;
  canvas.addEventListener("mousedown", (ev) => {
    const [px, py] = canvasPoint(ev);
    ev.preventDefault();  // no text selection while a drag goes over the page
    drag = { px, py, moved: false, view: { ...state.view } };
    if (state.tool !== "pan") { state.poly = [toData(px, py)]; $("selection").hidden = true; }
  });
  window.addEventListener("mouseup", (ev) => {
    if (!drag) return;
    const was = drag; drag = null;
    if (state.tool !== "pan" && was.moved) { finishSelection(); return; }
    if (!was.moved) {
      const [px, py] = canvasPoint(ev), i = nearest(px, py, 8);
      if (i >= 0) location.href = "/projects/" + pid + "/label?item=" + d.ids[i];
    }
  });
  // Dragging is followed on the window, so a lasso or box that leaves the canvas keeps going:
  // its vertices outside are clamped to the canvas edge (panning uses the raw point).
  window.addEventListener("mousemove", (ev) => {
    if (!drag || !d || !d.n) return;
    const [px, py] = canvasPoint(ev, state.tool !== "pan");
    if (Math.abs(px - drag.px) + Math.abs(py - drag.py) > 3) drag.moved = true;
    if (!drag.moved) return;
    $("map-tip").hidden = true; state.hover = -1;
    if (state.tool === "pan") {
      state.view.cx = drag.view.cx - (px - drag.px) / state.view.ppu;
      state.view.cy = drag.view.cy + (py - drag.py) / state.view.ppu;
      draw();
    } else if (state.tool === "box") {
      const [ax, ay] = toData(drag.px, drag.py), [bx, by] = toData(px, py);
      state.poly = [[ax, ay], [bx, ay], [bx, by], [ax, by]]; drawOverlay();
    } else { state.poly.push(toData(px, py)); drawOverlay(); }
  });
  canvas.addEventListener("mousemove", (ev) => {
    if (!d || !d.n || drag) return;
    const [px, py] = canvasPoint(ev);
    const i = nearest(px, py, 8);
    if (i !== state.hover) { state.hover = i; drawOverlay(); }
    if (i >= 0) showTip(i, px, py); else $("map-tip").hidden = true;
  });
  canvas.addEventListener("mouseleave", () => { $("map-tip").hidden = true; state.hover = -1; drawOverlay(); });
  canvas.addEventListener("wheel", (ev) => {
    if (!d || !d.n) return;
    ev.preventDefault();
    const [px, py] = canvasPoint(ev), [mx, my] = toData(px, py);
    const f = Math.exp(-ev.deltaY * 0.0015), v = state.view;
    v.ppu = Math.max(state.base * 0.5, Math.min(state.base * 5000, v.ppu * f));
    v.cx = mx - (px - W / 2) / v.ppu; v.cy = my + (py - H / 2) / v.ppu;
    draw();
  }, { passive: false });
  document.querySelectorAll('input[name="tool"]').forEach((r) => r.addEventListener("change", () => {
    state.tool = r.value; canvas.style.cursor = r.value === "pan" ? "grab" : "crosshair";
  }));
  $("reset-view").addEventListener("click", () => { if (d && d.n) { resetView(); draw(); } });
  $("colour-by").addEventListener("change", () => d && d.n && recolour());
  $("class-filter").addEventListener("change", () => d && d.n && recolour());
  $("conf-min").addEventListener("input", () => d && d.n && recolour());
  $("clear-selection").addEventListener("click", clearSelection);

  async function select(action) {
    const body = { polygon: state.poly, action, model_id: d.model };
    try {
      const r = await alsql.post("/api/projects/" + pid + "/map/selection", body);
      if (action === "round") {
        $("selection-msg").textContent = "round " + r.round_id + " holds " + r.items + " items; opening the queue";
        location.href = r.label_url;
        return;
      }
      const tb = $("selection-table").querySelector("tbody");
      tb.replaceChildren(...r.items.map((it) => {
        const tr = alsql.el("tr"), a = alsql.el("a", { href: "/projects/" + pid + "/label?item=" + it.item_id }, String(it.item_id));
        const td = alsql.el("td"); td.append(a);
        tr.append(td, alsql.el("td", {}, it.predicted || "–"),
          alsql.el("td", {}, it.confidence == null ? "–" : Math.round(it.confidence * 100) + "%"));
        return tr;
      }));
      $("selection-table").hidden = false;
      $("selection-msg").textContent = r.unlabeled + " unlabeled of " + r.inside + " inside (" + r.labeled +
        " labeled, " + r.queued + " already queued)" + (r.items.length < r.unlabeled ? "; first " + r.items.length + " listed" : "");
    } catch (e) { $("selection-msg").textContent = String(e.message || e); }
  }
  $("label-these").addEventListener("click", () => select("round"));
  $("show-table").addEventListener("click", () => select("list"));

  // -- search by text: hits ringed on the map, listed, "label these" makes a round on the server --
  function indexOf(id) {  // d.ids is in item order: binary search
    let lo = 0, hi = d ? d.n - 1 : -1;
    while (lo <= hi) { const m = (lo + hi) >> 1, v = d.ids[m]; if (v === id) return m; if (v < id) lo = m + 1; else hi = m - 1; }
    return -1;
  }
  let lastSearch = null;
  function clearSearch() {
    state.hits = []; lastSearch = null; window.alsqlMap.search = { ids: [], onMap: 0 };
    $("search-state").hidden = true; $("search-table").hidden = true; $("search-msg").textContent = "";
    drawOverlay();
  }
  $("search-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const q = $("search-text").value.trim(), k = Math.max(1, Math.min(1000, Number($("search-k").value) || 50));
    if (!q) { $("search-msg").textContent = "type what to look for (1 to 500 characters)"; return; }
    $("search-msg").textContent = "searching…";
    try {
      const r = await alsql.get("/api/projects/" + pid + "/search?q=" + encodeURIComponent(q) + "&k=" + k +
        ($("search-all").checked ? "&all=true" : ""));
      const ids = r.items.map((it) => it.item_id);
      state.hits = ids.map(indexOf).filter((i) => i >= 0);
      lastSearch = { q, k, encoder: r.encoder_model_id, all: $("search-all").checked };
      window.alsqlMap.search = { ids, onMap: state.hits.length };
      $("search-count").textContent = ids.length + " hits (encoder " + r.encoder_model_id + "), " + state.hits.length + " on this map";
      $("search-label").hidden = lastSearch.all;  // a round is made of unlabeled hits
      $("search-state").hidden = false;
      $("search-msg").textContent = "";
      const tb = $("search-table").querySelector("tbody");
      tb.replaceChildren(...r.items.map((it) => {
        const tr = alsql.el("tr"), td = alsql.el("td");
        td.append(alsql.el("a", { href: "/projects/" + pid + "/label?item=" + it.item_id }, String(it.item_id)));
        tr.append(alsql.el("td", {}, String(it.rank)), td, alsql.el("td", {}, it.similarity.toFixed(3)));
        return tr;
      }));
      $("search-table").hidden = false;
      drawOverlay();
    } catch (e) { state.hits = []; drawOverlay(); $("search-state").hidden = true; $("search-msg").textContent = String(e.message || e); }
  });
  $("search-clear").addEventListener("click", clearSearch);
  $("search-label").addEventListener("click", async () => {
    if (!lastSearch) return;
    try {
      const r = await alsql.post("/api/projects/" + pid + "/search/round",
        { q: lastSearch.q, k: lastSearch.k, encoder_model_id: lastSearch.encoder, model_id: d && d.model ? d.model : null });
      $("search-msg").textContent = "round " + r.round_id + " holds " + r.items + " items; opening the queue";
      location.href = r.label_url;
    } catch (e) { $("search-msg").textContent = String(e.message || e); }
  });

  legend($("colour-by").value);

  fetch("/api/projects/" + pid + "/map.bin", { credentials: "same-origin" }).then((r) => {
    if (r.status === 401) { location.href = "/login?next=" + encodeURIComponent(location.pathname); throw new Error("not logged in"); }
    if (!r.ok) throw new Error(r.status + " " + r.statusText);
    return r.arrayBuffer();
  }).then((buf) => {
    d = parse(buf);
    window.alsqlMap.points = d.n;
    if (!d.n) {
      $("map-count").textContent = d.model ? "the model has no 2-D embedding yet (run alsql map)" : "no model yet: train one to see the map";
      window.alsqlMap.ready = true;
      return;
    }
    resetView(); state.base = state.view.ppu;
    perm = new Uint32Array(d.n);
    let j = 0;
    for (let i = 0; i < d.n; i++) if (!(d.flags[i] & 1)) perm[j++] = i;
    for (let i = 0; i < d.n; i++) if (d.flags[i] & 1) perm[j++] = i;
    grid = buildGrid();
    const want = new URLSearchParams(location.search).get("renderer");  // "canvas": skip WebGL
    try { gl = want === "canvas" ? null : initGL(); } catch (e) { gl = null; }
    if (!gl) ctx2d = canvas.getContext("2d");
    window.alsqlMap.renderer = gl ? "webgl" : "canvas";
    recolour();
    window.alsqlMap.ready = true;
  }).catch((e) => { $("map-count").textContent = String(e.message || e); });
})();
