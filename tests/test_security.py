"""What hostile or careless input cannot get out of ranker: a server URL's password into the log file, an
outsized request body into `ranker serve`'s memory."""
from __future__ import annotations

import json
import os
import stat

import pytest



def _score_one_paper_behind_a_password(tmp_path, *first, pre: str = ""):
    """`ranker [first] score` of one real paper against a real openai-style server on 127.0.0.1 whose URL carries
    the password `hunter2-pass` (https://user:PASSWORD@host/v1, a proxy in front of a lab's server)."""
    from conftest import DAYS, ranker
    from test_backends_openai_errors import Server
    row = json.loads((DAYS / "2025-05-15" / "listing.jsonl").open().readline())
    row["abstract"] += " MODE=ok"
    papers = tmp_path / "p.jsonl"
    papers.write_text(json.dumps(row) + "\n")
    server = Server()
    try:
        url = server.url.replace("://", "://lab:hunter2-pass@")
        return ranker(*first, "score", "--papers", papers, "--out", tmp_path / "s.jsonl", "--backend", "openai",
                      "--db", tmp_path / "db.sqlite3", env={"OPENAI_BASE_URL": url, "RANKER_HOME": tmp_path / "home"},
                      pre=pre)
    finally:
        server.close()


def test_a_password_in_the_servers_url_stays_out_of_the_log_file_which_is_the_owners_only(tmp_path):
    """`ranker score` against https://user:PASSWORD@host/v1 (a proxy in front of a lab's server): error lines, the
    store and run.json had the password redacted, but httpx logs every request's URL at INFO, and the command's
    log file (RANKER_HOME/logs, made readable by every user of the machine) held it once a request."""
    # the common umask: under 077 a 0644 open made 0600 too
    r = _score_one_paper_behind_a_password(tmp_path, pre="import os; os.umask(0o022)")
    assert r.returncode == 0, r.stderr
    (log,) = (tmp_path / "home" / "logs").iterdir()
    text = log.read_text()
    assert "HTTP Request: POST http://lab:[redacted]@127.0.0.1:" in text, text    # the requests are logged ...
    assert "hunter2" not in text + r.stderr                                         # ... without the password
    assert stat.S_IMODE(os.stat(log).st_mode) & 0o077 == 0, oct(os.stat(log).st_mode)


def test_the_traceback_of_ranker_debug_is_redacted_as_the_error_line_is(tmp_path):
    """With RANKER_DEBUG=1 a failure shows its traceback: Python printed it as it was, and an exception's text
    carrying a URL's password (or a key in its query) reached the terminal whole, where the one line without
    RANKER_DEBUG said [redacted]."""
    from conftest import ranker
    from fixture_server import FixtureServer
    with FixtureServer() as srv:                          # every path: 404, refused at once (no retries)
        url = srv.url("/none.xml?key=k3y-4242").replace("://", "://lab:hunter2-pass@")
        r = ranker("fetch", "--from", url, "--out", tmp_path / "o.jsonl", "--db", tmp_path / "db.sqlite3",
                   env={"RANKER_HOME": tmp_path / "home", "RANKER_DEBUG": "1"})
    assert r.returncode == 1 and "Traceback (most recent call last)" in r.stderr, r.stderr
    assert "FetchError: http://lab:[redacted]@127.0.0.1:" in r.stderr and "?key=[redacted]" in r.stderr, r.stderr
    assert "hunter2" not in r.stderr + r.stdout and "k3y-4242" not in r.stderr + r.stdout, r.stderr


def test_under_verbose_the_libraries_lines_on_the_terminal_are_the_logs_redacted(tmp_path):
    """`-v` shows on the terminal what the log file would hold: its lines went there through Python's last-resort
    printer instead, whole (and, below WARNING, not at all: httpx's request lines, which the log holds, were
    missing). Now the log's own handler, redacted, writes them to the terminal."""
    r = _score_one_paper_behind_a_password(tmp_path, "-v")
    assert r.returncode == 0, r.stderr
    assert "HTTP Request: POST http://lab:[redacted]@127.0.0.1:" in r.stderr, r.stderr
    assert "hunter2" not in r.stderr + r.stdout, r.stderr
    assert not (tmp_path / "home" / "logs").exists() or not list((tmp_path / "home" / "logs").iterdir())


