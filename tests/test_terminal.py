"""The terminal a user sees: stdout carries only what was asked for, engine noise goes to the log file, a
model load is announced and the scoring bar moves while papers finish (watched under tmux, or a pty)."""
from __future__ import annotations

import json
import os
import pty
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ranker.sources import read_papers
from ranker.store import Store

from conftest import DAYS, REPO, ranker, store_vectors

LISTING = DAYS / "2025-05-15" / "listing.jsonl"


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "db.sqlite3"
    with Store(path) as s:
        store_vectors(s, list(read_papers(LISTING)))       # the prefilter loads no model
    return path


def _logs(tmp_path):
    return sorted((tmp_path / "home" / "logs").glob("*.log")) if (tmp_path / "home" / "logs").exists() else []


def test_stdout_is_the_digest_path_and_engine_noise_goes_to_the_log(db, tmp_path):
    out = tmp_path / "out.txt"
    with out.open("w") as f:      # `ranker run ... > out.txt`
        p = subprocess.run([*_cli(), "run", "--papers", LISTING, "--out", tmp_path / "d", "--db", db, "--backend",
                            "fake", "--top", "4", "--backend-option", "noise=true"], stdout=f, stderr=subprocess.PIPE,
                           text=True, env=_env(tmp_path), timeout=300)
    assert p.returncode == 0, p.stderr
    assert out.read_text().splitlines() == [str(tmp_path / "d" / "2025-05-15-output.md")]
    assert "ENGINE-NOISE" not in p.stderr
    lines = p.stderr.splitlines()           # not a terminal: no bar, the load said in two lines, the summary
    assert len(lines) == 3 and lines[0] == "loading the fake backend (fake:smollm2-135m) ...", p.stderr
    assert re.fullmatch(r"loading the fake backend \(fake:smollm2-135m\): ready in \d+\.\d s", lines[1])
    assert re.fullmatch(r"2025-05-15: 192 papers, 4 kept by the prefilter, 4 scored \(0 reused, 0 failed\), "
                        r"\d+ selected", lines[2])
    (log,) = _logs(tmp_path)
    text = log.read_text()
    assert log.name.endswith(".log") and "-run-" in log.name
    for what in ("fd1 loading", "fd2 generating", "log generating", "print loading", "warning generating",
                 "child generating"):
        assert f"ENGINE-NOISE {what}" in text, what


def test_verbose_shows_the_noise_and_a_failure_names_the_log(db, tmp_path):
    args = ["run", "--papers", LISTING, "--out", tmp_path / "d", "--db", db, "--backend", "fake", "--top", "3",
            "--backend-option", "noise=true"]
    r = ranker(*args, "-v", env=_env(tmp_path))
    assert r.returncode == 0 and "ENGINE-NOISE child loading" in r.stdout + r.stderr
    assert r.stdout.splitlines()[-1] == str(tmp_path / "d" / "2025-05-15-output.md")
    # a failure says where the details are; the first paper raises inside the backend
    first = (tmp_path / "d" / "2025-05-15-scores.jsonl").read_text().split('"')[3]
    r = ranker("run", "--papers", LISTING, "--out", tmp_path / "e", "--db", db, "--backend", "fake", "--model", "other",
               "--top", "3", "--backend-option", "noise=true", "--backend-option", f"raise_for=['{first}']",
               env=_env(tmp_path))
    assert r.returncode == 1 and r.stdout == ""
    (line,) = [x for x in r.stderr.splitlines() if x.startswith("error:")]
    m = re.search(r"\(details in (\S+\.log)\)$", line)
    assert m and "injected failure" in line and "ENGINE-NOISE" in open(m.group(1)).read()


def test_verbose_shows_the_noise_on_stderr_and_keeps_stdout_the_data(db, tmp_path):
    """`ranker -v score --out - > scores.jsonl`: the engines' messages are on the terminal, on stderr; stdout
    holds the scores alone. Their prints to descriptor 1 and Python's print() landed among the scores."""
    r = ranker("-v", "score", "--papers", LISTING, "--out", "-", "--db", db, "--backend", "fake", "--model", "tiny",
               "--backend-option", "noise=true", env=_env(tmp_path))
    assert r.returncode == 0, r.stderr
    assert "ENGINE-NOISE fd1 loading" in r.stderr and "ENGINE-NOISE print generating" in r.stderr
    rows = [json.loads(x) for x in r.stdout.splitlines()]
    assert len(rows) == 192 and "ENGINE-NOISE" not in r.stdout


def test_the_terminal_shows_a_load_message_and_a_bar_that_moves(db, tmp_path):
    """Under tmux (or a pty when tmux is missing): frames of the terminal while 16 papers are scored a quarter
    of a second each show the model load and counts between 0 and 16 before the run ends."""
    cmd = [*_cli(), "run", "--papers", str(LISTING), "--out", str(tmp_path / "d"), "--db", str(db),
           "--backend", "fake", "--model", "tiny", "--top", "16", "--backend-option", "delay=0.25"]
    frames = _watch_tmux(cmd, tmp_path) if shutil.which("tmux") else _watch_pty(cmd, tmp_path)
    screen = "\n".join(frames)
    assert "loading the fake backend (fake:tiny)" in screen
    counts = {int(n) for n in re.findall(r"scoring\D*?(\d+)/16", screen)}
    moving = sorted(n for n in counts if 0 < n < 16)
    assert len(moving) >= 3, (counts, frames[-3:])       # seen at several points, not only at 0 and the end
    assert "left" in screen                               # the estimate of the time left
    assert (tmp_path / "d" / "2025-05-15-output.md").exists()


def test_a_warning_while_the_bar_is_drawn_is_a_line_of_its_own(tmp_path):
    """A warning said while a bar is on the terminal (here: a line of the papers file that cannot be read, said
    once the 800 papers are read, their bar drawn) goes above the bar on a line of its own; written straight
    to the terminal it was glued to the bar's line, which stayed on the screen."""
    rows = [line for day in ("2025-05-13", "2025-06-23") for line in open(DAYS / day / "listing.jsonl")]
    papers = tmp_path / "papers.jsonl"
    papers.write_text("".join(rows) + "{not json\n")
    db = tmp_path / "db.sqlite3"
    with Store(db) as s:
        store_vectors(s, list(read_papers(papers)))
    if not shutil.which("tmux"):
        pytest.skip("tmux is not installed")
    cmd = [*_cli(), "run", "--papers", str(papers), "--date", "2025-06-23", "--out", str(tmp_path / "d"), "--db",
           str(db), "--backend", "fake", "--model", "tiny", "--top", "4"]       # (two days' papers, as one day)
    screen = _watch_tmux(cmd, tmp_path)[-1].splitlines()
    warned = [line for line in screen if "record skipped" in line]
    assert warned and all(line.startswith("warning: 1 record skipped") for line in warned), screen
    assert not any("reading papers" in line or "scoring" in line for line in screen), screen


