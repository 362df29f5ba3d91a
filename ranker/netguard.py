"""Offline mode: no network connection except to loopback. One switch for the whole process.

`enable_offline()` (the CLI calls it when Settings.offline is set) puts Hugging Face, transformers, vLLM and
friends in their offline / no-telemetry modes through environment variables (which child processes such as
vLLM's engine core inherit) and the copies huggingface_hub took of them at import, installs a guard on socket
connects and name lookups in this process, so a library that tries anyway fails loudly instead of leaking (or
waiting on a name server), and makes `check_allowed(url)` refuse any non-loopback URL before a client even tries
it. `disable_offline()` undoes all three (for tests and long-lived processes). `offline_while(settings.offline)`
is the same for one block: the public steps (ranker.steps) hold it, so a program that uses ranker as a library
and sets `offline` gets what the CLI gives, and its process back as it was after the step.
`worker_env()` is what a process this one does not start (a Ray worker on another node) needs to be offline too.
"""
from __future__ import annotations

import importlib
import ipaddress
import os
import socket
import threading
from contextlib import contextmanager
from typing import Iterator

from .errors import FetchError
from .io import is_loopback_host, is_loopback_url, url_host

OFFLINE_ENV = {
    "RANKER_OFFLINE": "1",           # child ranker processes stay offline too
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "VLLM_NO_USAGE_STATS": "1",
    "VLLM_DO_NOT_TRACK": "1",
    "DO_NOT_TRACK": "1",
    "VLLM_HOST_IP": "127.0.0.1",     # else vLLM finds its address by a UDP "connect" to a public IP
}
# huggingface_hub reads these variables once, when huggingface_hub.constants is first imported, and asks the
# module's copies after that (transformers too, through the hub's is_offline_mode()): they are switched there
# as well, else a hub already imported stayed online, and one first imported during an offline step stayed
# offline for the rest of the process
_HUB_CONSTANTS = ("HF_HUB_OFFLINE", "HF_HUB_DISABLE_TELEMETRY")
_saved: dict | None = None           # while offline: the environment and socket methods to restore


def is_offline() -> bool:
    return _saved is not None


def worker_env() -> dict[str, str]:
    """The variables a process that this one does not start needs in order to be as offline as this one (a
    Ray worker on another node): OFFLINE_ENV while offline, else nothing."""
    return dict(OFFLINE_ENV) if is_offline() else {}


def check_allowed(url: str) -> None:
    """Raise FetchError for a non-loopback URL in offline mode."""
    if is_offline() and not is_loopback_url(url):
        raise FetchError(f"offline mode: will not connect to {url_host(url)} (only loopback is allowed)",
                         where=url)


def _lookup_allowed(host) -> bool:
    """A name lookup that needs no name server: none (a wildcard), an address written out, a loopback name, or
    this machine's own name (from /etc/hosts; vLLM and Ray ask for it)."""
    if host is None:
        return True
    name = host.decode() if isinstance(host, (bytes, bytearray)) else str(host)
    if is_loopback_host(name) or name.lower() == socket.gethostname().lower():
        return True
    try:
        ipaddress.ip_address(name.split("%")[0])
        return True
    except ValueError:
        return False


def lookup_to_listen(host, *args, **kwargs):
    """socket.getaddrinfo past the offline guard, for a name the user gave to listen on (serve's --host): it is
    resolved to bind a socket of this machine, not to reach another one, and /etc/hosts may well answer it (the
    guard refused `--host <this machine's name on the lab's network>`)."""
    real = _saved["getaddrinfo"] if _saved is not None else socket.getaddrinfo
    return real(host, *args, **kwargs)


def _allowed(sock: socket.socket, address) -> bool:
    if sock.family not in (socket.AF_INET, socket.AF_INET6):
        return True          # unix sockets, netlink: not the network
    host = address[0] if isinstance(address, tuple) else str(address)
    return is_loopback_host(str(host))


def _hub_constants():
    """huggingface_hub.constants, imported now if installed (a few milliseconds: it reads the environment as it
    was before the switch, what it would have read had it come first), so that disable_offline() has its values
    to put back; None without the hub."""
    try:
        return importlib.import_module("huggingface_hub.constants")
    except ImportError:
        return None


def enable_offline() -> None:
    """Offline for the rest of this process (and its children), until disable_offline(): pinned on, so an
    offline_while block open now does not switch it off when it ends."""
    with _SCOPE_LOCK:
        _SCOPE["enabled"] = False
        _enable()


def _enable() -> None:
    global _saved
    if _saved is not None:
        return
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo

    def connect(self, address):
        if not _allowed(self, address):
            raise FetchError(f"offline mode: refused a connection to {address[0]}:{address[1]} "
                             "(only loopback is allowed)")
        return real_connect(self, address)

    def connect_ex(self, address):
        if not _allowed(self, address):
            return 101  # ENETUNREACH
        return real_connect_ex(self, address)

    def getaddrinfo(host, *args, **kwargs):
        # a library that tries the network anyway asks for the host's address first: a query sent to the name
        # server, and in a lab whose resolver is unreachable a wait of seconds per try before the connect guard
        # refuses. Refused here as a failed lookup (what such a library expects, and handles), sending nothing
        if not _lookup_allowed(host):
            raise socket.gaierror(socket.EAI_NONAME, f"offline mode: will not look up {host!r} (only loopback "
                                                     "is allowed)")
        return real_getaddrinfo(host, *args, **kwargs)

    hub = _hub_constants()
    _saved = {"env": {k: os.environ.get(k) for k in OFFLINE_ENV},
              "hub": (hub, {k: getattr(hub, k) for k in _HUB_CONSTANTS if hasattr(hub, k)}),
              "socket": (real_connect, real_connect_ex), "getaddrinfo": real_getaddrinfo}
    os.environ.update(OFFLINE_ENV)
    for k in _saved["hub"][1]:
        setattr(hub, k, True)
    socket.socket.connect = connect
    socket.socket.connect_ex = connect_ex
    socket.getaddrinfo = getaddrinfo


def disable_offline() -> None:
    global _saved
    if _saved is None:
        return
    socket.socket.connect, socket.socket.connect_ex = _saved["socket"]
    socket.getaddrinfo = _saved["getaddrinfo"]
    for k, v in _saved["env"].items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    hub, values = _saved["hub"]
    for k, v in values.items():
        setattr(hub, k, v)
    _saved = None


_SCOPE = {"depth": 0, "enabled": False}     # offline_while blocks open, and whether the first switched it on
_SCOPE_LOCK = threading.Lock()


@contextmanager
def offline_while(on: bool) -> Iterator[None]:
    """Offline mode while the block runs when `on` (Settings.offline), switched off again when the last such
    block ends, unless it was on before the first began or enable_offline() was called meanwhile (the CLI's
    enable_offline holds for the whole command). Without it, a program that called the steps with offline set
    reached the network (the RSS feed, Hugging Face): only the CLI read the setting.
    The switch is the process's: while the block runs, every thread is offline, a step called with offline off
    in another thread included."""
    if not on:
        yield
        return
    with _SCOPE_LOCK:
        if _SCOPE["depth"] == 0:
            _SCOPE["enabled"] = not is_offline()
            _enable()
        _SCOPE["depth"] += 1
    try:
        yield
    finally:
        with _SCOPE_LOCK:
            _SCOPE["depth"] -= 1
            if _SCOPE["depth"] == 0 and _SCOPE["enabled"]:
                _SCOPE["enabled"] = False
                disable_offline()
