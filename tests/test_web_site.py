"""`ranker site`: static pages of the store, opened from disk (file://) in a real headless Chromium; rebuilding
rewrites only what changed."""
from __future__ import annotations

import shutil

import pytest

from ranker.store import Store
from ranker.web.render import paper_file
from ranker.web.site import STATE, build_site

from conftest import ranker
from webstore import DAY, EMBEDDER, HOSTILE_ID, HOSTILE_TITLE, OTHER_DAY, fill_store
from webtools import browser_or_skip, needs_browser, own_pages, read_only_copy, watched_page



@pytest.fixture(scope="module")
def chromium():
    """One Chromium for the module's browser tests; each test's pages are its own (webtools.own_pages)."""
    with browser_or_skip() as b:
        yield b


@pytest.fixture(scope="module")
def store_db(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("site")
    db = tmp / "ranker.sqlite3"
    fill_store(db, tmp / "out", days=(DAY,))
    return db


def _search_site(page, out, q: str) -> None:
    """The static site's search page asked `q`, once it has said what it found."""
    from urllib.parse import urlencode
    page.goto((out / "search.html").as_uri() + "?" + urlencode({"q": q}))
    page.wait_for_function("() => / for \\u201c/.test(document.getElementById('search-status').textContent)")


def _index(root) -> dict:
    """The site's search index, {month: its papers' rows}, read from its scripts as a browser runs them."""
    import json
    months = {}
    for f in sorted((root / "static" / "search").glob("????-??.js")):
        text = f.read_text(encoding="utf-8")
        head = f"window.RANKER_SEARCH_MONTHS[{json.dumps(f.stem)}] = "
        assert text.startswith(head) and text.endswith(";\n"), f
        months[f.stem] = json.loads(text[len(head):-2])
    return months


def _mtimes(root):
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


def test_site_cli_writes_pages_and_a_rebuild_rewrites_only_what_changed(store_db, tmp_path):
    out = tmp_path / "site"
    r = ranker("site", "--out", out, "--db", store_db)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(out / "index.html")
    assert "site: 1 day, 193 papers;" in r.stderr and "0 unchanged" in r.stderr
    for rel in ("index.html", f"days/{DAY}.html", "months/2025-05.html", "search.html", "static/style.css",
                "static/site.js", "static/search/index.js", f"papers/{paper_file(HOSTILE_ID)}"):
        assert (out / rel).is_file(), rel
    html = (out / f"days/{DAY}.html").read_text()
    assert 'class="thumbs"' not in html and "csrf" not in html and 'action="/label"' not in html   # no feedback
    assert 'href="/' not in html and 'src="/' not in html                                    # relative links only
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in html and "<script>window.__pwned" not in html
    index = (out / "static/search/2025-05.js").read_text()         # the hostile paper's month
    assert index.startswith('window.RANKER_SEARCH_MONTHS["2025-05"] = [') and HOSTILE_ID in index
    assert "<script>" not in index and not (out / "static/search-index.js").exists()

    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]     # atomic writes leave no temporary file
    before = _mtimes(out)
    r = ranker("site", "--out", out, "--db", store_db)
    assert r.returncode == 0 and "0 files written" in r.stderr, r.stderr
    assert _mtimes(out) == before                                     # idempotent: nothing touched

    # a label changes nothing published; a new day rewrites that day, the lists that name it, and its papers
    with Store(store_db) as s:
        s.set_label("2505.09572", 1, DAY)
        assert build_site(s, out).written == []
        fill_store(store_db, tmp_path / "out2", days=(OTHER_DAY,), hostile=False)
        res = build_site(s, out)
    changed = set(res.written)
    assert f"days/{DAY}.html" in changed                               # its "next day" link is new
    assert {"index.html", f"days/{OTHER_DAY}.html", "months/2025-07.html", "static/search/index.js",
            "static/search/2025-07.js"} <= changed and "static/search/2025-05.js" not in changed
    # an old day's paper page changes only when its similar papers (the corpus index) now name a new-day paper
    from ranker.web import views
    from ranker.web.search import corpus_similar
    with Store(store_db) as s:
        old = {p.paper.id for p in views.day_page(s, DAY, with_labels=False).picks + views.day_page(s, DAY).rest}
        near_new = {pid for pid in old if pid.startswith("2505.") and any(
            p.id.startswith("2507.") for p, _ in views.paper_page(s, pid, similar=corpus_similar).similar)}
    assert {c for c in changed if c.startswith("papers/2505.")} == {f"papers/{paper_file(i)}" for i in near_new}
    assert len(near_new) < len(old)
    assert sum(c.startswith("papers/2507.") for c in changed) == 244
    after = _mtimes(out)
    assert all(after[f"papers/{paper_file(i)}"] == before[f"papers/{paper_file(i)}"] for i in old - near_new
               if i.startswith("2505."))


def test_site_file_names_stay_inside_the_folder():
    assert paper_file("2505.09572") == "2505.09572.html"
    assert paper_file("hep-th/9901001") == "hep-th_9901001.html"
    for evil in ("../../etc/passwd", "..", "a/../../b", "x y", "<script>"):
        name = paper_file(evil)
        assert "/" not in name and not name.startswith(".") and name.endswith(".html")
    assert paper_file("a b") != paper_file("a_b")


def test_a_site_of_a_store_on_read_only_media_says_its_pages_lack_similar_papers(store_db, tmp_path):
    """Built from a store on read-only media (the corpus index cannot be made beside it), every paper page came
    without its similar papers and nothing said so: one note says what the pages lack and why; the site is built.
    Each page that lost its panel says so in one line, as serve's page does, without the building machine's
    paths (the page said nothing); a paper without a vector, which has no panel anyway, says nothing."""
    import shutil
    import sqlite3
    db = tmp_path / "copy.sqlite3"
    shutil.copy(store_db, db)
    with sqlite3.connect(db) as conn:
        assert conn.execute("DELETE FROM embeddings WHERE paper_id=?", ("2505.09572",)).rowcount == 1
    conn.close()
    media = tmp_path / "media"
    with read_only_copy(db, media):
        r = ranker("site", "--out", tmp_path / "site", "--db", media / "ranker.sqlite3")
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 0 and len(lines) == 2, r.stderr
    assert lines[0].startswith("note: similar papers left out of the paper pages: the corpus index cannot be used (")
    assert str(media) in lines[0] and lines[1].startswith("site: "), r.stderr
    page = (tmp_path / "site" / "papers" / paper_file(HOSTILE_ID)).read_text()
    assert page.count("Similar papers") == 1 and str(media) not in page and str(tmp_path) not in page
    assert ('<p class="muted similar-note">None shown: the corpus index cannot be used where this site was built '
            '(the build said why).</p>') in page
    assert "Similar papers" not in (tmp_path / "site" / "papers" / paper_file("2505.09572")).read_text()
    # where the index can be made, no note, and the pages have their similar papers
    r = ranker("site", "--out", tmp_path / "site", "--db", store_db)
    assert r.returncode == 0 and "note:" not in r.stderr, r.stderr
    assert "Similar papers" in (tmp_path / "site" / "papers" / paper_file(HOSTILE_ID)).read_text()


