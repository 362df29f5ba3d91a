"""Run the app under uvicorn on sockets bound here (at every address of the host given), so a port in use is a
clean error and port 0 picks a free one."""
from __future__ import annotations

import errno
import ipaddress
import re
import socket
from typing import Callable, Sequence

from ..errors import FetchError, InputError, MissingDependency
from ..netguard import lookup_to_listen
from .security import LOOPBACK_NAMES, host_name, is_loopback


def bind(host: str, port: int) -> list[socket.socket]:
    """Sockets listening on `port` at every address `host` resolves to that this machine has (localhost: ::1 and
    127.0.0.1 where the machine lists both), in the order the machine lists them: one address alone was
    listened on, so a bookmark to the other family's (http://127.0.0.1:8000/ for a server on [::1]) reached
    nothing. An address the machine lacks is skipped (a machine listing ::1 first with IPv6 turned off still
    serves localhost); a port in use at any address is refused, not served at the others (a bookmark to that
    address would reach whatever holds it). Port 0: one free port, the same at every address."""
    if not 0 <= port <= 65535:
        raise InputError(f"must be a port number (0-65535), got {port}", key="port")
    # an IPv6 address as a URL writes it ([::1], [::]): the loopback check and the Host names took it so, and the
    # bind said "cannot resolve '[::1]'"
    name = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        infos = lookup_to_listen(name, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise InputError(f"cannot resolve {host!r} ({e.strerror})", key="host") from None
    addrs = list(dict.fromkeys((family, addr) for family, _, _, _, addr in infos))
    # port 0 at several addresses: the free port the first got may be taken at another; another one is tried
    for _ in range(_FREE_PORT_TRIES if port == 0 and len(addrs) > 1 else 1):
        socks, error, at = _listen_all(addrs)
        if socks:
            return socks
        if error.errno != errno.EADDRINUSE:
            break
    # an address this machine does not have is the host's fault, not the port's (in use, privileged)
    at_fault = "host" if error.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT) else "port"
    where = f" at {at}" if len({a[0] for _, a in addrs}) > 1 else ""       # which of the name's addresses
    raise InputError(f"cannot listen on {host}:{port}{where} ({error.strerror})", key=at_fault) from None


_FREE_PORT_TRIES = 20


def _listen_all(addrs: list) -> tuple[list[socket.socket], OSError, str]:
    """Listening sockets at each of `addrs` ((family, sockaddr)) this machine has; or none, the error that
    stopped them and the address it came from: what stopped the binding (a port in use, privileged), else, no
    address being one of this machine's, the first skipped. A port 0 is the first socket's free port at the
    other addresses."""
    socks: list[socket.socket] = []
    skipped: tuple[OSError, str] | None = None
    port = 0
    for family, addr in addrs:
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if len(addrs) > 1 and family == socket.AF_INET6:
            # :: alone serves IPv4 too (Linux's default), and 0.0.0.0 beside it was then "in use"
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        if port and not addr[1]:
            addr = (addr[0], port, *addr[2:])
        try:
            sock.bind(addr)
            sock.listen(128)
        except OSError as e:
            sock.close()
            if e.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
                skipped = skipped or (e, addr[0])     # not an address of this machine: the name's next one may be
                continue
            for s in socks:             # what stopped it (a port in use) is said, not an address skipped
                s.close()
            return [], e, addr[0]
        sock.set_inheritable(True)
        socks.append(sock)
        port = port or sock.getsockname()[1]
    if socks:
        return socks, OSError(), ""
    assert skipped is not None
    return [], *skipped


def url_of(sock: socket.socket) -> str:
    """The address to open. Bound to every address (--host 0.0.0.0 or ::), the socket's own name is no host a
    browser should be sent to: http://0.0.0.0:8000/, printed at start, reached this server and was refused
    ("unknown Host header", the bind-all address being no name of this machine); this machine's loopback
    address of the same family reaches it too, and is answered."""
    host, port = sock.getsockname()[:2]
    if host in _ANY:
        host = "::1" if sock.family == socket.AF_INET6 else "127.0.0.1"
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def allowed_hosts_for(host: str, extra: tuple[str, ...] = ()) -> set[str]:
    """The Host names the app answers to. A page of another site can point a DNS name of its own at this
    machine (DNS rebinding) and then read the store and post labels as the same origin; only Host names this
    machine really has are answered. Loopback binds: the loopback names and the address bound (127.0.0.2 too).
    Other binds: those, the machine's host names and addresses, and `extra` (a name the user reaches it by, a
    port written after it left out: the Host header's port is not compared either)."""
    bound = host.strip("[]").lower()
    names = set(LOOPBACK_NAMES) | {allowed_name(h) for h in extra if h.strip()}
    if bound and bound not in _ANY:
        names.add(bound)
    if not is_loopback(host):
        names |= machine_names()
    return names


