// The admin page's annotation-quality forms: one per project, filled from and saved to
// /api/projects/{id}/quality (the server checks the ranges and names a bad value).
"use strict";
(function () {
  const FIELDS = ["overlap", "overlap_annotators", "gold_rate"];
  document.querySelectorAll("form.quality").forEach((form) => {
    const url = "/api/projects/" + form.dataset.project + "/quality";
    const msg = form.querySelector(".quality-msg");
    const fill = (s) => FIELDS.forEach((f) => { form.elements[f].value = s[f]; });
    alsql.get(url).then(fill).catch((e) => { msg.textContent = String(e.message || e); });
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const body = {};
      FIELDS.forEach((f) => { const v = form.elements[f].value; if (v !== "") body[f] = Number(v); });
      alsql.post(url, body).then((s) => { fill(s); msg.textContent = "saved"; })
        .catch((e) => { msg.textContent = String(e.message || e); });
    });
  });
})();