def test_site_says_an_out_it_cannot_write_as_run_does(store_db, tmp_path):
    """`ranker site` did not check --out as the other commands do: a file given as the folder was not blamed on
    --out, a read-only folder was blamed on the hidden marker file (`DIR/.ranker-site: cannot write`), and
    `--out=~/site` (which the shell leaves as typed) made a folder named "~" in the working folder. Each is one
    line naming what the user gave, exit 1, nothing written; "~" is the home folder."""
    import os
    import subprocess
    f = tmp_path / "file"
    f.write_text("x")
    r = ranker("site", "--out", f, "--db", store_db)
    assert r.returncode == 1 and r.stderr.strip() == f"error: --out {f}: not a directory", r.stderr
    r = ranker("site", "--out", f / "site", "--db", store_db)
    assert r.returncode == 1 and r.stderr.strip() == f"error: --out {f / 'site'}: cannot write: {f} is not a folder"
    assert f.read_text() == "x"

    ro = tmp_path / "ro"
    ro.mkdir()
    root = os.geteuid() == 0          # root writes anyway: a read-only tmpfs there
    if root and subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(ro)]).returncode != 0:
        pytest.fail("cannot mount a read-only tmpfs as root")
    if not root:
        os.chmod(ro, 0o555)
    try:
        for out in (ro, ro / "site"):
            r = ranker("site", "--out", out, "--db", store_db)
            why = "Read-only file system" if root else "Permission denied"
            assert r.returncode == 1 and r.stderr.strip() == f"error: --out {out}: cannot write: {why}", r.stderr
        assert list(ro.iterdir()) == []
    finally:
        if root:
            subprocess.run(["umount", str(ro)], check=True)
        else:
            os.chmod(ro, 0o755)

    work = tmp_path / "work"
    work.mkdir()
    r = ranker("site", "--out=~/site", "--db", store_db, cwd=work, env={"HOME": tmp_path / "home"})
    assert r.returncode == 0 and r.stdout.strip() == str(tmp_path / "home" / "site" / "index.html"), r.stderr
    assert list(work.iterdir()) == [] and (tmp_path / "home" / "site" / f"days/{DAY}.html").is_file()


@needs_browser
def test_static_site_from_disk_navigates_filters_and_searches(store_db, tmp_path, chromium):
    from urllib.parse import urlencode
    out = tmp_path / "site"
    with Store(store_db) as s:
        build_site(s, out)
    with own_pages(chromium) as b:
        page, errors = watched_page(b)
        page.goto((out / "index.html").as_uri())
        assert page.locator("h1").inner_text() == "Archive"
        page.click(f"a[href='days/{DAY}.html']")
        assert page.locator("h1").inner_text() == f"Papers of {DAY}"
        assert page.locator("form.thumbs").count() == 0
        total = page.locator("article.paper").count()
        assert total == 193
        assert page.evaluate("typeof window.__pwned") == "undefined"
        # filters run in the page
        picks = page.locator("section.picks article.paper").count()
        page.check("input[name=show][value=picked]")
        assert page.locator("article.paper:visible").count() == picks
        assert page.locator("form.filters .shown").inner_text() == f"{picks} shown"
        page.check("input[name=show][value=all]")
        topic = page.locator("select[name=topic] option").nth(1).get_attribute("value")
        page.select_option("select[name=topic]", topic)
        visible = page.locator("article.paper:visible")
        assert 0 < visible.count() < total
        assert {visible.nth(i).get_attribute("data-topic") for i in range(visible.count())} == {topic}
        # a paper page, the hostile one: text, no script
        page.goto((out / "papers" / paper_file(HOSTILE_ID)).as_uri())
        assert page.locator("h1").inner_text() == HOSTILE_TITLE
        assert page.evaluate("typeof window.__pwned") == "undefined"
        page.click(f"a[href='../days/{DAY}.html']")
        assert page.locator("h1").inner_text() == f"Papers of {DAY}"
        # search over the generated index, from the page's own search box
        page.fill("header form.search input[name=q]", "diffusion policy")
        page.press("header form.search input[name=q]", "Enter")
        page.wait_for_selector("#results li")
        first = page.locator("#results li a").first
        assert "Diffusion Policy" in first.inner_text()
        assert "result" in page.locator("#search-status").inner_text()
        first.click()
        assert "Diffusion Policy" in page.locator("h1").inner_text()
        # an arXiv id, bare, with its version or as its link, finds its paper (no title or abstract holds it)
        for q in ("2505.09572", "arXiv:2505.09572v2", "https://arxiv.org/abs/2505.09572"):
            page.goto((out / "search.html").as_uri() + "?" + urlencode({"q": q}))
            page.wait_for_selector("#results li")
            assert page.locator("#results li").count() == 1, q
            assert page.locator("#results li a").get_attribute("href") == "papers/2505.09572.html"
            assert page.locator("#search-status").inner_text().startswith("1 result for")
        # a hostile result is shown as text
        page.goto((out / "search.html").as_uri() + "?q=hostile")
        page.wait_for_selector("#results li")
        assert HOSTILE_TITLE in page.locator("#results").inner_text()
        assert page.evaluate("typeof window.__pwned") == "undefined"
        assert page.evaluate("document.querySelectorAll('#results script, #results img').length") == 0
        assert errors == []


def _broken_links(root):
    """Relative href/src of every page whose file is not in the site, as (page, link)."""
    import re
    from urllib.parse import unquote, urlsplit
    bad = []
    for page in root.rglob("*.html"):
        for link in re.findall(r'(?:href|src|action)="([^"#][^"]*)"', page.read_text(encoding="utf-8")):
            if link.startswith(("https:", "http:", "data:")):
                continue
            if not (page.parent / unquote(urlsplit(link.replace("&amp;", "&")).path)).is_file():
                bad.append((str(page.relative_to(root)), link))
    return bad


def test_similar_papers_link_only_to_pages_the_site_has(store_db, tmp_path):
    # a paper the store holds with a vector but on no day (stored without a date) has no page of its own: a
    # day paper's page must not list it among its similar papers, a link to nothing
    import shutil

    from ranker.prefilter.embed import embedder_key, paper_text, text_hash
    from ranker.records import Paper
    db = tmp_path / "copy.sqlite3"
    shutil.copy(store_db, db)
    with Store(db) as s:
        src = s.get_paper("2505.09572")
        twins = [Paper(id=f"2401.0000{i}", title=src.title, abstract=src.abstract, authors=["A. Author"],
                       categories=["cs.LG"], primary_category="cs.LG") for i in range(3)]
        s.add_papers(twins)
        key = embedder_key(EMBEDDER)
        vec = s.get_vectors([src.id], key)[src.id]
        s.put_embeddings([(p.id, text_hash(paper_text(p)), vec) for p in twins], key)
        res = build_site(s, tmp_path / "site")
    assert not any((tmp_path / "site" / "papers" / paper_file(p.id)).exists() for p in twins) and res.papers
    assert _broken_links(tmp_path / "site") == []
    html = (tmp_path / "site" / "papers" / paper_file(src.id)).read_text(encoding="utf-8")
    assert "Similar papers" in html and "2401.0000" not in html