# run before the CLI: `labels import` runs a thread that fails with a password and a key in its exception's text
_FAILING_THREAD = """
import threading
import ranker.labels as labels
_import = labels.import_labels
def _fails():
    raise RuntimeError("no answer at http://lab:hunter2-pass@127.0.0.1:9/v1?key=k3y-4242")
def import_labels(*a, **k):
    t = threading.Thread(target=_fails, name="fetcher")
    t.start()
    t.join()
    return _import(*a, **k)
labels.import_labels = import_labels
"""


@pytest.mark.parametrize("verbose", [False, True])
def test_a_threads_uncaught_exception_is_redacted_in_the_log_and_on_the_terminal(tmp_path, verbose):
    """A thread's uncaught exception is printed by threading.excepthook to descriptor 2: the log file, or under -v
    the terminal. Python's hook wrote the exception's text whole, a URL's password and a query's key in it."""
    from conftest import ranker

    from ranker.store import Store
    Store(tmp_path / "db.sqlite3").close()
    f = tmp_path / "labels.jsonl"
    f.write_text('{"id": "2505.00001", "label": 1, "time": "2025-05-15T09:12:03Z"}\n')
    home = tmp_path / "home"
    r = ranker("labels", "import", f, "--db", tmp_path / "db.sqlite3", *(["-v"] if verbose else []),
               env={"RANKER_HOME": home}, pre=_FAILING_THREAD)
    assert r.returncode == 0 and "1 added" in r.stderr, r.stderr
    said = r.stderr if verbose else "".join(p.read_text() for p in (home / "logs").iterdir())
    assert "Exception in thread fetcher:\nTraceback (most recent call last):" in said, said
    assert "RuntimeError: no answer at http://lab:[redacted]@127.0.0.1:9/v1?key=[redacted]" in said, said
    assert "hunter2" not in said + r.stderr and "k3y-4242" not in said + r.stderr, said


def _answer(host: str, port: int, head: bytes, body_parts: list[bytes]) -> bytes:
    """What the server says to a request sent as `head`, then `body_parts` (never the end of the body): the first
    bytes of its answer, or b"" when it says nothing within 10 s (it waits for the rest)."""
    import socket
    with socket.create_connection((host, port), timeout=10) as c:
        c.sendall(head)
        for part in body_parts:
            try:
                c.sendall(part)
            except OSError:             # it answered and closed while this was still sending
                break
        try:
            return c.recv(200)
        except socket.timeout:
            return b""


def test_a_label_post_with_an_outsized_body_is_refused_before_it_is_read(tmp_path):
    """A POST /label's form was parsed from its whole body, however large: any client that reaches the port (a
    process of another user on this machine; the network, bound with --host) made `ranker serve` hold what it
    sent, in memory, before the token was even looked at. A body past 64 KiB is refused (413), unread: one that
    says so in its Content-Length at once, one sent in chunks once it passes the limit; a label still works."""
    import re
    import urllib.parse
    import urllib.request
    from ranker.records import Paper
    from ranker.store import Store
    from webtools import start_server
    db = tmp_path / "ranker.sqlite3"
    with Store(db) as s:
        s.add_papers([Paper(id="2505.09572", title="A paper", abstract="Its abstract.", categories=["cs.LG"],
                            date="2025-05-15")])
    server = start_server(db, tmp_path / "serve.log")
    try:
        host, port = server.url.split("//", 1)[1].rsplit(":", 1)
        start = b"POST /label HTTP/1.1\r\nHost: %s:%s\r\nContent-Type: application/x-www-form-urlencoded\r\n" % (
            host.encode(), port.encode())
        said = _answer(host, int(port), start + b"Content-Length: 100000000\r\n\r\n", [b"paper_id=" + b"x" * 1000])
        assert said.startswith(b"HTTP/1.1 413 "), said
        chunk = b"%x\r\n%s\r\n" % (16384, b"x" * 16384)
        said = _answer(host, int(port), start + b"Transfer-Encoding: chunked\r\n\r\n", [chunk] * 8)
        assert said.startswith(b"HTTP/1.1 413 "), said
        with urllib.request.urlopen(server.url + "/") as r:
            token = re.search(r'<meta name="csrf-token" content="([^"]+)"', r.read().decode()).group(1)
        form = urllib.parse.urlencode({"paper_id": "2505.09572", "label": "up", "csrf": token}).encode()
        req = urllib.request.Request(server.url + "/label", data=form, headers={"Accept": "application/json"})
        with urllib.request.urlopen(req) as r:
            assert json.loads(r.read()) == {"paper_id": "2505.09572", "label": 1, "day": "2025-05-15"}
    finally:
        server.stop()
    log = server.log.read_text()
    assert "Traceback" not in log, log[-3000:]


