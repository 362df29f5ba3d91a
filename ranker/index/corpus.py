"""CorpusIndex: every paper vector the store holds for one embedder, in a FAISS index kept on disk.

The index is derived data. `sync()` brings it up to the store: the vectors stored since the last sync are
appended as a new segment (a small file: no FAISS index is loaded or rewritten for a day's papers); more than
MAX_SEGMENTS segments are merged into one, and above APPROX_THRESHOLD vectors the segments are added to the
trained IVF lists once they hold more than TAIL_MIN vectors and TAIL_SHARE of the IVF's. Whenever the index is missing,
unreadable, built for another embedder, or disagrees with the store, it is rebuilt from the store and `sync()`
says why in one line (SyncResult.note; `warn` gets it too). A paper whose vector is stored again with new text
(a revised version embedded again) is no disagreement: its new row is appended like any other and its old row
marked dropped in the manifest, left out of every search, written out when segments are merged, and rebuilt
away once more than DROPPED_MIN rows (and DROPPED_SHARE of the index) are dropped.

Agreement with the store is checked cheaply on every sync, without reading vectors: the number of paper
vectors, the store's highest rowid, the row the index saw last, and a few sampled (id, text hash) pairs. A
full check (`status(verify=True)`) compares the digest of every (id, text hash) row and the files' checksums.
"""
from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import numpy as np

from ..errors import InputError, ModelError, RankerError
from ..io import Warn, counted, fs_name, read_regular
from ..prefilter.embed import QUERY_PREFIX, slug
from ..store import ASKED_READ_ONLY
from . import files as F
from . import kinds as K

if TYPE_CHECKING:
    from ..store import Store

# Topic/query vectors share the store's embeddings table with papers, under ids starting with QUERY_PREFIX
# (prefilter.embed); the index leaves them out.
MAX_SEGMENTS = 16               # more segments than this are merged
TAIL_MIN = 20_000               # an IVF index takes its segments in once they hold this many vectors ...
TAIL_SHARE = 0.05               # ... or this share of the base, whichever is more
N_PROBES = 8                    # sampled (id, text hash) pairs checked against the store on every sync
READ_BATCH = 20_000
# Rows of revised papers left in the files (Manifest.dropped) before the index is rebuilt without them: a search
# of the approximate base asks it for as many more candidates as it holds dropped rows.
DROPPED_MIN = 1000
DROPPED_SHARE = 0.01


@dataclass
class Hit:
    id: str
    score: float


@dataclass
class SyncResult:
    count: int = 0                      # vectors in the index afterwards
    added: int = 0                      # appended by this sync
    rebuilt: str | None = None          # why the index was rebuilt from the store, if it was
    merged: bool = False                # segments merged
    kind: str = "flat"
    seconds: float = 0.0

    @property
    def note(self) -> str | None:
        """The one line a caller shows, when there is something to say."""
        if self.rebuilt:
            how = "built" if self.rebuilt == F.NO_INDEX else "rebuilt"
            return (f"index {how} from the store ({self.rebuilt}): {counted(self.count, 'vector')}, "
                    f"{K.label(self.kind)}")
        return None


@dataclass
class IndexStatus:
    embedder: str
    directory: str
    exists: bool
    kind: str = ""
    vectors: int = 0
    store_vectors: int = 0
    size_bytes: int = 0
    built: float = 0.0
    updated: float = 0.0
    segments: int = 0
    tail: int = 0                        # the segments' rows searched (their dropped rows not counted)
    dropped: int = 0                     # rows of revised papers' old vectors left in the files, never searched
    nlist: int = 0
    nprobe: int = 0
    problem: str | None = None           # None: agrees with the store
    damaged: bool = False                # the problem is a file: missing, truncated, failing its checksum
    behind: int = 0                      # store vectors not yet added (the next sync adds them)


def waiting_line(directory) -> str:
    return f"index: waiting for another command using the corpus index in {directory}"


