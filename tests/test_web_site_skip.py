"""`ranker site` rebuilt daily: a page whose inputs did not change is neither rendered nor read back (the site's
STATE keeps a digest of each page's inputs and its file's stat as written), and every change that shows on a page
renders it again, so the site is always byte for byte the one a build from scratch writes."""
from __future__ import annotations

import os
import re
import shutil
from dataclasses import replace

import pytest

from ranker.records import Paper, Score
from ranker.store import Store
from ranker.web import render as render_mod
from ranker.web import site as site_mod
from ranker.web.render import paper_file
from ranker.web.site import STATE, build_site

from webstore import DAY, OTHER_DAY, fill_store


def _tree(root) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != STATE}


def _mtimes(root) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


def _as_from_scratch(store: Store, out, tmp_path) -> None:
    """The rebuilt site holds exactly what a build into an empty folder writes."""
    fresh = tmp_path / f"fresh{len(list(tmp_path.glob('fresh*')))}"
    res = build_site(store, fresh)
    assert res.rendered == res.days + res.papers            # nothing to skip in a new folder
    assert _tree(out) == _tree(fresh)


@pytest.fixture
def built(tmp_path):
    db, out = tmp_path / "s.sqlite3", tmp_path / "site"
    fill_store(db, tmp_path / "o1", days=(DAY, OTHER_DAY), n=12, hostile=False)
    with Store(db) as s:
        first = build_site(s, out)
    assert first.rendered == first.days + first.papers == 2 + 24
    return db, out


def test_a_rebuild_with_nothing_changed_renders_no_page_and_writes_nothing(built, tmp_path):
    db, out = built
    before = _mtimes(out)
    assert STATE in before
    with Store(db) as s:
        res = build_site(s, out)
        assert res.rendered == 0 and res.written == [] and res.removed == []
        assert res.days == 2 and res.papers == 24 and res.unchanged == res.pages
        s.set_label(s.get_rankings(DAY)[0].paper_id, 1, DAY)     # the site shows no labels: nothing to render
        assert build_site(s, out).rendered == 0
        _as_from_scratch(s, out, tmp_path)
    assert _mtimes(out) == before


def test_a_new_day_renders_its_pages_and_those_it_changes_not_the_history(tmp_path):
    db, out = tmp_path / "s.sqlite3", tmp_path / "site"
    fill_store(db, tmp_path / "o1", days=(DAY,), n=12, hostile=False)

    def none(_s, _pid, _k):              # similar papers that a new day does not change (here, every old
        return []                        # paper's panel would name a new one: the corpus index has 24 papers)
    with Store(db) as s:
        build_site(s, out, similar=none)
    fill_store(db, tmp_path / "o2", days=(OTHER_DAY,), n=12, hostile=False)
    lines = (out / STATE).read_text().splitlines()
    with Store(db) as s:
        res = build_site(s, out, similar=none)
        new = {f"papers/{paper_file(r.paper_id)}" for r in s.get_rankings(OTHER_DAY)}
    # the state is a line a page (a site kept in git changes by the pages rendered, not one line of all of them)
    changed = set((out / STATE).read_text().splitlines()) - set(lines)
    assert len(changed) == res.rendered and len(lines) == 1 + 12
    # the new day and its papers, and the old day (its "next day" link): no old paper's page
    assert res.rendered == 2 + 12 and len(new) == 12
    assert set(res.written) == {*new, f"days/{DAY}.html", f"days/{OTHER_DAY}.html", "months/2025-07.html",
                                "months/2025-05.html", "index.html", "static/search/2025-07.js",
                                "static/search/index.js"}
    with Store(db) as s:                  # and with the corpus index's similar papers, as from scratch
        res = build_site(s, out)
        assert res.rendered == 24
        _as_from_scratch(s, out, tmp_path)


def _first_pick(s: Store, day: str) -> str:
    return next(r.paper_id for r in s.get_rankings(day) if r.kept)


