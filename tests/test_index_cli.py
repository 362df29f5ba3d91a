"""`ranker similar`, `ranker index` and the index hooks of fetch / prefilter / run, as real subprocesses on a
real SQLite store: fast ones on stored vectors (no model), a slow one on real MiniLM vectors of two test days
with a planted re-upload."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from ranker.records import Paper
from ranker.store import Store

from conftest import DAYS, ranker, store_vectors


def listing(day: str, n: int | None = None) -> list[dict]:
    rows = [json.loads(line) for line in (DAYS / day / "listing.jsonl").read_text().splitlines()]
    return rows[:n] if n else rows


def write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


# --------------------------------------------------------------------------- fast: stored vectors, no model
@pytest.fixture
def stocked(tmp_path):
    """A database with papers of two days and 384-d vectors stored under the minilm key (no model involved)."""
    db = tmp_path / "r.sqlite3"
    rng = np.random.default_rng(0)
    papers = [Paper.from_dict(r) for r in listing("2025-05-13", 30) + listing("2025-05-15", 30)]
    v = rng.normal(size=(len(papers), 384)).astype(np.float32)
    v[40] = v[3] + 0.05 * v[40]                                 # a 05-15 paper close to a 05-13 one
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    with Store(db) as s:
        s.add_papers(papers)
        s.put_embeddings(((p.id, "h", v[i]) for i, p in enumerate(papers)), "minilm")
    return db, papers


def test_similar_lists_days_titles_and_cosines_and_status_counts(stocked):
    db, papers = stocked
    r = ranker("similar", papers[40].id, "--k", "3", "--db", db)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 3
    cos, day, pid, *title = lines[0].split()
    assert (pid, day) == (papers[3].id, "2025-05-13") and float(cos) > 0.99 and " ".join(title) == papers[3].title
    assert "index built from the store (there was no index yet): 60 vectors, exact" in r.stderr
    assert f"nearest to {papers[40].id} (2025-05-15)" in r.stderr

    r = ranker("similar", papers[40].id, "--k", "50", "--since", "2025-05-14", "--db", db)
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 29            # the 05-15 papers, less itself
    assert all(line.split()[1] == "2025-05-15" for line in r.stdout.splitlines())

    r = ranker("index", "status", "--db", db)
    assert r.returncode == 0, r.stderr
    assert "embedder      minilm" in r.stdout and "vectors     60 (the database holds 60)" in r.stdout
    assert "kind        exact (flat)" in r.stdout and "agrees with the database (full check)" in r.stdout
    r = ranker("index", "rebuild", "--db", db)
    assert r.returncode == 0 and "index rebuilt for minilm: 60 vectors, exact" in r.stderr


@pytest.mark.parametrize("args, message", [
    (("2599.99999",), "2599.99999: unknown paper: the store has neither its vector nor its text"),
    (("x", "--since", "last week"), "--since: expected a day as YYYY-MM-DD, got 'last week'"),
    (("x", "--k", "0"), "--k"),
    # another site's page of a paper was embedded as the URL's text and answered with papers near that string
    (("https://huggingface.co/papers/2504.11459",), "https://huggingface.co/papers/2504.11459: is a link, not an "
     "arXiv id or text to search for: give `ranker similar 2504.11459`"),
    (("https://www.semanticscholar.org/paper/Attention-is-All-you-Need/204e3073",), "is a link, not an arXiv id or "
     "text to search for: give its arXiv id (or an arxiv.org/abs/ link)"),
])
def test_similar_bad_input_is_one_line(stocked, args, message):
    db, _ = stocked
    r = ranker("similar", *args, "--db", db)
    assert r.returncode != 0 and r.stdout == ""
    assert len(r.stderr.strip().splitlines()) == 1 and message in r.stderr, r.stderr


def test_similar_refuses_a_file_for_a_query(stocked, tmp_path):
    """A paper file given as the query was embedded as the text of its name and answered with that string's
    neighbours; it is one line saying what similar takes. Words that name no file are still text."""
    db, papers = stocked
    paper = tmp_path / "paper.json"
    paper.write_text(json.dumps({"id": "2599.00001", "title": papers[3].title, "abstract": papers[3].abstract}))
    r = ranker("similar", paper, "--db", db)
    assert r.returncode != 0 and r.stdout == "" and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert f"{paper}: is a file: give an arXiv id the database knows, or the text to search for" in r.stderr
    r = ranker("similar", papers[3].id, "--k", "1", "--db", db, cwd=tmp_path)       # an id: never a file
    assert r.returncode == 0 and r.stdout.split()[2] == papers[40].id
    (tmp_path / "attention").write_text("notes")     # a plain word is a search, a file of that name or not
    from ranker.prefilter.embed import query_key, text_hash
    qid, text = query_key("attention")                 # its vector stored as a query's: no model loaded for it
    with Store(db) as s:
        s.put_embeddings([(qid, text_hash(text), np.eye(384, dtype=np.float32)[0])], "minilm")
    r = ranker("similar", "attention", "--k", "1", "--db", db, "--offline", cwd=tmp_path)
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 1, r.stderr


def test_index_status_calls_a_damaged_file_damaged_and_a_sync_rebuilds_it(stocked):
    """A truncated or damaged index file is the index's fault, not the database's: status said "disagrees with
    the database" (or, for an unreadable manifest, that there was no index). Nothing stored is lost: the
    next command rebuilds it from the database."""
    db, papers = stocked
    assert ranker("index", "rebuild", "--db", db).returncode == 0
    folder = db.parent / "faiss-r.sqlite3" / "minilm"
    seg = next(folder.glob("seg-*.f32"))
    seg.write_bytes(seg.read_bytes()[:1000])
    r = ranker("index", "status", "--db", db)
    assert f"  state       damaged: {seg.name} holds 1000 bytes, its manifest says 92160 (the next sync rebuilds it " \
        "from the database)" in r.stdout, r.stdout
    r = ranker("similar", papers[40].id, "--k", "1", "--db", db)
    assert r.returncode == 0 and r.stdout.split()[2] == papers[3].id and "index rebuilt from the store" in r.stderr
    assert "agrees with the database (full check)" in ranker("index", "status", "--db", db).stdout
    (folder / "manifest.json").write_text('{"format": 1, "embedder"')
    r = ranker("index", "status", "--db", db)
    assert "  index       damaged (its manifest is not valid JSON" in r.stdout and "holds 60 paper vectors" in r.stdout


def test_index_status_says_the_offset_of_its_times(stocked):
    """`index status` printed `built 2026-12-08 08:00:00`, the machine's local time without a zone: over ssh to a
    server in another zone, or beside `ranker serve`'s UTC times, it read hours off. Each time says its offset,
    and names the instant the index manifest holds."""
    from datetime import datetime
    db, _ = stocked
    assert ranker("index", "rebuild", "--db", db).returncode == 0
    built = json.loads((db.parent / "faiss-r.sqlite3" / "minilm" / "manifest.json").read_text())["built"]
    r = ranker("index", "status", "--quick", "--db", db, env={"TZ": "Asia/Tokyo"})
    (line,) = [x for x in r.stdout.splitlines() if x.startswith("  built ")]
    shown = datetime.fromisoformat(line.split()[1])
    assert shown.utcoffset().total_seconds() == 9 * 3600 and shown.timestamp() == int(built), (line, built)


def test_similar_on_an_empty_store_is_one_line(tmp_path):
    with Store(tmp_path / "empty.sqlite3"):
        pass
    r = ranker("similar", "2505.00001", "--db", tmp_path / "empty.sqlite3")
    assert r.returncode == 0 and len(r.stderr.strip().splitlines()) == 1 and r.stdout == ""
    assert r.stderr.startswith("nothing to do: no paper vectors for the embedder minilm in ")
    r = ranker("index", "status", "--db", tmp_path / "empty.sqlite3")
    assert r.returncode == 0 and "no paper vectors in the database " in r.stdout and "and no index under" in r.stdout


@pytest.mark.parametrize("args", [("similar", "2505.00001"), ("similar", "mixture of experts"),
                                  ("site", "--out", "site"), ("index", "status"), ("index", "rebuild")])
def test_read_only_commands_refuse_a_database_that_is_not_there(tmp_path, args):
    """`ranker site --out site/ --db <a mistyped path>` said "nothing to do: ... holds no days yet" and exited 0
    (similar and index status / rebuild alike): a cron job publishing the site took a typo for an empty store. A
    database named with --db (RANKER_DB) that is not there is one line naming it, status 1, as the labels commands,
    serve and calibrate say it; nothing is made, and the home's own database, not made yet, is still nothing to do."""
    typo = tmp_path / "typo" / "rnaker.sqlite3"
    home = {"RANKER_HOME": tmp_path / "home"}
    r = ranker(*args, "--db", typo, env=home, cwd=tmp_path)
    assert r.returncode == 1 and r.stderr.splitlines() == [
        f"error: --db {typo}: no database there (a typo?); `ranker run` makes one"], r.stderr
    assert r.stdout == ""
    r = ranker(*args, env={**home, "RANKER_DB": typo}, cwd=tmp_path)
    assert r.returncode == 1 and r.stderr.startswith(f"error: RANKER_DB {typo}: no database there"), r.stderr
    assert not typo.parent.exists() and not (tmp_path / "site").exists()
    r = ranker(*args, env=home, cwd=tmp_path)
    assert r.returncode == 0 and not r.stderr.startswith("error"), r.stderr


