"""Ctrl-C, kill -9 and runs where every paper failed, as a user meets them: real `ranker` subprocesses, real
SIGINT / SIGKILL, a real hanging HTTP server on 127.0.0.1. A Ctrl-C in any step ends the command within
seconds with one line naming the step and how many papers are kept, status 130, and the run row marked
interrupted; a row a killed process left 'running' is marked interrupted by the next command; nothing scored
is an error, a partial run a warning."""
from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import time

import pytest

from ranker.settings import resolve
from ranker.sources import read_papers
from ranker.store import Store

from conftest import DAYS, RANKER, as_at_a_terminal, ranker, store_vectors, without_loading
from fixture_server import silent_server, silent_server_asked

LISTING = DAYS / "2025-05-15" / "listing.jsonl"
LINE = "interrupted during {stage}; {n} papers scored so far are kept; rerun to resume\n"


@pytest.fixture
def db(tmp_path):
    """A database holding the day's vectors (the prefilter runs without a model) and its config."""
    path = tmp_path / "db.sqlite3"
    with Store(path) as s:
        store_vectors(s, list(read_papers(LISTING)))
    return path


def config(tmp_path, **scoring) -> str:
    f = tmp_path / "ranker.toml"
    extra = "".join(f"{k} = {json.dumps(v)}\n" for k, v in scoring.items())
    f.write_text(f"[prefilter]\ntop = 8\n[scoring]\nmodel = 'tiny'\n{extra}")
    return str(f)


def env(**extra) -> dict:
    e = {k: v for k, v in os.environ.items() if k != "RANKER_DEBUG"}
    return {**e, **{k: str(v) for k, v in extra.items()}}


def query(db, sql):
    c = sqlite3.connect(db)
    try:
        return c.execute(sql).fetchall()
    except sqlite3.OperationalError:          # not created yet
        return []
    finally:
        c.close()