def test_a_rescore_renders_the_paper_and_its_day_again(built, tmp_path):
    db, out = built
    with Store(db) as s:
        pid = _first_pick(s, DAY)
        g = s.get_day_digest(DAY)
        s.put_score(Score(pid, 10, 10, "A comment written by the re-score."), g.model, g.prompt_hash)
        res = build_site(s, out)
        assert {f"papers/{paper_file(pid)}", f"days/{DAY}.html"} <= set(res.written)
        assert "A comment written by the re-score." in (out / "papers" / paper_file(pid)).read_text()
        assert res.rendered < res.days + res.papers
        _as_from_scratch(s, out, tmp_path)


def test_a_revised_paper_renders_its_page_its_days_and_the_pages_listing_it_as_similar(built, tmp_path):
    db, out = built
    with Store(db) as s:
        pid = _first_pick(s, DAY)
        listing = [p for p in out.glob("papers/*.html") if f'href="../papers/{paper_file(pid)}"' in p.read_text()]
        assert listing                                   # its title shows in other papers' similar papers
        p = s.get_paper(pid)
        s.add_papers([replace(p, title="A revised title, v9", version=9, date=DAY)])
        res = build_site(s, out)
        assert {f"papers/{paper_file(pid)}", f"days/{DAY}.html"} <= set(res.written)
        assert {f"papers/{q.name}" for q in listing} <= set(res.written)
        assert all("A revised title, v9" in q.read_text() for q in listing)
        _as_from_scratch(s, out, tmp_path)


def test_new_similar_papers_render_the_page_again(built, tmp_path):
    db, out = built
    with Store(db) as s:
        ids = sorted(r.paper_id for r in s.get_rankings(DAY))
        a, b = ids[0], ids[1]
        res = build_site(s, out, similar=lambda _s, pid, _k: [(b, 0.5)] if pid == a else [])
        # every page with similar papers lost them; a's lists b alone
        assert f"papers/{paper_file(a)}" in res.written
        assert f'href="../papers/{paper_file(b)}"' in (out / "papers" / paper_file(a)).read_text()
        again = build_site(s, out, similar=lambda _s, pid, _k: [(b, 0.5)] if pid == a else [])
        assert again.rendered == 0 and again.written == []
        moved = build_site(s, out, similar=lambda _s, pid, _k: [(b, 0.25)] if pid == a else [])
        assert moved.written == [f"papers/{paper_file(a)}"] and moved.rendered == 1
        assert "0.25" in (out / "papers" / paper_file(a)).read_text()


def test_changed_cut_offs_render_the_pages_they_show_on(built, tmp_path):
    db, out = built
    with Store(db) as s:
        g = s.get_day_digest(DAY)
        s.put_day_digest(replace(g, min_relevance=10, min_novelty=10))       # no pick left on the day
        res = build_site(s, out)
        assert f"days/{DAY}.html" in res.written
        assert any(w.startswith("papers/") for w in res.written)           # "digest pick on" is gone from them
        _as_from_scratch(s, out, tmp_path)


def test_a_template_change_renders_every_page_again(built, tmp_path, monkeypatch):
    db, out = built
    templates = tmp_path / "templates"
    shutil.copytree(render_mod.TEMPLATES, templates)
    base = templates / "base.html"
    base.write_text(base.read_text().replace("A static copy made by", "A static copy, edited, made by"))
    monkeypatch.setattr(render_mod, "TEMPLATES", templates)
    monkeypatch.setattr(render_mod, "_ENV", None)
    monkeypatch.setattr(site_mod, "_VERSION", None)
    with Store(db) as s:
        res = build_site(s, out)
        assert res.rendered == res.days + res.papers
        assert all(b"A static copy, edited, made by" in (out / w).read_bytes()
                   for w in res.written if w.endswith(".html"))
        assert len([w for w in res.written if w.endswith(".html")]) == 2 + 24 + 2 + 2     # and months, index, search
        _as_from_scratch(s, out, tmp_path)


