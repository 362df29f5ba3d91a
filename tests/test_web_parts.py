"""The web's parts without a browser: plots, the security checks, views over a small store, semantic search, and
the serve CLI's edges (a port in use, a non-loopback host, a missing extra), calibrate's note on labels."""
from __future__ import annotations

import json
import re
import shutil
import socket
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from ranker.errors import InputError, ModelError
from ranker.prefilter.embed import Embedder
from ranker.records import DayDigest, Paper, Ranked, Score
from ranker.sources import read_papers
from ranker.store import Store
from ranker.web import plots, security, views
from ranker.web.render import ServeUrls, render
from ranker.web.search import SemanticSearch, corpus_similar, search

from conftest import DAYS, ranker, store_vectors

SVG = "{http://www.w3.org/2000/svg}"
EVIL = '<script>window.__pwned=1</script>"&'


def _svg(s: str) -> ET.Element:
    return ET.fromstring(s)                 # well-formed XML, or this raises


def test_histogram_marks_the_keep_cutoff_between_kept_and_dropped():
    scores = [0.1 * i for i in range(10)]
    kept = [s >= 0.65 for s in scores]
    root = _svg(plots.score_histogram(scores, kept, bins=10))
    cut = [e for e in root.iter(SVG + "line") if e.get("class") == "cutoff"]
    assert len(cut) == 1
    # x of 0.65 on a 0..0.9 axis drawn from x=44 over 504 px
    assert float(cut[0].get("x1")) == pytest.approx(44 + 0.65 / 0.9 * 504, abs=0.2)
    texts = [t.text for t in root.iter(SVG + "text")]
    assert "kept: 3 of 10" in texts
    assert len([r for r in root.iter(SVG + "rect")]) == 10
    assert _svg(plots.score_histogram([], [])).find(SVG + "text").text.startswith("No prefilter")


def test_grid_counts_every_pair_and_outlines_the_pick_corner():
    pairs = [(9, 8), (9, 8), (10, 10), (3, 4), (8, 6)]
    root = _svg(plots.score_grid(pairs, 8, 7))
    counts = [int(t.text) for t in root.iter(SVG + "text") if t.get("font-size") == "9"]
    assert sorted(counts) == [1, 1, 1, 2]
    box = [e for e in root.iter(SVG + "rect") if e.get("class") == "cutoff"][0]
    assert (int(box.get("x")), int(box.get("width"))) == (48 + 7 * 24 - 1, 3 * 24 + 1)     # relevance 8..10
    assert int(box.get("height")) == 4 * 24 + 1                                             # novelty 7..10
    assert "3 papers here" in [t.text for t in root.iter(SVG + "text")]


def test_plots_escape_names():
    s = plots.topic_bars([(EVIL, 3), ("B", 1)], f"title {EVIL}")
    assert "<script>" not in s and "&lt;script&gt;" in s
    root = _svg(s)
    assert root.find(SVG + "title").text == f"title {EVIL}"


def test_security_checks():
    assert security.is_loopback("127.0.0.1") and security.is_loopback("::1") and security.is_loopback("localhost")
    assert security.is_loopback("127.0.0.2") and security.is_loopback("[::1]") and not security.is_loopback("0.0.0.0")
    assert not security.is_loopback("")                                # binds to every address
    assert not security.is_loopback("192.168.1.5") and not security.is_loopback("example.org")
    loop = {"127.0.0.1", "localhost", "::1"}
    assert security.host_allowed("127.0.0.1:8000", loop) and security.host_allowed("[::1]:8000", loop)
    assert security.host_allowed("LOCALHOST:8000", loop)
    assert not security.host_allowed("evil.example:8000", loop) and not security.host_allowed("", loop)
    assert security.host_allowed("anything", None)
    # a port that is none: the name before it was taken for the Host (an evil.example page's own name after "@")
    for header in ("127.0.0.1:80@evil.example", "localhost:x", "[::1]@evil.example", "[::1]:8000x",
                   "localhost:\uff18\uff10"):
        assert not security.host_allowed(header, loop), header
    # an empty port is a port (RFC 3986's authority): "localhost:" was allowed and "[::1]:" refused
    for header in ("localhost:", "127.0.0.1:", "[::1]:"):
        assert security.host_allowed(header, loop), header
    from ranker.web.server import allowed_hosts_for
    for bound, header in (("127.0.0.2", "127.0.0.2:8000"), ("[::1]", "[::1]:8000"), ("localhost", "localhost:80")):
        assert security.host_allowed(header, allowed_hosts_for(bound))
        assert not security.host_allowed("evil.example:8000", allowed_hosts_for(bound))
    import socket
    lan = allowed_hosts_for("0.0.0.0", ("ranker.lab.example", "Proxy.Lab.Example:8443", "[fd00::7]:80", "fd00::8"))
    assert socket.gethostname().lower() in lan and "ranker.lab.example" in lan and "localhost" in lan
    for header in ("proxy.lab.example:8443", "proxy.lab.example", "[fd00::7]:8000", "[fd00::8]"):
        assert security.host_allowed(header, lan), header       # --allow-host name:port: the name is allowed
    assert not security.host_allowed("evil.example:8000", lan) and "0.0.0.0" not in lan
    # offline mode (--offline, RANKER_OFFLINE=1) refuses outgoing connections, not serving the lab's network: the
    # routing probe that finds this machine's address is refused, and the bind goes on without that address
    from ranker.netguard import disable_offline, enable_offline
    enable_offline()
    try:
        lan = allowed_hosts_for("0.0.0.0")
    finally:
        disable_offline()
    assert socket.gethostname().lower() in lan and "localhost" in lan
    own = ("http", "127.0.0.1:8000")
    assert security.same_origin("http://127.0.0.1:8000", None, *own)
    assert not security.same_origin("http://127.0.0.1:8001", None, *own)
    assert not security.same_origin("null", None, *own)
    assert not security.same_origin(None, "http://evil.example/x", *own)
    assert security.same_origin(None, "http://127.0.0.1:8000/day/x", *own)
    assert security.same_origin(None, None, *own)                      # no browser: the token decides
    assert security.safe_next("/day/2025-05-15?show=picked#p-1") == "/day/2025-05-15?show=picked#p-1"
    for bad in ("https://evil.example/", "//evil.example/", "/\\evil.example", "javascript:alert(1)", "", None,
                "/a\nb"):
        assert security.safe_next(bad) == "/"
    secret = security.new_secret()
    assert security.token_ok(secret, secret) and not security.token_ok("x", secret)
    assert not security.token_ok(None, secret) and not security.token_ok("", secret)