@pytest.mark.parametrize("args", [("index", "status"), ("site", "--out", "site")])
def test_the_homes_own_database_named_by_another_spelling_is_not_a_typo(tmp_path, args):
    """The home's own database, not made yet, is nothing to do however it is named: `RANKER_DB=../h/ranker.sqlite3`
    (a `..`), or a RANKER_HOME that is a symlink to the folder RANKER_DB names (or the other way round), was
    compared by absolute path, not resolved, and read as a typo: status 1 on a fresh machine."""
    (tmp_path / "h").mkdir()
    (tmp_path / "work").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "h")
    for home, db in ((tmp_path / "h", "../h/ranker.sqlite3"), (tmp_path / "link", tmp_path / "h" / "ranker.sqlite3"),
                     (tmp_path / "h", tmp_path / "link" / "ranker.sqlite3")):
        r = ranker(*args, env={"RANKER_HOME": home, "RANKER_DB": db}, cwd=tmp_path / "work")
        assert r.returncode == 0 and not r.stderr.startswith("error"), (home, db, r.stderr)
    r = ranker(*args, env={"RANKER_HOME": tmp_path / "h", "RANKER_DB": "../link/rnaker.sqlite3"},
               cwd=tmp_path / "work")
    assert r.returncode == 1 and "no database there (a typo?)" in r.stderr, r.stderr


