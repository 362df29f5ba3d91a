"""kill -9 of fetch, labels import, the corpus index's rebuild and merge, calibrate, site and a migration of an
older home, at every point of each (tests/crashkit.py) or an even spread of a long one's: the database passes
PRAGMA integrity_check, what the home held before is all there, a file under its real name is whole (the old one
or the new one), and running the command again finishes the job as a run never killed does."""
from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

import crashkit
from conftest import DAYS, REPO

pytestmark = pytest.mark.slow

DAY = REPO / "ranker" / "data" / "2025-05-15" / "listing.jsonl"
OTHER = DAYS / "2025-05-13" / "listing.jsonl"
FAKE = ("--backend", "fake", "--model", "tiny")
# What each table holds, less the times and run ids a rerun writes anew
TABLES = {"papers": "*", "paper_days": "*", "embeddings": "*", "labels": "*",
          "scores": "paper_id, model, prompt_hash, relevance, novelty, comment",
          "rankings": "day, paper_id, prefilter_score, kept, topic, rule, embedder",
          "day_digests": "day, model, prompt_hash, min_relevance, min_novelty",
          "label_events": "paper_id, label, day, created_at, source"}


def _env(home: Path) -> dict:
    return {"RANKER_HOME": home, "RANKER_OFFLINE": "1"}


def _ok(home: Path, *args) -> subprocess.CompletedProcess:
    p = subprocess.run(crashkit.command(*args), env=crashkit.environment(_env(home)), capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-1500:]
    return p


def _tables(db: Path) -> dict:
    return {t: crashkit.rows(db, f"SELECT {cols} FROM {t} ORDER BY 1, 2") for t, cols in TABLES.items()}


def _kept(before: dict, after: dict, changes: tuple[str, ...] = ()) -> None:
    """Every row `before` held is in `after` (a command may add rows, never lose one; but those of the tables it
    `changes`: a labels import turns a label over)."""
    for t in set(TABLES) - set(changes):
        assert set(before[t]) <= set(after[t]), f"{t}: rows lost"


def _labels_file(path: Path, ids: list[str], start: int = 0) -> Path:
    path.write_text("".join(json.dumps({"id": pid, "label": 1 if i % 2 else -1,
                                        "time": f"2025-05-16T10:{i // 60:02d}:{i % 60:02d}Z", "day": "2025-05-13"})
                            + "\n" for i, pid in enumerate(ids, start)))
    return path


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """A home with the earlier day's vectors (and the queries'), that day run, and a few labels on it."""
    from ranker.sources import read_papers
    from ranker.store import Store

    from conftest import store_vectors
    home = tmp_path_factory.mktemp("crash-commands") / "home"
    with Store(home / "ranker.sqlite3") as s:
        store_vectors(s, list(read_papers(OTHER)))
    _ok(home, "run", "--papers", OTHER, *FAKE, "--out", home / "out")
    ids = [json.loads(x)["id"] for x in OTHER.read_text().splitlines()]
    _ok(home, "labels", "import", _labels_file(home / "first-labels.jsonl", ids[:10]))
    return home