def test_a_line_said_above_the_bar_is_the_text_as_given(monkeypatch):
    """Through the bar's console a line is printed, not read as rich text: a ":x:" in a path, a title or an
    error (an emoji code to rich) stays those three characters, as when no bar is drawn."""
    import io

    from rich.console import Console
    from rich.progress import Progress as Bar

    from ranker.cli import common
    out = io.StringIO()
    bar = Bar(console=Console(file=out, width=200))
    monkeypatch.setattr(common, "_LIVE", [bar])
    common.warn("2506.00001: skipped: the file ends in :x: [bold]not[/bold] :100:")
    assert out.getvalue() == "warning: 2506.00001: skipped: the file ends in :x: [bold]not[/bold] :100:\n"


def test_a_model_ready_line_is_the_text_as_given_on_a_narrow_terminal():
    """The "loading <model>: ready" line said above the bar, as every other line there: on a terminal 20 columns
    wide (COLUMNS=20) it was broken in two by rich, a model path's ":fire:" turned into an emoji."""
    import io

    from rich.console import Console
    from rich.progress import Progress as Bar

    from ranker.cli import common
    out = io.StringIO()
    progress = common.Progress()
    progress._bar = Bar(console=Console(file=out, width=20))
    progress("loading /models/:fire:/smollm2-135m", 0, 1)
    progress("loading /models/:fire:/smollm2-135m", 1, 1)
    assert re.fullmatch(r"loading /models/:fire:/smollm2-135m: ready in \d+\.\d s\n", out.getvalue()), out.getvalue()


def test_a_load_that_ends_under_the_model_it_learnt_takes_its_spinner_away():
    """A server's own model ("auto") is loaded as "the model <server> serves" and ready under the name the
    server gave: the ready line names that model, and the spinner of the load started under other words
    goes (it stayed on the bar, spinning, the whole run)."""
    import io

    from rich.console import Console
    from rich.progress import Progress as Bar

    from ranker.cli import common
    out = io.StringIO()
    progress = common.Progress()
    progress._bar = Bar(console=Console(file=out, width=200))
    progress("loading the model http://127.0.0.1:8000/v1 serves", 0, None)
    assert [t.description for t in progress._bar.tasks] == ["loading the model http://127.0.0.1:8000/v1 serves ..."]
    progress("loading served-model", 1, 1)
    assert re.fullmatch(r"loading served-model: ready in \d+\.\d s\n", out.getvalue()), out.getvalue()
    assert progress._bar.tasks == [] and progress._started == {}


def test_a_second_ctrl_c_during_the_bar_leaves_the_terminal_as_it_found_it(db, tmp_path):
    """An engine that swallows Ctrl-C; the second one ends the process at once, without the bar's own cleanup:
    its line stands on its own (not glued to the bar's) and the cursor the bar hid is shown again."""
    if not shutil.which("tmux"):
        pytest.skip("tmux is not installed")
    sock, done, waiting = _tmux_socket(tmp_path), tmp_path / "done", tmp_path / "waiting"
    cmd = [*_cli(), "run", "--papers", str(LISTING), "--out", str(tmp_path / "d"), "--db", str(db),
           "--backend", "fake", "--model", "stuck", "--top", "4", "--backend-option", "delay=60",
           "--backend-option", "deaf=true", "--backend-option", f"waiting='{waiting}'"]
    env = _env(tmp_path)
    line = _tmux_line(env, cmd, done)
    tmux = ["tmux", "-L", sock]
    subprocess.run([*tmux, "new-session", "-d", "-s", "t", "-x", "120", "-y", "20", line], check=True, env=env)
    try:
        def screen() -> str:
            return subprocess.run([*tmux, "capture-pane", "-p", "-t", "t"], capture_output=True, text=True).stdout
        deadline = time.monotonic() + 120
        # the bar's 0/4 is drawn before the engine's request begins: a Ctrl-C sent in between (a loaded machine)
        # stopped the run at once, as it should, and the test took it for an engine that did not swallow it
        while not ("0/4" in screen() and waiting.exists()) and time.monotonic() < deadline:
            time.sleep(0.1)
        subprocess.run([*tmux, "send-keys", "-t", "t", "C-c"], check=True)
        time.sleep(1.5)
        assert not done.exists(), screen()                      # the engine swallowed the first Ctrl-C
        subprocess.run([*tmux, "send-keys", "-t", "t", "C-c"], check=True)
        while not done.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert done.read_text().strip() == "130", screen()
        # the line is on the pty once the process has ended, on tmux's screen once tmux has read it (a loaded
        # machine can take longer than a fixed wait for that); what came before it (the bar's end, the cursor
        # shown) is then on the screen too
        shown = time.monotonic() + 30
        while "interrupted again: stopping now" not in screen() and time.monotonic() < shown:
            time.sleep(0.1)
        lines = [x for x in screen().splitlines() if x.strip()]
        cursor = subprocess.run([*tmux, "display", "-p", "-t", "t", "#{cursor_flag}"], capture_output=True,
                                text=True).stdout.strip()
    finally:
        _end_tmux(sock)
    assert any(x.startswith("interrupted again: stopping now") for x in lines), lines
    assert not any("scoring" in x for x in lines), lines
    assert cursor == "1", lines                                   # visible


def test_an_ended_tmux_server_of_a_test_leaves_no_socket_file(tmp_path):
    """Each test's tmux server has a name of its own; kill-server left its socket file, one more in
    /tmp/tmux-<uid>/ each test run. The file tmux itself names is gone once the test's server is ended."""
    if not shutil.which("tmux"):
        pytest.skip("tmux is not installed")
    sock = _tmux_socket(tmp_path)
    subprocess.run(["tmux", "-L", sock, "new-session", "-d", "-s", "t", "sleep 60"], check=True)
    try:
        path = Path(subprocess.run(["tmux", "-L", sock, "display", "-p", "#{socket_path}"], capture_output=True,
                                   text=True, check=True).stdout.strip())
        assert path.is_socket()
    finally:
        _end_tmux(sock)
    assert not path.exists()


