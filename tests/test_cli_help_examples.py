"""The examples the --help texts give are command lines ranker takes: every line of each command's and group's
`Example(s):` block (continuations joined, the note after it left out) is checked as the README's command lines
are (tests/clilines.py: command, subcommand, flags, their values, the arguments), and every `ranker ...` the
help's prose quotes names a command and flags that exist. The help is read as `ranker ... --help` prints it
(typer's CliRunner through the app); nothing else is run."""
from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import dataclass

import pytest
from typer.testing import CliRunner

from ranker.cli.app import app

from clilines import ROOT, problems, ranker_args


def command_paths(cmd=ROOT, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command and group below `cmd`, itself included, by the words that name it (() for ranker)."""
    found = [path]
    for name, sub in getattr(cmd, "commands", {}).items():
        found += command_paths(sub, path + (name,))
    return found


def help_text(path: tuple[str, ...]) -> str:
    r = CliRunner().invoke(app, [*path, "--help"], prog_name="ranker")
    assert r.exit_code == 0, (path, r.output)
    return r.output


# --------------------------------------------------------------------------- reading a help text
@dataclass
class Example:
    where: str              # `ranker models --help`:<line of the help text>
    command: str            # the shell line, continuations joined, its note left out


HEADING = re.compile(r"^(\s*)Examples?:\s*$")
NOTE = re.compile(r"\s{2,}")        # a note follows an example after two spaces or more


def _without_note(line: str) -> str:
    """The line up to the first run of two spaces or more outside quotes (what follows is the example's note:
    `ranker run --out ~/digests     today's ...`, `ranker import bf/     (then ...)`)."""
    quote = None
    for i, c in enumerate(line):
        if quote:
            quote = None if c == quote else quote
        elif c in "'\"":
            quote = c
        elif NOTE.match(line, i):
            return line[:i]
    return line


def examples(text: str, where: str) -> list[Example]:
    """The command lines of each `Example:`/`Examples:` block of a help text: the lines indented under the
    heading, up to a blank or less indented line; a line ending in a backslash continues on the next."""
    found, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        m = HEADING.match(lines[i])
        i += 1
        if not m:
            continue
        pending, start = "", 0
        while i < len(lines) and lines[i].strip() and len(lines[i]) - len(lines[i].lstrip()) > len(m.group(1)):
            line = _without_note(lines[i].strip()).rstrip()
            if not pending:
                start = i + 1
            i += 1
            if line.endswith("\\"):
                pending += line[:-1].rstrip() + " "
                continue
            found.append(Example(f"{where}:{start}", pending + line))
            pending = ""
        assert not pending, f"{where}:{start}: a continued example without its end"
    return found


def quoted_commands(text: str) -> list[str]:
    """`ranker ...` in the help's prose (`ranker labels export`), joined where the help wraps a line inside it."""
    return [" ".join(span.split()) for span in re.findall(r"`(ranker(?:\s[^`]*)?)`", text)]


def shell_syntax_error(command: str) -> str:
    """What bash says of the line read, not run (`bash -n`): empty where it is a valid shell line."""
    r = subprocess.run(["bash", "-n", "-c", command], capture_output=True, text=True, timeout=30)
    return "" if r.returncode == 0 else (r.stderr.strip().splitlines() or ["syntax error"])[-1]


def help_problems(text: str, where: str) -> list[str]:
    """What is wrong with a help text's examples (each one runs ranker, the way the README's code blocks
    must) and with the commands its prose quotes (those may leave out arguments and values)."""
    out = []
    for ex in examples(text, where):
        error = shell_syntax_error(ex.command)
        if error:                           # an unclosed quote, a note glued to the command
            out.append(f"{ex.where}: {ex.command}: not a shell line ({error})")
            continue
        runs = ranker_args(ex.command)
        if not runs:
            out.append(f"{ex.where}: {ex.command}: runs no ranker")
        out += [f"{ex.where}: {ex.command}: {p}" for args in runs for p in problems(args)]
    for span in quoted_commands(text):
        out += [f"{where}: `{span}`: {p}" for p in problems(span.split()[1:], exact=False)]
    return out


# --------------------------------------------------------------------------- the CLI's help texts
PATHS = command_paths()


def test_every_command_and_group_is_read():
    assert () in PATHS and ("models", "prepare") in PATHS and ("index", "status") in PATHS
    assert len(PATHS) >= 20


@pytest.mark.parametrize("path", PATHS, ids=lambda p: " ".join(("ranker",) + p))
def test_help_examples_are_command_lines_ranker_takes(path):
    """Each command's and group's --help has an example, and each of its examples, and each `ranker ...` its
    prose quotes, is the CLI's."""
    where = f"`{' '.join(('ranker',) + path)} --help`"
    text = help_text(path)
    assert examples(text, where), f"{where}: no example"
    found = help_problems(text, where)
    assert not found, "\n".join(found)


def test_the_help_check_refuses_a_bad_example():
    """Self-check: planted wrong examples in a help text of the CLI's layout are each found, and the reading
    takes the notes and continuations off as the help writes them."""
    text = ("Usage: ranker thing [OPTIONS]\n"
            "\n"
            "  Does a thing; feeds `ranker scroe` and `ranker run --kep` (wrapped `ranker models\n"
            "  prepar`), see `ranker COMMAND --help`.\n"
            "\n"
            "  Examples:\n"
            "    ranker run --out d/                   a note, after two spaces\n"
            "    ranker run --out d/ --no-such-flag    (a note in parentheses)\n"
            "    ranker prefilter --papers p.jsonl --out r.jsonl \\\n"
            "      --keep      (the value left out)\n"
            "    ranker similar \"two  spaces quoted\" extra\n"
            "    ranker fetch --out x.jsonl (a note too close)\n"
            "    cat list | grep 2505\n"
            "    ranker nosuch\n"
            "    ranker similar 2505.09343 --k ten     (a value its option does not take)\n"
            "\n"
            "Options:\n"
            "  --help  Show this message and exit.\n")
    found = examples(text, "h")
    assert [(e.where, e.command) for e in found] == [
        ("h:7", "ranker run --out d/"), ("h:8", "ranker run --out d/ --no-such-flag"),
        ("h:9", "ranker prefilter --papers p.jsonl --out r.jsonl --keep"),
        ("h:11", 'ranker similar "two  spaces quoted" extra'),
        ("h:12", "ranker fetch --out x.jsonl (a note too close)"), ("h:13", "cat list | grep 2505"),
        ("h:14", "ranker nosuch"), ("h:15", "ranker similar 2505.09343 --k ten")]
    assert quoted_commands(text) == ["ranker scroe", "ranker run --kep", "ranker models prepar",
                                     "ranker COMMAND --help"]
    found = help_problems(text, "h")
    assert found[:2] == ["h:8: ranker run --out d/ --no-such-flag: `ranker run` has no option --no-such-flag",
                         "h:9: ranker prefilter --papers p.jsonl --out r.jsonl --keep: `ranker prefilter`: --keep "
                         "needs a value"]
    assert found[2].startswith("h:11: ") and "`ranker similar` takes 1 argument(s), given 2" in found[2]
    assert found[3].startswith("h:12: ") and "not a shell line" in found[3]
    assert found[4:] == ["h:13: cat list | grep 2505: runs no ranker",
                         "h:14: ranker nosuch: `ranker` has no command 'nosuch'",
                         "h:15: ranker similar 2505.09343 --k ten: `ranker similar`: Invalid value for '--k': Input "
                         "should be a valid integer, unable to parse string as an integer",
                         "h: `ranker scroe`: `ranker` has no command 'scroe'",
                         "h: `ranker run --kep`: `ranker run` has no option --kep",
                         "h: `ranker models prepar`: `ranker models` has no command 'prepar'"]
    assert help_problems(text.replace("Examples:", "Example:").split("    ranker run --out d/ --no")[0], "h") == [
        "h: `ranker scroe`: `ranker` has no command 'scroe'",
        "h: `ranker run --kep`: `ranker run` has no option --kep",
        "h: `ranker models prepar`: `ranker models` has no command 'prepar'"]


# --------------------------------------------------------------------------- the defaults the help quotes
def help_defaults() -> dict[str, tuple[str, object]]:
    """Option -> (a pattern whose groups read the default(s) its help quotes, what the code holds)."""
    from ranker.prefilter.calibrate import MIN_DAYS, MIN_PICKS
    from ranker.prefilter.embed import DEFAULT_MAX_TOKENS
    from ranker.prefilter.recall import DEFAULT_KEEP, DEFAULT_RECALL
    from ranker.settings import Settings
    d = Settings()
    return {
        "--min-relevance": (r"default\b[^)]*?(\d+)\)", (d.digest.min_relevance,)),
        "--min-novelty": (r"default\b[^)]*?(\d+)\)", (d.digest.min_novelty,)),
        "--max-tokens": (r"\(default (\d+),", (DEFAULT_MAX_TOKENS,)),
        "--batch-size": (r"default: scoring\.batch_size of ranker\.toml, (\d+);", (d.scoring.batch_size,)),
        "--category": (r"default:? (?:fetch\.categories of ranker\.toml, )?([\w.,]+)\)",
                       (",".join(d.fetch.categories),)),
        "--announce": (r"default:? (?:fetch\.announce of ranker\.toml, )?([\w,-]+)\)", (",".join(d.fetch.announce),)),
        "--embedder": (r"default: prefilter\.embedder of ranker\.toml, ([\w.-]+)\)", (d.prefilter.embedder,)),
        "--backend": (r"default: scoring\.backend of ranker\.toml, ([\w.-]+)\)", (d.scoring.backend,)),
        "--model": (r"default: scoring\.model of ranker\.toml, ([\w.-]+)[;)]", (d.scoring.model,)),
        "--score-mode": (r"default: scoring\.score_mode of ranker\.toml, ([\w-]+)\)", (d.scoring.score_mode,)),
        "--prompt-layout": (r"default: scoring\.prompt_layout of ranker\.toml, ([\w-]+)\)",
                            (d.scoring.prompt_layout,)),
        "--novelty-context": (r"default (\d+) = off", (d.scoring.novelty_context,)),
        "--papers-per-request": (r"\((\d+) = one paper per request, the default", (d.scoring.papers_per_request,)),
        "--keep": (r"(?:default without a calibration ([\d.]+), with one --recall ([\d.]+); never fewer than "
                   r"(\d+) papers|default: by recall ([\d.]+) with --calibrate, else ([\d.]+)\))",
                   (DEFAULT_KEEP, DEFAULT_RECALL, d.prefilter.min_keep, DEFAULT_RECALL, DEFAULT_KEEP)),
        "--days": (r"with --calibrate each day after (\d+) days with GPT picks and (\d+) picks", (MIN_DAYS, MIN_PICKS)),
        "--recall": (r"Default with a calibration: ([\d.]+) \(without one, the fixed fraction ([\d.]+)\)",
                     (DEFAULT_RECALL, DEFAULT_KEEP)),
    }


def _options():
    """(command path, option name or None for an argument, parameter) of every command's parameters."""
    from clilines import _is_option, _params
    for path in PATHS:
        cmd = ROOT
        for word in path:
            cmd = cmd.commands[word]
        for p in _params(cmd):
            yield path, (p.opts[0] if _is_option(p) else None), p


def test_defaults_the_help_quotes_are_the_code_defaults():
    """Every option whose help states its default (--keep's 0.4, --max-tokens' 128, the cut-offs' 8 and 7, the
    categories, eval's --days: 3 days with picks and 30 picks, where it said "3 earlier days") states the one
    the settings and constants hold, in every command that has it: the help texts write them out, so a
    default changed in the code alone would leave them saying the old one."""
    expected, seen, out = help_defaults(), set(), []
    for path, name, p in _options():
        if name not in expected:
            continue
        seen.add(name)
        text = " ".join((p.help or "").split())
        pattern, values = expected[name]
        m = re.search(pattern, text)
        said = [g for g in (m.groups() if m else ()) if g is not None]
        want = [v for v, g in zip(values, m.groups()) if g is not None] if m else list(values)
        if not m or [type(v)(g) for v, g in zip(want, said)] != want:
            out.append(f"ranker {' '.join(path)} {name}: its help says {said or p.help!r}, the code {want}")
    assert seen == set(expected), f"options no command has: {set(expected) - seen}"
    assert not out, "\n".join(out)


def test_the_cut_off_options_say_what_they_cut_and_where_their_default_is_set():
    """`ranker run --help` said "--min-relevance  Cut-off (default 8)." (of what? and 8 also where ranker.toml sets
    another): every command's cut-off names the score it cuts and the setting it overrides, as compare's, eval's
    and calibrate's did."""
    out = []
    for path, name, p in _options():
        if name not in ("--min-relevance", "--min-novelty"):
            continue
        score = name.removeprefix("--min-")
        text = " ".join((p.help or "").split())
        if f"{score.upper()} >= this" not in text or f"[digest] min_{score} of ranker.toml" not in text:
            out.append(f"ranker {' '.join(path)} {name}: {text!r}")
    assert not out, "\n".join(out)


@pytest.mark.parametrize("path,option", [(("fetch",), "--out"), (("prefilter",), "--out"), (("score",), "--out"),
                                         (("calibrate",), "--out"), (("labels", "export"), "FILE")])
def test_every_output_that_takes_a_dash_for_stdout_says_so(path, option, tmp_path):
    """`ranker score --out -` writes its scores to stdout, as fetch's, prefilter's, calibrate's and labels
    export's do, but its help said only "Where to write the JSONL scores.": a user who read it wrote a file and
    cat it. Each output that takes '-' says so in its help (score's shown to take it, with the fake backend)."""
    helps = {(q, name or p.name.upper()): " ".join((p.help or "").split()) for q, name, p in _options()}
    assert "'-' for stdout" in helps[path, option], helps[path, option]
    assert "'-' for stdout" in " ".join(help_text(path).split())
    if path == ("score",):
        from conftest import DAYS, ranker
        r = ranker("score", "--papers", DAYS / "2025-05-15" / "listing.jsonl", "--out", "-", "--backend", "fake",
                   "--db", tmp_path / "db.sqlite3", "--offline")
        assert r.returncode == 0 and r.stdout.count('"ARXIVID"') == 192, r.stderr


@pytest.mark.parametrize("path,option", [(("fetch",), "--from"), (("prefilter",), "--papers"),
                                         (("score",), "--papers"), (("run",), "--papers"), (("compare",), None)])
def test_every_input_that_takes_a_dash_for_stdin_says_so(path, option, tmp_path):
    """`ranker prefilter --papers -` (the README's `fetch --out - | prefilter --papers -`), score's, run's and
    fetch --from - read stdin, and compare takes '-' for one of its inputs, but no help said so: only labels
    import's FILE did. Each says it now (score's shown to read it, with the fake backend)."""
    helps = {(q, name): " ".join((p.help or "").split()) for q, name, p in _options()}
    text = helps[path, option] if option else " ".join(help_text(path).split())
    assert "'-' for stdin" in text or "'-' is stdin" in text, text
    if path == ("score",):
        from conftest import DAYS, RANKER
        listing = (DAYS / "2025-05-15" / "listing.jsonl").read_text()
        r = subprocess.run([*RANKER, "score", "--papers", "-", "--out", "-", "--backend", "fake", "--db",
                            tmp_path / "db.sqlite3", "--offline"], input=listing, capture_output=True, text=True)
        assert r.returncode == 0 and r.stdout.count('"ARXIVID"') == 192, r.stderr


@pytest.mark.parametrize("option,variable,key", [("--db", "RANKER_DB", "db"), ("--offline", "RANKER_OFFLINE", None),
                                                 ("--trusted-proxies", "RANKER_TRUSTED_PROXIES", "trusted_proxies")])
def test_an_option_a_variable_also_sets_names_the_variable(option, variable, key, tmp_path):
    """--db said "default: $RANKER_HOME/ranker.sqlite3" while RANKER_DB (or ranker.toml's db) moved the
    database elsewhere, and --trusted-proxies named neither RANKER_TRUSTED_PROXIES nor [serve] trusted_proxies,
    as --offline names RANKER_OFFLINE: each option's help, in every command, names the variable (and the
    variable does set the setting, as `ranker config` shows)."""
    texts = [" ".join((p.help or "").split()) for _, name, p in _options() if name == option]
    assert texts and all(variable in text and (key is None or key in text) for text in texts), texts
    if key:
        from conftest import RANKER
        r = subprocess.run([*RANKER, "config", "--json"], capture_output=True, text=True, cwd=tmp_path,
                           env={**os.environ, "RANKER_HOME": str(tmp_path),
                                variable: str(tmp_path / "x.db") if key == "db" else "10.0.0.5"})
        rows = {s["key"]: s for s in json.loads(r.stdout)["settings"]}
        assert r.returncode == 0 and rows[key if key == "db" else f"serve.{key}"]["from"] == variable, r.stdout


def test_the_model_help_says_the_openai_backend_asks_the_servers_own():
    """--model said "(default: scoring.model of ranker.toml, smollm2-135m)", but with the openai backend and no
    model named the settings send "auto" (the server's own model), not the local preset: every --model says so."""
    from ranker.settings import Settings
    assert Settings(scoring={"backend": "openai"}).scoring.model == "auto"
    texts = [" ".join((p.help or "").split()) for _, name, p in _options() if name == "--model"]
    assert texts and all("with --backend openai: auto, the server's own model" in t for t in texts), texts


def test_the_fetch_filters_and_the_daily_keep_rule_say_the_same_in_every_command():
    """--category and --announce were written three times: run's said "Categories to fetch" where fetch's said
    how a paper is kept (run --papers keeps the same papers as fetch --from), and backfill's --keep wrote the
    keep rule its own way (it keeps each day as run does: min_keep, --recall with a calibration). Each is one
    option now, and says the same wherever it is."""
    helps: dict[str, dict[tuple, str]] = {}
    for path, name, p in _options():
        if name in ("--category", "--announce", "--keep"):
            helps.setdefault(name, {})[path] = " ".join((p.help or "").split())
    assert {("fetch",), ("run",), ("backfill",)} <= set(helps["--category"]), helps["--category"]
    assert {("fetch",), ("run",)} <= set(helps["--announce"]), helps["--announce"]
    for name in ("--category", "--announce"):
        assert len(set(helps[name].values())) == 1, helps[name]
    assert helps["--keep"][("backfill",)] == helps["--keep"][("run",)] == helps["--keep"][("prefilter",)]