class _Rebuild(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class IndexNotWritten(RankerError):
    """The corpus index disagrees with the store (or is not there) and the store was opened to be read only
    (serve --read-only), so nothing is written beside it: the index stays as it is, unused."""


class CorpusIndex:
    """The persisted index of one embedder's paper vectors in one store."""

    def __init__(self, store: "Store", embedder: str, *, warn: Warn | None = None, say_first_build: bool = True,
                 waiting: Callable[[], None] | None = None):
        """warn hears the one line of a rebuild (and, with say_first_build, of the first build of an index
        that was not there: the daily pipeline keeps that one quiet, there is nothing wrong to say), and that
        of waiting for another process that holds the index's lock, unless `waiting` is given for that."""
        self.store = store
        self.embedder = embedder
        self.dir = store.index_dir / fs_name(slug(embedder))      # (a folder key's "ö": its UTF-8 bytes, any locale)
        self.warn = warn
        self.say_first_build = say_first_build
        self.waiting = waiting
        self.manifest: F.Manifest | None = None
        # (base IVF index | None, base ids, tail vectors (array), tail ids, the base's dropped rows)
        self._mem = None
        self._mem_files: tuple | None = None     # the manifest's files (and dropped rows) _mem was read from
        # (count, highest rowid) of the store's vectors an exact index built in memory holds (_build_in_memory)
        self._in_memory: tuple[int, int] | None = None

    def __len__(self) -> int:
        return self.manifest.count if self.manifest is not None else 0

    @property
    def kind(self) -> str:
        return self.manifest.kind if self.manifest is not None else ""

    def _wait(self) -> None:
        """Another process holds the index's lock (a rebuild, a merge, a status's full check): said once."""
        if self.waiting is not None:
            self.waiting()
        elif self.warn is not None:
            self.warn(waiting_line(self.dir))

    def _say(self, res: SyncResult) -> SyncResult:
        if res.rebuilt == F.NO_INDEX and not self.say_first_build:
            return res
        if res.note and self.warn is not None:
            self.warn(res.note)
        return res

    # ------------------------------------------------------------------ keeping up with the store
    def sync(self) -> SyncResult:
        """Bring the index up to the store's paper vectors (see the module's docstring)."""
        t0 = time.perf_counter()
        if self.store.read_only == ASKED_READ_ONLY:
            # a store opened to be read only (serve --read-only) has nothing written beside it either: the index
            # as it stands, when it is the store's
            try:
                res = self._as_it_stands(lambda reason: IndexNotWritten(
                    f"the corpus index needs writing ({reason}), and the database was opened read-only: nothing "
                    "is written beside it", where=str(self.dir)))
                self._in_memory = None
            except IndexNotWritten as e:
                res = self._build_in_memory(e)
        else:
            try:
                with F.locked(self.dir, exclusive=True, waiting=self._wait):
                    try:
                        m = F.read_manifest(self.dir)
                        if m.embedder != self.embedder:
                            raise _Rebuild(f"it was built for the embedder {m.embedder!r}")
                        if m.kind not in K.KINDS:
                            raise _Rebuild(f"unknown kind {m.kind!r}")
                        res = self._sync(m)
                    except F.IndexFileError as e:
                        res = self._rebuild(str(e))
                    except _Rebuild as e:
                        res = self._rebuild(e.reason)
            except OSError as e:
                if e.errno not in F.CANNOT_WRITE:
                    raise
                res = self._as_it_stands(lambda reason, e=e: OSError(
                    e.errno, f"{e.strerror}: the corpus index there needs writing ({reason})", str(self.dir)))
        if self._in_memory is None and (self.manifest is None or _mem_key(self.manifest) != self._mem_files):
            self._mem = None        # read again at the next search; an index that did not change stays loaded
        res.seconds = time.perf_counter() - t0
        return self._say(res)

    def _as_it_stands(self, error: Callable[[str], Exception]) -> SyncResult:
        """sync() in a folder it cannot write in (a read-only mount, another user's folder) or beside a store
        opened to be read only: the index as it stands when it agrees with the store and holds every stored
        vector, so a copy of a home on read-only media still answers; else error(why it needs writing)."""
        try:
            with F.locked(self.dir, exclusive=False, waiting=self._wait):
                m = F.read_manifest(self.dir)
            if m.embedder != self.embedder:
                raise _Rebuild(f"it was built for the embedder {m.embedder!r}")
            if m.kind not in K.KINDS:
                raise _Rebuild(f"unknown kind {m.kind!r}")
            with self.store.read_snapshot():
                count, top = self.store.paper_vector_stats(self.embedder, QUERY_PREFIX)
                self._check(m, count, top)
                behind = self._count_new(m.max_rowid)
            if behind:
                raise _Rebuild(f"{counted(behind, 'vector')} stored since it was last updated")
        except (F.IndexFileError, _Rebuild) as why:
            raise error(getattr(why, "reason", None) or str(why)) from None
        self.manifest = m
        return SyncResult(count=m.count, kind=m.kind)

    def _build_in_memory(self, why: IndexNotWritten) -> SyncResult:
        """sync() beside a store opened to be read only whose index on disk is missing or behind: below
        APPROX_THRESHOLD vectors, the exact index is built in memory from the store (what loading it from its
        files costs: every vector, read once) and nothing is written; kept while the store's vectors do not
        change. Above it (the approximate kind is trained), `why` is raised."""
        st = self.store
        with st.read_snapshot():
            count, top = st.paper_vector_stats(self.embedder, QUERY_PREFIX)
            if count >= K.APPROX_THRESHOLD:
                self._in_memory = None
                raise why
            if self._in_memory == (count, top) and self._mem is not None:
                return SyncResult(count=self.manifest.count, kind="flat")
            m = F.Manifest(embedder=self.embedder, dim=0, kind="flat", built=time.time())
            ids: list[str] = []
            parts: list[np.ndarray] = []
            for rows in st.paper_vector_rows(self.embedder, QUERY_PREFIX, batch=READ_BATCH):
                if m.dim == 0:
                    m.dim = len(rows[0][3]) // 4
                parts.append(_vectors(rows, m.dim, self.embedder))
                ids += [r[1] for r in rows]
        m.count, m.max_rowid = len(ids), top
        tail = np.concatenate(parts) if parts else np.zeros((0, m.dim), np.float32)
        self.manifest = m
        self._mem, self._mem_files, self._in_memory = (None, [], tail, ids, frozenset()), None, (count, top)
        return SyncResult(count=m.count, kind="flat")

    def rebuild(self, reason: str = "asked to") -> SyncResult:
        t0 = time.perf_counter()
        with F.locked(self.dir, exclusive=True, waiting=self._wait):
            res = self._rebuild(reason)
        self._mem = None
        res.seconds = time.perf_counter() - t0
        return self._say(res)

    def _check(self, m: F.Manifest, count: int, top: int) -> None:
        """Raise _Rebuild when the index cannot be the store's (cheap: no vector is read)."""
        st = self.store
        if top < m.max_rowid:
            raise _Rebuild(f"the store's rows were renumbered or replaced (highest rowid {top}, the index saw "
                           f"{m.max_rowid}): another database, or a VACUUM")
        checks = list(m.probes)
        if m.anchor:
            rowid, pid, th = m.anchor
            row = st.embedding_at(int(rowid))
            if row is not None and row[:2] != (self.embedder, pid):
                # a row that moves (stored again) leaves its rowid empty; another paper there means the rows
                # were renumbered: the rows above the rowid the index saw last are not the ones it lacks
                raise _Rebuild(f"the store's rows were renumbered or replaced (row {rowid} is no longer "
                               f"{pid}): another database, or a VACUUM")
            if row != (self.embedder, pid, th):
                checks.append([pid, th])
        if checks:
            have = st.embedding_hashes([c[0] for c in checks], self.embedder)
            since = None
            for pid, th in checks:
                if pid not in have:
                    raise _Rebuild(f"{pid} is in the index but no longer in the store")
                if have[pid] != th:
                    # a revised paper's vector stored again since the last sync (a row above the highest it saw):
                    # the sync replaces it; changed in place, the store is not the one the index was built on
                    if since is None:
                        since = {r[1] for rows in st.paper_vector_rows(self.embedder, QUERY_PREFIX, vectors=False,
                                                                       after_rowid=m.max_rowid) for r in rows}
                    if pid not in since:
                        raise _Rebuild(f"the stored vector of {pid} changed (its text was edited)")
        if count < m.count:
            raise _Rebuild(f"the store holds {count:,} vectors, fewer than the index's {m.count:,}")

    def _sync(self, m: F.Manifest) -> SyncResult:
        st = self.store
        with st.read_snapshot():
            count, top = st.paper_vector_stats(self.embedder, QUERY_PREFIX)
            self._check(m, count, top)
            if count == m.count and top == m.max_rowid:
                return self._maybe_merge(m, SyncResult(count=m.count, kind=m.kind))
            changed: dict[str, tuple[int, str, str]] = {}      # id -> (its row, the old text hash, the new)
            n_new = self._count_new(m.max_rowid)
            if count != m.count + n_new:
                # some new rows re-store a vector the index holds (a revised version's, or the same text's: the
                # store's vector of a paper embedded again, as one that was not finite is, is the one to hold),
                # or rows were removed: look at the ids
                known = {pid: (pos, th) for pos, pid, th in self._live_rows(m)}
                for rows in st.paper_vector_rows(self.embedder, QUERY_PREFIX, after_rowid=m.max_rowid,
                                                 vectors=False):
                    for _, pid, th, _ in rows:
                        if pid in known:
                            pos, old = known[pid]
                            changed[pid] = (pos, old, th)     # the new row is added, the old one dropped
                if count != m.count + n_new - len(changed):
                    gone = m.count + n_new - len(changed) - count
                    raise _Rebuild(f"{gone:,} vectors were removed from the store")
            if changed:
                _drop(m, changed)
            added = self._append(m, top)
        if m.kind == "flat" and m.count >= K.APPROX_THRESHOLD:
            return self._rebuild(f"the corpus reached {K.APPROX_THRESHOLD:,} vectors: switching to the "
                                 "approximate IVF index")
        if len(m.dropped) > max(DROPPED_MIN, DROPPED_SHARE * m.count):
            return self._rebuild(f"{len(m.dropped):,} vectors of revised papers were replaced: leaving out "
                                 "their old ones")
        if m.base is not None and m.count >= K.RETRAIN_GROWTH * m.base.trained_on:
            return self._rebuild(f"the corpus grew {K.RETRAIN_GROWTH}x since the IVF was trained on "
                                 f"{m.base.trained_on:,} vectors: retraining")
        return self._maybe_merge(m, SyncResult(count=m.count, added=added, kind=m.kind))

    def _count_new(self, after: int) -> int:
        n = 0
        for rows in self.store.paper_vector_rows(self.embedder, QUERY_PREFIX, after_rowid=after, vectors=False):
            n += len(rows)
        return n

    def _append(self, m: F.Manifest, top: int) -> int:
        """Stream the rows above m.max_rowid into a new segment; write the manifest."""
        writer = None
        added, digest, last = 0, 0, None
        try:
            for rows in self.store.paper_vector_rows(self.embedder, QUERY_PREFIX, after_rowid=m.max_rowid,
                                                     batch=READ_BATCH):
                if m.dim == 0:                     # the first vectors of an index built on an empty store
                    m.dim = len(rows[0][3]) // 4
                vecs = _vectors(rows, m.dim, self.embedder)
                if writer is None:
                    writer = F.SegmentWriter(self.dir, m.dim)
                writer.add([r[1] for r in rows], [r[2] for r in rows], vecs)
                digest += F.digest_of((r[1], r[2]) for r in rows)
                _refresh_probes(m.probes, rows, m.count + added)
                added += len(rows)
                last = rows[-1]
            if writer is not None:
                m.segments.append(writer.close())
                writer = None
        except BaseException:
            if writer is not None:
                writer.discard()
            raise
        m.count += added
        m.digest = (m.digest + digest) % (1 << 64)
        m.max_rowid = top
        if last is not None:
            m.anchor = [last[0], last[1], last[2]]
        F.write_manifest(self.dir, m)
        self.manifest = m
        return added

    def _maybe_merge(self, m: F.Manifest, res: SyncResult) -> SyncResult:
        self.manifest = m
        if m.base is not None and m.tail_count > max(TAIL_MIN, int(TAIL_SHARE * m.base.count)):
            self._merge_into_base(m)
            res.merged = True
        elif len(m.segments) > MAX_SEGMENTS:
            # many small segments (an IVF's too): merged into one, which costs the tail's size, not the IVF's
            # (adding them to its lists reads and rewrites the whole IVF file)
            self._merge_segments(m)
            res.merged = True
        return res

    def _merge_segments(self, m: F.Manifest) -> None:
        writer = F.SegmentWriter(self.dir, m.dim)
        try:
            for seg, keep in self._kept_segment_rows(m):
                ids, hashes = F.read_ids(self.dir, seg.ids, seg.count)
                writer.add([ids[j] for j in keep], [hashes[j] for j in keep],
                           F.read_segment_vectors(self.dir, seg, m.dim)[keep])
            m.segments = [writer.close()]
        except BaseException:
            writer.discard()
            raise
        m.dropped = [p for p in m.dropped if p < m.base_count]
        F.write_manifest(self.dir, m)

    def _kept_segment_rows(self, m: F.Manifest):
        """(segment, its rows not dropped) for each segment, in order."""
        dropped = set(m.dropped)
        at = m.base_count
        for seg in m.segments:
            yield seg, [j for j in range(seg.count) if at + j not in dropped]
            at += seg.count

    def _merge_into_base(self, m: F.Manifest) -> None:
        """Add the segments' vectors to the trained IVF lists (an incremental add, no retraining)."""
        base = m.base
        # checked against its CRC: the lists are written into a new file, which must not carry a damaged one
        index = self._read_base(base.index, crc=True)
        stem = F.new_name("base", "")
        ids = F.StreamFile(self.dir, stem + ".ids")
        try:
            ids.write(read_regular(F.check_file(self.dir, base.ids, crc=True)))
            for seg, keep in self._kept_segment_rows(m):
                index.add(K.for_faiss(F.read_segment_vectors(self.dir, seg, m.dim)[keep]))
                seg_ids, hashes = F.read_ids(self.dir, seg.ids, seg.count)
                ids.write(F.id_lines([seg_ids[j] for j in keep], [hashes[j] for j in keep]))
            idref = ids.close()
        except BaseException:
            ids.discard()
            raise
        m.base = self._write_base(index, stem, idref, base.nlist, base.nprobe, base.trained_on)
        m.dropped = [p for p in m.dropped if p < base.count]          # the segments' were left out above
        m.segments = []
        F.write_manifest(self.dir, m)

    def _write_base(self, index, stem: str, ids: F.FileRef, nlist: int, nprobe: int, trained_on: int) -> F.Base:
        """Write the IVF index beside its already written ids file; fsynced, with its size and CRC.

        Streamed through a StreamFile rather than written by FAISS to a path: FAISS's own writer ignores an
        error when it closes the file, so a full disk met by its last buffered bytes left a short file whose
        (short) size and CRC the new manifest recorded over the old, whole index."""
        out = F.StreamFile(self.dir, stem + ".faiss")
        try:
            K.write_index(index, out.write)
            ref = out.close()
        except BaseException:
            out.discard()
            try:
                (self.dir / ids.name).unlink()
            except OSError:
                pass
            raise
        return F.Base(index=ref, ids=ids, count=int(index.ntotal), nlist=nlist, nprobe=nprobe,
                      trained_on=trained_on)

    # ------------------------------------------------------------------ rebuilding
    def _rebuild(self, reason: str) -> SyncResult:
        st = self.store
        with st.read_snapshot():
            count, top = st.paper_vector_stats(self.embedder, QUERY_PREFIX)
            kind = K.kind_for(count)
            dim = self._store_dim()
            m = F.Manifest(embedder=self.embedder, dim=dim, kind=kind, built=time.time())
            if kind == "flat":
                self._append(m, top)       # every row: one segment; writes the manifest
            else:
                self._build_ivf(m, count, top)
        self.manifest = m
        return SyncResult(count=m.count, rebuilt=reason, kind=m.kind)

    def _store_dim(self) -> int:
        for rows in self.store.paper_vector_rows(self.embedder, QUERY_PREFIX, batch=1):
            return len(rows[0][3]) // 4
        return 0

    def _build_ivf(self, m: F.Manifest, count: int, top: int) -> None:
        """Train on a sample spread over the store, then stream every row into the lists (and the ids file)."""
        st = self.store
        nlist = K.nlist_for(count)
        n_train = min(count, K.TRAIN_PER_LIST * nlist)
        every = max(1, count // n_train)        # rowid % every: a sample spread over the whole corpus
        sample = [_vectors(rows, m.dim, self.embedder)
                  for rows in st.paper_vector_rows(self.embedder, QUERY_PREFIX, every=every, batch=READ_BATCH)]
        index = K.train_ivf(np.concatenate(sample), nlist)
        del sample
        stem = F.new_name("base", "")
        ids = F.StreamFile(self.dir, stem + ".ids")
        n, digest, last = 0, 0, None
        try:
            for rows in st.paper_vector_rows(self.embedder, QUERY_PREFIX, batch=READ_BATCH):
                index.add(K.for_faiss(_vectors(rows, m.dim, self.embedder)))
                ids.write(F.id_lines((r[1] for r in rows), (r[2] for r in rows)))
                digest += F.digest_of((r[1], r[2]) for r in rows)
                _refresh_probes(m.probes, rows, n)
                n += len(rows)
                last = rows[-1]
            idref = ids.close()
        except BaseException:
            ids.discard()
            raise
        m.base = self._write_base(index, stem, idref, nlist, int(index.nprobe), n)
        m.count = n
        m.max_rowid = top
        m.digest = digest % (1 << 64)
        m.anchor = [last[0], last[1], last[2]] if last else None
        F.write_manifest(self.dir, m)

    # ------------------------------------------------------------------ reading
    def _live_rows(self, m: F.Manifest) -> list[tuple[int, str, str]]:
        """(position, id, text hash) of every row not dropped, in index order."""
        ids: list[str] = []
        hashes: list[str] = []
        if m.base is not None:
            a, b = F.read_ids(self.dir, m.base.ids, m.base.count)
            ids += a
            hashes += b
        for seg in m.segments:
            a, b = F.read_ids(self.dir, seg.ids, seg.count)
            ids += a
            hashes += b
        dropped = set(m.dropped)
        return [(pos, pid, th) for pos, (pid, th) in enumerate(zip(ids, hashes)) if pos not in dropped]

    def ids(self) -> list[str]:
        """Every indexed paper id, in index order (base first, then the segments)."""
        if self.manifest is None:
            self.sync()
        if self._in_memory is not None and self._mem is not None:
            return list(self._mem[3])
        with F.locked(self.dir, exclusive=False, waiting=self._wait):
            return [pid for _, pid, _ in self._live_rows(self.manifest)]

    def load(self) -> None:
        """Read the index into memory for searching (sync first: the index then holds every stored vector).
        A file that turns out unreadable rebuilds the index from the store."""
        if self.manifest is None:
            self.sync()
        if self._in_memory is not None and self._mem is not None:       # built in memory: no files to read
            return
        try:
            self._load()
        except F.IndexFileError as e:
            self.rebuild(str(e))
            self._load()

    def _load(self) -> None:
        with F.locked(self.dir, exclusive=False, waiting=self._wait):
            m = F.read_manifest(self.dir)            # the newest: another process may have synced since
            if m.embedder != self.embedder:
                raise F.IndexFileError(f"it was built for the embedder {m.embedder!r}")
            self.manifest = m
            base, base_ids = None, []
            if m.base is not None:
                # mapped, not read: the lists a query probes are paged in as it needs them
                base = self._read_base(m.base.index, crc=False, mmap=True)
                if base.ntotal != m.base.count or base.d != m.dim:
                    raise F.IndexFileError(f"{m.base.index.name} holds {base.ntotal} vectors of {base.d} "
                                           f"dimensions, its manifest says {m.base.count} of {m.dim}")
                base.nprobe = m.base.nprobe
                base_ids = F.read_id_column(self.dir, m.base.ids, m.base.count, crc=False)
            tail = F.read_segments_into(self.dir, m.segments, m.dim)
            tail_ids: list[str] = []
            for seg in m.segments:
                col = F.read_id_column(self.dir, seg.ids, seg.count, crc=True)
                tail_ids += [col[i] for i in range(len(col))]
        nb = m.base_count
        gone = [p - nb for p in m.dropped if p >= nb]          # revised papers' old rows: out of memory
        if gone:
            tail = np.delete(tail, gone, axis=0)
            out = set(gone)
            tail_ids = [pid for j, pid in enumerate(tail_ids) if j not in out]
        self._mem = (base, base_ids, tail, tail_ids, frozenset(p for p in m.dropped if p < nb))
        self._mem_files = _mem_key(m)

    def _read_base(self, ref: F.FileRef, *, crc: bool, mmap: bool = False):
        """The approximate index's FAISS file (only that kind needs FAISS); IndexFileError when it is unreadable."""
        fa = K.faiss()
        path = F.check_file(self.dir, ref, crc=crc)
        try:
            return fa.read_index(str(path), fa.IO_FLAG_MMAP) if mmap else fa.read_index(str(path))
        except RuntimeError as e:
            raise F.IndexFileError(f"{ref.name} is unreadable ({str(e).strip().splitlines()[-1][:120]})") from None

    def _query(self, queries: np.ndarray, in_base, in_tail) -> tuple[np.ndarray, list]:
        """The queries as float32 rows (loading the index if need be), and [(what in_base(index, q, how many of
        its rows are dropped) or in_tail(array, q) found, the ids of its rows, the rows to leave out)] for the
        approximate base and the recent segments."""
        q = K.f32(queries)
        if self._mem is None:
            self.load()
        if len(self) and q.shape[1] != self.manifest.dim:
            raise InputError(f"query vectors have {q.shape[1]} dimensions, the index {self.manifest.dim}",
                             where=str(self.dir))
        base, base_ids, tail, tail_ids, dropped = self._mem
        parts = []
        if len(self) and base is not None:
            parts.append((in_base(base, q, len(dropped)), base_ids, dropped))
        if len(self) and len(tail):
            parts.append((in_tail(tail, q), tail_ids, frozenset()))
        return q, parts

    def search(self, queries: np.ndarray, k: int = 10) -> list[list[Hit]]:
        """For each query vector, the k most similar indexed papers, best first (cosine). A vector that is not
        finite (a damaged stored one) is never a hit, and a query that is not finite has none."""
        q, parts = self._query(queries, lambda ix, q, dropped: K.search(ix, q, k + dropped),
                               lambda a, q: K.flat_topk(a, q, k))
        ok = K.finite_rows(q)
        return [_merge(parts, i, k) if ok[i] else [] for i in range(len(q))]

    def exact_rows(self) -> tuple[np.ndarray, list[str]] | None:
        """(vectors, ids) of every row the exact kind searches, in the order search numbers them; None for the
        approximate kind. For searches of every paper at once (allpairs)."""
        if self._mem is None:
            self.load()
        if self.manifest.kind != "flat" or self._mem[0] is not None:
            return None
        return self._mem[2], list(self._mem[3])

    def within(self, queries: np.ndarray, min_score: float) -> list[list[Hit]]:
        """For each query vector, every indexed paper at cosine >= min_score, best first (exact over the recent
        segments, the probed lists of the approximate index)."""
        q, parts = self._query(queries, lambda ix, q, _: K.ivf_range(ix, q, min_score),
                               lambda a, q: K.flat_range(a, q, min_score))
        out = []
        ok = K.finite_rows(q)
        for i in range(len(q)):
            hits = [Hit(ids[r], float(s)) for found, ids, dropped in parts for s, r in zip(*found[i])
                    if r not in dropped and ok[i]]
            hits.sort(key=lambda h: -h.score)
            out.append(hits)
        return out

    # ------------------------------------------------------------------ status
    def status(self, verify: bool = True) -> IndexStatus:
        """What the index holds and whether it agrees with the store; changes nothing. verify=True also
        compares the digest of every stored (id, text hash) and the files' checksums (reads no vector).
        Under the readers' lock: a writer replacing files meanwhile would make a whole index look damaged."""
        st = IndexStatus(embedder=self.embedder, directory=str(self.dir), exists=False)
        store = self.store
        with F.locked(self.dir, exclusive=False, waiting=self._wait), store.read_snapshot():
            count, top = store.paper_vector_stats(self.embedder, QUERY_PREFIX)
            st.store_vectors = count
            try:
                m = F.read_manifest(self.dir)
            except F.IndexFileError as e:
                # no manifest (none yet, a link to nothing, a file where the folder goes) is no index; one unreadable
                # (a FIFO, a device, a folder, a link to one), damaged
                st.problem, st.damaged = str(e), os.path.exists(self.dir / F.MANIFEST)
                return st
            st.exists = True
            st.kind, st.vectors, st.built, st.updated = m.kind, m.count, m.built, m.updated
            # the segments' dropped rows (a revised paper's old vector) are not vectors it searches: counted apart
            st.segments, st.dropped = len(m.segments), len(m.dropped)
            st.tail = m.tail_count - sum(1 for p in m.dropped if p >= m.base_count)
            if m.base is not None:
                st.nlist, st.nprobe = m.base.nlist, m.base.nprobe
            st.size_bytes = F.folder_size(self.dir)
            try:
                if m.embedder != self.embedder:
                    raise _Rebuild(f"it was built for the embedder {m.embedder!r}")
                self._check(m, count, top)
                st.behind = self._count_new(m.max_rowid)
                if verify:
                    for ref in m.files():
                        F.check_file(self.dir, ref, crc=True)
                    if not st.behind:          # rows not synced yet would differ: the next sync adds them
                        pairs = ((r[1], r[2]) for rows in store.paper_vector_rows(
                            self.embedder, QUERY_PREFIX, vectors=False) for r in rows)
                        if F.digest_of(pairs) != m.digest:
                            raise _Rebuild("the digest of the store's (id, text hash) rows differs from the "
                                           "index's")
            except (_Rebuild, F.IndexFileError) as e:
                st.problem = getattr(e, "reason", None) or str(e)
                st.damaged = isinstance(e, F.IndexFileError)
        return st


def _mem_key(m: F.Manifest) -> tuple:
    return m.files(), tuple(m.dropped)


def _drop(m: F.Manifest, changed: dict[str, tuple[int, str, str]]) -> None:
    """Mark the rows of papers whose vector was stored again with new text as dropped (`changed`: id -> (row,
    old hash, new hash)); the new rows are appended by the same sync."""
    m.dropped = sorted(set(m.dropped) | {pos for pos, _, _ in changed.values()})
    m.count -= len(changed)
    m.digest = (m.digest - F.digest_of((pid, old) for pid, (_, old, _) in changed.items())) % (1 << 64)
    for probe in m.probes:
        if probe[0] in changed:
            probe[1] = changed[probe[0]][2]


def _merge(parts, i: int, k: int) -> list[Hit]:
    hits = [Hit(ids[r], float(s)) for (scores, rows), ids, dropped in parts for s, r in zip(scores[i], rows[i])
            if r >= 0 and r not in dropped and np.isfinite(s)]
    hits.sort(key=lambda h: -h.score)
    return hits[:k]


def _vectors(rows, dim: int, embedder: str) -> np.ndarray:
    blobs = [r[3] for r in rows]
    if any(len(b) != dim * 4 for b in blobs):
        sizes = sorted({len(b) // 4 for b in blobs} | {dim})
        raise ModelError(f"the store holds vectors of several sizes {sizes} for embedder '{embedder}'; the model "
                         "at that name changed", where=embedder)
    return np.frombuffer(b"".join(blobs), dtype="<f4").reshape(len(rows), dim)


def _refresh_probes(probes: list, rows, before: int) -> None:
    """Keep `probes` a uniform sample (reservoir) of N_PROBES (id, text hash) pairs over every indexed row;
    `before` is how many rows were indexed before `rows`."""
    rng = random.Random(before)
    for j, r in enumerate(rows):
        if len(probes) < N_PROBES:
            probes.append([r[1], r[2]])
        else:
            slot = rng.randrange(before + j + 1)
            if slot < N_PROBES:
                probes[slot] = [r[1], r[2]]
