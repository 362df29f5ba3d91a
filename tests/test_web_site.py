"""`ranker site`: static pages of the store, opened from disk (file://) in a real headless Chromium; rebuilding
rewrites only what changed."""
from __future__ import annotations

import pytest

from ranker.store import Store
from ranker.web.render import paper_file
from ranker.web.site import build_site

from conftest import ranker
from webstore import DAY, EMBEDDER, HOSTILE_ID, HOSTILE_TITLE, OTHER_DAY, fill_store
from webtools import browser, needs_browser, watched_page



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


def _mtimes(root):
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


def test_site_cli_writes_pages_and_a_rebuild_rewrites_only_what_changed(store_db, tmp_path):
    out = tmp_path / "site"
    r = ranker("site", "--out", out, "--db", store_db)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(out / "index.html")
    assert "site: 1 days, 193 papers;" in r.stderr and "0 unchanged" in r.stderr
    for rel in ("index.html", f"days/{DAY}.html", "months/2025-05.html", "search.html", "static/style.css",
                "static/site.js", "static/search-index.js", f"papers/{paper_file(HOSTILE_ID)}"):
        assert (out / rel).is_file(), rel
    html = (out / f"days/{DAY}.html").read_text()
    assert 'class="thumbs"' not in html and "csrf" not in html and 'action="/label"' not in html   # no feedback
    assert 'href="/' not in html and 'src="/' not in html                                    # relative links only
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in html and "<script>window.__pwned" not in html
    index = (out / "static/search-index.js").read_text()
    assert index.startswith("window.RANKER_SEARCH = {") and "<script>" not in index

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
    assert {"index.html", f"days/{OTHER_DAY}.html", "months/2025-07.html", "static/search-index.js"} <= changed
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


def test_site_refuses_a_file_as_out(store_db, tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    r = ranker("site", "--out", f, "--db", store_db)
    assert r.returncode == 1 and r.stderr.strip() == f"error: {f}: exists and is not a folder"


@needs_browser
def test_static_site_from_disk_navigates_filters_and_searches(store_db, tmp_path):
    from urllib.parse import urlencode
    out = tmp_path / "site"
    with Store(store_db) as s:
        build_site(s, out)
    with browser() as b:
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


def _reachable_broken(root):
    """Links to missing files on the pages a visitor can reach from index.html (and the search index's papers)."""
    import json
    import re
    from urllib.parse import unquote, urlsplit
    seen, todo, bad = set(), [root / "index.html"], []
    index = root / "static" / "search-index.js"
    if index.is_file():
        rows = json.loads(index.read_text(encoding="utf-8").split("=", 1)[1].strip().rstrip(";"))["papers"]
        todo += [root / r[5] for r in rows]
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
    assert stop_after > 16 and {str(p.relative_to(out)) for p in calls} == set(res.written)
    assert res.days == 2 and res.papers == 24 and _reachable_broken(out) == [] and _broken_links(out) == []
    # a build killed outright (kill -9) leaves its temporary files: the next one removes them, never publishes them
    left = out / "days" / f".{DAY}.html.0123abcd.tmp"
    left.write_text("half a page")
    with Store(db) as s:
        build_site(s, out)
    assert not left.exists() and (out / "days" / f"{DAY}.html").is_file()


def test_site_does_not_write_over_a_folder_that_holds_other_files(store_db, tmp_path):
    """`ranker site --out .` in a folder of one's own wrote its index.html, search.html and static/style.css over
    the files of those names there, and searched the whole tree (.git, a home folder) for temporary files to
    delete. A folder that holds what the site writes, and is not a site ranker wrote, is refused with nothing
    written; a folder beside whose files the site fits (a GitHub Pages repository) keeps them untouched."""
    mine = tmp_path / "mine"
    (mine / "static").mkdir(parents=True)
    (mine / "index.html").write_text("<h1>my own page</h1>")
    (mine / "static" / "style.css").write_text("body { color: red }")
    before = {str(p.relative_to(mine)) for p in mine.rglob("*")}
    r = ranker("site", "--out", mine, "--db", store_db)
    assert r.returncode == 1 and "site:" not in r.stderr, r.stderr
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith(f"error: {mine}: holds index.html") and "static" in line, line
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
    for marker in old.glob(".*"):
        marker.unlink()
    (old / "index.html").write_text("an index.html from an older ranker site")
    r = ranker("site", "--out", old, "--db", store_db)
    assert r.returncode == 0 and "Archive" in (old / "index.html").read_text(), r.stderr


@needs_browser
def test_the_static_search_reads_an_arxiv_id_as_serve_does(store_db, tmp_path):
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
    with browser() as b:
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
def test_the_static_search_finds_by_words_what_serve_finds(store_db, tmp_path):
    """The site's search matched a query word anywhere in a title or abstract, though it says "every word must
    appear": "RL" found every paper with "world" in it (the first hit, by its title), "NER" nearly every paper
    of the day ("inner", "learner"). It finds the papers that hold each word, the last one also as the start of
    a word, as serve's search by words does (the store's full-text index), accents and case aside."""
    import json
    out = tmp_path / "site"
    with Store(store_db) as s:
        build_site(s, out)
        index = (out / "static" / "search-index.js").read_text(encoding="utf-8")
        on_site = {p[0] for p in json.loads(index[index.index("{"):index.rindex("}") + 1])["papers"]}
        queries = ("RL", "ViT", "NER", "net", "GAN", "diffusion policy", "graph neural", "schrodinger",
                   "Large Language")
        expect = {q: set(s.search_papers(q, limit=10_000)) & on_site for q in queries}
    sizes = {q: len(v) for q, v in expect.items()}
    assert all(n < 200 for n in sizes.values()) and all(sizes[q] for q in queries if q != "NER"), sizes
    with browser() as b:
        page, errors = watched_page(b)
        for q in queries:
            _search_site(page, out, q)
            hrefs = page.locator("#results li a").evaluate_all("links => links.map(a => a.getAttribute('href'))")
            found = {h[len("papers/"):-len(".html")] for h in hrefs}
            assert found == expect[q], (q, sorted(found - expect[q])[:5], sorted(expect[q] - found)[:5])
            assert page.locator("#search-status").inner_text().startswith(f"{len(found)} result"), q
        assert errors == []


@needs_browser
def test_the_static_search_folds_the_letters_serve_folds(store_db, tmp_path):
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
    with browser() as b:
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
    site's 14,735 files. A page of the site draws none, and uses none."""
    out = tmp_path / "site"
    with Store(store_db) as s:
        build_site(s, out)
    pages = list(out.rglob("*.html"))
    assert len(pages) > 100
    assert [p.name for p in pages if "icon-up" in p.read_text(encoding="utf-8")] == []