def _small_store(tmp_path) -> Store:
    s = Store(tmp_path / "r.sqlite3")
    ps = [Paper(id=f"2505.0000{i}", title=f"Paper {i}", abstract=f"About topic {i}.", date="2025-05-15",
                authors=["A"], categories=["cs.LG"]) for i in range(5)]
    s.add_papers(ps)
    rk = [Ranked(ps[i], 1.0 - i / 10, i < 3, topic="T" if i % 2 else EVIL) for i in range(5)]
    rk[0].rule = "pin"
    rk[4].rule = f"exclude:re:{EVIL}"           # Ranked.rule as the prefilter writes it (the rule after "exclude:")
    s.put_rankings("2025-05-15", rk)
    s.put_day_digest(DayDigest("2025-05-15", "m", "h", 8, 7))
    for i, (r, n) in enumerate([(9, 9), (8, 6), (10, 8)]):
        s.put_score(Score(ps[i].id, r, n, f"comment {i} {EVIL}"), "m", "h")
    return s


def test_day_view_picks_rules_and_filters(tmp_path):
    with _small_store(tmp_path) as s:
        page = views.day_page(s, "2025-05-15")
        assert [r.paper.id for r in page.picks] == ["2505.00002", "2505.00000"]     # both 18: relevance breaks the tie
        assert [r.paper.id for r in page.rest] == ["2505.00001", "2505.00003", "2505.00004"]
        assert page.counts == {"papers": 5, "kept": 3, "scored": 3, "picks": 2, "up": 0, "down": 0}
        assert page.picks[1].rule == "pin" and page.rest[2].rule == f"exclude:re:{EVIL}"
        html = render("day.html", urls=ServeUrls(), page=page, can_label=True, csrf="tok")
        assert html.count('class="badge pin"') == 1 and html.count('class="badge exclude"') == 1
        assert "<script>window" not in html and "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in html
        only_t = views.day_page(s, "2025-05-15", topic="T")
        assert {r.paper.id for r in only_t.picks + only_t.rest} == {"2505.00001", "2505.00003"}
        scored = views.day_page(s, "2025-05-15", show="scored")
        assert len(scored.picks) + len(scored.rest) == 3
        assert views.day_page(s, "2025-05-16") is None and views.day_page(s, "../etc") is None
        month = views.month_page(s, "2025-05")
        assert dict(month.per_topic) == {EVIL: 2} and month.picks == 2


def test_a_day_the_store_holds_but_never_ranked_says_so(tmp_path):
    """A history day that `calibrate` or `eval` put in the store: its papers, no ranking, no digest. Nothing on
    it was kept by the prefilter, and the page does not claim an order it does not have."""
    with _small_store(tmp_path) as s:
        s.add_papers([Paper(id=f"2505.1000{i}", title=f"Later {i}", abstract="A.", date="2025-05-16",
                            authors=["B"], categories=["cs.LG"]) for i in range(3)])
        page = views.day_page(s, "2025-05-16")
        assert not page.ranked and page.counts["kept"] == 0 and len(page.rest) == 3
        html = render("day.html", urls=ServeUrls(), page=page, can_label=True, csrf="tok")
        assert "not ranked yet" in html and 'class="badge kept"' not in html and "The day's papers" in html
        assert "prefilter's order" not in html and "kept by the prefilter" not in html
        ranked = render("day.html", urls=ServeUrls(), page=views.day_page(s, "2025-05-15"), can_label=True, csrf="t")
        assert "3 kept by the prefilter" in ranked and 'class="badge kept"' in ranked


def test_paper_view_similar_papers_from_the_index_when_there_is_one(tmp_path):
    with _small_store(tmp_path) as s:
        assert corpus_similar(s, "2505.00000", 5) == []          # no vector of it stored: nothing, no model
        page = views.paper_page(s, "2505.00000", similar=lambda store, pid, k: [(pid, 1.0), ("2505.00003", 0.8),
                                                                                  ("unknown", 0.7)])
        assert [(p.id, sc) for p, sc in page.similar] == [("2505.00003", 0.8)]
        assert page.main.score.relevance == 9 and page.picked_on == ["2025-05-15"]
        html = render("paper.html", urls=ServeUrls(), page=page)
        assert "Similar papers" in html and 'href="/paper/2505.00003"' in html
        assert 'href="https://arxiv.org/pdf/2505.00000"' in html
        html = render("paper.html", urls=ServeUrls(), page=views.paper_page(s, "2505.00000"))
        assert "Similar papers" not in html
        assert views.paper_page(s, "nope") is None
        # an embedder preset not prepared: the page says why it has no similar papers, and the command that
        # prepares it, as the CLI's error line does
        from ranker.errors import ModelError

        def unprepared(store, pid, k):
            raise ModelError("model preset 'minilm' is not prepared", prepare=("minilm", None))
        page = views.paper_page(s, "2505.00000", similar=unprepared)
        assert page.similar == [] and page.similar_note == (
            "model preset 'minilm' is not prepared; run: ranker models prepare minilm")

        # with vectors stored, the real corpus index (ranker.index) answers: built beside the database
        import numpy as np
        v = np.random.default_rng(0).normal(size=(5, 384)).astype(np.float32)
        v[3] = v[0] + 0.1 * v[3]                                  # 2505.00003 is 2505.00000's nearest
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        s.put_embeddings(((f"2505.0000{i}", "h", v[i]) for i in range(5)), "minilm")
        got = corpus_similar(s, "2505.00000", 3)
        assert len(got) == 3 and got[0][0] == "2505.00003" and got[0][1] > 0.9
        assert "2505.00000" not in [i for i, _ in got] and (s.index_dir / "minilm").is_dir()
        html = render("paper.html", urls=ServeUrls(), page=views.paper_page(s, "2505.00000", similar=corpus_similar))
        assert "Similar papers" in html and 'href="/paper/2505.00003"' in html


