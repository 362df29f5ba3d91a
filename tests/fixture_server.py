"""A real HTTP server on 127.0.0.1 (a free port) in a thread, answering with scripted responses.

    with FixtureServer() as srv:
        srv.route("/rss/cs.LG+cs.AI", Reply(429, headers={"Retry-After": "0"}), Reply(200, body=xml))
        url = srv.url("/rss/")
        ...
        assert srv.hits("/rss/cs.LG+cs.AI") == 2

Each request to a path takes the next reply of its script; the last one repeats. Unknown paths get 404.
FixtureServer(tls=(certfile, keyfile)) answers over HTTPS with that certificate (`self_signed()` makes one).
`silent_server()` gives the URL of a socket that accepts connections and never answers (for timeouts);
Reply(trickle=...) an answer that keeps coming, a little at a time; Reply(hold=event) one sent once the test
sets the event.
"""
from __future__ import annotations

import socket
import threading
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # a client that hangs up (a timeout test, a closed keep-alive connection) is not a test failure
        pass


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0            # seconds to wait before answering
    # wait for the test to set this before answering (at most a minute): the request is known to be waiting
    # (hits() counts it) for as long as the test needs, where a delay raced the test's own steps
    hold: threading.Event | None = None
    content_type: str = "application/xml; charset=utf-8"
    cut: int | None = None        # send only this many bytes of the body, then hang up (a reset mid-download)
    # send the body `piece` bytes at a time, `trickle` seconds apart (a server, proxy or captive portal that
    # trickles its answer); `chunked`: as one HTTP/1.1 chunk each, with no Content-Length
    trickle: float = 0.0
    piece: int = 1
    chunked: bool = False


@dataclass
class Hit:
    path: str
    query: dict[str, list[str]]
    at: float
    headers: dict[str, str] = field(default_factory=dict)


class FixtureServer:
    def __init__(self, tls: tuple[str, str] | None = None):
        self._routes: dict[str, list[Reply]] = {}
        self.log: list[Hit] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):  # noqa: N802
                parts = urlsplit(self.path)
                with server._lock:
                    server.log.append(Hit(parts.path, parse_qs(parts.query), time.monotonic(), dict(self.headers.items())))
                    script = server._routes.get(parts.path)
                    reply = (script.pop(0) if len(script) > 1 else script[0]) if script else Reply(404, b"not found")
                if reply.delay:
                    time.sleep(reply.delay)
                if reply.hold is not None:
                    reply.hold.wait(60)
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", reply.content_type)
                    if reply.chunked:
                        self.send_header("Transfer-Encoding", "chunked")
                    else:
                        self.send_header("Content-Length", str(len(reply.body)))
                    for k, v in reply.headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    if reply.cut is not None:
                        self.wfile.write(reply.body[:reply.cut])
                        self.wfile.flush()
                        self.close_connection = True
                        self.connection.shutdown(socket.SHUT_RDWR)
                        return
                    if reply.trickle:
                        for at in range(0, len(reply.body), reply.piece):
                            time.sleep(reply.trickle)
                            piece = reply.body[at:at + reply.piece]
                            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece) if reply.chunked else piece)
                        if reply.chunked:
                            self.wfile.write(b"0\r\n\r\n")
                        return
                    self.wfile.write(reply.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args):  # keep test output clean
                pass

        self._httpd = _QuietServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.scheme = "https" if tls else "http"
        if tls:
            import ssl
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*tls)
            self._httpd.socket = ctx.wrap_socket(self._httpd.socket, server_side=True)
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    def url(self, path: str = "/") -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}{path}"

    def route(self, path: str, *replies: Reply) -> None:
        with self._lock:
            self._routes[path] = list(replies)

    def hits(self, path: str | None = None) -> int:
        with self._lock:
            return sum(1 for h in self.log if path is None or h.path == path)

    def __enter__(self) -> "FixtureServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


# the skip without it: "not installed" makes it a failure under RANKER_REQUIRE_ALL=1 (`make test` installs openssl)
NO_OPENSSL = "the openssl command is not installed (it makes the test's self-signed certificate)"


def self_signed(folder) -> tuple[str, str] | None:
    """(certificate, key) files of a new self-signed certificate for 127.0.0.1 in `folder` (the openssl
    command makes them), or None without that command."""
    import shutil
    import subprocess
    from pathlib import Path
    if shutil.which("openssl") is None:
        return None
    cert, key = Path(folder) / "cert.pem", Path(folder) / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    return str(cert), str(key)


@contextmanager
def silent_server():
    """Yield the base URL of a server that accepts the connection (the kernel does, via the backlog) and
    never sends a byte: silent_server_asked's, where the test does not ask what came."""
    with silent_server_asked() as (url, _asked):
        yield url


class Asked:
    """What a silent server was asked so far: `asked(text)` holds once a request whose first bytes hold `text`
    came (a request line: "POST /v1/chat/completions"). It accepts and reads the connections, never answers."""

    def __init__(self, sock: socket.socket):
        self._sock, self._conns, self._seen = sock, [], b""
        sock.setblocking(False)

    def __call__(self, text: str) -> bool:
        while True:
            try:
                conn, _ = self._sock.accept()
            except (BlockingIOError, OSError):
                break
            conn.setblocking(False)
            self._conns.append(conn)
        for conn in self._conns:
            try:
                self._seen += conn.recv(65536)
            except (BlockingIOError, OSError):
                pass
        return text.encode() in self._seen

    def close(self) -> None:
        for conn in self._conns:
            conn.close()


@contextmanager
def silent_server_asked():
    """Yield (the base URL, an Asked) of a server that accepts the connection and never sends a byte: a test can
    act once the command has sent its request, not after a time (on a loaded machine the command was still
    starting when a timer ran out)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    asked = Asked(s)
    try:
        yield f"http://127.0.0.1:{s.getsockname()[1]}", asked
    finally:
        asked.close()
        s.close()


def free_ports(n: int) -> list[int]:
    """`n` loopback ports free now, for a server started later to listen on (vLLM, a Ray node): each bound until
    all are chosen, so that no two are one (a port bound and let go at once could be handed out again to the next
    one asked for). One the server must bind itself stays free only until then: a caller that can, holds it
    (refusing_port)."""
    with ExitStack() as held:
        socks = [held.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) for _ in range(n)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]


@contextmanager
def refusing_port():
    """Yield a loopback port nobody listens on (a connection there is refused): bound, never listening, until the
    block ends. (Closed at once, the port was free again for any other socket, a server of a test beside this one
    or a Ray node included, and one that listened there meanwhile answered the connection meant to be refused.)"""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]


@contextmanager
def closed_port_url(path: str = ""):
    """Yield a loopback URL (ending in `path`) nobody listens on: refusing_port's."""
    with refusing_port() as port:
        yield f"http://127.0.0.1:{port}{path}"
