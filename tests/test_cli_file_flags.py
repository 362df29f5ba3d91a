"""An error about a file an option was given names that option, once, in every command: `run --papers x.csv
--prompts p/` said "x.csv: unrecognised format", and a cron log could not tell which option was wrong
(cli.common.given_key, at the one place an error becomes its line). A file no option of this command line
named (ranker.toml's, the auto-found ./ranker.toml) names none, and a line of the config file is said as its line,
as every setting of it is ("ranker.toml:3: prefilter.keep: ...")."""
from __future__ import annotations

import os
import re
import subprocess

import pytest

from conftest import DAYS, RANKER, python

LISTING = DAYS / "2025-05-15" / "listing.jsonl"
GPT = DAYS / "2025-05-15" / "gpt_scores.jsonl"
GARBAGE = b"a,b\n1,2\n"


def _line(args, tmp_path, stdin: bytes = b"", env: dict | None = None) -> str:
    (tmp_path / "bad.csv").write_bytes(GARBAGE)
    (tmp_path / "folder").mkdir(exist_ok=True)
    env = {**os.environ, "RANKER_HOME": str(tmp_path / "home"), "RANKER_OFFLINE": "1", **(env or {})}
    env.pop("RANKER_DEBUG", None)
    r = subprocess.run([*RANKER, *map(str, args)], input=stdin, capture_output=True, env=env, cwd=tmp_path,
                       timeout=300)
    lines = r.stderr.decode().strip().splitlines()
    assert r.returncode == 1 and len(lines) == 1 and lines[0].startswith("error: "), r.stderr.decode()
    return lines[0]


FAKE = ("--backend", "fake")


CASES = [   # (the command line, its stdin, how the line starts after "error: ")
    (["run", "--papers", "bad.csv", "--out", "o", *FAKE], b"", "--papers bad.csv: unrecognised format"),
    (["run", "--papers", LISTING, "--prompts", "bad.csv", "--out", "o", *FAKE], b"",
     "--prompts bad.csv: not a folder"),
    (["run", "--papers", LISTING, "--prompts", "folder", "--out", "o", *FAKE], b"",
     f"--prompts {os.path.join('folder', 'system_prompt.txt')}: missing system_prompt.txt"),
    (["score", "--papers", "nope.jsonl", "--out", "s.jsonl", *FAKE], b"", "--papers nope.jsonl: file not found"),
    (["score", "--papers", "-", "--out", "-", *FAKE], GARBAGE, "--papers stdin: unrecognised format"),
    (["prefilter", "--papers", "folder", "--out", "p.jsonl"], b"", "--papers folder: is a directory"),
    (["fetch", "--from", "bad.csv", "--out", "f.jsonl"], b"", "--from bad.csv: unrecognised format"),
    (["fetch", "--from", "-", "--out", "f.jsonl"], GARBAGE, "--from stdin: unrecognised format"),
    (["calibrate", "--history", "nope", "--out", "c.json"], b"", "--history nope: history directory not found"),
    (["eval", "--history", "bad.csv", "--out", "e"], b"", "--history bad.csv: not a folder"),
    (["backfill", "--from", "bad.csv", "--embed", "--out", "bf"], b"", "--from bad.csv: unrecognised format"),
    (["config", "--config", "folder"], b"", "--config folder: is a directory, not a config file"),
    (["labels", "list", "--db", "bad.csv"], b"", "--db bad.csv: not a usable ranker database"),
    (["score", "--papers", LISTING, "--out", "folder", *FAKE], b"", "--out folder: is a directory"),
    # named so already (the library keys them): still once
    (["prefilter", "--papers", LISTING, "--calibration", "bad.csv", "--out", "p.jsonl"], b"",
     "--calibration bad.csv: not a calibration file"),
    (["compare", "--gpt", "bad.csv", "--local", GPT, "--out", "c"], b"", "--gpt bad.csv: not a digest"),
    (["compare", "--gpt", GPT, "--local", GPT, "--papers", "bad.csv", "--out", "c"], b"",
     "--papers bad.csv: unrecognised format"),
]


