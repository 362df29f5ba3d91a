"""The index's files on disk: a manifest naming everything else, written last and atomically.

One folder per embedder (Store.index_dir/<embedder slug>/, i.e. faiss/ or faiss-<database file name>/ beside it):
  manifest.json          what the index is: embedder, dim, kind, counts, the store position it reflects, and
                         the names, sizes and CRC-32s of the files below
  seg-<token>.f32 / .ids segments of recently added vectors: raw float32 rows / "id<TAB>text hash" lines
  base-<token>.faiss/.ids the approximate (IVF) index and its row ids, once the corpus is large
  .lock                  flock: one writer at a time; readers share

Every data file gets a fresh name, is written in pieces (its size and CRC-32 counted on the way) and fsynced
before the manifest that names it replaces the old one. The manifest is written by io.atomic_write (temp file,
fsync, rename, fsync of the folder); the data files need no rename, as no reader looks at a file before a
manifest names it. A process killed at any moment therefore leaves the old manifest naming old, complete
files, or the new manifest naming new, complete files; files no manifest names (a killed writer's pieces, the
files an update replaced) are removed by the next writer, which holds the folder's lock.
"""
from __future__ import annotations

import errno
import json
import os
import secrets
import time
import zlib
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from ..io import lock_waiting, open_lock_file, read_regular, special_kind

FORMAT = 1
MANIFEST = "manifest.json"
NO_INDEX = "there was no index yet"


class IndexFileError(Exception):
    """An index file is missing, truncated or not what the manifest says (the index is rebuilt)."""


@dataclass
class FileRef:
    name: str
    size: int
    crc: int


@dataclass
class Segment:
    vectors: FileRef
    ids: FileRef
    count: int


@dataclass
class Base:
    index: FileRef
    ids: FileRef
    count: int
    nlist: int
    nprobe: int
    trained_on: int


@dataclass
class Manifest:
    embedder: str
    dim: int
    kind: str                                  # "flat" | "ivf"
    count: int = 0
    digest: int = 0                            # sum of row_digest(id, text hash) over the rows, mod 2**64
    max_rowid: int = 0                         # the store's highest embeddings rowid when last synced
    anchor: list | None = None                 # [rowid, id, text hash] of the highest indexed row
    probes: list[list[str]] = field(default_factory=list)   # a few [id, text hash] to check against the store
    base: Base | None = None
    segments: list[Segment] = field(default_factory=list)
    # rows (positions over the base, then the segments in order) whose paper's vector was stored again with new
    # text (a revised version): left out of every search, dropped from the files when segments are merged, and
    # from the approximate base at its next rebuild; `count` and `digest` are the other rows'
    dropped: list[int] = field(default_factory=list)
    built: float = 0.0                         # when it was last rebuilt from the store (unix time)
    updated: float = 0.0
    format: int = FORMAT

    @property
    def tail_count(self) -> int:
        return sum(s.count for s in self.segments)

    @property
    def base_count(self) -> int:
        """Rows of the approximate base: the first positions."""
        return self.base.count if self.base is not None else 0

    def files(self) -> list[FileRef]:
        out = [f for s in self.segments for f in (s.vectors, s.ids)]
        if self.base is not None:
            out += [self.base.index, self.base.ids]
        return out

    def to_json(self) -> str:
        d = asdict(self)
        if not d["dropped"]:      # as before the field was added: an older ranker sharing the home reads it
            del d["dropped"]
        return json.dumps(d, indent=1)

    @classmethod
    def from_json(cls, text: str) -> "Manifest":
        d = json.loads(text)
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise IndexFileError(f"manifest format {d.get('format') if isinstance(d, dict) else '?'} is not "
                                 f"{FORMAT}")
        try:
            base = d.pop("base", None)
            segs = d.pop("segments", [])
            m = cls(**d)
            m.base = None if base is None else Base(**{**base, "index": FileRef(**base["index"]),
                                                       "ids": FileRef(**base["ids"])})
            m.segments = [Segment(vectors=FileRef(**s["vectors"]), ids=FileRef(**s["ids"]), count=s["count"])
                          for s in segs]
        except (TypeError, KeyError) as e:
            raise IndexFileError(f"manifest fields are not as expected ({e})") from None
        return m


def row_digest(paper_id: str, text_hash: str) -> int:
    """A 64-bit number per (id, text hash); the manifest keeps their sum, so adding rows updates it."""
    import hashlib
    return int.from_bytes(hashlib.blake2b(f"{paper_id}\0{text_hash}".encode(), digest_size=8).digest(), "little")


def digest_of(pairs) -> int:
    total = 0
    for pid, th in pairs:
        total += row_digest(pid, th)
    return total % (1 << 64)


# --------------------------------------------------------------------------- the folder
def id_lines(ids, hashes) -> bytes:
    """An ids file's lines for these rows: "<paper id>\t<text hash>\n" each (read_ids reads them)."""
    return "".join(f"{i}\t{h}\n" for i, h in zip(ids, hashes)).encode("utf-8")


def new_name(stem: str, suffix: str) -> str:
    return f"{stem}-{time.time_ns():x}{secrets.token_hex(3)}{suffix}"


