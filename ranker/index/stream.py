"""A whole snapshot into the corpus: papers streamed, embedded a chunk at a time into the store, the index
brought up to date once at the end. Memory holds one chunk of papers and its vectors, whatever the input size;
vectors already stored (same embedder, same text) are not embedded again, so an interrupted run resumes."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable

from ..io import Progress, Warn
from ..records import Paper
from .corpus import SyncResult

if TYPE_CHECKING:
    from ..prefilter.embed import Embedder
    from ..store import Store

CHUNK = 2048


@dataclass
class EmbedResult:
    papers: int = 0          # papers read
    embedded: int = 0        # texts that went through the model (the rest were already stored)
    skipped: int = 0         # papers with neither title nor abstract
    sync: SyncResult | None = None       # None when the index could not be written (`warn` heard why)


def embed_corpus(papers: Iterable[Paper], store: "Store", embedder: "Embedder", *, chunk: int = CHUNK,
                 progress: Progress | None = None, warn: Warn | None = None) -> EmbedResult:
    """Embed every paper of `papers` (any iterable: read lazily) into the store, then sync the index.
    progress("embedding papers", papers read so far, None) hears of each chunk."""
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
            progress("embedding papers", res.papers, None)

    for p in papers:
        if not paper_text(p):
            res.skipped += 1
            continue
        buf.append(p)
        if len(buf) >= chunk:
            flush()
    if buf:
        flush()
    from . import update_index
    res.sync = update_index(store, embedder.key, warn=warn)    # None: the index could not be written (warned)
    return res
