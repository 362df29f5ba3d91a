"""Offline mode: no network connection except to loopback.

`enable_offline()` puts Hugging Face, transformers, vLLM and friends in their offline / no-telemetry modes
through environment variables (which child processes such as vLLM's engine core inherit) and installs a
guard on socket connects in this process, so a library that tries anyway fails loudly instead of leaking.
"""
from __future__ import annotations

import os
import socket

from .errors import FetchError
from .io import is_loopback_host

OFFLINE_ENV = {
    "RANKER_OFFLINE": "1",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "VLLM_NO_USAGE_STATS": "1",
    "VLLM_DO_NOT_TRACK": "1",
    "DO_NOT_TRACK": "1",
    "VLLM_HOST_IP": "127.0.0.1",     # else vLLM finds its address by a UDP "connect" to a public IP
}
_installed = False


def _allowed(sock: socket.socket, address) -> bool:
    if sock.family not in (socket.AF_INET, socket.AF_INET6):
        return True          # unix sockets, netlink: not the network
    host = address[0] if isinstance(address, tuple) else str(address)
    return is_loopback_host(str(host))


def install_guard() -> None:
    """Make every non-loopback connect in this process fail with a clear error."""
    global _installed
    if _installed:
        return
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex

    def connect(self, address):
        if not _allowed(self, address):
            raise FetchError(f"offline mode: refused a connection to {address[0]}:{address[1]} "
                             "(only loopback is allowed; unset RANKER_OFFLINE to go online)")
        return real_connect(self, address)

    def connect_ex(self, address):
        if not _allowed(self, address):
            return 101  # ENETUNREACH
        return real_connect_ex(self, address)

    socket.socket.connect = connect
    socket.socket.connect_ex = connect_ex
    _installed = True


def enable_offline() -> None:
    os.environ.update(OFFLINE_ENV)
    install_guard()