def test_the_backfill_and_web_commands_keep_the_terminal_quiet_and_take_offline_and_verbose(db, tmp_path):
    """backfill, import, serve, site and labels follow the same terminal: engine noise in the command's log
    file unless -v, and --offline switches offline mode on for the command."""
    args = ["backfill", "--from", LISTING, "--out", tmp_path / "bf", "--score", "--backend", "fake", "--model", "m",
            "--backend-option", "noise=true", "--db", db, "--offline"]
    r = ranker(*args, env=_env(tmp_path))
    assert r.returncode == 0 and r.stdout == f"{tmp_path / 'bf' / 'manifest.json'}\n", r.stderr
    assert "ENGINE-NOISE" not in r.stderr and len(r.stderr.splitlines()) == 1, r.stderr
    (log,) = _logs(tmp_path)
    assert "-backfill-" in log.name and "ENGINE-NOISE child generating" in log.read_text()
    r = ranker(*args[:4], tmp_path / "bf-v", *args[5:], "-v", env=_env(tmp_path))
    assert r.returncode == 0 and "ENGINE-NOISE fd2 generating" in r.stderr, r.stderr
    assert len(_logs(tmp_path)) == 1                                          # -v: no log file of its own

    r = ranker("import", tmp_path / "bf", "--db", db, "--offline", "-v", env=_env(tmp_path))
    assert r.returncode == 0 and "192 scores written" in r.stderr, r.stderr
    # serve: offline mode is on inside the command (the server is replaced so that nothing binds); the
    # replacement also prints, which only -v shows
    said = tmp_path / "mode.txt"
    probe = ("import ranker.web.server as s\nfrom ranker import netguard\n"
             "import socket\nsock = socket.socket()\nsock.bind(('127.0.0.1', 0))\n"
             "s.bind = lambda host, port: [sock]\ns.url_of = lambda sock: 'http://x/'\n"
             f"s.serve = lambda *a, **k: (open({str(said)!r}, 'w').write(str(netguard.is_offline())), "
             "print('SERVER-NOISE'))")
    for flags, offline in (([], False), (["--offline", "-v"], True), (["--offline"], True)):
        r = ranker("serve", "--db", db, *flags, pre=probe, env=_env(tmp_path))
        assert r.returncode == 0 and r.stderr.startswith("serving http://x/"), r.stderr
        assert said.read_text() == str(offline) and ("SERVER-NOISE" in r.stderr) == ("-v" in flags), flags
        assert r.stdout == ""                           # -v shows it on stderr: stdout is for data only
    r = ranker("site", "--out", tmp_path / "site", "--db", db, "--offline", "-v", env=_env(tmp_path))
    assert r.returncode == 0 and r.stdout.strip() == str(tmp_path / "site" / "index.html"), r.stderr
    for cmd in (["labels", "export", tmp_path / "l.jsonl"], ["labels", "import", tmp_path / "l.jsonl"],
                ["labels", "list"]):
        r = ranker(*cmd, "--db", db, "--offline", "-v", env=_env(tmp_path))
        assert r.returncode == 0 and r.stderr.startswith("nothing to do: no labels"), (cmd, r.stderr)


# --------------------------------------------------------------------------- --quiet
REFUSED = "error: --quiet: give --quiet or --verbose, not both\n"


def test_a_quiet_run_says_nothing_on_a_good_day(db, tmp_path):
    """`ranker run -q --out D` in a crontab: nothing on stdout or stderr on a good day, so cron mails nothing.
    Without -q it says the load, the summary and the digest's path (the README's cron line sent them all to a log,
    and with them every failure, which was then never mailed)."""
    args = ["run", "--papers", LISTING, "--db", db, "--backend", "fake", "--top", "4", "--offline"]
    r = ranker(*args, "--out", tmp_path / "loud", env=_env(tmp_path))
    assert r.returncode == 0 and r.stdout and len(r.stderr.splitlines()) == 3, r.stderr
    for quiet in (["-q"], ["--quiet"]):
        r = ranker(*args, "--model", "other" + quiet[0], "--out", tmp_path / quiet[0], *quiet, env=_env(tmp_path))
        assert (r.returncode, r.stdout, r.stderr) == (0, "", ""), (quiet, r.stdout, r.stderr)
        assert (tmp_path / quiet[0] / "2025-05-15-output.md").is_file()
    r = ranker("-q", *args, "--model", "other", "--out", tmp_path / "root", env=_env(tmp_path))    # the group's
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")
    # on a terminal too: no bar, no spinner, no line (the scoring takes a while, so a bar would be drawn)
    cmd = [*_cli(), *map(str, args), "--model", "slow", "--backend-option", "delay=0.3", "--out",
           str(tmp_path / "pty"), "-q"]
    assert b"".join(_on_pty(cmd, _env(tmp_path))) == b""
    assert (tmp_path / "pty" / "2025-05-15-output.md").is_file()


def test_a_quiet_run_says_its_warnings_and_errors_and_nothing_else(db, tmp_path):
    """-q hides the notes, never the trouble: a --date the papers contradict and a partial score are the
    warning lines alone (exit 0); an error is its one line (exit 1), also one met after the model loaded."""
    base = ["run", "--papers", LISTING, "--db", db, "--backend", "fake", "--top", "4", "--offline", "-q"]
    r = ranker(*base, "--out", tmp_path / "d", env=_env(tmp_path))
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")
    kept = [json.loads(x)["ARXIVID"] for x in (tmp_path / "d" / "2025-05-15-scores.jsonl").read_text().splitlines()]
    r = ranker(*base, "--out", tmp_path / "w", "--model", "other", "--date", "2025-05-14",
               "--backend-option", f"error=['{kept[0]}']", env=_env(tmp_path))
    assert r.returncode == 0 and r.stdout == "", r.stderr
    assert r.stderr.splitlines() == [
        f"warning: --date: 192 rows of {LISTING} are dated after 2025-05-14 (up to 2025-05-15); the papers are "
        "labelled 2025-05-14 all the same",
        f"warning: 1 of 4 papers could not be scored (first: {kept[0]}: injected error); rerun to retry them"]
    r = ranker(*base, "--out", tmp_path / "e", "--papers", tmp_path / "nosuch.jsonl", env=_env(tmp_path))
    assert (r.returncode, r.stdout, r.stderr) == (
        1, "", f"error: --papers {tmp_path / 'nosuch.jsonl'}: file not found\n")
    every = "error=[" + ",".join(f"'{i}'" for i in kept) + "]"
    r = ranker(*base, "--out", tmp_path / "f", "--model", "third", "--backend-option", every, env=_env(tmp_path))
    assert (r.returncode, r.stdout) == (1, "") and len(r.stderr.splitlines()) == 1, r.stderr
    assert r.stderr.startswith("error: nothing was scored: 4 of 4 papers could not be scored"), r.stderr
    r = ranker(*base, "--out", tmp_path / "g", "--category", "cs.XX", env=_env(tmp_path))
    assert (r.returncode, r.stdout) == (0, "") and r.stderr.splitlines() == [
        "warning: --category: 'cs.XX' is no subject class of arXiv's taxonomy that ranker knows (a new one?): no "
        "paper may match it",
        f"nothing to do: none of the 192 papers in {LISTING} is in the categories and announce types asked for"]