def _sweep(template: Path, tmp_path: Path, args, check_killed, *, spread: int = 0, prepare=None,
           changes: tuple[str, ...] = ()):
    """Run `args` on a copy of `template` never killed (the reference: its home afterwards), then on a fresh
    copy killed at each of its points (with `spread`, that many spread evenly, the last always):
    check_killed(home, reference, point) after each kill, then the command run again must leave the database as
    the reference's."""
    args = [str(a) for a in args]
    ref = crashkit.fresh_copy(template, tmp_path / "reference")
    if prepare:
        prepare(ref)
    p, points = crashkit.trace([a.replace(str(template), str(ref)) for a in args], _env(ref), tmp_path / "t.txt")
    assert p.returncode == 0, p.stderr
    every = max(1, (len(points) - 1) // spread) if spread else 1
    chosen = sorted(set(range(2, len(points) + 1, every)) | {len(points)})  # (1: the log file, before anything)
    for n in chosen:
        home = crashkit.fresh_copy(template, tmp_path / "home")
        if prepare:
            prepare(home)
        before = _tables(home / "ranker.sqlite3")
        mine = [a.replace(str(template), str(home)) for a in args]
        crashkit.kill_at(mine, _env(home), n)
        assert crashkit.integrity(home / "ranker.sqlite3") == "ok", points[n - 1]
        _kept(before, _tables(home / "ranker.sqlite3"), changes)
        check_killed(home, ref, points[n - 1])
        _ok(home, *mine)
        assert _tables(home / "ranker.sqlite3") == _tables(ref / "ranker.sqlite3"), points[n - 1]
        assert crashkit.integrity(home / "ranker.sqlite3") == "ok"
    return points


def test_fetch_from_a_saved_file_killed_anywhere(template, tmp_path):
    out = template / "day.jsonl"

    def check(home, ref, point):
        got = home / "day.jsonl"
        assert not got.exists() or got.read_bytes() == (ref / "day.jsonl").read_bytes(), point
    points = _sweep(template, tmp_path, ["fetch", "--from", DAY, "--out", out], check)
    assert len(points) >= 6


def test_labels_import_killed_anywhere_is_all_or_nothing(template, tmp_path):
    ids = [json.loads(x)["id"] for x in OTHER.read_text().splitlines()]
    # an import that changes labels the home holds (the first ten again, turned over) and adds others
    f = tmp_path / "labels.jsonl"
    f.write_text("".join(json.dumps({"id": pid, "label": -1 if i % 2 else 1,
                                     "time": f"2025-05-17T10:00:{i:02d}Z"}) + "\n" for i, pid in enumerate(ids[:40])))

    def check(home, ref, point):
        now = crashkit.rows(home / "ranker.sqlite3", "SELECT * FROM labels ORDER BY 1")
        was = crashkit.rows(template / "ranker.sqlite3", "SELECT * FROM labels ORDER BY 1")
        assert now in (was, crashkit.rows(ref / "ranker.sqlite3", "SELECT * FROM labels ORDER BY 1")), point
    _sweep(template, tmp_path, ["labels", "import", f], check, changes=("labels",))


def _similar(home: Path, pid: str) -> str:
    return _ok(home, "similar", pid, "--k", "5").stdout


def _index_case(template: Path, tmp_path: Path, args) -> list[str]:
    """The day's vectors arrive after the index was built; `args` killed at an even spread of its points, the
    index as the kill left it answers `ranker similar` as one rebuilt from the same database does."""
    from ranker.sources import read_papers
    from ranker.store import Store

    from conftest import store_vectors
    new = [p.id for p in read_papers(DAY)]

    def add_day(home: Path) -> None:
        with Store(home / "ranker.sqlite3") as s:
            store_vectors(s, list(read_papers(DAY)))

    def check(home, ref, point):
        rebuilt = crashkit.fresh_copy(home, home.parent / "rebuilt")
        _ok(rebuilt, "index", "rebuild")
        assert _similar(home, new[0]) == _similar(rebuilt, new[0]), point
    return _sweep(template, tmp_path, args, check, spread=4, prepare=add_day)


def test_index_merge_of_a_run_killed_anywhere_leaves_an_index_that_answers(template, tmp_path):
    points = _index_case(template, tmp_path, ["run", "--papers", DAY, *FAKE, "--out", template / "out"])
    assert any(x.startswith("open seg-") for x in points)           # the run did merge a segment into the index


def test_index_rebuild_killed_anywhere_leaves_an_index_that_answers(template, tmp_path):
    points = _index_case(template, tmp_path, ["index", "rebuild"])
    assert any(x.startswith("rename .manifest.json") for x in points)


def test_calibrate_killed_anywhere_leaves_the_old_file_or_the_new(template, tmp_path):
    ids = [json.loads(x)["id"] for x in OTHER.read_text().splitlines()]
    cal = template / "cal.json"

    def prepare(home: Path) -> None:
        _ok(home, "labels", "import", _labels_file(home / "more.jsonl", ids[10:40], 10))
        (home / "cal.json").write_text('{"earlier": "calibration"}')

    def fit(path: Path) -> dict:
        d = json.loads(path.read_text())
        for k in ("created", "seconds"):
            d.get("trained_on", {}).pop(k, None)
        return d

    def check(home, ref, point):
        got = home / "cal.json"
        assert got.read_bytes() == b'{"earlier": "calibration"}' or fit(got) == fit(ref / "cal.json"), point
    ref = tmp_path / "reference"
    _sweep(template, tmp_path, ["calibrate", "--out", cal], check, spread=3, prepare=prepare)
    assert fit(tmp_path / "home" / "cal.json") == fit(ref / "cal.json")


@pytest.mark.parametrize("command", ["score", "prefilter"])
def test_an_out_file_killed_before_its_rename_leaves_no_temporary_file_past_the_next_command(template, tmp_path,
                                                                                             command):
    """`ranker score --out` / `ranker prefilter --out` killed (kill -9, the OOM killer) with the file written but
    not yet named: the whole temporary `.NAME.XXXXXXXX.tmp` beside it stayed there forever, a rerun writing a
    new one of its own (a day's scores, a snapshot's ranking: megabytes each time). The next command writing
    that --out removes it, as fetch's --out does."""
    args = [command, "--papers", OTHER, "--out", template / "o.jsonl", *(FAKE if command == "score" else ())]
    ref = crashkit.fresh_copy(template, tmp_path / "reference")
    p, points = crashkit.trace([str(a).replace(str(template), str(ref)) for a in args], _env(ref),
                               tmp_path / "t.txt")
    assert p.returncode == 0, p.stderr
    home = crashkit.fresh_copy(template, tmp_path / "home")
    mine = [str(a).replace(str(template), str(home)) for a in args]
    (n,) = crashkit.pick(points, "rename .o.jsonl.*.tmp -> o.jsonl")
    crashkit.kill_at(mine, _env(home), n)
    (left,) = home.glob(".o.jsonl.*.tmp")
    assert left.read_bytes() == (ref / "o.jsonl").read_bytes()       # the whole file, not yet named
    _ok(home, *mine)
    assert not list(home.glob(".o.jsonl.*.tmp"))
    assert (home / "o.jsonl").read_bytes() == (ref / "o.jsonl").read_bytes()


_LINK = re.compile(rb'href="([^"#?:]+\.html)"')


def _site_links_resolve(site: Path) -> list[str]:
    broken = []
    for page in site.rglob("*.html"):
        for href in _LINK.findall(page.read_bytes()):
            if not (page.parent / href.decode()).resolve().is_file():
                broken.append(f"{page.relative_to(site)} -> {href.decode()}")
    return broken


def test_site_rebuild_killed_anywhere_leaves_whole_pages_that_link_only_to_pages_there(tmp_path):
    """The site of a day, rebuilt once the day was run again under another keep rule (its day page and many of its
    paper pages change): killed anywhere (an even spread of its points), every page is the earlier build's or
    the new one's, whole, no link leads to a page that is not there, and the next build equals a build never
    killed."""
    from ranker.sources import read_papers
    from ranker.store import Store

    from conftest import store_vectors
    home0 = tmp_path / "with-site"
    with Store(home0 / "ranker.sqlite3") as s:
        store_vectors(s, list(read_papers(DAY)))
    _ok(home0, "run", "--papers", DAY, *FAKE, "--top", "5", "--out", home0 / "out")
    _ok(home0, "site", "--out", home0 / "site")
    earlier = crashkit.files(home0 / "site")
    _ok(home0, "run", "--papers", DAY, *FAKE, "--out", home0 / "out")

    def check(home, ref, point):
        now, new = crashkit.files(home / "site"), crashkit.files(ref / "site")
        for name, data in now.items():
            if name.endswith((".html", ".js", ".css")) and not name.startswith("."):
                assert data in (earlier.get(name), new.get(name)), f"{name} torn ({point})"
        assert _site_links_resolve(home / "site") == [], point
    points = _sweep(home0, tmp_path / "sweep", ["site", "--out", home0 / "site"], check, spread=5)
    final = crashkit.files(tmp_path / "sweep" / "home" / "site")
    want = crashkit.files(tmp_path / "sweep" / "reference" / "site")
    for d in (final, want):
        d.pop(".ranker-site-pages", None)
    assert final == want
    assert len(points) > 100


def test_a_migration_of_an_older_home_killed_anywhere_keeps_its_data(tmp_path, monkeypatch):
    """A home an older ranker made (its schema three migrations old, a day, scores, a label) opened by a
    command that writes: killed at any of the migrations' commits, the home keeps what it held, and the next
    command finishes the upgrade."""
    import ranker.store as st
    from ranker.migrations import MIGRATIONS
    from ranker.sources import read_papers
    from ranker.store import Store

    from conftest import store_vectors
    home = tmp_path / "old"
    monkeypatch.setattr(st, "MIGRATIONS", MIGRATIONS[:3])
    with Store(home / "ranker.sqlite3") as s:
        papers = list(read_papers(OTHER))
        s.add_papers(papers)
        store_vectors(s, papers)
        s.set_label(papers[0].id, 1, "2025-05-13")
        s.conn.execute("INSERT INTO scores (paper_id, model, prompt_hash, relevance, novelty, comment, created_at) "
                       "VALUES (?, 'm', 'h', 9, 8, 'good', 1.0)", (papers[1].id,))
    monkeypatch.undo()
    assert crashkit.rows(home / "ranker.sqlite3", "SELECT COUNT(*) FROM _migrations") == [(3,)]
    lab = _labels_file(tmp_path / "l.jsonl", [papers[2].id])

    def old_rows(db: Path) -> dict:
        return {"papers": crashkit.rows(db, "SELECT id, title FROM papers ORDER BY id"),
                "labels": crashkit.rows(db, "SELECT paper_id, label FROM labels WHERE paper_id=?", papers[0].id),
                "scores": crashkit.rows(db, "SELECT paper_id, relevance, novelty, comment FROM scores"),
                "embeddings": crashkit.rows(db, "SELECT COUNT(*) FROM embeddings")}
    before = old_rows(home / "ranker.sqlite3")
    _, points = crashkit.trace(["labels", "import", lab], _env(crashkit.fresh_copy(home, tmp_path / "t")),
                               tmp_path / "trace.txt")
    commits = crashkit.pick(points, "commit")
    assert len(commits) >= len(MIGRATIONS) - 3
    for n in commits:
        h = crashkit.fresh_copy(home, tmp_path / "h")
        crashkit.kill_at(["labels", "import", lab], _env(h), n)
        db = h / "ranker.sqlite3"
        assert crashkit.integrity(db) == "ok"
        assert old_rows(db) == before
        _ok(h, "labels", "import", lab)
        assert [r[0] for r in crashkit.rows(db, "SELECT name FROM _migrations ORDER BY rowid")] == \
            [m.__name__ for m in MIGRATIONS]
        assert old_rows(db) == before
        assert crashkit.rows(db, "SELECT label FROM labels WHERE paper_id=?", papers[2].id) == [(-1,)]
