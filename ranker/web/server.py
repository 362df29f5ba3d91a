"""Run the app under uvicorn on a socket bound here, so a port in use is a clean error and port 0 picks a free one."""
from __future__ import annotations

import socket
from typing import Callable

from ..errors import InputError, MissingDependency
from .security import LOOPBACK_NAMES, is_loopback


def bind(host: str, port: int) -> socket.socket:
    if not 0 <= port <= 65535:
        raise InputError(f"must be a port number (0-65535), got {port}", key="port")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise InputError(f"cannot resolve {host!r} ({e.strerror})", key="host") from None
    family, _, _, _, addr = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(addr)
        sock.listen(128)
    except OSError as e:
        sock.close()
        raise InputError(f"cannot listen on {host}:{port} ({e.strerror})", key="port") from None
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def allowed_hosts_for(host: str) -> set[str] | None:
    """Loopback binds answer only to loopback Host names and the address bound (127.0.0.2 too): a page of another
    site cannot reach the app through a DNS name it re-pointed at 127.0.0.1; a bind to another address answers
    to any Host."""
    return set(LOOPBACK_NAMES) | {host.strip("[]").lower()} if is_loopback(host) else None


def serve(app, sock: socket.socket, *, log_level: str = "warning") -> None:
    """Serve until interrupted."""
    try:
        import uvicorn
    except ImportError:
        raise MissingDependency("uvicorn", "web", "ranker serve") from None
    config = uvicorn.Config(app, log_level=log_level, access_log=False, lifespan="off", server_header=False)
    uvicorn.Server(config).run(sockets=[sock])


def start(app, host: str, port: int, on_ready: Callable[[str], None] = lambda url: None) -> None:
    sock = bind(host, port)
    on_ready(url_of(sock))
    serve(app, sock)
