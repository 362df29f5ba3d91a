"""The command line in the user's words: each kind of mistake is one line naming the flag, file or config line
at fault (never an exception's class), empty input is 'nothing to do' everywhere, and --help shows examples
and flags as flags."""
from __future__ import annotations

import json
import re

import pytest

from ranker.sources import read_papers
from ranker.store import Store

from conftest import DAYS, REPO, first_papers, ranker, store_vectors

LISTING = DAYS / "2025-05-15" / "listing.jsonl"
CLASS_NAME = re.compile(r"\b(BadParameter|MissingParameter|NoSuchOption|BadOptionUsage|UsageError|FileNotFoundError"
                        r"|OSError|OperationalError|DatabaseError|Errno|Traceback)\b")


def one_error(r, code=None) -> str:
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert not CLASS_NAME.search(lines[0]), lines[0]
    if code is not None:
        assert r.returncode == code, (r.returncode, r.stderr)
    return lines[0]


# --------------------------------------------------------------------------- command-line mistakes
@pytest.mark.parametrize("args,line,code", [
    (["run", "--out", "x", "--kep", "3"], "error: there is no option --kep; did you mean --keep?", 1),
    (["prefilter", "--papers", "p", "--out", "o", "--embeder", "minilm"],
     "error: there is no option --embeder; did you mean --embedder?", 1),
    (["run", "--out", "x", "--zzz"], "error: there is no option --zzz (see `ranker run --help`)", 1),
    # --help is a flag too: `--hlep` was said to mean --keep, `--help-me` --score-mode
    (["run", "--out", "x", "--hlep"], "error: there is no option --hlep; did you mean --help?", 1),
    (["serve", "--help-me"], "error: there is no option --help-me; did you mean --help?", 1),
    (["run", "--out", "x", "--papers"], "error: --papers needs a value", 1),
    (["prefilter", "--papers", str(LISTING)],
     "error: --out is required (where to write the ranked papers (JSONL; '-' for stdout))", 1),
    (["prefilter", "--papers", str(LISTING), "--out", "o", "--keep", "abc"],
     "error: --keep: expected a number, got 'abc'", 1),
    (["run", "--out", "x", "--top", "many"], "error: --top: expected an integer, got 'many'", 1),
    # past the model's own limit the cut would only file its vectors under another key
    (["prefilter", "--papers", str(LISTING), "--out", "o", "--max-tokens", "100000"],
     "error: --max-tokens: must be at most 256: minilm reads no more tokens than that", 1),
    (["rn"], "error: there is no command 'rn'; did you mean run?", 1),
    (["run", "--out", "x", "--date", "15/05/2025"], "error: --date: expected a day as YYYY-MM-DD, got '15/05/2025'", 1),
    (["run", "--out", "x", "--keep", "0.3", "--top", "4"],
     "error: --top: give one of --keep, --top and --recall, not --keep and --top", 1),
    # the backfill and web commands, and arguments (named as --help shows them)
    (["backfill", "--from", "x", "--out", "y", "--engin", "ray"],
     "error: there is no option --engin; did you mean --engine?", 1),
    (["serve", "--port", "abc"], "error: --port: expected an integer, got 'abc'", 1),
    (["labels", "exprt", "f"], "error: there is no command 'exprt'; did you mean export?", 1),
    (["import"], "error: FOLDER is required (a folder `ranker backfill` wrote)", 1),
    (["labels", "import"], "error: FILE is required (JSONL file from `ranker labels export` ('-' for stdin))", 1),
    (["models", "prepare"], "error: NAMES is required (preset names, e.g. minilm smollm2-135m)", 1),
    # checked before an empty database could make them "nothing to do"
    (["similar", "2505.00001", "--k", "0"], "error: --k: must be at least 1", 1),
    (["similar", "moe", "--since", "yesterday"], "error: --since: expected a day as YYYY-MM-DD, got 'yesterday'", 1),
    (["similar", "moe", "--since", "2025-13-01"], "error: --since: expected a day as YYYY-MM-DD, got '2025-13-01'", 1),
    # a word too many was click's own "Got unexpected extra argument(s) (b)"
    (["similar", "mixture", "of", "experts"], "error: unexpected extra arguments 'of experts': QUERY is one value; "
     "quote a value that has spaces (see `ranker similar --help`)", 1),
    (["labels", "import", "a.jsonl", "b.jsonl"], "error: unexpected extra argument 'b.jsonl': FILE is one value; quote "
     "a value that has spaces (see `ranker labels import --help`)", 1),
    (["fetch", "x.xml", "--out", "o"], "error: unexpected extra argument 'x.xml': `ranker fetch` takes options only "
     "(see `ranker fetch --help`)", 1),
    # one quoted word with a space is one argument, not "arguments" (two words are, quoted as one or not)
    (["fetch", "my feed.xml", "--out", "o"], "error: unexpected extra argument 'my feed.xml': `ranker fetch` takes "
     "options only (see `ranker fetch --help`)", 1),
    (["similar", "mixture", "of experts"], "error: unexpected extra argument 'of experts': QUERY is one value; "
     "quote a value that has spaces (see `ranker similar --help`)", 1),
    (["similar", "mixture", "of experts", "models"], "error: unexpected extra arguments 'of experts models': QUERY is "
     "one value; quote a value that has spaces (see `ranker similar --help`)", 1),
])
def test_usage_mistakes_are_one_line_naming_the_flag(tmp_path, args, line, code):
    r = ranker(*args, cwd=tmp_path)
    assert one_error(r, code) == line


@pytest.mark.parametrize("args", [
    ["run", "--papers", str(LISTING), "--backend", "fake"], ["site"], ["compare", "--gpt", str(LISTING),
                                                                        "--local", str(LISTING)],
    ["eval", "--history", str(DAYS)], ["backfill", "--from", str(LISTING), "--embed"]])
def test_stdout_for_a_folder_is_refused_not_made_a_folder_named_dash(tmp_path, args):
    """`ranker run --out -`, by the habit `fetch --out -` gives: these commands write a folder's files, and a
    folder named '-' was made in the working folder, the digest's path printed as -/<date>-output.md."""
    r = ranker(*args, "--out", "-", env={"RANKER_HOME": tmp_path / "home", "RANKER_OFFLINE": "1"}, cwd=tmp_path)
    assert one_error(r, 1) == "error: --out: '-' (stdout) cannot take this command's files; give a folder"
    assert not (tmp_path / "-").exists()


def test_a_summary_names_stdout_for_out_dash_not_a_file_named_dash(tmp_path):
    """`--out -` summaries ended "... -> -" (fetch, prefilter, score, labels export; calibrate "written to -"), and
    one with nothing to write said "wrote an empty -": stdout is named as such, as the errors name it."""
    env = {"RANKER_HOME": tmp_path / "home", "RANKER_OFFLINE": "1"}
    db = tmp_path / "db.sqlite3"
    papers = first_papers(tmp_path)
    with Store(db) as s:
        s.set_label("2505.09574", 1, "2025-05-15")
        store_vectors(s, list(read_papers(papers)))         # prefilter's summary, no model loaded
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    for args, end in [(["fetch", "--from", papers], " -> stdout"),
                      (["prefilter", "--papers", papers], " -> stdout"),
                      (["score", "--papers", papers, "--backend", "fake"], " -> stdout"),
                      (["score", "--papers", empty, "--backend", "fake"], "(wrote nothing to stdout)"),
                      (["labels", "export", "-"], "labels: 1 written -> stdout")]:
        out = [] if args[0] == "labels" else ["--out", "-"]
        r = ranker(*args, *out, "--db", db, env=env, cwd=tmp_path)
        assert r.returncode == 0 and bool(r.stdout) == (empty not in args), r.stderr
        last = [x for x in r.stderr.splitlines() if x.strip()][-1]
        assert " -> -" not in r.stderr and "empty -" not in r.stderr, r.stderr
        assert end in last, (args, r.stderr)