@needs_browser
def test_every_link_of_the_site_opens_from_disk_and_from_a_web_server(tmp_path, chromium):
    """Chromium follows every link of a site exported into a folder whose path has spaces, non-ASCII letters,
    '#' and '%' (each a different escape in a file:// URL), opened from disk and from a plain http.server: each
    page opens, nothing it loads fails, no script error; the search page's results open too."""
    import threading
    from functools import partial
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass
    db = tmp_path / "s.sqlite3"
    fill_store(db, tmp_path / "o", days=(DAY, OTHER_DAY), n=8, hostile=False)
    out = tmp_path / "my site ü é" / "#1 %20"
    with Store(db) as s:
        assert build_site(s, out).papers == 16
    pages = list(out.rglob("*.html"))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(out)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        with own_pages(chromium) as b:
            for start in ((out / "index.html").as_uri(), f"http://127.0.0.1:{httpd.server_address[1]}/index.html"):
                page, errors = watched_page(b)
                failed = []
                page.on("requestfailed", lambda r: failed.append(r.url))
                page.on("response", lambda r: failed.append(r.url) if r.status >= 400 else None)
                seen, todo = set(), [start]
                while todo:
                    url = todo.pop()
                    if url in seen:
                        continue
                    seen.add(url)
                    assert page.goto(url) is not None and page.locator("h1").count() == 1, url
                    links = page.eval_on_selector_all("a[href]", "as => as.map(a => a.href)")
                    todo += [u.split("#")[0] for u in links if not u.startswith(("https:", "data:"))]
                assert len(seen) == len(pages) - 1, start      # every page (search.html: the forms, below)
                page.goto(start.replace("index.html", "search.html") + "?q=learning")
                page.wait_for_selector("#results li a")
                page.locator("#results li a").first.click()
                assert page.url.split("/")[-2] == "papers" and page.locator("h1").count() == 1
                assert failed == [] and errors == [], (start, failed, errors)
    finally:
        httpd.shutdown()
        httpd.server_close()


def _reachable_broken(root):
    """Links to missing files on the pages a visitor can reach from index.html (and the search index's papers)."""
    import re
    from urllib.parse import unquote, urlsplit
    seen, todo, bad = set(), [root / "index.html"], []
    todo += [root / (r[6] if len(r) > 6 else f"papers/{r[0]}.html") for rows in _index(root).values() for r in rows]
    while todo:
        page = todo.pop()
        if page in seen:
            continue
        seen.add(page)
        if not page.is_file():
            bad.append(str(page.relative_to(root)))
            continue
        if page.suffix != ".html":
            continue
        for link in re.findall(r'(?:href|src)="([^"#][^"]*)"', page.read_text(encoding="utf-8")):
            if not link.startswith(("https:", "http:", "data:")):
                todo.append((page.parent / unquote(urlsplit(link.replace("&amp;", "&")).path)).resolve())
    return bad


def test_an_interrupted_rebuild_leaves_no_link_to_a_page_not_written_yet(tmp_path, monkeypatch):
    # Ctrl-C, a full disk or an error halfway through a rebuild that adds a day: what a visitor can reach from
    # index.html must still be whole (the new pages go in first, the pages that link to them after)
    import os
    import shutil
    db, old, out = tmp_path / "s.sqlite3", tmp_path / "old", tmp_path / "site"
    fill_store(db, tmp_path / "o1", days=(DAY,), n=12, hostile=False)
    with Store(db) as s:
        assert build_site(s, old).papers == 12
    fill_store(db, tmp_path / "o2", days=(OTHER_DAY,), n=12, hostile=False)
    real = os.replace
    stop_after, stopped = 0, True
    while stopped:                       # stop the rebuild at its first rename, its second, ... until it ends
        shutil.rmtree(out, ignore_errors=True)
        shutil.copytree(old, out)
        calls = []

        def failing(src, dst):
            if len(calls) >= stop_after:
                raise KeyboardInterrupt
            calls.append(dst)
            return real(src, dst)
        monkeypatch.setattr(os, "replace", failing)
        try:
            with Store(db) as s:
                res = build_site(s, out)
            stopped = False
        except KeyboardInterrupt:
            pass
        monkeypatch.setattr(os, "replace", real)
        assert _reachable_broken(out) == [], stop_after
        assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")], stop_after
        stop_after += 1
    # (the similar papers kept beside the corpus index are written too, outside the site)
    # (and the build's state, each page's digest, beside the pages)
    assert stop_after > 16 and {str(p.relative_to(out)) for p in calls if p.is_relative_to(out)} == \
        {*res.written, STATE}
    assert res.days == 2 and res.papers == 24 and _reachable_broken(out) == [] and _broken_links(out) == []
    # a build killed outright (kill -9) leaves its temporary files: the next one removes them, never publishes them
    left = out / "days" / f".{DAY}.html.0123abcd.tmp"
    left.write_text("half a page")
    with Store(db) as s:
        build_site(s, out)
    assert not left.exists() and (out / "days" / f"{DAY}.html").is_file()


def test_a_day_stored_while_the_site_is_built_is_left_for_the_next_build(tmp_path):
    """The pages were read from the store in passes (the days, the papers, then the archive and months): a
    `ranker run` that stored a new day meanwhile put that day in index.html and its month's page, read last,
    though its page (the days being read first) was never written: two links to nothing on the published site.
    The build reads one state of the store; the next build has the new day."""
    db, out = tmp_path / "s.sqlite3", tmp_path / "site"
    fill_store(db, tmp_path / "o1", days=(DAY,), n=12, hostile=False)
    stored = []

    def similar(_store, _pid, _k):             # called as the paper pages are written: a run stores a day now
        if not stored:
            stored.append(fill_store(db, tmp_path / "o2", days=(OTHER_DAY,), n=12, hostile=False))
        return []
    with Store(db) as s:
        res = build_site(s, out, similar=similar)
    assert stored and res.days == 1 and res.papers == 12
    assert _broken_links(out) == [] and OTHER_DAY not in (out / "index.html").read_text(encoding="utf-8")
    assert not (out / "months" / f"{OTHER_DAY[:7]}.html").exists()
    with Store(db) as s:
        res = build_site(s, out)
    assert res.days == 2 and res.papers == 24 and _broken_links(out) == []
    assert f'href="days/{OTHER_DAY}.html"' in (out / "index.html").read_text(encoding="utf-8")


