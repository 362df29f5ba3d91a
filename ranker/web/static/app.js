// ranker serve: thumbs up / down / undo without leaving the page. Hand-written, no dependencies.
// Without this script the same forms post normally and the server redirects back.
(function () {
  "use strict";
  var meta = document.querySelector('meta[name="csrf-token"]');
  var token = meta ? meta.getAttribute("content") : "";
  var words = { "1": "you liked this", "-1": "not for you", "0": "" };

  function show(form, label) {
    form.setAttribute("data-label", String(label));
    form.querySelector("button.up").setAttribute("aria-pressed", label > 0 ? "true" : "false");
    form.querySelector("button.down").setAttribute("aria-pressed", label < 0 ? "true" : "false");
    form.querySelector("button.undo").hidden = label === 0;
    form.querySelector(".state").textContent = words[String(label)];
    var card = form.closest("article");
    if (card) {
      card.classList.toggle("liked", label > 0);
      card.classList.toggle("disliked", label < 0);
    }
    var row = form.closest("tr");              // the labels page: the row's label column says the new label too
    if (row) {
      row.querySelectorAll("td.label [data-label]").forEach(function (s) {
        s.hidden = s.getAttribute("data-label") !== String(label);
      });
    }
  }

  document.addEventListener("submit", function (ev) {
    var form = ev.target;
    if (!form.classList || !form.classList.contains("thumbs")) { return; }
    ev.preventDefault();
    var value = ev.submitter ? ev.submitter.value : "undo";
    var current = parseInt(form.getAttribute("data-label") || "0", 10);
    if ((value === "up" && current > 0) || (value === "down" && current < 0)) { value = "undo"; }
    var body = new URLSearchParams(new FormData(form));
    body.set("label", value);
    fetch(form.getAttribute("action"), {
      method: "POST", body: body, credentials: "same-origin",
      headers: { "Accept": "application/json", "X-CSRF-Token": token }
    }).then(function (r) {
      if (!r.ok) {
        return r.json().catch(function () { return {}; }).then(function (d) {
          throw new Error(d.error || ("HTTP " + r.status));
        });
      }
      return r.json();
    }).then(function (d) {
      var pid = form.getAttribute("data-paper");
      document.querySelectorAll("form.thumbs").forEach(function (f) {
        if (f.getAttribute("data-paper") === pid) { show(f, d.label); }
      });
    }).catch(function (e) {
      form.querySelector(".state").textContent = "not saved: " + e.message;
    });
  });
})();