def test_an_outsized_author_name_or_comment_is_cut_as_an_abstract_is(tmp_path):
    """A record's abstract and title were cut to their caps, its authors' names and comment not: one author of
    3 MB (a feed's, a snapshot's, a file of papers from someone else) was stored, shown on every page, and put
    whole into the paper's scoring prompt (which cuts the abstract and the number of authors, never a name): a
    prompt of 3 MB for a local model's 4k context or a paid API. They are cut, and said, as an abstract is."""
    from ranker.prompts import format_paper
    from ranker.sources import read_papers
    from ranker.sources.report import AUTHOR_CAP, COMMENT_CAP, ReadReport
    big = "x" * 3_000_000
    rows = [{"id": "2505.00001", "title": "A title", "abstract": "An abstract.", "categories": ["cs.LG"],
             "authors": ["Ada Lovelace", "B " + big], "comment": big, "date": "2025-05-15"},
            {"id": "2505.00002", "title": "Another", "abstract": "An abstract.", "categories": ["cs.LG"],
             "authors": "Ada Lovelace and C " + big, "date": "2025-05-15"}]
    path = tmp_path / "papers.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    report = ReadReport(source=str(path))
    a, b = read_papers(path, report=report)
    assert a.authors == ["Ada Lovelace", ("B " + big)[:AUTHOR_CAP]] and b.authors[1] == ("C " + big)[:AUTHOR_CAP]
    assert a.comment == big[:COMMENT_CAP]
    assert report.truncated == 2 and any("cut to" in n for n in report.notes()), report.notes()
    assert len(format_paper(a)) < 3 * AUTHOR_CAP


class _Flood:
    """A real server on 127.0.0.1 whose every answer is `size` bytes: plain, said in its Content-Length or sent
    without one, or gzipped (a small body that unpacks to `size`); `sent` counts the bytes it got out."""

    def __init__(self, size: int, how: str):
        import threading
        import zlib
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        flood = self
        self.sent = 0
        packed = b""
        if how == "gzip":                       # made a MiB at a time: the test holds no answer of `size` itself
            z = zlib.compressobj(9, zlib.DEFLATED, 31)
            packed = b"".join(z.compress(b"0" * (1 << 20)) for _ in range(size >> 20)) + z.flush()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                if how == "gzip":
                    self.send_header("Content-Encoding", "gzip")
                    self.send_header("Content-Length", str(len(packed)))
                elif how == "length":
                    self.send_header("Content-Length", str(size))
                else:
                    self.send_header("Connection", "close")       # the body ends where the connection does
                self.end_headers()
                try:
                    if how == "gzip":
                        self.wfile.write(packed)
                        flood.sent += len(packed)
                        return
                    piece = b'{"x": "' + b"0" * (1 << 20)
                    while flood.sent < size:
                        self.wfile.write(piece[:size - flood.sent])
                        flood.sent += min(len(piece), size - flood.sent)
                except OSError:
                    pass                    # the client hung up: what a capped reader does
                self.close_connection = True

            do_GET = do_POST                # GET /models: its answer alike

            def log_message(self, *a):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.mark.parametrize("how", ["length", "stream", "gzip"])