def _file_in_the_way(directory: Path) -> Path | None:
    """The folder itself or the nearest of its parents that is a file, if one is."""
    return next((p for p in (directory, *directory.parents) if p.exists() and not p.is_dir()), None)


def make_folder(directory: Path) -> None:
    """Make the index's folder and its parents; a file in the way is an error naming that file (mkdir would
    name the folder it was making, which the user will not find)."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocker = _file_in_the_way(directory)
        if blocker is None:
            raise
        raise NotADirectoryError(errno.ENOTDIR, "is a file, not a folder: the corpus index is kept there",
                                 str(blocker)) from None


# What opening a file for writing raises in a folder this process cannot write in: a read-only mount, another
# user's folder.
CANNOT_WRITE = frozenset({errno.EROFS, errno.EACCES, errno.EPERM})


@contextmanager
def locked(directory: Path, exclusive: bool, waiting: Callable[[], None] | None = None) -> Iterator[None]:
    """flock on <directory>/.lock: one writer at a time, readers share (no-op where flock does not exist).
    `waiting` is called once when another process holds the lock, before this one waits for it (a rebuild of a
    large index takes a minute: a command waiting on it in silence looks hung).
    The writer makes the folder and the lock file; a reader opens the lock file for reading only, and reads
    without it where it cannot (no index yet, a lock file it may not read): no data file is changed in place
    and the manifest is replaced atomically, so a reader never sees a torn index either way."""
    try:
        import fcntl
    except ImportError:          # not POSIX: the atomic manifest still keeps every reader safe
        if exclusive:
            make_folder(directory)
        yield
        return
    # opened without waiting (open_lock_file): a FIFO in the lock file's place was opened for reading as a pipe,
    # and every reader of the index waited for a writer for good
    if exclusive:
        make_folder(directory)
        fd = open_lock_file(directory / ".lock")
    else:
        try:
            fd = open_lock_file(directory / ".lock", write=False)
        except OSError:
            fd = None
    if fd is None:
        yield
        return
    try:
        lock_waiting(fd, waiting or (lambda: None), shared=not exclusive)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def read_manifest(directory: Path) -> Manifest:
    """The index's manifest; a FIFO or device in its place is not read (its read waited for a writer for good):
    an unreadable manifest, which the next sync replaces."""
    path = directory / MANIFEST
    try:
        text = read_regular(path).decode("utf-8")
    except FileNotFoundError:
        raise IndexFileError(NO_INDEX) from None
    except NotADirectoryError as e:
        blocker = _file_in_the_way(directory)
        raise IndexFileError(f"{blocker} is a file, not a folder" if blocker else
                             f"its manifest is unreadable ({e})") from None
    except (OSError, UnicodeDecodeError) as e:
        raise IndexFileError(f"its manifest is unreadable ({e})") from None
    try:
        return Manifest.from_json(text)
    except json.JSONDecodeError as e:
        raise IndexFileError(f"its manifest is not valid JSON ({e.msg})") from None


def write_manifest(directory: Path, m: Manifest) -> None:
    """Replace the manifest atomically, then remove every file it does not name."""
    from ..io import atomic_write
    m.updated = time.time()
    atomic_write(directory / MANIFEST, m.to_json(), own_name=True)
    keep = {f.name for f in m.files()} | {MANIFEST, ".lock"}
    for p in directory.iterdir():
        if p.name not in keep:
            try:
                p.unlink()
            except OSError:
                pass


def check_file(directory: Path, ref: FileRef, *, crc: bool) -> Path:
    """The path of a data file the manifest names, as the manifest says it is: a FIFO, socket or device in its
    place is damage, not opened (a FIFO has size 0, as an empty segment's files do, and its read waited for a
    writer for good)."""
    path = directory / ref.name
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise IndexFileError(f"{ref.name} is missing") from None
    if not path.is_file():
        raise IndexFileError(f"{ref.name} is {special_kind(path) or 'a folder'}, not a file")
    if size != ref.size:
        raise IndexFileError(f"{ref.name} holds {size} bytes, its manifest says {ref.size}")
    if crc and file_crc(path) != ref.crc:
        raise IndexFileError(f"{ref.name} does not match its checksum")
    return path


def file_crc(path: Path) -> int:
    crc = 0
    with open(path, "rb") as fh:
        while True:
            block = fh.read(1 << 22)
            if not block:
                return crc
            crc = zlib.crc32(block, crc)


# --------------------------------------------------------------------------- writing data files
class StreamFile:
    """A new data file written in pieces, its size and CRC-32 counted as it goes, fsynced on close."""

    def __init__(self, directory: Path, name: str):
        self.name = name
        self.path = directory / self.name
        self._fh = open(self.path, "wb")
        self.size = 0
        self.crc = 0

    def write(self, data: bytes) -> None:
        try:
            self._fh.write(data)
        except OSError as e:
            raise self._named(e) from None
        self.size += len(data)
        self.crc = zlib.crc32(data, self.crc)

    def close(self) -> FileRef:
        try:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
        except OSError as e:
            raise self._named(e) from None
        return FileRef(self.name, self.size, self.crc)

    def _named(self, e: OSError) -> OSError:
        """A write's error (a full disk) with this file's path: write() and fsync() name none, and the line
        the user sees must say where (the index's folder may be on another disk than the database)."""
        return e if e.filename is not None else OSError(e.errno, e.strerror, str(self.path))

    def discard(self) -> None:
        try:
            self._fh.close()
        except OSError:         # its buffered bytes cannot be written (the full disk that stopped it): no matter
            pass
        try:
            self.path.unlink()
        except OSError:
            pass


class SegmentWriter:
    """Rows (id, text hash, vector) streamed into a new segment: raw float32 rows + one id line each."""

    def __init__(self, directory: Path, dim: int):
        self.dim = dim
        self.count = 0
        stem = new_name("seg", "")
        self._vec = StreamFile(directory, stem + ".f32")
        try:
            self._ids = StreamFile(directory, stem + ".ids")
        except BaseException:
            # (no inode left, no descriptor left): the first closed and removed, not left open to the error's
            # frames and on disk until the next writer
            self._vec.discard()
            raise

    def add(self, ids: list[str], hashes: list[str], vectors: np.ndarray) -> None:
        vectors = np.ascontiguousarray(vectors, dtype="<f4")
        if vectors.shape != (len(ids), self.dim):
            raise ValueError(f"segment rows of shape {vectors.shape}, expected ({len(ids)}, {self.dim})")
        self._vec.write(vectors.tobytes())
        self._ids.write(id_lines(ids, hashes))
        self.count += len(ids)

    def close(self) -> Segment:
        return Segment(vectors=self._vec.close(), ids=self._ids.close(), count=self.count)

    def discard(self) -> None:
        self._vec.discard()
        self._ids.discard()


# --------------------------------------------------------------------------- reading data files
def read_ids(directory: Path, ref: FileRef, count: int) -> tuple[list[str], list[str]]:
    path = check_file(directory, ref, crc=True)
    try:
        lines = read_regular(path).decode("utf-8").splitlines()
        pairs = [line.split("\t") for line in lines]
        if len(pairs) != count or any(len(p) != 2 for p in pairs):
            raise ValueError
    except (OSError, UnicodeDecodeError, ValueError):
        raise IndexFileError(f"{ref.name} does not hold {count} id lines") from None
    return [p[0] for p in pairs], [p[1] for p in pairs]


class IdColumn:
    """The ids of an ids file, decoded one at a time on demand (a 1M-row file is read in milliseconds)."""

    def __init__(self, data: bytes, ends: np.ndarray):
        self._data = data
        self._ends = ends
        self._starts = np.concatenate([[0], ends[:-1] + 1]) if len(ends) else ends

    def __len__(self) -> int:
        return len(self._ends)

    def __getitem__(self, row: int) -> str:
        line = self._data[int(self._starts[row]):int(self._ends[row])]
        return line.split(b"\t", 1)[0].decode("utf-8")


def read_id_column(directory: Path, ref: FileRef, count: int, *, crc: bool) -> IdColumn:
    data = read_regular(check_file(directory, ref, crc=crc))
    ends = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 10)
    if len(ends) != count:
        raise IndexFileError(f"{ref.name} does not hold {count} id lines")
    return IdColumn(data, ends)