def test_similar_for_many_papers_is_what_each_page_would_ask_for(tmp_path):
    """The static site asks the index once for every paper (corpus_similar_many): the same neighbours, in the
    same order, as `ranker similar` finds for one paper (ranker.index.similar, a filtered search of its own);
    papers without a stored vector have none, under any of two embedders."""
    from ranker.index import similar
    from ranker.web.search import corpus_similar_many
    rng = np.random.default_rng(1)
    with Store(tmp_path / "r.sqlite3") as s:
        ids = [f"2505.{i:05d}" for i in range(300)]
        s.add_papers([Paper(id=i, title=f"t{i}", abstract="a") for i in ids + ["2505.99999"]])
        v = rng.normal(size=(300, 32)).astype(np.float32)
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        s.put_embeddings(((i, "h", v[n]) for n, i in enumerate(ids[:250])), "minilm")
        w = rng.normal(size=(50, 16)).astype(np.float32)
        w /= np.linalg.norm(w, axis=1, keepdims=True)
        s.put_embeddings(((i, "h", w[n]) for n, i in enumerate(ids[250:])), "other")
        many = corpus_similar_many(s, ids + ["2505.99999"], 8, batch=64)
        assert set(many) == set(ids)                        # 2505.99999 has no vector: no panel
        for pid in ids[::7]:
            key = "minilm" if pid in ids[:250] else "other"
            one = [(n.id, n.cosine) for n in similar(s, pid, embedder=key, k=8).neighbours]
            page = corpus_similar(s, pid, 8)                    # what a served paper page asks
            assert [i for i, _ in page] == [i for i, _ in many[pid]]
            assert [i for i, _ in many[pid]] == [i for i, _ in one] and len(one) == 8
            assert [c for _, c in many[pid]] == pytest.approx([c for _, c in one], abs=1e-6)
            assert pid not in [i for i, _ in many[pid]]
        assert all(i in ids[250:] for i, _ in many[ids[260]])       # the other embedder's own corpus


