// The progress page: bars per class, labels per day, accuracy per model version
// ("no evaluation labels yet" for a model without an evaluation set), evaluation
// coverage, open rounds, failed runs and drift alerts (shown only when there are some).
"use strict";
(function () {
  const root = document.getElementById("progress-app");
  const $ = (id) => document.getElementById(id);
  const el = alsql.el;

  function bars(target, rows, max, fmt) {
    target.replaceChildren(...rows.map((r) => {
      const row = el("div", { class: "row" });
      const fill = el("div", { class: "fill" });
      fill.style.width = (max > 0 ? (100 * r.value) / max : 0) + "%";
      if (r.colour) fill.style.background = r.colour;
      const track = el("div"); track.appendChild(fill);
      row.append(el("span", {}, r.name), track, el("span", {}, r.text !== undefined ? r.text : fmt(r.value)));
      return row;
    }));
  }
  function table(target, head, rows) {
    const thead = el("thead"); const tr = el("tr");
    head.forEach((h) => tr.appendChild(el("th", {}, h))); thead.appendChild(tr);
    const tbody = el("tbody");
    rows.forEach((r) => { const row = el("tr"); r.forEach((c) => row.appendChild(el("td", {}, c === null || c === undefined ? "" : String(c)))); tbody.appendChild(row); });
    target.replaceChildren(thead, tbody);
  }
  function line(svg, points) {
    const NS = "http://www.w3.org/2000/svg";
    svg.replaceChildren();
    if (!points.length) { const t = document.createElementNS(NS, "text"); t.setAttribute("x", 10); t.setAttribute("y", 20); t.textContent = "no labels yet"; svg.appendChild(t); return; }
    let total = 0; const cum = points.map((p) => (total += p.labels));
    const W = 600, H = 200, L = 40, B = 25;
    const x = (i) => L + (points.length === 1 ? (W - L) / 2 : (i * (W - L - 10)) / (points.length - 1));
    const y = (v) => H - B - (v / total) * (H - B - 10);
    const pl = document.createElementNS(NS, "polyline");
    pl.setAttribute("points", cum.map((v, i) => x(i) + "," + y(v)).join(" "));
    svg.appendChild(pl);
    cum.forEach((v, i) => { const c = document.createElementNS(NS, "circle"); c.setAttribute("cx", x(i)); c.setAttribute("cy", y(v)); c.setAttribute("r", 3); c.setAttribute("fill", "#2364aa"); svg.appendChild(c); });
    const labels = [[0, points[0].day], [points.length - 1, points[points.length - 1].day]];
    labels.forEach(([i, d]) => { const t = document.createElementNS(NS, "text"); t.setAttribute("x", Math.min(x(i), W - 70)); t.setAttribute("y", H - 5); t.textContent = d; svg.appendChild(t); });
    const t = document.createElementNS(NS, "text"); t.setAttribute("x", 2); t.setAttribute("y", 14); t.textContent = total + " labels"; svg.appendChild(t);
  }

  alsql.get("/api/projects/" + root.dataset.project + "/progress").then((p) => {
    $("labels-total").textContent = "(" + p.labels_total + " labeled)";
    const n = p.classes.length;
    bars($("per-class"), p.classes.map((c) => ({ name: c.name, value: c.labels, colour: alsql.colour(c.class_id, n) })),
      Math.max(1, ...p.classes.map((c) => c.labels)), (v) => String(v));
    line($("per-day"), p.labels_per_day);
    if (p.models.length) {
      bars($("models"), p.models.map((m) => ({ name: "model " + m.model_id + " (" + (m.label_count ?? "?") + " labels)",
        value: m.accuracy ?? 0, text: m.accuracy_text })), 1, (v) => (100 * v).toFixed(1) + "%");
    } else { $("models").textContent = "no model trained yet"; }
    const ev = p.evaluation;
    $("evaluation").textContent = ev.size
      ? ev.labeled + " of " + ev.size + " items labeled (" + (100 * ev.coverage).toFixed(1) + "%) in " + ev.rounds + " evaluation round" + (ev.rounds === 1 ? "" : "s")
      : "no evaluation round yet (an admin starts one with purpose evaluation)";
    table($("rounds"), ["round", "strategy", "purpose", "budget", "pending"], p.rounds.map((r) => [r.round_id, r.strategy, r.purpose, r.budget, r.pending]));
    if (p.failed_runs.length) { $("failed-card").hidden = false; table($("failed"), ["run", "step", "trigger", "error", "finished"], p.failed_runs.map((r) => [r.run_id, r.step, r.trigger, r.error, r.finished_at])); }
    if (p.alerts.length) { $("alerts-card").hidden = false; table($("alerts"), ["alert", "kind", "message", "value", "at"], p.alerts.map((a) => [a.alert_id, a.kind, a.message, a.value, a.created_at])); }
  }).catch((e) => { root.prepend(alsql.el("p", { class: "error" }, String(e.message || e))); });
})();