def read_segments_into(directory: Path, segments: list[Segment], dim: int) -> np.ndarray:
    """Every segment's vectors in one array, read a piece at a time (each file checked against its CRC on the
    way), so memory holds the result and one piece, never a second copy."""
    out = np.empty((sum(s.count for s in segments), dim), dtype=np.float32)
    row = 0
    piece = max(1, (4 << 20) // (4 * max(dim, 1)))          # rows in about 4 MB
    for seg in segments:
        path = check_file(directory, seg.vectors, crc=False)
        if seg.vectors.size != seg.count * dim * 4:
            raise IndexFileError(f"{seg.vectors.name} does not hold {seg.count} vectors of {dim} dimensions")
        crc = 0
        with open(path, "rb") as fh:
            for start in range(0, seg.count, piece):
                n = min(piece, seg.count - start)
                data = fh.read(n * dim * 4)
                if len(data) != n * dim * 4:
                    raise IndexFileError(f"{seg.vectors.name} ended early")
                crc = zlib.crc32(data, crc)
                out[row + start:row + start + n] = np.frombuffer(data, dtype="<f4").reshape(n, dim)
        if crc != seg.vectors.crc:
            raise IndexFileError(f"{seg.vectors.name} does not match its checksum")
        row += seg.count
    return out


def read_segment_vectors(directory: Path, seg: Segment, dim: int) -> np.ndarray:
    path = check_file(directory, seg.vectors, crc=True)
    if seg.vectors.size != seg.count * dim * 4:
        raise IndexFileError(f"{seg.vectors.name} does not hold {seg.count} vectors of {dim} dimensions")
    return np.fromfile(path, dtype="<f4").reshape(seg.count, dim).astype(np.float32, copy=False)


def folder_size(directory: Path) -> int:
    try:
        return sum(p.stat().st_size for p in directory.iterdir() if p.is_file())
    except OSError:
        return 0