def test_similar_for_every_paper_holds_the_lists_not_every_panel_at_once(tmp_path):
    """The static site's similar papers of every paper from an exact index (allpairs, keep): each paper's panel is
    made when its page asks for it. Made at once, a year's site (73,000 papers, 17 neighbours each) held 1.2
    million Hits and as many (id, cosine) pairs, about 300 MB of its 641 MB peak; the same panels either way."""
    import tracemalloc
    from ranker.index import CorpusIndex
    from ranker.web.search import corpus_similar_many
    n, dim, k = 12_000, 8, 16
    rng = np.random.default_rng(5)
    ids = [f"2501.{i:05d}" for i in range(n)]
    v = rng.normal(size=(n, dim)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    with Store(tmp_path / "r.sqlite3") as s:
        s.put_embeddings(((ids[i], "h", v[i]) for i in range(n)), "minilm")
        assert CorpusIndex(s, "minilm").sync().kind == "flat"
        corpus_similar_many(s, ids, k, keep=True)           # the lists kept beside the index: read back below
        tracemalloc.start()
        try:
            many = corpus_similar_many(s, ids, k, keep=True)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert len(many) == n and set(many) == set(ids) and ids[7] in many and "2501.99999" not in many
        for pid in ids[::997]:
            got, one = many[pid], corpus_similar(s, pid, k)
            assert [i for i, _ in got] == [i for i, _ in one] and len(got) == k and pid not in dict(got)
            assert [c for _, c in got] == pytest.approx([c for _, c in one], abs=1e-6)
    # every panel made at once: n * k Hits and (id, cosine) pairs, about 144 bytes a neighbour more (44 MB at the
    # peak here, against 17 MB with the lists held as arrays: the index, the ids and the kept lists read back)
    assert peak < 150 * n * k, f"{peak / 2**20:.1f} MB at the peak"


def test_similar_for_many_papers_reads_their_vectors_a_batch_at_a_time(tmp_path, monkeypatch):
    """The static site of a large corpus (a backfill's papers, each on a day page): the papers' vectors are read
    from the store a batch at a time, not all at once beside the index (a large corpus is the approximate
    kind, mapped from disk, so the vectors read here were the whole of the memory)."""
    import tracemalloc
    from ranker.index import CorpusIndex, kinds
    from ranker.web.search import corpus_similar_many
    monkeypatch.setattr(kinds, "APPROX_THRESHOLD", 5000)
    n, dim = 20_000, 384
    rng = np.random.default_rng(2)
    ids = [f"2501.{i:05d}" for i in range(n)]
    with Store(tmp_path / "r.sqlite3") as s:
        for c in range(0, n, 5000):
            v = rng.normal(size=(5000, dim)).astype(np.float32)
            v /= np.linalg.norm(v, axis=1, keepdims=True)
            s.put_embeddings(((ids[c + i], "h", v[i]) for i in range(5000)), "minilm")
        assert CorpusIndex(s, "minilm").sync().kind == "ivf"
        tracemalloc.start()
        try:
            many = corpus_similar_many(s, ids, 1, batch=512)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert len(many) == n and all(len(hits) == 1 for hits in many.values())
    assert peak < 0.6 * n * dim * 4, f"{peak / 2**20:.1f} MB at the peak"


def test_semantic_search_finds_the_nearest_stored_vectors_through_the_index(tmp_path, monkeypatch):
    with Store(tmp_path / "r.sqlite3") as s:
        s.add_papers([Paper(id=str(i), title=f"t{i}", abstract="a") for i in range(3)])
        eye = np.eye(4, dtype=np.float32)
        s.put_embeddings([("0", "h", eye[0]), ("1", "h", eye[1]), ("2", "h", (eye[1] + eye[2]) / np.sqrt(2)),
                          ("~query:x", "h", eye[1])], "vecs")
        sem = SemanticSearch(Embedder("vecs"))
        asked = []
        monkeypatch.setattr(sem.embedder, "encode", lambda texts: asked.append(texts) or eye[[1]])
        assert sem.available(s)
        got = sem.search(s, "  what   I want ", k=2)
        assert [i for i, _ in got] == ["1", "2"] and got[0][1] == pytest.approx(1.0)
        assert (s.index_dir / "vecs").is_dir()          # found through the corpus index
        assert asked == [["what I want"]]
        s.put_embeddings([("3", "h", eye[1])], "vecs")           # a new vector is seen on the next search
        assert {i for i, _ in sem.search(s, "q", k=2)} == {"1", "3"}
        assert search(s, "t1", "words", sem) == ("words", ["1"], "")
        assert search(s, "q", "auto", sem)[0] == "meaning"                    # no paper holds the word "q"
        # a paper naming the query's words comes up even where the embedder ranks it last: the two fused
        assert [i for i, _ in sem.search(s, "t0", k=4)][-1] == "0"
        assert search(s, "t0", "auto", sem) == ("both", ["0", "1", "3", "2"], "")
        assert search(s, "t0", "meaning", sem) == ("meaning", ["1", "3", "2", "0"], "")
        assert search(s, "t1", "auto", SemanticSearch(Embedder("other")))[0] == "words"   # no vectors of that embedder
        # vectors of a model this machine cannot load: words, and a note that says why
        broken = SemanticSearch(Embedder("vecs"))
        monkeypatch.setattr(broken.embedder, "encode", lambda texts: broken.embedder.model)
        monkeypatch.setattr(type(broken.embedder), "_load", lambda self: (_ for _ in ()).throw(
            ModelError("not prepared", where="vecs")))
        mode, ids, note = search(s, "t1", "auto", broken)
        assert (mode, ids) == ("words", ["1"]) and "vecs: not prepared" in note
        # a preset not prepared: the note says the command that prepares it, as the CLI's error line does
        monkeypatch.setattr(type(broken.embedder), "_load", lambda self: (_ for _ in ()).throw(
            ModelError("not prepared", where="minilm", prepare=("minilm", None))))
        note = search(s, "t1", "auto", broken)[2]
        assert note.endswith("not prepared; run: ranker models prepare minilm); by words instead"), note
        # a model that gives NaN for the query: its hits would be any papers at all; words, and a note saying why
        monkeypatch.setattr(sem.embedder, "encode", lambda texts: np.full((1, 4), np.nan, dtype=np.float32))
        mode, ids, note = search(s, "t1", "auto", sem)
        assert (mode, ids) == ("words", ["1"]) and "not finite" in note


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


needs_ipv6_loopback = pytest.mark.skipif(not _has_ipv6_loopback(), reason="this machine has no IPv6 loopback (::1)")
V4 = (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", 0))
V6 = (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("::1", 0, 0, 0))


def _at(info, port):
    return (*info[:4], (info[4][0], port, *info[4][2:]))


def test_a_name_of_several_addresses_listens_on_each_it_can_bind_and_prints_them(monkeypatch):
    """`--host localhost` bound the first address the name resolves to, alone: a machine that lists ::1 first
    with IPv6 turned off could not serve it ("cannot listen"). An address this machine lacks is skipped, and
    the address printed is one bound (not the name, not an address skipped)."""
    import ranker.web.server as server
    monkeypatch.setattr(server, "lookup_to_listen", lambda name, port, type: [
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("192.0.2.1", port)), _at(V4, port)])     # not this machine's
    (sock,) = server.bind("localhost", 0)
    with sock:
        bound, port = sock.getsockname()[:2]
        assert bound == "127.0.0.1" and server.url_of(sock) == f"http://127.0.0.1:{port}/"
        with socket.create_connection((bound, port), timeout=5):      # the address printed connects
            pass
    # an address skipped, then the port in use at the next: the port's fault is said, not the skipped address's
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        with pytest.raises(InputError) as e:
            server.bind("localhost", busy.getsockname()[1])
        assert e.value.key == "port" and "in use" in e.value.message, e.value


@needs_ipv6_loopback
def test_localhost_of_both_loopbacks_listens_on_both_at_one_port(monkeypatch):
    """`--host localhost` on a machine that lists ::1 and 127.0.0.1 for it (Debian's /etc/hosts) listened on
    ::1 alone: a bookmark to http://127.0.0.1:PORT/ reached nothing. Both are listened on, at the same port
    (port 0 too), in the order the machine lists them; a port in use at either is refused naming that
    address, and the other is not left listening (a bookmark to the busy one would reach what holds it)."""
    import ranker.web.server as server
    monkeypatch.setattr(server, "lookup_to_listen", lambda name, port, type: [_at(V6, port), _at(V4, port)])
    socks = server.bind("localhost", 0)
    try:
        assert [x.getsockname()[0] for x in socks] == ["::1", "127.0.0.1"]
        port = socks[0].getsockname()[1]
        assert port and socks[1].getsockname()[1] == port
        assert [server.url_of(x) for x in socks] == [f"http://[::1]:{port}/", f"http://127.0.0.1:{port}/"]
        for address in ("::1", "127.0.0.1"):
            with socket.create_connection((address, port), timeout=5):
                pass
    finally:
        for x in socks:
            x.close()
    for taken, free in ((V4, V6), (V6, V4)):
        with socket.socket(taken[0]) as busy:
            busy.bind(taken[4])
            busy.listen(1)
            port = busy.getsockname()[1]
            with pytest.raises(InputError) as e:
                server.bind("localhost", port)
            assert e.value.key == "port" and e.value.message.startswith(
                f"cannot listen on localhost:{port} at {taken[4][0]} (") and "in use" in e.value.message, e.value
            with pytest.raises(OSError):
                socket.create_connection((free[4][0], port), timeout=5).close()


@needs_ipv6_loopback
def test_serve_localhost_answers_at_both_loopback_addresses(tmp_path):
    """A real `ranker serve --host localhost` (the name resolving to ::1 and 127.0.0.1, as Debian lists it):
    a page is answered at http://[::1]:PORT/ and at http://127.0.0.1:PORT/ (the second was refused a
    connection), the start line names both, and a Host this machine is not still gets no page at either."""
    import subprocess
    import sys
    import time
    import urllib.error
    import urllib.request
    Store(tmp_path / "r.sqlite3").close()
    pre = ("import socket\nimport ranker.web.server as s\nreal = s.lookup_to_listen\n"
           "s.lookup_to_listen = lambda name, port, type: [(socket.AF_INET6, type, 6, '', ('::1', port, 0, 0)), "
           "(socket.AF_INET, type, 6, '', ('127.0.0.1', port))] if name == 'localhost' else real(name, port, type)")
    log = tmp_path / "serve.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen([sys.executable, "-c", f"{pre}\nfrom ranker.cli import main; main()", "serve",
                                 "--host", "localhost", "--port", "0", "--db", str(tmp_path / "r.sqlite3")],
                                stdout=fh, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (m := re.search(r"serving http://\[::1\]:(\d+)/", log.read_text())):
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        port = m.group(1)
        for base in (f"http://[::1]:{port}", f"http://127.0.0.1:{port}", f"http://localhost:{port}"):
            with urllib.request.urlopen(base + "/", timeout=10) as r:
                assert r.status == 200 and b"<html" in r.read().lower()
            req = urllib.request.Request(base + "/", headers={"Host": f"evil.example:{port}"})
            with pytest.raises(urllib.error.HTTPError) as e:
                urllib.request.urlopen(req, timeout=10)
            assert e.value.code == 400
        assert f"serving http://[::1]:{port}/ and http://127.0.0.1:{port}/; Ctrl-C stops" in log.read_text()
    finally:
        proc.terminate()
        proc.wait(10)