def test_a_rebuild_removes_the_pages_the_site_no_longer_has_and_only_those(tmp_path):
    """A rebuild wrote the pages that changed and left every other file: a day run again on fewer papers kept
    the pages of the papers it dropped, a site built again from another database kept the old store's days,
    months and papers, each with its old scores, on the published site (no longer linked, still served). The
    rebuild removes the pages it wrote before and no longer has; a file of the user's there stays."""
    db, out = tmp_path / "s.sqlite3", tmp_path / "site"
    fill_store(db, tmp_path / "o1", days=(DAY, OTHER_DAY), n=12, hostile=False)
    with Store(db) as s:
        build_site(s, out)
        ids = {r.paper_id for r in s.get_rankings(OTHER_DAY)}
    mine = {"papers/my-notes.html": "<p>my notes on these papers</p>", "days/README.txt": "kept\n",
            "months/old-plan.html": "<html>my own</html>"}
    for rel, text in mine.items():
        (out / rel).write_text(text)
    (out / "papers" / "link.html").symlink_to(out / "papers" / "my-notes.html")

    fill_store(db, tmp_path / "o2", days=(OTHER_DAY,), n=6, hostile=False)      # the day again, on fewer papers
    with Store(db) as s:
        kept = {r.paper_id for r in s.get_rankings(OTHER_DAY)}
        res = build_site(s, out)
    assert len(kept) == 6 and sorted(res.removed) == sorted(f"papers/{paper_file(i)}" for i in ids - kept)
    assert f"{len(ids - kept)} removed ->" in res.summary()
    assert _broken_links(out) == [] and _reachable_broken(out) == []

    other = tmp_path / "other.sqlite3"                                  # the site built from another database
    fill_store(other, tmp_path / "o3", days=(DAY,), n=12, hostile=False)
    with Store(other) as s:
        res = build_site(s, out)
        on_day = {f"papers/{paper_file(r.paper_id)}" for r in s.get_rankings(DAY)}
    assert {f"days/{OTHER_DAY}.html", f"months/{OTHER_DAY[:7]}.html", "static/search/2025-07.js"} <= set(res.removed)
    left = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file() and p.parent != out / "static"}
    assert left == {".ranker-site", STATE, "index.html", "search.html", f"days/{DAY}.html", f"months/{DAY[:7]}.html",
                    *mine, "papers/link.html", *on_day, "static/search/index.js", f"static/search/{DAY[:7]}.js"}
    assert all((out / rel).read_text() == text for rel, text in mine.items())
    assert (out / "papers" / "link.html").is_symlink()
    with Store(other) as s:
        assert build_site(s, out).removed == []


def test_two_builds_into_one_folder_take_turns(tmp_path):
    """Two builds into one folder at once (a cron job's and one by hand): the second removed the first's
    temporary files, the first then failing to put them in place, and a build of an older state of the store
    removed as stale the pages the other had just linked. The second now waits for the first."""
    import threading
    import time
    db, out = tmp_path / "s.sqlite3", tmp_path / "site"
    fill_store(db, tmp_path / "o1", days=(DAY,), n=12, hostile=False)
    with Store(db) as s:
        build_site(s, out)
    inside, go_on, done, told = threading.Event(), threading.Event(), [], []

    def held(_store, _pid, _k):                # the first build, stopped in the middle of its pages
        inside.set()
        go_on.wait(30)
        return []

    def build(similar, name):
        with Store(db) as s:
            done.append(build_site(s, out, similar=similar, waiting=lambda: told.append(name)))
    first = threading.Thread(target=build, args=(held, "first"))
    first.start()
    assert inside.wait(30)
    second = threading.Thread(target=build, args=(lambda *_: [], "second"))
    second.start()
    # once the second build has said it waits, not after a time: a second build slower to start than a timer (a
    # loaded machine) came to the lock after the first had let go, and waited for nothing and said nothing
    deadline = time.monotonic() + 30
    while not told and second.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    # waiting() is said just before the blocking lock, so the thread is alive right then whatever it does next:
    # half a second on, it is alive only if it waits (a slow machine can only let a lock that does not wait pass)
    second.join(0.5)
    waited = second.is_alive()
    go_on.set()
    first.join(30)
    second.join(30)
    assert waited, "the second build ran beside the first"
    assert len(done) == 2 and (out / "days" / f"{DAY}.html").is_file()
    assert told == ["second"]                  # the caller heard that it waited (once), and only the one that did