def test_a_quiet_run_says_a_day_whose_papers_the_filter_all_left_out_and_not_a_holiday(db, tmp_path):
    """`run -q --category math.AG` (a class arXiv lists) on a day of 192 cs papers kept none, said "nothing to do"
    as a holiday does, and -q hid it: exit 0, not a word, no digest, every day. A day that had papers and kept none
    is a setting that matches nothing: said under -q too (so cron mails it), exit 0; a day without papers (a
    weekend, a holiday) stays silent. fetch alike."""
    env = _env(tmp_path)
    base = ["--db", db, "--offline", "-q"]
    why = f"none of the 192 papers in {LISTING} is in the categories and announce types asked for"
    r = ranker("run", "--papers", LISTING, "--out", tmp_path / "d", "--backend", "fake", "--category", "math.AG",
               *base, env=env)
    assert (r.returncode, r.stdout, r.stderr.splitlines()) == (0, "", [f"nothing to do: {why}"]), r.stderr
    assert not (tmp_path / "d").exists() or not any((tmp_path / "d").iterdir())
    r = ranker("run", "--papers", LISTING, "--out", tmp_path / "a", "--backend", "fake", "--announce", "replace",
               *base, env=env)                           # the day's papers are new and cross-lists only
    assert (r.returncode, r.stdout, r.stderr.splitlines()) == (0, "", [f"nothing to do: {why}"]), r.stderr
    r = ranker("fetch", "--from", LISTING, "--out", tmp_path / "p.jsonl", "--category", "math.AG", *base, env=env)
    assert (r.returncode, r.stdout, r.stderr.splitlines()) == (0, "", [
        f"nothing to do: 0 of 192 papers in {LISTING} match math.AG / new,cross; wrote an empty "
        f"{tmp_path / 'p.jsonl'}"]), r.stderr
    holiday = tmp_path / "holiday.jsonl"
    holiday.write_text("")
    for args in (["run", "--papers", holiday, "--out", tmp_path / "h", "--backend", "fake"],
                 ["fetch", "--from", holiday, "--out", tmp_path / "h.jsonl"]):
        r = ranker(*args, *base, env=env)
        assert (r.returncode, r.stdout, r.stderr) == (0, "", ""), (args, r.stderr)


@pytest.mark.parametrize("flags", [["-q", "-v"], ["--verbose", "--quiet"], ["@-v", "-q"], ["@-q", "-v"],
                                   ["@-q", "@-v"]])
def test_quiet_and_verbose_together_are_refused(db, tmp_path, flags):
    """-q asks for silence, -v for the engines' messages: the pair (the command's or the group's, `ranker -v run
    -q`) is one line and status 1, before anything is read or made."""
    root = [f[1:] for f in flags if f.startswith("@")]
    own = [f for f in flags if not f.startswith("@")]
    r = ranker(*root, "run", "--papers", LISTING, "--out", tmp_path / "d", "--db", tmp_path / "new.sqlite3",
               "--backend", "fake", "--offline", *own, env=_env(tmp_path))
    assert (r.returncode, r.stdout, r.stderr) == (1, "", REFUSED)
    assert not (tmp_path / "d").exists() and not (tmp_path / "new.sqlite3").exists()


def test_quiet_keeps_the_data_asked_for_on_stdout(db, tmp_path):
    """Data is not chatter: `fetch --out - -q` writes every paper, `similar -q` every hit, `ranker -q config`
    the whole listing, the same bytes as without -q; only the notes on stderr go."""
    env = _env(tmp_path)
    for args in (["fetch", "--from", LISTING, "--out", "-", "--db", db, "--offline"],
                 ["similar", "2505.09371", "--k", "5", "--db", db, "--offline"]):
        loud, quiet = ranker(*args, env=env), ranker(*args, "-q", env=env)
        assert loud.returncode == quiet.returncode == 0 and loud.stderr, (loud.stderr, quiet.stderr)
        assert quiet.stdout == loud.stdout and quiet.stderr == "", quiet.stderr
    assert len(quiet.stdout.splitlines()) == 5
    assert len(ranker("fetch", "--from", LISTING, "--out", "-", "--db", db, "-q", env=env).stdout.splitlines()) == 192
    loud, quiet = ranker("config", "--db", db, env=env), ranker("-q", "config", "--db", db, env=env)
    assert quiet.returncode == 0 and quiet.stdout == loud.stdout and "[fetch]" in quiet.stdout, quiet.stderr


def test_every_command_with_verbose_takes_quiet_and_says_what_it_hides():
    """-q is declared once (common.QuietOpt) and offered wherever -v is, its help naming what it hides and what
    it never does."""
    import typer.main

    from ranker.cli.app import app
    from ranker.cli.common import QuietOpt
    root = typer.main.get_command(app)

    def commands(group, path=()):
        for name, cmd in group.commands.items():
            if hasattr(cmd, "commands"):
                yield from commands(cmd, (*path, name))
            else:
                yield (*path, name), cmd
    found = 0
    for path, cmd in [((), root), *commands(root)]:
        opts = {o: p for p in cmd.params for o in p.opts}
        if "--verbose" in opts:
            found += 1
            assert "--quiet" in opts and "-q" in opts and opts["-q"] is opts["--quiet"], path
            assert opts["--quiet"].help == QuietOpt.__metadata__[0].help, path
            for word in ("progress", "warning", "error", "stdout", "Not with -v"):
                assert word in opts["--quiet"].help, (path, word)
    assert found >= 18


# --------------------------------------------------------------------------- helpers
def _cli():
    return [sys.executable, "-m", "ranker"]


def _env(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "RANKER_DEBUG"}
    env.update(RANKER_HOME=str(tmp_path / "home"), PYTHONPATH=str(REPO), COLUMNS="120", TERM="xterm-256color")
    return env


def _tmux_line(env, cmd, done) -> str:
    """The shell line tmux runs: `cmd`, then its exit status into `done`, written beside it and renamed in place
    (`echo $? > done` makes the file empty first: a watcher that saw it before the echo read '' (CI, stop 44))."""
    shell = " ".join(f"{k}={_q(v)}" for k, v in env.items() if k in ("RANKER_HOME", "PYTHONPATH", "TERM", "PATH"))
    part = _q(str(done) + ".part")
    return f"env {shell} {' '.join(_q(c) for c in cmd)}; echo $? > {part}; mv {part} {_q(str(done))}; sleep 60"


