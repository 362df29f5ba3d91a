"""The prefilter's scoring, keep policy and metrics, on small real arrays (no model). The corpus index: test_index_*."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from conftest import ranker

from ranker.errors import InputError
from ranker.prefilter.embed import Embedder, embedder_key, paper_text, slug, text_hash
from ranker.prefilter.metrics import auc, day_metrics, recall_at
from ranker.prefilter.rank import (APPLICATION, APPLICATION_WEIGHT, CATEGORY_WEIGHT, KEYWORD, QuerySet,
                                   _relevant_items, build_queries, category_neighbourhood, zero_shot)
from ranker.prefilter.recall import decide_keep
from ranker.prompts import FILES, load_prompts
from ranker.records import Paper




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
    assert set(qs.topic_of) == {KEYWORD, APPLICATION, 0, 1, 2, 3, 4, 5}
    # the application keywords are queries that count against a paper; the Irrelevant keywords are not queries
    apps = [t for t, o in zip(qs.texts, qs.topic_of) if o == APPLICATION]
    assert apps[0] == "Image Segmentation" and "Time Series" in apps and len(apps) == 13
    assert "Reinforcement Learning" not in qs.texts and "Time Series" not in qs.title_terms


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
    # `--out -` said nothing of its output, where score's says it wrote nothing to stdout (cli.common.wrote_empty)
    r = ranker("prefilter", "--papers", empty, "--out", "-", cwd=tmp_path)
    assert r.returncode == 0 and r.stdout == "" and not (tmp_path / "-").exists() and \
        r.stderr.strip().splitlines() == [f"nothing to do: no papers in {empty} (wrote nothing to stdout)"], r.stderr
    r = ranker("prefilter", "--papers", empty, "--out", tmp_path / "o.jsonl", "--keep", "1.5")
    assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1 and "--keep" in r.stderr
    r = ranker("prefilter", "--papers", empty, "--out", tmp_path / "o.jsonl", "--keep", "0.3", "--top", "5")
    assert r.returncode != 0 and "give one of --keep, --top and --recall, not --keep and --top" in r.stderr


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


def test_the_category_neighbourhood_lifts_papers_of_an_on_topic_category():
    # two papers with the same own score: the one whose category's other papers sit on the topics ranks first
    score = np.array([1.0, 0.9, 0.8, 0.0, -0.9, -0.9, -1.0, 0.0])
    prim = ["cs.LG", "cs.LG", "cs.LG", "cs.LG", "cs.RO", "cs.RO", "cs.RO", "cs.RO"]
    nb = category_neighbourhood(score, prim)
    assert nb[3] > 0 > nb[7] and nb[0] == nb[3]                 # one value per category
    assert abs(nb.mean()) < 1e-9 and abs(nb.std() - 1) < 1e-9    # z-scored over the papers
    # the shrinkage: one high-scoring q-bio paper is less evidence than three good cs.LG ones
    s3 = np.array([2.0, 1.0, 1.0, 1.0, -1.0, -1.0, -1.0, -1.0])
    p3 = ["q-bio.BM"] + ["cs.LG"] * 3 + ["cs.RO"] * 4
    raw = category_neighbourhood(s3, p3, prior_papers=0.0)
    shrunk = category_neighbourhood(s3, p3, prior_papers=5.0)
    assert raw[0] > raw[1] > raw[4] and shrunk[1] > shrunk[0] > shrunk[4]
    assert np.all(category_neighbourhood(score, ["cs.LG"] * 8) == 0)   # one category: no information

    # in zero_shot: equal vectors, different categories
    qs = QuerySet(texts=["a"], topic_of=[0], topic_names=["A"])
    queries = unit(np.eye(3)[:1])
    papers = unit([[1, 0, 0.1], [1, 0, 0.1], [1, 0, 0.3], [0, 1, 0], [0, 1, 0.1], [0.5, 0.5, 0]])
    prim = ["cs.LG", "cs.LG", "cs.LG", "cs.RO", "cs.RO", "cs.RO"]
    plain, _ = zero_shot(papers, queries, qs)
    with_cat, _ = zero_shot(papers, queries, qs, primary=prim)
    assert plain[0] == plain[1]
    lifted = with_cat - plain
    assert np.allclose(lifted[:3], lifted[0]) and np.allclose(lifted[3:], lifted[3]) and lifted[0] > lifted[3]
    assert np.allclose(lifted, CATEGORY_WEIGHT * category_neighbourhood(plain, prim), atol=1e-6)


def test_application_queries_count_against_a_paper_and_never_name_its_topic():
    # query 0 is topic A, query 1 an application keyword; papers 0 and 1 sit as close to the topic, paper 1
    # also close to the application: it ranks below paper 0, by APPLICATION_WEIGHT x its z-scored firing
    qs = QuerySet(texts=["a", "app"], topic_of=[0, APPLICATION], topic_names=["A"])
    queries = unit(np.eye(3)[:2])
    papers = unit([[0.8, 0, 0.6], [0.8, 0.6, 0], [0, 0, 1], [0.2, 0, 1], [0, 1, 0.3], [0.1, 0.2, 1]])
    score, topic = zero_shot(papers, queries, qs)
    topic_only, _ = zero_shot(papers, queries[:1], QuerySet(texts=["a"], topic_of=[0], topic_names=["A"]))
    assert score[0] > score[1] and topic_only[0] == pytest.approx(topic_only[1], abs=1e-6)
    sims = papers @ queries[1]
    fire = np.maximum(sims - np.quantile(sims, 0.7), 0)
    assert np.allclose(topic_only - score, APPLICATION_WEIGHT * (fire - fire.mean()) / fire.std(), atol=1e-5)
    assert set(topic.tolist()) == {0}                       # the best topic is always a topic


@pytest.mark.parametrize("n,keep,top,expect", [
    (100, 0.4, None, 40), (101, 0.4, None, 41), (30, 0.4, None, 20), (10, 0.4, None, 10), (0, 0.4, None, 0),
    (1000, 0.25, None, 250), (100, 1.0, None, 100), (100, 0.4, 7, 7), (5, 0.4, 7, 5)])
def test_keep_policy(n, keep, top, expect):
    assert decide_keep(np.linspace(1, 0, n), keep=keep, top=top, min_keep=20).n_keep == expect


def test_keep_policy_rejects_nonsense():
    with pytest.raises(InputError, match="fraction") as e:
        decide_keep(np.zeros(10), keep=0.0)
    assert e.value.key == "prefilter.keep"
    with pytest.raises(InputError, match="at least 1") as e:
        decide_keep(np.zeros(10), top=0)
    assert e.value.key == "prefilter.top"


def test_metrics():
    y = np.array([1, 0, 1, 0, 0, 0, 0, 0], dtype=bool)
    s = np.array([8, 7, 6, 5, 4, 3, 2, 1.0])
    assert auc(s, y) == pytest.approx(11 / 12)
    assert recall_at(s, y, 0.25) == 0.5 and recall_at(s, y, 0.40) == 1.0
    m = day_metrics(s, y)
    assert set(m) == {"auc", "recall@25", "recall@40", "keep95"} and m["keep95"] == 3 / 8   # 2nd pick at rank 3
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


def test_a_folder_whose_name_reads_as_another_embedders_token_cut_is_refused_with_how_to_name_it(tmp_path):
    """The key of a folder 'emb@256' is the key of the folder 'emb' cut at 256 tokens: where both exist, their
    vectors were filed under one key. Either use is refused, naming the folder to rename; alone, each is fine."""
    emb, cut = tmp_path / "emb", tmp_path / "emb@256"
    emb.mkdir()
    assert Embedder(str(emb), max_tokens=256).key == f"{cut}"
    cut.mkdir()
    assert Embedder(str(emb), max_tokens=200).key == f"{emb}@200" and Embedder(str(emb)).key == str(emb)
    for name, tokens in ((str(emb), 256), (str(cut), None)):
        with pytest.raises(InputError) as e:
            Embedder(name, max_tokens=tokens)
        assert e.value.key == "prefilter.embedder" and e.value.message == (
            f"'{cut}' names both the folder {cut} and {emb} cut at 256 tokens, whose vectors would be stored as "
            "one; rename the folder to a name that does not end in @ and digits")
    emb.rmdir()
    assert Embedder(str(cut)).key == str(cut)


def test_max_tokens_is_held_to_the_models_own_limit_where_it_is_known(tmp_path, monkeypatch):
    """The limit is read from the folder the embedder loads: a folder named, a prepared preset. An unprepared
    preset has no such folder (loading it is an error of its own): a folder of its name in the working
    directory, which it never loads, set a limit of its own on it."""
    from conftest import MODELS
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "sentence_bert_config.json").write_text('{"max_seq_length": 64}')
    with pytest.raises(InputError, match="must be at most 64"):
        Embedder(str(mine), max_tokens=65)
    assert Embedder(str(mine), max_tokens=64).key == f"{mine}@64"
    assert Embedder("org/model", max_tokens=4096).key == "org/model@4096"          # not known without loading
    with pytest.raises(InputError, match="must be at most 256: minilm"):
        Embedder("minilm", max_tokens=257)                               # the prepared preset's own folder
    own = tmp_path / "models"
    own.mkdir()
    (own / "presets.toml").write_text((MODELS / "presets.toml").read_text())
    (tmp_path / "minilm").mkdir()
    (tmp_path / "minilm" / "sentence_bert_config.json").write_text('{"max_seq_length": 16}')
    monkeypatch.chdir(tmp_path)
    assert Embedder("minilm", max_tokens=200, models_dir=own).key == "minilm@200"


def test_a_missing_model_is_a_clear_error_before_anything_loads():
    from ranker.errors import ModelError
    emb = Embedder("/nonexistent/model/folder")
    with pytest.raises(ModelError, match="no such model folder"):
        emb.encode(["x"])
