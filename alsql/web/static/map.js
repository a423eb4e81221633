// The embedding map: up to 50,000 points on a canvas. Colour = labeled class,
// grey = not labeled, opacity = the model's confidence. Filter by class and
// confidence; click a point to open that item on the labeling page.
"use strict";
(function () {
  const root = document.getElementById("map-app");
  const pid = root.dataset.project;
  const classes = JSON.parse(root.dataset.classes);
  const canvas = document.getElementById("map");
  const ctx = canvas.getContext("2d");
  const $ = (id) => document.getElementById(id);
  const colours = classes.map((c) => alsql.colour(c.class_id, classes.length));
  let d = null, px = null, py = null, visible = null;

  function draw() {
    if (!d) return;
    const n = d.item_id.length;
    const cls = $("class-filter").value, cmin = Number($("conf-min").value);
    $("conf-value").textContent = cmin.toFixed(2);
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    let shown = 0;
    visible = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      const lab = d.label[i], conf = d.confidence[i] ?? 1;
      if (cls !== "all" && lab !== Number(cls)) continue;
      if (conf < cmin) continue;
      visible[i] = 1; shown++;
      ctx.globalAlpha = 0.15 + 0.85 * conf;
      ctx.fillStyle = lab >= 0 ? colours[lab] || "#000" : "#9aa0a6";
      ctx.fillRect(px[i] - 1.5, py[i] - 1.5, 3, 3);
    }
    ctx.globalAlpha = 1;
    $("map-count").textContent = shown + " of " + n + " points (model " + d.model_id + ")";
  }
  function layout() {
    const n = d.item_id.length, pad = 10;
    let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
    for (let i = 0; i < n; i++) { x0 = Math.min(x0, d.x[i]); x1 = Math.max(x1, d.x[i]); y0 = Math.min(y0, d.y[i]); y1 = Math.max(y1, d.y[i]); }
    const sx = (canvas.width - 2 * pad) / ((x1 - x0) || 1), sy = (canvas.height - 2 * pad) / ((y1 - y0) || 1);
    px = new Float32Array(n); py = new Float32Array(n);
    for (let i = 0; i < n; i++) { px[i] = pad + (d.x[i] - x0) * sx; py[i] = canvas.height - pad - (d.y[i] - y0) * sy; }
  }
  canvas.addEventListener("click", (ev) => {
    if (!d) return;
    const r = canvas.getBoundingClientRect();
    const cx = ((ev.clientX - r.left) * canvas.width) / r.width, cy = ((ev.clientY - r.top) * canvas.height) / r.height;
    let best = -1, bd = 64;
    for (let i = 0; i < px.length; i++) {
      if (!visible[i]) continue;
      const dd = (px[i] - cx) ** 2 + (py[i] - cy) ** 2;
      if (dd < bd) { bd = dd; best = i; }
    }
    if (best >= 0) location.href = "/projects/" + pid + "/label?item=" + d.item_id[best];
  });
  $("class-filter").addEventListener("change", draw);
  $("conf-min").addEventListener("input", draw);
  $("legend").replaceChildren(...classes.map((c, i) => { const s = alsql.el("span"); const dot = alsql.el("i"); dot.style.background = colours[i]; s.append(dot, c.name); return s; }),
    (() => { const s = alsql.el("span"); const dot = alsql.el("i"); dot.style.background = "#9aa0a6"; s.append(dot, "not labeled"); return s; })());
  alsql.get("/api/projects/" + pid + "/map").then((data) => {
    d = data;
    if (!d.item_id.length) { $("map-count").textContent = d.model_id ? "the model has no 2-D embedding yet" : "no model yet: train one to see the map"; return; }
    layout(); draw();
  }).catch((e) => { $("map-count").textContent = String(e.message || e); });
})();
