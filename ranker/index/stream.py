"""A whole snapshot into the corpus: papers streamed, embedded a chunk at a time into the store, the index
brought up to date once at the end. Memory holds one chunk of papers and its vectors, whatever the input size;
vectors already stored (same embedder, same text) are not embedded again, so an interrupted run resumes."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterable

from ..records import Paper
from .corpus import CorpusIndex, SyncResult

if TYPE_CHECKING:
    from ..prefilter.embed import Embedder
    from ..store import Store

CHUNK = 2048


@dataclass
class EmbedResult:
    papers: int = 0          # papers read
    embedded: int = 0        # texts that went through the model (the rest were already stored)
    skipped: int = 0         # papers with neither title nor abstract
    sync: SyncResult | None = None


def embed_corpus(papers: Iterable[Paper], store: "Store", embedder: "Embedder", *, chunk: int = CHUNK,
                 progress: Callable[[int], None] | None = None,
                 warn: Callable[[str], None] | None = None) -> EmbedResult:
    """Embed every paper of `papers` (any iterable: read lazily) into the store, then sync the index."""
    from ..prefilter.embed import paper_text
    res = EmbedResult()
    buf: list[Paper] = []

    def flush() -> None:
        before = embedder.texts_encoded
        embedder.embed_papers(buf, store)          # stored as it goes, CHUNK texts a batch; the rows are dropped
        res.embedded += embedder.texts_encoded - before
        res.papers += len(buf)
        buf.clear()
        if progress is not None:
            progress(res.papers)

    for p in papers:
        if not paper_text(p):
            res.skipped += 1
            continue
        buf.append(p)
        if len(buf) >= chunk:
            flush()
    if buf:
        flush()
    res.sync = CorpusIndex(store, embedder.key, warn=warn).sync()
    return res
