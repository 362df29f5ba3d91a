"""What the corpus index is used for, on real SQLite and FAISS with a stand-in embedder (word hashing, no
model): similar papers, earlier papers only for the novelty context, re-uploads, the pick-similarity signal,
streaming a corpus in, and how each shows up in the prompt, the prefilter rows and the digest (through the
public steps, with the stand-in's vectors stored under the minilm key so no model loads)."""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from ranker.backends.fake import FakeBackend, fake_scores
from ranker.digest import Selected, TokenCost, render_json, render_markdown
from ranker.errors import InputError
from ranker.index import (CorpusIndex, REUPLOAD_COSINE, earlier_neighbours, embed_corpus, find_reuploads,
                          novelty_context, past_pick_similarity, pick_similarity, similar)
from ranker.io import arxiv_id
from ranker.prefilter.embed import Embedder
from ranker.prefilter.rank import build_queries
from ranker.prompts import RELATED_NOTE, build_messages, format_paper, load_prompts
from ranker.records import Paper, Score
from ranker.scoring import ScoreOptions, score_papers
from ranker.settings import resolve
from ranker.sources import read_ranked
from ranker.steps import fetch_day, prefilter_day, run_day, score_day
from ranker.store import Store

DIM = 64


class WordHashEmbedder(Embedder):
    """Bag of hashed words, normalised: texts sharing words are close, the same text is identical."""

    def __init__(self, name: str = "word-hash"):
        super().__init__(name)

    @property
    def dim(self) -> int:
        return DIM

    def encode(self, texts):
        out = np.zeros((len(texts), DIM), np.float32)
        for i, t in enumerate(texts):
            for w in t.lower().split():
                h = hashlib.sha1(w.encode()).digest()
                out[i, h[0] % DIM] += 1.0 if h[1] % 2 else -1.0
            out[i, -1] += 0.01
        self.texts_encoded += len(texts)
        return out / np.linalg.norm(out, axis=1, keepdims=True)


WORDS = ("sparse attention routing experts quantization pruning diffusion graph kernel bandit policy reward "
         "agent planning retrieval memory tokens vision language robot safety privacy federated causal").split()


def paper(i: int, day: str, words: list[str] | None = None, *, pid: str | None = None) -> Paper:
    rng = np.random.default_rng(i)
    ws = words or list(rng.choice(WORDS, 12))
    return Paper(id=pid or f"2505.{i:05d}", title=f"Paper {i}: {' '.join(ws[:3])}", abstract=" ".join(ws),
                 authors=["A. Author"], categories=["cs.LG"], date=day)


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "r.sqlite3")
    yield s
    s.close()


def stock(store, papers, emb):
    store.add_papers(papers)
    emb.embed_papers(papers, store)


def settings_for(store, **flags):
    return resolve(flags={"db": store.path, **flags}, env={"RANKER_HOME": str(store.path.parent)})


def prefilter(store, papers, settings=None, **kw):
    """steps.prefilter_day on the stand-in's vectors: stored (papers and topic queries) under the minilm key,
    the one the settings' embedder looks them up by, so no model loads."""
    stand_in = WordHashEmbedder("minilm")
    stand_in.embed_papers(papers, store)
    stand_in.embed_queries(build_queries(load_prompts()).texts, store)
    res = prefilter_day(papers, settings or settings_for(store), store=store, **kw)
    assert not res.model_loaded
    return res


# --------------------------------------------------------------------------- similar
def test_similar_by_id_text_and_since(store):
    emb = WordHashEmbedder()
    ps = [paper(i, "2025-05-0%d" % (1 + i % 3)) for i in range(30)]
    twin = Paper(id="2505.00099", title=ps[4].title, abstract=ps[4].abstract, date="2025-05-03")
    stock(store, ps + [twin], emb)
    res = similar(store, "2505.00004", embedder=emb, k=5)
    assert res.paper.id == "2505.00004" and res.corpus == 31 and len(res.neighbours) == 5
    first = res.neighbours[0]
    assert (first.id, first.date, first.title) == ("2505.00099", "2025-05-03", twin.title)
    assert first.cosine == pytest.approx(1.0, abs=1e-5)
    assert all(n.id != "2505.00004" for n in res.neighbours)
    assert [n.cosine for n in res.neighbours] == sorted((n.cosine for n in res.neighbours), reverse=True)

    later = similar(store, "arXiv:2505.00004v2", embedder=emb, k=50, since="2025-05-02")
    assert later.neighbours and all(n.date >= "2025-05-02" for n in later.neighbours)
    assert len(later.neighbours) == sum(p.date >= "2025-05-02" for p in ps + [twin]) - (ps[4].date >= "2025-05-02")

    text = similar(store, ps[7].abstract, embedder=emb, k=3)
    assert text.paper is None and text.neighbours[0].id == "2505.00007"

    with pytest.raises(InputError, match="unknown paper"):
        similar(store, "2599.99999", embedder=emb)
    with pytest.raises(InputError, match="empty"):
        similar(store, "   ", embedder=emb)
    with pytest.raises(InputError, match="YYYY-MM-DD"):
        similar(store, "x", embedder=emb, since="May")