def _tmux_socket(tmp_path) -> str:
    """The tmux server's name (-L) of one test: its own. Tests that ran one after the other under one name (this
    process's) had the second's new-session reach the first's server as its kill-server was ending it: "server
    exited unexpectedly" (23 of 300 such pairs here, idle)."""
    return f"ranker-test-{os.getpid()}-{tmp_path.name}"


def _end_tmux(sock: str) -> None:
    """Ends the tmux server `sock` and removes its socket file: kill-server leaves the file behind, and with a
    name of each test's own they piled up in /tmp/tmux-<uid>/, one a test run."""
    subprocess.run(["tmux", "-L", sock, "kill-server"], capture_output=True)
    (Path(os.environ.get("TMUX_TMPDIR", "/tmp")) / f"tmux-{os.getuid()}" / sock).unlink(missing_ok=True)


def _watch_tmux(cmd, tmp_path) -> list[str]:
    sock, done = _tmux_socket(tmp_path), tmp_path / "done"
    env = _env(tmp_path)
    line = _tmux_line(env, cmd, done)
    subprocess.run(["tmux", "-L", sock, "new-session", "-d", "-s", "t", "-x", "150", "-y", "40", line],
                   check=True, env=env)
    frames = []
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            shot = subprocess.run(["tmux", "-L", sock, "capture-pane", "-p", "-t", "t"], capture_output=True,
                                  text=True).stdout
            frames.append(shot)
            if done.exists():
                break
            time.sleep(0.1)
        assert done.exists() and done.read_text().strip() == "0", frames[-1]
    finally:
        _end_tmux(sock)
    return frames


def _on_pty(cmd, env, *, stdout: bool = True, timeout: float = 60) -> list[bytes]:
    """Run `cmd` with its stdin and stderr (and its stdout, unless `stdout` is False: then /dev/null) on a new
    pseudo-terminal: what it wrote there, chunk by chunk as read (everything, what it wrote just before it ended
    too). It must succeed."""
    master, slave = pty.openpty()
    p = subprocess.Popen(cmd, stdin=slave, stdout=slave if stdout else subprocess.DEVNULL, stderr=slave, env=env,
                         close_fds=True)
    os.close(slave)
    chunks: list[bytes] = []
    ended = False
    while True:
        ready, _, _ = select.select([master], [], [], 0 if ended else 0.1)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:                      # the process and its children are gone
                break
            if not chunk:
                break
            chunks.append(chunk)
        elif ended:                              # (read to the end once it has ended)
            break
        else:
            ended = p.poll() is not None
    os.close(master)
    assert p.wait(timeout=timeout) == 0, b"".join(chunks)[-2000:]
    return chunks


def _watch_pty(cmd, tmp_path) -> list[str]:
    return [re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", chunk.decode("utf-8", "replace"))
            for chunk in _on_pty(cmd, _env(tmp_path))]


def _q(s: str) -> str:
    import shlex
    return shlex.quote(str(s))


@pytest.mark.slow
def test_a_real_vllm_run_to_a_file_and_its_rerun(db, tmp_path):
    """`ranker run ... > out.txt` with the real vLLM engine (a SmolLM2 copy whose chat template thinks by
    default): out.txt holds the digest's path and nothing else, the terminal only our three lines, no COMMENT
    that reached its bound ends mid-word; the rerun loads no model and writes the same digest."""
    from test_reasoning_template import thinking_copy
    model = thinking_copy(tmp_path / "smollm2-thinking")
    cfg = tmp_path / "ranker.toml"
    cfg.write_text("[scoring]\nbackend = 'vllm'\ncomment_chars = 80\n[scoring.vllm]\nmax_model_len = 4096\n")
    args = ["run", "--papers", LISTING, "--out", tmp_path / "d", "--db", db, "--config", cfg, "--model", model,
            "--top", "3", "--offline"]
    out = tmp_path / "out.txt"
    with out.open("w") as f:
        p = subprocess.run([*_cli(), *map(str, args)], stdout=f, stderr=subprocess.PIPE, text=True,
                           env=_env(tmp_path), timeout=900)
    assert p.returncode == 0, p.stderr
    digest = tmp_path / "d" / "2025-05-15-output.md"
    assert out.read_text() == f"{digest}\n"
    lines = p.stderr.splitlines()
    assert len(lines) == 3 and lines[0] == f"loading {model} ...", p.stderr           # no engine chatter
    assert re.fullmatch(rf"loading {re.escape(str(model))}: ready in \d+\.\d s", lines[1])
    assert lines[2].startswith("2025-05-15: 192 papers, 3 kept by the prefilter, 3 scored (0 reused, 0 failed)")
    (log,) = _logs(tmp_path)
    assert "vllm" in log.read_text().lower()                                          # it went here instead
    scores = [json.loads(x) for x in (tmp_path / "d" / "2025-05-15-scores.jsonl").read_text().splitlines()]
    assert len(scores) == 3
    for s in scores:
        c = s["COMMENT"]
        assert len(c) <= 80 and (len(c) < 79 or c.endswith((".", "!", "?", "\u2026"))), c
    first = digest.read_bytes()

    r = ranker(*args, env={"RANKER_HOME": tmp_path / "home"})
    assert r.returncode == 0 and r.stdout == f"{digest}\n"
    assert "loading" not in r.stderr and "(3 reused, 0 failed)" in r.stderr
    assert digest.read_bytes() == first


@pytest.mark.parametrize("args", [("models", "list"), ("prefilter", "--papers", str(LISTING), "--out", "-"),
                                  ("fetch", "--from", str(LISTING), "--out", "-"),
                                  ("score", "--papers", str(LISTING), "--out", "-", "--backend", "fake")])
def test_a_reader_that_goes_away_is_no_traceback(db, tmp_path, args):
    """`ranker prefilter --out - | head -1`: the reader closes the pipe early. The command stops quietly (ended by
    SIGPIPE, as shell tools are), with no traceback: closing the log's stdout used to raise
    BrokenPipeError out of main(). Every command alike: fetch and score, whose --out is written as a file is,
    said `error: stdout: cannot write: Broken pipe` where prefilter said nothing."""
    read, write = os.pipe()
    os.close(read)                                   # every write to stdout now fails with EPIPE
    env = {**os.environ, "RANKER_HOME": str(tmp_path / "home")}
    env.pop("RANKER_DEBUG", None)
    try:
        p = subprocess.run([sys.executable, "-m", "ranker", *args, "--db", str(db)] if args[0] != "models"
                           else [sys.executable, "-m", "ranker", *args], stdout=write, stderr=subprocess.PIPE,
                           text=True, env=env, timeout=300)
    finally:
        os.close(write)
    assert p.returncode == -signal.SIGPIPE, (p.returncode, p.stderr)
    assert "Traceback" not in p.stderr and "BrokenPipe" not in p.stderr, p.stderr
    assert "Broken pipe" not in p.stderr and "error:" not in p.stderr, p.stderr