def test_serve_port_in_use_is_one_line(tmp_path):
    Store(tmp_path / "r.sqlite3").close()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        r = ranker("serve", "--port", port, "--db", tmp_path / "r.sqlite3")
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 1 and len(lines) == 1, r.stderr
    assert lines[0].startswith(f"error: --port: cannot listen on 127.0.0.1:{port}")


def test_serve_on_a_non_loopback_host_warns_in_one_line(tmp_path):
    # bind and serve are replaced so the test opens nothing beyond loopback
    pre = ("import ranker.web.server as s\norig = s.bind\ns.bind = lambda host, port: orig('127.0.0.1', 0)\n"
           "s.serve = lambda *a, **k: None")
    Store(tmp_path / "r.sqlite3").close()
    r = ranker("serve", "--host", "0.0.0.0", "--db", tmp_path / "r.sqlite3", pre=pre)
    assert r.returncode == 0, r.stderr
    lines = r.stderr.strip().splitlines()
    assert lines[0].startswith("warning: --host 0.0.0.0 serves your store and labels to every machine")
    # every page carries the token a POST needs: whoever reads them can change the labels, which the line says
    assert ", and any of them can change your labels (--read-only: they only read them); it answers" in lines[0]
    assert lines[1].startswith("serving http://127.0.0.1:")
    r = ranker("serve", "--host", "0.0.0.0", "--read-only", "--db", tmp_path / "r.sqlite3", pre=pre)
    assert r.returncode == 0 and ", and none of them can change your labels (read-only); it answers" in r.stderr
    r = ranker("serve", "--db", tmp_path / "r.sqlite3", pre=pre)
    assert "warning" not in r.stderr


def test_serve_refuses_a_database_that_is_not_there_but_makes_the_homes_own(tmp_path):
    """serve writes labels: a mistyped --db made a new empty database there (and its folder), the archive empty
    and the thumbs given stored in it, where the commands that only read say the path holds nothing. It is one
    line naming the option and the path; the home's own database is still made on a first serve."""
    # the bind is replaced: nothing listens
    pre = ("import ranker.web.server as s\norig = s.bind\ns.bind = lambda host, port: orig('127.0.0.1', 0)\n"
           "s.url_of = lambda sock: 'http://x/'\ns.serve = lambda *a, **k: None")
    home = tmp_path / "home"
    typo = tmp_path / "typo" / "rnaker.sqlite3"
    r = ranker("serve", "--db", typo, pre=pre, env={"RANKER_HOME": home})
    assert r.returncode == 1 and r.stderr.splitlines() == [
        f"error: --db {typo}: no database there (a typo?); `ranker run` makes one"], r.stderr
    assert not typo.parent.exists()
    r = ranker("serve", pre=pre, env={"RANKER_HOME": home, "RANKER_DB": typo})
    assert r.returncode == 1 and r.stderr.startswith(f"error: RANKER_DB {typo}: no database there"), r.stderr
    assert not typo.parent.exists()
    # the home's database: made, and served
    r = ranker("serve", pre=pre, env={"RANKER_HOME": home})
    assert r.returncode == 0 and r.stderr.startswith("serving http://x/"), r.stderr
    assert (home / "ranker.sqlite3").is_file()
    # and a database that is there is served, named however
    r = ranker("serve", "--db", home / "ranker.sqlite3", pre=pre, env={"RANKER_HOME": tmp_path / "other"})
    assert r.returncode == 0 and r.stderr.startswith("serving http://x/"), r.stderr


def test_a_missing_web_extra_is_one_line(tmp_path):
    r = ranker("serve", "--db", tmp_path / "r.sqlite3", pre="import sys; sys.modules['fastapi'] = None")
    assert r.returncode == 1 and r.stderr.strip().splitlines() == [
        "error: the package 'fastapi' is not installed (needed for ranker serve); install it with: "
        "pip install 'ranker[web]'"], r.stderr
    r = ranker("site", "--out", tmp_path / "site", "--db", tmp_path / "r.sqlite3",
             pre="import sys; sys.modules['jinja2'] = None")
    assert r.returncode == 1 and "pip install 'ranker[web]'" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_help_has_examples():
    for cmd, example in ((["serve"], "ranker serve --port 8000"), (["site"], "ranker site --out site/"),
                         (["labels", "export"], "ranker labels export"),
                         (["labels", "import"], "ranker labels import")):
        r = ranker(*cmd, "--help")
        assert r.returncode == 0 and example in r.stdout, (cmd, r.stdout)


def test_a_stored_label_changes_the_next_calibrations_training_set(tmp_path):
    # vectors put in the store beforehand: the fit embeds nothing and loads no model
    hist, db = tmp_path / "history", tmp_path / "r.sqlite3"
    papers = []
    for day in ("2025-04-30", "2025-05-15", "2025-07-02"):
        shutil.copytree(DAYS / day, hist / day)
        papers += read_papers(DAYS / day / "listing.jsonl")
    with Store(db) as s:
        store_vectors(s, papers, embedder="test-vectors", dim=16)
    args = ("calibrate", "--history", hist, "--out", tmp_path / "cal.json", "--embedder", "test-vectors",
            "--no-eval", "--db", db)
    r = ranker(*args, timeout=300)
    assert r.returncode == 0 and "labels" not in r.stderr, r.stderr
    assert json.loads((tmp_path / "cal.json").read_text())["trained_on"]["labels"] == 0
    with Store(db) as s:
        s.set_label(papers[0].id, 1, "2025-04-30")
        s.set_label(papers[1].id, -1, "2025-04-30")
    r = ranker(*args, timeout=300)
    assert r.returncode == 0, r.stderr
    assert ("labels: 2 of yours used (1 up, 1 down; 2 on history papers, overriding GPT's pick; 0 on other "
            "papers)") in r.stderr
    assert json.loads((tmp_path / "cal.json").read_text())["trained_on"]["labels"] == 2