def test_a_page_deleted_edited_or_replaced_by_hand_is_written_again(built, tmp_path):
    db, out = built
    with Store(db) as s:
        ids = sorted(r.paper_id for r in s.get_rankings(DAY))
    gone, edited, same_size, linked = (out / "papers" / paper_file(i) for i in ids[:4])
    want = {p: p.read_bytes() for p in (gone, edited, same_size, linked)}
    gone.unlink()
    edited.write_text("<p>mine</p>")
    data = bytearray(same_size.read_bytes())                 # same size, its mtime put back: ctime still tells
    data[data.index(b"<h1>") + 4] ^= 0x20
    st = same_size.stat()
    same_size.write_bytes(bytes(data))
    os.utime(same_size, ns=(st.st_atime_ns, st.st_mtime_ns))
    target = tmp_path / "elsewhere.html"
    target.write_text("not the site's")
    linked.unlink()
    linked.symlink_to(target)
    with Store(db) as s:
        res = build_site(s, out)
        assert res.rendered == 4
        assert sorted(res.written) == sorted(f"papers/{p.name}" for p in want)
        assert all(p.read_bytes() == data for p, data in want.items()) and not linked.is_symlink()
        assert target.read_text() == "not the site's"
        _as_from_scratch(s, out, tmp_path)


def test_a_state_file_that_is_lost_or_broken_renders_every_page_and_writes_none(built, tmp_path):
    db, out = built
    before = {k: v for k, v in _mtimes(out).items() if k != STATE}
    for broken in ("{not json", "[1, 2]", '{"papers/x.html": "nope"}', '["papers/x.html", "nope"]\n{', None):
        if broken is None:
            (out / STATE).unlink()
        else:
            (out / STATE).write_text(broken)
        with Store(db) as s:
            res = build_site(s, out)
        assert res.rendered == res.days + res.papers and res.written == []
        assert {k: v for k, v in _mtimes(out).items() if k != STATE} == before
        with Store(db) as s:
            assert build_site(s, out).rendered == 0


def test_another_database_into_the_same_folder_renders_its_own_pages(built, tmp_path):
    db, out = built
    other = tmp_path / "other.sqlite3"
    fill_store(other, tmp_path / "o3", days=(DAY,), n=12, hostile=False)
    with Store(other) as s:
        g = s.get_day_digest(DAY)
        pid = _first_pick(s, DAY)
        s.put_score(Score(pid, 10, 9, "Only the other database says this."), g.model, g.prompt_hash)
        build_site(s, out)
        assert "Only the other database says this." in (out / "papers" / paper_file(pid)).read_text()
        _as_from_scratch(s, out, tmp_path)


def test_the_paper_pages_read_in_batches_give_the_pages_read_one_by_one(built):
    """_PaperReads gives views.paper_page what the store's own methods give, for each paper of the site; its
    similar papers are read as their panel shows them (id, title, day), and the page is the same page: a panel
    that showed more of each paper (its authors) would differ here."""
    from ranker.web import views
    from ranker.web.render import SiteUrls, render
    db, _ = built
    with Store(db) as s:
        g = s.get_day_digest(DAY)
        pid = _first_pick(s, OTHER_DAY)
        s.put_score(Score(pid, 3, 4, "another model's"), "other-model", g.prompt_hash)
        s.add_papers([Paper(id=pid, title=s.get_paper(pid).title, abstract=s.get_paper(pid).abstract,
                            authors=["A"], categories=["cs.LG"], primary_category="cs.LG", date=DAY)])
        ids = sorted({r.paper_id for d in (DAY, OTHER_DAY) for r in s.get_rankings(d)})

        def similar(_s, i, _k):             # every other paper, the one just revised first
            return [(j, 0.5) for j in [pid, *ids] if j != i][:views.SIMILAR_K + 1]
        reads = site_mod._PaperReads(s, ids, {}, listed=set(ids))
        for i in ids:
            batched = views.paper_page(reads, i, similar=similar, with_labels=False, public=True)
            alone = views.paper_page(s, i, similar=similar, with_labels=False, public=True)
            assert len(alone.similar) == views.SIMILAR_K and all(p.authors for p, _ in alone.similar)
            assert replace(batched, similar=[]) == replace(alone, similar=[])
            assert [(p.id, p.title, p.date, c) for p, c in batched.similar] == \
                [(p.id, p.title, p.date, c) for p, c in alone.similar]
            assert render("paper.html", urls=SiteUrls(1), page=batched) == \
                render("paper.html", urls=SiteUrls(1), page=alone)