def test_similar_under_another_embedder_setting_names_it_and_the_vectors_the_database_holds(stocked, tmp_path):
    """A database of months of minilm vectors, and settings that now ask for another max_tokens (or embedder):
    the vectors sit under another key, so there is nothing to search, but the line says which setting chose
    the key and which value finds the stored vectors (it said "no paper vectors yet", as to an empty
    database, and sent the user to embed every paper again)."""
    db, papers = stocked
    r = ranker("similar", papers[40].id, "--max-tokens", "64", "--db", db)
    assert r.returncode == 0 and r.stdout == "" and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert ("nothing to do: no paper vectors for the embedder minilm@64 (chosen by --max-tokens) in "
            f"{db}; it holds 60 of the embedder minilm: --max-tokens 128 uses those") in r.stderr, r.stderr
    config = tmp_path / "ranker.toml"
    config.write_text('[prefilter]\nembedder = "mpnet"\nmax_tokens = 64\n')
    r = ranker("index", "rebuild", "--config", config, "--db", db)
    assert r.returncode == 0 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert (f"no paper vectors for the embedder mpnet@64 (chosen by {config}:2: prefilter.embedder, {config}:3: "
            "prefilter.max_tokens)") in r.stderr and "--embedder minilm --max-tokens 128 uses those" in r.stderr
    assert ranker("similar", papers[40].id, "--k", "1", "--max-tokens", "128", "--db", db).stdout.count("\n") == 1


def test_similar_under_another_embedder_setting_with_a_few_vectors_says_it_searched_only_those(stocked):
    """Months of minilm vectors, then a few days under another token cut: `similar` under the new setting
    searched its 5 vectors as if they were "every paper the database holds", saying nothing; it says so now,
    with the setting that finds the 60."""
    db, papers = stocked
    rng = np.random.default_rng(1)
    v = rng.normal(size=(5, 384)).astype(np.float32)
    with Store(db) as s:
        s.put_embeddings(((p.id, "h", v[i] / np.linalg.norm(v[i])) for i, p in enumerate(papers[:5])), "minilm@64")
    r = ranker("similar", papers[1].id, "--k", "2", "--max-tokens", "64", "--db", db)
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 2, r.stderr
    assert (f"searched only the 5 paper vectors of the embedder minilm@64 (chosen by --max-tokens) in {db}; it "
            "holds 60 of the embedder minilm: --max-tokens 128 uses those") in r.stderr, r.stderr
    r = ranker("similar", papers[1].id, "--k", "2", "--db", db)
    assert r.returncode == 0 and "searched only" not in r.stderr, r.stderr