def test_a_reader_gone_ends_ranker_as_it_ends_shell_tools(db, tmp_path):
    """`ranker fetch --out - | head -1` in a shell: ranker ended with status 1, the status it gives an error, where
    `cat FILE | head -1` gives 141 (ended by SIGPIPE): a script under `pipefail` that lets a reader gone pass
    took ranker's for a failure. Now 141 too, with nothing on stderr."""
    script = ('cat "$1" | head -1 >/dev/null; cat=${PIPESTATUS[0]}; '
              '"${@:2}" 2>err.txt | head -1 >/dev/null; echo "$cat ${PIPESTATUS[0]}"')
    r = subprocess.run(["bash", "-c", script, "bash", str(LISTING), *_cli(), "fetch", "--from", str(LISTING),
                        "--out", "-", "--db", str(db)], cwd=tmp_path, capture_output=True, text=True,
                       env=_env(tmp_path), timeout=300)
    assert r.stdout.split() == ["141", "141"], (r.stdout, r.stderr, (tmp_path / "err.txt").read_text())
    assert (tmp_path / "err.txt").read_text() == ""


def _into_a_closed_pipe(tmp_path, *args) -> subprocess.CompletedProcess:
    """`ranker ARGS | true`: stdout is a pipe whose reader has already gone."""
    read, write = os.pipe()
    os.close(read)
    try:
        return subprocess.run([*_cli(), *args], stdout=write, stderr=subprocess.PIPE, text=True,
                              env=_env(tmp_path), timeout=120)
    finally:
        os.close(write)


@pytest.mark.parametrize("args", [("fetch", "--help"), ("labels", "export", "--help"), ("models", "list", "--help"),
                                  ("--help",), ("--version",)])
def test_a_commands_help_into_a_gone_reader_is_quiet(tmp_path, args):
    """`ranker fetch --help | head -0`: click writes the help itself, past naming_stdout, so its EPIPE named
    nothing and was taken for a worker's pipe: 'error: broken pipe'. The reader of stdout is gone: ended by
    SIGPIPE, no word, as for any other output."""
    p = _into_a_closed_pipe(tmp_path, *args)
    assert p.returncode == -signal.SIGPIPE and p.stderr == "", p.stderr


def test_an_unnamed_write_to_a_gone_stdout_while_the_log_holds_descriptor_1_is_quiet(tmp_path):
    """A command writing to its stdout past naming_stdout while descriptor 1 carries the log: the reader gone is
    judged on the command's stdout (TERM.out), not on descriptor 1 (the log file), which said 'error: broken pipe'."""
    pre = ("import ranker.labels\n"
           "def export_labels(store, path):\n"
           "    from ranker.cli.term import TERM\n"
           "    TERM.out.write('x' * 200000); TERM.out.flush()\n"
           "ranker.labels.export_labels = export_labels\n")
    read, write = os.pipe()
    os.close(read)
    try:
        p = subprocess.run([sys.executable, "-c", f"{pre}from ranker.cli import main; main()", "labels", "export",
                            str(tmp_path / "l.jsonl")], stdout=write, stderr=subprocess.PIPE, text=True,
                           env=_env(tmp_path), timeout=120)
    finally:
        os.close(write)
    assert p.returncode == -signal.SIGPIPE and p.stderr == "", p.stderr


@pytest.mark.parametrize("args", [("labels",), ("models",), ()])
def test_a_groups_help_for_no_subcommand_into_a_gone_reader_is_quiet(tmp_path, args):
    """`ranker labels | true`: a group named alone prints its help from main()'s own handler, whose EPIPE
    escaped as a traceback. Quiet, ended by SIGPIPE, as any output to a gone reader."""
    p = _into_a_closed_pipe(tmp_path, *args)
    assert p.returncode == -signal.SIGPIPE and p.stderr == "", p.stderr


def test_a_groups_help_for_no_subcommand_into_a_full_disk_is_one_line(tmp_path):
    """`ranker labels > /dev/full`: one line naming stdout, not a traceback."""
    with open("/dev/full", "w") as full:
        p = subprocess.run([*_cli(), "labels"], stdout=full, stderr=subprocess.PIPE, text=True,
                           env=_env(tmp_path), timeout=120)
    assert p.returncode == 1 and p.stderr.splitlines() == ["error: stdout: no space left on device"], p.stderr


@pytest.mark.parametrize("args", [("--help",), ("fetch", "--help"), ("labels", "export", "--help"), ("--version",)])
def test_clicks_own_output_into_a_full_disk_names_stdout(tmp_path, args):
    """`ranker --help > /dev/full`: click writes the help (and --version) itself, past naming_stdout, and the line
    was 'error: no space left on device', naming nothing; it names stdout as every other write to it does."""
    with open("/dev/full", "w") as full:
        p = subprocess.run([*_cli(), *args], stdout=full, stderr=subprocess.PIPE, text=True,
                           env=_env(tmp_path), timeout=120)
    assert p.returncode == 1 and p.stderr.splitlines() == ["error: stdout: no space left on device"], p.stderr


def test_a_path_holding_a_newline_is_named_on_one_line(tmp_path):
    """A file name with a newline in it (a pasted path, a script's unquoted variable) printed the error line
    broken in two ('error: /tmp/a' and 'b.jsonl: file not found'): the path is quoted as Python writes it, as
    a model's name is, in an error from the library (where) and in one from the file system."""
    missing = tmp_path / "a\nb.jsonl"
    p = subprocess.run([*_cli(), "prefilter", "--papers", str(missing), "--out", str(tmp_path / "r.jsonl")],
                       capture_output=True, text=True, env=_env(tmp_path), timeout=120)
    assert p.returncode == 1 and p.stderr.splitlines() == [f"error: --papers {str(missing)!r}: file not found"], \
        p.stderr
    (tmp_path / "file").write_text("")
    out = tmp_path / "file" / "x\ty.jsonl"
    p = subprocess.run([*_cli(), "labels", "export", str(out)], capture_output=True, text=True,
                       env=_env(tmp_path), timeout=120)
    assert p.returncode == 1 and len(p.stderr.splitlines()) == 1, p.stderr
    assert p.stderr.startswith(f"error: {str(out)!r}: "), p.stderr