def test_serve_on_an_address_this_machine_does_not_have_blames_the_host(tmp_path):
    """`--host 8.8.8.8` was "--port: cannot listen on ...", after the warning about serving beyond loopback."""
    Store(tmp_path / "r.sqlite3").close()
    r = ranker("serve", "--host", "198.51.100.7", "--port", "0", "--db", tmp_path / "r.sqlite3")   # (TEST-NET-2)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 1 and len(lines) == 1, r.stderr
    assert lines[0].startswith("error: --host: cannot listen on 198.51.100.7:0 (")


def test_serve_refuses_an_allowed_host_that_is_no_host_name(tmp_path):
    """`--allow-host http://proxy.lab.example:8000/` (the address pasted from the browser) was taken as the Host
    name 'http': the server started, and refused the proxy's name it was given as an unknown Host. A URL, a path
    or a wildcard is one line naming the option, before anything listens; a name with its port is allowed."""
    pre = ("import ranker.web.server as s\norig = s.bind\ns.bind = lambda host, port: orig('127.0.0.1', 0)\n"
           "s.serve = lambda *a, **k: None")
    Store(tmp_path / "r.sqlite3").close()
    for bad in ("http://proxy.lab.example:8000/", "*.lab.example", "proxy.lab.example/ranker"):
        r = ranker("serve", "--host", "0.0.0.0", "--allow-host", "gpu3", "--allow-host", bad,
                   "--db", tmp_path / "r.sqlite3", pre=pre)
        assert r.returncode == 1 and r.stderr.strip().splitlines() == [
            f"error: --allow-host: {bad!r} is not a host name or address: give it alone, as papers.lab.example, "
            "10.0.0.7 or [fd00::7] (a port after it is allowed), without http://, a path or a wildcard"], r.stderr
    r = ranker("serve", "--host", "0.0.0.0", "--allow-host", "Proxy.Lab.Example:8443", "--db", tmp_path / "r.sqlite3",
               pre=pre)
    assert r.returncode == 0 and "proxy.lab.example" in r.stderr.splitlines()[0], r.stderr