def test_an_extra_argument_is_counted_from_the_command_line_where_click_does_not_say(monkeypatch):
    """A click that words it "argument(s)" whatever the count: one quoted word with a space is one argument
    as the command line gave it, two words are two."""
    import click

    from ranker.cli.common import usage_line
    monkeypatch.setattr("sys.argv", ["ranker", "fetch", "my feed.xml", "--out", "o"])
    e = click.UsageError("Got unexpected extra argument(s) (my feed.xml)")
    assert usage_line(e) == "unexpected extra argument 'my feed.xml': `ranker` takes options only"
    monkeypatch.setattr("sys.argv", ["ranker", "fetch", "my", "feed.xml", "--out", "o"])
    assert usage_line(e) == "unexpected extra arguments 'my feed.xml': `ranker` takes options only"


@pytest.mark.parametrize("args,flag", [
    # `--date "$DAY"` with DAY unset: not today's feed, nor every day of a source, in place of the day asked for
    (["run", "--out", "x", "--date", ""], "--date"),
    (["run", "--out", "x", "--papers", str(LISTING), "--date", " "], "--date"),
    (["fetch", "--out", "x", "--from", ""], "--from"),
    (["fetch", "--out", "x", "--ids", ""], "--ids"),
    (["fetch", "--out", "x", "--since", ""], "--since"),
    (["fetch", "--out", "x", "--from", str(LISTING), "--date", ""], "--date"),
    (["backfill", "--from", str(LISTING), "--out", "y", "--embed", "--since", ""], "--since"),
    (["backfill", "--from", "", "--out", "y", "--embed"], "--from"),
    # a setting's flag: not its default in place of the model asked for; a path's: not the working folder
    (["prefilter", "--papers", str(LISTING), "--out", "x", "--embedder", ""], "--embedder"),
    (["run", "--out", "x", "--papers", str(LISTING), "--model", " "], "--model"),
    (["run", "--out", "", "--papers", str(LISTING)], "--out"),
    (["prefilter", "--papers", str(LISTING), "--out", "x", "--prompts", ""], "--prompts"),
    (["prefilter", "--papers", str(LISTING), "--out", "x", "--db", ""], "--db"),
    (["labels", "export", ""], "FILE"),
    # a repeatable one, each of its values: `--allow-host "$PROXY"` served for ever without the name meant
    (["serve", "--port", "0", "--allow-host", "proxy.lab", "--allow-host", " "], "--allow-host"),
])
def test_an_empty_value_is_an_error_not_an_option_left_out(tmp_path, args, flag):
    r = ranker(*args, "--offline", cwd=tmp_path, env={"RANKER_HOME": tmp_path / "home"}, timeout=120)
    # a required one (run's --out, labels export's FILE) is not advised to be left out: that is another error
    advice = "give a value" if flag in ("--out", "FILE") else "give a value or leave the option out"
    assert one_error(r, 1) == f"error: {flag}: empty; {advice}", r.stderr
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists() and not (tmp_path / "home").exists()


@pytest.mark.parametrize("args,flag", [
    (["run", "--out", "x", "--papers", "https://example.org/day.jsonl"], "--papers"),
    (["prefilter", "--papers", "https://example.org/day.jsonl", "--out", "x"], "--papers"),
    (["calibrate", "--history", "http://example.org/days/", "--out", "x"], "--history"),
])
def test_a_url_where_a_file_is_expected_says_so(tmp_path, args, flag):
    """Path would fold "https://host/f" into "https:/host/f", which then failed as an unreadable URL."""
    r = ranker(*args, "--offline", cwd=tmp_path, env={"RANKER_HOME": tmp_path / "home"})
    url = args[args.index(flag) + 1]
    assert one_error(r, 1) == (f"error: {flag}: a URL where a local path is expected (save what it points to "
                               f"first), got {url!r}"), r.stderr
    assert not (tmp_path / "x").exists() and not (tmp_path / "home").exists()


def test_a_bad_environment_variable_is_named_as_the_variable(tmp_path):
    r = ranker("fetch", "--from", LISTING, "--out", tmp_path / "o.jsonl", "--offline",
               env={"RANKER_FETCH_RETRIES": "abc", "RANKER_HOME": tmp_path / "home"}, cwd=tmp_path)
    assert one_error(r, 1) == "error: RANKER_FETCH_RETRIES: expected an integer, got 'abc'"
    assert not (tmp_path / "o.jsonl").exists()


def test_a_missing_file_and_a_folder_that_cannot_be_made_are_named(tmp_path):
    r = ranker("prefilter", "--papers", tmp_path / "nope.jsonl", "--out", tmp_path / "o.jsonl")
    assert one_error(r, 1) == f"error: --papers {tmp_path / 'nope.jsonl'}: file not found"
    r = ranker("score", "--papers", LISTING, "--out", tmp_path / "s.jsonl", "--backend", "fake",
               "--db", "/proc/nope/db.sqlite3")
    assert one_error(r, 1) == ("error: --db /proc/nope/db.sqlite3: cannot create the database's folder /proc/nope: "
                               "no such file or directory")


def test_database_errors_in_words(tmp_path):
    folder = tmp_path / "db-is-a-folder"
    folder.mkdir()
    r = ranker("score", "--papers", LISTING, "--out", tmp_path / "s.jsonl", "--backend", "fake", "--db", folder)
    assert one_error(r, 1) == f"error: --db {folder}: is a directory, not a database file"
    junk = tmp_path / "junk.sqlite3"
    junk.write_bytes(b"this is no database" * 100)
    r = ranker("score", "--papers", LISTING, "--out", tmp_path / "s.jsonl", "--backend", "fake", "--db", junk)
    assert one_error(r, 1).startswith(f"error: --db {junk}: not a usable ranker database (file is not a database)")


def test_os_and_sqlite_errors_reaching_the_top_are_worded(in_process_command):
    import sqlite3

    from ranker.cli.common import DB_PATH, os_error_line, sqlite_error_line
    e = PermissionError(13, "Permission denied", "/data/out.md")
    assert os_error_line(e) == "/data/out.md: permission denied"
    assert os_error_line(OSError(28, "No space left on device")) == "no space left on device"
    DB_PATH[:] = ["/home/u/ranker.sqlite3"]
    assert sqlite_error_line(sqlite3.OperationalError("database is locked")) == (
        "/home/u/ranker.sqlite3: the database is busy (another ranker command is writing to it); try again when "
        "it has finished")
    assert "the disk is full" in sqlite_error_line(sqlite3.OperationalError("database or disk is full"))
    assert sqlite_error_line(sqlite3.OperationalError("attempt to write a readonly database")) == (
        "/home/u/ranker.sqlite3: the database is read-only here; give a writable --db or RANKER_HOME")