def test_an_outsized_answer_of_the_scoring_server_fails_its_paper_unread(how):
    """The openai backend read a server's whole answer into memory, however large (a proxy's error page of a
    file, a broken or hostile server ignoring max_tokens), `concurrency` answers at once, and a gzipped one
    unpacked whole. An answer past 64 MiB, as its Content-Length says or as it comes, is that paper's error,
    its rest not read."""
    from ranker.backends.base import Request
    from ranker.backends.openai_backend import OpenAIBackend
    from ranker.backends.schema import paper_schema
    size = 256 * 2**20                          # four times the cap
    flood = _Flood(size, how)
    try:
        be = OpenAIBackend("m", base_url=flood.url, retries=0, probe=False)
        try:
            (res,) = be.generate([Request("2506.00001", [{"role": "user", "content": "judge"}],
                                          paper_schema(["2506.00001"], 50), max_tokens=100)])
        finally:
            be.close()
    finally:
        flood.close()
    assert not res.ok and "larger than 64 MiB" in (res.error or ""), res.error
    if how == "stream":
        assert flood.sent < size / 2            # the reader stopped; the server could not send the rest


def test_an_outsized_model_listing_is_refused_unread_in_its_own_words():
    """The listing of the served models ("auto": GET /models) is read under the same cap; its refusal said "which
    no answer of a paper is", about no paper: the error names the listing and the cap."""
    from ranker.backends.openai_backend import OpenAIBackend
    from ranker.errors import BackendError
    flood = _Flood(256 * 2**20, "length")
    try:
        with pytest.raises(BackendError) as e:
            OpenAIBackend("auto", base_url=flood.url, retries=0, probe=False)
    finally:
        flood.close()
    msg = str(e.value)
    assert msg.startswith(f"cannot list the models of {flood.url}") and "larger than 64 MiB" in msg, msg
    assert "paper" not in msg, msg


def test_log_files_an_older_ranker_left_readable_by_all_are_made_the_owners_only(tmp_path):
    """A home an older ranker used keeps its log files, up to 30 of them, and before the logs were the owner's
    only (0600) they were made 0644: one of an openai run held the server URL's password (httpx logs each
    request's URL) for every user of the machine to read, after the upgrade as before it. The next command that
    logs takes the others' reading of every log file in the folder away; the files themselves are kept."""
    from conftest import ranker
    logs = tmp_path / "home" / "logs"
    logs.mkdir(parents=True)
    old = logs / "20261201-101010-score-4242.log"
    old.write_text("INFO httpx: HTTP Request: POST http://lab:hunter2-pass@10.0.0.1:8000/v1/chat/completions\n")
    os.chmod(old, 0o644)
    other = logs / "notes.txt"                       # not a log of ranker's: left as it is
    other.write_text("mine\n")
    os.chmod(other, 0o644)
    from ranker.store import Store
    Store(tmp_path / "db.sqlite3").close()
    r = ranker("labels", "list", "--db", tmp_path / "db.sqlite3", env={"RANKER_HOME": tmp_path / "home"})
    assert r.returncode == 0, r.stderr
    assert stat.S_IMODE(old.stat().st_mode) == 0o600, oct(old.stat().st_mode)
    assert "hunter2" in old.read_text()              # kept (the user's record), only no longer others' to read
    assert stat.S_IMODE(other.stat().st_mode) == 0o644


