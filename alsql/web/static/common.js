// Shared helpers: JSON requests with the session's CSRF header, class colours, and the kind
// of an item (image, video or audio, from its media type).
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
  // A keyboard target the page must leave alone (a form field; not the scrubber).
  function typing(ev) { return /INPUT|SELECT|TEXTAREA/.test(ev.target.tagName) && ev.target.type !== "range"; }
  return { get: (u) => request("GET", u), post: (u, b) => request("POST", u, b), colour, el, csrf, kind, typing };
})();
