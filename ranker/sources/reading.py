"""Reading papers from any of the formats arXiv (or we) write, and writing papers and prefilter output.

Formats are recognised from their first bytes: `<rss` (arXiv RSS 2.0), `<feed` (arXiv API Atom 1.0), a JSON
line with `versions`/`update_date` (the arXiv metadata snapshot), any other JSON line (our papers JSONL, as
`ranker fetch` and `ranker prefilter` write it). A gzip-compressed file is read transparently.
"""
from __future__ import annotations

import gzip
import io
import json
import os
import sys
import zlib
from pathlib import Path
from typing import IO, Iterable, Iterator

from ..errors import InputError
from ..io import STDIN, Warn, atomic_write, json_loads
from ..records import ANNOUNCE_TYPES, Paper, Ranked
from .filters import check_day, filter_papers, parse_list
from .jsonl import capped_lines
from .report import LINE_CAP, XML_CAP, ReadReport

# what reading a damaged .gz raises: cut short (EOFError), a bad header or CRC (OSError), a damaged deflate block
# (zlib.error, neither of the others)
GZ_ERRORS = (OSError, EOFError, zlib.error)

DEFAULT_ANNOUNCE = ["new", "cross"]
FORMATS = ("rss", "atom", "snapshot", "jsonl")
_SNIFF = 64 * 1024


def is_url(s: str | os.PathLike) -> bool:
    return isinstance(s, str) and s.split(":", 1)[0].lower() in ("http", "https")


def _open_path(path: Path) -> IO[bytes]:
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise InputError("file not found", where=str(path)) from None
    except IsADirectoryError:
        raise InputError("is a directory, expected a file", where=str(path)) from None
    except PermissionError:
        raise InputError("permission denied", where=str(path)) from None
    except OSError as e:
        raise InputError(f"cannot open ({e.strerror or e})", where=str(path)) from None


