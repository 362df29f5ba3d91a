"""Embedder.unstored, unstored_queries: which of the texts to embed the store cannot serve (the model would be
loaded for them), read from the stored texts' hashes only: what calibrate and eval check before their work."""
import numpy as np

from ranker.prefilter.embed import QUERY_PREFIX, Embedder, paper_text, query_key, text_hash
from ranker.records import Paper
from ranker.store import Store


def paper(pid, title, day="2025-05-15", version=1):
    return Paper(id=pid, title=title, abstract="An abstract.", authors=["X"], categories=["cs.LG"],
                 primary_category="cs.LG", date=day, version=version)


def unit(dim=768):
    return np.ones(dim, dtype=np.float32) / np.sqrt(dim)


def test_a_later_days_newer_text_of_a_stored_paper_is_not_served(tmp_path):
    """A paper of two days with another text on the later one (a new version): only the first text's hash was
    compared, so a store holding that text's vector passed, and the later day loaded the model. Every distinct
    text counts; the id is said once."""
    emb = Embedder("mpnet")
    old, new, other = paper("2505.00001", "Old title"), paper("2505.00001", "New title", version=2), \
        paper("2505.00002", "Another")
    with Store(tmp_path / "db.sqlite3") as st:
        st.put_embeddings([(p.id, text_hash(paper_text(p)), unit()) for p in (old, other)], emb.key)
        assert emb.unstored([old, other], st) == []
        assert emb.unstored([old, other, new], st) == ["2505.00001"]
        assert emb.unstored([new, old, other], st) == ["2505.00001"]
        assert emb.unstored([old, old, other], st) == []


def test_the_topic_queries_unstored_are_those_embed_queries_would_embed(tmp_path):
    """unstored_queries looks the queries up under the key embed_queries stores them by (query_key: the text's
    whitespace collapsed): a query served from the store is not counted, and embed_queries serves it without
    the model (mpnet, not prepared here, is never loaded)."""
    emb = Embedder("mpnet", models_dir=tmp_path)
    qid, text = query_key("  Graph   neural\nnetworks ")
    assert (qid, text) == (QUERY_PREFIX + text_hash("Graph neural networks"), "Graph neural networks")
    with Store(tmp_path / "db.sqlite3") as st:
        st.put_embeddings([(qid, text_hash(text), unit())], emb.key)
        assert emb.unstored_queries(["Graph neural networks", " Graph neural  networks"], st) == []
        assert emb.unstored_queries(["Graph neural networks", "Diffusion models"], st) == \
            [query_key("Diffusion models")[0]]
        v = emb.embed_queries(["Graph\tneural networks"], st)
        assert v.shape == (1, 768) and np.allclose(v[0], unit()) and emb._model is None
