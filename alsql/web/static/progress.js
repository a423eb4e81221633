// The progress page: bars per class, labels over time (per hour on a project's first days,
// a cumulative line from 0), accuracy per model version on a log scale of the error with
// each class's recall beside it ("no evaluation labels yet" for a model without an
// evaluation set), evaluation
// coverage, the analyst's answer with its confidence intervals (from the answer marts),
// open rounds, failed runs and drift alerts (shown only when there are some).
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
  // Labels over time: bars per bin (an hour on a project's first days, else a day; UTC) and
  // the cumulative count, a line from 0 at the first bin's start to each bin's end total,
  // with a time and a count axis.
  const NS = "http://www.w3.org/2000/svg";
  function svgEl(tag, attrs, text) {
    const e = document.createElementNS(NS, tag);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function overTime(svg, series) {
    svg.replaceChildren();
    const bins = series.bins;
    if (!bins.length) { svg.appendChild(svgEl("text", { x: 10, y: 20 }, "no labels yet")); return; }
    const W = 600, H = 200, L = 46, R = 12, T = 22, B = 34;
    const hour = series.unit === "hour", n = bins.length;
    const x = (k) => L + (k * (W - L - R)) / n;  // bin k spans x(k)..x(k + 1)
    let total = 0; const cum = bins.map((b) => (total += b.labels));
    const most = Math.max(...bins.map((b) => b.labels));
    const y = (v) => H - B - (v / Math.max(1, total)) * (H - B - T);
    const yBar = (v) => H - B - (v / Math.max(1, most)) * (H - B - T) * 0.6;
    bins.forEach((b, k) => {
      if (!b.labels) return;
      svg.appendChild(svgEl("rect", { class: "bin", x: x(k) + 1, y: yBar(b.labels), width: Math.max(1, x(k + 1) - x(k) - 2),
        height: H - B - yBar(b.labels) }));
    });
    const line = [[x(0), y(0)]].concat(cum.map((v, k) => [x(k + 1), y(v)]));  // 0 at the first bin's start
    svg.appendChild(svgEl("polyline", { class: "cumulative", points: line.map((p) => p.join(",")).join(" ") }));
    svg.appendChild(svgEl("line", { class: "axis", x1: L, y1: H - B, x2: W - R, y2: H - B }));
    svg.appendChild(svgEl("line", { class: "axis", x1: L, y1: T, x2: L, y2: H - B }));
    [[0, "0"], [total, String(total)]].forEach(([v, t]) => svg.appendChild(svgEl("text", { class: "tick y", x: L - 4, y: y(v) + 4 }, t)));
    const when = (iso) => { const d = new Date(iso); return hour ? d.toISOString().slice(11, 16) : d.toISOString().slice(5, 10); };
    const every = Math.max(1, Math.ceil(n / 8));
    for (let k = 0; k <= n; k += every) {
      const at = k < n ? bins[k].start : new Date(Date.parse(bins[n - 1].start) + (hour ? 3600e3 : 86400e3)).toISOString();
      svg.appendChild(svgEl("text", { class: "tick x" + (k === n ? " end" : k ? "" : " start"), x: x(k), y: H - B + 14 }, when(at)));
    }
    svg.appendChild(svgEl("text", { x: L, y: H - 4 },
      (hour ? "hour of " + bins[0].start.slice(0, 10) : "day") + " (UTC): bars, labels per " + series.unit + "; line, all labels so far"));
    svg.appendChild(svgEl("text", { x: L + 4, y: 14 }, total + " labels"));
    svg.dataset.bins = String(n);
    svg.dataset.unit = series.unit;
  }

  // Accuracy on a log scale of the error: a bar's length is -log10(error) over DECADES decades,
  // so 85% (15% error) and 99% (1% error) are far apart; the value is printed, and each model's
  // recall per class is drawn beside it on the same scale.
  const DECADES = 3;  // 100% error .. 0.1% error
  function skill(err) { return err <= 0 ? 1 : Math.max(0, Math.min(1, -Math.log10(err) / DECADES)); }
  function pct(v) { return (100 * v).toFixed(v > 0.999 && v < 1 ? 2 : 1) + "%"; }
  function quality(target, models) {
    const axis = el("div", { class: "row axis-row" });
    const ticks = el("div", { class: "ticks" });
    [[1, "0%"], [0.1, "90%"], [0.01, "99%"], [0.001, "99.9%"]].forEach(([err, t]) => {
      const s = el("span", {}, t); s.style.left = (100 * skill(err)) + "%"; ticks.appendChild(s);
    });
    axis.append(el("span", { class: "hint" }, "accuracy (log scale of the error)"), ticks, el("span"));
    const rows = [axis];
    models.forEach((m) => {
      const row = el("div", { class: "row model", "data-model": m.model_id });
      const fill = el("div", { class: "fill" });
      const track = el("div", { class: "track" }); track.appendChild(fill);
      const name = "model " + m.model_id + " (" + (m.label_count ?? "?") + " labels)";
      if (m.error === null || m.error === undefined) {
        fill.style.width = "0%";
        row.append(el("span", {}, name), track, el("span", {}, m.accuracy_text));
        rows.push(row);
        return;
      }
      fill.style.width = (100 * skill(m.error)) + "%";
      row.append(el("span", {}, name), track, el("span", { class: "value" },
        m.accuracy_text + " · " + pct(m.error) + " error" + (m.evaluated ? " of " + m.evaluated : "")));
      rows.push(row);
      (m.per_class_recall || []).forEach((c) => {
        const r = el("div", { class: "row recall", "data-class": c.name });
        const f = el("div", { class: "fill" });
        const t = el("div", { class: "track" }); t.appendChild(f);
        f.style.width = c.recall === null ? "0%" : (100 * skill(1 - c.recall)) + "%";
        r.append(el("span", {}, c.name), t, el("span", { class: "value" }, c.recall === null ? "no items" : "recall " + pct(c.recall)));
        rows.push(r);
      });
    });
    target.replaceChildren(...rows);
  }

  // The analyst's answer from the answer marts as last built: per estimand, each group's
  // naive, classical and ppi estimates as a dot on its confidence interval (one scale per
  // estimand), then the sentence and the labels that would halve the PPI interval.
  function fmt(v) { return Math.abs(v) >= 1000 ? Math.round(v).toLocaleString("en") : (v !== 0 && Math.abs(v) < 0.01 ? v.toPrecision(2) : v.toFixed(2)); }
  function answer(target, a) {
    if (!a.built || a.problem) {
      target.replaceChildren(el("p", { class: "hint", id: "answer-missing" }, a.problem ? a.problem
        : "Build the marts to see the answer: alsql marts build (or alsql answer --project NAME)."));
      return;
    }
    $("answer-mart").textContent = "(" + a.mart + ", model " + a.model_id + ", " + Math.round(1000 * a.level) / 10 + "% intervals)";
    const parts = [];
    a.estimands.forEach((e) => {
      const box = el("div", { class: "estimand", "data-estimand": e.estimand });
      box.appendChild(el("h3", {}, e.label));
      if (e.problem) { box.appendChild(el("p", { class: "hint" }, e.problem)); parts.push(box); return; }
      const all = e.groups.flatMap((g) => g.estimates);
      let lo = Math.min(...all.map((r) => r.ci_low)), hi = Math.max(...all.map((r) => r.ci_high));
      if (!(hi > lo)) { lo -= 0.5; hi += 0.5; }
      const at = (v) => (100 * (v - lo)) / (hi - lo) + "%";
      e.groups.forEach((g) => g.estimates.forEach((r) => {
        const row = el("div", { class: "ci-row " + r.estimator, "data-group": g.grp, "data-estimator": r.estimator });
        const track = el("div", { class: "ci-track" });
        const bar = el("div", { class: "ci-bar" }); bar.style.left = at(r.ci_low);
        bar.style.width = (100 * (r.ci_high - r.ci_low)) / (hi - lo) + "%";
        const dot = el("div", { class: "ci-dot" }); dot.style.left = at(r.estimate);
        track.append(bar, dot);
        row.append(el("span", {}, g.grp + " · " + r.estimator), track,
          el("span", { class: "value" }, fmt(r.estimate) + " (" + fmt(r.ci_low) + " to " + fmt(r.ci_high) + ")"));
        box.appendChild(row);
      }));
      if (e.groups_left_out) box.appendChild(el("p", { class: "hint" }, e.groups_left_out + " more groups: alsql answer --json"));
      if (e.sentence) box.appendChild(el("p", { class: "sentence" }, e.sentence));
      if (e.halving) box.appendChild(el("p", { class: "hint halving" }, e.halving));
      e.notes.forEach((n) => box.appendChild(el("p", { class: "hint" }, n)));
      parts.push(box);
    });
    target.replaceChildren(...parts);
  }

  alsql.get("/api/projects/" + root.dataset.project + "/progress").then((p) => {
    $("labels-total").textContent = "(" + p.labels_total + " labeled)";
    const n = p.classes.length;
    bars($("per-class"), p.classes.map((c) => ({ name: c.name, value: c.labels, colour: alsql.colour(c.class_id, n) })),
      Math.max(1, ...p.classes.map((c) => c.labels)), (v) => String(v));
    overTime($("per-day"), p.labels_over_time);
    if (p.models.length) quality($("models"), p.models);
    else { $("models").textContent = "no model trained yet"; }
    const ev = p.evaluation;
    $("evaluation").textContent = ev.size
      ? ev.labeled + " of " + ev.size + " items labeled (" + (100 * ev.coverage).toFixed(1) + "%) in " + ev.rounds + " evaluation round" + (ev.rounds === 1 ? "" : "s")
      : "no evaluation round yet (an admin starts one with purpose evaluation)";
    answer($("answer"), p.answer);
    table($("rounds"), ["round", "strategy", "purpose", "budget", "pending"], p.rounds.map((r) => [r.round_id, r.strategy, r.purpose, r.budget, r.pending]));
    if (p.failed_runs.length) { $("failed-card").hidden = false; table($("failed"), ["run", "step", "trigger", "error", "finished"], p.failed_runs.map((r) => [r.run_id, r.step, r.trigger, r.error, r.finished_at])); }
    if (p.alerts.length) { $("alerts-card").hidden = false; table($("alerts"), ["alert", "kind", "message", "value", "at"], p.alerts.map((a) => [a.alert_id, a.kind, a.message, a.value, a.created_at])); }
  }).catch((e) => { root.prepend(alsql.el("p", { class: "error" }, String(e.message || e))); });
})();
