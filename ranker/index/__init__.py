"""The FAISS corpus index: every paper vector the store holds, per embedder, persisted next to the database
(Store.index_dir/<embedder>/: faiss/ beside ranker.sqlite3, faiss-<file name>/ beside another), kept up to
date incrementally by the commands that embed, rebuilt from the store whenever it is missing, unreadable or
disagrees with it. Exact below 100,000 vectors, IVF-Flat above.

Library entry points:
  CorpusIndex(store, embedder).sync() / .rebuild() / .status() / .search(vectors, k)
  OpenIndexes().use(store, embedder)                                   indexes kept in memory by a server
  similar(store, "2506.16065" or "free text", k=10, since=None)        nearest papers, with days and titles
  earlier_neighbours(papers, store, k=5) / novelty_context(...)        nearest papers announced BEFORE each one
  find_reuploads(papers, vectors, index, store)                        the same paper again under a new id
  reupload_notes(ranked, store, model, prompt_hash)                    those, with the earlier paper's scores
  pick_similarity(vectors, past_pick_ids, store, embedder=..., k=5)     a nearest-neighbour signal for calibration
  past_pick_similarity(papers, picks_by_day, store, embedder=...)      the same, walk-forward (earlier days' picks)
  embed_corpus(papers, store, embedder)                                stream a snapshot into vectors + index
  index_day(...) / update_index(...)                                   the hooks the embedding commands call
Submodules: kinds (flat / IVF and the choice), files (manifest, segments, atomic writes), corpus, neighbours,
stream, allpairs (every paper's nearest at once, for the site, kept between builds).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Iterable, Sequence

import numpy as np

from ..errors import RankerError
from ..io import Warn
from .corpus import CorpusIndex, Hit, IndexStatus, SyncResult
from .neighbours import (REUPLOAD_COSINE, Neighbour, OpenIndexes, Reupload, SimilarResult, earlier_neighbours,
                         find_reuploads, index_for, novelty_context, open_index, past_pick_similarity,
                         pick_similarity, reupload_notes, similar)
from .stream import EmbedResult, embed_corpus

if TYPE_CHECKING:
    from ..records import Paper
    from ..store import Store

__all__ = ["CorpusIndex", "Hit", "IndexStatus", "SyncResult", "Neighbour", "Reupload", "SimilarResult",
           "REUPLOAD_COSINE", "similar", "earlier_neighbours", "novelty_context", "find_reuploads", "reupload_notes",
           "pick_similarity", "past_pick_similarity", "open_index", "OpenIndexes", "index_for", "embed_corpus",
           "EmbedResult", "index_day", "update_index", "index_statuses", "NOT_UPDATED"]

NOT_UPDATED = "index: not updated"  # how a failed update's line begins (a caller shows it even where it hides notes)


def _not_updated(e: BaseException, warn: Warn | None) -> None:
    if warn is not None:
        if isinstance(e, OSError) and e.strerror and e.filename:      # the file and what happened, no errno
            first = f"{e.filename}: {e.strerror}"
        else:
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        warn(f"{NOT_UPDATED} ({first}); the next command that embeds retries")


def _record_new(store: "Store", papers: "Iterable[Paper]") -> None:
    """Store the papers the store does not hold yet (their days and titles, for the neighbours' lines); a
    stored paper is never written over."""
    papers = list(papers)
    known = store.get_papers([p.id for p in papers])
    store.add_papers(p for p in papers if p.id not in known)


def update_index(store: "Store", embedder: str, papers: "Iterable[Paper] | None" = None, *,
                 warn: Warn | None = None, say_first_build: bool = True) -> SyncResult | None:
    """Record `papers` the store lacks (their days and titles) and bring the index up to the store's vectors.
    For the commands that embed: a failure to write the index is reported through `warn`, never raised (the
    index is derived data; the command's own work is done). `say_first_build`: whether `warn` also hears the
    first build of an index that was not there (see CorpusIndex)."""
    try:
        if papers is not None:
            _record_new(store, papers)
        return CorpusIndex(store, embedder, warn=warn, say_first_build=say_first_build).sync()
    except (OSError, RankerError, RuntimeError) as e:     # RuntimeError: what faiss raises
        _not_updated(e, warn)
        return None


def index_day(store: "Store", embedder: str, papers: "Sequence[Paper]", vectors: np.ndarray, *,
              warn: Warn | None = None) -> dict[str, Reupload]:
    """The prefilter's hook: record the day's papers the store lacks, sync the index, and return the re-uploads
    among them (paper id -> the earlier paper it repeats). `warn` hears a rebuild's one line (not the quiet
    first build of a new home) and a failure to write the index."""
    try:
        _record_new(store, papers)
        idx = CorpusIndex(store, embedder, warn=warn, say_first_build=False)
        idx.sync()
        return find_reuploads(papers, vectors, idx, store)
    except (OSError, RankerError, RuntimeError) as e:
        _not_updated(e, warn)
        return {}


def index_statuses(store: "Store", embedders: Sequence[str] = (), verify: bool = True,
                   warn: Warn | None = None) -> list[IndexStatus]:
    """The status of each named embedder's index, or of every embedder the store or the index folder has.
    `warn` hears of a wait for another process that holds an index's lock."""
    from ..prefilter.embed import QUERY_PREFIX
    from . import files
    names = list(embedders)
    if not names:
        names = store.paper_embedders(QUERY_PREFIX)
        root = store.index_dir
        for manifest in sorted(root.glob(f"*/{files.MANIFEST}")) if root.is_dir() else []:
            try:
                name = files.read_manifest(manifest.parent).embedder
            except files.IndexFileError:
                continue
            if name not in names:
                names.append(name)
    return [CorpusIndex(store, e, warn=warn).status(verify=verify) for e in names]
