# Loaded at start-up by every Python process of a test run that puts this folder on PYTHONPATH (children
# inherit it). Records, then refuses, any attempt to reach a non-loopback address: the test reads the log.
import os
import socket

_LOG = os.environ.get("RANKER_TEST_NETLOG")

if _LOG:
    import ipaddress

    def _loopback(host):
        if host in ("localhost", ""):
            return True
        try:
            return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
        except ValueError:
            return False

    def _record(what):
        with open(_LOG, "a") as f:
            f.write(f"{os.getpid()} {what}\n")

    _connect, _connect_ex, _getaddrinfo = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo

    def connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _loopback(address[0]):
            _record(f"connect {address}")
            raise OSError(101, "network unreachable (test guard)")
        return _connect(self, address)

    def connect_ex(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _loopback(address[0]):
            _record(f"connect_ex {address}")
            return 101
        return _connect_ex(self, address)

    def getaddrinfo(host, *args, **kwargs):
        if host is not None and not _loopback(host if isinstance(host, str) else host.decode()):
            _record(f"getaddrinfo {host}")
            raise socket.gaierror(socket.EAI_NONAME, "name resolution refused (test guard)")
        return _getaddrinfo(host, *args, **kwargs)

    socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo = connect, connect_ex, getaddrinfo