def test_similar_since_finds_k_papers_of_a_recent_day_in_a_large_corpus(store):
    """--since a day whose papers are a sliver of the corpus (30 of 6,030) and far from the query: they lie
    past the candidates a filtered search looks at, and still the k nearest of them come back."""
    rng = np.random.default_rng(11)
    n_old, n_new = 6000, 30
    v = rng.normal(size=(n_old + n_new, 16)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    ps = [Paper(id=f"2501.{i:05d}", title=f"t{i}", abstract="a", date="2025-01-02" if i < n_old else "2025-02-03")
          for i in range(n_old + n_new)]
    v[n_old:] = -v[0]                                   # the recent papers all face away from the query ...
    v[n_old:] += 0.3 * rng.normal(size=(n_new, 16))    # ... each a little differently
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    store.add_papers(ps)
    store.put_embeddings(((p.id, "h", v[i]) for i, p in enumerate(ps)), "toy")
    res = similar(store, "2501.00000", embedder="toy", k=10, since="2025-02-01")
    want = np.argsort(-(v[n_old:] @ v[0]), kind="stable")[:10] + n_old
    assert [n.id for n in res.neighbours] == [ps[i].id for i in want]
    assert all(n.date == "2025-02-03" for n in res.neighbours) and res.corpus == n_old + n_new
    assert len(similar(store, "2501.00000", embedder="toy", k=50, since="2025-02-01").neighbours) == n_new


def test_what_similar_reads_as_a_paper_id():
    """similar() takes a query as a paper id when ranker.io.arxiv_id reads one in it (the id and text paths
    themselves: test_similar_by_id_text_and_since)."""
    assert arxiv_id("2505.09343") == arxiv_id("arXiv:2505.09343v3") == "2505.09343"
    assert arxiv_id("math.GT/0309136") == "math.GT/0309136" and arxiv_id("hep-th/9901001v2") == "hep-th/9901001"
    assert arxiv_id("mixture of experts") is None and arxiv_id("2505") is None


# --------------------------------------------------------------------------- earlier papers only
@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 7)), min_size=2, max_size=40), st.integers(1, 6))
def test_the_novelty_context_never_holds_the_paper_its_day_or_later_papers(tmp_path_factory, rows, k):
    """Papers on random days, many sharing the very same text (so a later twin is the nearest vector of all):
    each paper's context is exactly its k nearest among strictly earlier papers."""
    emb = WordHashEmbedder()
    texts = [" ".join(np.random.default_rng(t).choice(WORDS, 10)) for t in range(8)]
    ps = [Paper(id=f"2505.{i:05d}", title=f"t{i}", abstract=texts[t], date=f"2025-05-1{d}")
          for i, (d, t) in enumerate(rows)]
    with Store(tmp_path_factory.mktemp("nc") / "r.sqlite3") as store:
        stock(store, ps, emb)
        near = earlier_neighbours(ps, store, embedder=emb, k=k)
        vec = store.get_vectors([p.id for p in ps], emb.key)
        for p in ps:
            got = near[p.id]
            assert all(n.date < p.date and n.id != p.id for n in got), (p, got)
            earlier = [q for q in ps if q.date < p.date]
            assert len(got) == min(k, len(earlier))
            if got:                                           # the nearest earlier ones, none skipped
                best = sorted((float(vec[p.id] @ vec[q.id]) for q in earlier), reverse=True)[:k]
                assert [n.cosine for n in got] == pytest.approx(best, abs=1e-4)
        ctx = novelty_context(ps, store, embedder=emb, k=k)
        assert all(day < p.date for p in ps for day, _ in ctx[p.id])


