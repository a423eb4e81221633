// Playback of video segments and sound clips on the labeling and review pages.
// The page calls alsqlMedia.show(item) whenever it shows an item (null: none) and
// alsqlMedia.preload(item) when it holds one; both ask /api/items/<id>/media (how to
// play it) and /api/items/<id>/context (its source, time range and neighbours, shown by
// context.js) once per item. A segment plays its source's Media Fragment (#t=start,end)
// with controls confined to the segment: pause/play, one frame back or forward (the
// stream's rate, 1/25 s when unknown), speed 0.25x-2x, and a scrubber from 0 to the
// segment's length. It loops by hand: at the segment's last frame (a video frame callback
// where the browser has one, else every animation frame and timeupdate, one frame early)
// it pauses and seeks back to the start, so the next segment's first frame never shows.
// A sound clip's spectrogram carries time (s) and frequency (Hz) axes and a playhead.
// Keys (on a video or sound item only): Space replays from the start, Enter pauses or
// plays, , and . step one frame (video), [ and ] change the speed; the page's own keys
// (Shift+Space, class keys, Backspace) act as for images.
"use strict";
window.alsqlMedia = (function () {
  const $ = (id) => document.getElementById(id);
  const video = $("item-video"), audio = $("item-audio"), spectro = $("item-spectrogram");
  const audioBox = $("item-audio-box"), hint = $("media-hint"), bar = $("media-controls");
  const playBtn = $("media-play"), scrub = $("media-scrub"), timeEl = $("media-time"), speedSel = $("media-speed");
  const stepBtns = [$("frame-back"), $("frame-fwd")], playhead = $("spectro-playhead");
  const SPEEDS = [0.25, 0.5, 0.75, 1, 1.5, 2];
  const info = new Map();          // item_id -> Promise of {media, context}
  let current = null;              // what plays now: {kind, start, end, frame, ...} (null: image or none)
  let shownId = null, shownKind = "image";
  let wanted = true;               // playing is wanted (false after pause, a frame step or scrubbing)
  let wrapping = false;            // our own seek back to the start is under way
  let speed = 1;
  video.style.width = "70%"; video.style.imageRendering = "pixelated";   // CSSOM: allowed by the CSP

  function json(url) {
    return fetch(url, { credentials: "same-origin" }).then((r) => (r.ok ? r.json() : null)).catch(() => null);
  }
  function fetchInfo(id) {
    if (!info.has(id)) {
      info.set(id, Promise.all([json("/api/items/" + id + "/media"), json("/api/items/" + id + "/context")])
        .then(([media, context]) => ({ media, context })));
      if (info.size > 64) info.delete(info.keys().next().value);
    }
    return info.get(id);
  }
  function player() { return current ? (current.kind === "video" ? video : audio) : null; }
  function length() { return current ? Math.max(0, current.end - current.start) : 0; }
  function lastTime() { return Math.max(current.start, current.end - current.frame); }   // one frame before the end
  function clampTime(t) { return Math.min(Math.max(t, current.start), lastTime()); }
  function go(m) { const p = m.play(); if (p && p.catch) p.catch(() => {}); }   // autoplay may be refused before a key

  function stopAll() { [video, audio].forEach((m) => { if (!m.paused) m.pause(); }); }
  function replay() {
    const m = player();
    if (!m) return;
    wanted = true; wrapping = false;
    m.currentTime = current.start;
    go(m);
  }
  function toggle() {
    const m = player();
    if (!m) return;
    if (m.paused && !wrapping) { wanted = true; if (m.currentTime >= lastTime() || m.currentTime < current.start) m.currentTime = current.start; go(m); }
    else { wanted = false; m.pause(); }     // (while wrapping: it stays at the start)
  }
  // The segment's last frame is on screen (or about to be): pause there, then back to the start.
  function wrap(m) {
    if (wrapping) return;
    wrapping = true;
    m.pause();
    m.currentTime = current.start;
  }
  function step(n) {
    const m = player();
    if (!m || current.kind !== "video") return;
    wanted = false; m.pause();
    const f = current.frame, frames = Math.max(1, Math.round(length() / f));
    const k = Math.min(frames - 1, Math.max(0, Math.floor((m.currentTime - current.start) / f + 1e-3) + n));
    m.currentTime = current.start + k * f + Math.min(0.001, f / 10);   // just inside frame k
  }
  function setSpeed(v) {
    speed = SPEEDS.includes(v) ? v : 1;
    speedSel.value = String(speed);
    [video, audio].forEach((m) => { m.playbackRate = speed; m.defaultPlaybackRate = speed; });
  }
  function faster(d) { setSpeed(SPEEDS[Math.min(SPEEDS.length - 1, Math.max(0, SPEEDS.indexOf(speed) + d))]); }

  [video, audio].forEach((m) => {
    m.addEventListener("seeked", () => {
      if (current && m === player() && wrapping) { wrapping = false; if (wanted) go(m); }
    });
    m.addEventListener("timeupdate", () => {
      if (current && m === player() && !m.paused && m.currentTime >= lastTime()) wrap(m);
    });
    // The browser stopped at the fragment's end by itself (a missed check): go round again.
    m.addEventListener("pause", () => {
      if (current && m === player() && wanted && !wrapping && m.currentTime >= lastTime() - 0.05) wrap(m);
    });
    m.addEventListener("ended", () => { if (current && m === player() && wanted) wrap(m); });
    m.addEventListener("loadedmetadata", () => { if (current && m === player()) { setSpeed(speed); replay(); } });
  });
  if ("requestVideoFrameCallback" in HTMLVideoElement.prototype) {
    const onFrame = (now, meta) => {   // meta.mediaTime: the time of the frame just presented
      if (current && current.kind === "video" && !video.paused && !wrapping
          && meta.mediaTime >= current.end - 1.5 * current.frame) wrap(video);
      video.requestVideoFrameCallback(onFrame);
    };
    video.requestVideoFrameCallback(onFrame);
  }
  function tick() {                  // every animation frame: the fallback check and the readouts
    const m = player();
    if (m) {
      if (!m.paused && !wrapping && m.currentTime >= lastTime()) wrap(m);
      const t = Math.min(Math.max(m.currentTime - current.start, 0), length());
      if (document.activeElement !== scrub) scrub.value = String(t);
      timeEl.textContent = t.toFixed(2) + " / " + length().toFixed(2) + " s";
      playBtn.textContent = m.paused && !wrapping ? "▶ play" : "‖ pause";
      if (current.kind === "audio") playhead.style.left = (100 * t / (length() || 1)).toFixed(2) + "%";
    }
    requestAnimationFrame(tick);
  }
  requestAnimationFrame(tick);

  playBtn.addEventListener("click", toggle);
  stepBtns[0].addEventListener("click", () => step(-1));
  stepBtns[1].addEventListener("click", () => step(1));
  speedSel.addEventListener("change", () => { setSpeed(Number(speedSel.value)); speedSel.blur(); });
  scrub.addEventListener("input", () => {   // confined: never before the start, never at or past the end
    const m = player();
    if (!m) return;
    wanted = false; wrapping = false; m.pause();
    m.currentTime = clampTime(current.start + Number(scrub.value));
  });
  scrub.addEventListener("change", () => scrub.blur());   // the page's keys work again at once

  function axes(ctx) {   // the spectrogram's frequency (HTK mel bands) and time axes
    const freq = $("spectro-freq"), time = $("spectro-time"), sp = ctx && ctx.spectrogram;
    const ticks = [];
    if (sp) {
      const mel = (f) => 2595 * Math.log10(1 + f / 700), band = (mel(sp.fmax) - mel(sp.fmin)) / (sp.bands + 1);
      for (const f of [100, 250, 500, 1000, 2000, 4000, 8000, 16000]) {
        const y = ((mel(f) - mel(sp.fmin)) / band - 0.5) / sp.bands;   // band k fills [k, k+1) / bands from the bottom
        if (f > sp.fmin && f < sp.fmax && y > 0.03 && y < 0.97) ticks.push([y, f >= 1000 ? f / 1000 + " kHz" : f + " Hz"]);
      }
    }
    freq.replaceChildren(...ticks.map(([y, text]) => { const e = alsql.el("span", { class: "tick" }, text); e.style.bottom = (100 * y) + "%"; return e; }));
    const len = length(), stepS = len <= 1.5 ? 0.25 : len <= 4 ? 0.5 : len <= 10 ? 1 : len <= 30 ? 5 : 10;
    const marks = [];
    for (let t = 0; t <= len + 1e-9; t += stepS) marks.push(t);
    time.replaceChildren(...marks.map((t) => {
      const e = alsql.el("span", { class: "tick" }, (Math.round(t * 100) / 100) + (t === 0 ? " s" : ""));
      e.style.left = (100 * t / (len || 1)) + "%";
      return e;
    }));
  }

  function display(it, got) {
    if (!it || it.item_id !== shownId) return;          // another item is on screen by now
    const d = got.media, ctx = got.context;
    const kind = d ? d.kind : "image";
    stopAll();
    current = kind === "video" || kind === "audio" ? { ...d, frame: (ctx && ctx.frame) || (kind === "video" ? 1 / 25 : 0.01) } : null;
    if (window.alsqlContext) alsqlContext.show(current ? ctx : null);
    $("item-image").style.display = current ? "none" : "";
    video.hidden = kind !== "video";
    audioBox.hidden = kind !== "audio";
    audioBox.style.display = kind === "audio" ? "flex" : "none";
    hint.hidden = !current; bar.hidden = !current;
    if (!current) return;
    stepBtns.forEach((b) => { b.hidden = kind !== "video"; });
    scrub.max = String(length()); scrub.step = String(kind === "video" ? current.frame : 0.01); scrub.value = "0";
    wanted = true; wrapping = false;
    const m = player();
    m.dataset.item = it.item_id;
    m.dataset.start = d.start; m.dataset.end = d.end; m.dataset.frame = current.frame;
    if (kind === "audio") { spectro.src = d.spectrogram; axes(ctx); }
    if (m.getAttribute("src") !== d.src) m.src = d.src; else { setSpeed(speed); replay(); }
  }

  function show(it) {
    shownId = it ? it.item_id : null;
    shownKind = alsql.kind(it);
    if (shownKind === "image") {
      stopAll(); current = null;
      video.hidden = true; audioBox.hidden = true; audioBox.style.display = "none"; hint.hidden = true; bar.hidden = true;
      $("item-image").style.display = "";
      if (window.alsqlContext) alsqlContext.show(null);
      return;
    }
    fetchInfo(it.item_id).then((got) => display(it, got));
  }
  function preload(it) { if (it && alsql.kind(it) !== "image") fetchInfo(it.item_id); }
  // The keys of a video or sound item, for the page's keys overlay.
  function keyRows(kind) {
    if (kind === "image") return [];
    const rows = [[["Enter"], "pause / play"]];
    if (kind === "video") rows.push([[",", "."], "one frame back / forward (pauses)"]);
    rows.push([["[", "]"], "slower / faster (0.25× to 2×)"]);
    return rows;
  }

  window.addEventListener("keydown", (ev) => {
    if (shownKind === "image" || ev.ctrlKey || ev.metaKey || ev.altKey || alsql.typing(ev)) return;
    const k = ev.key;
    let act = null;
    if (k === " " && !ev.shiftKey) act = replay;      // Shift+Space is the page's: skip / go on
    else if (k === "Enter") act = toggle;
    else if ((k === "," || k === ".") && shownKind === "video") act = () => step(k === "," ? -1 : 1);
    else if (k === "[" || k === "]") act = () => faster(k === "[" ? -1 : 1);
    if (!act) return;
    ev.preventDefault(); ev.stopImmediatePropagation();
    act();
  }, true);
  return { show, preload, replay, toggle, step, keyRows, kind: () => shownKind, state: () => current };
})();