def addresses_of(socks: list[socket.socket]) -> set[str]:
    """The addresses the sockets listen on, as a Host header names them (the bind-all ones left out): a name of
    several addresses bound beyond loopback is reached at each (an address, unlike a name, cannot be rebound)."""
    return {str(x.getsockname()[0]).lower() for x in socks} - _ANY


_ANY = {"0.0.0.0", "::", ""}
# a name (papers.lab.example, localhost, gpu3) or an IPv4 address, or an IPv6 one in brackets; a port may follow
_HOST = re.compile(r"(?:\[(?P<v6>[0-9a-f:.]+)\]|[a-z0-9_](?:[a-z0-9_.-]*[a-z0-9_.])?)(?::\d{1,5})?\Z")


def allowed_name(value: str) -> str:
    """The Host name a name given to answer to stands for ('Proxy.Lab.Example:8443' -> 'proxy.lab.example'). Only
    a host name or address: a URL ('http://proxy.lab:8000/') was taken as the name 'http', so the name meant was
    refused as an unknown Host."""
    v = value.strip().lower()
    m = _HOST.match(v)
    if (m and (not m["v6"] or _is_ip(m["v6"]))) or _is_ip(v):
        return host_name(v)
    raise InputError(f"{value.strip()!r} is not a host name or address: give it alone, as papers.lab.example, "
                     "10.0.0.7 or [fd00::7] (a port after it is allowed), without http://, a path or a wildcard",
                     key="allow_host")


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def machine_names() -> set[str]:
    """This machine's host name, its fully qualified name, their addresses, and the address it reaches the
    network from (found by routing, no packet is sent)."""
    out: set[str] = set()
    for name in {socket.gethostname(), socket.getfqdn()}:
        if not name:
            continue
        out.add(name.lower())
        try:
            out |= {str(info[4][0]).lower() for info in socket.getaddrinfo(name, None)}
        except OSError:
            pass
    for family, probe in ((socket.AF_INET, "192.0.2.1"), (socket.AF_INET6, "2001:db8::1")):
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as s:
                s.connect((probe, 9))
                out.add(str(s.getsockname()[0]).lower())
        except (OSError, FetchError):       # FetchError: offline mode refuses even this packet-less connect
            pass
    return out - _ANY


# A proxy on this machine, whose forwarded headers are always believed (uvicorn's own default list)
LOOPBACK_PROXIES = ("127.0.0.1", "::1")


def forwarded_allow(trusted_proxies: Sequence[str] = ()) -> list[str]:
    """The addresses whose X-Forwarded-Proto and X-Forwarded-For uvicorn believes: a proxy on this machine and
    `trusted_proxies` (settings' serve.trusted_proxies: validated addresses or networks), never anyone else.
    Each IPv4 one also as the IPv4-mapped address (::ffff:10.0.0.5) it connects from to a server on '::' (one
    socket for both families), which uvicorn compares as another address: `--host ::` believed no IPv4 proxy,
    named or on 127.0.0.1. Given even when none is named: uvicorn's default reads FORWARDED_ALLOW_IPS from the
    environment ('*' in many container images: anyone's), and naming one dropped ::1 from it."""
    out = []
    for a in (*LOOPBACK_PROXIES, *trusted_proxies):
        out.append(a)
        net = ipaddress.ip_network(a, strict=False)
        if net.version == 4:
            mapped = ipaddress.ip_network(f"::ffff:{net.network_address}/{96 + net.prefixlen}")
            out.append(str(mapped) if "/" in a else str(mapped.network_address))
    return list(dict.fromkeys(out))


def serve(app, socks: list[socket.socket], *, log_level: str = "warning", trusted_proxies: Sequence[str] = ()) -> None:
    """Serve on the sockets bind() made until interrupted. The scheme and client a proxy forwards
    (X-Forwarded-Proto, X-Forwarded-For) are believed from this machine (127.0.0.1, ::1) and the addresses or
    networks of `trusted_proxies` (settings' serve.trusted_proxies) only (see forwarded_allow)."""
    try:
        import uvicorn
    except ImportError:
        raise MissingDependency("uvicorn", "web", "ranker serve") from None
    config = uvicorn.Config(app, log_level=log_level, access_log=False, lifespan="off", server_header=False,
                            forwarded_allow_ips=forwarded_allow(trusted_proxies))
    uvicorn.Server(config).run(sockets=socks)


def start(app, host: str, port: int, on_ready: Callable[[str], None] = lambda url: None) -> None:
    socks = bind(host, port)
    on_ready(url_of(socks[0]))
    serve(app, socks)