def test_a_summary_line_names_a_path_holding_a_newline_on_one_line(db, tmp_path):
    """Not only errors echo a path the user gave: prefilter's summary ('... -> PATH'), score's and labels'
    (written, nothing to do) printed a name holding a newline on two lines, the second looking like a line of
    its own to whatever reads stderr (a cron mail, a grep). They quote it as an error does (as_given)."""
    papers = tmp_path / "a\npapers.jsonl"
    shutil.copy(LISTING, papers)
    out = tmp_path / "r\nanked.jsonl"
    p = subprocess.run([*_cli(), "prefilter", "--papers", str(papers), "--out", str(out), "--db", str(db), "--top", "5",
                        "--offline"], capture_output=True, text=True, env=_env(tmp_path), timeout=300)
    assert p.returncode == 0 and len(p.stderr.splitlines()) == 1, p.stderr
    assert p.stderr.rstrip("\n").endswith(f" -> {str(out)!r}"), p.stderr
    fetched = tmp_path / "f\netched.jsonl"
    p = subprocess.run([*_cli(), "fetch", "--from", str(LISTING), "--out", str(fetched), "--db", str(db)],
                       capture_output=True, text=True, env=_env(tmp_path), timeout=300)
    assert p.returncode == 0 and len(p.stderr.splitlines()) == 1 and repr(str(fetched)) in p.stderr, p.stderr
    empty = tmp_path / "no\npapers.jsonl"
    empty.write_text("")
    scores = tmp_path / "s\ncores.jsonl"
    p = subprocess.run([*_cli(), "score", "--papers", str(empty), "--out", str(scores), "--db", str(db), "--backend",
                        "fake"], capture_output=True, text=True, env=_env(tmp_path), timeout=300)
    assert p.returncode == 0 and p.stderr.splitlines() == [
        f"nothing to do: no papers in {str(empty)!r} (wrote an empty {str(scores)!r})"], p.stderr
    p = subprocess.run([*_cli(), "labels", "import", str(empty), "--db", str(db)], capture_output=True, text=True,
                       env=_env(tmp_path), timeout=300)
    assert p.returncode == 0 and p.stderr.splitlines() == [f"nothing to do: no labels in {str(empty)!r}"], p.stderr
    labels = tmp_path / "l\nabels.jsonl"
    p = subprocess.run([*_cli(), "labels", "export", str(labels), "--db", str(db)], capture_output=True, text=True,
                       env=_env(tmp_path), timeout=300)
    assert p.returncode == 0 and p.stderr.splitlines() == [
        f"nothing to do: no labels in {str(db)} (wrote an empty {str(labels)!r})"], p.stderr


_CLOSED_PIPE = """
import multiprocessing, ranker.labels
def export_labels(store, path):
    mine, theirs = multiprocessing.Pipe()
    theirs.close()                      # a worker gone: its end of the pipe is closed
    {before}
    mine.send_bytes(b"x" * 65536)
ranker.labels.export_labels = export_labels
"""


def test_a_broken_pipe_not_to_stdout_is_an_error_and_its_traceback_shown_under_debug(tmp_path):
    """Any EPIPE ended the command silently with status 1, as a `| head` reader gone does: a pipe to a worker
    that died said nothing, not even with RANKER_DEBUG=1; and one that a Ctrl-C caused lost its 130. Only the
    reader of stdout (or of an --out pipe) is gone quietly."""
    out = tmp_path / "l.jsonl"
    r = ranker("labels", "export", out, env={"RANKER_HOME": tmp_path / "h"}, pre=_CLOSED_PIPE.format(before=""))
    assert r.returncode == 1 and r.stderr.splitlines() == ["error: broken pipe"], r.stderr
    r = ranker("labels", "export", out, env={"RANKER_HOME": tmp_path / "h", "RANKER_DEBUG": "1"},
               pre=_CLOSED_PIPE.format(before=""))
    assert r.returncode == 1 and "Traceback" in r.stderr and "BrokenPipeError" in r.stderr, r.stderr
    ctrl_c = "from ranker.errors import request_interrupt; request_interrupt()"
    r = ranker("labels", "export", out, env={"RANKER_HOME": tmp_path / "h"}, pre=_CLOSED_PIPE.format(before=ctrl_c))
    assert r.returncode == 130 and r.stderr.splitlines() == [
        "interrupted; what was stored so far is kept; rerun to resume"], r.stderr


def test_a_reader_of_stderr_that_goes_away_costs_the_notes_not_the_run(db, tmp_path):
    """`ranker run ... 2>&1 | head -1`-like: the reader of stderr closes early. The notes after that are lost;
    the run goes on to its digest and status 0. It failed on its first note ('loading ...'), recorded failed
    with '[Errno 32] Broken pipe'."""
    read, write = os.pipe()
    os.close(read)
    env = {**os.environ, "RANKER_HOME": str(tmp_path / "home")}
    env.pop("RANKER_DEBUG", None)
    try:
        p = subprocess.run([*_cli(), "run", "--papers", str(LISTING), "--out", str(tmp_path / "d"), "--db", str(db),
                            "--backend", "fake", "--top", "3"], stdout=subprocess.PIPE, stderr=write, text=True,
                           env=env, timeout=300)
    finally:
        os.close(write)
    digest = tmp_path / "d" / "2025-05-15-output.md"
    assert p.returncode == 0 and p.stdout == f"{digest}\n" and digest.exists()
    assert json.loads((tmp_path / "d" / "2025-05-15-run.json").read_text())["status"] == "ok"


@pytest.mark.parametrize("args", [("fetch", "--from", str(LISTING), "--out", "-"),
                                  ("fetch", "--from", str(LISTING), "--out", "/dev/stdout", "-v"),
                                  ("score", "--papers", str(LISTING), "--out", "-", "--backend", "fake")])
def test_data_to_a_redirected_stdout_lands_where_the_shell_left_off(db, tmp_path, args):
    """`{ echo HEAD; ranker fetch --out -; echo TAIL; } > day.jsonl`: the data goes after what the script wrote
    before and the script's next line after it. The stdout file was opened afresh (/dev/fd/5, appending at
    its end as it was then), so the shell's own offset never moved: its next line landed over the first paper."""
    out = tmp_path / "day.jsonl"
    env = {**os.environ, "RANKER_HOME": str(tmp_path / "home")}
    env.pop("RANKER_DEBUG", None)
    with out.open("wb", buffering=0) as f:
        f.write(b"HEAD\n")
        p = subprocess.run([*_cli(), *args, "--db", str(db)], stdout=f, stderr=subprocess.PIPE, text=True, env=env,
                           timeout=300)
        f.write(b"TAIL\n")
    assert p.returncode == 0, p.stderr
    lines = out.read_text().splitlines()
    assert lines[0] == "HEAD" and lines[-1] == "TAIL" and len(lines) == 2 + 192, lines[:3]
    assert all(isinstance(json.loads(x), dict) for x in lines[1:-1])