def test_a_command_waiting_for_the_index_lock_says_so(stocked):
    """`ranker similar` (or `index status`, `index rebuild`) while another process holds the index's lock (a
    rebuild of a large index takes a minute): it waited in silence, looking hung; it says it is waiting, once,
    then answers as usual once the lock is let go."""
    import fcntl
    import os
    import subprocess
    import threading

    from conftest import RANKER
    db, papers = stocked
    assert ranker("similar", papers[40].id, "--k", "1", "--db", db).returncode == 0      # the index is made
    lock = db.parent / f"faiss-{db.name}" / "minilm" / ".lock"
    line = f"index: waiting for another command using the corpus index in {lock.parent}"
    for args in (("similar", papers[40].id, "--k", "3"), ("index", "status"), ("index", "rebuild")):
        # the lock is let go once the command has said it waits, not after a time: a timer raced the command's
        # start on a loaded machine (started after the timer had let go, it waited for nothing and said nothing)
        with open(lock, "a+") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            p = subprocess.Popen([*RANKER, *map(str, args), "--db", str(db)], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, env={k: v for k, v in os.environ.items()
                                                                         if k != "RANKER_DEBUG"})
            said = []
            reader = threading.Thread(target=lambda: said.extend(iter(p.stderr.readline, "")), daemon=True)
            reader.start()
            deadline = time.monotonic() + 120
            while not any(line in x for x in said) and p.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            waited = p.poll() is None                    # still there, holding on the lock
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
        out = p.stdout.read()                           # (stderr: the reader's)
        p.wait(timeout=300)
        reader.join(timeout=30)
        err = "".join(said)
        assert waited and p.returncode == 0, (args, err)
        assert err.count(line) == 1, (args, err)
    assert len(out.splitlines()) == 0 and "index rebuilt for minilm: 60 vectors" in err


@pytest.fixture
def read_only(tmp_path):
    """A home folder and a switch that makes it read-only or writable again: a tmpfs remounted where mounting
    is permitted (root, whom file modes do not stop), else file and folder modes."""
    import os
    import subprocess
    home = tmp_path / "home"
    home.mkdir()
    root = os.geteuid() == 0
    if root and subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(home)],
                               capture_output=True).returncode != 0:
        pytest.skip("root without mount: cannot make a folder read-only")

    def switch(ro: bool) -> None:
        if root:
            subprocess.run(["mount", "-o", f"remount,{'ro' if ro else 'rw'}", str(home)], check=True)
        else:
            for p in [home, *home.rglob("*")]:
                os.chmod(p, (0o555 if p.is_dir() else 0o444) if ro else (0o755 if p.is_dir() else 0o644))
    try:
        yield home, switch
    finally:
        if root:
            subprocess.run(["umount", str(home)], check=True)
        else:
            switch(False)


def test_similar_on_a_read_only_home_uses_the_index_as_it_stands(stocked, read_only):
    """A database and its index on read-only media (a mounted copy, another user's folder): the index agrees
    with the database, so `similar` and the pages' similar papers answer from it (the lock file, which
    cannot be opened for writing there, was an error); an index the database has outgrown is one line naming
    its folder and what it lacks."""
    import shutil
    from ranker.web.search import corpus_similar
    src, papers = stocked
    home, switch = read_only
    db = home / "ranker.sqlite3"
    shutil.copy(src, db)
    r = ranker("similar", papers[40].id, "--k", "3", "--db", db)
    assert r.returncode == 0, r.stderr
    want = r.stdout
    switch(True)
    r = ranker("similar", papers[40].id, "--k", "3", "--db", db)
    assert r.returncode == 0 and r.stdout == want, r.stderr
    assert r.stderr.splitlines() == [f"nearest to {papers[40].id} (2025-05-15): {papers[40].title}"]
    with Store(db) as s:
        assert s.read_only
        assert [i for i, _ in corpus_similar(s, papers[40].id, 3)] == [line.split()[2] for line in want.splitlines()]
    r = ranker("index", "status", "--db", db)
    assert r.returncode == 0 and "agrees with the database (full check)" in r.stdout, r.stdout

    switch(False)
    with Store(db) as s:                             # a vector stored where the index could not follow
        s.put_embeddings([("2599.00001", "h", np.full(384, 384 ** -0.5, np.float32))], "minilm")
    switch(True)
    r = ranker("similar", papers[40].id, "--k", "3", "--db", db)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 1 and r.stdout == "" and len(lines) == 1, r.stderr
    assert lines[0].startswith(f"error: {home / 'faiss' / 'minilm'}: ")          # read-only / permission denied
    assert lines[0].endswith(": the corpus index there needs writing (1 vector stored since it was last updated)")