# --------------------------------------------------------------------------- the config file
@pytest.mark.parametrize("text,line", [
    ('[prefilter]\nmin_keep = "5"\n', "ranker.toml:2: prefilter.min_keep: Input should be a valid integer"),
    ("[prefilter]\nkeep = 0.3\n\n[scoring]\nbackend = 'vlm'\n",
     "ranker.toml:5: scoring.backend: unknown backend 'vlm'; choose one of: fake, openai, transformers, vllm"),
    ("[scoring.vlm]\ndtype = 'float16'\n",
     "ranker.toml:1: scoring.vlm: no backend is called 'vlm'; choose one of: fake, openai, transformers, vllm"),
    ("[prefilter]\nkepp = 0.3\n", "ranker.toml:2: prefilter.kepp: unknown setting"),
    ("[prefilter]\nkeep = 0.3\nmin_keep = = 5\n", "ranker.toml:3: not valid TOML: invalid value (column 12)"),
    ("[prefilter]\nexclude = ['re:(unclosed']\n", "ranker.toml:2: prefilter.exclude: not a valid regular expression"),
])
def test_config_errors_name_the_file_and_line(tmp_path, text, line):
    (tmp_path / "ranker.toml").write_text(text)
    with Store(tmp_path / "db.sqlite3") as s:
        store_vectors(s, list(read_papers(LISTING)))
    r = ranker("run", "--papers", LISTING, "--out", tmp_path / "d", "--db", tmp_path / "db.sqlite3", "--top", "2",
               cwd=tmp_path)
    assert one_error(r, 1).startswith("error: " + line), r.stderr
    assert not (tmp_path / "d").exists()


def test_a_backend_misnamed_on_the_command_line_is_blamed_on_the_flag(tmp_path):
    (tmp_path / "ranker.toml").write_text("[scoring]\nbackend = 'vllm'\n")
    r = ranker("score", "--papers", LISTING, "--out", tmp_path / "s.jsonl", "--backend", "vlm", cwd=tmp_path)
    assert one_error(r, 1) == ("error: --backend: unknown backend 'vlm'; choose one of: fake, openai, transformers, "
                               "vllm")