def test_the_logs_folder_an_older_ranker_left_open_is_made_the_owners_only(tmp_path):
    """The log files were made 0600, but the folder holding them an older ranker made stayed 0755 (as a new one
    was made, under the common umask 022): every user could list the logs' names (each a date, a command and a
    pid). The next command that logs makes the folder its owner's only (0700), and makes a new one so."""
    from conftest import ranker
    logs, old = _logs_with_an_open_log(tmp_path)
    os.chmod(logs, 0o755)
    _labels_list(tmp_path)
    assert stat.S_IMODE(logs.stat().st_mode) == 0o700, oct(logs.stat().st_mode)
    assert stat.S_IMODE(old.stat().st_mode) == 0o600, oct(old.stat().st_mode)
    fresh = tmp_path / "fresh"
    r = ranker("labels", "list", "--db", tmp_path / "db.sqlite3", env={"RANKER_HOME": fresh},
               pre="import os; os.umask(0o022)")
    assert r.returncode == 0, r.stderr
    assert stat.S_IMODE((fresh / "logs").stat().st_mode) == 0o700, oct((fresh / "logs").stat().st_mode)


def test_a_logs_folder_that_is_a_link_is_not_followed_to_change_the_folder_it_names(tmp_path):
    """home/logs a link to a folder elsewhere (a shared one, the user's choice): the logs are still written there,
    but the folder it names keeps its mode; the folder's mode is only changed on a folder itself."""
    from ranker.store import Store
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o755)
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "logs").symlink_to(shared)
    Store(tmp_path / "db.sqlite3").close()
    _labels_list(tmp_path)
    assert stat.S_IMODE(shared.stat().st_mode) == 0o755, oct(shared.stat().st_mode)


def _logs_with_an_open_log(tmp_path):
    """home/logs holding one log an older ranker left readable by all (0644), and the store a command opens."""
    from ranker.store import Store
    logs = tmp_path / "home" / "logs"
    logs.mkdir(parents=True)
    old = logs / "20261201-101010-score-4242.log"
    old.write_text("INFO httpx: HTTP Request: POST http://lab:hunter2-pass@10.0.0.1:8000/v1/chat/completions\n")
    os.chmod(old, 0o644)
    Store(tmp_path / "db.sqlite3").close()
    return logs, old


def _labels_list(tmp_path):
    from conftest import ranker
    r = ranker("labels", "list", "--db", tmp_path / "db.sqlite3", env={"RANKER_HOME": tmp_path / "home"})
    assert r.returncode == 0, r.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="only root may change the mode of another user's file")
def test_a_log_file_of_another_user_in_the_logs_folder_keeps_its_mode(tmp_path):
    """The logs made the owner's only are the running user's own: ranker run as root (a container, a cron job
    of root's) over a folder holding another user's file named *.log (or a hard link to one, which no lstat tells
    from a file) changed that user's file's mode."""
    logs, old = _logs_with_an_open_log(tmp_path)
    theirs = logs / "20261130-090909-run-777.log"
    theirs.write_text("theirs\n")
    os.chmod(theirs, 0o644)
    os.chown(theirs, 12345, 12345)
    _labels_list(tmp_path)
    assert stat.S_IMODE(old.stat().st_mode) == 0o600, oct(old.stat().st_mode)
    assert stat.S_IMODE(theirs.stat().st_mode) == 0o644, oct(theirs.stat().st_mode)


def test_a_link_or_a_dangling_link_among_the_logs_neither_is_followed_nor_stops_the_others(tmp_path):
    """A link named *.log in the logs folder: the file it points to keeps its mode (its own, not a log's), and one
    that points nowhere (its file removed) kept every log there readable by all, the sorting of the folder by
    time failing on it."""
    logs, old = _logs_with_an_open_log(tmp_path)
    target = tmp_path / "elsewhere.txt"
    target.write_text("not a log\n")
    os.chmod(target, 0o644)
    (logs / "20261201-111111-run-1.log").symlink_to(target)
    (logs / "20261201-121212-run-2.log").symlink_to(tmp_path / "gone.txt")
    _labels_list(tmp_path)
    assert stat.S_IMODE(old.stat().st_mode) == 0o600, oct(old.stat().st_mode)
    assert stat.S_IMODE(target.stat().st_mode) == 0o644, oct(target.stat().st_mode)