@pytest.mark.parametrize("in_the_way", ["faiss-r.sqlite3", "faiss-r.sqlite3/minilm"])
def test_a_file_where_the_index_folder_goes_is_named(stocked, tmp_path, in_the_way):
    """A file where the index's folder (or the database's index folder) should be: each command names that
    file, not the folder it was making under it."""
    db, papers = stocked
    blocker = db.parent / in_the_way
    blocker.parent.mkdir(exist_ok=True)
    blocker.write_text("not a folder")
    line = f"{blocker}: is a file, not a folder: the corpus index is kept there"
    for args in (("similar", papers[40].id), ("index", "rebuild")):
        r = ranker(*args, "--db", db)
        assert r.returncode == 1 and r.stdout == "" and r.stderr.strip().splitlines() == [f"error: {line}"], r.stderr
    r = ranker("index", "status", "--db", db)
    assert r.returncode == 0 and f"  index       none ({blocker} is a file, not a folder); the database holds 60 " \
        "paper vectors" in r.stdout, r.stdout
    src = write(tmp_path / "day.jsonl", listing("2025-05-15", 5))
    with Store(db) as s:                             # vectors stored: no model loads
        store_vectors(s, [Paper.from_dict(x) for x in listing("2025-05-15", 5)])
    r = ranker("fetch", "--from", src, "--embed", "--out", tmp_path / "out.jsonl", "--db", db, "--offline")
    assert r.returncode == 0, r.stderr
    assert f"index: not updated ({line}); the next command that embeds retries" in r.stderr.splitlines(), r.stderr
    # said under -q too, alone: the vectors are stored, but the index is not (the notes are what -q hides)
    r = ranker("fetch", "--from", src, "--embed", "--out", tmp_path / "q.jsonl", "--db", db, "--offline", "-q")
    assert (r.returncode, r.stdout) == (0, "") and r.stderr.splitlines() == [
        f"index: not updated ({line}); the next command that embeds retries"], r.stderr
    assert blocker.read_text() == "not a folder"


# No file may grow past 64 KB in the child (SQLite's 32 KB shared-memory file fits; the index segment of 60
# 384-d vectors, 92 KB, does not): the write fails as on a disk with that much room left.
FULL_DISK = ("import resource, signal\nsignal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
             "resource.setrlimit(resource.RLIMIT_FSIZE, (65536, resource.RLIM_INFINITY))")


def test_a_full_disk_while_writing_the_index_names_the_file(stocked, tmp_path):
    """The disk fills while an index file is written: the line names that file (so its folder, which may be
    another disk than the database's), not only what happened (it said `error: file too large`, and the
    embedding commands `index: not updated ([Errno 27] File too large)`)."""
    import errno
    import os
    db, papers = stocked
    folder = db.parent / "faiss-r.sqlite3" / "minilm"
    what = os.strerror(errno.EFBIG)
    r = ranker("similar", papers[40].id, "--db", db, pre=FULL_DISK)
    assert r.returncode == 1 and r.stdout == "", r.stderr
    line = r.stderr.strip()
    assert line.startswith(f"error: {folder}/seg-") and line.endswith(f".f32: {what[0].lower()}{what[1:]}"), line
    assert sorted(p.name for p in folder.iterdir()) == [".lock"]          # the short file is gone

    day = listing("2025-05-15", 35)[30:]
    with Store(db) as s:                  # papers and vectors stored beforehand: the fetch writes little else
        s.add_papers(Paper.from_dict(x) for x in day)
        store_vectors(s, [Paper.from_dict(x) for x in day])
    r = ranker("fetch", "--from", write(tmp_path / "day.jsonl", day), "--embed", "--out", tmp_path / "out.jsonl",
               "--db", db, "--offline", pre=FULL_DISK)
    assert r.returncode == 0, r.stderr
    note = [x for x in r.stderr.splitlines() if x.startswith("index: not updated (")]
    assert len(note) == 1 and note[0].startswith(f"index: not updated ({folder}/seg-") and \
        note[0].endswith(f".f32: {what}); the next command that embeds retries"), r.stderr