@pytest.mark.parametrize("args, named", [
    (("fetch", "--from", str(LISTING), "--out", "-"), "stdout: cannot write: No space left on device"),
    (("fetch", "--from", str(LISTING), "--out", "/dev/stdout"), "/dev/stdout: cannot write: No space left on device"),
    (("prefilter", "--papers", str(LISTING), "--out", "-", "--top", "3"),
     "stdout: cannot write: No space left on device"),
    (("index", "status"), "stdout: no space left on device")])
def test_a_full_stdout_is_named(db, tmp_path, args, named):
    """`ranker fetch --out - > file` on a full disk (/dev/full is one): the one error line names stdout, as the
    user gave it. It named /dev/fd/5, the descriptor the command kept for the terminal's stdout, which the user
    never typed, or, for a result printed (the ranked papers, a status), nothing at all: 'no space left on
    device'."""
    if not os.path.exists("/dev/full"):
        pytest.skip("needs /dev/full")
    env = {**os.environ, "RANKER_HOME": str(tmp_path / "home")}
    env.pop("RANKER_DEBUG", None)
    with open("/dev/full", "w") as full:
        p = subprocess.run([*_cli(), *args, "--db", str(db)], stdout=full, stderr=subprocess.PIPE, text=True, env=env,
                           timeout=300)
    lines = p.stderr.splitlines()
    assert p.returncode == 1 and lines[-1] == f"error: {named}", p.stderr
    assert "Traceback" not in p.stderr and "/dev/fd" not in p.stderr and len(lines) <= 2, p.stderr


def test_a_closed_stderr_or_stdout_is_no_failure(db, tmp_path):
    """`ranker ... 2>&-` (a cron line that drops the notes) and `>&-`: Python gives no stream for a closed
    descriptor, and every command failed on its first note, the error line landing on stdout among the data
    (`unexpected failure: 'NoneType' object has no attribute 'flush'`). The closed stream is /dev/null now:
    the command does its work, stdout carries the data alone."""
    def closing(fd):
        return lambda: os.close(fd)

    env = {**os.environ, "RANKER_HOME": str(tmp_path / "home")}
    env.pop("RANKER_DEBUG", None)
    p = subprocess.run([*_cli(), "prefilter", "--papers", str(LISTING), "--out", "-", "--db", str(db), "--top", "3"],
                       stdout=subprocess.PIPE, env=env, timeout=300, preexec_fn=closing(2))
    assert p.returncode == 0, p.stdout[-500:]
    rows = [json.loads(x) for x in p.stdout.decode().splitlines()]         # data only: no note, no error
    assert len(rows) == 192 and sum(r["kept"] for r in rows) == 3

    p = subprocess.run([*_cli(), "run", "--papers", str(LISTING), "--out", str(tmp_path / "d"), "--db", str(db),
                        "--backend", "fake", "--model", "tiny", "--top", "3"],
                       stderr=subprocess.PIPE, text=True, env=env, timeout=300, preexec_fn=closing(1))
    assert p.returncode == 0 and "error" not in p.stderr, p.stderr
    assert p.stderr.splitlines()[-1].startswith("2025-05-15: 192 papers, 3 kept by the prefilter, 3 scored")
    assert (tmp_path / "d" / "2025-05-15-output.md").exists()


def test_a_dumb_terminal_is_told_as_a_log_is(db, tmp_path):
    """TERM=dumb (Emacs' shell, a CI runner's pty): rich cannot redraw there and drew no bar, but the bar still
    took the "loading <model> ..." line, so nothing was said while a model loaded, and its end left an empty
    line. Such a terminal now gets the lines a log gets, and no control sequence."""
    buf = b"".join(_on_pty([*_cli(), "run", "--papers", str(LISTING), "--out", str(tmp_path / "d"), "--db", str(db),
                            "--backend", "fake", "--model", "tiny", "--top", "4", "--backend-option", "delay=0.1"],
                           {**_env(tmp_path), "TERM": "dumb"}, stdout=False))
    text = buf.decode()
    assert "\x1b" not in text, text
    lines = text.replace("\r\n", "\n").split("\n")
    loading = "loading the fake backend (fake:tiny)"
    assert lines[0] == f"{loading} ..." and lines[1].startswith(f"{loading}: ready in "), lines
    assert lines[2].startswith("2025-05-15: 192 papers, 4 kept by the prefilter, 4 scored") and lines[3:] == [""]


@pytest.mark.parametrize("command", ["score", "fetch"])
def test_data_written_to_the_terminal_is_not_drawn_over_by_the_bar(db, tmp_path, command):
    """`ranker score --out -` / `ranker fetch --out -` with stdout the terminal the bar is drawn on: the data
    came while the bar was drawn, glued to its line, and the bar's redraws and end erased lines of it (the
    first score was cut, a frame "scoring 4/5" left in its place). Now score writes once the bar is gone, and
    fetch, which streams, draws none: after the first row nothing but plain lines reaches the terminal."""
    papers = tmp_path / "papers.jsonl"
    rows = LISTING.read_text().splitlines(keepends=True)
    if command == "score":
        papers.write_text("".join(rows[:5]))
        args = ["score", "--papers", papers, "--backend", "fake", "--model", "tiny", "--backend-option", "delay=0.3"]
        first, n = b'{"ARXIVID"', 5
    else:
        papers.write_text("".join(rows) * 2)          # 384 rows: the reading count is redrawn on the way
        args = ["fetch", "--from", papers, "--date", "2025-05-15"]
        first, n = b'{"id"', 192
    buf = b"".join(_on_pty([*_cli(), *map(str, args), "--out", "-", "--db", str(tmp_path / "fresh.sqlite3")],
                           _env(tmp_path), timeout=120))
    at = buf.find(first)
    before = buf[max(0, at - 300):at + 50]
    assert at == 0 or (at > 0 and buf[:at].endswith((b"\r\n", b"\x1b[2K"))), before     # at a line's start
    rest = buf[at:]
    assert b"\x1b" not in rest, rest[:3000]
    lines = rest.decode().replace("\r\n", "\n").splitlines()
    data = [json.loads(x) for x in lines[:n]]
    assert len(data) == n and not lines[n].startswith("{"), lines[n:]
