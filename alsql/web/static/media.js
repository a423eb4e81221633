// Playback of video segments and audio clips on the labeling page.
// label.js calls alsqlMedia.show(item) whenever it shows an item (null: none) and
// alsqlMedia.preload(item) when it claims one. For a segment the page asks
// /api/items/<id>/media how to play it: a <video> at the source's Media Fragment
// (#t=start,end), looped inside the fragment (browsers stop at its end), or an
// <audio> player with the clip's spectrogram beside it. Space replays the segment
// (Shift+Space skips, as Space does for images); the class keys label as for images.
"use strict";
window.alsqlMedia = (function () {
  const info = new Map();          // item_id -> Promise of the /media answer
  let current = null;              // the /media answer of the item on screen (null: image or none)
  let shownId = null;
  const $ = (id) => document.getElementById(id);
  const video = $("item-video"), audio = $("item-audio"), spectro = $("item-spectrogram");
  const audioBox = $("item-audio-box"), hint = $("media-hint");
  video.style.width = "70%"; video.style.imageRendering = "pixelated";   // CSSOM: allowed by the CSP
  audioBox.style.flexDirection = "column"; audioBox.style.gap = "8px";
  audioBox.style.width = "90%";

  function fetchInfo(itemId) {
    if (!info.has(itemId)) {
      info.set(itemId, fetch("/api/items/" + itemId + "/media", { credentials: "same-origin" })
        .then((r) => (r.ok ? r.json() : { kind: "image" }))
        .catch(() => ({ kind: "image" })));
      if (info.size > 64) info.delete(info.keys().next().value);
    }
    return info.get(itemId);
  }
  function player() { return current ? (current.kind === "video" ? video : audio) : null; }
  function stopAll() { [video, audio].forEach((m) => { if (!m.paused) m.pause(); }); }
  function replay() {
    const m = player();
    if (!m) return;
    m.currentTime = current.start;
    const p = m.play();
    if (p && p.catch) p.catch(() => {});  // autoplay refused before any key: Space starts it
  }
  // Keep the playhead inside [start, end): browsers stop at a fragment's end, so loop by hand.
  function guard(ev) {
    const m = ev.target;
    if (!current || m !== player()) return;
    if (m.currentTime >= current.end - 0.02 || m.currentTime < current.start - 0.25) {
      m.currentTime = current.start;
      if (m.paused) { const p = m.play(); if (p && p.catch) p.catch(() => {}); }
    }
  }
  // timeupdate comes only every ~250 ms: while playing, also check on every animation frame.
  function watch() {
    const m = player();
    if (m && !m.paused) guard({ target: m });
    requestAnimationFrame(watch);
  }
  requestAnimationFrame(watch);
  [video, audio].forEach((m) => {
    m.addEventListener("timeupdate", guard);
    m.addEventListener("ended", () => { if (current && m === player()) replay(); });
    m.addEventListener("pause", () => {   // stopped at the fragment's end: go round again
      if (current && m === player() && m.currentTime >= current.end - 0.3) replay();
    });
    m.addEventListener("loadedmetadata", () => { if (current && m === player()) replay(); });
  });

  function display(it, d) {
    if (!it || it.item_id !== shownId) return;          // another item is on screen by now
    const img = $("item-image");
    const kind = d ? d.kind : "image";
    stopAll();
    current = kind === "video" || kind === "audio" ? d : null;
    img.style.display = current ? "none" : "";
    video.hidden = kind !== "video";
    audioBox.hidden = kind !== "audio";
    audioBox.style.display = kind === "audio" ? "flex" : "none";
    hint.hidden = !current;
    if (!current) return;
    const m = player();
    m.dataset.item = it.item_id;
    m.dataset.start = d.start; m.dataset.end = d.end;
    if (m.getAttribute("src") !== d.src) m.src = d.src; else replay();
    if (kind === "audio") spectro.src = d.spectrogram;
  }

  function show(it) {
    shownId = it ? it.item_id : null;
    if (!it) {
      stopAll(); current = null;
      video.hidden = true; audioBox.hidden = true; audioBox.style.display = "none"; hint.hidden = true;
      $("item-image").style.display = "";
      return;
    }
    fetchInfo(it.item_id).then((d) => display(it, d));
  }
  function preload(it) { if (it) fetchInfo(it.item_id); }

  window.addEventListener("keydown", (ev) => {
    if (!current || ev.key !== " " || ev.shiftKey || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    if (/INPUT|SELECT|TEXTAREA/.test(ev.target.tagName)) return;
    ev.preventDefault(); ev.stopImmediatePropagation();  // Space replays; label.js does not skip
    replay();
  }, true);
  return { show, preload, replay, state: () => current };
})();