def test_fetch_embed_syncs_the_index_and_embeds_only_what_is_missing(tmp_path):
    """Every vector already stored (under the keys the embedder looks up): no model loads, the index follows."""
    db = tmp_path / "r.sqlite3"
    src = write(tmp_path / "day.jsonl", listing("2025-05-15", 30))
    with Store(db) as s:
        store_vectors(s, [Paper.from_dict(r) for r in listing("2025-05-15", 30)])
    r = ranker("fetch", "--from", src, "--embed", "--out", tmp_path / "out.jsonl", "--db", db, "--offline")
    assert r.returncode == 0, r.stderr
    assert "index built from the store (there was no index yet): 30 vectors, exact" in r.stderr
    assert "embedded 0 of 30 papers (30 already stored); index (minilm): 30 vectors, exact" in r.stderr
    r = ranker("index", "status", "--db", db)
    assert "vectors     30 (the database holds 30)" in r.stdout and "agrees with the database" in r.stdout
    r = ranker("fetch", "--from", src, "--embed", "--out", "-", "--db", db, "--offline")
    assert r.returncode == 1 and r.stderr.strip().splitlines() == [
        "error: --out: --embed reads the papers back from --out: give a file, not a device or a pipe"]


# --------------------------------------------------------------------------- slow: real MiniLM, real days
@pytest.mark.slow
def test_similar_embeds_text_without_storing_it_in_a_read_only_database(stocked, read_only):
    """Free text (and a paper stored without a vector) on a read-only home: embedded by the real MiniLM and
    searched, not written to the database (which refused it: 'read-only ...: cannot write to it')."""
    import shutil
    src, papers = stocked
    home, switch = read_only
    db = home / "ranker.sqlite3"
    shutil.copy(src, db)
    with Store(db) as s:
        s.add_papers([Paper(id="2599.00002", title="Routing tokens to experts",
                            abstract="A sparse mixture of experts for long context.", date="2025-05-16")])
    assert ranker("index", "rebuild", "--db", db).returncode == 0
    switch(True)
    r = ranker("similar", "sparse mixture of experts routing", "--k", "3", "--db", db)
    assert r.returncode == 0 and len(r.stdout.strip().splitlines()) == 3, r.stderr
    r = ranker("similar", "2599.00002", "--k", "2", "--db", db)
    assert r.returncode == 0 and len(r.stdout.strip().splitlines()) == 2, r.stderr
    assert "nearest to 2599.00002 (2025-05-16): Routing tokens to experts" in r.stderr
    switch(False)
    with Store(db) as s:
        assert s.count_embeddings("minilm") == len(papers)          # nothing was stored