# --------------------------------------------------------------------------- empty input, everywhere the same
def test_empty_input_is_nothing_to_do_everywhere_and_loads_no_model(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    runs = {
        "prefilter": ranker("prefilter", "--papers", empty, "--out", tmp_path / "r.jsonl"),
        "score": ranker("score", "--papers", empty, "--out", tmp_path / "s.jsonl", "--backend", "vllm"),
        "score --only-kept": ranker("score", "--papers", empty, "--only-kept", "--out", tmp_path / "s2.jsonl",
                                    "--backend", "vllm"),
        "run": ranker("run", "--papers", empty, "--out", tmp_path / "d", "--backend", "vllm"),
        "fetch": ranker("fetch", "--from", empty, "--out", tmp_path / "f.jsonl"),
        # the backfill and web commands: an empty source, a backfill without shards, a store without days or
        # labels, a labels file without labels
        "backfill": ranker("backfill", "--from", empty, "--out", tmp_path / "bf", "--score", "--backend", "vllm"),
        "backfill in a window": ranker("backfill", "--from", LISTING, "--out", tmp_path / "bf2", "--score",
                                       "--backend", "vllm", "--since", "2030-01-01"),
        "import": ranker("import", tmp_path / "bf"),
        "site": ranker("site", "--out", tmp_path / "site"),
        "labels export": ranker("labels", "export", tmp_path / "l.jsonl"),
        "labels import": ranker("labels", "import", empty),
        "labels list": ranker("labels", "list"),
        # the corpus index: a database without paper vectors
        "similar": ranker("similar", "2505.00001"),
        "similar free text": ranker("similar", "mixture of experts"),
        "index rebuild": ranker("index", "rebuild"),
    }
    for name, r in runs.items():
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 0 and r.stdout == "" and len(lines) == 1, (name, r.stderr)
        assert lines[0].startswith("nothing to do: "), (name, lines)
        assert "loading" not in r.stderr                     # no model was loaded
    assert not (tmp_path / "home" / "logs").exists() or not any((tmp_path / "home" / "logs").iterdir())
    for f in ("r.jsonl", "s.jsonl", "s2.jsonl", "f.jsonl", "l.jsonl"):
        assert (tmp_path / f).read_text() == ""
    # an empty day's reason is worded alike by run and fetch (run's line, then fetch's with the file it wrote)
    why = f"nothing to do: no announcements in {empty} (a weekend or holiday?)"
    assert runs["run"].stderr.strip() == why
    assert runs["fetch"].stderr.strip() == f"{why}; wrote an empty {tmp_path / 'f.jsonl'}"
    assert runs["backfill in a window"].stderr.startswith(f"nothing to do: no papers of cs.LG,cs.AI in {LISTING} "
                                                          "from 2030-01-01")
    assert not (tmp_path / "site").exists()
    with Store(tmp_path / "home" / "ranker.sqlite3") as s:      # nothing was stored on the way
        assert s.count_papers() == 0 and s.days() == [] and s.get_labels() == {}


# --------------------------------------------------------------------------- help
def test_help_shows_examples_and_flags_as_flags():
    root = ranker("--help")
    assert root.returncode == 0 and "Examples:" in root.stdout and "ranker run --out" in root.stdout
    models = ranker("models", "--help")
    assert "Examples:" in models.stdout and "ranker models prepare" in models.stdout
    assert ranker("models").stdout == models.stdout          # a group without its command shows its help
    labels = ranker("labels", "--help")
    assert "Examples:" in labels.stdout and ranker("labels").stdout == labels.stdout
    index = ranker("index", "--help")      # the README: every command's --help has an example, groups too
    assert "Examples:" in index.stdout and "ranker index status" in index.stdout
    for cmd in ("fetch", "prefilter", "calibrate", "score", "run", "compare", "eval", ("models", "list"),
                ("models", "prepare"), "serve", "site", ("labels", "export"), ("labels", "import"),
                ("labels", "list"), "backfill", "import", "similar", ("index", "status"), ("index", "rebuild")):
        r = ranker(*((cmd,) if isinstance(cmd, str) else cmd), "--help")
        assert r.returncode == 0 and "Example" in r.stdout, cmd
        assert "<bool>" not in r.stdout and "--offline " in r.stdout and "--verbose" in r.stdout, cmd
        assert re.search(r"^Options:", r.stdout, re.M) and "\u2500" not in r.stdout, cmd     # plain, no rich boxes
    assert re.search(r"^\s+--only-kept\s+Score only", ranker("score", "--help").stdout, re.M)


def _groups(cmd=None, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every group of the app (() for ranker itself), as registered: a group added later is listed too."""
    from clilines import ROOT
    cmd = ROOT if cmd is None else cmd
    subs = getattr(cmd, "commands", None)
    if subs is None:
        return []
    return [path] + [g for name, sub in subs.items() for g in _groups(sub, path + (name,))]


def test_the_command_listings_give_each_command_one_whole_sentence():
    """click cut each summary to the listing's width ("Fetch a day's papers: from arXiv's RSS feed (default),
    a..."): each command and subcommand now has a short sentence of its own there, whole at 80 columns, and
    says what it does (serve's said "locally", but --host serves any address)."""
    said = {}
    groups = _groups()
    assert {(), ("index",), ("models",), ("labels",)} <= set(groups), groups
    for group in groups:
        r = ranker(*group, "--help", env={"COLUMNS": "80"})
        listing = r.stdout.split("\nCommands:\n", 1)[1].splitlines()
        lines = [line for line in listing if line.strip()]
        assert len(lines) >= 2, (group, r.stdout)
        for line in lines:
            assert line.endswith(".") and not line.endswith("...") and len(line) <= 80, (group, line)
            name, summary = line.split(None, 1)
            said[(*group, name)] = summary
    assert said[("index", "status")] == "Show the index's size, embedder and agreement with the database."
    assert said[("similar",)] == "Find the stored papers nearest to a paper id or a text."
    assert said[("serve",)] == "Serve the archive, digests, search and labels over HTTP."
    assert said[("eval",)] == "Replay past days walk-forward and measure against GPT's picks."


def test_the_run_help_example_works_from_any_folder(tmp_path):
    text = ranker("run", "--help").stdout
    m = re.search(r"ranker run --papers (\S+) --out digest/ --offline", text)
    assert m, text
    papers = m.group(1)
    with Store(tmp_path / "db.sqlite3") as s:
        store_vectors(s, list(read_papers(papers)))
    elsewhere = tmp_path / "somewhere" / "else"
    elsewhere.mkdir(parents=True)
    r = ranker("run", "--papers", papers, "--out", "digest/", "--offline", "--backend", "fake", "--top", "3",
               "--db", tmp_path / "db.sqlite3", cwd=elsewhere)
    assert r.returncode == 0, r.stderr
    assert (elsewhere / "digest" / "2025-05-15-output.md").exists()


def test_run_takes_the_prefilter_and_scorer_flags(tmp_path):
    with Store(tmp_path / "db.sqlite3") as s:
        store_vectors(s, list(read_papers(LISTING)))
        store_vectors(s, list(read_papers(LISTING)), embedder="minilm@64")      # what --max-tokens 64 reads
    r = ranker("run", "--papers", LISTING, "--out", tmp_path / "d", "--db", tmp_path / "db.sqlite3", "--backend",
               "fake", "--top", "6", "--papers-per-request", "2", "--max-tokens", "64", "--offline")
    assert r.returncode == 0, r.stderr
    m = json.loads((tmp_path / "d" / "2025-05-15-run.json").read_text())
    assert m["counts"]["kept"] == 6 and m["prompts"]["options"]["papers_per_request"] == 2
    assert m["embedder"] == "minilm@64" and m["counts"]["embedded"] == 0
    r = ranker("run", "--papers", LISTING, "--out", tmp_path / "d2", "--db", tmp_path / "db.sqlite3", "--backend",
               "fake", "--keep", "0.05", "--offline")
    assert r.returncode == 0
    assert json.loads((tmp_path / "d2" / "2025-05-15-run.json").read_text())["counts"]["kept"] == 20


def test_counts_of_one_are_said_in_the_singular(tmp_path):
    """A day of one paper says "1 paper", not "1 papers"."""
    one = tmp_path / "one.jsonl"
    one.write_text(LISTING.read_text().splitlines()[0] + "\n")
    with Store(tmp_path / "db.sqlite3") as s:
        store_vectors(s, list(read_papers(one)))
    r = ranker("run", "--papers", one, "--out", tmp_path / "d", "--db", tmp_path / "db.sqlite3", "--backend", "fake",
               "--top", "1", "--offline")
    assert r.returncode == 0, r.stderr
    assert "2025-05-15: 1 paper, 1 kept by the prefilter" in r.stderr, r.stderr
    assert not re.search(r"\b1 (papers|days|vectors)\b", r.stderr), r.stderr


def test_counts_past_a_thousand_are_grouped_alike_in_the_summaries(tmp_path):
    """A 1,200-paper day: each count of the run's and the prefilter's summary lines groups its thousands, as the
    paper count before them does ("1,200 papers, 1200 kept by the prefilter" read as two styles in one line)."""
    rows = [json.loads(line) for day in sorted(DAYS.iterdir())[:6] for line in (day / "listing.jsonl").open()]
    rows = list({r["id"]: r for r in rows}.values())[:1200]
    assert len(rows) == 1200
    big = tmp_path / "big.jsonl"
    big.write_text("".join(json.dumps({**r, "date": "2025-05-15"}) + "\n" for r in rows))
    with Store(tmp_path / "db.sqlite3") as s:
        store_vectors(s, list(read_papers(big)))
    r = ranker("run", "--papers", big, "--out", tmp_path / "d", "--db", tmp_path / "db.sqlite3", "--backend", "fake",
               "--keep", "1", "--offline")
    assert r.returncode == 0, r.stderr
    assert "2025-05-15: 1,200 papers, 1,200 kept by the prefilter, 1,200 scored (0 reused, 0 failed)" in r.stderr, \
        r.stderr
    r = ranker("prefilter", "--papers", big, "--out", tmp_path / "r.jsonl", "--db", tmp_path / "db.sqlite3",
               "--keep", "1", "--offline")
    assert r.returncode == 0, r.stderr
    assert "prefilter: kept 1,200 of 1,200 papers" in r.stderr, r.stderr
    said = r.stderr.replace("2025-05-15", "").replace(str(tmp_path), "TMP")   # pytest-1006 is a folder's name
    assert not re.search(r"\b\d{4,}\b", said), r.stderr
    import shutil
    from ranker.prompts import DEFAULT_DIR
    shutil.copytree(DEFAULT_DIR, tmp_path / "p")
    # every paper: no "xyzzy" in any (`re:.` is refused, as it would be the day whole)
    (tmp_path / "p" / "exclude.txt").write_text("re:(?s)^(?!.*xyzzy)\n")
    r = ranker("prefilter", "--papers", big, "--out", tmp_path / "r.jsonl", "--db", tmp_path / "db.sqlite3",
               "--prompts", tmp_path / "p", "--offline")
    assert r.returncode == 0, r.stderr
    assert "1,200 excluded by a rule" in r.stderr, r.stderr


def test_score_s_summary_groups_its_counts_and_tokens(tmp_path):
    """`ranker score`'s summary grouped the papers it scored but not the rest of its line: "20 of 20 papers scored
    (... 20 new ...; 36579 prompt + 1964 completion tokens)", two styles in one line, as the run's summary was."""
    r = ranker("score", "--papers", LISTING, "--out", tmp_path / "s.jsonl", "--db", tmp_path / "db.sqlite3",
               "--backend", "fake", "--offline")
    assert r.returncode == 0, r.stderr
    line = [x for x in r.stderr.splitlines() if " papers scored -> " in x]
    assert len(line) == 1 and re.search(r"; [\d,]{5,} prompt \+ [\d,]{5,} completion tokens\)$", line[0]), r.stderr
    assert not re.search(r"\b\d{4,}\b", line[0].replace(str(tmp_path), "TMP")), line[0]


def test_calibrate_help_says_how_many_days_the_walk_forward_check_ranks():
    """`ranker calibrate --help` said --eval ranks "the last third of the days" after the check was capped (the
    README said "at most the last 20"): a user a year in expected 83 fits."""
    from ranker.prefilter.calibrate import MAX_EVAL_DAYS
    text = " ".join(ranker("calibrate", "--help").stdout.split())
    assert f"last third of the days (at most the last {MAX_EVAL_DAYS})" in text, text
    readme = " ".join((REPO / "README.md").read_text(encoding="utf-8").split())
    assert f"the last third of the history's days with GPT picks, at most the last {MAX_EVAL_DAYS}," in readme


def test_debug_in_ranker_toml_shows_the_traceback_as_the_variable_does(tmp_path):
    """`debug = true` in ranker.toml is the setting RANKER_DEBUG=1 sets (the README names them together): it
    made the engines' messages show, but an error was still one line, its traceback only with the variable."""
    (tmp_path / "ranker.toml").write_text("debug = true\n")
    r = ranker("prefilter", "--papers", "nowhere.jsonl", "--out", "x.jsonl", cwd=tmp_path,
               env={"RANKER_HOME": tmp_path / "home"})
    assert r.returncode == 1
    assert "Traceback (most recent call last)" in r.stderr and "nowhere.jsonl: file not found" in r.stderr
    (tmp_path / "ranker.toml").write_text("debug = false\n")
    r = ranker("prefilter", "--papers", "nowhere.jsonl", "--out", "x.jsonl", cwd=tmp_path,
               env={"RANKER_HOME": tmp_path / "home"})
    assert r.returncode == 1 and r.stderr == "error: --papers nowhere.jsonl: file not found\n", r.stderr


@pytest.mark.parametrize("args,line", [
    (["--max-tokens", "300"], "error: --max-tokens: must be at most 256: minilm reads no more tokens than that"),
    (["--embedder", "nosuch"], "error: --embedder nosuch: no such model folder, preset (minilm, mpnet) "
                               "or Hugging Face id"),
    (["--calibration", "gone.json"], "error: --calibration gone.json: calibration file not found"),
    (["--calibration", "mpnet.json"], "error: --calibration: this calibration was made with the embedder 'mpnet' "
                                      "(16-d), not 'minilm'; use --embedder mpnet or calibrate again"),
])
def test_a_bad_embedder_flag_leaves_the_folder_s_finished_run_as_it_was(tmp_path, args, line):
    """A mistyped --embedder or --calibration, or a --max-tokens past the model's limit, is refused before `ranker
    run` writes its manifest, as a missing LLM is: it replaced the folder's finished manifest with a failed one."""
    out = tmp_path / "out"
    out.mkdir()
    manifest = out / "2025-05-15-run.json"
    manifest.write_text('{"status": "ok", "run_id": 7}')
    from ranker.prefilter.calibrate import fit
    from test_calibrate import _toy
    fit(*_toy(n_days=2), embedder="mpnet").save(tmp_path / "mpnet.json")       # fit with another embedder
    r = ranker("run", "--out", out, "--papers", LISTING, "--backend", "fake", "--offline", *args,
               env={"RANKER_HOME": tmp_path / "home"}, cwd=tmp_path, timeout=300)
    assert one_error(r, 1) == line, r.stderr
    assert manifest.read_text() == '{"status": "ok", "run_id": 7}'


NO_SUCH_EMBEDDER = "no such model folder, preset (minilm, mpnet) or Hugging Face id"     # the embedder presets only


@pytest.mark.parametrize("command", ["prefilter", "eval", "calibrate", "backfill"])
def test_a_bad_embedder_is_one_line_naming_the_flag_or_config_line_it_came_from(tmp_path, command):
    """`--embedder -1` said "error: -1: no such model folder ...", naming no flag (a value of control characters
    printed as nothing visible), after "loading -1 ..." (calibrate and eval: after the history's lines too). Now
    one line naming --embedder, or the ranker.toml line of prefilter.embedder, the value quoted where it would not
    show; before anything is read or stored."""
    hist = tmp_path / "hist"
    hist.mkdir()
    (hist / "2025-05-15").symlink_to(DAYS / "2025-05-15")
    args = {"prefilter": ["--papers", LISTING, "--out", tmp_path / "r.jsonl"],
            "eval": ["--history", hist, "--out", tmp_path / "ev"],
            "calibrate": ["--history", hist, "--out", tmp_path / "cal.json"],
            "backfill": ["--from", hist, "--out", tmp_path / "bf", "--embed"]}[command]
    db = tmp_path / "db.sqlite3"
    r = ranker(command, *args, "--db", db, "--embedder", "-1", "--offline")
    assert one_error(r, 1) == f"error: --embedder -1: {NO_SUCH_EMBEDDER}"
    # an LLM preset: said after "loading smollm2-135m ...", naming no flag (backfill: `--embedder 'no such'` too)
    r = ranker(command, *args, "--db", db, "--embedder", "smollm2-135m", "--offline")
    assert one_error(r, 1) == "error: --embedder smollm2-135m: an LLM preset, not an embedder"
    r = ranker(command, *args, "--db", db, "--embedder", "\x01\x02", "--offline")
    assert one_error(r, 1) == f"error: --embedder '\\x01\\x02': {NO_SUCH_EMBEDDER}"
    cfg = tmp_path / "ranker.toml"
    cfg.write_text('[prefilter]\nembedder = "-1"\n')
    r = ranker(command, *args, "--db", db, "--config", cfg, "--offline")
    assert one_error(r, 1) == f"error: {cfg}:2: prefilter.embedder -1: {NO_SUCH_EMBEDDER}"
    assert not db.exists() and not (tmp_path / "ev").exists() and not (tmp_path / "r.jsonl").exists()
    assert not (tmp_path / "bf").exists() and not (tmp_path / "cal.json").exists()


def test_calibrate_with_an_embedder_not_prepared_says_so_before_the_history_is_read(tmp_path):
    """`calibrate --embedder mpnet`, mpnet not prepared, read the whole history first ("history: N days ...",
    minutes on a long one) and only then said "model preset 'mpnet' is not prepared", naming no flag. Now that is
    the one line, naming --embedder and how to prepare it, before anything is read or stored. A store that holds
    the embedder's vectors may serve them without the model: there the history is read as before."""
    import numpy as np
    hist = tmp_path / "hist"
    hist.mkdir()
    for day in ("2025-04-30", "2025-05-13", "2025-05-15"):     # enough to learn from: the fit loads the model
        (hist / day).symlink_to(DAYS / day)
    db, cal, models = tmp_path / "db.sqlite3", tmp_path / "cal.json", tmp_path / "models"
    models.mkdir()                                    # no preset prepared here (the bundled presets)
    args = ["calibrate", "--history", hist, "--out", cal, "--db", db, "--embedder", "mpnet", "--offline"]
    r = ranker(*args, env={"RANKER_MODELS_DIR": models})
    assert one_error(r, 1) == ("error: --embedder: model preset 'mpnet' is not prepared; run: ranker models "
                               "prepare mpnet")
    assert not db.exists() and not cal.exists()
    with Store(db) as s:
        s.put_embeddings([("2505.00001", "h", np.ones(768) / np.sqrt(768))], "mpnet")
    r = ranker(*args, env={"RANKER_MODELS_DIR": models})
    assert r.returncode == 1 and r.stderr.startswith("history: 3 days, ") and not cal.exists(), r.stderr
    assert r.stderr.strip().splitlines()[-1] == (
        "error: --embedder: model preset 'mpnet' is not prepared, and the database holds its vectors for none "
        "of the 821 papers of the history and none of the 48 topic queries; run: ranker models prepare mpnet"), r.stderr


HISTORY_DAYS = ("2025-04-30", "2025-05-13", "2025-05-15")


def _partly_embedded(tmp_path, stored_days, models_dir=True):
    """A history of HISTORY_DAYS and a store holding mpnet's vectors (768-d, under the keys it looks them up by,
    the topic queries' too) of `stored_days`' papers only; a models folder with no preset prepared."""
    hist, db, models = tmp_path / "hist", tmp_path / "db.sqlite3", tmp_path / "models"
    hist.mkdir()
    for day in HISTORY_DAYS:
        (hist / day).symlink_to(DAYS / day)
    models.mkdir()
    with Store(db) as s:
        store_vectors(s, [p for d in stored_days for p in read_papers(DAYS / d / "listing.jsonl")],
                      embedder="mpnet", dim=768)
    return hist, db, {"RANKER_MODELS_DIR": models}


def test_calibrate_on_a_store_with_part_of_the_history_embedded_names_the_embedder_before_the_fit(tmp_path):
    """check_embedder lets `--embedder mpnet`, not prepared, through where the store holds some of its vectors:
    the history was read, the database opened and the fit begun ("loading mpnet ..."), and the model failed to
    load at the first paper without a vector, in words naming no flag. Now the history's papers are matched
    against the stored vectors (their texts' hashes) before the fit: the line names --embedder,
    how many are stored, and how to prepare the model. A store holding them all still serves without it."""
    hist, db, env = _partly_embedded(tmp_path, HISTORY_DAYS[:1])
    cal = tmp_path / "cal.json"
    args = ["calibrate", "--history", hist, "--out", cal, "--db", db, "--embedder", "mpnet", "--offline",
            "--no-eval"]
    r = ranker(*args, env=env)
    assert r.returncode == 1 and not cal.exists(), r.stderr
    assert "loading mpnet" not in r.stderr, r.stderr
    assert r.stderr.strip().splitlines()[-1] == (
        "error: --embedder: model preset 'mpnet' is not prepared, and the database holds its vectors for only 224 "
        "of the 821 papers of the history; run: ranker models prepare mpnet"), r.stderr
    cfg = tmp_path / "ranker.toml"
    cfg.write_text('[prefilter]\nembedder = "mpnet"\n')
    r = ranker(*args[:-4], "--config", cfg, "--offline", "--no-eval", env=env)
    assert r.stderr.strip().splitlines()[-1].startswith(f"error: {cfg}:2: prefilter.embedder: model preset 'mpnet' "
                                                        "is not prepared, and "), r.stderr
    with Store(db) as s:                # every paper's vector stored: no model needed
        store_vectors(s, [p for d in HISTORY_DAYS for p in read_papers(DAYS / d / "listing.jsonl")],
                      embedder="mpnet", dim=768)
    r = ranker(*args, env=env)
    assert r.returncode == 0 and cal.exists() and "loading mpnet" not in r.stderr, r.stderr


def test_eval_on_a_store_with_part_of_the_days_embedded_names_the_embedder_before_the_replay(tmp_path):
    """As calibrate: eval with `--embedder mpnet` not prepared and some of its vectors stored opened the database,
    made --out and embedded days up to the first paper without a vector, then said "model preset 'mpnet' is not
    prepared" naming no flag. Now said first, naming --embedder; only the days the replay uses count (--days 1,
    on the day stored, replays without the model)."""
    hist, db, env = _partly_embedded(tmp_path, HISTORY_DAYS[-1:])
    out = tmp_path / "ev"
    args = ["eval", "--history", hist, "--out", out, "--db", db, "--embedder", "mpnet", "--offline"]
    r = ranker(*args, env=env)
    assert one_error(r, 1) == (
        "error: --embedder: model preset 'mpnet' is not prepared, and the database holds its vectors for only 192 "
        "of the 821 papers of the days to replay; run: ranker models prepare mpnet"), r.stderr
    assert not out.exists()
    r = ranker(*args, "--days", "1", env=env)
    assert r.returncode == 0 and (out / "eval.json").exists() and "loading mpnet" not in r.stderr, r.stderr


def test_calibrate_with_a_labelled_paper_not_embedded_names_the_embedder_before_the_fit(tmp_path):
    """check_served was given the history's papers only, and only with --history, though the fit embeds the
    labelled papers outside the history too: `--embedder mpnet`, not prepared, on a store holding the vectors of
    the history but not of a labelled paper outside it passed that check (with labels alone: none was made) and
    ended at a later one, before any loading, with exit 1 and `error: --embedder: model preset 'mpnet' is not
    prepared; run: ...`: the same end, without the count of the papers the store serves. Those papers count now,
    with --labels alone too, and the line says how many of them have vectors."""
    from datetime import datetime

    hist, db, env = _partly_embedded(tmp_path, HISTORY_DAYS[:1])
    first, other = (list(read_papers(DAYS / d / "listing.jsonl")) for d in HISTORY_DAYS[:2])
    at = datetime(2025, 5, 14, 12).timestamp()
    with Store(db) as s:
        s.add_papers(first[:20] + other[:1])     # the last in the database, its vector not
        for k, p in enumerate(first[:20]):
            s.set_label(p.id, 1 if k % 2 else -1, "2025-05-14", created_at=at)
        s.set_label(other[0].id, 1, "2025-05-14", created_at=at)
    (hist / HISTORY_DAYS[1]).unlink()
    (hist / HISTORY_DAYS[2]).unlink()   # the history: the day whose vectors are all stored
    cal = tmp_path / "cal.json"
    for given, what in ((["--history", hist], "the history and your labels"), ([], "your labels")):
        r = ranker("calibrate", *given, "--out", cal, "--db", db, "--embedder", "mpnet", "--offline", "--no-eval",
                   env=env)
        assert r.returncode == 1 and not cal.exists() and "loading mpnet" not in r.stderr, r.stderr
        total = (len(set(p.id for p in first) | {other[0].id}) if given else 21)
        assert r.stderr.strip().splitlines()[-1] == (
            "error: --embedder: model preset 'mpnet' is not prepared, and the database holds its vectors for only "
            f"{total - 1} of the {total} papers of {what}; run: ranker models prepare mpnet"), r.stderr


@pytest.mark.parametrize("command", ["eval", "calibrate"])
def test_a_store_without_the_topic_queries_vectors_names_the_embedder_before_the_work(tmp_path, command):
    """check_served matched the papers only: a store holding mpnet's vectors of every paper but none of the topic
    queries' (paper_topics.txt changed since) let `--embedder mpnet`, not prepared, through; eval opened the
    database, made --out and the index, and failed embedding the queries, naming no flag. The queries count."""
    import numpy as np

    from ranker.prefilter.embed import embedder_key, paper_text, text_hash
    hist, db, env = _partly_embedded(tmp_path, ())
    papers = [p for d in HISTORY_DAYS for p in read_papers(DAYS / d / "listing.jsonl")]
    db.unlink()                         # store_vectors writes the queries' vectors too
    with Store(db) as s:                # every paper's vector, no query's
        s.put_embeddings([(p.id, text_hash(paper_text(p)), np.ones(768) / np.sqrt(768)) for p in papers],
                         embedder_key("mpnet"))
    out = tmp_path / ("ev" if command == "eval" else "cal.json")
    what = "the days to replay" if command == "eval" else "the history"
    more = ["--no-eval"] if command == "calibrate" else []
    r = ranker(command, "--history", hist, "--out", out, "--db", db, "--embedder", "mpnet", "--offline", *more,
               env=env)
    assert r.returncode == 1 and not out.exists() and "loading mpnet" not in r.stderr, r.stderr
    assert r.stderr.strip().splitlines()[-1] == (
        "error: --embedder: model preset 'mpnet' is not prepared, and the database holds its vectors for every one "
        f"of the 821 papers of {what} but none of the 48 topic queries; run: ranker models prepare mpnet"), r.stderr
    (tmp_path / "2").mkdir()
    _, db, _ = _partly_embedded(tmp_path / "2", HISTORY_DAYS[:1])
    with Store(db) as s:                # the first day's papers and all the queries but one
        s.conn.execute("DELETE FROM embeddings WHERE paper_id = (SELECT min(paper_id) FROM embeddings "
                       "WHERE paper_id LIKE '~query:%')")
        s.conn.commit()
    r = ranker(command, "--history", hist, "--out", out, "--db", db, "--embedder", "mpnet", "--offline", *more,
               env=env)
    assert r.stderr.strip().splitlines()[-1] == (
        "error: --embedder: model preset 'mpnet' is not prepared, and the database holds its vectors for only 224 "
        f"of the 821 papers of {what} and only 47 of the 48 topic queries; run: ranker models prepare mpnet"), \
        r.stderr


@pytest.mark.parametrize("command", ["prefilter", "run"])
def test_a_day_partly_embedded_by_an_embedder_not_prepared_is_refused_before_the_work(tmp_path, command):
    """`prefilter` / `run --embedder mpnet`, not prepared, on a day whose papers the store holds only some of the
    vectors of: check_embedder lets it through (the store may serve them), and the model failed to load at the
    first paper without a vector, after "loading mpnet ...", with "model preset 'mpnet' is not prepared" and no
    count of what the store holds; run had stored the day's papers and its run record, and left a failed manifest
    in --out. Now check_served's line (naming --embedder and how many of the day's papers are stored) as soon as
    the day is read: nothing loaded, nothing written to --out or the store. Every vector stored: no model needed."""
    db = tmp_path / "db.sqlite3"
    with Store(db) as s:
        store_vectors(s, list(read_papers(LISTING))[:50], embedder="mpnet", dim=768)
    (tmp_path / "models").mkdir()
    out = tmp_path / ("r.jsonl" if command == "prefilter" else "digest")
    more = ["--backend", "fake", "--model", "tiny"] if command == "run" else []
    args = [command, "--papers", LISTING, "--out", out, "--db", db, "--embedder", "mpnet", "--offline", *more]
    env = {"RANKER_MODELS_DIR": tmp_path / "models"}
    r = ranker(*args, env=env)
    what = "the day" if command == "run" else str(LISTING)
    assert one_error(r, 1) == (
        "error: --embedder: model preset 'mpnet' is not prepared, and the database holds its vectors for only 50 "
        f"of the 192 papers of {what}; run: ranker models prepare mpnet"), r.stderr
    assert "loading mpnet" not in r.stderr and not out.exists(), r.stderr
    with Store(db) as s:
        assert s.count_papers() == 0 and not s.conn.execute("SELECT count(*) FROM runs").fetchone()[0]
    with Store(db) as s:
        store_vectors(s, list(read_papers(LISTING)), embedder="mpnet", dim=768)
    r = ranker(*args, env=env)
    assert r.returncode == 0 and out.exists() and "loading mpnet" not in r.stderr, r.stderr


def test_an_embedder_folder_that_does_not_load_names_the_flag(tmp_path):
    """A folder that is not a sentence-transformers model passes the check of the name (it exists) and fails to
    load: said as "<folder>: cannot load the embedder: ...", naming no flag; now as --embedder's."""
    (tmp_path / "empty").mkdir()
    r = ranker("prefilter", "--papers", LISTING, "--out", tmp_path / "r.jsonl", "--db", tmp_path / "db.sqlite3",
               "--embedder", tmp_path / "empty", "--offline")
    assert r.returncode == 1, r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith(f"error: --embedder {tmp_path / 'empty'}: cannot load the "
                                                        "embedder: "), r.stderr


def test_eval_with_an_embedder_not_prepared_says_so_before_the_history_is_read(tmp_path):
    """`eval --embedder mpnet`, mpnet not prepared, read the whole history, made the database and the --out folder,
    and only then said "model preset 'mpnet' is not prepared", naming no flag. Now that is the one line, naming
    --embedder, before anything is read or made, as calibrate says it; a mistake in a file is still said first."""
    hist = tmp_path / "hist"
    hist.mkdir()
    for day in ("2025-04-30", "2025-05-13", "2025-05-15"):
        (hist / day).symlink_to(DAYS / day)
    db, out, models = tmp_path / "new" / "db.sqlite3", tmp_path / "ev", tmp_path / "models"
    models.mkdir()                                    # no preset prepared here
    r = ranker("eval", "--history", hist, "--out", out, "--db", db, "--embedder", "mpnet", "--offline",
               env={"RANKER_MODELS_DIR": models})
    assert one_error(r, 1) == ("error: --embedder: model preset 'mpnet' is not prepared; run: ranker models "
                               "prepare mpnet")
    assert not (tmp_path / "new").exists() and not out.exists()
    r = ranker("eval", "--history", tmp_path / "nope", "--out", out, "--db", db, "--embedder", "mpnet", "--offline",
               env={"RANKER_MODELS_DIR": models})
    assert one_error(r, 1) == f"error: --history {tmp_path / 'nope'}: history directory not found"
    r = ranker("eval", "--history", hist, "--out", out, "--db", db, "--embedder", "mpnet", "--offline",
               "--against", tmp_path / "nope", env={"RANKER_MODELS_DIR": models})
    assert one_error(r, 1).startswith(f"error: --against {tmp_path / 'nope'}: "), r.stderr


def test_eval_says_a_db_that_cannot_be_one_before_an_embedder_not_prepared(tmp_path):
    """35a0ef7 put eval's check that the embedder can be loaded before any look at --db: with mpnet not prepared
    and a --db that is a folder, eval said to prepare the model, and the folder only on the next try, after the
    whole history was read. As calibrate says it (36476b3), the file's mistake comes first, the model last."""
    hist, folder, models = tmp_path / "hist", tmp_path / "folder", tmp_path / "models"
    hist.mkdir()
    (hist / "2025-05-15").symlink_to(DAYS / "2025-05-15")
    folder.mkdir()
    models.mkdir()                                    # no preset prepared here
    r = ranker("eval", "--history", hist, "--out", tmp_path / "ev", "--db", folder, "--embedder", "mpnet",
               "--offline", env={"RANKER_MODELS_DIR": models})
    assert one_error(r, 1) == f"error: --db {folder}: is a directory, not a database file", r.stderr
    assert not (tmp_path / "ev").exists()


@pytest.mark.parametrize("mistake", ["db a folder", "history not there", "no labels, no history", "db mistyped"])
def test_calibrate_says_a_file_or_flag_mistake_before_an_embedder_not_prepared(tmp_path, mistake):
    """The check that the embedder can be loaded ran before calibrate's checks of its files and flags: a user with
    mpnet not prepared and a --db that is a folder (or a mistyped one, a --history not there, --no-labels without a
    history) was told to prepare the model first, and only after that of the mistake. As run and eval check them,
    the files and flags come first, the model last (still before the history is read)."""
    hist, folder, models = tmp_path / "hist", tmp_path / "folder", tmp_path / "models"
    hist.mkdir()
    (hist / "2025-05-15").symlink_to(DAYS / "2025-05-15")
    folder.mkdir()
    models.mkdir()                                    # no preset prepared here
    args, line = {
        "db a folder": (["--history", hist, "--db", folder], f"error: --db {folder}: is a directory, not a database "
                        "file"),
        "history not there": (["--history", tmp_path / "nope"], f"error: --history {tmp_path / 'nope'}: history "
                              "directory not found"),
        "no labels, no history": (["--no-labels"], "error: --history: nothing to learn from: no GPT history given, "
                                  "and labels left out"),
        "db mistyped": (["--db", tmp_path / "typo.sqlite3"], f"error: --db {tmp_path / 'typo.sqlite3'}: no database "
                        "there (a typo?); `ranker run` makes one"),
    }[mistake]
    r = ranker("calibrate", "--out", tmp_path / "cal.json", "--embedder", "mpnet", "--offline", *args,
               env={"RANKER_MODELS_DIR": models})
    assert one_error(r, 1) == line, r.stderr
    assert not (tmp_path / "cal.json").exists() and not (tmp_path / "typo.sqlite3").exists()


@pytest.mark.parametrize("db", ["folder", "/dev/null"])
def test_calibrate_with_a_db_that_cannot_be_one_says_only_that(tmp_path, db):
    """`calibrate --db <folder or /dev/null>` read the whole history first and printed "history: 1 day, ..."
    before the error: the error is now the only line, said before the history is read."""
    if db == "folder":
        db = tmp_path / "folder"
        db.mkdir()
    hist = tmp_path / "hist"
    hist.mkdir()
    (hist / "2025-05-15").symlink_to(DAYS / "2025-05-15")
    r = ranker("calibrate", "--history", hist, "--out", tmp_path / "cal.json", "--db", db, "--offline")
    said = "is a directory, not a database file" if db != "/dev/null" else \
        "not a file (a device or a pipe), so not a database file"
    assert r.returncode == 1 and r.stderr == f"error: --db {db}: {said}\n", r.stderr
    assert not (tmp_path / "cal.json").exists()


@pytest.mark.parametrize("command", ["fetch", "run", "backfill", "config"])
def test_a_category_class_arxiv_does_not_list_is_a_warning_naming_where_it_was_set(tmp_path, command):
    """`--category cs.XX` passed the category check (only its archive was checked) and matched no paper: each
    daily run said "nothing to do", with no word on the category. Now one warning naming --category (or the
    ranker.toml line), with the closest classes; kept (arXiv adds classes). A stray key is refused."""
    hist = tmp_path / "hist"
    hist.mkdir()
    (hist / "2025-05-15").symlink_to(DAYS / "2025-05-15")
    db = tmp_path / "db.sqlite3"
    with Store(db) as s:                # run's prefilter served from the store: no model loaded
        store_vectors(s, list(read_papers(LISTING)))
    args = {"fetch": ["--from", LISTING, "--out", tmp_path / "p.jsonl", "--db", db],
            "run": ["--papers", LISTING, "--out", tmp_path / "d", "--db", db, "--backend", "fake", "--model", "tiny",
                    "--offline"],
            "backfill": ["--from", hist, "--out", tmp_path / "bf", "--db", db, "--offline", "--score", "--backend",
                         "fake", "--model", "tiny"],
            "config": []}[command]
    said = "'cs.LX' is no subject class of arXiv's taxonomy that ranker knows (a new one?): no paper may match it; " \
           "did you mean 'cs.PL', 'cs.LO' or 'cs.LG'?"
    if command != "config":
        r = ranker(command, *args, "--category", "cs.LG,cs.LX")
        assert r.returncode == 0, r.stderr
        assert f"warning: --category: {said}\n" in r.stderr and r.stderr.count("warning:") == 1, r.stderr
        r = ranker(command, *args, "--category", "cs.LGG")
        assert one_error(r, 1) == "error: --category: 'cs.LGG' is not an arXiv category; did you mean 'cs.LG'?"
    cfg = tmp_path / "ranker.toml"
    cfg.write_text('[fetch]\ncategories = ["cs.LG", "cs.LX"]\n')
    r = ranker(command, *args, "--config", cfg, env={"RANKER_HOME": tmp_path / "home"})
    assert r.returncode == 0, r.stderr
    assert f"warning: {cfg}:2: fetch.categories: {said}\n" in r.stderr, r.stderr
    r = ranker(command, *args, "--config", cfg, "--category", "cs.LG", env={"RANKER_HOME": tmp_path / "home"}) \
        if command != "config" else None
    assert r is None or "warning" not in r.stderr, r.stderr


# --------------------------------------------------------------------------- the README's exit statuses
def _readme_statuses() -> dict[str, int]:
    """The README's table of exit statuses: each row's text -> its status."""
    text = (REPO / "README.md").read_text()
    rows = re.findall(r"^\| (\d+) \| (.+) \|$", text.split("Exit statuses, the same for every command", 1)[1], re.M)
    assert rows, "the README's table of exit statuses is gone"
    return {when: int(status) for status, when in rows}


@pytest.mark.parametrize("row, args", [
    ("done", ["fetch", "--from", LISTING, "--out", "f.jsonl"]),
    ("nothing to do: no papers", ["score", "--papers", "empty.jsonl", "--backend", "fake", "--out", "s.jsonl"]),
    ("nothing to do: no papers", ["run", "--papers", "empty.jsonl", "--backend", "fake", "--out", "run"]),
    ("no labels in the file", ["labels", "import", "empty.jsonl"]),
    ("bad input", ["fetch", "--from", "gone.jsonl", "--out", "f.jsonl"]),
    ("bad input", ["compare", "--gpt", "empty.jsonl", "--local", "notes.csv", "--out", "c"]),
    ("a mistyped command line", ["fetch", "--kep", "3"]),
    ("a mistyped command line", ["eval", "--history", ".", "--days", "many", "--out", "e"]),
    ("a mistyped command line", ["labels", "import"]),
])
def test_the_readmes_exit_statuses_are_what_the_commands_return(tmp_path, row, args):
    """A user scripting ranker (cron, a systemd unit's OnFailure=) reads the README's table of exit statuses:
    its cheap rows (done, nothing to do, bad input, a usage mistake) checked against the commands, so it cannot
    rot (the rest: tests/test_interrupts.py for Ctrl-C's 130, SIGTERM's -15 and a partial run's 0
    (test_nothing_scored_is_an_error_and_a_partial_run_a_warning), tests/test_terminal.py for SIGPIPE's 141)."""
    (tmp_path / "empty.jsonl").write_text("")
    (tmp_path / "notes.csv").write_text("id,relevance\n2506.16065,9\n")
    [status] = [s for when, s in _readme_statuses().items() if row in when]
    r = ranker(*args, cwd=tmp_path, env={"RANKER_HOME": tmp_path / "home", "RANKER_OFFLINE": "1"})
    assert r.returncode == status, (row, r.returncode, r.stderr)
    if status == 1:
        one_error(r)
    assert set(_readme_statuses().values()) == {0, 1, 130, 141, 143}