def start(*args, **extra) -> subprocess.Popen:
    return subprocess.Popen([*RANKER, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env(**extra), preexec_fn=as_at_a_terminal)


def signal_when(p: subprocess.Popen, ready, sig=signal.SIGINT, timeout=120) -> float:
    """Send `sig` to p once ready() holds; return when it was sent (time.monotonic())."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if p.poll() is not None:
            pytest.fail(f"ended (rc {p.returncode}) before the signal: {p.stderr.read()[-800:]}")
        if ready():
            p.send_signal(sig)
            return time.monotonic()
        time.sleep(0.05)
    p.kill()
    pytest.fail("timed out waiting for the moment to signal")


def finish(p: subprocess.Popen, sent: float, within: float = 10.0) -> tuple[int, str, float]:
    try:
        _out, err = p.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        pytest.fail("still running 60 s after the signal")
    took = time.monotonic() - sent
    assert took < within, f"took {took:.1f} s to stop"
    return p.returncode, without_loading(err), took


# --------------------------------------------------------------------------- Ctrl-C
def test_ctrl_c_during_scoring_says_what_is_kept_and_exits_130(db, tmp_path):
    out = tmp_path / "out"
    p = start("run", "--papers", LISTING, "--out", out, "--db", db, "--backend", "fake", "--backend-option",
              "delay=0.3", "--config", config(tmp_path, batch_size=1))
    sent = signal_when(p, lambda: len(query(db, "SELECT 1 FROM scores")) >= 2)
    rc, err, _ = finish(p, sent)
    stored = len(query(db, "SELECT 1 FROM scores"))
    assert rc == 130 and err == LINE.format(stage="scoring", n=stored), err
    assert 2 <= stored < 8
    assert query(db, "SELECT kind, status FROM runs") == [("run", "interrupted")]
    m = json.loads((out / "2025-05-15-run.json").read_text())
    assert m["status"] == "interrupted" and m["error"] == err.strip()
    # the rerun resumes: what was kept is reused
    r = ranker("run", "--papers", LISTING, "--out", out, "--db", db, "--backend", "fake", "--config", config(tmp_path))
    assert r.returncode == 0, r.stderr
    assert f"8 kept by the prefilter, {8 - stored} scored ({stored} reused, 0 failed)" in r.stderr


def test_ctrl_c_of_a_resumed_run_says_what_it_scored_and_what_it_reused(db, tmp_path):
    """A run stopped, rerun and stopped again: the second line counts the papers it scored itself apart from
    those the first had stored ("scored so far" counted the reused ones as its own)."""
    out, cfg = tmp_path / "out", config(tmp_path, batch_size=1)
    args = ("run", "--papers", LISTING, "--out", out, "--db", db, "--backend", "fake", "--backend-option",
            "delay=0.3", "--config", cfg)
    p = start(*args)
    sent = signal_when(p, lambda: len(query(db, "SELECT 1 FROM scores")) >= 2)
    rc, err, _ = finish(p, sent)
    first = len(query(db, "SELECT 1 FROM scores"))
    assert rc == 130 and err == LINE.format(stage="scoring", n=first), err
    p = start(*args)
    sent = signal_when(p, lambda: len(query(db, "SELECT 1 FROM scores")) >= first + 2)
    rc, err, _ = finish(p, sent)
    now = len(query(db, "SELECT 1 FROM scores")) - first
    assert rc == 130 and now >= 2 and first + now < 8
    assert err == (f"interrupted during scoring; {now} papers scored now and {first} reused from the store are "
                   "kept; rerun to resume\n"), err


def test_ctrl_c_while_fetching_from_a_hanging_feed(db, tmp_path):
    with silent_server_asked() as (url, asked):
        p = start("run", "--out", tmp_path / "out", "--db", db, "--backend", "fake", RANKER_RSS_URL=url + "/rss/")
        sent = signal_when(p, lambda: asked("GET /rss/"))      # (2 s after the start: still starting when loaded)
        rc, err, _ = finish(p, sent)
    assert rc == 130 and err == LINE.format(stage="fetch", n=0), err


def test_ctrl_c_stops_a_run_waiting_on_a_hung_openai_server(db, tmp_path):
    """The server accepts and never answers; with the default timeouts each request would wait minutes."""
    papers = tmp_path / "p.jsonl"
    papers.write_text("".join(list(open(LISTING))[:3]))
    with silent_server_asked() as (url, asked):
        p = start("score", "--papers", papers, "--out", tmp_path / "s.jsonl", "--db", db, "--backend", "openai",
                  "--model", "m", OPENAI_BASE_URL=url + "/v1")
        # once the paper's request is sent (1.5 s after the run was recorded, a loaded machine was still loading)
        sent = signal_when(p, lambda: asked("POST /v1/chat/completions"))
        # (a bound for a loaded machine, the interpreter's teardown included: the request alone would wait 120 s)
        rc, err, took = finish(p, sent, within=20.0)
    assert rc == 130 and err == LINE.format(stage="scoring", n=0), err
    assert query(db, "SELECT kind, status FROM runs") == [("score", "interrupted")]
    assert not (tmp_path / "s.jsonl").exists()


@pytest.mark.slow
def test_ctrl_c_during_the_prefilter_keeps_the_vectors(tmp_path):
    """The real MiniLM embedder: Ctrl-C once some vectors are stored."""
    rows = []
    for day in ("2025-05-13", "2025-06-23"):
        rows += list(open(DAYS / day / "listing.jsonl"))
    papers = tmp_path / "p.jsonl"
    papers.write_text("".join(rows))
    db = tmp_path / "db.sqlite3"
    p = start("prefilter", "--papers", papers, "--out", tmp_path / "ranked.jsonl", "--db", db)
    sent = signal_when(p, lambda: len(query(db, "SELECT 1 FROM embeddings LIMIT 300")) >= 256, timeout=300)
    rc, err, _ = finish(p, sent)
    assert rc == 130 and err == "interrupted during prefilter; what was stored so far is kept; rerun to resume\n"
    assert len(query(db, "SELECT 1 FROM embeddings")) >= 256
    assert not (tmp_path / "ranked.jsonl").exists()


# --------------------------------------------------------------------------- SIGTERM
def test_sigterm_stops_a_run_as_ctrl_c_does_and_the_process_ends_by_it(db, tmp_path):
    """systemd stopping the timer's unit (its timeout, a shutdown) or `kill PID` sends SIGTERM. At its default
    action the process vanished mid-run: no line in the cron mail or the journal, the run row and the day's
    manifest left 'running', the day's web view left with the new ranking beside the old digest. It stops as a
    Ctrl-C stops it, and then ends by the signal, as whoever sent it expects."""
    out = tmp_path / "out"
    p = start("run", "--papers", LISTING, "--out", out, "--db", db, "--backend", "fake", "--backend-option",
              "delay=0.3", "--config", config(tmp_path, batch_size=1))
    sent = signal_when(p, lambda: len(query(db, "SELECT 1 FROM scores")) >= 2, sig=signal.SIGTERM)
    rc, err, _ = finish(p, sent)
    stored = len(query(db, "SELECT 1 FROM scores"))
    assert rc == -signal.SIGTERM and err == LINE.format(stage="scoring", n=stored), err
    assert query(db, "SELECT kind, status FROM runs") == [("run", "interrupted")]
    m = json.loads((out / "2025-05-15-run.json").read_text())
    assert m["status"] == "interrupted" and m["error"] == err.strip()
    assert query(db, "SELECT COUNT(*) FROM rankings") == [(0,)]           # the day's web view put back
    r = ranker("run", "--papers", LISTING, "--out", out, "--db", db, "--backend", "fake", "--config", config(tmp_path))
    assert r.returncode == 0, r.stderr
    assert f"8 kept by the prefilter, {8 - stored} scored ({stored} reused, 0 failed)" in r.stderr


# --------------------------------------------------------------------------- kill -9
def test_a_run_killed_with_sigkill_is_marked_interrupted_by_the_next_command(db, tmp_path):
    p = start("score", "--papers", LISTING, "--out", tmp_path / "s.jsonl", "--db", db, "--backend", "fake",
              "--backend-option", "delay=0.2", "--config", config(tmp_path, batch_size=1))
    sent = signal_when(p, lambda: len(query(db, "SELECT 1 FROM scores")) >= 1, sig=signal.SIGKILL)
    finish(p, sent)
    assert query(db, "SELECT status, pid FROM runs") == [("running", p.pid)]
    r = ranker("fetch", "--from", LISTING, "--out", tmp_path / "again.jsonl", "--db", db)   # any command
    assert r.returncode == 0, r.stderr
    assert query(db, "SELECT kind, status FROM runs") == [("score", "interrupted"), ("fetch", "ok")]


def test_the_index_shows_a_day_whose_run_was_killed_as_interrupted(db, tmp_path):
    """systemd's SIGKILL after its stop timeout, a power cut: the day's manifest says "running" for good. The next
    morning's run (another day) marks the row interrupted, and the folder's index it rewrote still listed the
    killed day as running, week after week."""
    out = tmp_path / "out"
    p = start("run", "--papers", LISTING, "--out", out, "--db", db, "--backend", "fake", "--backend-option",
              "delay=0.2", "--config", config(tmp_path, batch_size=1))
    sent = signal_when(p, lambda: len(query(db, "SELECT 1 FROM scores")) >= 1, sig=signal.SIGKILL)
    finish(p, sent)
    assert json.loads((out / "2025-05-15-run.json").read_text())["status"] == "running"
    r = ranker("run", "--papers", LISTING, "--date", "2025-05-16", "--out", out, "--db", db, "--backend", "fake",
               "--config", config(tmp_path))
    assert r.returncode == 0, r.stderr
    days = json.loads((out / "index.json").read_text())["days"]
    assert [(d["day"], d["status"], d["digest"]) for d in days] == [
        ("2025-05-16", "ok", "2025-05-16-output.md"), ("2025-05-15", "interrupted", None)]
    assert "| 2025-05-15 | interrupted |" in (out / "index.md").read_text()


def test_a_running_row_of_a_live_process_is_left_alone(tmp_path):
    db = tmp_path / "db.sqlite3"
    with Store(db) as s, s.recording("score", {}) as rec:
        with Store(db) as other:                       # another command starting meanwhile
            assert other.run_status(rec.id) == "running"
    with Store(db) as s:
        assert s.run_status(rec.id) == "ok"


def test_a_recycled_pid_does_not_keep_a_dead_run_running(tmp_path):
    """A row whose pid now belongs to a process younger than the run (here this test's own process, the row
    dated ten days back) is a dead run: a recycled pid does not keep it 'running'."""
    db = tmp_path / "db.sqlite3"
    with Store(db) as s:
        with s.transaction() as c:
            c.execute("INSERT INTO runs (kind, started_at, status, pid, host) VALUES ('run', ?, 'running', ?, ?)",
                      (time.time() - 10 * 24 * 3600, os.getpid(), socket.gethostname()))
    with Store(db) as s:
        assert s.run_status(1) == "interrupted"


# --------------------------------------------------------------------------- every paper failed / some failed
def test_nothing_scored_is_an_error_and_a_partial_run_a_warning(db, tmp_path):
    ids = [p.id for p in read_papers(LISTING)]
    papers = tmp_path / "p.jsonl"
    papers.write_text("".join(list(open(LISTING))[:4]))
    every = "error=[" + ",".join(f"'{i}'" for i in ids) + "]"
    r = ranker("score", "--papers", papers, "--out", tmp_path / "s.jsonl", "--db", db, "--backend", "fake",
               "--backend-option", every)
    assert r.returncode == 1, r.stderr
    assert without_loading(r.stderr) == (f"error: nothing was scored: 4 of 4 papers could not be scored (first: {ids[0]}: "
                        "injected error)\n")
    assert not (tmp_path / "s.jsonl").exists()
    assert query(db, "SELECT kind, status FROM runs") == [("score", "failed")]

    r = ranker("run", "--papers", LISTING, "--out", tmp_path / "out", "--db", db, "--backend", "fake",
               "--backend-option", every, "--config", config(tmp_path))
    assert r.returncode == 1 and without_loading(r.stderr).startswith("error: nothing was scored: 8 of 8 papers could not be")
    m = json.loads((tmp_path / "out" / "2025-05-15-run.json").read_text())
    assert m["status"] == "failed" and len(m["failures"]) == 8 and "nothing was scored" in m["error"]
    # which model failed so, with which engine figures (a max_model_len too small for every prompt, say)
    assert m["backend"] == "fake" and m["model"] and m["engine"]["requests"] == 8
    assert sorted(f.name for f in (tmp_path / "out").iterdir()) == ["2025-05-15-run.json"]

    # one failure of four: the scores are written, exit 0, one warning line counting the failure
    r = ranker("score", "--papers", papers, "--out", tmp_path / "s.jsonl", "--db", db, "--backend", "fake",
               "--model", "other", "--backend-option", f"error=['{ids[1]}']")
    assert r.returncode == 0, r.stderr
    warnings = [x for x in r.stderr.splitlines() if x.startswith("warning:")]
    assert warnings == [f"warning: 1 of 4 papers could not be scored (first: {ids[1]}: injected error); "
                        "rerun to retry them"]
    assert len((tmp_path / "s.jsonl").read_text().splitlines()) == 3


# --------------------------------------------------------------------------- bounded waits
def test_the_openai_backends_waits_are_settable_and_bounded_by_default():
    from ranker.backends.openai_backend import OpenAIOptions
    o = OpenAIOptions()
    assert (o.connect_timeout, o.timeout, o.total_timeout, o.retries) == (10.0, 120.0, 300.0, 4)
    s = resolve(flags={"backend": "openai", "backend_option": ["connect_timeout=2", "timeout=5",
                                                               "total_timeout=30"]})
    assert s.scoring.options["openai"] == {"connect_timeout": 2, "timeout": 5, "total_timeout": 30}


def test_total_timeout_bounds_one_request_whatever_the_retries():
    from ranker.backends.openai_backend import OpenAIBackend
    from test_backends_openai_errors import req
    with silent_server() as url:
        be = OpenAIBackend("m", base_url=url + "/v1", timeout=0.4, total_timeout=1.5, retries=50, backoff=0.05,
                           max_backoff=0.1)
        t0 = time.monotonic()
        out = be.generate([req("2506.00001", "hang")])
        took = time.monotonic() - t0
    assert took < 6.0, took                       # (not the 50 retries' 25 s; slack for a loaded machine)
    assert out[0].finish_reason == "error" and "no time left of the request's 1.5 s" in out[0].error


def test_ctrl_c_stops_the_run_even_when_the_engine_swallows_it(db, tmp_path):
    """An engine that catches KeyboardInterrupt (vLLM does while it starts): the run still stops at the next
    batch; a second Ctrl-C stops a process that is stuck in such an engine at once."""
    waiting = tmp_path / "waiting"
    p = start("score", "--papers", LISTING, "--out", tmp_path / "s.jsonl", "--db", db, "--backend", "fake",
              "--backend-option", "delay=0.3", "--backend-option", "deaf=true", "--backend-option",
              f"waiting='{waiting}'", "--config", config(tmp_path, batch_size=1))

    seen: list[bool] = []

    def in_a_later_request() -> bool:
        """A score is stored and the engine is in a request begun since (the file made anew): the Ctrl-C meets
        the deaf engine. Sent once the first score was seen, it could come between two requests and stop the
        run at once, one paper kept (on a loaded machine)."""
        if not seen and query(db, "SELECT 1 FROM scores"):
            seen.append(True)
            waiting.unlink(missing_ok=True)
            return False
        return bool(seen) and waiting.exists()
    sent = signal_when(p, in_a_later_request)
    rc, err, _ = finish(p, sent)                    # (130, not 0: the deaf engine alone would score all 8)
    stored = len(query(db, "SELECT 1 FROM scores"))
    assert rc == 130 and err == LINE.format(stage="scoring", n=stored), err
    assert stored >= 2                              # the request the Ctrl-C came in was finished

    waiting.unlink()
    p = start("score", "--papers", LISTING, "--out", tmp_path / "s.jsonl", "--db", db, "--backend", "fake",
              "--model", "stuck", "--backend-option", "delay=60", "--backend-option", "deaf=true",
              "--backend-option", f"waiting='{waiting}'")
    # once the engine's request has begun (a second after the run row, as it was, raced a loaded machine: the
    # Ctrl-C came before the engine and stopped the command at once)
    signal_when(p, waiting.exists)
    time.sleep(1.0)
    assert p.poll() is None                                   # the engine swallowed the first Ctrl-C
    p.send_signal(signal.SIGINT)
    # at once: the request alone would hold it 60 s more (a bound for a loaded machine, far below that)
    rc, err, _ = finish(p, time.monotonic(), within=15.0)
    assert rc == 130 and err.endswith("interrupted again: stopping now; what was stored so far is kept; "
                                      "rerun to resume\n"), err
    with Store(db):                                           # the next start marks the run interrupted
        pass
    assert query(db, "SELECT status FROM runs WHERE id=2") == [("interrupted",)]


def test_after_ctrl_c_an_engines_own_error_is_the_interrupt():
    """A worker process of the engine gets the terminal's SIGINT too and the engine then fails with its own
    error: once Ctrl-C was pressed, that is reported as the interrupt, not as a failure."""
    from ranker.errors import Interrupted, clear_interrupt, during, request_interrupt
    with pytest.raises(RuntimeError):                       # without Ctrl-C an error is an error
        with during("scoring"):
            raise RuntimeError("EngineCore died")
    request_interrupt()
    try:
        with pytest.raises(Interrupted) as e:
            with during("scoring", scored=lambda: 3):
                raise RuntimeError("EngineCore died")
        assert str(e.value) == "interrupted during scoring; 3 papers scored so far are kept; rerun to resume"
        with pytest.raises(Interrupted):                    # and a block that swallowed it stops at its end
            with during("prefilter"):
                pass
    finally:
        clear_interrupt()