@pytest.mark.slow
def test_real_days_fetch_embed_run_similar_and_a_planted_reupload(tmp_path):
    db = tmp_path / "home" / "ranker.sqlite3"
    day_a = listing("2025-05-13", 40)
    day_b = listing("2025-05-15", 40)
    original = day_a[3]
    planted = {**original, "id": "2599.00042", "date": "2025-05-15"}       # same paper, new id, later day
    a = write(tmp_path / "a.jsonl", day_a)
    b = write(tmp_path / "b.jsonl", day_b + [planted])

    r = ranker("fetch", "--from", a, "--embed", "--out", tmp_path / "a-out.jsonl", "--db", db)
    assert r.returncode == 0, r.stderr
    assert "embedded 40 of 40 papers (0 already stored); index (minilm): 40 vectors, exact" in r.stderr

    cfg = write(tmp_path / "ranker.toml", [])
    cfg.write_text('[prefilter]\nkeep = 1.0\n\n[scoring]\nbackend = "fake"\n\n[digest]\nmin_relevance = 1\n'
                   'min_novelty = 1\n')
    r = ranker("run", "--papers", a, "--out", tmp_path / "out-a", "--config", cfg, "--db", db)
    assert r.returncode == 0, r.stderr
    r = ranker("run", "--papers", b, "--out", tmp_path / "out-b", "--config", cfg, "--db", db)
    assert r.returncode == 0, r.stderr
    rows = {json.loads(x)["id"]: json.loads(x) for x in (tmp_path / "out-b/2025-05-15-prefilter.jsonl").open()}
    assert rows["2599.00042"]["reupload_of"]["id"] == original["id"]
    assert rows["2599.00042"]["reupload_of"]["date"] == "2025-05-13"
    assert rows["2599.00042"]["reupload_of"]["cosine"] > 0.999
    assert [i for i, x in rows.items() if "reupload_of" in x] == ["2599.00042"]       # nothing else flagged
    md = (tmp_path / "out-b/2025-05-15-output.md").read_text()
    assert (f"**Note:** also announced as [{original['id']}](https://arxiv.org/abs/{original['id']}) on "
            "2025-05-13 (scored then: Relevance ") in md
    js = json.loads((tmp_path / "out-b/2025-05-15-output.json").read_text())
    assert js["2599.00042"]["reupload_of"]["id"] == original["id"] and "RELEVANCE" in js["2599.00042"]["reupload_of"]
    assert json.loads((tmp_path / "out-b/2025-05-15-run.json").read_text())["counts"]["reuploads"] == 1

    r = ranker("index", "status", "--db", db)
    assert r.returncode == 0 and "vectors     81 (the database holds 81)" in r.stdout, r.stdout
    assert "agrees with the database (full check)" in r.stdout

    target = day_b[0]["id"]
    t = time.perf_counter()
    r = ranker("similar", target, "--k", "5", "--db", db)
    warm = time.perf_counter() - t
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    cosines = [float(line.split()[0]) for line in lines]
    assert len(lines) == 5 and cosines == sorted(cosines, reverse=True) and target not in r.stdout
    assert all(line.split()[1] in ("2025-05-13", "2025-05-15") for line in lines)
    print(f"ranker similar {target}: {warm:.2f} s as a process")            # figures live in scripts; shown here
    r = ranker("similar", "2599.00042", "--k", "1", "--db", db)
    assert r.stdout.split()[2] == original["id"] and float(r.stdout.split()[0]) > 0.999

    r = ranker("similar", "sparse mixture of experts routing", "--k", "3", "--db", db)
    assert r.returncode == 0 and len(r.stdout.strip().splitlines()) == 3, r.stderr
    r = ranker("similar", "sparse mixture of experts routing", "--k", "50", "--since", "2025-05-14", "--db", db)
    assert r.returncode == 0, r.stderr                       # free text, --since: day B's 41 papers, nothing older
    assert sorted(line.split()[2] for line in r.stdout.strip().splitlines()) == sorted(
        [x["id"] for x in day_b] + ["2599.00042"])

    # calibrate syncs the index too: removed, it comes back from the store with one line saying why
    import shutil
    shutil.rmtree(db.parent / "faiss")
    hist = tmp_path / "history"               # calibrate needs 3 days and 30 picks: the stored 81 papers in 3
    for day, rows in (("2025-05-13", day_a), ("2025-05-14", day_b[:20]), ("2025-05-15", day_b[20:] + [planted])):
        (hist / day).mkdir(parents=True)      # GPT's picks: the gpt_selected flags, 11 a day
        write(hist / day / "listing.jsonl", [{**x, "gpt_selected": i < 11} for i, x in enumerate(rows)])
    r = ranker("calibrate", "--history", hist, "--out", tmp_path / "cal.json", "--no-eval", "--db", db)
    assert r.returncode == 0, r.stderr
    assert "index built from the store (there was no index yet): 81 vectors, exact" in r.stderr

    # the novelty context of day B's papers: day A's papers only, never the paper itself or its own day
    from ranker.index import earlier_neighbours
    with Store(db) as store:
        near = earlier_neighbours([Paper.from_dict(x) for x in day_b + [planted]], store, k=3)
    assert all(n.date == "2025-05-13" for ns in near.values() for n in ns)
    assert near["2599.00042"][0].id == original["id"] and all(len(ns) == 3 for ns in near.values())


