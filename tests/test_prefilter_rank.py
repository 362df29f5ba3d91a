"""The prefilter's scoring, keep policy, metrics and FAISS index, on small real arrays (no model)."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from conftest import ranker

from ranker.errors import InputError
from ranker.prefilter.embed import Embedder, embedder_key, paper_text, slug, text_hash
from ranker.prefilter.index import CorpusIndex, build, search
from ranker.prefilter.metrics import auc, day_metrics, recall_at
from ranker.prefilter.rank import QuerySet, _relevant_items, build_queries, n_keep, zero_shot
from ranker.prompts import FILES, load_prompts
from ranker.records import Paper
from ranker.store import Store




def unit(m):
    m = np.asarray(m, dtype=np.float32)
    return m / np.linalg.norm(m, axis=-1, keepdims=True)


# --------------------------------------------------------------------------- queries from the topics file
def test_default_topics_give_descriptions_items_and_keywords():
    qs = build_queries(load_prompts())
    assert qs.topic_names[2] == "Model Compression"
    assert "Model Compression: KV cache" in qs.texts
    assert "Model Architecture: analysis on existing architectures (encoder-decoder)" in qs.texts
    assert "Mixture of Experts (MoE)" in qs.texts and qs.topic_of[qs.texts.index("Low-rank")] == -1
    # every topic has its description first, then its items; no Irrelevant text is used as a query
    assert qs.texts[0].startswith("Representation Learning: Insights into how deep networks encode")
    assert not any("Irrelevant" in t or "jail-breaking" in t for t in qs.texts)
    assert set(qs.topic_of) == {-1, 0, 1, 2, 3, 4, 5}


def test_relevant_line_items_keep_brackets_together():
    assert _relevant_items("Sparsity, pruning (e.g., magnitude, movement), or other breakthroughs.") == [
        "Sparsity", "pruning (magnitude, movement)", "other breakthroughs"]
    assert _relevant_items("One thing only.") == ["One thing only"]


def _prompt_dir(tmp_path, topics: str) -> Path:
    d = tmp_path / "prompts"
    d.mkdir()
    for key, name in FILES.items():
        (d / name).write_text(topics if key == "topics" else key, encoding="utf-8")
    return d


def test_a_topic_with_a_name_only_is_its_own_query(tmp_path):
    qs = build_queries(load_prompts(_prompt_dir(tmp_path, "1. Graph neural networks\n2. Optimisation theory\n")))
    assert qs.texts == ["Graph neural networks", "Optimisation theory"]


def test_empty_topics_file_and_topic_without_text_are_one_line_errors(tmp_path):
    papers = tmp_path / "p.jsonl"
    papers.write_text(json.dumps({"id": "2501.00001", "title": "A", "abstract": "B"}) + "\n")
    for i, text in enumerate(("  \n", "1. \n   - Relevant:\n")):
        d = tmp_path / f"t{i}"
        d.mkdir()
        for key, name in FILES.items():
            (d / name).write_text(text if key == "topics" else key, encoding="utf-8")
        r = ranker("prefilter", "--papers", papers, "--out", tmp_path / "o.jsonl", "--prompts", d)
        assert r.returncode == 1
        err = r.stderr.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: ") and "paper_topics.txt" in err[0], r.stderr
        assert ("empty" in err[0]) if i == 0 else ("no text" in err[0])
        assert not (tmp_path / "o.jsonl").exists()


def test_an_empty_papers_file_is_nothing_to_do_and_bad_flags_are_one_line_errors(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    r = ranker("prefilter", "--papers", empty, "--out", tmp_path / "o.jsonl")
    assert r.returncode == 0 and r.stdout == "" and r.stderr.strip().splitlines() == [
        f"nothing to do: no papers in {empty} (wrote an empty {tmp_path / 'o.jsonl'})"]
    assert (tmp_path / "o.jsonl").read_text() == ""
    r = ranker("prefilter", "--papers", empty, "--out", tmp_path / "o.jsonl", "--keep", "1.5")
    assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1 and "--keep" in r.stderr
    r = ranker("prefilter", "--papers", empty, "--out", tmp_path / "o.jsonl", "--keep", "0.3", "--top", "5")
    assert r.returncode != 0 and "not both" in r.stderr


# --------------------------------------------------------------------------- the score
def test_zero_shot_rewards_strong_matches_and_names_the_topic():
    qs = QuerySet(texts=["a", "a2", "b"], topic_of=[0, 0, 1], topic_names=["A", "B"])
    queries = unit(np.eye(4)[:3])
    papers = unit([[1, 0, 0, 0.2], [0, 0, 1, 0.2], [0.3, 0.3, 0.3, 1], [0, 0, 0, 1], [0.5, 0.5, 0, 0]])
    score, topic = zero_shot(papers, queries, qs)
    assert score.dtype == np.float32 and score.shape == (5,)
    order = list(np.argsort(-score))
    assert order[-1] == 3                             # close to no query
    assert score[0] > score[2] and score[1] > score[2]   # one strong match beats mild closeness to all
    assert [qs.topic_names[t] for t in topic] == ["A", "B", "A", "A", "A"]
    s0, t0 = zero_shot(papers[:0], queries, qs)
    assert s0.shape == (0,) and t0.shape == (0,)


@pytest.mark.parametrize("n,keep,top,expect", [
    (100, 0.4, None, 40), (101, 0.4, None, 41), (30, 0.4, None, 20), (10, 0.4, None, 10), (0, 0.4, None, 0),
    (1000, 0.25, None, 250), (100, 1.0, None, 100), (100, 0.4, 7, 7), (5, 0.4, 7, 5)])
def test_keep_policy(n, keep, top, expect):
    assert n_keep(n, keep=keep, top=top, min_keep=20) == expect


def test_keep_policy_rejects_nonsense():
    with pytest.raises(InputError, match="fraction") as e:
        n_keep(10, keep=0.0)
    assert e.value.key == "prefilter.keep"
    with pytest.raises(InputError, match="at least 1") as e:
        n_keep(10, top=0)
    assert e.value.key == "prefilter.top"


def test_metrics():
    y = np.array([1, 0, 1, 0, 0, 0, 0, 0], dtype=bool)
    s = np.array([8, 7, 6, 5, 4, 3, 2, 1.0])
    assert auc(s, y) == pytest.approx(11 / 12)
    assert recall_at(s, y, 0.25) == 0.5 and recall_at(s, y, 0.40) == 1.0
    m = day_metrics(s, y)
    assert set(m) == {"auc", "recall@25", "recall@40"}
    assert math.isnan(auc(s, np.zeros(8, bool)))


# --------------------------------------------------------------------------- embedder naming and text
def test_paper_text_falls_back_to_the_title():
    assert paper_text(Paper(id="1", title="  Sparse   MoE ", abstract="")) == "Sparse MoE"
    assert paper_text(Paper(id="1", title="T", abstract="A  b")) == "T. A b"
    assert text_hash("x") != text_hash("y")


def test_embedder_key_and_slug(tmp_path):
    assert embedder_key("minilm") == "minilm" and embedder_key(None) == "minilm"
    assert embedder_key(str(tmp_path)) == str(tmp_path.resolve())
    assert embedder_key("org/model") == "org/model"
    assert "/" not in slug(str(tmp_path)) and slug("minilm") == "minilm"


def test_a_missing_model_is_a_clear_error_before_anything_loads():
    from ranker.errors import ModelError
    emb = Embedder("/nonexistent/model/folder")
    with pytest.raises(ModelError, match="no such model folder"):
        emb.encode(["x"])


# --------------------------------------------------------------------------- FAISS
def test_flat_and_approximate_indexes_find_the_nearest():
    rng = np.random.default_rng(1)
    base = unit(rng.normal(size=(5000, 32)))
    flat = build(base)
    assert type(flat).__name__ == "IndexFlatIP"
    q = unit(base[:50] + 0.05 * rng.normal(size=(50, 32)))
    _, rows = search(flat, q, 1)
    assert (rows[:, 0] == np.arange(50)).all()
    ivf = build(base, approximate=True)
    assert type(ivf).__name__ == "IndexIVFFlat"
    _, rows = search(ivf, q, 5)
    assert (rows == np.arange(50)[:, None]).any(axis=1).mean() >= 0.9


def test_corpus_index_persists_and_follows_the_store(tmp_path):
    rng = np.random.default_rng(2)
    vec = unit(rng.normal(size=(30, 16)))
    store = Store(tmp_path / "r.sqlite3")
    store.put_embeddings(((f"2501.{i:05d}", f"h{i}", vec[i]) for i in range(20)), "toy")
    store.put_embeddings([("~query:abc", "q", vec[29])], "toy")          # queries are not papers
    idx = CorpusIndex("toy", tmp_path / "faiss").sync(store)
    assert len(idx) == 20 and idx.index_path.exists() and idx.ids_path.exists()
    hits = idx.search(vec[[3]], k=3)[0]
    assert hits[0].id == "2501.00003" and hits[0].score == pytest.approx(1.0, abs=1e-5)

    store.put_embeddings(((f"2501.{i:05d}", f"h{i}", vec[i]) for i in range(20, 25)), "toy")
    again = CorpusIndex("toy", tmp_path / "faiss")
    assert again.load() and len(again) == 20
    again.sync(store)
    assert len(again) == 25 and again.search(vec[[22]], k=1)[0][0].id == "2501.00022"

    store.put_embeddings([("2501.00003", "changed", vec[28])], "toy")   # a paper's text changed
    third = CorpusIndex("toy", tmp_path / "faiss").sync(store)
    assert len(third) == 25 and third.search(vec[[28]], k=1)[0][0].id == "2501.00003"
    with pytest.raises(InputError, match="dimensions"):
        third.search(np.ones((1, 8), np.float32))
    store.close()