@pytest.mark.parametrize("args,stdin,said", CASES, ids=[f"{c[0][0]} {c[2].split(':')[0]}" for c in CASES])
def test_an_error_about_a_file_an_option_was_given_names_that_option_once(tmp_path, args, stdin, said):
    line = _line(args, tmp_path, stdin)
    assert line.startswith(f"error: {said}"), line
    flag = said.split()[0]
    assert len(re.findall(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", line)) == 1, line


def test_a_file_no_option_named_names_none(tmp_path):
    """ranker.toml's calibration is said as its line, not as --calibration (not on this command line); an
    auto-found ./ranker.toml under `--history .` is not said as --history's (the working folder holds every
    relative path); nor is a line of a --config file as --config's."""
    (tmp_path / "bad.csv").write_bytes(GARBAGE)
    (tmp_path / "ranker.toml").write_text('[prefilter]\ncalibration = "bad.csv"\n')
    line = _line(["prefilter", "--papers", LISTING, "--out", "p.jsonl"], tmp_path)
    assert line.startswith("error: ranker.toml:2: prefilter.calibration bad.csv: "), line
    assert "--calibration" not in line
    (tmp_path / "ranker.toml").write_text("this is not toml\n")
    line = _line(["calibrate", "--history", ".", "--out", "c.json"], tmp_path)
    assert line.startswith("error: ranker.toml:1: not valid TOML"), line
    line = _line(["config", "--config", "ranker.toml"], tmp_path)
    assert line.startswith("error: ranker.toml:1: not valid TOML"), line
    # a --config file inside --out's folder: its line, not --out's
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "cfg.toml").write_text("this is not toml\n")
    line = _line(["run", "--papers", LISTING, "--out", "out", "--config", os.path.join("out", "cfg.toml"), *FAKE],
                 tmp_path)
    assert line.startswith(f"error: {os.path.join('out', 'cfg.toml')}:1: not valid TOML"), line


def test_a_file_a_setting_names_in_an_options_folder_is_the_settings(tmp_path):
    """RANKER_DB inside --out's folder: the database is RANKER_DB's, not said as --out's (`--out out/ranker.db:
    not a usable ranker database`); --db given, it is --db's."""
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "ranker.db").write_bytes(GARBAGE)
    db = str(tmp_path / "out" / "ranker.db")
    line = _line(["site", "--out", "out"], tmp_path, env={"RANKER_DB": db})
    assert "not a usable ranker database" in line and "--out" not in line, line
    line = _line(["site", "--out", "out", "--db", os.path.join("out", "ranker.db")], tmp_path)
    assert line.startswith(f"error: --db {os.path.join('out', 'ranker.db')}: not a usable ranker database"), line


def test_only_options_that_take_paths_are_noted():
    """`--since 2025-05-01` is a day, not a folder: ./2025-05-01/listing.jsonl is not its file."""
    import typer

    from ranker.cli import app as cli_app
    from ranker.cli import common
    group = typer.main.get_command(cli_app.app)
    ctx = group.commands["fetch"].make_context("fetch", ["--since", "2025-05-01", "--from", "x.jsonl",
                                                                "--out", "f.jsonl"])
    common.note_given(ctx)
    try:
        assert set(common.GIVEN) == {"from_", "out"}
        assert common.given_key(os.path.join("2025-05-01", "listing.jsonl")) is None
        assert common.given_key("x.jsonl:3") == "from_"
    finally:
        common.GIVEN.clear()


def test_a_file_a_setting_names_in_a_given_folder_is_not_that_options():
    """ranker.toml's `[digest] authors = "p/authors.txt"` with `--prompts p`: not "--prompts p/authors.txt"; the
    folder's own files still are --prompts'."""
    from ranker.cli import common
    common.GIVEN.update({"prompts": ("p",)})
    common.SETTING_PATHS[:] = [os.path.join("p", "authors.txt")]
    try:
        assert common.given_key(os.path.join("p", "authors.txt")) is None
        assert common.given_key(os.path.join("p", "system_prompt.txt")) == "prompts"
    finally:
        common.GIVEN.clear()
        common.SETTING_PATHS.clear()


def test_the_options_of_a_command_are_no_later_calls(tmp_path):
    """After main() has run a command in this process, a library error about the file it was given names no
    option (`--from stdin` said of a later call's stdin)."""
    (tmp_path / "folder").mkdir()
    folder = str(tmp_path / "folder")
    r = python("import sys\nfolder = sys.argv[1]\nsys.argv = ['ranker', 'config', '--config', folder]\n"
               "from ranker.cli import main\nfrom ranker.cli.common import error_line\n"
               "from ranker.errors import InputError\ntry:\n    main()\nexcept SystemExit:\n    pass\n"
               "print(error_line(InputError('wrong', where=folder)))", folder, timeout=120)
    assert r.stderr.startswith(f"error: --config {folder}: "), r.stderr
    assert r.stdout.strip() == f"{folder}: wrong", r.stdout


def test_quiet_and_verbose_are_no_later_commands(tmp_path):
    """main() run twice in one process: the first command's -q is not the second's (its -v was refused as the
    pair)."""
    r = python("import sys\nfrom ranker.cli import main\nfor flag in ('-q', '-v'):\n"
               "    sys.argv = ['ranker', 'models', 'list', flag]\n    try:\n        main()\n"
               "        print('status', 0)\n    except SystemExit as e:\n        print('status', e.code)\n",
               timeout=120)
    assert "not both" not in r.stderr, r.stderr
    assert [x for x in r.stdout.splitlines() if x.startswith("status")] == ["status 0", "status 0"], r.stdout


def test_a_message_that_names_the_option_does_not_have_it_said_again():
    """`--db ro/x.db: ... give a writable --db or RANKER_HOME`: the flag once."""
    from ranker.cli import common
    from ranker.errors import InputError
    common.GIVEN.update({"db": (os.path.join("ro", "x.db"),)})
    try:
        line = common.error_line(InputError("the database is read-only here; give a writable {key:db} or "
                                            "{key:home}", where=os.path.join("ro", "x.db")))
    finally:
        common.GIVEN.clear()
    assert line.count("--db") == 1 and line.startswith(os.path.join("ro", "x.db")), line
