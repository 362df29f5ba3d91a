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

  // A paper's clicks are posted one after another, in click order (the next once the server answered the one
  // before), so the last click is the label that stays however long a busy database holds them up; a click
  // toggles against the label the clicks before it asked for, not against what the page showed before they
  // were answered (thumbs down then up, quickly, on a liked paper is up, not an undo).
  var posting = {};     // paper id -> the promise of its last click's post
  var asked = {};       // paper id -> [its last click, the label that click asks for], until it is answered
  var clicks = 0;

  function post(form, body) {
    return fetch(form.getAttribute("action"), {
      method: "POST", body: body, credentials: "same-origin",
      headers: { "Accept": "application/json", "X-CSRF-Token": token }
    }).then(function (r) {
      if (!r.ok) {
        return r.json().catch(function () { return {}; }).then(function (d) {
          throw new Error(d.error || ("HTTP " + r.status));
        });
      }
      return r.json();
    });
  }

  // A page the browser kept in memory and shows again (Back, Forward) shows the labels it had when it was
  // left; the server's pages are never cached otherwise (Cache-Control: no-store), so it is loaded again.
  window.addEventListener("pageshow", function (ev) {
    if (ev.persisted) { window.location.reload(); }
  });

  document.addEventListener("submit", function (ev) {
    var form = ev.target;
    if (!form.classList || !form.classList.contains("thumbs")) { return; }
    ev.preventDefault();
    var pid = form.getAttribute("data-paper");
    var value = ev.submitter ? ev.submitter.value : "undo";
    var current = asked[pid] ? asked[pid][1] : parseInt(form.getAttribute("data-label") || "0", 10);
    if ((value === "up" && current > 0) || (value === "down" && current < 0)) { value = "undo"; }
    var click = ++clicks;
    asked[pid] = [click, value === "up" ? 1 : value === "down" ? -1 : 0];
    var body = new URLSearchParams(new FormData(form));
    body.set("label", value);
    posting[pid] = (posting[pid] || Promise.resolve()).then(function () {
      return post(form, body);
    }).then(function (d) {
      document.querySelectorAll("form.thumbs").forEach(function (f) {
        if (f.getAttribute("data-paper") === pid) { show(f, d.label); }
      });
    }).catch(function (e) {
      form.querySelector(".state").textContent = "not saved: " + e.message;
    }).then(function () {
      if (asked[pid] && asked[pid][0] === click) { delete asked[pid]; }   // the last click answered
    });
  });
})();
