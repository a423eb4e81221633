// The labeling page: one key per class, skip, undo; the next items are claimed and
// preloaded while the current one is shown (an image's bytes; a video or sound segment's
// playback and context, by media.js), so labeling never waits.
// Keys, one meaning each per screen (`?` lists them for the item on screen): a class key
// labels (corrects, while reviewing); Space skips an image (goes on, while reviewing) and
// replays a video or sound segment (media.js), so Shift+Space skips any kind; Backspace
// or ArrowLeft undoes (steps back to the last labeled item).
// Writes go out one at a time in order (a promise chain); the screen moves on at once.
// The items held are leased for two minutes: a heartbeat renews them while the page is
// open, and closing the page gives them back (sendBeacon on pagehide), so nobody else
// waits for a tab that is gone. Opened as ?round=R (the map's "label these"), the page is
// served that round's items first, then the other open rounds as usual.
"use strict";
(function () {
  const root = document.getElementById("label-app");
  const pid = root.dataset.project;
  const classes = JSON.parse(root.dataset.classes);
  const api = "/api/projects/" + pid;
  const WANT = 3;                 // items held: the current one and two preloaded
  const HEARTBEAT_MS = 40000;     // well inside the server's 120 s lease
  let queue = [];                 // claimed, not yet labeled; queue[0] is shown
  let back = [];                  // labeled this session, newest last: {item, class_id}
  let forward = [];               // items stepped back over while reviewing
  let reviewing = null;           // a labeled item shown again after undo
  let chain = Promise.resolve();
  let saved = 0, shownAt = performance.now(), exhausted = false;
  const byKey = {};
  classes.forEach((c) => { if (c.key) byKey[c.key.toLowerCase()] = c.class_id; });
  const $ = (id) => document.getElementById(id);
  const asked = new URLSearchParams(location.search).get("round");
  let round = asked && /^[1-9][0-9]{0,15}$/.test(asked) ? Number(asked) : null;
  function first(body) { return round === null ? body : { ...body, round_id: round }; }   // the round served first

  function shown() { return reviewing ? reviewing.item : queue[0] || null; }
  function held() { return queue.map((i) => i.item_id); }
  function add(items) {
    for (const it of items || []) {
      if (queue.some((q) => q.item_id === it.item_id) || back.some((b) => b.item.item_id === it.item_id)) continue;
      queue.push(it);
      if (alsql.kind(it) === "image") new Image().src = it.image_url;   // preload (a segment has no image)
      else if (window.alsqlMedia) alsqlMedia.preload(it);   // a video or sound segment: how to play it
    }
    if (!reviewing && queue.length && $("item-image").dataset.item !== String(queue[0].item_id)) render();
  }
  function status(d) {
    if (d.round_id !== undefined) $("round-id").textContent = d.round_id === null ? "–" : d.round_id;
    if (d.left !== undefined) $("left").textContent = d.left;
    exhausted = (d.items || []).length === 0 && queue.length === 0;
  }
  function render() {
    const it = shown();
    if (window.alsqlMedia) alsqlMedia.show(it);   // plays a segment in place of the image
    const skipKey = alsql.kind(it) === "image" ? "Space" : "Shift+Space";
    $("skip-key").textContent = skipKey;
    $("mode").textContent = reviewing ? "reviewing (press a class key to correct, " + skipKey + " to go on)" : "labeling";
    $("mode").className = reviewing ? "reviewing" : "";
    document.querySelectorAll(".cls").forEach((b) => b.classList.remove("guessed", "current"));
    if (!it) {
      $("item-image").hidden = true; $("empty").hidden = !exhausted; $("item-id").textContent = "–";
      $("item-history").replaceChildren(); return;
    }
    $("empty").hidden = true;
    const img = $("item-image");
    img.dataset.item = it.item_id;
    if (alsql.kind(it) === "image") { img.hidden = false; img.src = it.image_url; }
    else { img.hidden = true; img.removeAttribute("src"); }     // media.js shows the segment
    $("item-id").textContent = it.item_id;
    const g = it.guess;
    $("guess-class").textContent = g ? g.class_name : "no model yet";
    $("guess-conf").textContent = g ? Math.round(g.confidence * 100) + "%" : "";
    $("guess-bar").style.width = g ? Math.round(g.confidence * 100) + "%" : "0";
    if (g && $("class-" + g.class_id)) $("class-" + g.class_id).classList.add("guessed");
    const hist = it.history || [];
    const rec = it.record;          // the label of record (docs/quality.md), not merely the newest label
    if (rec && $("class-" + rec.class_id)) $("class-" + rec.class_id).classList.add("current");
    $("item-history").replaceChildren(...hist.map((h) => alsql.el("li", { class: !rec ? "" : h.annotation_id === rec.annotation_id ? "record" : h.class_id !== rec.class_id ? "old" : "" },
      h.class_name + " by " + (h.annotator || "?") + " at " + (h.created_at || "").slice(0, 19).replace("T", " "))));
    shownAt = performance.now();
  }
  function fail(e) { $("error").textContent = String(e.message || e); }
  function then(step) { chain = chain.then(step).catch(fail); return chain; }
  function myHistory() {
    alsql.get(api + "/history?limit=15").then((rows) => {
      $("my-history").replaceChildren(...rows.map((r) => alsql.el("li", {}, "item " + r.item_id + ": " + r.class_name)));
    }).catch(fail);
  }
  async function refreshItem(entry) {
    entry.item = await alsql.get(api + "/items/" + entry.item.item_id);
    if (reviewing === entry) render();
  }
  function done() { saved += 1; $("session-count").textContent = saved; $("error").textContent = ""; myHistory(); }

  function label(classId) {
    const seconds = (performance.now() - shownAt) / 1000;
    if (reviewing) {                            // a correction: a new row, the old one stays
      const entry = reviewing;
      back.push(entry); while (forward.length) back.push(forward.pop());
      reviewing = null; render();
      then(async () => {
        const d = await alsql.post(api + "/labels", { item_id: entry.item.item_id, class_id: classId, seconds, next: 0, exclude: held() });
        entry.class_id = classId; status(d); done(); await refreshItem(entry);
      });
      return;
    }
    const it = queue.shift();
    if (!it) return;
    const entry = { item: it, class_id: classId };
    back.push(entry); render();
    then(async () => {
      const d = await alsql.post(api + "/labels", first({ item_id: it.item_id, class_id: classId, seconds,
        next: Math.max(0, WANT - queue.length), exclude: held() }));
      status(d); add(d.items); done(); if (!shown()) render();
      refreshItem(entry).catch(fail);
    });
  }
  function skip() {
    if (reviewing) { back.push(reviewing); while (forward.length) back.push(forward.pop()); reviewing = null; render(); return; }
    const it = queue.shift();
    if (!it) return;
    render();
    then(async () => {
      const d = await alsql.post(api + "/skip", first({ item_id: it.item_id, next: Math.max(0, WANT - queue.length), exclude: held() }));
      status(d); add(d.items); if (!shown()) render();
    });
  }
  function undo() {
    if (!back.length) return;
    if (reviewing) forward.push(reviewing);
    reviewing = back.pop();
    render();
    then(() => refreshItem(reviewing));
  }

  document.addEventListener("keydown", (ev) => {
    if (ev.ctrlKey || ev.metaKey || ev.altKey || alsql.typing(ev)) return;
    const k = ev.key.toLowerCase();
    if (k in byKey) { ev.preventDefault(); label(byKey[k]); }
    else if (k === " ") { ev.preventDefault(); if (ev.shiftKey || alsql.kind(shown()) === "image") skip(); }
    else if (k === "backspace" || k === "arrowleft") { ev.preventDefault(); undo(); }
  });
  const keys = alsql.keyHelp("Keys on this screen", () => {
    const kind = alsql.kind(shown());
    const go = reviewing ? "go on to the queue without relabeling" : "skip this item (no label)";
    const rows = classes.filter((c) => c.key).map((c) => [[c.key], (reviewing ? "correct the label to " : "label ") + c.name]);
    if (kind === "image") rows.push([["Space", "Shift+Space"], go]);
    else rows.push([["Space"], "replay the " + (kind === "video" ? "segment" : "clip") + " from its start"], [["Shift+Space"], go]);
    if (window.alsqlMedia) rows.push(...alsqlMedia.keyRows(kind));
    rows.push([["Backspace", "←"], reviewing ? "step back one more labeled item" : "undo: back to the last labeled item"],
              [["?"], "show or hide this list"], [["Esc"], "close this list"]);
    return rows;
  });
  $("help-button").addEventListener("click", () => keys.open());
  document.querySelectorAll(".cls").forEach((b) => b.addEventListener("click", () => label(Number(b.dataset.class))));
  $("skip").addEventListener("click", skip);
  $("undo").addEventListener("click", undo);

  then(async () => {
    const open = root.dataset.openItem;
    if (open) { reviewing = { item: await alsql.get(api + "/items/" + open), class_id: null }; render(); }
    const body = { n: WANT, exclude: open ? [Number(open)] : [] };
    let d, note = "";
    if (asked !== null && round === null) note = "round " + asked.slice(0, 20) + ": expected a round id; serving the open rounds";
    try { d = await alsql.post(api + "/queue", first(body)); }
    catch (e) {                                  // not a round of this project: the usual order
      if (round === null) throw e;
      note = String(e.message || e) + "; serving the open rounds"; round = null;
      d = await alsql.post(api + "/queue", body);
    }
    status(d); add(d.items); render();
    if (note) $("error").textContent = note;
  });
  myHistory();

  setInterval(() => {
    if (queue.length) alsql.post(api + "/leases/renew", { items: held() }).catch(() => {});
  }, HEARTBEAT_MS);
  window.addEventListener("pagehide", () => {
    const ids = held();
    if (!ids.length || !navigator.sendBeacon) return;
    navigator.sendBeacon(api + "/leases/release", new URLSearchParams({ csrf_token: alsql.csrf, items: ids.join(",") }));
  });
  window.addEventListener("pageshow", (ev) => { if (ev.persisted) location.reload(); });  // back from the cache: claim again
})();
