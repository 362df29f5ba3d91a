"""Commands that meet on one home (cron's `ranker run` while the user's `ranker serve` takes thumbs, a second run
of the same day, `ranker site` or `ranker calibrate` while others write): every pair either works or refuses in one
clear line; none corrupts the other's files or the database, and no label answered as stored is lost."""
from __future__ import annotations

import json
import re
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

import crashkit
from conftest import DAYS, REPO
from webtools import start_server

pytestmark = pytest.mark.slow

DAY = REPO / "ranker" / "data" / "2025-05-15" / "listing.jsonl"
OTHER = DAYS / "2025-05-13" / "listing.jsonl"
FAKE = ("--backend", "fake", "--model", "tiny")
DATA_FILES = ("prefilter.jsonl", "scores.jsonl", "output.md", "output.json")


def _env(home: Path) -> dict:
    return crashkit.environment({"RANKER_HOME": home, "RANKER_OFFLINE": "1"})


def _start(home: Path, *args) -> subprocess.Popen:
    return subprocess.Popen(crashkit.command(*args), env=_env(home), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _ok(home: Path, *args) -> subprocess.CompletedProcess:
    p = subprocess.run(crashkit.command(*args), env=_env(home), capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-1500:]
    return p


@pytest.fixture(scope="module")
def homes(tmp_path_factory):
    """(a home holding both days' vectors, the earlier day run; the files a lone run of the day writes there)."""
    from ranker.sources import read_papers
    from ranker.store import Store

    from conftest import store_vectors
    base = tmp_path_factory.mktemp("concurrent")
    template = base / "template"
    with Store(template / "ranker.sqlite3") as s:
        store_vectors(s, list(read_papers(OTHER)) + list(read_papers(DAY)))
    _ok(template, "run", "--papers", OTHER, *FAKE, "--out", template / "out")
    ref = crashkit.fresh_copy(template, base / "reference")
    _ok(ref, "run", "--papers", DAY, *FAKE, "--out", ref / "out")
    return template, crashkit.files(ref / "out")


def _data(folder: dict, day: str = "2025-05-15") -> tuple:
    return tuple(folder.get(f"{day}-{n}") for n in DATA_FILES)


class Thumbs:
    """Thumbs up posted to a real `ranker serve` one after another, from a thread, until stopped: which were
    answered as stored, which refused and how, and when each was answered."""

    def __init__(self, server, ids: list[str]):
        self.server, self.ids = server, ids
        self.stored: list[str] = []
        self.refused: list[tuple[str, int, str]] = []
        self.times: list[float] = []
        self._stop = threading.Event()
        html = urllib.request.urlopen(server.url + "/", timeout=30).read().decode()
        self.token = re.search(r'<meta name="csrf-token" content="([^"]+)"', html).group(1)
        self.thread = threading.Thread(target=self._post_all, daemon=True)

    def _post_all(self) -> None:
        for pid in self.ids:
            if self._stop.is_set():
                return
            data = urllib.parse.urlencode({"paper_id": pid, "label": "up", "csrf": self.token}).encode()
            req = urllib.request.Request(self.server.url + "/label", data=data, method="POST",
                                         headers={"Origin": self.server.url, "Accept": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=60) as r:
                    assert json.loads(r.read())["label"] == 1
                    self.stored.append(pid)
            except urllib.error.HTTPError as e:
                self.refused.append((pid, e.code, e.read().decode()[:300]))
            self.times.append(time.monotonic())

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self.thread.join(120)

    def wait_for(self, n: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while len(self.times) < n and self.thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)


def _labels(db: Path) -> set[str]:
    return {r[0] for r in crashkit.rows(db, "SELECT paper_id FROM labels WHERE label=1")}


def test_run_while_serve_takes_thumbs_loses_no_label(homes, tmp_path):
    template, reference = homes
    home = crashkit.fresh_copy(template, tmp_path / "home")
    db = home / "ranker.sqlite3"
    ids = [json.loads(x)["id"] for x in OTHER.read_text().splitlines()]
    server = start_server(db, tmp_path / "serve.log")
    try:
        with Thumbs(server, ids) as thumbs:
            thumbs.wait_for(3)                               # the server answers thumbs before the run starts
            run = _start(home, "run", "--papers", DAY, *FAKE, "--out", home / "out")
            out, err = run.communicate(timeout=120)
            ended = time.monotonic()
            during = len(thumbs.times)
            thumbs.wait_for(during + 3)                      # ... and after it ended
        assert run.returncode == 0, err
        assert any(t < ended for t in thumbs.times[3:]), "no thumb was answered while the run ran"
    finally:
        server.stop()
    assert not thumbs.refused, thumbs.refused
    assert _labels(db) == set(thumbs.stored) and len(thumbs.stored) > 6
    assert _data(crashkit.files(home / "out")) == _data(reference)
    assert crashkit.integrity(db) == "ok"


def test_two_runs_of_one_day_at_once_one_refuses_in_a_line_or_both_finish(homes, tmp_path):
    template, reference = homes
    home = crashkit.fresh_copy(template, tmp_path / "home")
    a = _start(home, "run", "--papers", DAY, *FAKE, "--out", home / "out")
    b = _start(home, "run", "--papers", DAY, *FAKE, "--out", home / "out")
    results = [(p.wait(120), p.communicate()[1]) for p in (a, b)]
    assert any(rc == 0 for rc, _ in results), results
    for rc, err in results:
        if rc != 0:
            assert rc == 1 and re.search(r"another run of 2025-05-15 is under way on this database \(process \d+",
                                         err), err
            assert len(err.strip().splitlines()) == 1 + err.count("loading the fake"), err
    assert _data(crashkit.files(home / "out")) == _data(reference)
    assert json.loads((home / "out" / "2025-05-15-run.json").read_text())["status"] == "ok"
    assert crashkit.integrity(home / "ranker.sqlite3") == "ok"


def test_site_while_a_run_writes_builds_whole_pages_and_a_rebuild_catches_up(homes, tmp_path):
    template, _ = homes
    home = crashkit.fresh_copy(template, tmp_path / "home")
    site = tmp_path / "site"
    run = _start(home, "run", "--papers", DAY, *FAKE, "--out", home / "out")
    built = _start(home, "site", "--out", site)
    for p in (run, built):
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    _ok(home, "site", "--out", site)                         # after both: catches up with what the run stored
    fresh = crashkit.fresh_copy(home, tmp_path / "fresh")
    _ok(fresh, "site", "--out", tmp_path / "site-fresh")
    got, want = crashkit.files(site), crashkit.files(tmp_path / "site-fresh")
    got.pop(".ranker-site-pages"), want.pop(".ranker-site-pages")
    assert got.keys() == want.keys()
    assert [k for k in got if got[k] != want[k]] == []


def test_calibrate_while_thumbs_arrive(homes, tmp_path):
    template, _ = homes
    home = crashkit.fresh_copy(template, tmp_path / "home")
    db = home / "ranker.sqlite3"
    ids = [json.loads(x)["id"] for x in OTHER.read_text().splitlines()]
    from ranker.store import Store
    with Store(db) as s:                                     # enough labels to learn from alone
        for i, pid in enumerate(ids[200:230]):
            s.set_label(pid, 1 if i % 2 else -1, "2025-05-13")
    before = _labels(db)
    server = start_server(db, tmp_path / "serve.log")
    try:
        with Thumbs(server, ids[:150]) as thumbs:
            thumbs.wait_for(3)
            cal = _start(home, "calibrate", "--out", tmp_path / "cal.json")
            _, err = cal.communicate(timeout=300)
            thumbs.wait_for(len(thumbs.times) + 3)
        assert cal.returncode == 0, err
    finally:
        server.stop()
    assert not thumbs.refused, thumbs.refused
    assert _labels(db) == before | set(thumbs.stored)
    assert json.loads((tmp_path / "cal.json").read_text())["format"]
    assert crashkit.integrity(db) == "ok"


def test_a_long_fetch_lets_other_writers_in(tmp_path):
    """`ranker fetch --from SNAPSHOT` (years of arXiv, read for minutes) stored every paper in one transaction,
    holding the database's write lock until the end: a thumb in `ranker serve` was refused after 5 s, cron's
    `ranker run` failed "database is locked" after 30 s. Now another process's write gets in within a second,
    while the fetch goes on, and the fetch stores every paper once."""
    from ranker.store import Store

    from conftest import make_snapshot
    home = tmp_path / "home"
    db = home / "ranker.sqlite3"
    _ok(home, "fetch", "--from", DAY, "--out", tmp_path / "day.jsonl")
    labelled = json.loads(DAY.read_text().splitlines()[0])["id"]
    snap = make_snapshot(tmp_path / "snap.json", 20000)
    out = tmp_path / "big.jsonl"
    fetch = _start(home, "fetch", "--from", snap, "--category", "cs.LG,cs.AI", "--out", out)
    try:
        deadline = time.monotonic() + 120
        while not any(f.stat().st_size > 2_000_000 for f in tmp_path.glob(".big.jsonl.*.tmp")):
            assert fetch.poll() is None, fetch.communicate()[1]
            assert time.monotonic() < deadline
            time.sleep(0.01)
        t0 = time.monotonic()                     # papers are being stored: the fetch is in its transaction
        with Store(db, busy_timeout=3.0) as s:    # a thumb, as `ranker serve` stores one
            s.set_label(labelled, 1, "2025-05-15")
        waited = time.monotonic() - t0
        assert fetch.poll() is None, "the fetch ended before the label was written: nothing was tested"
    finally:
        _, err = fetch.communicate(timeout=300)
    assert fetch.returncode == 0, err
    assert waited < 2.0
    ids = [json.loads(x)["id"] for x in out.read_text().splitlines()]
    stored = crashkit.rows(db, "SELECT COUNT(*) FROM papers")[0][0]
    assert stored == len(set(ids)) + len(DAY.read_text().splitlines())
    assert crashkit.rows(db, "SELECT label FROM labels WHERE paper_id=?", labelled) == [(1,)]
    assert crashkit.integrity(db) == "ok"


def test_two_commands_upgrading_an_older_home_at_once_both_finish(tmp_path, monkeypatch):
    """Cron's run and the user's labels import both open a home an older ranker made (three migrations behind):
    each migration is applied once, by whichever gets there first, and both commands do their work."""
    import ranker.store as st
    from ranker.migrations import MIGRATIONS
    from ranker.sources import read_papers
    from ranker.store import Store

    from conftest import store_vectors
    home = tmp_path / "old"
    monkeypatch.setattr(st, "MIGRATIONS", MIGRATIONS[:3])
    with Store(home / "ranker.sqlite3") as s:
        store_vectors(s, list(read_papers(DAY)))
    monkeypatch.undo()
    ids = [json.loads(x)["id"] for x in DAY.read_text().splitlines()][:20]
    lab = tmp_path / "labels.jsonl"
    lab.write_text("".join(json.dumps({"id": pid, "label": 1, "time": f"2025-05-16T10:00:{i:02d}Z"}) + "\n"
                           for i, pid in enumerate(ids)))
    run = _start(home, "run", "--papers", DAY, *FAKE, "--out", home / "out")
    imp = _start(home, "labels", "import", lab)
    for p in (run, imp):
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    db = home / "ranker.sqlite3"
    assert [r[0] for r in crashkit.rows(db, "SELECT name FROM _migrations ORDER BY rowid")] == \
        [m.__name__ for m in MIGRATIONS]
    assert _labels(db) == set(ids)
    assert json.loads((home / "out" / "2025-05-15-run.json").read_text())["status"] == "ok"
    assert crashkit.integrity(db) == "ok"
