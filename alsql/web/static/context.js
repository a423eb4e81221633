// Where a segment sits in its source, on the labeling and review pages: the file's name,
// the entity (camera, machine), the segment's time range within the file, and a strip of
// its neighbours by start time (a frame of each video segment, the spectrogram of each
// sound clip) with the one on screen marked. media.js calls alsqlContext.show(context)
// with the /api/items/<id>/context answer (null: an image, nothing shown).
"use strict";
window.alsqlContext = (function () {
  const $ = (id) => document.getElementById(id);
  const box = $("item-context"), strip = $("context-strip");
  const s = (x) => (Math.round(x * 100) / 100).toFixed(2);
  function range(a, b) { return s(a) + "–" + s(b) + " s"; }

  function show(ctx) {
    if (!ctx || !ctx.source) { box.hidden = true; strip.hidden = true; strip.replaceChildren(); return; }
    box.hidden = false;
    box.dataset.item = ctx.item_id;
    $("context-source").textContent = ctx.source.name;
    $("context-entity").textContent = ctx.entity ? ctx.entity : "";
    $("context-entity").hidden = !ctx.entity;
    const total = ctx.source.duration ? " of " + s(ctx.source.duration) + " s" : "";
    $("context-range").textContent = range(ctx.start, ctx.end) + total;
    $("context-when").textContent = ctx.captured_at ? "recorded " + ctx.captured_at.slice(0, 19).replace("T", " ") : "";
    $("context-when").hidden = !ctx.captured_at;
    strip.hidden = ctx.neighbours.length < 2;
    strip.replaceChildren(...ctx.neighbours.map((n) => {
      const li = alsql.el("li", { class: "seg" + (n.current ? " current" : "") + (n.thumbnail ? "" : " missing"),
                                  "data-item": String(n.item_id), title: "item " + n.item_id + (n.status === "ok" ? "" : " (" + n.status + ")") });
      if (n.current) li.setAttribute("aria-current", "true");
      const pic = n.thumbnail
        ? alsql.el("img", { src: n.thumbnail + (ctx.kind === "video" ? "?width=96" : ""), alt: "item " + n.item_id, class: ctx.kind })
        : alsql.el("span", { class: "none " + ctx.kind }, n.status);
      li.append(pic, alsql.el("span", { class: "when" }, range(n.start, n.end)));
      return li;
    }));
  }
  return { show };
})();