def test_a_state_file_nested_past_the_parsers_depth_renders_every_page(built):
    """A damaged or hostile state, '[[[[...' deeper than json's recursion: bad JSON as any other, not a crash."""
    db, out = built
    (out / STATE).write_text("[" * 100_000 + "\n")
    with Store(db) as s:
        res = build_site(s, out)
    assert res.rendered == res.days + res.papers and res.written == []
    with Store(db) as s:
        assert build_site(s, out).rendered == 0


@pytest.mark.parametrize("rescored", [False, True])
def test_a_page_another_program_writes_during_the_build_is_written_again_by_the_next(built, tmp_path, monkeypatch,
                                                                                       rescored):
    """The state keeps a page's stat as the build left it, not as it is when the build ends: a page written by
    another program meanwhile (an edit, a sync, a build the lock could not keep apart) was taken for the build's
    own, and no later build wrote it again. Both a page the build skipped and one it wrote."""
    db, out = built
    with Store(db) as s:
        pid = _first_pick(s, DAY)
        if rescored:
            g = s.get_day_digest(DAY)
            s.put_score(Score(pid, 10, 10, "Re-scored."), g.model, g.prompt_hash)
    page = out / "papers" / paper_file(pid)
    remove_stale = site_mod._Writer.remove_stale

    def meanwhile(self):
        page.write_text("<p>another program's</p>")
        remove_stale(self)
    monkeypatch.setattr(site_mod._Writer, "remove_stale", meanwhile)
    with Store(db) as s:
        build_site(s, out)
    monkeypatch.setattr(site_mod._Writer, "remove_stale", remove_stale)
    assert page.read_text() == "<p>another program's</p>"
    with Store(db) as s:
        res = build_site(s, out)
        assert res.written == [f"papers/{paper_file(pid)}"] and res.rendered == 1
        _as_from_scratch(s, out, tmp_path)


def test_a_change_to_the_records_the_templates_call_renders_every_page_again(built, tmp_path, monkeypatch):
    """paper.html links Paper.url, a property of ranker/records.py, outside the web code the site's version
    hashed: a checkout updated to another url (its version still 0.1.0) kept the old link on every page skipped."""
    import pathlib

    from ranker import records
    db, out = built
    read_bytes = pathlib.Path.read_bytes

    def edited(self):                      # records.py as an update that changed Paper.url leaves it
        data = read_bytes(self)
        return data + b"\n# url: the versioned abs page\n" if self == pathlib.Path(records.__file__) else data
    monkeypatch.setattr(pathlib.Path, "read_bytes", edited)
    monkeypatch.setattr(records.Paper, "url", property(lambda p: f"https://arxiv.org/abs/{p.id}v{p.version or 1}"))
    monkeypatch.setattr(site_mod, "_VERSION", None)
    with Store(db) as s:
        res = build_site(s, out)
        assert res.rendered == res.days + res.papers
        assert all(re.search(r'href="https://arxiv\.org/abs/[^"]+v\d+"', p.read_text())
                   for p in out.glob("papers/*.html"))
        _as_from_scratch(s, out, tmp_path)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_where_the_state_or_a_page_goes_is_replaced_not_written_into(built, tmp_path):
    """atomic_file writes a FIFO in place (a stream, as /dev/stdout): left where the state or a page goes (by
    anyone who could write in the folder), the build opened it and waited for a reader forever."""
    import threading
    db, out = built
    with Store(db) as s:
        page = out / "papers" / paper_file(_first_pick(s, DAY))
    for fifo in (out / STATE, page):
        fifo.unlink()
        os.mkfifo(fifo)
    done: list = []

    def build():
        with Store(db) as s:
            done.append(build_site(s, out))
    t = threading.Thread(target=build, daemon=True)
    t.start()
    t.join(30)
    if t.is_alive():                     # let the stuck build go (a reader for the FIFO), then fail
        for fifo in (out / STATE, page):
            try:
                fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
                os.close(fd)
            except OSError:
                pass
        pytest.fail("the build hung on a FIFO")
    assert done and page.is_file() and (out / STATE).is_file()
    with Store(db) as s:
        assert build_site(s, out).rendered == 0
        _as_from_scratch(s, out, tmp_path)
