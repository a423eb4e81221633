// Shared helpers: JSON requests with the session's CSRF header, class colours, the kind
// of an item (image, video or audio, from its media type), and the keys overlay: `?`
// opens a table of every key of the screen (the page says which, per kind of item),
// `?` or Esc closes it; while it is open no other key acts.
"use strict";
window.alsql = (function () {
  const csrf = (document.querySelector('meta[name="csrf"]') || {}).content || "";
  async function request(method, url, body) {
    const opts = { method, credentials: "same-origin", headers: { "Accept": "application/json" } };
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    if (method !== "GET") opts.headers["X-CSRF-Token"] = csrf;
    const r = await fetch(url, opts);
    if (r.status === 401) { location.href = "/login?next=" + encodeURIComponent(location.pathname); throw new Error("not logged in"); }
    const data = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(typeof data.detail === "string" ? data.detail : r.status + " " + r.statusText);
    return data;
  }
  function colour(i, n) {
    const hue = Math.round((i * 360 * 0.618033) % 360);
    return "hsl(" + hue + ",70%," + (n > 20 ? 42 + (i % 3) * 8 : 45) + "%)";
  }
  function el(tag, attrs, text) {
    const e = document.createElement(tag);
    for (const k in attrs || {}) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }
  // "video", "audio" or "image": what the page shows for the item (no image for a segment).
  function kind(it) {
    const m = (it && it.media_type) || "";
    return m.startsWith("video/") ? "video" : m.startsWith("audio/") ? "audio" : "image";
  }
  // A keyboard target the page must leave alone (a form field).
  function typing(ev) { return /INPUT|SELECT|TEXTAREA/.test(ev.target.tagName) && ev.target.type !== "range"; }

  // The keys overlay, one per page: keyHelp(title, rows) makes it; rows() gives
  // [[keys, meaning], ...] for what is on screen now (keys: names shown as <kbd>). Its key
  // listener is registered here, first of all, so it sees `?` and Esc before any other.
  let help = null;
  function keyHelp(title, rows) {
    const box = el("div", { id: "key-help", class: "key-help", role: "dialog", "aria-label": "keyboard keys" });
    box.hidden = true;
    const card = el("div", { class: "key-help-card" });
    const table = el("table", { id: "key-help-table" });
    card.append(el("h2", {}, title), table, el("p", { class: "hint" }, "? or Esc closes this list"));
    box.append(card);
    document.body.append(box);
    function open() {
      table.replaceChildren(...rows().map(([keys, what]) => {
        const tr = el("tr"), k = el("td", { class: "keys" });
        keys.forEach((name, i) => { if (i) k.append(" / "); k.append(el("kbd", {}, name)); });
        tr.append(k, el("td", {}, what));
        return tr;
      }));
      box.hidden = false;
    }
    function close() { box.hidden = true; }
    box.addEventListener("click", (ev) => { if (ev.target === box) close(); });
    help = { open, close, isOpen: () => !box.hidden };
    return help;
  }
  window.addEventListener("keydown", (ev) => {
    if (!help || ev.ctrlKey || ev.metaKey || ev.altKey || typing(ev)) return;
    if (ev.key === "?") { ev.preventDefault(); ev.stopImmediatePropagation(); if (help.isOpen()) help.close(); else help.open(); }
    else if (help.isOpen()) {                 // the list is open: Esc closes it, nothing else acts
      ev.preventDefault(); ev.stopImmediatePropagation();
      if (ev.key === "Escape") help.close();
    }
  }, true);
  return { get: (u) => request("GET", u), post: (u, b) => request("POST", u, b), colour, el, csrf, kind, typing, keyHelp };
})();
