"""`ranker config`: the settings in force and where each came from, as a ranker.toml the settings read back."""
from __future__ import annotations

import json
import os
import tomllib

import pytest

from ranker.backends import options_in_force
from ranker.settings import effective, resolve

from conftest import ranker


def test_config_shows_each_setting_and_where_it_came_from(tmp_path):
    lab = tmp_path / "lab"
    lab.mkdir()
    f = lab / "ranker.toml"
    f.write_text("home = 'h'\noffline = true\n[prefilter]\nrecall = 0.9\nmin_keep = 5\n[scoring]\nbackend = 'vllm'\n"
                 "[scoring.vllm]\ndtype = 'float16'\n[scoring.openai]\nbase_url = 'http://u:pw@127.0.0.1:1/v1'\n")
    env = {"RANKER_FETCH_RETRIES": "3", "OPENAI_API_KEY": "sk-secretsecretsecret", "RANKER_HOME": "",
           "RANKER_DB": "", "RANKER_OFFLINE": ""}
    r = ranker("config", "--config", f, "--no-offline", env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    lines = [" ".join(line.split()) for line in r.stdout.splitlines()]
    for want in (f"# config file: {f}", f'home = "{lab / "h"}" # {f}:1',
                 f'db = "{lab / "h" / "ranker.sqlite3"}" # default', "offline = false # --no-offline",
                 "retries = 3 # RANKER_FETCH_RETRIES", f"recall = 0.9 # {f}:4", "# keep (not set) # default",
                 "embedder = \"minilm\" # default", f'dtype = "float16" # {f}:9', "tensor_parallel_size = 1 # default",
                 '[scoring.openai]', 'base_url = "http://u:[redacted]@127.0.0.1:1/v1" # ' + f"{f}:11"):
        assert want in lines, (want, r.stdout)
    assert "secretsecret" not in r.stdout + r.stderr and ":pw@" not in r.stdout
    assert not (lab / "h").exists(), "config makes nothing: no home, no log file, no database"
    # the text is a ranker.toml: read back, it gives the same settings (the password aside)
    shown = tomllib.loads(r.stdout)
    assert shown["prefilter"]["recall"] == 0.9 and "keep" not in shown["prefilter"]
    again = tmp_path / "again.toml"
    again.write_text(r.stdout.replace("[redacted]", "pw"))
    env_then = {"RANKER_FETCH_RETRIES": "3"}
    def in_force(s):
        return [(e.key, e.value) for e in effective(s, options_in_force(s))]
    assert in_force(resolve(again, env={})) == in_force(resolve(f, flags={"offline": False}, env=env_then))


def test_config_redacts_a_secret_in_the_query_of_a_server_url(tmp_path):
    """`base_url = "http://h/v1?key=SECRET&token=TOK"` (a gateway that takes its key in the query): `ranker
    config`, whose output is pasted into bug reports, printed both as written; the run manifest kept them too."""
    f = tmp_path / "ranker.toml"
    f.write_text("[scoring.openai]\nbase_url = 'http://h/v1?key=SECRET&token=TOK&model=m&sig=Zx9'\n")
    r = ranker("config", "--config", f, env={"RANKER_HOME": tmp_path / "h"}, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert 'base_url = "http://h/v1?key=[redacted]&token=[redacted]&model=m&sig=[redacted]"' in r.stdout, r.stdout
    assert not {"SECRET", "TOK", "Zx9"} & set(r.stdout.replace('"', " ").replace("=", " ").replace("&", " ").split())


def test_config_json_and_flags_that_override(tmp_path):
    (tmp_path / "ranker.toml").write_text("[digest]\nmin_relevance = 6\n")
    r = ranker("config", "--json", "--db", "x.sqlite3", "--offline", cwd=tmp_path,
               env={"RANKER_DB": "", "RANKER_OFFLINE": "0"})
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    by_key = {row["key"]: row for row in got["settings"]}
    assert got["config_file"] == str(tmp_path / "ranker.toml")
    assert by_key["db"] == {"key": "db", "value": str(tmp_path / "x.sqlite3"), "from": "--db"}
    assert by_key["offline"]["from"] == "--offline" and by_key["offline"]["value"] is True
    assert by_key["digest.min_relevance"] == {"key": "digest.min_relevance", "value": 6, "from": "ranker.toml:2"}
    assert by_key["scoring.backend"] == {"key": "scoring.backend", "value": "vllm", "from": "default"}


def test_config_says_a_bad_setting_as_every_command_does(tmp_path):
    (tmp_path / "ranker.toml").write_text("[prefilter]\nkep = 0.3\n")
    r = ranker("config", cwd=tmp_path)
    assert (r.returncode, r.stdout, r.stderr.strip()) == (1, "", "error: ranker.toml:2: prefilter.kep: unknown setting; did you mean keep?")


def test_config_shows_the_keep_rule_that_applies_when_none_is_set(tmp_path):
    """No keep, top or recall given: `ranker config` said "# keep (not set)" for each, not the rule the prefilter
    then applies (recall 0.95 with a calibration, else the fraction 0.4; prefilter.recall.with_applied_rule)."""
    env = {"RANKER_HOME": str(tmp_path / "h"), "RANKER_DB": ""}
    f = tmp_path / "ranker.toml"
    for text, flags, want in [("", (), "# keep = 0.4 # default: no keep rule given, no calibration"),
                              ("[prefilter]\ncalibration = 'c.json'\n", (),
                               "# recall = 0.95 # default: no keep rule given, with a calibration")]:
        f.write_text(text)
        r = ranker("config", "--config", f, *flags, env=env, cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        lines = [" ".join(line.split()) for line in r.stdout.splitlines()]
        assert want in lines, (want, r.stdout)
        assert sum("(not set)" in line for line in lines if line.startswith(("# keep", "# top", "# recall"))) == 2
        assert not {"keep", "top", "recall"} & set(tomllib.loads(r.stdout)["prefilter"])    # applied, not pinned
    r = ranker("config", "--config", f, "--json", env=env, cwd=tmp_path)
    by_key = {row["key"]: row for row in json.loads(r.stdout)["settings"]}
    assert by_key["prefilter.recall"] == {"key": "prefilter.recall", "value": 0.95, "from": "default",
                                          "note": "not set: no keep rule given, with a calibration"}
    assert by_key["prefilter.keep"]["value"] is None
    # a rule given is shown as given, the others not set
    f.write_text("[prefilter]\ntop = 30\n")
    lines = [" ".join(x.split()) for x in ranker("config", "--config", f, env=env, cwd=tmp_path).stdout.splitlines()]
    assert f"top = 30 # {f}:2" in lines and "# keep (not set) # default" in lines


def test_config_writes_a_literal_dollar_in_a_path_as_the_file_reads_it_back(tmp_path):
    """home "/d/pay$ment" (written `pay$$ment`) was printed as `pay$ment`, which ranker.toml reads as $ment's
    value: the text `ranker config` says is a ranker.toml did not read back. --json shows the value itself."""
    f = tmp_path / "ranker.toml"
    f.write_text(f"home = '{tmp_path}/pay$$ment'\n[scoring]\nprompts = '{tmp_path}/p$$'\n")
    r = ranker("config", "--config", f, env={"RANKER_HOME": "", "RANKER_DB": ""}, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert f'home = "{tmp_path}/pay$$ment"' in r.stdout and f'prompts = "{tmp_path}/p$$"' in r.stdout, r.stdout
    again = tmp_path / "again.toml"
    again.write_text(r.stdout)
    s = resolve(again, env={})
    assert (s.home, s.scoring.prompts) == (tmp_path / "pay$ment", f"{tmp_path}/p$")
    r = ranker("config", "--config", f, "--json", env={"RANKER_HOME": "", "RANKER_DB": ""}, cwd=tmp_path)
    by_key = {row["key"]: row["value"] for row in json.loads(r.stdout)["settings"]}
    assert by_key["home"] == f"{tmp_path}/pay$ment" and by_key["scoring.prompts"] == f"{tmp_path}/p$"


def test_config_writes_a_literal_dollar_in_a_path_engine_argument_as_the_file_reads_it_back(tmp_path):
    """engine_args = { download_dir = "/d/pay$$ment" } (a literal $, since such an argument expands $NAME as every
    path does) was printed as `pay$ment`: read back, "$ment is not set". An argument that names no path keeps its
    $ as written (it is not expanded)."""
    f = tmp_path / "ranker.toml"
    f.write_text("[scoring.vllm]\nengine_args = { download_dir = '/d/pay$$ment', tokenizer = './t$$k', "
                 "served_model_name = 'm$x' }\n")
    r = ranker("config", "--config", f, env={"RANKER_HOME": "", "RANKER_DB": ""}, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    again = tmp_path / "again.toml"
    again.write_text(r.stdout)
    args = resolve(again, env={}).scoring.options["vllm"]["engine_args"]
    assert args == {"download_dir": "/d/pay$ment", "tokenizer": f"{tmp_path}/t$k", "served_model_name": "m$x"}


def test_stdin_as_the_calibration_is_refused_alike_by_any_name_flag_or_file(tmp_path):
    """`--calibration -` was refused, but `calibration = "-"` in ranker.toml said "-: calibration file not found"
    (naming no key) and `--calibration /dev/stdin` (or /dev/fd/0) was read: the run's manifest names the file and
    a rerun reads it again, which stdin cannot give, by any of its names."""
    import subprocess
    from conftest import DAYS, RANKER
    from ranker.errors import ConfigError
    from ranker.settings import Settings
    why = ("cannot be the calibration: the run's manifest names its file, and a rerun reads it again; give the file "
           "`ranker calibrate` wrote")
    listing = DAYS / "2025-05-15" / "listing.jsonl"
    sub = tmp_path / "lab"
    sub.mkdir()
    (sub / "ranker.toml").write_text("[prefilter]\nmin_keep = 5\ncalibration = \"-\"\n")
    (tmp_path / "empty.toml").write_text("")
    given = [(["--config", "lab/ranker.toml"], "lab/ranker.toml:3: prefilter.calibration: '-' (stdin)")]
    given += [(["--config", "empty.toml", "--calibration", name], f"--calibration: '{name}' (stdin)")
              for name in ("/dev/stdin", "/dev/fd/0", "-")]
    for flags, said in given:
        r = subprocess.run([*RANKER, "prefilter", "--papers", str(listing), "--out", "r.jsonl", *flags],
                           input=b'{"version": 2}', capture_output=True, cwd=tmp_path,
                           env={**os.environ, "RANKER_HOME": str(tmp_path / "home")}, timeout=120)
        assert (r.returncode, r.stderr.decode()) == (1, f"error: {said} {why}\n"), flags
        assert not (tmp_path / "r.jsonl").exists()
    with pytest.raises(ConfigError) as e:
        Settings(prefilter={"calibration": "/dev/stdin"})
    assert e.value.key == "prefilter.calibration"