class _Rejoined(io.RawIOBase):
    """The bytes already read from a stream (its sniffed head), then the rest of it: a pipe (stdin,
    `<(zcat ...)`) is read once and never seeked. Closing it closes the streams in `owned`."""

    def __init__(self, head: bytes, rest: IO[bytes], owned: tuple = ()):
        self._head, self._rest, self._owned = memoryview(head), rest, owned

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        if len(self._head):
            n = min(len(b), len(self._head))
            b[:n] = self._head[:n]
            self._head = self._head[n:] if n < len(self._head) else memoryview(b"")
            return n
        data = self._rest.read(len(b))
        b[:len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            for s in self._owned:
                s.close()
        super().close()


def _sniffed(raw: IO[bytes], close: bool) -> tuple[IO[bytes], bytes]:
    """`raw` (gunzipped when it is gzip) as a stream that starts again at its first byte, and its head: the
    first 64 KiB, for JSON completed to the end of a line (a first line up to LINE_CAP: a longer one is skipped).
    Closing the stream closes `raw` when `close`."""
    owned: tuple = (raw,) if close else ()
    stream, head = raw, raw.read(_SNIFF)
    if head[:2] == b"\x1f\x8b":
        stream = gzip.GzipFile(fileobj=io.BufferedReader(_Rejoined(head, raw)), mode="rb")
        owned = (stream, *owned)
        head = stream.read(_SNIFF)
    if _head(head).startswith(b"{"):
        head += stream.readline(LINE_CAP)
    return io.BufferedReader(_Rejoined(head, stream, owned), buffer_size=_SNIFF), head


def _head(data: bytes) -> bytes:
    head = data.lstrip(b"\xef\xbb\xbf").lstrip()
    return head


def detect_format(head: bytes, first_line: bytes | None = None) -> str | None:
    """'rss' | 'atom' | 'snapshot' | 'jsonl' from the first bytes (and, for JSON, the first line)."""
    head = _head(head)
    if not head:
        return "jsonl"     # an empty file: an empty day
    if head.startswith(b"<"):
        low = head[:_SNIFF].lower()
        if b"<rss" in low:
            return "rss"
        if b"<feed" in low:
            return "atom"
        return None
    if head.startswith(b"{"):
        from .snapshot import looks_like_snapshot
        # the first line that is a JSON object decides (the first line given whole, then the head's): a damaged
        # first line (a file cut at its start) must not make a snapshot papers JSONL, without its days and versions
        lines = [first_line] if first_line is not None else []
        for line in (*lines, *head.splitlines()):
            line = _head(line)
            if not line:
                continue
            try:
                obj = json_loads(line.decode("utf-8", errors="replace"))
            except ValueError:
                continue
            if isinstance(obj, dict):
                return "snapshot" if looks_like_snapshot(obj) else "jsonl"
        return "jsonl"
    return None


def _unknown_format(source: str) -> InputError:
    return InputError("unrecognised format: expected arXiv RSS or Atom XML, an arXiv metadata snapshot or "
                      "papers JSON lines", where=source)


def _too_big(source: str) -> InputError:
    return InputError(f"an XML feed larger than {XML_CAP // 2**20} MiB, the most read (arXiv's biggest are a few MB): not a "
                      "feed, or a damaged or hostile file; not read", where=source)


def _parse_bytes(data: bytes, source: str, fmt: str | None, report: ReadReport, date: str | None
                 ) -> tuple[str, Iterator[Paper]]:
    if fmt is None:
        if data[:2] == b"\x1f\x8b":
            # gunzipped as it is read, as a file is: a small gzip bomb never sits whole in memory
            return _read_stream(io.BytesIO(data), source, None, report, date)
        fmt = detect_format(data[:_SNIFF], _head(data).split(b"\n", 1)[0])
        if fmt is None:
            raise _unknown_format(source)
    if fmt in ("rss", "atom") and len(data) > XML_CAP:
        raise _too_big(source)
    if fmt == "rss":
        from .rss import parse_rss
        return fmt, parse_rss(data, source, report, date=date)
    if fmt == "atom":
        from .atom import parse_atom
        return fmt, parse_atom(data, source, report, date=date)
    return fmt, _stream_lines(io.BytesIO(data), source, fmt, report, date)


def _read_stream(raw: IO[bytes], source: str, fmt: str | None, report: ReadReport, date: str | None, *,
                 close: bool = True) -> tuple[str, Iterator[Paper]]:
    """Papers from an open binary stream (a file, a pipe, stdin; maybe gzipped) read once from its start: XML
    whole, JSON lines lazily. `close`: the stream is closed when the papers end (stdin is left open)."""
    f = raw
    try:
        try:
            f, head = _sniffed(raw, close)
            if fmt is None:
                fmt = detect_format(head)
                if fmt is None:
                    raise _unknown_format(source)
            if fmt in ("rss", "atom"):
                data = f.read(XML_CAP + 1)
                if len(data) > XML_CAP:
                    raise _too_big(source)
                f.close()
                return _parse_bytes(data, source, fmt, report, date)
        except GZ_ERRORS as e:      # unreadable, or a corrupt .gz
            raise InputError(f"cannot read ({e})", where=source) from None
    except BaseException:
        if close or f is not raw:
            f.close()
        raise
    return fmt, _stream_lines(f, source, fmt, report, date)


def _stream_lines(f: IO[bytes], source: str, fmt: str, report: ReadReport, date: str | None) -> Iterator[Paper]:
    """Line-by-line reading of a JSON-lines file; the file is closed when the iterator ends."""
    def lines() -> Iterator[bytes]:
        try:
            yield from capped_lines(f)
        except GZ_ERRORS as e:     # e.g. a truncated .gz
            raise InputError(f"cannot read ({e})", where=source) from None

    try:
        if fmt == "snapshot":
            from .snapshot import iter_snapshot
            yield from iter_snapshot(lines(), source, report, date=date)
        else:
            from .jsonl import iter_jsonl
            yield from iter_jsonl(lines(), source, report, date=date)
    finally:
        f.close()


def read_papers(path_or_url: str | os.PathLike | bytes, categories: list[str] | str | None = None,
                announce: list[str] | str | None = None, date: str | None = None, *,
                report: ReadReport | None = None, fmt: str | None = None, policy=None,
                warn: Warn | None = None, name: str | None = None) -> Iterator[Paper]:
    """Papers from a file (RSS/Atom XML, snapshot or papers JSONL, maybe gzipped), '-' for stdin, an http(s)
    URL, or raw bytes. Opening, sniffing and (for XML) parsing happen now, so a missing or malformed file
    raises InputError at once; JSON lines are read lazily while iterating (memory stays flat).

    categories / announce: lists or comma strings (see the module doc for the defaults). date: YYYY-MM-DD
    that replaces every paper's day (the announcement day). report: a ReadReport to fill with counts.
    policy: a sources.net.NetPolicy for URLs; warn hears of retries. name: what messages call raw bytes or '-'
    (default "<bytes>", /dev/stdin)."""
    cats = parse_list(categories, key="categories") if categories else None
    ann = parse_list(announce, key="announce", allowed=ANNOUNCE_TYPES) if announce else None
    day = check_day(date) if date else None
    if fmt is not None and fmt not in FORMATS:
        raise InputError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}", key="fmt")

    if isinstance(path_or_url, (bytes, bytearray)):
        source = name or "<bytes>"
    elif is_url(str(path_or_url)):
        source = str(path_or_url)
    elif str(path_or_url) == "-":
        source = name or STDIN
    else:
        source = str(Path(path_or_url))
    report = report if report is not None else ReadReport(source=source)
    report.source = report.source or source
    if isinstance(path_or_url, (bytes, bytearray)):
        kind, papers = _parse_bytes(bytes(path_or_url), source, fmt, report, day)
    elif is_url(source):
        from .net import fetch_bytes
        data = fetch_bytes(source, policy=policy, warn=warn)
        kind, papers = _parse_bytes(data, source, fmt, report, day)
    elif str(path_or_url) == "-":
        kind, papers = _read_stream(sys.stdin.buffer, source, fmt, report, day, close=False)
    else:
        kind, papers = _read_stream(_open_path(Path(path_or_url)), str(Path(path_or_url)), fmt, report, day)
    feed = kind in ("rss", "atom")
    if ann is None and kind == "rss":
        ann = list(DEFAULT_ANNOUNCE)
    return filter_papers(papers, categories=cats, announce=ann, report=report, buffered=feed)


