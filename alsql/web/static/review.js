// The review page: items where annotators disagree, or where the newest model
// contradicts the label of record with high confidence. One key per class adjudicates
// (a review label: it becomes the label of record) and moves to the next item; Space goes
// on without deciding (on a video or sound item Space replays it and Shift+Space goes on),
// Backspace or ArrowLeft steps back; `?` lists every key for the item on screen. The queue is read a keyset page at a time
// (after = the last item id scanned) and read ahead while the reviewer works; decisions
// go out one at a time in order (a promise chain), the screen moves on at once.
"use strict";
(function () {
  const root = document.getElementById("review-app");
  const pid = root.dataset.project;
  const classes = JSON.parse(root.dataset.classes);
  const minConfidence = root.dataset.minConfidence;
  const api = "/api/projects/" + pid;
  const AHEAD = 5;                // items loaded beyond the one shown
  const PAGE = 20;
  const list = [];                // loaded items, in item order; list[pos] is shown
  let pos = 0, after = 0, end = false, loading = null, decided = 0;
  let chain = Promise.resolve(), shownAt = performance.now();
  const byKey = {};
  classes.forEach((c) => { if (c.key) byKey[c.key.toLowerCase()] = c.class_id; });
  const $ = (id) => document.getElementById(id);
  const name = (id) => (classes[id] ? classes[id].name : String(id));

  function fail(e) { $("error").textContent = String(e.message || e); }
  function then(step) { chain = chain.then(step).catch(fail); return chain; }

  // Read pages until AHEAD items wait beyond the shown one or the queue ends (a page may
  // come back short with more to scan: the server reads a bounded range per request).
  function fill() {
    if (loading || end || list.length - pos > AHEAD) return loading || Promise.resolve();
    loading = (async () => {
      try {
        while (!end && list.length - pos <= AHEAD) {
          const q = new URLSearchParams({ after: String(after), limit: String(PAGE), min_confidence: minConfidence });
          const d = await alsql.get(api + "/review?" + q);
          const had = list.length;
          for (const it of d.items) {
            if (list.some((x) => x.item_id === it.item_id)) continue;
            list.push(it);
            if (alsql.kind(it) === "image") new Image().src = it.image_url;   // preload (a segment has no image)
            else if (window.alsqlMedia) alsqlMedia.preload(it);
            addRow(it);
          }
          if (d.next_after === null) end = true; else after = d.next_after;
          if (had <= pos && list.length > pos) render();   // nothing was shown: show the first found now
        }
      } finally { loading = null; }
      more();
      render();
    })().catch(fail);
    return loading;
  }
  function more() { $("more").textContent = end ? "end of the queue" : "more items are read as you go"; }

  function summary(it) {
    const who = it.labels.map((l) => (l.annotator || "?") + ": " + l.class_name).join(", ");
    return "item " + it.item_id + " · " + it.reasons.join(", ") + (who ? " · " + who : "");
  }
  function addRow(it) {
    const li = alsql.el("li", { id: "row-" + it.item_id, "data-item": String(it.item_id) }, summary(it));
    li.addEventListener("click", () => { const i = list.indexOf(it); if (i >= 0) { pos = i; render(); } });
    $("review-list").append(li);
  }
  function markRow(it) {
    const li = $("row-" + it.item_id);
    if (!li) return;
    li.classList.toggle("decided", !!it.decision);
    li.textContent = summary(it) + (it.decision ? " → " + it.decision.class_name : "");
  }

  function render() {
    const it = list[pos] || null;
    if (window.alsqlMedia) alsqlMedia.show(it);
    $("skip-key").textContent = alsql.kind(it) === "image" ? "Space" : "Shift+Space";
    document.querySelectorAll(".cls").forEach((b) => b.classList.remove("guessed", "current"));
    document.querySelectorAll("#review-list li").forEach((li) => li.classList.toggle("shown", !!it && li.dataset.item === String(it.item_id)));
    $("position").textContent = list.length ? Math.min(pos + 1, list.length) + " of " + list.length + (end ? "" : "+") : "–";
    if (!it) {
      $("item-image").hidden = true; $("item-id").textContent = "–";
      $("empty").hidden = !(end && !loading);
      ["reasons", "record", "record-by", "guess-conf"].forEach((k) => { $(k).textContent = ""; });
      $("record").textContent = "–"; $("guess-class").textContent = "–"; $("guess-bar").style.width = "0";
      $("item-labels").replaceChildren();
      return;
    }
    $("empty").hidden = true;
    const img = $("item-image");
    img.dataset.item = it.item_id;
    if (alsql.kind(it) === "image") { img.hidden = false; img.src = it.image_url; }
    else { img.hidden = true; img.removeAttribute("src"); }     // media.js shows the segment
    $("item-id").textContent = it.item_id;
    $("reasons").textContent = it.reasons.join(" · ");
    $("item-labels").replaceChildren(...it.labels.map((l) => alsql.el("li", { class: "annotator-label" },
      (l.annotator || "?") + ": " + l.class_name)));
    const rec = it.decision || it.record;
    $("record").textContent = rec ? rec.class_name : "none";
    $("record-by").textContent = rec ? "(" + rec.source + (rec.annotator ? ", " + rec.annotator : "") + ")" : "";
    if (rec && $("class-" + rec.class_id)) $("class-" + rec.class_id).classList.add("current");
    const g = it.guess;
    $("guess-class").textContent = g ? g.class_name : "no model yet";
    $("guess-conf").textContent = g ? Math.round(g.confidence * 100) + "%" : "";
    $("guess-bar").style.width = g ? Math.round(g.confidence * 100) + "%" : "0";
    if (g && $("class-" + g.class_id)) $("class-" + g.class_id).classList.add("guessed");
    shownAt = performance.now();
  }

  function decide(classId) {
    const it = list[pos];
    if (!it) return;
    const seconds = (performance.now() - shownAt) / 1000;
    pos += 1; render(); fill();
    then(async () => {
      const d = await alsql.post(api + "/review", { item_id: it.item_id, class_id: classId, seconds });
      it.decision = d.record || { class_id: classId, class_name: name(classId), source: "review" };
      decided += 1; $("decided-count").textContent = decided; $("error").textContent = "";
      markRow(it);
      if (list[pos] === it) render();
    });
  }
  function next() { if (pos < list.length) { pos += 1; render(); fill(); } }
  function back() { if (pos > 0) { pos -= 1; render(); } }

  document.addEventListener("keydown", (ev) => {
    if (ev.ctrlKey || ev.metaKey || ev.altKey || alsql.typing(ev)) return;
    const k = ev.key.toLowerCase();
    if (k in byKey) { ev.preventDefault(); decide(byKey[k]); }
    else if (k === " ") { ev.preventDefault(); if (ev.shiftKey || alsql.kind(list[pos]) === "image") next(); }
    else if (k === "backspace" || k === "arrowleft") { ev.preventDefault(); back(); }
  });
  const keys = alsql.keyHelp("Keys on this screen", () => {
    const kind = alsql.kind(list[pos]);
    const rows = classes.filter((c) => c.key).map((c) => [[c.key], "decide " + c.name + " (the label of record) and go on"]);
    if (kind === "image") rows.push([["Space", "Shift+Space"], "next item without deciding"]);
    else rows.push([["Space"], "replay the " + (kind === "video" ? "segment" : "clip") + " from its start"],
                   [["Shift+Space"], "next item without deciding"]);
    if (window.alsqlMedia) rows.push(...alsqlMedia.keyRows(kind));
    rows.push([["Backspace", "←"], "previous item"], [["?"], "show or hide this list"], [["Esc"], "close this list"]);
    return rows;
  });
  $("help-button").addEventListener("click", () => keys.open());
  document.querySelectorAll(".cls").forEach((b) => b.addEventListener("click", () => decide(Number(b.dataset.class))));
  $("skip").addEventListener("click", next);
  $("back").addEventListener("click", back);
  fill();
})();
