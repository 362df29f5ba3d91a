"""The pages for a screen-reader user and a low-vision user: `ranker serve` and a `ranker site` build in a real
headless Chromium, checked through the accessibility tree the browser builds (Playwright's aria snapshots and
roles) and by small checks of our own run in the page (text contrast from the computed colours, links told from
text, reflow at 320 CSS pixels). No third-party checker."""
from __future__ import annotations

import re
import urllib.parse

import pytest

from ranker.store import Store
from ranker.web.site import build_site

from webstore import DAY, OTHER_DAY, fill_store
from webtools import browser_or_skip, needs_browser, start_server, watched_page


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(the server, its database, a static site built from the same store, a liked and a disliked paper)."""
    tmp = tmp_path_factory.mktemp("a11y")
    db = tmp / "ranker.sqlite3"
    fill_store(db, tmp / "out", days=(DAY, OTHER_DAY))
    with Store(db) as s:
        ids = s.day_paper_ids(DAY)
        s.set_label(ids[0], 1, DAY)
        s.set_label(ids[1], -1, DAY)
        build_site(s, tmp / "site")
    server = start_server(db, tmp / "serve.log")
    try:
        yield server, db, tmp / "site", ids[:2]
    finally:
        server.stop()


@pytest.fixture(scope="module")
def chromium():
    with browser_or_skip() as b:
        yield b


def _pages(server, site, pid) -> list[str]:
    """Every kind of page, served and static."""
    q = urllib.parse.urlencode({"q": "learning", "mode": "words"})
    return [server.url + p for p in ("/", f"/month/{DAY[:7]}", f"/day/{DAY}", f"/paper/{pid}", "/labels",
                                     f"/search?{q}", "/search")] + \
        [(site / p).as_uri() for p in ("index.html", f"months/{DAY[:7]}.html", f"days/{DAY}.html",
                                       f"papers/{pid}.html")] + [(site / "search.html").as_uri() + "?q=learning"]


def _settle(page, url: str) -> None:
    page.goto(url)
    # a page's autofocus runs at a later rendering step than the load event: a check that moved the focus before
    # it ran had it taken back (the empty search page's box), by chance of timing (it failed on CI's machine)
    page.wait_for_function("() => { const a = document.querySelector('[autofocus]'); "
                           "return !a || document.activeElement === a || document.activeElement !== document.body; }")
    if url.startswith("file:") and "search.html" in url:
        page.wait_for_function("() => / for \\u201c/.test(document.getElementById('search-status').textContent)")


def _found_on_every_page(served, chromium, script: str) -> dict:
    """url -> what `script` found on it, for every page that found something (no script error on any page)."""
    server, _, site, (liked, _) = served
    page, errors = watched_page(chromium)
    found = {}
    try:
        for url in _pages(server, site, liked):
            _settle(page, url)
            got = page.evaluate(script)
            if got:
                found[url] = got
        assert errors == []
    finally:
        page.close()
    return found



# the colours of a text as drawn, against what is drawn under it: the first ancestor with a background (an SVG text:
# the shape of its plot under its middle, or the plot's own background)
CONTRAST = r"""() => {
  function rgb(c) {
    const m = /rgba?\(([^)]*)\)/.exec(c || "");
    if (!m) { return null; }
    const v = m[1].split(/[\s,\/]+/).filter(Boolean).map(Number);
    return { c: v.slice(0, 3), a: v.length > 3 ? v[3] : 1 };
  }
  function lum(c) {
    const f = x => { x /= 255; return x <= 0.03928 ? x / 12.92 : Math.pow((x + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2]);
  }
  function ratio(a, b) { const x = lum(a), y = lum(b); return (Math.max(x, y) + 0.05) / (Math.min(x, y) + 0.05); }
  function under(e) {
    for (; e; e = e.parentElement) {
      const c = rgb(getComputedStyle(e).backgroundColor);
      if (c && c.a > 0) { return c.c; }
    }
    return [255, 255, 255];
  }
  function underSvg(t) {
    const b = t.getBBox(), x = b.x + b.width / 2, y = b.y + b.height / 2;
    let found = null;
    for (const r of t.ownerSVGElement.querySelectorAll("rect")) {
      if (r.compareDocumentPosition(t) & Node.DOCUMENT_POSITION_FOLLOWING) {
        const rb = r.getBBox(), fill = rgb(getComputedStyle(r).fill);
        if (fill && x >= rb.x && x <= rb.x + rb.width && y >= rb.y && y <= rb.y + rb.height) { found = fill.c; }
      }
    }
    return found || under(t.ownerSVGElement);
  }
  const low = [], walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n; (n = walker.nextNode());) {
    const e = n.parentElement, text = n.textContent.trim();
    if (!text || !e.getClientRects().length || e.closest("[hidden], dialog:not([open]), option")) { continue; }
    const svgText = e.closest("svg") ? e.closest("text") : null;
    const fg = rgb(svgText ? getComputedStyle(svgText).fill : getComputedStyle(e).color);
    const bg = svgText ? underSvg(svgText) : under(e);
    const r = ratio(fg.c, bg);
    if (r < 4.5) { low.push(`${text.slice(0, 40)} (${e.tagName.toLowerCase()}.${e.getAttribute("class") || ""}): ${r.toFixed(2)}`); }
  }
  // a text box is known by its border alone: 3:1 against the page around it (WCAG 1.4.11)
  for (const i of document.querySelectorAll("input[type=search]")) {
    const r = ratio(rgb(getComputedStyle(i).borderTopColor).c, under(i.parentElement));
    if (r < 3) { low.push(`the border of ${i.name} box: ${r.toFixed(2)}`); }
  }
  return Array.from(new Set(low));
}"""


@needs_browser
def test_every_text_is_drawn_at_aa_contrast_against_what_is_under_it(served, chromium):
    """WCAG AA: 4.5:1 for every text of every page (a liked and a disliked paper's card, the badges, the plots'
    axes and the counts in the score grid's cells) and 3:1 for the search box's border. The muted grey on a
    labelled card (4.40:1), the 'digest pick' badge (3.93:1), the plots' grey axes (4.48:1), white counts on the
    grid's middle blues (down to 2.3:1) and the search box's border (1.58:1) were under it."""
    low = _found_on_every_page(served, chromium, CONTRAST)
    assert low == {}, "\n".join(f"{u}: {v}" for u, v in low.items())


def _read(locator) -> str:
    """What a screen reader reads of `locator`: its aria snapshot, the space the snapshot puts between an element's
    words and the punctuation after them taken out."""
    return re.sub(r"\s+([,.])", r"\1", locator.aria_snapshot())


def test_every_count_in_the_score_grid_is_written_at_aa_contrast_on_its_cell():
    """The grid's cells go from white to the accent's blue with their count; a count was white from the middle of
    the ramp on, down to 2.3:1 there (and no colour of the two reaches 4.5:1 on some of its blues)."""
    from ranker.web.plots import score_grid
    pairs = [(r, n) for r in range(1, 11) for n in range(1, 11) for _ in range((r * 10 + n) % 23 + 1)]
    svg = score_grid(pairs, 8, 7)
    cells = re.findall(r'<rect x="[^"]+" y="[^"]+" width="23" height="23" fill="rgb\((\d+),(\d+),(\d+)\)"/>'
                       r'<text [^>]*font-size="9" fill="(#[0-9a-f]+)">(\d+)</text>', svg)
    assert len(cells) == 100

    def lum(rgb):
        f = [c / 255 for c in rgb]
        f = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in f]
        return 0.2126 * f[0] + 0.7152 * f[1] + 0.0722 * f[2]
    low = []
    for r, g, b, ink, count in cells:
        ink = ink.lstrip("#")
        ink = tuple(int(ink[i] * 2, 16) for i in range(3)) if len(ink) == 3 else \
            tuple(int(ink[i:i + 2], 16) for i in (0, 2, 4))
        x, y = lum((int(r), int(g), int(b))), lum(ink)
        if (max(x, y) + 0.05) / (min(x, y) + 0.05) < 4.5:
            low.append((count, (r, g, b), ink))
    assert low == []


@needs_browser
def test_the_thumbs_icons_that_count_labels_are_read_as_words(served, chromium):
    """The archive's, a day's and the labels page's counts of labels, and the archive tables' column of them,
    showed a thumb icon hidden from screen readers and no word: read out as 'Your labels: 1 , 1', a column
    headed '/', '1 and 1 .'."""
    from playwright.sync_api import expect
    server, *_ = served
    page, errors = watched_page(chromium)
    try:
        page.goto(server.url + "/")
        said = _read(page.locator("main"))
        assert "Your labels: 1 thumbs up, 1 thumbs down" in said, said[:600]
        expect(page.get_by_role("columnheader", name="your labels: thumbs up / thumbs down").first).to_be_visible()
        page.goto(f"{server.url}/day/{DAY}")
        assert "your labels: 1 thumbs up, 1 thumbs down" in _read(page.locator("p.counts"))
        page.goto(server.url + "/labels")
        assert "1 thumbs up and 1 thumbs down." in _read(page.locator("main > p").first)
        assert errors == []
    finally:
        page.close()


@needs_browser
def test_taking_a_label_back_is_said_in_the_live_region(served, chromium):
    """A thumb given is said in the card's live region ('you liked this'); taken back (the same thumb again, or
    z) it said nothing at all: the text went empty, so a screen reader heard 'saving...' and then silence."""
    from playwright.sync_api import expect
    server, db, _, _ = served
    page, errors = watched_page(chromium)
    try:
        page.goto(f"{server.url}/day/{OTHER_DAY}")
        card = page.locator("article.paper").nth(2)
        state = card.locator("form.thumbs .state")
        assert state.get_attribute("aria-live") == "polite"
        card.locator("button.up").click()
        expect(state).to_have_text("you liked this")
        card.locator("button.up").click()
        expect(card.locator("button.up")).to_have_attribute("aria-pressed", "false")
        expect(state).to_have_text("label taken back")
        card.locator("button.down").click()
        expect(state).to_have_text("not for you")
        card.focus()
        page.keyboard.press("z")
        expect(state).to_have_text("label taken back")
        assert errors == []
    finally:
        page.close()


# headings, landmarks, names: what a screen reader's lists of them (headings, landmarks, form fields) show
OUTLINE = r"""() => {
  const hs = Array.from(document.querySelectorAll("h1, h2, h3, h4, h5, h6")).filter(h => h.getClientRects().length);
  const levels = hs.map(h => +h.tagName[1]);
  const skips = levels.filter((l, i) => i > 0 && l > levels[i - 1] + 1).length;
  return { h1: levels.filter(l => l === 1).length, first: levels[0], skips: skips, lang: document.documentElement.lang };
}"""


@needs_browser
def test_each_page_has_one_h1_an_outline_named_landmarks_and_named_controls(served, chromium):
    """Per page: lang, one h1 first and no heading level skipped (a search's results were h3 under the h1); the
    site's and the crumbs' navigation landmarks told apart by name (both were 'navigation'); the day's Show
    radios a group named Show (they were three loose radios 'all', 'picked', 'scored'); a paper's entry, which
    j / k focus, named by its title (it was a nameless 'article'); every button, link, field and column header
    named (the labels page's column of thumbs was headed by nothing)."""
    from playwright.sync_api import expect
    server, _, site, (liked, _) = served
    page, errors = watched_page(chromium)
    bad = {}
    try:
        for url in _pages(server, site, liked):
            _settle(page, url)
            o = page.evaluate(OUTLINE)
            if o != {"h1": 1, "first": 1, "skips": 0, "lang": "en"}:
                bad[url] = o
            navs = page.get_by_role("navigation")
            names = [navs.nth(i).evaluate("e => e.getAttribute('aria-label')") for i in range(navs.count())]
            if None in names or len(set(names)) != len(names):
                bad[url + " navigation"] = names
            for role in ("button", "link", "searchbox", "combobox", "radio", "columnheader"):
                loc = page.get_by_role(role)
                nameless = [loc.nth(i).evaluate("e => e.outerHTML.slice(0, 80)") for i in range(loc.count())
                            if not loc.nth(i).evaluate("e => (e.innerText || e.value || '').trim() || "
                                                       "e.getAttribute('aria-label') || e.labels && e.labels.length")]
                if nameless:
                    bad[url + " " + role] = nameless
        assert bad == {}, "\n".join(f"{u}: {v}" for u, v in bad.items())
        for base in (f"{server.url}/day/{DAY}", (site / f"days/{DAY}.html").as_uri()):
            page.goto(base)
            group = page.get_by_role("radiogroup", name="Show")
            expect(group.get_by_role("radio")).to_have_count(3)
            title = page.locator("article.paper h3").first.inner_text()
            expect(page.get_by_role("article", name=title, exact=True)).to_have_count(1)
        assert errors == []
    finally:
        page.close()


@needs_browser
def test_the_static_sites_filter_and_search_say_what_they_found_in_a_live_region(served, chromium):
    """On the static site the day's filters hide papers and its search fills its results with no page load: the
    count shown ('9 shown') and the search's status line changed silently for a screen reader."""
    from playwright.sync_api import expect
    _, _, site, _ = served
    page, errors = watched_page(chromium)
    try:
        page.goto((site / f"days/{DAY}.html").as_uri())
        shown = page.get_by_role("status").filter(has_text="shown")
        expect(shown).to_have_text(re.compile(r"^\d+ shown$"))
        page.get_by_role("radio", name="picked").check()
        expect(shown).to_have_text(f"{page.locator('article.paper:visible').count()} shown")
        page.goto((site / "search.html").as_uri() + "?q=learning")
        expect(page.get_by_role("status")).to_have_text(re.compile("results for \u201clearning\u201d"))
        assert errors == []
    finally:
        page.close()


# every state the static search's status line is seen in, as (its text, its aria-busy), from the page's start
STATUS_STATES = r"""
window.statusStates = [];
new MutationObserver(() => {
  const s = document.getElementById("search-status");
  if (!s) { return; }
  const state = [s.textContent, s.getAttribute("aria-busy")], last = window.statusStates.at(-1);
  if (!last || last[0] !== state[0] || last[1] !== state[1]) { window.statusStates.push(state); }
}).observe(document, { subtree: true, childList: true, characterData: true, attributes: true });
"""


@needs_browser
def test_the_static_search_says_its_result_once_not_each_months_progress(served, chromium):
    """The static search's status (a live region) was rewritten 'Searching, k of N months...' as each month
    arrived, every rewrite read out: it is busy while months load, and the final count is said once."""
    from playwright.sync_api import expect
    _, _, site, _ = served
    page, errors = watched_page(chromium)
    try:
        page.add_init_script(STATUS_STATES)
        page.goto((site / "search.html").as_uri() + "?q=learning")
        expect(page.get_by_role("status")).to_have_text(re.compile("results for \u201clearning\u201d"))
        states = page.evaluate("window.statusStates")
        searching = [s for s in states if s[0].startswith("Searching")]
        assert searching and all(busy == "true" for _, busy in searching), states
        assert "results for" in states[-1][0] and states[-1][1] == "false", states
        assert errors == []
    finally:
        page.close()


LINKS = r"""() => {
  // a link in a line of text, told from the text around it by colour alone, needs 3:1 between the two colours
  // (WCAG 1.4.1, F73) or an underline: the crumbs' links were the muted grey's 1.13:1 from it, with no underline
  function rgb(c) { return /rgba?\(([^)]*)\)/.exec(c)[1].split(/[\s,\/]+/).slice(0, 3).map(Number); }
  function lum(c) {
    const f = x => { x /= 255; return x <= 0.03928 ? x / 12.92 : Math.pow((x + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2]);
  }
  const bad = [];
  for (const a of document.querySelectorAll("main a[href]")) {
    const box = a.parentElement;
    const own = Array.from(box.childNodes).some(n => n.nodeType === 3 && /\w/.test(n.textContent));
    if (!own || !a.getClientRects().length || /\bunderline\b/.test(getComputedStyle(a).textDecorationLine)) { continue; }
    const x = lum(rgb(getComputedStyle(a).color)), y = lum(rgb(getComputedStyle(box).color));
    const r = (Math.max(x, y) + 0.05) / (Math.min(x, y) + 0.05);
    if (r < 3) { bad.push(`${a.textContent.trim().slice(0, 30)}: ${r.toFixed(2)}`); }
  }
  return bad;
}"""


@needs_browser
def test_a_link_in_a_line_of_text_is_not_told_by_its_colour_alone(served, chromium):
    """A colour-blind or low-vision user tells the crumbs' links (Archive > 2025-05 > the day) and the archive's
    '(list)' from the words around them: they were only bluer, 1.03:1 from the muted grey, with no underline."""
    bad = _found_on_every_page(served, chromium, LINKS)
    assert bad == {}, "\n".join(f"{u}: {v}" for u, v in bad.items())


@needs_browser
def test_every_page_reflows_at_320_css_pixels(served, chromium):
    """WCAG 1.4.10: at 320 CSS pixels (a phone, or 400% zoom of a 1280 px window) no page scrolls sideways (a
    table may, inside itself). The day's topic filter kept its longest topic's width and pushed the page past it."""
    server, _, site, (liked, _) = served
    page = chromium.new_page(viewport={"width": 320, "height": 700})
    wide = {}
    try:
        for url in _pages(server, site, liked):
            _settle(page, url)
            width = page.evaluate("() => document.documentElement.scrollWidth")
            if width > 320:
                wide[url] = width
    finally:
        page.close()
    assert wide == {}, "\n".join(f"{u}: {v}" for u, v in wide.items())


@needs_browser
def test_the_focused_row_of_the_labels_page_shows_its_whole_focus_ring(served, chromium):
    """j/k on the labels page focus a table row, drawn with an outline: the cells made positioned (for their
    screen-reader words) were painted over it, and the first row's ring had no top edge (the header's shaded
    cells covered it)."""
    import io

    from PIL import Image          # Pillow: matplotlib needs it, so ranker does (its skip hid from REQUIRE_ALL)
    server, *_ = served
    page, errors = watched_page(chromium)
    try:
        page.goto(server.url + "/labels")
        page.keyboard.press("j")                       # the first row: the header's shaded cells above it
        row = page.locator("tr:focus")
        box = row.bounding_box()
        colour = page.evaluate("r => getComputedStyle(r).outlineColor", row.element_handle())
        want = tuple(int(c) for c in re.findall(r"\d+", colour)[:3])
        shot = Image.open(io.BytesIO(page.screenshot())).convert("RGB")
        scale = shot.width / page.viewport_size["width"]

        def ring_share(y: float) -> float:
            xs = range(int(box["x"] + 8), int(box["x"] + box["width"] - 8), 3)
            near = [max(abs(a - b) for a, b in zip(shot.getpixel((int(x * scale), int(y * scale))), want)) <= 40
                    for x in xs]
            return sum(near) / len(near)

        # the outline: 3 px wide, 2 px outside the row's box; its middle line on each edge
        top, bottom = box["y"] - 3.5, box["y"] + box["height"] + 3.5
        assert ring_share(bottom) > .9                 # the check itself sees a ring edge
        assert ring_share(top) > .9, f"the top edge of the ring: {ring_share(top):.0%} drawn"
        assert errors == []
    finally:
        page.close()


SKIP_STATE = """() => {
  const a = document.activeElement, r = a.getBoundingClientRect();
  return { text: (a.innerText || "").trim(), href: a.getAttribute("href"), inMain: !!a.closest("main"),
           shown: r.width > 0 && r.height > 0 && r.left >= 0 && r.top >= 0 && r.right <= innerWidth };
}"""


@needs_browser
def test_the_first_tab_stop_of_every_page_skips_to_its_content(served, chromium):
    """WCAG 2.4.1: a keyboard user went through five Tab stops (the brand, the site's links, the search box and its
    button) on every page before its own content. Now the first Tab stop is a "Skip to content" link, shown
    while it has the focus (out of sight before), and Enter on it puts the focus in the main landmark, from
    where the next Tab goes on in the content: served and static pages alike, an error page too."""
    server, _, site, (liked, _) = served
    page, errors = watched_page(chromium)
    bad = {}
    try:
        for url in _pages(server, site, liked) + [server.url + "/paper/2501.99999"]:
            _settle(page, url)
            if page.evaluate("() => !!document.activeElement.closest('main')"):
                # the empty search page puts the focus in its own box (autofocus): in the content already; the
                # keys from the page's top are checked too, from the body
                page.evaluate("() => { document.body.tabIndex = -1; document.body.focus(); "
                              "document.body.removeAttribute('tabindex'); }")
            link = page.locator("a.skip")
            before = link.evaluate("e => { const r = e.getBoundingClientRect(); "
                                   "return r.right > 0 && r.left < innerWidth; }")
            page.keyboard.press("Tab")
            first = page.evaluate(SKIP_STATE)
            page.keyboard.press("Enter")
            target = page.evaluate(SKIP_STATE)
            page.keyboard.press("Tab")
            after = page.evaluate(SKIP_STATE)
            if (before or first != {"text": "Skip to content", "href": "#main", "inMain": False, "shown": True}
                    or not target["inMain"] or not after["inMain"]):
                bad[url] = (before, first, target, after)
        assert bad == {}, "\n".join(f"{u}: {v}" for u, v in bad.items())
        assert errors == []
    finally:
        page.close()