def read_ranked(path_or_url: str | os.PathLike | bytes, *, report: ReadReport | None = None,
                name: str | None = None) -> list[Ranked]:
    """`ranker prefilter` output: every row as a Ranked record (the paper, its prefilter_score, whether it
    was kept, its topic, the keep rule that decided it), in the file's order. A file whose rows carry no
    verdict (a plain listing) is an InputError; a row with a malformed one is skipped and counted in the
    report. name: as read_papers'."""
    out = []
    for p in read_papers(path_or_url, report=report, name=name):
        r = Ranked.from_paper(p)
        if r is None:
            raise InputError(f"{p.id}: no prefilter verdict (prefilter_score, kept): not the output of "
                             "`ranker prefilter`", where=name or str(path_or_url))
        out.append(r)
    return out


def write_papers(papers: Iterable[Paper], path: str | os.PathLike) -> int:
    """Write papers as JSON lines, atomically (ranker.io.atomic_write): a reader never sees half a file and
    an interrupted write leaves the old file; the temporary file of one killed (kill -9) is removed by the
    next (atomic_write's tidy). Returns the number written."""
    return atomic_write(path, paper_lines(papers), tidy=True)


def paper_lines(papers: Iterable[Paper]) -> Iterator[str]:
    """One JSON line per paper, the papers JSONL layout (listing.jsonl)."""
    for p in papers:
        yield json.dumps(p.to_dict(), ensure_ascii=False) + "\n"


def ranked_lines(ranked: Iterable[Ranked]) -> Iterator[str]:
    """The prefilter output: one JSON line per Ranked record (id, prefilter_score, kept, topic, rule, the paper's
    fields), one at a time (a 30,000-paper day never sits in memory as one string); read_ranked reads it."""
    for r in ranked:
        yield json.dumps(r.to_dict(), ensure_ascii=False) + "\n"