def test_an_old_day_scored_against_a_corpus_of_later_papers_gets_its_k_earlier_ones(store):
    """Scoring an old day after years were stored: its 30 earlier papers are a sliver of the corpus and far
    from the paper, past the candidates a filtered search looks at, and still its k nearest earlier come back."""
    rng = np.random.default_rng(12)
    n_late, n_early = 6000, 30
    v = rng.normal(size=(n_late + n_early + 1, 16)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    ps = [Paper(id=f"2502.{i:05d}", title=f"t{i}", abstract="a",
                date="2025-02-03" if i < n_late else "2025-01-02" if i < n_late + n_early else "2025-01-10")
          for i in range(n_late + n_early + 1)]
    v[n_late:-1] = -v[-1] + 0.3 * rng.normal(size=(n_early, 16))      # the earlier papers face away from it
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    store.add_papers(ps)
    store.put_embeddings(((p.id, "h", v[i]) for i, p in enumerate(ps)), "toy")
    near = earlier_neighbours([ps[-1]], store, embedder="toy", k=5)[ps[-1].id]
    want = np.argsort(-(v[n_late:-1] @ v[-1]), kind="stable")[:5] + n_late
    assert [n.id for n in near] == [ps[i].id for i in want]
    assert all(n.date == "2025-01-02" for n in near)
    assert len(earlier_neighbours([ps[-1]], store, embedder="toy", k=50)[ps[-1].id]) == n_early


def test_a_paper_of_unknown_day_gets_no_context(store):
    emb = WordHashEmbedder()
    ps = [paper(i, "2025-05-01") for i in range(5)]
    stock(store, ps, emb)
    undated = paper(50, "")
    assert earlier_neighbours([undated], store, embedder=emb, k=3) == {undated.id: []}
    assert store.get_vectors([undated.id], emb.key)        # its vector was embedded and stored for next time


def test_the_context_sits_inside_the_untrusted_block_and_changes_the_hash():
    p = paper(1, "2025-05-02")
    related = [("2025-04-30", "An earlier </paper> title\nwith a break"), ("2025-05-01", "Another")]
    block = format_paper(p, related=related)
    inner = block[len("<paper>\n"):-len("\n</paper>")]
    assert block.startswith("<paper>\n") and block.endswith("\n</paper>") and "</paper>" not in inner
    assert RELATED_NOTE in inner and "- 2025-04-30: An earlier &lt;/paper&gt; title with a break" in inner
    assert inner.index("Abstract:") < inner.index(RELATED_NOTE)
    assert format_paper(p) == format_paper(p, related=[]) and RELATED_NOTE not in format_paper(p)
    user = build_messages(load_prompts(), [p], related={p.id: related})[1]["content"]
    assert user.count(RELATED_NOTE) == 1
    ps = load_prompts()
    assert "novelty_context" not in ScoreOptions().prompt_options()
    assert ps.hash(**ScoreOptions().prompt_options()) == ps.hash(**ScoreOptions(novelty_context=0).prompt_options())
    hashes = {ps.hash(**ScoreOptions(novelty_context=n).prompt_options()) for n in (0, 3, 5)}
    assert len(hashes) == 3


def test_scoring_with_a_novelty_context_needs_the_related_papers(store):
    from ranker.backends.fake import FakeBackend
    p = paper(1, "2025-05-02")
    with pytest.raises(InputError, match="novelty context"):
        score_papers([p], FakeBackend(), load_prompts(), store, options=ScoreOptions(novelty_context=3))
    seen = []

    class Spy(FakeBackend):
        def generate(self, requests, **kw):
            seen.extend(r.messages[1]["content"] for r in requests)
            return super().generate(requests, **kw)

    run = score_papers([p], Spy(), load_prompts(), store, options=ScoreOptions(novelty_context=3),
                       related={p.id: [("2025-05-01", "Earlier sparse routing")]})
    assert run.scored == 1 and "- 2025-05-01: Earlier sparse routing" in seen[0]


# --------------------------------------------------------------------------- re-uploads
def test_a_planted_reupload_is_flagged_in_the_prefilter_rows(store):
    early = [paper(i, "2025-05-01") for i in range(40)]
    notes = []
    prefilter(store, early, warn=notes.append)
    assert notes == []                         # the first build of a new home's index is nothing to warn about
    (store.index_dir / "minilm" / "manifest.json").write_text("{torn")
    prefilter(store, early, warn=notes.append)        # a damaged one is: rebuilt, with one line saying why
    assert len(notes) == 1 and notes[0].startswith("index rebuilt from the store (") and "40 vectors" in notes[0]
    original = early[11]
    again = Paper(id="2505.90001", title=original.title, abstract=original.abstract, authors=original.authors,
                  date="2025-05-06")
    day = [paper(i, "2025-05-06") for i in range(100, 130)] + [again]
    notes = []
    res = prefilter(store, day, warn=notes.append)
    rows = {r.paper.id: r.to_dict() for r in res.ranked}
    assert rows["2505.90001"]["reupload_of"]["id"] == original.id
    assert rows["2505.90001"]["reupload_of"]["date"] == "2025-05-01"
    assert rows["2505.90001"]["reupload_of"]["cosine"] >= REUPLOAD_COSINE
    assert sum("reupload_of" in r for r in rows.values()) == 1 and res.reuploads == 1
    assert "1 re-upload of earlier papers" in res.summary() and notes == []
    assert len(CorpusIndex(store, "minilm").ids()) == 71           # the day joined the corpus index
    assert store.first_seen([again.id]) == {again.id: "2025-05-06"}   # with its day (and title)
    # the earlier paper is not a re-upload of the later one, and a rerun of the first day flags nothing
    again_early = prefilter(store, early)
    assert not any(r.reupload_of for r in again_early.ranked)


def test_a_planted_reupload_shows_in_the_prefilter_file_and_the_digest_with_the_earlier_scores(store, tmp_path):
    """Two days through run_day (fake backend): the later day repeats a paper of the first under a new id."""
    s = settings_for(store, backend="fake", keep=1.0, min_relevance=1, min_novelty=1)
    first = [paper(i, "2025-05-01") for i in range(25)]
    original = first[7]
    again = Paper(id="2505.90007", title=original.title, abstract=original.abstract, authors=original.authors,
                  categories=["cs.LG"], date="2025-05-06")
    second = [paper(i, "2025-05-06") for i in range(200, 220)] + [again]
    stand_in = WordHashEmbedder("minilm")
    stand_in.embed_queries(build_queries(load_prompts()).texts, store)
    results = []
    for papers, out in ((first, tmp_path / "a"), (second, tmp_path / "b")):
        stand_in.embed_papers(papers, store)
        day = fetch_day(papers, s, store=store)
        results.append(run_day(day, out, s, store=store))
    files = results[1].files
    rows = {r.paper.id: r for r in read_ranked(files["prefilter"])}
    assert rows[again.id].reupload_of == {"id": original.id, "date": "2025-05-01", "cosine": 1.0}
    assert [i for i, r in rows.items() if r.reupload_of] == [again.id]
    rel, nov = fake_scores(original.id)
    md = files["markdown"].read_text()
    assert md.count("also announced as") == 1
    assert (f"**Note:** also announced as [{original.id}](https://arxiv.org/abs/{original.id}) on 2025-05-01 "
            f"(scored then: Relevance {rel}, Novelty {nov})") in md
    js = json.loads(files["json"].read_text())
    assert js[again.id]["reupload_of"] == {"id": original.id, "date": "2025-05-01", "cosine": 1.0,
                                           "RELEVANCE": rel, "NOVELTY": nov}
    assert sum("reupload_of" in v for v in js.values()) == 1
    assert results[1].manifest["counts"]["reuploads"] == 1 and results[0].manifest["counts"]["reuploads"] == 0
    assert not any("reupload_of" in v for v in json.loads(results[0].files["json"].read_text()).values())
    st = CorpusIndex(store, "minilm").status()                  # every stored paper vector is in the index
    assert (st.vectors, st.store_vectors, st.problem) == (46, 46, None)


def test_score_day_shows_earlier_papers_only_and_stores_those_scores_apart(store):
    """settings.scoring.novelty_context K: each prompt lists the K nearest papers of EARLIER days (from the
    corpus index), never the paper, its day or later; the scores get their own prompt hash."""
    days = ("2025-05-01", "2025-05-02", "2025-05-03")
    ps = [paper(i, days[i % 3]) for i in range(30)]
    prefilter(store, ps)
    seen = {}

    class Spy(FakeBackend):
        def generate(self, requests, **kw):
            seen.update((r.key, r.messages[1]["content"]) for r in requests)
            return super().generate(requests, **kw)

    target = [p for p in ps if p.date >= "2025-05-02"]
    run = score_day(target, settings_for(store, novelty_context=2), store=store, backend=Spy())
    assert run.scored == len(target)
    titles = {p.title: p.date for p in ps}
    for p in target:
        text = seen[p.id]
        listed = text[text.index(RELATED_NOTE) + len(RELATED_NOTE):text.index("</paper>")].strip().splitlines()
        assert len(listed) == 2, listed
        for line in listed:
            day, title = line.removeprefix("- ").split(": ", 1)
            assert day < p.date and titles[title] == day and title != p.title
    plain = score_day(target, settings_for(store), store=store, backend=FakeBackend())
    assert plain.reused == 0 and plain.prompt_hash != run.prompt_hash
    assert score_day(target, settings_for(store, novelty_context=2), store=store,
                     backend=FakeBackend()).reused == len(target)


def test_a_prefilter_whose_index_cannot_be_written_still_ranks_and_says_so(store):
    store.index_dir.write_text("a file where the index folder should be")
    notes = []
    res = prefilter(store, [paper(i, "2025-05-01") for i in range(25)], warn=notes.append)
    assert len(res.ranked) == 25 and res.kept == 20
    assert len(notes) == 1 and notes[0].startswith("index: not updated (") and "retries" in notes[0]


def test_update_index_records_the_papers_and_syncs(store):
    from ranker.index import update_index
    emb = WordHashEmbedder()
    ps = [paper(i, "2025-05-02") for i in range(7)]
    emb.embed_papers(ps, store)                              # vectors without the papers' days and titles
    assert store.first_seen([p.id for p in ps]) == {}
    notes = []
    res = update_index(store, emb.key, ps, warn=notes.append)
    assert res.count == 7 and store.first_seen([ps[0].id]) == {ps[0].id: "2025-05-02"}
    assert notes == ["index built from the store (there was no index yet): 7 vectors, exact"]


def test_reuploads_need_an_earlier_day_and_the_threshold(store):
    emb = WordHashEmbedder()
    a = paper(1, "2025-05-01")
    same_day = Paper(id="2505.80001", title=a.title, abstract=a.abstract, date="2025-05-01")
    near = Paper(id="2505.80002", title=a.title, abstract=a.abstract + " with one more result", date="2025-05-03")
    stock(store, [a, same_day, near], emb)
    idx = CorpusIndex(store, emb.key)
    idx.sync()
    vecs = np.stack([store.get_vectors([p.id], emb.key)[p.id] for p in (same_day, near)])
    cos = float(vecs[1] @ store.get_vectors([a.id], emb.key)[a.id])
    assert find_reuploads([same_day, near], vecs, idx, store, threshold=0.999) == {}
    found = find_reuploads([same_day, near], vecs, idx, store, threshold=cos - 1e-3)
    assert list(found) == ["2505.80002"] and found["2505.80002"].id in (a.id, same_day.id)
    assert found["2505.80002"].date == "2025-05-01"


def test_an_old_abstract_under_a_new_title_is_a_reupload_too(store):
    emb = WordHashEmbedder()
    text = " ".join(np.random.default_rng(9).choice(WORDS, 60))
    old = Paper(id="2505.70001", title="Team A at Task 7: retrieval", abstract=text, date="2025-06-24")
    new = Paper(id="2505.70002", title="Team A at Task 10: framing classification", abstract=text,
                date="2025-06-30")
    short = Paper(id="2505.70003", title="Short", abstract="graph kernel", date="2025-06-20")
    short2 = Paper(id="2505.70004", title="Other", abstract="graph kernel", date="2025-06-30")
    words = text.split()
    words[5], words[20] = "typo", "another"
    fixed = Paper(id="2505.70005", title=old.title, abstract=" ".join(words), date="2025-07-01")
    stock(store, [old, new, short, short2, fixed], emb)
    idx = CorpusIndex(store, emb.key)
    idx.sync()
    got = store.get_vectors([new.id, short2.id, fixed.id], emb.key)
    cos = float(got[new.id] @ store.get_vectors([old.id], emb.key)[old.id])
    assert 0.8 <= cos < 0.999                             # a threshold above it: only the text can tell
    found = find_reuploads([new, short2, fixed], np.stack([got[new.id], got[short2.id], got[fixed.id]]), idx,
                           store, threshold=0.999)
    assert sorted(found) == [new.id, fixed.id]            # a copied abstract; the same with two words changed
    assert found[new.id].to_dict() == {"id": old.id, "date": "2025-06-24", "cosine": round(cos, 4),
                                       "same_abstract": True}
    assert found[fixed.id].id == old.id and found[fixed.id].same_abstract


def test_the_digest_says_where_a_paper_was_announced_before():
    p = paper(1, "2025-05-06")
    s = Selected(p, Score(p.id, 9, 8, "c"), reupload_of={"id": "2505.00011", "date": "2025-05-01", "cosine": 1.0,
                                                         "RELEVANCE": 8, "NOVELTY": 7})
    plain = Selected(paper(2, "2025-05-06"), Score("2505.00002", 9, 8, "c"))
    md = render_markdown("2025-05-06", [s, plain], usage=TokenCost("m"), total_papers=2, scanned_papers=2,
                         prompts=load_prompts())
    line = ("**Note:** also announced as [2505.00011](https://arxiv.org/abs/2505.00011) on 2025-05-01 "
            "(scored then: Relevance 8, Novelty 7)")
    assert md.count("also announced as") == 1 and line in md
    js = render_json([s, plain])
    assert js[p.id]["reupload_of"]["id"] == "2505.00011" and "reupload_of" not in js["2505.00002"]
    s.reupload_of = {"id": "2505.00011", "date": "2025-05-01", "cosine": 1.0}
    md = render_markdown("2025-05-06", [s], usage=TokenCost("m"), total_papers=1, scanned_papers=1,
                         prompts=load_prompts())
    assert "on 2025-05-01\n" in md and "scored then" not in md
    s.reupload_of = {"id": "x](javascript:alert(1))<b>", "date": "<img src=x>", "cosine": 1.0}   # escaped, no link
    md = render_markdown("2025-05-06", [s], usage=TokenCost("m"), total_papers=1, scanned_papers=1,
                         prompts=load_prompts())
    note = next(line for line in md.splitlines() if line.startswith("**Note:**"))
    assert "x\\](javascript" in note and "[" not in note                       # an escaped bracket: no link
    assert "<b>" not in note and "<img" not in note and "&lt;img src=x&gt;" in note


# --------------------------------------------------------------------------- calibration signal
def test_pick_similarity_is_the_mean_cosine_to_the_nearest_past_picks(store):
    rng = np.random.default_rng(4)
    picks = rng.normal(size=(12, 16)).astype(np.float32)
    picks /= np.linalg.norm(picks, axis=1, keepdims=True)
    store.put_embeddings(((f"2504.{i:05d}", "h", v) for i, v in enumerate(picks)), "toy")
    q = rng.normal(size=(5, 16)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    ids = [f"2504.{i:05d}" for i in range(12)] + ["2504.99999"]          # one pick without a vector: skipped
    got = pick_similarity(q, ids, store, embedder="toy", k=3)
    want = np.sort(q @ picks.T, axis=1)[:, ::-1][:, :3].mean(axis=1)
    np.testing.assert_allclose(got, want, atol=1e-5)
    np.testing.assert_allclose(pick_similarity(q, ids, store, embedder="toy", k=1), (q @ picks.T).max(1), atol=1e-5)
    own = pick_similarity(picks[:2], ids, store, embedder="toy", k=1, exclude=ids[:2])     # a pick is not its own
    assert (own < 0.999).all()
    assert (pick_similarity(q, ["2599.00001"], store, embedder="toy") == 0).all()


def test_past_pick_similarity_counts_only_picks_of_earlier_days(store):
    rng = np.random.default_rng(8)
    v = rng.normal(size=(9, 16)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    ids = [f"2504.{i:05d}" for i in range(9)]
    store.put_embeddings(((pid, "h", v[i]) for i, pid in enumerate(ids)), "toy")
    days = ["2025-04-01"] * 3 + ["2025-04-02"] * 3 + ["2025-04-03"] * 3
    papers = [Paper(id=pid, title="t", abstract="a", date=d) for pid, d in zip(ids, days)]
    picks = {"2025-04-01": [ids[0], ids[1]], "2025-04-02": [ids[3]], "2025-04-03": [ids[6]]}
    got = past_pick_similarity(papers, picks, store, embedder="toy", k=2)
    assert (got[:3] == 0).all()                                      # the first day has no earlier picks
    np.testing.assert_allclose(got[4], np.sort(v[4] @ v[[0, 1]].T)[::-1][:2].mean(), atol=1e-5)
    np.testing.assert_allclose(got[3], np.sort(v[3] @ v[[0, 1]].T)[::-1][:2].mean(), atol=1e-5)   # not itself
    np.testing.assert_allclose(got[7], np.sort(v[7] @ v[[0, 1, 3]].T)[::-1][:2].mean(), atol=1e-5)  # not ids[6]
    same = dict(picks, **{"2025-04-03": [ids[7]]})                # a pick of the paper's own day changes nothing
    np.testing.assert_allclose(past_pick_similarity(papers, same, store, embedder="toy", k=2), got)


# --------------------------------------------------------------------------- streaming a corpus in
def test_embed_corpus_reads_lazily_a_chunk_at_a_time(store):
    emb = WordHashEmbedder()
    pulled = []
    encoded_when = []
    real = emb.encode

    def spy(texts):
        encoded_when.append(len(pulled))
        return real(texts)
    emb.encode = spy

    def stream():
        for i in range(95):
            pulled.append(i)
            yield paper(i, "2025-05-01") if i != 50 else Paper(id="2505.77777", title="", abstract="")

    res = embed_corpus(stream(), store, emb, chunk=20)
    assert (res.papers, res.embedded, res.skipped) == (94, 94, 1)
    assert encoded_when[0] <= 21                         # the first chunk was embedded before reading on
    assert res.sync.count == 94 and store.count_embeddings(emb.key) == 94
    again = embed_corpus((paper(i, "2025-05-01") for i in range(95) if i != 50), store, WordHashEmbedder())
    assert again.embedded == 0 and again.sync.added == 0


def test_the_store_knows_the_days_and_titles(store):
    emb = WordHashEmbedder()
    ps = [paper(i, "2025-05-0%d" % (1 + i)) for i in range(3)]
    stock(store, ps, emb)
    assert store.first_seen([p.id for p in ps] + ["2599.00001"]) == {p.id: p.date for p in ps}
    got = store.get_papers([ps[1].id, "2599.00001"])
    assert list(got) == [ps[1].id] and got[ps[1].id].title == ps[1].title
    assert store.index_dir == store.path.parent / "faiss-r.sqlite3"
    assert json.loads(json.dumps(store.paper_embedders("~query:"))) == [emb.key]


class BrokenEmbedder(WordHashEmbedder):
    """Gives NaN for any text holding the word 'overflow' (a model whose half precision overflows there)."""

    def encode(self, texts):
        out = super().encode(texts)
        out[["overflow" in t for t in texts]] = np.nan
        return out


def test_an_embedder_that_gives_numbers_that_are_not_finite_is_an_error_naming_it_and_the_paper(store):
    # its NaN vectors were stored and indexed: the paper's similar papers were any papers, and the topics scored
    # it NaN; a query's NaN vector found any papers too. None of the batch is stored (one broken text: the model
    # is not to be trusted with the others)
    from ranker.errors import ModelError
    emb = BrokenEmbedder()
    papers = [paper(i, "2025-05-13") for i in range(5)] + [paper(9, "2025-05-13", ["overflow", "attention"])]
    store.add_papers(papers)
    with pytest.raises(ModelError, match=r"^word-hash: .*not finite.* paper 2505\.00009") as e:
        emb.embed_papers(papers, store)
    assert "stored" in str(e.value) and store.count_embeddings(emb.key) == 0
    with pytest.raises(ModelError, match=r'not finite .*for the query "sparse overflow"'):
        emb.embed_queries(["sparse overflow"], store)
    assert store.count_embeddings(emb.key) == 0
    emb.embed_papers(papers[:5], store)                                  # the others are embedded as ever
    assert store.count_embeddings(emb.key) == 5


def test_a_stored_vector_that_is_not_finite_is_embedded_again_and_the_index_takes_the_new_one(store):
    # an older ranker (or a damaged file) left a NaN paper vector and a NaN topic vector under their texts' hashes:
    # the cache handed them back, so the day's prefilter put the NaN paper first (its NaN score sorted anywhere)
    # and the NaN topic scored every paper NaN; and had it been embedded again under the same text, the corpus
    # index kept its old NaN row (a vector stored again with the same text hash was skipped)
    from ranker.prefilter.embed import QUERY_PREFIX, paper_text, text_hash
    emb = WordHashEmbedder()
    papers = [paper(i, "2025-05-13") for i in range(30)]
    stock(store, papers, emb)
    bad, topic = papers[7], "sparse attention routing"
    want_paper, want_topic = emb.encode([paper_text(bad)])[0], emb.encode([topic])[0]
    nan = np.full(DIM, np.nan, np.float32)
    with store.transaction() as c:
        c.executemany("INSERT OR REPLACE INTO embeddings VALUES (?,?,?,?,?)",
                      [(bad.id, emb.key, text_hash(paper_text(bad)), DIM, nan.tobytes()),
                       (QUERY_PREFIX + text_hash(topic), emb.key, text_hash(topic), DIM, nan.tobytes())])
    idx = CorpusIndex(store, emb.key)
    idx.sync()                                                     # built holding the NaN row
    assert store.get_vectors([bad.id], emb.key) == {}              # no vector, rather than one of NaN
    before = emb.texts_encoded
    got = emb.embed_papers(papers, store)
    q = emb.embed_queries([topic], store)
    assert emb.texts_encoded == before + 2                          # the two damaged ones, embedded again
    assert np.isfinite(got).all() and np.allclose(got[7], want_paper) and np.allclose(q[0], want_topic)
    assert np.allclose(store.get_vectors([bad.id], emb.key)[bad.id], want_paper)       # stored in their place
    res = CorpusIndex(store, emb.key).sync()
    assert res.rebuilt is None and res.count == 30
    again = CorpusIndex(store, emb.key)
    again.load()
    hit = again.search(want_paper[None, :], 1)[0][0]
    assert hit.id == bad.id and hit.score == pytest.approx(1.0, abs=1e-5)
    assert sorted(again.ids()) == sorted(p.id for p in papers)
    assert len(similar(store, bad.id, embedder=emb, k=3).neighbours) == 3                # its neighbours again


def test_a_store_opened_read_only_searches_an_exact_index_built_in_memory_and_writes_none(tmp_path, monkeypatch):
    # serve --read-only beside a store whose index is missing or behind used to lose every search by meaning and
    # every similar-papers panel (IndexNotWritten) though the exact index is only the store's vectors: it is built
    # in memory now, nothing written beside the store, and follows the store as other commands add vectors
    from ranker.index import kinds
    from ranker.index.corpus import IndexNotWritten
    emb = WordHashEmbedder()
    db = tmp_path / "r.sqlite3"
    papers = [paper(i, "2025-05-13") for i in range(40)]
    with Store(db) as w:
        stock(w, papers[:30], emb)
        CorpusIndex(w, emb.key).sync()                                   # the index on disk: 30 vectors
        stock(w, papers[30:35], emb)                                     # 5 more, not synced: it is behind
        index_dir = CorpusIndex(w, emb.key).dir
    on_disk = {f: f.read_bytes() for f in sorted(index_dir.rglob("*")) if f.is_file()}
    ro = Store(db, read_only=True)
    try:
        idx = CorpusIndex(ro, emb.key)
        assert idx.sync().count == 35
        want = emb.encode([paper_text_of(papers[33])])
        assert idx.search(want, 1)[0][0].id == papers[33].id
        assert sorted(idx.ids()) == sorted(p.id for p in papers[:35])
        assert len(similar(ro, papers[33].id, embedder=emb, k=3).neighbours) == 3
        with Store(db) as w:                                             # another command stores more
            stock(w, papers[35:], emb)
        assert idx.sync().count == 40
        assert idx.search(emb.encode([paper_text_of(papers[38])]), 1)[0][0].id == papers[38].id
        assert {f: f.read_bytes() for f in sorted(index_dir.rglob("*")) if f.is_file()} == on_disk
        monkeypatch.setattr(kinds, "APPROX_THRESHOLD", 20)                # the approximate kind is not trained here
        with pytest.raises(IndexNotWritten, match="needs writing"):
            CorpusIndex(ro, emb.key).sync()
    finally:
        ro.close()


def paper_text_of(p):
    from ranker.prefilter.embed import paper_text
    return paper_text(p)