def test_similar_to_another_version_than_the_stored_one_says_whose_neighbours_they_are(stocked):
    """`ranker similar 2504.11459v3` on a database holding v1 answered with v1's neighbours (its vector is v1's
    text), saying nothing: one line says so now; the version stored, or none given, says nothing."""
    db, papers = stocked
    p = papers[40]
    import dataclasses
    r = ranker("similar", f"{p.id}v3", "--k", "1", "--db", db)             # a listing's paper: no version stored
    assert r.returncode == 0 and (f"note: the database holds {p.id} without its version: these are the neighbours "
                                  "of the title and abstract it stored, maybe not v3's") in r.stderr, r.stderr
    with Store(db) as s:
        s.add_papers([dataclasses.replace(s.get_paper(p.id), version=1)])
        stored = s.get_paper(p.id).version
    assert stored == 1
    r = ranker("similar", f"{p.id}v{stored + 2}", "--k", "1", "--db", db)
    assert r.returncode == 0 and r.stdout.split()[2] == papers[3].id, r.stderr
    assert (f"note: the database holds {p.id}v{stored}, not v{stored + 2}: these are the neighbours of "
            f"v{stored}'s title and abstract") in r.stderr, r.stderr
    for same in (f"{p.id}v{stored}", p.id, f"arXiv:{p.id}"):
        r = ranker("similar", same, "--k", "1", "--db", db)
        assert r.returncode == 0 and "note: the database holds" not in r.stderr, r.stderr


def test_index_status_counts_say_what_they_are(stocked):
    """`ranker index status` said "1 new vectors"; and a revised paper's old row (dropped, never searched) is
    said apart from the vectors searched."""
    db, papers = stocked
    assert ranker("similar", papers[0].id, "--k", "1", "--db", db).returncode == 0          # the index built
    rng = np.random.default_rng(5)
    v = rng.normal(size=(2, 384)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    with Store(db) as s:
        s.put_embeddings([("2505.99999", "h", v[0])], "minilm")
    r = ranker("index", "status", "--quick", "--db", db)
    assert r.returncode == 0 and "state       1 new vector not added yet (" in r.stdout, r.stdout
    with Store(db) as s:
        s.put_embeddings([(papers[5].id, "v2", v[1])], "minilm")                           # revised: new text
    assert ranker("similar", papers[0].id, "--k", "1", "--db", db).returncode == 0          # synced: old row dropped
    r = ranker("index", "status", "--db", db)
    assert r.returncode == 0, r.stderr
    assert ("vectors     61 (the database holds 61); 1 old row of revised papers left in its files, never "
            "searched") in r.stdout, r.stdout
    assert "agrees with the database (full check)" in r.stdout


@pytest.mark.parametrize("name", ["manifest.json", ".lock", "dangling manifest.json"])
def test_a_fifo_in_the_place_of_the_index_s_manifest_or_lock_hangs_no_command(stocked, name):
    """The index's manifest.json and .lock are names of its own: a FIFO in the place of either was opened as a
    pipe (the manifest read, the lock file opened for reading) and status, similar and rebuild waited for a
    writer for good. The lock is taken on it without waiting; the manifest is a damaged one, which a sync
    replaces with a file. A link to nothing in the manifest's place is no index, not a damaged one: status said
    "index damaged (there was no index yet)"."""
    import os
    import stat
    db, papers = stocked
    assert ranker("index", "rebuild", "--db", db).returncode == 0
    dangling = name.startswith("dangling ")
    path = db.parent / "faiss-r.sqlite3" / "minilm" / name.removeprefix("dangling ")
    path.unlink()
    if dangling:
        path.symlink_to(path.parent / "gone.json")
    else:
        os.mkfifo(path)
    r = ranker("index", "status", "--db", db, timeout=20)
    assert r.returncode == 0, r.stderr
    assert ("  index       none (there was no index yet" if dangling else
            "  index       damaged (its manifest is unreadable" if name == "manifest.json" else
            "  state       agrees with the database (full check)") in r.stdout, r.stdout
    r = ranker("similar", papers[40].id, "--k", "1", "--db", db, timeout=20)
    assert r.returncode == 0 and r.stdout.split()[2] == papers[3].id, r.stderr
    assert ranker("index", "rebuild", "--db", db, timeout=20).returncode == 0
    assert stat.S_ISREG(os.lstat(path.parent / "manifest.json").st_mode)
    assert "agrees with the database (full check)" in ranker("index", "status", "--db", db, timeout=20).stdout