def _switched_store(tmp_path) -> Store:
    """The small store after a switch of embedder: months of vectors under minilm (the papers 0..4 and older
    ones), then the token cut set to 64: minilm@64 holds the papers 0..4 again and a newer paper, 2505.00009,
    the nearest to 2505.00000 under it."""
    s = _small_store(tmp_path)
    rng = np.random.default_rng(3)
    old = [f"2504.{i:05d}" for i in range(20)]
    s.add_papers([Paper(id=i, title=f"Old {i}", abstract="a", date="2025-04-01") for i in old]
                 + [Paper(id="2505.00009", title="Newer", abstract="a", date="2025-05-16")])
    s.put_rankings("2025-05-16", [Ranked(s.get_paper("2505.00009"), 0.5, True)])
    s.put_day_digest(DayDigest("2025-05-16", "m", "h", 8, 7))
    v = rng.normal(size=(25, 384)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    s.put_embeddings(((pid, "h", v[n]) for n, pid in enumerate([f"2505.0000{i}" for i in range(5)] + old)), "minilm")
    w = rng.normal(size=(6, 384)).astype(np.float32)
    w[5] = w[0] + 0.05 * w[5]
    w /= np.linalg.norm(w, axis=1, keepdims=True)
    s.put_embeddings(((pid, "h", w[n]) for n, pid in enumerate([f"2505.0000{i}" for i in range(5)] + ["2505.00009"])),
                     "minilm@64")
    return s


def test_similar_papers_come_from_the_configured_embedder_first(tmp_path):
    """After a switch of embedder the paper pages took their similar papers from the alphabetically first
    embedder holding the paper's vector (the old one, which never holds a newer paper): the configured one is
    asked first now, in the served pages (create_app: the settings' embedder) and the static site, and a paper
    without a vector of it falls back to another's."""
    from starlette.testclient import TestClient

    from ranker.settings import Settings
    from ranker.web.app import create_app
    from ranker.web.search import corpus_similar_many, similar_embedders
    with _switched_store(tmp_path) as s:
        assert list(similar_embedders(s, "minilm@64")) == ["minilm@64", "minilm"]
        assert list(similar_embedders(s)) == ["minilm", "minilm@64"]  # none configured: most vectors first
        counted = []
        stats = s.paper_vector_stats
        s.paper_vector_stats = lambda *a: counted.append(a) or stats(*a)
        assert corpus_similar(s, "2505.00000", 3, embedder="minilm@64")[0][0] == "2505.00009"
        # a paper the configured embedder holds: no other embedder is counted (its own index's sync counts its own)
        assert counted and {a[0] for a in counted} == {"minilm@64"}, counted
        del s.paper_vector_stats
        assert corpus_similar(s, "2505.00000", 3, embedder="minilm@64")[0][0] == "2505.00009"
        many = corpus_similar_many(s, ["2505.00000", "2504.00003"], 3, embedder="minilm@64")
        assert many["2505.00000"][0][0] == "2505.00009"
        assert all(i.startswith(("2504.", "2505.0000")) and i != "2505.00009" for i, _ in many["2504.00003"])
        assert len(many["2504.00003"]) == 3                           # no minilm@64 vector: minilm's panel
    st = Settings.model_validate({"db": str(tmp_path / "r.sqlite3"), "prefilter": {"embedder": "minilm", "max_tokens": 64}})
    html = TestClient(create_app(st)).get("/paper/2505.00000").text
    assert "Similar papers" in html and 'href="/paper/2505.00009"' in html


def test_a_served_paper_page_says_whose_vectors_its_similar_papers_are_as_it_is_answered(tmp_path):
    """serve said once at start that the configured embedder held few vectors and the others' panels came from
    another; vectors of it stored while serving (a run, `ranker index`) made that line wrong, and no page said
    whose its panel was. Each page says it as it is answered: a paper without a vector of the configured
    embedder names the embedder its panel comes from; once its vector is stored, the next answer says nothing."""
    from starlette.testclient import TestClient

    from ranker.settings import Settings
    from ranker.web.app import create_app
    _switched_store(tmp_path).close()
    st = Settings.model_validate({"db": str(tmp_path / "r.sqlite3"),
                                  "prefilter": {"embedder": "minilm", "max_tokens": 64}})
    client = TestClient(create_app(st))
    note = ('<p class="muted similar-note">These come from the vectors of the embedder minilm: this paper has none '
            'of minilm@64, the prefilter&#39;s embedder.</p>')
    html = client.get("/paper/2504.00003").text
    assert '<ol class="similar">' in html and note in html and 'href="/paper/2505.00009"' not in html, html
    assert "similar-note" not in client.get("/paper/2505.00000").text       # the configured embedder's panel
    with Store(tmp_path / "r.sqlite3") as s:                                  # stored while the server runs
        s.put_embeddings([("2504.00003", "h", s.get_vectors(["2505.00009"], "minilm@64")["2505.00009"])],
                         "minilm@64")
    html = client.get("/paper/2504.00003").text
    assert '<ol class="similar">' in html and "similar-note" not in html
    assert 'href="/paper/2505.00009"' in html            # minilm@64's panel (minilm holds no 2505.00009)
    # the static site's pages say it too (its panels are chosen alike)
    import sqlite3

    from ranker.web.site import build_site
    with sqlite3.connect(tmp_path / "r.sqlite3") as conn:
        conn.execute("DELETE FROM embeddings WHERE paper_id='2505.00001' AND embedder='minilm@64'")
    conn.close()
    with Store(tmp_path / "r.sqlite3") as s:
        build_site(s, tmp_path / "site", embedder="minilm@64")
    html = (tmp_path / "site" / "papers" / "2505.00001.html").read_text()
    assert '<ol class="similar">' in html and note in html, html
    assert "similar-note" not in (tmp_path / "site" / "papers" / "2505.00000.html").read_text()
    # the start line says its counts are the start's, and that the pages say whose a panel is
    pre = ("import ranker.web.server as s\norig = s.bind\ns.bind = lambda host, port: orig('127.0.0.1', 0)\n"
           "s.url_of = lambda sock: 'http://x/'\ns.serve = lambda *a, **k: None")
    r = ranker("serve", "--db", tmp_path / "r.sqlite3", "--max-tokens", "64", pre=pre)
    assert r.returncode == 0 and r.stderr.startswith(
        "note: at start, similar papers come first from the 6 paper vectors of the embedder minilm@64 (chosen by "
        "--max-tokens) in "), r.stderr
    assert r.stderr.splitlines()[0].endswith("a paper without one of minilm@64 gets its similar papers from another "
                                             "embedder, and its page says so"), r.stderr


def test_site_cli_takes_similar_papers_from_the_configured_embedder_and_says_when_it_holds_few(tmp_path):
    """`ranker site` under settings switched to another token cut: the paper pages' similar papers come from its
    vectors (the newer paper is near), and the build says that it holds few, and which setting finds the many."""
    _switched_store(tmp_path).close()
    db, out = tmp_path / "r.sqlite3", tmp_path / "site"
    (tmp_path / "ranker.toml").write_text("[prefilter]\nmax_tokens = 64\n")
    r = ranker("site", "--out", out, "--db", db, "--config", tmp_path / "ranker.toml")
    assert r.returncode == 0, r.stderr
    assert 'href="../papers/2505.00009.html"' in (out / "papers" / "2505.00000.html").read_text()
    assert "note: similar papers come first from the 6 paper vectors of the embedder minilm@64 (chosen by" in r.stderr
    r = ranker("site", "--out", out, "--db", db, "--max-tokens", "64")
    assert r.returncode == 0, r.stderr
    assert (f"note: similar papers come first from the 6 paper vectors of the embedder minilm@64 (chosen by "
            f"--max-tokens) in {db}; it holds 25 of the embedder minilm: --max-tokens 128 uses those") in r.stderr
    r = ranker("site", "--out", out, "--db", db)
    assert r.returncode == 0 and "note: similar" not in r.stderr, r.stderr


def test_a_refused_host_answer_names_no_name_served_and_the_log_stops_after_its_cap(tmp_path, caplog):
    """A DNS-rebinding page reads the refused-Host answer as its own: it listed every name served (for
    --host 0.0.0.0 the machine's names and addresses, and the proxies allowed). The answer says how to allow a
    name; the names served are in the log only, each refused name logged once, and a flood of made-up names
    stops the log at its cap with one line saying so."""
    import logging

    from starlette.testclient import TestClient

    from ranker.settings import Settings
    from ranker.web import app as web_app
    from ranker.web.server import allowed_hosts_for
    Store(tmp_path / "r.sqlite3").close()
    allowed = allowed_hosts_for("0.0.0.0", ("proxy.corp.internal",))
    client = TestClient(web_app.create_app(Settings.model_validate({"db": str(tmp_path / "r.sqlite3")}),
                                           allowed_hosts=allowed), base_url="http://evil.example")
    with caplog.at_level(logging.WARNING, logger="ranker.web"):
        r = client.get("/")
        assert r.status_code == 400 and "'evil.example'" in r.text and web_app.HOST_HINT in r.text, r.text
        said = set(re.findall(r"[\w.:\[\]-]+", r.text))             # the answer's words (a name is one)
        assert allowed and not said & allowed, r.text
        assert "proxy.corp.internal" in caplog.text
        for n in range(web_app.HOSTS_LOGGED + 5):
            client.get("/", headers={"Host": f"made-up-{n}.example"})
    refused = [rec.getMessage() for rec in caplog.records if rec.name == "ranker.web"]
    assert len(refused) == web_app.HOSTS_LOGGED + 1 and "further ones are not logged" in refused[-1], refused[-3:]


def test_a_served_day_and_paper_page_read_one_state_of_the_store(tmp_path, monkeypatch):
    """serve's day page read the day's ranking and its digest record as separate statements (site reads inside
    one snapshot): a run finishing between them showed one run's ranking with another's digest and scores."""
    from starlette.testclient import TestClient

    from ranker.settings import Settings
    from ranker.web.app import create_app
    from webstore import DAY, fill_store
    fill_store(tmp_path / "r.sqlite3", tmp_path / "out", hostile=False)
    seen, real = [], Store.get_day_digest
    monkeypatch.setattr(Store, "get_day_digest", lambda self, day: seen.append(self.conn.in_transaction)
                        or real(self, day))
    client = TestClient(create_app(Settings.model_validate({"db": str(tmp_path / "r.sqlite3")}), similar=None))
    assert client.get(f"/day/{DAY}").status_code == 200
    with Store(tmp_path / "r.sqlite3") as s:
        pid = s.get_rankings(DAY)[0].paper_id
    assert client.get(f"/paper/{pid}").status_code == 200
    assert seen and all(seen), seen


def test_a_served_paper_page_searches_its_similar_papers_outside_its_snapshot(tmp_path):
    """The paper page's snapshot took in its similar papers' search: the corpus index syncs to the store it is
    given, and a run that had stored and synced vectors since the snapshot began made the index look ahead of
    that older state ('the store's rows were renumbered or replaced'): it was rebuilt whole within the request.
    The search runs before the snapshot (as site's build does); the page still shows what it found."""
    from starlette.testclient import TestClient

    from ranker.settings import Settings
    from ranker.web.app import create_app
    from webstore import DAY, fill_store
    fill_store(tmp_path / "r.sqlite3", tmp_path / "out", hostile=False)
    with Store(tmp_path / "r.sqlite3") as s:
        pid, other = [r.paper_id for r in s.get_rankings(DAY)[:2]]
        title = s.get_paper(other).title
    seen = []

    def similar(store, paper_id, k):
        seen.append(store.conn.in_transaction)
        return [(other, 0.5)]

    client = TestClient(create_app(Settings.model_validate({"db": str(tmp_path / "r.sqlite3")}), similar=similar))
    got = client.get(f"/paper/{pid}")
    assert got.status_code == 200 and seen == [False], seen
    assert other in got.text and title.split()[0] in got.text


def test_a_paper_panel_from_another_embedder_lists_the_embedders_once(tmp_path):
    """A panel of another embedder than the configured one listed the embedders holding paper vectors twice per
    request (a SELECT DISTINCT over every vector: 130 ms at 600k rows), the second only to ask whether the
    configured one is among them."""
    from ranker.web.search import corpus_similar_many
    with _switched_store(tmp_path) as s:
        listed, real = [], s.paper_embedders
        s.paper_embedders = lambda *a: listed.append(a) or real(*a)
        many = corpus_similar_many(s, ["2504.00003"], 3, embedder="minilm@64")
        assert len(many["2504.00003"]) == 3 and many["2504.00003"].asked == "minilm@64"
        assert len(listed) == 1, listed


def test_serve_warns_when_a_loopback_name_binds_beyond_loopback(tmp_path):
    """serve judged loopback by the name (--host localhost: no warning) while it listens at every address the name
    resolves to: a resolver giving localhost a LAN address served the store to the network without a word."""
    import subprocess
    import sys
    Store(tmp_path / "r.sqlite3").close()
    pre = ("import socket\nimport ranker.web.server as s\nreal = s.lookup_to_listen\n"
           "s.lookup_to_listen = lambda name, port, type: [(socket.AF_INET, type, 6, '', ('0.0.0.0', port))] "
           "if name == 'localhost' else real(name, port, type)\n"
           "def stop(app, socks):\n    raise KeyboardInterrupt\ns.serve = stop")
    res = subprocess.run([sys.executable, "-c", f"{pre}\nfrom ranker.cli import main; main()", "serve",
                          "--host", "localhost", "--port", "0", "--db", str(tmp_path / "r.sqlite3")],
                         capture_output=True, text=True, timeout=120)
    assert "warning: --host localhost serves your store" in res.stderr + res.stdout, res.stderr + res.stdout


def test_an_unexpected_failure_of_a_page_is_a_plain_500_with_the_security_headers(tmp_path, monkeypatch, caplog):
    """A page that fails in a way no handler knows (a bug) was answered by Starlette's ServerErrorMiddleware,
    outside the guard: a 500 with none of the headers every other answer carries (CSP, nosniff, framing). The
    guard answers it now, in plain words, and the traceback goes to the log."""
    import logging

    from starlette.testclient import TestClient

    from ranker.settings import Settings
    from ranker.web.app import create_app
    from ranker.web.security import HEADERS
    Store(tmp_path / "r.sqlite3").close()

    def broken(store):
        raise RuntimeError("a bug in the archive view")

    monkeypatch.setattr(views, "archive", broken)
    client = TestClient(create_app(Settings.model_validate({"db": str(tmp_path / "r.sqlite3")}), similar=None),
                        raise_server_exceptions=False)
    with caplog.at_level(logging.ERROR, logger="ranker.web"):
        r = client.get("/")
    assert r.status_code == 500 and r.headers["content-type"].startswith("text/plain"), r.text
    assert "a bug in the archive view" not in r.text
    assert {k: r.headers.get(k) for k in HEADERS} == HEADERS and r.headers["cache-control"] == "no-store"
    assert "a bug in the archive view" in caplog.text and "GET / failed" in caplog.text


def test_every_route_that_answers_get_answers_head(tmp_path):
    """HEAD wherever GET: FastAPI answers a GET route's HEAD with 405, and /labels.json's did while the pages took
    it; every route of the app, those added later too, takes both."""
    from fastapi.routing import APIRoute

    from ranker.settings import Settings
    from ranker.web.app import create_app
    Store(tmp_path / "r.sqlite3").close()
    app = create_app(Settings.model_validate({"db": str(tmp_path / "r.sqlite3")}), similar=None)
    gets = [r for r in app.routes if isinstance(r, APIRoute) and "GET" in r.methods]
    assert {r.path for r in gets} >= {"/", "/day/{day}", "/labels", "/labels.json"}
    assert [r.path for r in gets if "HEAD" not in r.methods] == []


def test_the_search_note_names_the_embedder_in_words_not_by_its_setting(tmp_path):
    """An embedder that cannot be loaded (a preset not prepared) names its setting, for the CLI to say as
    --embedder or the ranker.toml line; the page showed the key itself: "prefilter.embedder: model preset ...",
    though serve was given --embedder. A page says "the embedder"."""
    from ranker.web.search import said_with_advice
    with pytest.raises(ModelError) as got:
        Embedder("mpnet", models_dir=tmp_path).model
    assert got.value.key == "prefilter.embedder"
    assert said_with_advice(got.value) == ("the embedder: model preset 'mpnet' is not prepared; run: ranker models "
                                           "prepare mpnet")
    assert said_with_advice(ValueError("odd")) == "odd"
