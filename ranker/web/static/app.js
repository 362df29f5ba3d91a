// ranker serve: thumbs up / down / undo without leaving the page. Hand-written, no dependencies.
// Without this script the same forms post normally and the server redirects back.
(function () {
  "use strict";
  var meta = document.querySelector('meta[name="csrf-token"]');
  var token = meta ? meta.getAttribute("content") : "";
  var words = { "1": "you liked this", "-1": "not for you", "0": "" };
  var elsewhere = { "1": "changed elsewhere meanwhile: you liked this",
                    "-1": "changed elsewhere meanwhile: not for you", "0": "taken back elsewhere meanwhile" };

  // The page's count of your labels (a day's "your labels: 2 up, 1 down", the labels page's), moved by a label
  // changed here: it kept the counts the page was loaded with, whatever was clicked since, until a reload.
  // One form of a paper moves it (the first): a paper shown twice on a page is one label.
  function count(form, before, label) {
    var pid = form.getAttribute("data-paper"), counts = document.querySelector(".label-counts");
    var first = document.querySelector('form.thumbs[data-paper="' + CSS.escape(pid) + '"]');
    if (!counts || before === label || first !== form) {
      return;
    }
    [[before, -1], [label, 1]].forEach(function (change) {
      var n = counts.querySelector('[data-count="' + change[0] + '"]');
      if (n) { n.textContent = String(parseInt(n.textContent, 10) + change[1]); }
    });
    counts.hidden = false;
  }

  function show(form, label) {
    var before = parseInt(form.getAttribute("data-label") || "0", 10);
    count(form, before, label);
    var undo = form.querySelector("button.undo");
    form.setAttribute("data-label", String(label));
    form.querySelector("button.up").setAttribute("aria-pressed", label > 0 ? "true" : "false");
    form.querySelector("button.down").setAttribute("aria-pressed", label < 0 ? "true" : "false");
    // undo pressed from the keyboard hides itself: focus went to the page's body, so the next Enter did nothing
    // and a screen reader lost its place; it goes to the thumb just taken back instead
    if (label === 0 && document.activeElement === undo) {
      form.querySelector(before < 0 ? "button.down" : "button.up").focus();
    }
    undo.hidden = label === 0;
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
  // before), so the last click is the label that stays however long a busy database holds them up. What a click
  // sends is decided when its turn comes, against the label the store answered last: a click on the thumb the
  // store holds takes it back (thumbs down then up, quickly, on a liked paper is up, not an undo), and a click
  // after one that was not saved (a database busy past the server's wait) is not toggled against a label the
  // store never took (thumbs down twice is down, not an undo of the thumbs up).
  // Each click also sends the label the page shows (seen): one made in a tab that did not see a label given
  // since in another tab (or window) is refused by the server, which answers the label it holds (409); the page
  // shows that one and says why, and the clicks made before that answer (against the label the page showed
  // wrongly) are not sent.
  var posting = {};     // paper id -> the promise of its last click's post
  var waiting = {};     // paper id -> its clicks not answered yet
  var refused = {};     // paper id -> how many of its clicks were refused as made against a label changed elsewhere
  var answers = 0;      // posts answered, all papers
  var answered = {};    // paper id -> the value of answers when its last post was answered

  function post(form, body) {
    return fetch(form.getAttribute("action"), {
      method: "POST", body: body, credentials: "same-origin",
      headers: { "Accept": "application/json", "X-CSRF-Token": token }
    }).then(function (r) {
      if (!r.ok) {
        return r.json().catch(function () { return {}; }).then(function (d) {
          if (r.status === 409 && d.stale) { return d; }           // changed elsewhere: the label stored
          throw new Error(d.error || ("HTTP " + r.status));
        });
      }
      return r.json();
    }, function () {          // offline, or the server stopped: fetch's own words are "Failed to fetch"
      throw new Error("the server did not answer (is ranker serve running?)");
    });
  }

  // A page the browser kept in memory and shows again (Back, Forward) shows the labels it had when it was
  // left; the server's pages are never cached otherwise (Cache-Control: no-store), so it is loaded again.
  window.addEventListener("pageshow", function (ev) {
    if (ev.persisted) { window.location.reload(); }
  });

  // A tab or window looked at again shows the labels stored now (one request for all of them), so a thumb
  // changed in another one is seen before it is clicked here. A paper with a click on its way, or answered
  // since the request went out, keeps what its click was answered.
  // A look while the request is on its way (a window brought back twice, a label given elsewhere between the two)
  // asks again once it is answered: dropped, the page kept the older answer, without what was given meanwhile.
  var refreshing = false, again = false;
  function refresh() {
    var forms = document.querySelectorAll("form.thumbs");
    var counted = document.querySelector(".label-counts");
    if (document.visibilityState === "hidden" || (!forms.length && !counted)) {
      return;
    }
    if (refreshing) {
      again = true;
      return;
    }
    refreshing = true;
    var since = answers;
    fetch("/labels.json", { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) {
        if (!r.ok) { throw new Error("HTTP " + r.status); }
        return r.json();
      }).then(function (d) {
        forms.forEach(function (f) {
          var pid = f.getAttribute("data-paper");
          var label = d.labels[pid] || 0;
          if (waiting[pid] || (answered[pid] || 0) > since) { return; }
          if (String(label) !== f.getAttribute("data-label")) { show(f, label); }
        });
        // counted again from the answer: the labels page (and the archive) count every label of the store, a day
        // every label of its papers (data-papers), those given elsewhere on papers the page does not list (one its
        // filter hides) too; a form's show() above moves the count for the papers it shows only
        var scoped = document.querySelector(".label-counts[data-scope]");
        if (scoped && !Object.keys(waiting).length && answers === since) {   // (no label of its own changed meanwhile)
          var n = { "1": 0, "-1": 0 };
          var papers = scoped.getAttribute("data-scope") === "day"
            ? scoped.getAttribute("data-papers").split(" ") : Object.keys(d.labels);
          papers.forEach(function (pid) {
            if (d.labels[pid]) { n[String(d.labels[pid])] += 1; }
          });
          scoped.querySelectorAll("[data-count]").forEach(function (c) {
            c.textContent = String(n[c.getAttribute("data-count")]);
          });
          if (n["1"] || n["-1"]) { scoped.hidden = false; }
        }
      }).catch(function () {
        // the server out of reach or busy: the page stays as it was, and a click still says so
      }).then(function () {
        refreshing = false;
        if (again) {
          again = false;
          refresh();
        }
      });
  }
  document.addEventListener("visibilitychange", refresh);
  window.addEventListener("focus", refresh);

  // A double-click on a thumb is one click: its second click was sent as another one, against the label the
  // first had just given, so a paper double-clicked up ended with no label (given, then taken back). A click
  // the browser counts as the second (or third) of a quick series on the same spot submits nothing; a click
  // from the keyboard counts 0 and always goes.
  document.addEventListener("click", function (ev) {
    var button = ev.target.closest ? ev.target.closest("form.thumbs button") : null;
    if (button && ev.detail > 1) { ev.preventDefault(); }
  }, true);

  document.addEventListener("submit", function (ev) {
    var form = ev.target;
    if (!form.classList || !form.classList.contains("thumbs")) { return; }
    ev.preventDefault();
    var pid = form.getAttribute("data-paper");
    var asked = ev.submitter ? ev.submitter.value : "undo";
    var body = new URLSearchParams(new FormData(form));
    var state = form.querySelector(".state");
    var before = refused[pid] || 0;
    waiting[pid] = (waiting[pid] || 0) + 1;
    state.textContent = "saving\u2026";
    posting[pid] = (posting[pid] || Promise.resolve()).then(function () {
      if ((refused[pid] || 0) !== before) { return null; }    // clicked against the label shown wrongly
      var current = parseInt(form.getAttribute("data-label") || "0", 10);
      var value = asked;
      if ((value === "up" && current > 0) || (value === "down" && current < 0)) { value = "undo"; }
      body.set("label", value);
      body.set("seen", String(current));
      return post(form, body);
    }).then(function (d) {
      if (!d) {                                                     // not sent
        if (waiting[pid] === 1 && state.textContent === "saving\u2026") {
          state.textContent = words[form.getAttribute("data-label")] || "";
        }
        return;
      }
      answered[pid] = ++answers;
      document.querySelectorAll("form.thumbs").forEach(function (f) {
        if (f.getAttribute("data-paper") === pid) { show(f, d.label); }
      });
      if (d.stale) {
        refused[pid] = (refused[pid] || 0) + 1;
        state.textContent = elsewhere[String(d.label)];
      } else if (waiting[pid] > 1) {
        state.textContent = "saving\u2026";                        // a later click is still on its way
      } else if (d.label === 0) {
        // said in words: the card's live region went empty, so a screen reader heard "saving..." then nothing
        state.textContent = "label taken back";
      }
    }).catch(function (e) {
      state.textContent = "not saved: " + e.message;                    // said until the next click's answer
    }).then(function () {
      if (!--waiting[pid]) { delete waiting[pid]; }
    });
  });

  // Keys, for a morning's triage without the mouse: j / k the next / previous paper (its entry takes the focus and
  // comes into view), u or + thumbs up and d or - thumbs down on it (the same again takes it back, as a click
  // does), z takes it back, o (or Enter on the entry itself) opens its page, ? shows or hides the list of keys.
  // A key presses the paper's own button (click()), so it goes the clicks' way above: in turn, toggled against the
  // label stored, sent with the label seen and refused when that one changed elsewhere. A key typed in a field or
  // held with Ctrl, Alt or Meta is left to the field and the browser; Esc in a field hands the keys back (below).
  var help = document.getElementById("keys");
  var keyed = { "u": "up", "+": "up", "d": "down", "-": "down", "z": "undo" };

  function entries() {      // the papers of the page, in its order: a day's or a search's entries, the labels' rows
    return Array.prototype.map.call(document.querySelectorAll("form.thumbs"), function (f) {
      return f.closest("article, tr") || f;
    });
  }
  entries().forEach(function (e) { e.tabIndex = -1; });   // focusable by the keys (and a click), not by Tab

  // o (or Enter) then Back: the page is loaded again (it is never kept, no-store) and the focus was on its body, so
  // the next j began again at the first paper in view and a screen reader at the page's top. The entry opened is
  // kept in the page's own history entry (which Back comes to again), and takes the focus again.
  // Used once: kept, it took the focus again on every later return to the page, after a paper opened otherwise
  // (its title clicked) too, to an entry far from the one the page was scrolled back to, which u / d then labelled.
  var opened = history.state && history.state.opened ? document.getElementById(history.state.opened) : null;
  if (history.state && history.state.opened) {
    var left = Object.assign({}, history.state);
    delete left.opened;
    history.replaceState(left, "");
  }
  if (opened && entries().indexOf(opened) >= 0) {
    opened.focus({ preventScroll: true });
    opened.scrollIntoView({ block: "nearest" });
  }

  var last = null;          // the entry the focus was in last: Esc out of a field goes back to it
  document.addEventListener("focusin", function (ev) {
    var e = ev.target.closest ? ev.target.closest("article, tr") : null;
    if (e && e.querySelector("form.thumbs")) { last = e; }
  });

  function current(list) {   // the entry holding the focus; a paper's own page has only its own
    var at = document.activeElement;
    for (var i = 0; at && i < list.length; i++) {
      if (list[i].contains(at)) { return list[i]; }
    }
    return list.length === 1 ? list[0] : null;
  }

  document.addEventListener("keydown", function (ev) {
    var t = ev.target, key = ev.key;
    if (ev.defaultPrevented || ev.ctrlKey || ev.altKey || ev.metaKey || ev.isComposing) { return; }
    if (/^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName) || t.isContentEditable) {
      // Esc leaves the field (only Tab did, so after a search typed j / k went on typing): the focus goes back to
      // the paper it was on last, or to the page. What was typed stays, as in Firefox's search box (Chrome's
      // emptied itself): a query half typed is not lost, and the same Esc does the same in every browser.
      if (key === "Escape") {
        // (scrolled into view: the page may have been scrolled away from it, and a key then judged a paper unseen)
        if (last && last.isConnected) { last.focus({ preventScroll: true }); last.scrollIntoView({ block: "nearest" }); }
        else { t.blur(); }
        ev.preventDefault();
      }
      return;
    }
    // The list of keys is a modal dialog: it takes the focus (and Tab stays in it), the page under it is inert,
    // and ? or Esc closes it, the focus going back where it was (the browser's own, on close()).
    if (help && help.open) {
      if (key === "?" || key === "Escape") { help.close(); ev.preventDefault(); }
      return;                                    // no key reaches the papers under it
    }
    if (help && key === "?") {
      help.showModal();
      ev.preventDefault();
      return;
    }
    var list = entries(), at = current(list);
    if (key === "j" || key === "k") {
      if (!list.length) { return; }
      var i = list.indexOf(at), next;
      if (i < 0) {          // none yet: the first paper in view
        next = list.filter(function (e) { return e.getBoundingClientRect().bottom > 0; })[0] || list[0];
      } else {
        next = list[Math.max(0, Math.min(list.length - 1, i + (key === "j" ? 1 : -1)))];
      }
      next.focus({ preventScroll: true });
      next.scrollIntoView({ block: "nearest" });
      ev.preventDefault();
    } else if (at && keyed[key]) {
      var form = at.querySelector("form.thumbs"), button = form.querySelector("button." + keyed[key]);
      // z while the label is on its way takes it back too; with no label, nothing to take back
      if (!ev.repeat && (!button.hidden || waiting[form.getAttribute("data-paper")])) { button.click(); }
      ev.preventDefault();
    } else if (at && (key === "o" || (key === "Enter" && t === at))) {
      // its title's link: a paper's own page has none (its Prefilter table's first cells link its days, and o
      // opened the first of them)
      var link = at.querySelector("h3 a, :scope > td:first-child > a");
      if (link) {
        if (at.id) { history.replaceState(Object.assign({}, history.state, { opened: at.id }), ""); }
        link.click();
        ev.preventDefault();
      }
    }
  });
})();
