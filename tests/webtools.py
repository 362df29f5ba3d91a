"""Helpers of the web tests: a real `ranker serve` in a subprocess on a free 127.0.0.1 port, and headless Chromium
(Debian's /usr/bin/chromium) driven by Playwright. Playwright's own browser download is never used."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from contextlib import closing, contextmanager
from pathlib import Path

import pytest

from conftest import RANKER

CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--no-default-browser-check",
                 "--disable-dev-shm-usage", "--disable-sync", "--metrics-recording-only"]


def chromium_path() -> str | None:
    for cand in ("/usr/bin/chromium", shutil.which("chromium") or "", shutil.which("chromium-browser") or ""):
        if cand and os.path.exists(cand):
            return cand
    return None


def have_playwright() -> bool:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return False
    return True


needs_browser = pytest.mark.skipif(chromium_path() is None or not have_playwright(),
                                   reason="needs Debian's chromium and the playwright package (the test extra)")


@contextmanager
def browser():
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


@contextmanager
def browser_or_skip():
    """browser() for a module's fixture, or its tests skipped where Debian's chromium or playwright is missing."""
    if chromium_path() is None or not have_playwright():
        pytest.skip("needs Debian's chromium and the playwright package")
    with browser() as b:
        yield b


class OwnPages:
    """A browser shared by a module's tests (one Chromium start, not one a test), as one test's own: each page it
    opens is in a context of its own, as Browser.new_page() makes it (no cookies, storage or cache shared with
    any other page), and every context is closed when the test's block ends."""

    def __init__(self, b):
        self._browser, self._contexts = b, []

    def new_page(self, **kwargs):
        context = self._browser.new_context(**kwargs)
        self._contexts.append(context)
        return context.new_page()

    def close(self) -> None:
        while self._contexts:
            self._contexts.pop().close()


@contextmanager
def own_pages(b):
    pages = OwnPages(b)
    try:
        yield pages
    finally:
        pages.close()


def watched_page(b):
    """A new page of browser (or context) `b` and the list its script errors are gathered in."""
    page, errors = b.new_page(), []
    page.on("pageerror", lambda e: errors.append(str(e)))
    return page, errors


class Server:
    def __init__(self, proc: subprocess.Popen, url: str, log: Path):
        self.proc, self.url, self.log = proc, url.rstrip("/"), log

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def start_server(db: Path, log: Path, *args: str, timeout: float = 60, env: dict | None = None) -> Server:
    """`ranker serve --port 0 --db DB ARGS...` (`env`: variables besides this process's); returns once it
    printed the address it listens on."""
    fh = open(log, "w")
    proc = subprocess.Popen([*RANKER, "serve", "--port", "0", "--db", str(db), *args], stdout=fh,
                            stderr=subprocess.STDOUT, text=True, env={**os.environ, "RANKER_DEBUG": "1", **(env or {})})
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = re.search(r"serving (http://\S+?)/?[;\s]", log.read_text())
        if m:
            return Server(proc, m.group(1), log)
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"ranker serve did not start: {log.read_text()[-2000:]}")


@contextmanager
def read_only_copy(db: Path, media: Path):
    """A copy of the database `db` (SQLite's backup) as media/ranker.sqlite3, on read-only media while the block
    runs: a tmpfs remounted read-only where mounting is permitted (root), else file and folder modes. Yields the
    copy's path; skipped where root cannot mount."""
    import sqlite3
    media.mkdir()
    root = os.geteuid() == 0
    if root and subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(media)]).returncode != 0:
        pytest.skip("root without mount: cannot make a folder read-only")
    try:
        with closing(sqlite3.connect(db)) as src, closing(sqlite3.connect(media / "ranker.sqlite3")) as copy:
            src.backup(copy)
        if root:
            subprocess.run(["mount", "-o", "remount,ro", str(media)], check=True)
        else:
            os.chmod(media / "ranker.sqlite3", 0o444)
            os.chmod(media, 0o555)
        yield media / "ranker.sqlite3"
    finally:
        if root:
            subprocess.run(["umount", str(media)], check=True)
        else:
            os.chmod(media, 0o755)