def test_site_cli_says_it_waits_for_another_build_into_the_folder(tmp_path):
    """A second `ranker site` into a folder another build holds waited without a word, for as long as the
    other took. It says one line on stderr, then builds once the other has ended."""
    import fcntl
    import os
    import subprocess
    import threading

    from ranker.web.site import MARKER

    from conftest import RANKER
    db, out = tmp_path / "s.sqlite3", tmp_path / "site"
    fill_store(db, tmp_path / "o1", days=(DAY,), n=12, hostile=False)
    with Store(db) as s:
        build_site(s, out)
    fd = os.open(out / MARKER, os.O_WRONLY | os.O_APPEND)        # another build, holding the folder
    fcntl.flock(fd, fcntl.LOCK_EX)
    env = {k: v for k, v in os.environ.items() if k != "RANKER_DEBUG"}
    p = subprocess.Popen([*RANKER, "site", "--out", str(out), "--db", str(db)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=env)
    try:
        first: list[str] = []
        reader = threading.Thread(target=lambda: first.append(p.stderr.readline()), daemon=True)
        reader.start()
        reader.join(60)
        assert first == [f"site: waiting for another build into {out} to end\n"], first
        assert p.poll() is None                                  # still waiting
    finally:
        os.close(fd)                                             # the other build ends
    stdout, stderr = p.communicate(timeout=120)
    assert p.returncode == 0, stderr
    assert stdout.strip() == str(out / "index.html") and stderr.startswith("site: 1 day, 12 papers;")


def test_a_file_of_the_user_s_own_with_the_site_s_footer_stays(tmp_path):
    """A page of the site saved under a name of one's own (`papers/favourites.html`) holds the site's footer:
    the rebuild's removal of stale pages took it for one of its own. Only files of the names the site gives
    go."""
    db, out = tmp_path / "s.sqlite3", tmp_path / "site"
    fill_store(db, tmp_path / "o1", days=(DAY,), n=12, hostile=False)
    with Store(db) as s:
        build_site(s, out)
    page = (out / "days" / f"{DAY}.html").read_bytes()
    mine = [out / "papers" / "favourites.html", out / "days" / "my-notes.html", out / "months" / "best.html"]
    for f in mine:
        f.write_bytes(page)
    stale = out / "days" / "2025-01-02.html"
    stale.write_bytes(page)
    with Store(db) as s:
        res = build_site(s, out)
    assert res.removed == ["days/2025-01-02.html"] and not stale.exists()
    assert all(f.read_bytes() == page for f in mine)


def test_site_does_not_write_over_a_folder_that_holds_other_files(store_db, tmp_path):
    """`ranker site --out .` in a folder of one's own wrote its index.html, search.html and static/style.css over
    the files of those names there, and searched the whole tree (.git, a home folder) for temporary files to
    delete. A folder that holds what the site writes, and is not a site ranker wrote, is refused with nothing
    written; a folder beside whose files the site fits (a GitHub Pages repository) keeps them untouched."""
    import shutil

    from ranker.web.site import MARKER

    mine = tmp_path / "mine"
    (mine / "static").mkdir(parents=True)
    (mine / "index.html").write_text("<h1>my own page</h1>")
    (mine / "static" / "style.css").write_text("body { color: red }")
    before = {str(p.relative_to(mine)) for p in mine.rglob("*")}
    r = ranker("site", "--out", mine, "--db", store_db)
    assert r.returncode == 1 and "site:" not in r.stderr, r.stderr
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith(f"error: --out {mine}: holds index.html") and "static" in line, line
    assert (mine / "index.html").read_text() == "<h1>my own page</h1>"
    assert (mine / "static" / "style.css").read_text() == "body { color: red }"
    assert {str(p.relative_to(mine)) for p in mine.rglob("*")} == before          # nothing added either

    repo = tmp_path / "pages"
    (repo / ".git" / "objects").mkdir(parents=True)
    (repo / "README.md").write_text("my notes\n")
    theirs = repo / ".git" / "objects" / ".pack.0123abcd.tmp"      # another program's file, named like ours
    theirs.write_text("keep me")
    for _ in range(2):                                  # a first build beside the files, then a rebuild
        r = ranker("site", "--out", repo, "--db", store_db)
        assert r.returncode == 0 and (repo / "index.html").is_file() and (repo / "days" / f"{DAY}.html").is_file()
        assert (repo / "README.md").read_text() == "my notes\n" and theirs.read_text() == "keep me"
    assert "0 files written" in r.stderr, r.stderr

    old = tmp_path / "old"                     # a site built before sites were marked is still rebuilt in place
    with Store(store_db) as s:
        build_site(s, old)
    for marker in old.glob(".*"):                   # (or whose marker did not come along with a copy of it)
        marker.unlink()
    (old / "index.html").write_text("an index.html from an older ranker site")
    r = ranker("site", "--out", old, "--db", store_db)
    assert r.returncode == 0 and "Archive" in (old / "index.html").read_text(), r.stderr
    (old / MARKER).unlink()                     # and before its index was cut by month: one file then
    shutil.rmtree(old / "static" / "search")
    (old / "static" / "search-index.js").write_text('window.RANKER_SEARCH = {"papers":[]};\n')
    r = ranker("site", "--out", old, "--db", store_db)
    assert r.returncode == 0 and not (old / "static" / "search-index.js").exists(), r.stderr
    assert (old / "static" / "search" / "index.js").is_file()


def test_a_fifo_in_the_place_of_an_unmarked_folders_search_index_is_not_read(store_db, tmp_path):
    """A folder without the site's marker is told a site of ranker's by the first bytes of its search index:
    a FIFO there was opened and read as a file, and `ranker site` waited for a writer for good. It is no
    search index of ranker's: the folder holding index.html is refused as any other of one's own."""
    import os

    mine = tmp_path / "mine"
    (mine / "static" / "search").mkdir(parents=True)
    (mine / "index.html").write_text("<h1>my own page</h1>")
    os.mkfifo(mine / "static" / "search" / "index.js")
    r = ranker("site", "--out", mine, "--db", store_db, timeout=20)
    assert r.returncode == 1, r.stderr
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith(f"error: --out {mine}: holds index.html") and "not a site ranker wrote" in line, line
    assert (mine / "index.html").read_text() == "<h1>my own page</h1>"


def test_a_build_leaves_another_commands_temporary_file_in_its_folder(store_db, tmp_path):
    """A build removed every temporary file of atomic_file's shape in its folder (what a killed build left), so
    in a folder shared with `ranker run --out DIR` (the digests beside their site) it deleted the digest a run
    was writing that moment, and the run failed to put it in place. In DIR itself only the temporary files of
    the site's own files go."""
    out = tmp_path / "pages"
    with Store(store_db) as s:
        build_site(s, out)
    theirs = out / ".2025-05-15-output.md.0123abcd.tmp"        # `ranker run --out pages` writing its digest
    theirs.write_text("half a digest")
    ours = [out / ".index.html.0123abcd.tmp", out / "days" / f".{DAY}.html.89abcdef.tmp"]   # a killed build's
    for f in ours:
        f.write_text("half a page")
    r = ranker("site", "--out", out, "--db", store_db)
    assert r.returncode == 0, r.stderr
    assert theirs.read_text() == "half a digest" and not any(f.exists() for f in ours)


@needs_browser
def test_the_static_search_reads_an_arxiv_id_as_serve_does(store_db, tmp_path, chromium):
    """site.js said it read an id as ranker.io.parse_arxiv_id does, and did not: "arXiv: 2505.09572" (as many
    citations write it) and "oai:arXiv.org:2505.09572" found the paper in serve but nothing on the static site,
    and "2505.09572V2" was an id on the site only. The site reads each query as serve does."""
    from ranker.io import arxiv_id
    out = tmp_path / "site"
    with Store(store_db) as s:
        build_site(s, out)
    queries = ("arXiv: 2505.09572", "oai:arXiv.org:2505.09572v1", "https://arxiv.org/pdf/2505.09572v1.pdf/",
               "ARXIV.ORG/abs/2505.09572?context=cs", " 2505.09572 ", "2505.09572V2", "arXiv 2505.09572")
    assert [arxiv_id(q) for q in queries] == ["2505.09572"] * 5 + [None, None]        # serve's reading
    with own_pages(chromium) as b:
        page, errors = watched_page(b)
        for q in queries:
            _search_site(page, out, q)
            status = page.locator("#search-status").inner_text()
            if arxiv_id(q):
                assert status.endswith(", by arXiv id.") and page.locator("#results li").count() == 1, (q, status)
                assert page.locator("#results li a").get_attribute("href") == "papers/2505.09572.html"
            else:
                assert status.endswith(", by words in titles and abstracts."), (q, status)
        assert errors == []


@needs_browser
def test_the_static_search_finds_by_words_what_serve_finds(store_db, tmp_path, chromium):
    """The site's search matched a query word anywhere in a title or abstract, though it says "every word must
    appear": "RL" found every paper with "world" in it (the first hit, by its title), "NER" nearly every paper
    of the day ("inner", "learner"). It finds the papers that hold each word, the last one also as the start of
    a word, as serve's search by words does (the store's full-text index), accents and case aside."""
    out = tmp_path / "site"
    with Store(store_db) as s:
        build_site(s, out)
        on_site = {p[0] for rows in _index(out).values() for p in rows}
        queries = ("RL", "ViT", "NER", "net", "GAN", "diffusion policy", "graph neural", "schrodinger",
                   "Large Language")
        expect = {q: set(s.search_papers(q, limit=10_000)) & on_site for q in queries}
    sizes = {q: len(v) for q, v in expect.items()}
    assert all(n < 200 for n in sizes.values()) and all(sizes[q] for q in queries if q != "NER"), sizes
    with own_pages(chromium) as b:
        page, errors = watched_page(b)
        for q in queries:
            _search_site(page, out, q)
            hrefs = page.locator("#results li a").evaluate_all("links => links.map(a => a.getAttribute('href'))")
            found = {h[len("papers/"):-len(".html")] for h in hrefs}
            assert found == expect[q], (q, sorted(found - expect[q])[:5], sorted(expect[q] - found)[:5])
            assert page.locator("#search-status").inner_text().startswith(f"{len(found)} result"), q
        assert errors == []


MONTHS = ("2025-04-30", "2025-05-13", "2025-05-15", "2025-06-23", "2025-07-02")       # four months, the data's days


def test_the_search_index_is_cut_by_month_and_a_new_day_rewrites_only_its_month(tmp_path):
    """The search index was one script of every paper (static/search-index.js): 21.5 MB for 50 days of arXiv,
    past GitHub's 50 MB warning in about six months and its 100 MB limit in a year, rewritten whole for every
    new day. It is a script a month, each holding that month's papers only (each
    once, on its latest day), listed with their counts and versions; a new day rewrites its month's and the list,
    no other month's; a rebuild removes the one-file index of an older build and a month the site no longer has."""
    import hashlib
    import json
    import os
    db, out = tmp_path / "s.sqlite3", tmp_path / "site"
    fill_store(db, tmp_path / "o", days=MONTHS[:2], n=20, hostile=False)
    with Store(db) as s:
        build_site(s, out)
    index = _index(out)
    assert sorted(index) == ["2025-04", "2025-05"]
    for month, rows in index.items():
        assert rows and all(r[2].startswith(month + "-") for r in rows), month
        assert rows == sorted(rows, key=lambda r: (r[2], r[0]), reverse=True)
    ids = [r[0] for rows in index.values() for r in rows]
    assert len(ids) == len(set(ids)) and {f"papers/{i}.html" for i in ids} == {
        str(p.relative_to(out)) for p in (out / "papers").glob("*.html")}
    listed = (out / "static" / "search" / "index.js").read_text()
    assert listed.startswith("window.RANKER_SEARCH = ") and listed.endswith(";\n")
    listed = json.loads(listed[len("window.RANKER_SEARCH = "):-2])
    assert listed["papers"] == len(ids) and [m for m, _, _ in listed["months"]] == ["2025-05", "2025-04"]
    for month, n, src in listed["months"]:
        data = (out / "static" / "search" / f"{month}.js").read_bytes()
        assert n == len(index[month]) and src == f"static/search/{month}.js?v={hashlib.sha1(data).hexdigest()[:12]}"

    # what an older build left: its one index file, and a month's index of a day the store no longer has;
    # a script of the user's in the folder stays, and so does the file of another build begun meanwhile
    old = {"static/search-index.js": 'window.RANKER_SEARCH = {"papers":[]};\n',
           "static/search/2024-12.js": 'window.RANKER_SEARCH_MONTHS["2024-12"] = [];\n'}
    mine = {"static/search/mine.js": "console.log('mine');\n", "static/search-index.txt": "notes\n"}
    for rel, text in {**old, **mine}.items():
        (out / rel).write_text(text)
        os.utime(out / rel, (1, 1))
    before = _mtimes(out)
    fill_store(db, tmp_path / "o", days=MONTHS[2:3], n=20, hostile=False)         # a new day of May
    with Store(db) as s:
        res = build_site(s, out)
    assert sorted(res.removed) == sorted(old) and not any((out / rel).exists() for rel in old)
    assert all((out / rel).read_text() == text for rel, text in mine.items())
    assert {"static/search/2025-05.js", "static/search/index.js"} <= set(res.written)
    assert "static/search/2025-04.js" not in res.written
    assert _mtimes(out)["static/search/2025-04.js"] == before["static/search/2025-04.js"]
    assert _index(out)["2025-04"] == index["2025-04"]
    assert {r[2] for r in _index(out)["2025-05"]} == {"2025-05-13", "2025-05-15"}

    fill_store(db, tmp_path / "o", days=MONTHS[3:4], n=20, hostile=False)         # a new month
    before = _mtimes(out)
    with Store(db) as s:
        res = build_site(s, out)
    assert {w for w in res.written if w.startswith("static/")} == {"static/search/2025-06.js", "static/search/index.js"}
    assert all(_mtimes(out)[f"static/search/{m}.js"] == before[f"static/search/{m}.js"] for m in ("2025-04", "2025-05"))
    assert sorted(_index(out)) == ["2025-04", "2025-05", "2025-06"]


@pytest.fixture(scope="module")
def months_site(tmp_path_factory):
    """A site of four months (the data's five days, 60 papers each), and the store it was built from."""
    tmp = tmp_path_factory.mktemp("months")
    db, out = tmp / "ranker.sqlite3", tmp / "my site #1 %20"
    fill_store(db, tmp / "out", days=MONTHS, n=60, hostile=False)
    with Store(db) as s:
        build_site(s, out)
    return db, out


def _title_words(text: str) -> list[str]:
    """Words as site.js cuts them: runs of letters, digits and '_', lower case, accents aside."""
    import re
    import unicodedata
    text = "".join(c for c in unicodedata.normalize("NFD", text.lower()) if not unicodedata.category(c).startswith("M"))
    return re.findall(r"[^\W]+", text)


@needs_browser
def test_the_static_search_searches_every_months_index_in_the_order_of_one(months_site, chromium):
    """A search over the site's months, from disk (file://) and from a plain web server, finds the papers of
    the oldest month and of the newest, as serve's search does, ranked as the one index ranked them: title
    hits first, then digest picks, the latest day, the newest id. With no words it counts every paper and loads no
    month; an id finds its paper in an old month; a month whose index did not load is named, the rest searched."""
    import threading
    from functools import partial
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
    from urllib.parse import urlencode

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass
    db, out = months_site
    index = _index(out)
    assert sorted(index) == ["2025-04", "2025-05", "2025-06", "2025-07"]
    rows = {r[0]: r for month in index.values() for r in month}
    queries = ("learning", "language models", "graph", "diffusion")
    with Store(db) as s:
        expect = {q: set(s.search_papers(q, limit=10_000)) & set(rows) for q in queries}

    def ranked(q):
        want = _title_words(q)

        def in_title(r):
            title = " " + " ".join(_title_words(r[1])) + " "
            return sum((" " + w + ("" if i == len(want) - 1 else " ")) in title for i, w in enumerate(want))
        return sorted(expect[q], key=lambda i: (in_title(rows[i]), rows[i][4], rows[i][2], i), reverse=True)[:200]
    assert {rows[i][2][:7] for i in expect["learning"]} == set(index)          # every month has a hit

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(out)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        with own_pages(chromium) as b:
            for base in (out.as_uri() + "/", f"http://127.0.0.1:{httpd.server_address[1]}/"):
                page, errors = watched_page(b)
                asked = []
                page.on("request", lambda r: asked.append(r.url))

                def ask(q):
                    page.goto(base + "search.html" + (f"?{urlencode({'q': q})}" if q else ""))
                    page.wait_for_function("() => /( for \\u201c|indexed)/.test(document.getElementById("
                                           "'search-status').textContent)")
                    return page.locator("#search-status").inner_text()
                assert ask("") == f"{len(rows)} papers indexed. Every word must appear in the title or the abstract."
                assert not [u for u in asked if "/search/20" in u]            # no month loaded for no words
                for q in queries:
                    status = ask(q)
                    hrefs = page.locator("#results li a").evaluate_all("as => as.map(a => a.getAttribute('href'))")
                    assert hrefs == [f"papers/{i}.html" for i in ranked(q)], q
                    n = len(expect[q])
                    assert status == (
                        f"{n} result{'s' if n != 1 else ''} for \u201c{q}\u201d{' (the first 200)' if n > 200 else ''}"
                        ", by words in titles and abstracts."), q
                oldest = min(rows.values(), key=lambda r: r[2])[0]
                assert ask(oldest) == f"1 result for \u201c{oldest}\u201d, by arXiv id."
                assert page.locator("#results li a").get_attribute("href") == f"papers/{oldest}.html"
                assert ask("2501.99999") == "0 results for \u201c2501.99999\u201d: no paper 2501.99999 on this site."
                assert errors == [], (base, errors)
    finally:
        httpd.shutdown()
        httpd.server_close()


@needs_browser
def test_the_static_search_names_a_month_whose_index_did_not_load(months_site, tmp_path, chromium):
    """A month's index that does not load (a file not uploaded) is named after the results of the others."""
    import shutil
    _, site = months_site
    out = tmp_path / "site"
    shutil.copytree(site, out)
    month = {r[0]: m for m, rows in _index(out).items() for r in rows}
    (out / "static" / "search" / "2025-05.js").unlink()
    with own_pages(chromium) as b:
        page, _ = watched_page(b)
        _search_site(page, out, "learning")
        status = page.locator("#search-status").inner_text()
        assert status.endswith(", by words in titles and abstracts. Not searched (did not load): "
                               "static/search/2025-05.js."), status
        hrefs = page.locator("#results li a").evaluate_all("as => as.map(a => a.getAttribute('href'))")
        assert {month[h[len("papers/"):-len(".html")]] for h in hrefs} == {"2025-04", "2025-06", "2025-07"}


@needs_browser
def test_the_static_search_folds_the_letters_serve_folds(store_db, tmp_path, chromium):
    """serve's search by words folds ł, ß, ø, æ as author pins do ("Lukasz" finds "Łukasz", "strasse" "Straße");
    the site's search, which reads words as serve does, kept them whole and found nothing for "Lukasz"."""
    import sqlite3
    db, out = tmp_path / "ranker.sqlite3", tmp_path / "site"
    src, dst = sqlite3.connect(store_db), sqlite3.connect(db)
    src.backup(dst)
    src.close()
    dst.close()
    with Store(db) as s:
        p = s.get_paper("2505.09572")
        p.title, p.abstract = "Notes of Łukasz Kaiser", "Taken down on the Straße des 17. Juni by Ørsted's Æsir."
        s.add_papers([p])
        build_site(s, out)
        queries = ("Lukasz", "lukasz", "Łukasz", "strasse", "Straße", "kaiser luk", "orsted aesir")
        assert {q: s.search_papers(q) for q in queries} == {q: ["2505.09572"] for q in queries}     # serve's
    with own_pages(chromium) as b:
        page, errors = watched_page(b)
        for q in queries:
            _search_site(page, out, q)
            hrefs = page.locator("#results li a").evaluate_all("links => links.map(a => a.getAttribute('href'))")
            assert hrefs == ["papers/2505.09572.html"], q
            assert page.locator("#results li a").inner_text() == "Notes of Łukasz Kaiser"
        assert errors == []


def test_static_pages_carry_no_thumbs_icons(store_db, tmp_path):
    """The thumbs icons, drawn once per page since serve's pages carried their paths on every button, went into
    every page of the static site too, which shows no thumb and no label count: 641 bytes on each of a large
    site's 14,735 files. A page of the site draws none, and uses none. Nor does one name a key: the site has no
    keys (serve's app.js), so no list of them, no hint to press ?, no aria-keyshortcuts."""
    out = tmp_path / "site"
    with Store(store_db) as s:
        build_site(s, out)
    pages = list(out.rglob("*.html"))
    assert len(pages) > 100
    assert [p.name for p in pages if "icon-up" in p.read_text(encoding="utf-8")] == []
    keys = ('id="keys"', "aria-keyshortcuts", "<kbd>", "app.js")
    assert [p.name for p in pages if any(k in p.read_text(encoding="utf-8") for k in keys)] == []


def test_a_link_in_place_of_a_page_is_replaced_not_written_through(store_db, tmp_path):
    """A symlink left where a page goes (by a hostile earlier build, or anyone who could write in the folder) had
    the page written through it: a file outside the site, here the user's own, was overwritten with HTML."""
    out = tmp_path / "site"
    with Store(store_db) as store:
        build_site(store, out)
    outside = tmp_path / "precious.txt"
    for rel, target in ((f"days/{DAY}.html", outside), ("static/style.css", outside),
                        (f"papers/{paper_file(HOSTILE_ID)}", tmp_path / "nothing-there-yet.txt")):
        page = out / rel
        outside.write_text("the user's own file\n")
        page.unlink()
        page.symlink_to(target)
        with Store(store_db) as store:
            res = build_site(store, out)
        assert outside.read_text() == "the user's own file\n", rel
        assert not (tmp_path / "nothing-there-yet.txt").exists(), rel
        assert page.is_file() and not page.is_symlink() and rel in res.written, rel


def test_a_link_in_place_of_a_site_folder_is_replaced_not_written_through(store_db, tmp_path):
    """papers/ (or days/, static/) a symlink to a folder outside the site: only a page's own name was checked, so
    the build wrote its pages into that folder, and removed from it the pages it no longer had; and the clearing
    of a killed build's temporary files, before any page, removed another command's file being written there."""
    out = tmp_path / "site"
    with Store(store_db) as store:
        build_site(store, out)
    for folder in ("papers", "days", "static"):
        outside = tmp_path / f"outside-{folder}"
        outside.mkdir()
        (outside / "notes.html").write_text("the user's own file\n")
        (outside / ".report.0123abcd.tmp").write_text("another command's file, being written\n")
        before = {p.name: p.read_bytes() for p in outside.iterdir()}
        shutil.rmtree(out / folder)
        (out / folder).symlink_to(outside, target_is_directory=True)
        with Store(store_db) as store:
            build_site(store, out)
        assert {p.name: p.read_bytes() for p in outside.iterdir()} == before, folder
        assert (out / folder).is_dir() and not (out / folder).is_symlink(), folder
        assert any((out / folder).iterdir()), folder


def test_a_published_site_names_no_folder_of_the_building_machine(tmp_path):
    """A model loaded from a folder is stored under the folder's absolute path, as are an embedder's vectors:
    every day and paper page of the site said "Scores by /home/<user>/models/Qwen2.5-7B-Instruct" (and a similar
    papers note the embedder's folder), naming the user's account and folders on the published web. The folder's
    own name stands for it there."""
    from ranker.backends.base import local_model_key
    from ranker.backends.fake import FakeBackend
    from ranker.prefilter.embed import embedder_key
    from ranker.settings import resolve
    from ranker.steps import fetch_day, run_day

    from conftest import store_vectors
    from webstore import day_papers, seed_vectors
    home = tmp_path / "home-of-alice"
    llm, e5 = home / "models" / "Qwen2.5-7B-Instruct", home / "models" / "e5-small"
    llm.mkdir(parents=True)
    e5.mkdir()
    db = tmp_path / "ranker.sqlite3"
    settings = resolve(flags={"embedder": EMBEDDER, "backend": "fake", "model": "test", "db": db})
    backend = FakeBackend("test")
    backend.model_name = local_model_key(str(llm))           # what a backend loading that folder stores
    assert backend.model_name == str(llm)
    papers = day_papers(DAY, 40, hostile=False)
    with Store(db) as s:
        seed_vectors(s, papers)
        store_vectors(s, papers[:5], embedder=str(e5), dim=16)  # the configured embedder holds a few vectors
        run_day(fetch_day(papers, settings, store=s), tmp_path / "out", settings, store=s, backend=backend)
        build_site(s, tmp_path / "site", embedder=embedder_key(str(e5)))
    pages = {p: p.read_text(encoding="utf-8") for p in (tmp_path / "site").rglob("*") if p.is_file()}
    assert [str(p) for p, text in pages.items() if str(home) in text] == []
    day = pages[tmp_path / "site" / "days" / f"{DAY}.html"]
    assert "Scores by <code>Qwen2.5-7B-Instruct</code>" in day
    notes = [t for t in pages.values() if "similar-note" in t]
    assert notes and all("none of e5-small, the prefilter" in t for t in notes)


def test_a_published_site_says_an_exclusion_dropped_a_paper_not_the_users_rule(tmp_path):
    """Every day and paper page of the site showed each exclusion rule's text ('title="an exclusion dropped it:
    <rule>"', the paper page's badge and its prefilter table): the user's private preferences published on the
    web. The site says an exclusion dropped the paper, without the rule; serve, the user's own view, keeps it.
    Nothing else of the user's settings (the prompts and rules folder, the pinned authors) is on any page."""
    from ranker.backends.fake import FakeBackend
    from ranker.settings import resolve
    from ranker.steps import fetch_day, run_day
    from ranker.web import views
    from ranker.web.render import ServeUrls, render

    from conftest import rules_config
    from webstore import day_papers, seed_vectors
    private = tmp_path / "alice-private-rules"
    private.mkdir()
    secret = "re:diffusion(?#alice-avoids-this)"
    _, cfg = rules_config(private, authors="Bin-Bin Gao  # alice-follows-her\n",
                          exclude=f"{secret}\nreinforcement learning\n")
    db = tmp_path / "ranker.sqlite3"
    settings = resolve(cfg, flags={"embedder": EMBEDDER, "backend": "fake", "model": "test", "db": db})
    papers = day_papers(DAY, hostile=False)
    with Store(db) as s:
        seed_vectors(s, papers)
        run_day(fetch_day(papers, settings, store=s), tmp_path / "out", settings, store=s,
                backend=FakeBackend("test"))
        rules = {r.paper_id: r.rule for r in s.get_rankings(DAY)}
        assert {f"exclude:{secret}", "exclude:reinforcement learning", "pin"} <= set(rules.values())
        build_site(s, tmp_path / "site")
        served = render("day.html", urls=ServeUrls(), page=views.day_page(s, DAY))
    assert f'title="an exclusion dropped it: {secret}"' in served                   # serve keeps the rule
    assert 'title="an exclusion dropped it: reinforcement learning"' in served
    site = tmp_path / "site"
    pages = {str(p.relative_to(site)): p.read_text(encoding="utf-8") for p in site.rglob("*") if p.is_file()}
    assert [p for p, text in pages.items()
            if any(w in text for w in ("alice-", "exclude:", "an exclusion dropped it:", 'title="reinforcement',
                                       'title="re:'))] == []
    day = pages[f"days/{DAY}.html"]
    assert day.count('title="an exclusion dropped it">excluded</span>') == \
        sum(r.startswith("exclude:") for r in rules.values())
    assert 'title="an author pin kept it">pinned</span>' in day
    dropped = next(pid for pid, r in rules.items() if r == "exclude:reinforcement learning")
    paper = pages[f"papers/{paper_file(dropped)}"]
    assert '<span class="badge exclude">excluded</span>' in paper and '<td class="t">exclude</td>' in paper


@needs_browser
def test_the_sites_pages_carry_a_content_security_policy_that_lets_them_work_and_stops_inline_script(store_db,
                                                                                                     tmp_path,
                                                                                                     chromium):
    """The published site had no Content-Security-Policy: a page that failed to escape something would run it. Each
    page says one in a <meta> (a file server sends no header of ours): the site's own scripts and stylesheet, the
    search index's scripts, nothing inline. In Chromium, over http from a plain static server and opened from disk,
    every kind of page works under it with no violation (the stylesheet applies, the day's filters and the search
    run, the search form submits), and a script written into a page, inline or as a handler, does not run."""
    import html
    import re
    import threading
    from functools import partial
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass
    out = tmp_path / "site"
    with Store(store_db) as s:
        build_site(s, out)
    pages = {str(p.relative_to(out)): p.read_text(encoding="utf-8") for p in out.rglob("*.html")}
    # the first thing in the head, before anything it governs; exactly what the site needs: no inline, no fetch()
    meta = re.compile(r'<head>\n<meta charset="utf-8">\n<meta http-equiv="Content-Security-Policy" content="([^"]*)">')
    policies = {html.unescape(m[1]) if (m := meta.search(text)) else None for text in pages.values()}
    assert policies == {"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                        "form-action 'self'; base-uri 'none'"}
    day = pages[f"days/{DAY}.html"]
    (out / "days" / "injected.html").write_text(day.replace(
        "</main>", '<script>window.__ran = "inline"</script><button onclick="">x</button>'
                   '<img src="../static/style.css" onerror="window.__ran = \'handler\'"></main>'), encoding="utf-8")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(out)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        with own_pages(chromium) as b:
            for base in (out.as_uri(), f"http://127.0.0.1:{httpd.server_address[1]}"):
                page, errors = watched_page(b)
                said = []
                page.on("console", lambda m: said.append(m.text) if "Content Security Policy" in m.text else None)
                # the page's violations as it reports them (an init script runs outside the page's policy)
                page.add_init_script("window.__csp = []; document.addEventListener('securitypolicyviolation',"
                                     " e => window.__csp.push(e.violatedDirective))")
                for rel in ("index.html", "months/2025-05.html", f"days/{DAY}.html", "papers/2505.09572.html"):
                    page.goto(f"{base}/{rel}")
                    assert page.locator("h1").count() == 1, rel
                    # style.css applied: its font, not the browser's default serif
                    assert "system-ui" in page.evaluate("getComputedStyle(document.body).fontFamily"), rel
                    assert page.evaluate("window.__csp") == [], (base, rel)
                page.goto(f"{base}/days/{DAY}.html")                   # site.js runs: the filters hide papers
                picks = page.locator("section.picks article.paper").count()
                page.check("input[name=show][value=picked]")
                assert page.locator("article.paper:visible").count() == picks < 193
                page.fill("header form.search input[name=q]", "diffusion policy")      # the form goes to search
                page.press("header form.search input[name=q]", "Enter")
                page.wait_for_selector("#results li")                  # the index's scripts loaded and searched
                assert page.url == f"{base}/search.html?q=diffusion+policy"
                assert "Diffusion Policy" in page.locator("#results li a").first.inner_text()
                assert page.evaluate("window.__csp") == [] and said == [] and errors == [], (base, said, errors)
                page.goto(f"{base}/days/injected.html")
                assert page.locator("h1").inner_text() == f"Papers of {DAY}"
                page.wait_for_function("window.__csp.length >= 2")
                assert page.evaluate("window.__ran") is None, base
                assert set(page.evaluate("window.__csp")) == {"script-src-elem", "script-src-attr"}, base
                assert len(said) >= 2 and errors == [], base
                page.close()
    finally:
        httpd.shutdown()
        httpd.server_close()
