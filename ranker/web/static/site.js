// ranker site: what the static pages do without a server. Hand-written, no dependencies.
//  - a day page filters its rows by topic and by picked / scored / all;
//  - search.html searches the generated index (static/search/, a script a month) for words in titles and
//    abstracts, or finds the paper of an arXiv id.
// Text from papers is only ever set with textContent, never as markup.
(function () {
  "use strict";

  function dayFilters() {
    var form = document.querySelector("form.filters");
    if (!form) { return; }
    function apply() {
      var topic = form.elements.topic.value;
      var checked = form.querySelector('input[name="show"]:checked');
      var show = checked ? checked.value : "all";
      var n = 0;
      document.querySelectorAll("article.paper").forEach(function (a) {
        var status = a.getAttribute("data-status");
        var ok = (!topic || a.getAttribute("data-topic") === topic) &&
          (show === "all" || (show === "picked" && status === "picked") ||
           (show === "scored" && (status === "picked" || status === "scored")));
        a.hidden = !ok;
        if (ok) { n += 1; }
      });
      var shown = form.querySelector(".shown");
      if (shown) { shown.textContent = n + " shown"; }
    }
    form.addEventListener("change", apply);
    form.addEventListener("submit", function (ev) { ev.preventDefault(); apply(); });
    var submit = form.querySelector('button[type="submit"]');
    if (submit) { submit.hidden = true; }
  }

  // Words as serve's search reads them (folded by ranker.sources.normalize.unaccented, then SQLite FTS5,
  // unicode61 remove_diacritics 2): runs of letters, digits and '_', in any case, without accents ("Schrödinger"
  // is "schrodinger"), and the letters the index's `letters` name as it writes them ("Łukasz" is "lukasz",
  // "Straße" "strasse"): set from the index by search().
  var letters = {}, letter = /[]/g;
  function words(text) {
    text = text.normalize("NFKD").replace(letter, function (c) { return letters[c]; });
    return (text.replace(/\p{M}+/gu, "").toLowerCase().match(/[\p{L}\p{N}_]+/gu) || []);
  }

  // An arXiv id, bare, with its version, arXiv: or as its abs / pdf link: read step by step as
  // ranker.io.parse_arxiv_id reads one, so a query finds its paper here exactly when it does in `ranker serve`
  // (the prefix in any case, then spaces; the id itself as written).
  var ID_PREFIX = /^(?:oai:arxiv\.org:|arxiv:|((?:https?:\/\/)?(?:www\.|export\.)?arxiv\.org\/(?:abs|pdf|html)\/))/i;
  var ARXIV_ID = /^(\d{4}\.\d{4,5}|[a-z][a-z\-]*(?:\.[A-Za-z\-]{2,})?\/\d{7})(?:v\d+)?$/;

  function arxivId(q) {
    var s = q.trim(), prefix = ID_PREFIX.exec(s);
    if (prefix) {
      s = s.slice(prefix[0].length);
      if (prefix[1]) { s = s.split(/[?#]/)[0]; }     // a link's ?query and #anchor
    }
    s = s.trim().replace(/\/+$/, "");
    if (s.toLowerCase().endsWith(".pdf")) { s = s.slice(0, -4); }
    var m = ARXIV_ID.exec(s);
    return m ? m[1] : null;
  }

  // The search index is cut by month (static/search/2025-07.js, ...), which static/search/index.js lists, newest
  // first, with their counts: a search asks for every month at once, as scripts (a page opened from disk may not
  // fetch() a file), searches each as it arrives, shows what it found so far, and lets its papers go.
  function search() {
    var list = document.getElementById("results");
    if (!list) { return; }
    var status = document.getElementById("search-status");
    var q = new URLSearchParams(window.location.search).get("q") || "";
    var input = document.querySelector('form.search-page input[name="q"]');
    if (input) { input.value = q; }
    var idx = window.RANKER_SEARCH;
    if (!idx || !idx.months) { status.textContent = "The search index (static/search/index.js) did not load."; return; }
    letters = idx.letters || {};
    letter = new RegExp("[" + Object.keys(letters).map(function (c) {
      return "\\u" + ("000" + c.charCodeAt(0).toString(16)).slice(-4);
    }).join("") + "]", "g");
    var want = words(q), id = arxivId(q), how = id ? ", by arXiv id." : ", by words in titles and abstracts.";
    if (!want.length) { status.textContent = idx.papers + " papers indexed. Every word must appear in the title or the abstract."; return; }
    var hits = [], searched = 0, failed = [];
    // A paper holds every word of the query as a word of its own, the last one also as the start of one, as in
    // serve: a query word found anywhere in the text made "RL" a hit of every paper about the "world" and "NER"
    // one of every "inner" or "learner" (nearly every paper of a day for a two-letter acronym).
    var last = want.length - 1;
    function holds(text, w, i) { return text.indexOf(" " + w + (i === last ? "" : " ")) >= 0; }
    var ascii = /^[\x00-\x7f]*$/;
    function searchMonth(papers) {
      papers.forEach(function (p) {
        // p: [id, title, day, topic, picked, abstract, and its page where that is not papers/<id>.html]
        if (id) {          // its paper: no title or abstract holds an id
          if (p[0] === id) { hits.push({ p: p, inTitle: 0 }); }
          return;
        }
        // a text of plain ASCII without a query word even as a fragment cannot hold it: passed over before it is
        // cut into words (which costs 50 times more; an accented text is always cut, "schrodinger" being in it)
        var raw = (p[1] + " " + p[5]).toLowerCase();
        if (ascii.test(raw) && want.some(function (w) { return raw.indexOf(w) < 0; })) { return; }
        var title = " " + words(p[1]).join(" ") + " ", text = title + words(p[5]).join(" ") + " ";
        var inTitle = 0;
        for (var i = 0; i < want.length; i++) {
          if (!holds(text, want[i], i)) { return; }
          if (holds(title, want[i], i)) { inTitle += 1; }
        }
        hits.push({ p: p, inTitle: inTitle });
      });
    }
    function newer(x, y) { return x < y ? 1 : x > y ? -1 : 0; }
    // as one index of every paper ranked them, whatever order the months come in: the id (newest first) last
    function byRank(a, b) {
      return (b.inTitle - a.inTitle) || (b.p[4] - a.p[4]) || newer(a.p[2], b.p[2]) || newer(a.p[0], b.p[0]);
    }
    function show() {
      hits.sort(byRank);
      list.textContent = "";
      hits.slice(0, 200).forEach(function (h) {
        var p = h.p, li = document.createElement("li"), a = document.createElement("a");
        a.href = p[6] || "papers/" + p[0] + ".html";
        a.textContent = p[1];
        li.appendChild(a);
        var meta = document.createElement("div");
        meta.className = "muted";
        meta.textContent = p[0] + " \u00b7 " + p[2] + (p[3] ? " \u00b7 " + p[3] : "") + (p[4] ? " \u00b7 digest pick" : "");
        li.appendChild(meta);
        var snip = document.createElement("div");
        snip.className = "snippet";
        snip.textContent = p[5].length > 260 ? p[5].slice(0, 259) + "\u2026" : p[5];
        li.appendChild(snip);
        list.appendChild(li);
      });
      var n = hits.length + " result" + (hits.length === 1 ? "" : "s");
      // busy while months load: a screen reader says the final count once, not each month's "Searching, k of N"
      if (searched < idx.months.length) {
        status.setAttribute("aria-busy", "true");
        status.textContent = "Searching, " + searched + " of " + idx.months.length + " months so far: " + n + ".";
        return;
      }
      if (id && !hits.length) { how = ": no paper " + id + " on this site."; }
      status.textContent = n + " for \u201c" + q + "\u201d" + (hits.length > 200 ? " (the first 200)" : "") + how +
        (failed.length ? " Not searched (did not load): " + failed.join(", ") + "." : "");
      status.setAttribute("aria-busy", "false");
    }
    var loaded = window.RANKER_SEARCH_MONTHS = window.RANKER_SEARCH_MONTHS || {};
    idx.months.forEach(function (m) {          // m: [month, its papers, its file (with its version)]
      var script = document.createElement("script");
      script.onload = script.onerror = function () {
        if (loaded[m[0]]) { searchMonth(loaded[m[0]]); } else { failed.push(m[2].split("?")[0]); }
        delete loaded[m[0]];
        script.remove();
        searched += 1;
        show();
      };
      script.src = m[2];
      document.head.appendChild(script);
    });
    show();
  }

  dayFilters();
  search();
})();
