"""Settings: ranker.toml, the environment and flags resolved into one Settings, and errors that name the
key the way the user gave it (a flag, a variable, a ranker.toml entry)."""
from __future__ import annotations

import json

import pytest

from ranker.errors import ConfigError
from ranker.settings import default_home, default_models_dir, effective, parse_option, resolve

from conftest import DATA, DAYS, ranker


def toml(tmp_path, text: str):
    f = tmp_path / "ranker.toml"
    f.write_text(text)
    return f


def test_defaults_then_file_then_environment_then_flags(tmp_path):
    s = resolve(env={})        # no keep rule given: the prefilter's default (recall 0.95 with a calibration)
    assert (s.prefilter.keep, s.prefilter.recall, s.scoring.backend, s.fetch.retries, s.offline) == (
        None, None, "vllm", 5, False)
    f = toml(tmp_path, "[prefilter]\nkeep = 0.3\nmin_keep = 5\n[fetch]\nretries = 2\n[scoring]\nbackend = 'fake'\n")
    s = resolve(f, env={})
    assert (s.prefilter.keep, s.prefilter.min_keep, s.fetch.retries, s.scoring.backend) == (0.3, 5, 2, "fake")
    s = resolve(f, env={"RANKER_FETCH_RETRIES": "7", "RANKER_OFFLINE": "yes", "RANKER_HOME": str(tmp_path)})
    assert (s.fetch.retries, s.offline, s.db_path) == (7, True, tmp_path / "ranker.sqlite3")
    s = resolve(f, flags={"keep": 0.25, "category": "cs.CL, cs.LG", "db": tmp_path / "x.db", "top": None},
                env={"RANKER_FETCH_RETRIES": "7"})
    assert (s.prefilter.keep, s.fetch.categories, s.db_path, s.prefilter.top) == (0.25, ["cs.CL", "cs.LG"],
                                                                                   tmp_path / "x.db", None)
    assert {k: (o.kind, o.name) for k, o in s.origins.items() if k in ("prefilter.keep", "prefilter.min_keep",
                                                                        "fetch.retries")} == {
        "prefilter.keep": ("flag", "keep"), "prefilter.min_keep": ("file", str(f)),
        "fetch.retries": ("env", "RANKER_FETCH_RETRIES")}


def test_a_keep_rule_flag_replaces_the_one_in_the_file(tmp_path):
    f = toml(tmp_path, "[prefilter]\ntop = 50\nmin_keep = 5\n")
    s = resolve(f, flags={"recall": 0.9}, env={})
    assert (s.prefilter.top, s.prefilter.keep, s.prefilter.recall, s.prefilter.min_keep) == (None, None, 0.9, 5)
    assert "prefilter.top" not in s.origins and s.origins["prefilter.recall"].kind == "flag"
    s = resolve(f, env={})
    assert (s.prefilter.top, s.prefilter.recall) == (50, None)
    with pytest.raises(ConfigError) as e:
        resolve(f, flags={"recall": 1.5}, env={})
    assert e.value.key == "prefilter.recall"


def test_a_ranker_toml_in_the_working_folder_is_read(tmp_path, monkeypatch):
    toml(tmp_path, "[digest]\nmin_relevance = 6\n")
    monkeypatch.chdir(tmp_path)
    assert resolve(env={}).digest.min_relevance == 6


@pytest.mark.parametrize("text,key,msg", [
    ('[prefilter]\nmin_keep = "5"\n', "prefilter.min_keep", "valid integer"),        # strict: no "5" for 5
    ("[prefilter]\nkeep = 1.5\n", "prefilter.keep", "must be more than 0 and at most 1, got 1.5"),
    ("[prefilter]\nkepp = 0.3\n", "prefilter.kepp", "unknown setting"),
    ("[scoring]\nscore_mode = 'best'\n", "scoring.score_mode", "'greedy' or 'expected'"),
    ("[scoring]\nmax_authors = 3\n", "scoring.max_authors", "must be at least 4, got 3"),
    ("[fetch]\ncategories = ['cs LG']\n", "fetch.categories", "'cs LG' is not an arXiv category"),
    # a category spelt in the wrong case matches no paper: every day would be "nothing to do"
    ("[fetch]\ncategories = ['cs.lg', 'cs.AI']\n", "fetch.categories", "did you mean 'cs.LG'?"),
    ("[fetch]\ncategories = ['CS.AI']\n", "fetch.categories", "did you mean 'cs.AI'?"),
    ("[fetch]\ncategories = ['cond-mat.Soft']\n", "fetch.categories", "did you mean 'cond-mat.soft'?"),
    # TOML's inf: a timeout, wait or delay without end (time_t overflows, or the fetch sleeps forever)
    ("[fetch]\ntimeout = inf\n", "fetch.timeout", "finite number"),
    ("[fetch]\nbackoff = inf\n", "fetch.backoff", "finite number"),
    ("[fetch]\napi_delay = inf\n", "fetch.api_delay", "finite number"),
    ("[fetch]\ndownload_timeout = inf\n", "fetch.download_timeout", "finite number"),
    # and at most a day: 1e23 overflowed the socket's timeout ('unexpected failure: timestamp out of range')
    ("[fetch]\ntimeout = 1e23\n", "fetch.timeout", "must be more than 0 and at most 86400, got 1e+23"),
    ("[fetch]\napi_delay = 1e23\n", "fetch.api_delay", "must be at least 0 and at most 86400, got 1e+23"),
    ("[fetch]\ndownload_timeout = 0\n", "fetch.download_timeout", "must be more than 0 and at most 86400, got 0"),
    ('[fetch]\ndownload_timeout = "300"\n', "fetch.download_timeout", "valid number"),
    ("[digest]\nmin_novelty = true\n", "digest.min_novelty", "valid integer"),
    ("[scoring.openai]\napi_key = 'sk-x'\n", "scoring.openai.api_key", "environment (OPENAI_API_KEY) only"),
    # each backend's own table, checked against its Options
    ("[scoring.transformers]\nbatch_size = '4'\n", "scoring.transformers.batch_size", "valid integer"),
    ("[scoring.openai]\nconcurency = 4\n", "scoring.openai.concurency", "unknown option"),
    ("[scoring.vllm]\ngpu_memory_utilization = 1.5\n", "scoring.vllm.gpu_memory_utilization",
     "must be more than 0 and at most 1, got 1.5"),
    ("[scoring.vlm]\ndtype = 'float16'\n", "scoring.vlm", "no backend is called 'vlm'"),
    ("[scoring]\nbackend = 'llama'\n", "scoring.backend", "unknown backend 'llama'"),
    # a backend's option as its settings are: no inf (the engine's start failed on int(inf)), no empty text
    # (an empty device was taken for "not given")
    ("[scoring.vllm]\nkv_cache_gb = inf\n", "scoring.vllm.kv_cache_gb", "finite number"),
    ("[scoring]\nbackend = 'transformers'\n[scoring.transformers]\ndevice = ''\n", "scoring.transformers.device",
     "empty; give a value or leave the key out"),
    ("[scoring]\nbackend = 'openai'\n[scoring.openai]\nbase_url = ' '\n", "scoring.openai.base_url", "empty"),
])
def test_bad_values_name_their_key(tmp_path, text, key, msg):
    from ranker.backends import check_options
    with pytest.raises(ConfigError) as e:
        check_options(resolve(toml(tmp_path, text), env={}))
    assert e.value.key == key and msg in str(e.value) and "\n" not in str(e.value)


def test_bad_environment_names_the_variable(tmp_path):
    with pytest.raises(ConfigError) as e:
        resolve(env={"RANKER_FETCH_RETRIES": "many"})
    assert str(e.value) == "RANKER_FETCH_RETRIES: expected an integer, got 'many'"
    with pytest.raises(ConfigError) as e:
        resolve(env={"RANKER_OFFLINE": "maybe"})
    assert str(e.value) == "RANKER_OFFLINE: expected 1 or 0 (true/false), got 'maybe'"
    for var in ("RANKER_FETCH_TIMEOUT", "RANKER_FETCH_DOWNLOAD_TIMEOUT", "RANKER_API_DELAY"):
        with pytest.raises(ConfigError) as e:
            resolve(env={var: "inf"})
        assert e.value.key.startswith("fetch.") and "finite number" in str(e.value)
    for var in ("RANKER_FETCH_TIMEOUT", "RANKER_FETCH_BACKOFF", "RANKER_API_DELAY"):
        with pytest.raises(ConfigError) as e:
            resolve(env={var: "99999999999999999999999"})
        assert e.value.key.startswith("fetch.") and "at most 86400" in str(e.value)
    # a blank RANKER_HOME or RANKER_MODELS_DIR is not set, as every blank variable is: it was the error
    # "home: empty; give a value or leave the key out", naming no variable and no file
    s = resolve(env={"RANKER_HOME": " ", "RANKER_MODELS_DIR": " "})
    assert (s.home, s.models_dir) == (default_home({}), default_models_dir({}))
    # a variable whose key ranker.toml made a plain value: the file's line is at fault, not a flag
    f = toml(tmp_path, "# fetch settings\nfetch = 3\n")
    with pytest.raises(ConfigError) as e:
        resolve(f, env={"RANKER_FETCH_TIMEOUT": "5"})
    assert str(e.value) == f"{f}:2: fetch must be a table ([fetch]) to take RANKER_FETCH_TIMEOUT"


def test_a_misspelt_variable_is_an_error_not_a_silent_no_op(tmp_path):
    """RANKER_OFLINE=1 was ignored without a word: the command opened the network it was told not to."""
    for var, meant in (("RANKER_OFLINE", "RANKER_OFFLINE"), ("ranker_db", "RANKER_DB"),
                       ("RANKER_FETCH_RETRY", "RANKER_FETCH_RETRIES")):
        with pytest.raises(ConfigError) as e:
            resolve(env={var: "1"})
        assert str(e.value) == f"{var}: not a variable ranker reads (a typo?); did you mean {meant}?"
    for var in ("RANKER_REQUIRE_ALL", "RANKER_SCREENSHOT", "RANKER_X", "RANKER_OFLINE_NOTES_DIR"):
        assert resolve(env={var: "1"}).offline is False          # ranker's others, and names no typo makes
    assert resolve(env={"RANKER_OFLINE": ""}).offline is False      # set empty: as good as unset
    r = ranker("score", "--papers", DAYS / "2025-05-15" / "listing.jsonl", "--out", tmp_path / "o.jsonl",
               "--backend", "fake", "--model", "tiny", env={"RANKER_OFLINE": "1"})
    assert r.returncode == 1 and r.stderr == ("error: RANKER_OFLINE: not a variable ranker reads (a typo?); did you "
                                              "mean RANKER_OFFLINE?\n")
    assert not (tmp_path / "o.jsonl").exists()


def test_backend_tables_and_the_older_engine_args(tmp_path):
    f = toml(tmp_path, "[scoring]\nbackend = 'vllm'\nengine_args = { tensor_parallel_size = 2 }\n"
                       "[scoring.vllm]\ndtype = 'bfloat16'\n[scoring.openai]\nconcurrency = 16\n")
    s = resolve(f, env={"OPENAI_BASE_URL": "http://127.0.0.1:8000/v1"})
    assert s.scoring.options == {"vllm": {"dtype": "bfloat16", "engine_args": {"tensor_parallel_size": 2}},
                                 "openai": {"concurrency": 16, "base_url": "http://127.0.0.1:8000/v1"}}
    s = resolve(f, flags={"backend": "transformers", "backend_option": ["batch_size=4", "dtype=float16"]}, env={})
    assert s.scoring.options["transformers"] == {"batch_size": 4, "dtype": "float16"}
    assert s.origins["scoring.transformers.batch_size"].name == "backend_option"


def test_backend_option_values_read_as_toml():
    assert parse_option("concurrency=16") == ("concurrency", 16)
    assert parse_option("timeout=2.5") == ("timeout", 2.5)
    assert parse_option("probe=false") == ("probe", False)
    assert parse_option("dtype=bfloat16") == ("dtype", "bfloat16")
    assert parse_option("engine_args={ tensor_parallel_size = 2 }") == ("engine_args", {"tensor_parallel_size": 2})
    with pytest.raises(ConfigError):
        parse_option("no equals sign")


def test_the_api_key_is_never_dumped_or_shown(in_process_command):
    s = resolve(env={"OPENAI_API_KEY": "sk-SECRET"})
    assert s.openai_api_key.get_secret_value() == "sk-SECRET"
    assert "sk-SECRET" not in repr(s) and "sk-SECRET" not in json.dumps(s.public())


# --------------------------------------------------------------------------- as the CLI words them
def test_cli_names_a_flag_a_variable_or_the_file(tmp_path):
    papers = DAYS / "2025-05-15" / "listing.jsonl"
    r = ranker("prefilter", "--papers", papers, "--out", tmp_path / "o.jsonl", "--keep", "1.5")
    # a range in ranker's words, as a whole, and the value given as typed: pydantic's "Input should be less than
    # or equal to 1" named one bound (and "--keep 2" came back as "got 2.0")
    assert r.returncode == 1 and r.stderr == "error: --keep: must be more than 0 and at most 1, got 1.5\n"
    r = ranker("prefilter", "--papers", papers, "--out", tmp_path / "o.jsonl", "--keep", "2")
    assert r.returncode == 1 and r.stderr == "error: --keep: must be more than 0 and at most 1, got 2\n"
    r = ranker("prefilter", "--papers", papers, "--out", tmp_path / "o.jsonl", "--top", "0")
    assert r.returncode == 1 and r.stderr == "error: --top: must be at least 1, got 0\n"
    r = ranker("fetch", "--from", papers, "--out", tmp_path / "o.jsonl", env={"RANKER_FETCH_RETRIES": "-1"})
    assert r.returncode == 1 and r.stderr == "error: RANKER_FETCH_RETRIES: must be at least 0, got -1\n"
    r = ranker("run", "--papers", papers, "--out", tmp_path / "d", "--backend", "openai",
               "--backend-option", "concurrency=0")
    assert r.returncode == 1 and r.stderr == "error: --backend-option concurrency: must be at least 1, got 0\n"
    f = toml(tmp_path, '[prefilter]\nmin_keep = "5"\n')
    r = ranker("prefilter", "--papers", papers, "--out", tmp_path / "o.jsonl", "--config", f)
    assert r.returncode == 1 and r.stderr == f"error: {f}:2: prefilter.min_keep: Input should be a valid integer\n"
    assert not (tmp_path / "o.jsonl").exists()


# --------------------------------------------------------------------------- the backends' own options
def test_options_reach_the_backend_typed():
    from ranker.backends import make_backend
    from ranker.backends.openai_backend import OpenAIBackend
    from ranker.backends.vllm_backend import VLLMBackend
    s = resolve(flags={"backend": "fake", "backend_option": ["garbage=['2501.00001']"]}, env={})
    assert make_backend(s).garbage == {"2501.00001"}
    be = OpenAIBackend("m", {"concurrency": 3, "retries": 0}, base_url="http://127.0.0.1:9/v1", timeout=2.0)
    assert (be.concurrency, be.retries, be.base_url) == (3, 0, "http://127.0.0.1:9/v1")
    be.close()
    with pytest.raises(ConfigError) as e:           # refused before any engine is imported or model resolved
        VLLMBackend("smollm2-135m", max_model_len=4096, tensor_paralel_size=2)
    assert e.value.key == "scoring.vllm.tensor_paralel_size"


def test_cli_words_a_backend_option_by_its_flag(tmp_path):
    papers = DAYS / "2025-05-15" / "listing.jsonl"
    r = ranker("score", "--papers", papers, "--out", tmp_path / "s.jsonl", "--backend", "fake",
               "--backend-option", "speed=11")
    assert r.returncode == 1 and r.stderr == "error: --backend-option speed: unknown option\n"
    f = toml(tmp_path, "[scoring.fake]\nflaky = 3\n")
    r = ranker("score", "--papers", papers, "--out", tmp_path / "s.jsonl", "--backend", "fake", "--config", f)
    assert r.returncode == 1 and r.stderr.startswith(f"error: {f}:2: scoring.fake.flaky: ")
    assert not (tmp_path / "s.jsonl").exists()


def test_a_key_inside_engine_args_is_named_where_engine_args_was_given(tmp_path):
    """An error about one of engine_args' own keys (its tokenizer not there, a typo) named the bare key
    scoring.vllm.engine_args.tokenizer, neither the flag nor the file's line that gave it."""
    papers, out = DAYS / "2025-05-15" / "listing.jsonl", tmp_path / "s.jsonl"
    gone = tmp_path / "no-tokenizer"
    r = ranker("score", "--papers", papers, "--out", out, "--backend", "vllm",
               "--backend-option", f"engine_args={{ tokenizer = '{gone}' }}")
    assert r.returncode == 1 and r.stderr == (f"error: --backend-option engine_args.tokenizer {gone}: "
                                              "no such tokenizer folder\n"), r.stderr
    f = toml(tmp_path, f"[scoring]\nbackend = 'vllm'\n[scoring.vllm]\nseed = 1\nengine_args = {{ tokenizer = '{gone}' }}\n")
    r = ranker("score", "--papers", papers, "--out", out, "--config", f)
    assert r.returncode == 1 and r.stderr == (f"error: {f}:5: scoring.vllm.engine_args.tokenizer {gone}: "
                                              "no such tokenizer folder\n"), r.stderr
    assert not out.exists()


@pytest.mark.parametrize("option", ["timeout=inf", "total_timeout=inf", "connect_timeout=inf", "backoff=inf",
                                    "timeout=1e23", "connect_timeout=1e23", "max_backoff=1e23"])
def test_an_openai_wait_of_inf_is_refused_as_fetch_s_are(option):
    """`[scoring.openai] timeout = inf` was taken: every request then failed on the socket's timeout overflowing
    (or, for total_timeout, a stuck server was waited on for ever)."""
    from ranker.backends import make_backend
    s = resolve(flags={"backend": "openai", "model": "m", "backend_option": [option]}, env={})
    with pytest.raises(ConfigError) as e:
        make_backend(s)
    assert e.value.key == "scoring.openai." + option.split("=")[0]


def test_a_prompt_folder_under_the_home_folder_is_found(tmp_path, monkeypatch):
    # no shell expands "~" in ranker.toml: the settings do, so the prompts and the authors.txt beside them load
    monkeypatch.setenv("HOME", str(tmp_path))
    from ranker.prompts import DEFAULT_DIR, load_prompts
    from ranker.prefilter.rules import load_rules
    mine = tmp_path / "my-prompts"
    mine.mkdir()
    for f in DEFAULT_DIR.iterdir():
        (mine / f.name).write_bytes(f.read_bytes())
    (mine / "authors.txt").write_text("Jane Doe\n")
    s = resolve(toml(tmp_path, "[scoring]\nprompts = '~/my-prompts'\n"), env={})
    assert s.scoring.prompts == str(mine)
    assert load_prompts(s.scoring.prompts).source == str(mine)
    assert load_rules(s.scoring.prompts).pins


def test_a_path_under_the_home_folder_is_expanded_wherever_it_is_given(tmp_path, monkeypatch):
    # ranker.toml, RANKER_DB in a systemd unit and `--db=~/x` reach ranker with the "~" unexpanded: the
    # database must not land in a folder literally called "~" under the working directory
    monkeypatch.setenv("HOME", str(tmp_path))
    f = toml(tmp_path, "home = '~/h'\ndb = '~/r.sqlite3'\nmodels_dir = '~/m'\n"
                       "[prefilter]\ncalibration = '~/calib.json'\n[digest]\nauthors = '~/authors.txt'\n")
    s = resolve(f, env={})
    assert (s.home, s.db_path, s.models_dir) == (tmp_path / "h", tmp_path / "r.sqlite3", tmp_path / "m")
    assert s.prefilter.calibration == str(tmp_path / "calib.json")
    # (the pinned authors' "~" was expanded only where the file was read: `ranker config` showed the setting
    # as <working folder>/~/authors.txt, a ranker.toml that did not read back to the same settings)
    assert s.digest.authors == str(tmp_path / "authors.txt")
    assert dict((e.key, e.value) for e in effective(s))["digest.authors"] == str(tmp_path / "authors.txt")
    assert resolve(env={"RANKER_DB": "~/e.sqlite3"}).db_path == tmp_path / "e.sqlite3"
    assert resolve(flags={"db": "~/f.sqlite3", "calibration": "~/c.json"}, env={}).db_path == tmp_path / "f.sqlite3"


_NO_USER = "~nosuch-ranker-user"


def test_a_home_of_a_user_that_is_not_there_names_where_it_was_given(tmp_path):
    """`home = "~nosuch/x"`, RANKER_HOME='~nosuch', `--db '~nosuch/db'`: pathlib's RuntimeError ended the command
    as 'unexpected failure: Could not determine home directory', naming nothing given."""
    bad = f"cannot expand '{_NO_USER}': no such user"
    for text, env, flags, key, where in (
            (f"home = '{_NO_USER}/x'\n", {}, {}, "home", None),
            (f"[prefilter]\ncalibration = '{_NO_USER}/c.json'\n", {}, {}, "prefilter.calibration", None),
            ("", {"RANKER_HOME": _NO_USER}, {}, "home", None),
            ("", {"RANKER_MODELS_DIR": _NO_USER}, {}, "models_dir", None),
            ("", {"RANKER_DB": f"{_NO_USER}/db"}, {}, "db", None),
            ("", {}, {"db": f"{_NO_USER}/db"}, "db", None)):
        with pytest.raises(ConfigError) as e:
            resolve(toml(tmp_path, text), env=env, flags=flags)
        assert (e.value.message, e.value.key, e.value.where) == (bad, key, where), text or env or flags
    home, elsewhere = {"RANKER_HOME": tmp_path / "h"}, tmp_path / "elsewhere"     # a folder with no ranker.toml
    elsewhere.mkdir()
    f = toml(tmp_path, f"home = '{_NO_USER}/x'\n")
    for args, env, line in (
            (["--config", f], home, f"error: {f}:1: home: {bad}"),
            ([], {"RANKER_HOME": _NO_USER}, f"error: RANKER_HOME: {bad}"),
            (["--db", f"{_NO_USER}/db"], home, f"error: --db: {bad}, got '{_NO_USER}/db'")):
        r = ranker("labels", "list", *args, env=env, cwd=elsewhere)
        assert r.returncode == 1 and r.stderr.splitlines() == [line], r.stderr


def test_a_home_that_is_a_file_is_said_so_by_the_commands_that_use_it(tmp_path):
    """RANKER_HOME naming a file: `labels list` and `site` said "nothing to do" of the store inside it (exit 0),
    `serve` named the database's folder; one line naming the variable now, from where the home is resolved."""
    homefile = tmp_path / "homefile"
    homefile.write_text("x\n")
    for home, said in ((homefile, f"{homefile} is a file"),
                       (homefile / "sub", f"{homefile}, above {homefile / 'sub'}, is a file")):
        with pytest.raises(ConfigError) as e:
            resolve(env={"RANKER_HOME": str(home)})
        assert e.value.key == "home" and e.value.message.startswith(said), e.value.message
        for args in (["labels", "list"], ["site", "--out", tmp_path / "site"], ["serve", "--port", "0"],
                     ["calibrate", "--out", tmp_path / "c.json"]):
            r = ranker(*args, env={"RANKER_HOME": home}, cwd=tmp_path)
            assert r.returncode == 1 and r.stderr.splitlines() == [
                f"error: RANKER_HOME: {said}; give a folder (it is made if missing)"], (args, r.stderr)
    f = toml(tmp_path, f"home = '{homefile}'\n")
    with pytest.raises(ConfigError) as e:
        resolve(f, env={})
    assert e.value.key == "home"
    assert resolve(env={"RANKER_HOME": str(tmp_path / "new" / "h")}).home == tmp_path / "new" / "h"   # missing: fine
    assert not (tmp_path / "site").exists() and homefile.read_text() == "x\n"


def test_a_home_that_is_a_link_to_nothing_is_said_so(tmp_path):
    """RANKER_HOME a link to a drive not mounted (or a loop of links): `p.exists()` is False for it, so the check
    went on to its parent, a folder, and `labels list` said "nothing to do", `serve` "cannot create the database's
    folder ...: file exists"."""
    dangling, loop = tmp_path / "dangling", tmp_path / "loop"
    dangling.symlink_to(tmp_path / "nowhere")
    loop.symlink_to(loop)
    for home, said in ((dangling, f"{dangling} is a link to {tmp_path / 'nowhere'}, which is not there"),
                       (loop, f"{loop} is a link to {loop}, which is not there"),
                       (dangling / "h", f"{dangling}, above {dangling / 'h'}, is a link to {tmp_path / 'nowhere'}")):
        with pytest.raises(ConfigError) as e:
            resolve(env={"RANKER_HOME": str(home)})
        assert e.value.key == "home" and e.value.message.startswith(said), e.value.message
    for args in (["labels", "list"], ["serve", "--port", "0"]):
        r = ranker(*args, env={"RANKER_HOME": dangling}, cwd=tmp_path)
        assert r.returncode == 1 and r.stderr.splitlines() == [
            f"error: RANKER_HOME: {dangling} is a link to {tmp_path / 'nowhere'}, which is not there; give a folder "
            "(it is made if missing)"], (args, r.stderr)
    assert not (tmp_path / "nowhere").exists()
    linked = tmp_path / "linked"                 # a link to a folder is a folder
    (tmp_path / "real").mkdir()
    linked.symlink_to(tmp_path / "real")
    assert resolve(env={"RANKER_HOME": str(linked)}).home == linked


@pytest.mark.parametrize("flag", ["keep", "recall"])
def test_a_fraction_that_is_not_a_number_is_said_so(flag):
    # `--keep nan` passes every bound check a comparison makes; "less than or equal to 1" would be a riddle
    with pytest.raises(ConfigError) as e:
        resolve(flags={flag: float("nan")}, env={})
    assert e.value.key == f"prefilter.{flag}" and "finite number" in str(e.value)


@pytest.mark.parametrize("text,key", [
    ("[scoring]\noptions = 3\n", "scoring.options"),
    ("[scoring.options]\nvllm = 3\n", "scoring.vllm"),
])
def test_a_malformed_options_table_is_a_config_error(tmp_path, text, key):
    # the field that holds the [scoring.<backend>] tables: a plain value there is a bad setting, not a crash
    with pytest.raises(ConfigError) as e:
        resolve(toml(tmp_path, text), env={})
    assert e.value.key == key and "valid dictionary" in str(e.value)


def test_a_variable_whose_table_the_file_made_a_value_names_the_whole_key(tmp_path):
    f = toml(tmp_path, "[scoring]\nbackend = 'openai'\nopenai = 3\n")
    with pytest.raises(ConfigError) as e:
        resolve(f, env={"OPENAI_BASE_URL": "http://127.0.0.1:8000/v1"})
    assert str(e.value) == f"{f}:3: scoring.openai must be a table ([scoring.openai]) to take OPENAI_BASE_URL"


def test_a_flag_whose_table_the_file_made_a_value_names_the_files_line(tmp_path):
    # as for a variable: the file's entry is at fault, not the flag, which the CLI names as typed
    f = toml(tmp_path, "# the scoring defaults\nscoring = 3\n")
    with pytest.raises(ConfigError) as e:
        resolve(f, flags={"backend": "fake"}, env={})
    assert str(e.value) == f"{f}:2: scoring must be a table ([scoring]) to take scoring.backend"
    r = ranker("score", "--papers", DAYS / "2025-05-15" / "listing.jsonl", "--out", tmp_path / "o.jsonl",
               "--config", f, "--backend", "fake", "--model", "tiny")
    assert r.returncode == 1 and r.stderr == f"error: {f}:2: scoring must be a table ([scoring]) to take --backend\n"
    assert not (tmp_path / "o.jsonl").exists()


def test_a_category_or_day_with_a_line_break_is_not_one():
    """The validating patterns end at the text's end (\\Z): "$" also matched before a final line break, so
    "cs.LG\n" passed as a category (and matched no paper) and "2025-05-15\n" as a label's day."""
    from ranker.records import category_problem
    from ranker.web.views import DAY_RE, MONTH_RE
    assert category_problem("cs.LG") is None and category_problem("cs.LG\n") is not None
    assert DAY_RE.match("2025-05-15") and not DAY_RE.match("2025-05-15\n")
    assert MONTH_RE.match("2025-05") and not MONTH_RE.match("2025-05\n")


@pytest.mark.parametrize("cat,problem", [
    ("LG", "'LG' is not an arXiv category like cs.LG"), ("AI", "'AI' is not an arXiv category like cs.LG"),
    ("Foo.bar", "'Foo.bar' is not an arXiv category like cs.LG"),
    ("HEP-TH", "'HEP-TH' is not an arXiv category; did you mean 'hep-th'?"),
    ("Quant-Ph", "'Quant-Ph' is not an arXiv category; did you mean 'quant-ph'?"),
    ("cs.lg", "'cs.lg' is not an arXiv category; did you mean 'cs.LG'?"),
])
def test_a_category_in_the_wrong_case_is_answered_only_with_one_arxiv_has(cat, problem):
    """`--category LG` was answered "did you mean 'lg'?": 'lg' passes the check (an archive's name, as hep-th
    is), matches no paper, and the daily run says "nothing to do" every day. Lower case is offered only for an
    archive arXiv has; another name is said to be none, with an example."""
    from ranker.records import category_problem
    assert category_problem(cat) == problem


@pytest.mark.parametrize("cat,problem", [
    ("cs.LGG", "'cs.LGG' is not an arXiv category; did you mean 'cs.LG'?"),
    ("cs.AIR", "'cs.AIR' is not an arXiv category; did you mean 'cs.AI', 'cs.AR' or 'cs.IR'?"),
    ("cs.CLG", "'cs.CLG' is not an arXiv category; did you mean 'cs.CG', 'cs.CL' or 'cs.LG'?"),
    ("stat.MLE", "'stat.MLE' is not an arXiv category; did you mean 'stat.ME' or 'stat.ML'?"),
])
def test_a_stray_key_names_every_class_it_may_be(cat, problem):
    """A known class with a key more names each class dropping one key gives: 'cs.AIR' was answered 'cs.IR'
    only (the first found), though cs.AI and cs.AR fit as well, and the user's was likely another."""
    from ranker.records import category_problem
    assert category_problem(cat) == problem


@pytest.mark.parametrize("cat", ["lg", "ai", "xx.LG", "foo.bar", "csx.LG", "lg.LG"])
def test_a_name_whose_archive_arxiv_has_not_is_no_category(cat):
    """`--category lg` (or `xx.LG`) has a category's shape and passed, then matched no paper: the daily run said
    "nothing to do" every day. The part before any dot must be one of arXiv's archives."""
    from ranker.records import category_problem
    assert category_problem(cat) == f"{cat!r} is not an arXiv category like cs.LG"


@pytest.mark.parametrize("cat", ["cs", "math", "stat", "eess", "econ", "q-bio", "q-fin", "nlin", "astro-ph",
                                 "physics", "cond-mat", "cs.LG", "math.OC", "stat.ML", "q-bio.NC", "eess.SP",
                                 "physics.comp-ph", "cond-mat.soft", "astro-ph.CO", "hep-th", "quant-ph", "gr-qc",
                                 "math-ph", "nucl-th", "cmp-lg", "chao-dyn", "supr-con", "solv-int"])
def test_every_archive_and_its_categories_are_categories(cat):
    from ranker.records import category_problem
    assert category_problem(cat) is None


@pytest.mark.parametrize("cat, means", [("cs.LGG", "cs.LG"), ("cs.lgg", "cs.LG"), ("cs.AII", "cs.AI"),
                                        ("math.OCC", "math.OC"), ("cond-mat.sofft", "cond-mat.soft"),
                                        ("physics.opticss", "physics.optics")])
def test_a_known_class_with_a_stray_key_is_refused_with_it(cat, means):
    """`--category cs.LGG` passed (only its archive, cs, was checked), matched no paper, and every daily run said
    "nothing to do". A class arXiv has with one character more is that class mistyped: refused, naming it."""
    from ranker.records import category_problem
    assert category_problem(cat) == f"{cat!r} is not an arXiv category; did you mean {means!r}?"


@pytest.mark.parametrize("cat, close", [
    ("cs.XX", ""), ("cs.LX", "; did you mean 'cs.PL', 'cs.LO' or 'cs.LG'?"),
    ("physics.optic", "; did you mean 'physics.optics'?"), ("hep-th.XX", ""),
])
def test_a_class_arxiv_does_not_list_is_kept_with_a_note(cat, close):
    """`--category cs.XX`, a class arXiv's taxonomy lacks, is kept (arXiv adds classes) with category_note's line,
    which names the closest classes there are; a known class, or an archive alone, has none."""
    from ranker.records import category_note, category_problem
    assert category_problem(cat) is None
    assert category_note(cat) == (f"{cat!r} is no subject class of arXiv's taxonomy that ranker knows (a new "
                                  f"one?): no paper may match it{close}")
    for known in ("cs.LG", "stat.ML", "cond-mat.soft", "physics.comp-ph", "q-fin.ST", "cs", "hep-th", "astro-ph"):
        assert category_note(known) is None


def test_the_fixtures_papers_categories_are_categories():
    """Every category a paper of the test data (its days and arXiv fixtures) carries (and a user could copy) passes, but
    'na', a listing's stray entry that is no arXiv archive."""
    import glob
    from ranker.records import category_problem, valid_category
    seen = set()
    for f in glob.glob(str(DATA / "**" / "*.jsonl"), recursive=True):
        with open(f, encoding="utf-8") as fh:
            for line in fh:
                try:
                    d = json.loads(line)
                except ValueError:
                    continue
                if isinstance(d, dict) and isinstance(d.get("categories"), list):
                    seen.update(c for c in d["categories"] if isinstance(c, str) and valid_category(c))
    assert len(seen) > 20
    assert {c for c in seen if category_problem(c) is not None} <= {"na"}
    # and arXiv's taxonomy as ranker knows it lists each: no warning for a category a real paper carries
    from ranker.records import category_note
    assert {c for c in seen if c != "na" and category_note(c) is not None} == set()


def test_relative_paths_in_a_config_file_are_read_from_its_folder(tmp_path, monkeypatch):
    """`ranker ... --config ~/arxiv/ranker.toml` run from another folder (cron runs in $HOME): the file's
    `db = "ranker.sqlite3"` and `prompts = "prompts"` are the ones beside it. Read from the working folder, the
    prompts were not found there, and the database was a new empty one there (every paper scored again)."""
    import shutil
    import sqlite3
    from contextlib import closing

    from ranker.prompts import DEFAULT_DIR
    conf = tmp_path / "conf"
    shutil.copytree(DEFAULT_DIR, conf / "prompts")
    f = conf / "ranker.toml"
    f.write_text("db = 'ranker.sqlite3'\n[scoring]\nbackend = 'fake'\nmodel = 'tiny'\nprompts = 'prompts'\n")
    papers = DAYS / "2025-05-15" / "listing.jsonl"
    lines = []
    for where in ("one", "two"):
        cwd = tmp_path / where
        cwd.mkdir()
        r = ranker("score", "--papers", papers, "--out", "s.jsonl", "--config", f, cwd=cwd,
                   env={"RANKER_HOME": str(tmp_path / "home")})
        assert r.returncode == 0, r.stderr
        lines.append(r.stderr.splitlines()[-1])
        assert not (cwd / "ranker.sqlite3").exists() and (cwd / "s.jsonl").exists()    # a flag's: the cwd's
    n = len(papers.read_text().splitlines())
    assert f"({n} reused from the store, 0 new" in lines[1], lines
    with closing(sqlite3.connect(conf / "ranker.sqlite3")) as c:
        assert c.execute("SELECT COUNT(*) FROM scores").fetchone()[0] == n

    # models: a folder written as one (or there beside the file) is the file's; presets and ids stay names
    (conf / "weights" / "m").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(tmp_path))
    for written, meant in [("./weights/m", str(conf / "weights" / "m")), ("weights/m", str(conf / "weights" / "m")),
                           ("../x", str(conf / ".." / "x")),
                           ("smollm2-135m", "smollm2-135m"), ("Qwen/Qwen2.5-7B-Instruct", "Qwen/Qwen2.5-7B-Instruct")]:
        f.write_text(f"[scoring]\nmodel = '{written}'\n[prefilter]\nembedder = '{written}'\n")
        s = resolve(f, env={})
        assert s.scoring.model == s.prefilter.embedder == meant
    # the working folder's own ranker.toml (or one named there) keeps its paths as written
    monkeypatch.chdir(conf)
    f.write_text("db = 'x.sqlite3'\n[scoring]\nprompts = 'prompts'\n")
    for s in (resolve(env={}), resolve("ranker.toml", env={})):
        assert (str(s.db), s.scoring.prompts) == ("x.sqlite3", "prompts")
    # a flag or a variable is the working folder's
    monkeypatch.chdir(tmp_path)
    s = resolve(f, flags={"prompts": "p"}, env={"RANKER_DB": "e.sqlite3"})
    assert (str(s.db), s.scoring.prompts) == ("e.sqlite3", "p")


def test_path_engine_args_in_a_config_file_are_read_from_its_folder(tmp_path, monkeypatch):
    """`engine_args = { tokenizer = "tok" }` in a ranker.toml named by --config from another folder: the engine
    looked for ./tok in the working folder ("no such tokenizer folder"), while every other path of the file is
    read from its folder. A tokenizer that is not there beside the file stays a Hugging Face id."""
    from ranker.backends.vllm_backend import VLLMBackend
    conf, cwd = tmp_path / "conf", tmp_path / "cwd"
    (conf / "tok").mkdir(parents=True)
    (conf / "tok" / "tokenizer.json").write_text("{}")
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    for table in ("[scoring.vllm]", "[scoring]"):         # the older spelling, engine_args under [scoring]
        f = toml(conf, f"[scoring]\nbackend = 'vllm'\n{table if table != '[scoring]' else ''}\n"
                       "engine_args = { tokenizer = 'tok', download_dir = 'dl', hf_config_path = 'org/cfg', "
                       "generation_config = 'auto', quantization = 'awq' }\n")
        args = resolve(f, env={}).scoring.options["vllm"]["engine_args"]
        assert args == {"tokenizer": str(conf / "tok"), "download_dir": str(conf / "dl"),
                        "hf_config_path": "org/cfg", "generation_config": "auto", "quantization": "awq"}
        assert VLLMBackend.given_tokenizer({"engine_args": args}) == str((conf / "tok").resolve())
    f = toml(conf, "[scoring.vllm]\nengine_args = { tokenizer = './gone', hf_config_path = 'tok' }\n")
    args = resolve(f, env={}).scoring.options["vllm"]["engine_args"]
    assert args == {"tokenizer": str(conf / "gone"), "hf_config_path": str(conf / "tok")}
    # a flag's, and the working folder's own file's, are the working folder's
    s = resolve(f, flags={"backend_option": ["engine_args={ tokenizer = 'tok' }"]}, env={})
    assert s.scoring.options["vllm"]["engine_args"] == {"tokenizer": "tok"}
    monkeypatch.chdir(conf)
    assert resolve(env={}).scoring.options["vllm"]["engine_args"] == {"tokenizer": "./gone", "hf_config_path": "tok"}


def test_a_variable_in_a_path_engine_arg_is_expanded_as_in_every_other_path(tmp_path):
    """engine_args = { download_dir = "$SCRATCH/hf" } in a lab's ranker.toml was handed to vLLM as written (a
    folder named "$SCRATCH" beside the file), while `home = "$SCRATCH/ranker"` was expanded; an engine argument
    that names no path is passed as written, and a variable not set is said naming the file's line."""
    for table in ("[scoring.vllm]", ""):                  # and the older spelling, engine_args under [scoring]
        f = toml(tmp_path, f"[scoring]\nbackend = 'vllm'\n{table}\nengine_args = {{ download_dir = '$SCRATCH/hf', "
                           "tokenizer = '${SCRATCH}/tok', served_model_name = '$SCRATCH' }\n")
        args = resolve(f, env={"SCRATCH": "/scratch/me"}).scoring.options["vllm"]["engine_args"]
        assert args == {"download_dir": "/scratch/me/hf", "tokenizer": "/scratch/me/tok",
                        "served_model_name": "$SCRATCH"}
        with pytest.raises(ConfigError) as e:
            resolve(f, env={})
        assert str(e.value) == (f"{f}:4: scoring{'.vllm' if table else ''}.engine_args.download_dir: $SCRATCH is "
                                "not set in the environment (write $$ for a literal $)")


def test_a_tilde_in_a_path_engine_arg_is_the_home_and_an_unknown_user_is_no_crash(tmp_path, monkeypatch):
    """engine_args = { download_dir = "~nosuchuser/dl" } ended every command as "unexpected failure: Could not
    determine home directory" (pathlib's RuntimeError), and "~/dl" reached the engine as a folder named "~"."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    conf = tmp_path / "conf"
    conf.mkdir()
    f = toml(conf, "[scoring.vllm]\nengine_args = { download_dir = '~/dl', tokenizer = '~nosuchuserxyz/tok' }\n")
    args = resolve(f, env={}).scoring.options["vllm"]["engine_args"]
    assert args == {"download_dir": str(tmp_path / "home" / "dl"), "tokenizer": "~nosuchuserxyz/tok"}


def test_two_keep_rules_in_the_config_file_are_refused(tmp_path):
    """`keep = 0.3` and `top = 40` both in ranker.toml: `top` won and `keep` was dropped without a word (two such
    flags are refused); one rule given by a flag still replaces the file's, however many it names."""
    f = toml(tmp_path, "[prefilter]\nkeep = 0.3\nmin_keep = 5\ntop = 40\n")
    with pytest.raises(ConfigError) as e:
        resolve(f, env={})
    assert e.value.key == "prefilter.top" and "one of keep, top and recall, not keep and top" in str(e.value)
    s = resolve(f, flags={"recall": 0.9}, env={})
    assert (s.prefilter.keep, s.prefilter.top, s.prefilter.recall) == (None, None, 0.9)
    papers = DAYS / "2025-05-15" / "listing.jsonl"
    r = ranker("prefilter", "--papers", papers, "--out", tmp_path / "o.jsonl", "--config", f)
    assert r.returncode == 1 and r.stderr == (f"error: {f}:4: prefilter.top: give one of keep, top and recall, "
                                              "not keep and top\n")
    assert not (tmp_path / "o.jsonl").exists()


@pytest.mark.parametrize("text,key", [
    ("[scoring]\nprompts = ''\n", "scoring.prompts"),          # was: the bundled prompt set, without a word
    ("home = ' '\n", "home"),                                  # was: the working folder
    ("db = ''\n", "db"),                                       # was: "." (".: is a directory, not a database file")
    ("models_dir = ''\n", "models_dir"),
    ("[prefilter]\ncalibration = ''\n", "prefilter.calibration"),   # was: no calibration
    ("[digest]\nauthors = ''\n", "digest.authors"),            # was: no pins, authors.txt beside the prompts unread
    ("[scoring]\nmodel = ''\n", "scoring.model"),
    ("[prefilter]\nembedder = ''\n", "prefilter.embedder"),
    ("[fetch]\nrss_url = ''\n", "fetch.rss_url"),
    ("[fetch]\nannounce = []\n", "fetch.announce"),            # was: the default announce types
])
def test_an_empty_value_in_the_config_file_is_refused(tmp_path, text, key):
    """An empty text in ranker.toml is refused as an empty flag is, not taken for the default (or for ".")."""
    f = toml(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        resolve(f, env={})
    assert e.value.key == key and ("empty; give a value or leave the key out" in str(e.value)
                                   or "no announce type given" in str(e.value))


def test_the_cli_names_an_empty_value_of_the_config_file(tmp_path):
    f = toml(tmp_path, "[scoring]\nbackend = 'fake'\nprompts = ''\n")
    r = ranker("score", "--papers", DAYS / "2025-05-15" / "listing.jsonl", "--out", tmp_path / "s.jsonl",
               "--model", "tiny", "--config", f)
    assert r.returncode == 1 and r.stderr == f"error: {f}:3: scoring.prompts: empty; give a value or leave the key out\n"
    assert not (tmp_path / "s.jsonl").exists()


@pytest.mark.parametrize("text,line,key,msg", [
    ("home = 3\n", 1, "home", "expected a path, written as text"),
    ("# where the store is\ndb = true\n", 2, "db", "expected a path, written as text"),
    ("[digest]\nmin_novelty = 7\n[[prefilter]]\nkeep = 0.3\n", 3, "prefilter", "expected a table ([prefilter])"),
])
def test_a_value_of_the_wrong_kind_is_said_in_the_files_words(tmp_path, text, line, key, msg):
    """Pydantic's own wording named Python classes ("not a valid path for <class 'pathlib.Path'>", "instance of
    PrefilterSettings"), and an array of tables ([[prefilter]]) had no line."""
    f = toml(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        resolve(f, env={})
    assert e.value.key == key and str(e.value) == f"{key}: {msg}"
    r = ranker("score", "--papers", DAYS / "2025-05-15" / "listing.jsonl", "--out", tmp_path / "s.jsonl",
               "--backend", "fake", "--model", "tiny", "--config", f,
               env={"RANKER_HOME": "", "XDG_DATA_HOME": tmp_path / "data"})     # the file's home, not the test's
    assert r.returncode == 1 and r.stderr == f"error: {f}:{line}: {key}: {msg}\n"
    assert not (tmp_path / "s.jsonl").exists()


@pytest.mark.parametrize("text,args,env,line,key,msg", [
    ('[prefilter]\nkeep = "x"\n', ["--keep", "0.3"], {}, 2, "prefilter.keep", "Input should be a valid number"),
    ('[prefilter]\nkeep = "x"\n', ["--top", "3"], {}, 2, "prefilter.keep", "Input should be a valid number"),
    ("home = 3\n", [], {"RANKER_HOME": "{tmp}/home"}, 1, "home", "expected a path, written as text"),
    ("[scoring]\nbackend = 'vlm'\n", ["--backend", "openai"], {}, 2, "scoring.backend",
     "unknown backend 'vlm'; choose one of: fake, openai, transformers, vllm"),
    ("[scoring.vllm]\ndtype = 3\n", ["--backend-option", "dtype=bfloat16"], {}, 2, "scoring.vllm.dtype",
     "Input should be 'auto', 'half', 'float16', 'bfloat16', 'float' or 'float32'"),
])
def test_a_bad_value_of_the_config_file_is_said_whatever_goes_over_it(tmp_path, text, args, env, line, key, msg):
    """A value of ranker.toml that a flag or a variable replaced was never validated: `keep = "x"` under --keep,
    `home = 3` under RANKER_HOME passed until the day the cron line dropped the flag. It is said in the words it
    has when the file's value is the one used, and nothing is written."""
    f = toml(tmp_path, text)
    env = {k: v.format(tmp=tmp_path) for k, v in env.items()}
    said = f"error: {f}:{line}: {key}: {msg}\n"
    # (papers that are not there: should the settings pass, the run stops at once)
    run = ["run", "--papers", tmp_path / "none.jsonl", "--out", tmp_path / "out", "--offline", "--config", f]
    home = {"RANKER_HOME": "", "XDG_DATA_HOME": tmp_path / "data"}      # the file's home, not the test's
    r = ranker(*run, env=home)                      # the file's value used: the line to match
    assert r.returncode == 1 and r.stderr == said, r.stderr
    r = ranker(*run, *args, env={**home, **env})
    assert r.returncode == 1 and r.stderr == said, r.stderr
    assert not (tmp_path / "out").exists() and not list(tmp_path.rglob("*.sqlite3"))
    if key.startswith("scoring."):
        return                                      # the backends' options are checked by the CLI
    flags = {a.removeprefix("--"): float(v) if a == "--keep" else int(v) for a, v in zip(args[::2], args[1::2])}
    with pytest.raises(ConfigError) as e:
        resolve(f, flags=flags, env=env)
    assert str(e.value) == said.removeprefix("error: ").rstrip("\n")


def test_settings_built_in_python_refuse_a_bad_value_as_a_config_error_naming_its_key(tmp_path):
    """A program using ranker as a library builds its Settings without a config file; a bad value was pydantic's
    ValidationError (several lines and a URL), which `except RankerError` let through."""
    from ranker.errors import RankerError
    from ranker.settings import PrefilterSettings, ScoringSettings, Settings
    cases = [(lambda: Settings(home=tmp_path, prefilter={"keep": 2}), "prefilter.keep", "more than 0 and at most 1"),
             (lambda: PrefilterSettings(keep=2), "prefilter.keep", "must be more than 0 and at most 1, got 2"),
             (lambda: Settings(prefilter=PrefilterSettings(top=0)), "prefilter.top", "must be at least 1, got 0"),
             (lambda: ScoringSettings(backend="fake", batchsize=8), "scoring.batchsize", "unknown setting"),
             (lambda: Settings(scoring={"fake": 3}), "scoring.fake", "unknown setting"),
             (lambda: Settings(home=3), "home", "expected a path"),
             (lambda: Settings(digest=3), "digest", "expected a table ([digest])")]
    for build, key, words in cases:
        with pytest.raises(RankerError) as e:
            build()
        assert isinstance(e.value, ConfigError) and e.value.key == key and words in str(e.value)
        assert str(e.value).startswith(f"{key}: ") and "\n" not in str(e.value)
    s = Settings(home=tmp_path, prefilter=PrefilterSettings(keep=0.3), scoring={"backend": "fake"})
    assert (s.prefilter.keep, s.scoring.backend, s.db_path) == (0.3, "fake", tmp_path / "ranker.sqlite3")


def test_the_models_folder_follows_the_home_folder_the_file_names(tmp_path, monkeypatch):
    # an installed ranker (no checkout's models/): `home = "/data/lab"` in ranker.toml puts the prepared models in
    # /data/lab/models, as RANKER_HOME=/data/lab does; they were looked for (and prepared) in the platform's
    # user data folder instead, the file's home ignored
    import ranker.settings as settings
    from ranker.settings import Settings
    monkeypatch.setattr(settings, "REPO_ROOT", tmp_path / "no-checkout")
    f = toml(tmp_path, "home = 'lab'\n")
    assert resolve(f, env={}).models_dir == tmp_path / "lab" / "models"
    assert resolve(f, env={"RANKER_HOME": str(tmp_path / "env")}).models_dir == tmp_path / "env" / "models"
    assert resolve(f, env={"RANKER_MODELS_DIR": str(tmp_path / "m")}).models_dir == tmp_path / "m"
    assert Settings(home=tmp_path / "py").models_dir == tmp_path / "py" / "models"      # built in Python too


def test_a_variable_in_a_path_of_the_config_file_is_expanded(tmp_path):
    # `home = "$SCRATCH/ranker"` in a lab's shared ranker.toml: no shell reads the file, and the database went
    # to a folder literally named "$SCRATCH" beside it; a variable that is not set is said, naming file and line
    f = toml(tmp_path, "home = '$SCRATCH/lab'\n[scoring]\nprompts = '${SCRATCH}/p'\nmodel = '$SCRATCH/m'\n"
                       "[digest]\nauthors = 'a$b.txt'\n")
    s = resolve(f, env={"SCRATCH": str(tmp_path / "s"), "b": "B"})
    assert (s.home, s.scoring.prompts, s.scoring.model) == (
        tmp_path / "s" / "lab", str(tmp_path / "s" / "p"), str(tmp_path / "s" / "m"))
    assert s.digest.authors == str(tmp_path / "aB.txt")
    with pytest.raises(ConfigError) as e:
        resolve(f, env={"b": "B"})
    assert str(e.value) == f"{f}:1: home: $SCRATCH is not set in the environment (write $$ for a literal $)"
    line = ranker("prefilter", "--config", f, "--papers", DAYS / "2025-05-15" / "listing.jsonl", "--out",
                  tmp_path / "o.jsonl", env={"SCRATCH": "", "b": "B"}, cwd=tmp_path)
    assert line.returncode == 1 and line.stderr.strip() == f"error: {f}:1: home: $SCRATCH is empty in the environment"


def test_a_literal_dollar_in_a_path_of_the_config_file_is_written_twice(tmp_path):
    """`home = "/data/pay$ment"` could no longer be written once $NAME was expanded ('$ment is not set'), and the
    error did not say how: $$ is one $, as in make and compose, and the error says so. A variable set but empty
    is said to be empty, not 'not set' (the user who set it looked for a typo); a $ before no name stays."""
    f = toml(tmp_path, "home = 'pay$$ment/$$$$x/$$${B}$'\n")
    assert resolve(f, env={"B": "b"}).home == tmp_path / "pay$ment" / "$$x" / "$b$"
    with pytest.raises(ConfigError) as e:
        resolve(f, env={"B": " "})
    assert str(e.value) == f"{f}:1: home: $B is empty in the environment"
    with pytest.raises(ConfigError) as e:
        resolve(toml(tmp_path, "home = '/data/pay$ment'\n"), env={})
    assert str(e.value) == f"{f}:1: home: $ment is not set in the environment (write $$ for a literal $)"


def test_debug_in_the_config_file_shows_the_traceback_as_ranker_debug_does(tmp_path):
    # ranker.toml's `debug = true` was taken (and made the command verbose) but a failure still showed one line
    f = toml(tmp_path, "debug = true\n")
    args = ("prefilter", "--config", f, "--papers", tmp_path / "none.jsonl", "--out", tmp_path / "o.jsonl")
    r = ranker(*args, cwd=tmp_path)
    assert r.returncode == 1 and "Traceback" in r.stderr and "file not found" in r.stderr
    r = ranker(*args, env={"RANKER_DEBUG": "0"}, cwd=tmp_path)      # the variable goes over the file
    assert r.returncode == 1 and r.stderr.strip().splitlines() == [
        f"error: --papers {tmp_path / 'none.jsonl'}: file not found"]


@pytest.mark.parametrize("text,line", [
    ("[prefilte]\nkeep = 0.3\n", "prefilte: unknown setting; did you mean prefilter?"),
    ("ofline = true\n", "ofline: unknown setting; did you mean offline?"),
    ("[scoring]\nmodle = 'x'\n", "scoring.modle: unknown setting; did you mean model?"),
    ("[digest]\nmin_relevence = 6\n", "digest.min_relevence: unknown setting; did you mean min_relevance?"),
    ("[scoring.vllm]\ndtyp = 'float16'\n", "scoring.vllm.dtyp: unknown option; did you mean dtype?"),
    ("[prefilter]\nzzz = 1\n", "prefilter.zzz: unknown setting"),        # nothing near: no guess
])
def test_a_misspelt_key_names_the_one_meant(tmp_path, text, line):
    # as a misspelt flag or RANKER_ variable does: `ofline = true` said only "unknown setting"
    from ranker.backends import check_options
    with pytest.raises(ConfigError) as e:
        check_options(resolve(toml(tmp_path, text), env={}))
    assert str(e.value) == line


def test_the_files_prompts_authors_and_exclusions_are_taken_back_to_the_defaults_for_one_run(tmp_path):
    # a lab's ranker.toml names its prompts, pinned authors and exclusions: a run with the bundled prompts, or
    # without the lab's exclusions, needed another config file, no flag undid them
    f = toml(tmp_path, "[scoring]\nprompts = 'p'\n[prefilter]\nexclude = ['quantum']\nmin_keep = 5\n"
                       "[digest]\nauthors = 'a.txt'\n")
    s = resolve(f, env={})
    assert (s.scoring.prompts, s.digest.authors, s.prefilter.exclude) == (str(tmp_path / "p"),
                                                                           str(tmp_path / "a.txt"), ["quantum"])
    s = resolve(f, flags={"default_prompts": True, "default_authors": True, "default_exclude": True}, env={})
    assert (s.scoring.prompts, s.digest.authors, s.prefilter.exclude, s.prefilter.min_keep) == (None, None, [], 5)
    assert s.origins["scoring.prompts"].name == "default_prompts"
    s = resolve(f, flags={"default_exclude": True}, env={})                  # each on its own
    assert (s.scoring.prompts, s.digest.authors, s.prefilter.exclude) == (str(tmp_path / "p"),
                                                                           str(tmp_path / "a.txt"), [])
    r = ranker("score", "--config", f, "--papers", DAYS / "2025-05-15" / "listing.jsonl", "--out",
               tmp_path / "o.jsonl", "--default-prompts", "--prompts", tmp_path / "q", cwd=tmp_path)
    assert (r.returncode, r.stderr) == (1, "error: --default-prompts: given with --prompts; give one of them\n")


def test_no_calibration_takes_the_files_calibration_back_to_none(tmp_path):
    # a lab's ranker.toml names a calibration: one zero-shot run needed another config file, no flag undid it
    f = toml(tmp_path, "[prefilter]\ncalibration = 'calib.json'\nmin_keep = 5\n")
    assert resolve(f, env={}).prefilter.calibration == str(tmp_path / "calib.json")
    s = resolve(f, flags={"no_calibration": True}, env={})
    assert (s.prefilter.calibration, s.prefilter.min_keep) == (None, 5)
    assert s.origins["prefilter.calibration"].name == "no_calibration"
    assert resolve(f, flags={"no_calibration": None}, env={}).prefilter.calibration == str(tmp_path / "calib.json")
    r = ranker("prefilter", "--config", f, "--papers", DAYS / "2025-05-15" / "listing.jsonl", "--out",
               tmp_path / "o.jsonl", "--no-calibration", "--calibration", tmp_path / "c.json", cwd=tmp_path)
    assert (r.returncode, r.stderr) == (1, "error: --no-calibration: given with --calibration; give one of them\n")
    r = ranker("config", "--config", f, cwd=tmp_path)        # (config itself takes no --no-calibration)
    assert f'calibration = "{tmp_path / "calib.json"}"' in r.stdout


@pytest.mark.parametrize("value,problem", [('""', "empty; give a value or leave the key out"),
                                           ('"x"', "Input should be a valid dictionary")])
def test_a_bad_engine_args_of_the_older_spelling_names_its_line(tmp_path, value, problem):
    """`engine_args` directly under [scoring] is the vllm backend's: a bad one was said as
    'scoring.vllm.engine_args: ...', naming neither the file nor its line (the newer spelling's names both)."""
    f = toml(tmp_path, f"[scoring]\nbackend = 'vllm'\nengine_args = {value}\n")
    r = ranker("config", "--config", f, "--offline", env={"RANKER_HOME": tmp_path / "home"}, timeout=120)
    assert r.returncode == 1 and r.stderr == f"error: {f}:3: scoring.vllm.engine_args: {problem}\n", r.stderr


def test_a_list_variable_is_read_as_its_flag_is_spaces_and_empty_items_dropped(tmp_path):
    """RANKER_TRUSTED_PROXIES="10.0.0.5, 10.0.0.0/30," (a space after a comma, a trailing comma) is the two
    proxies, as --trusted-proxies reads the same text: the empty item is no proxy, nor an error."""
    s = resolve(env={"RANKER_TRUSTED_PROXIES": "10.0.0.5, 10.0.0.0/30,", "RANKER_HOME": str(tmp_path)})
    assert s.serve.trusted_proxies == ["10.0.0.5", "10.0.0.0/30"]


def test_an_api_key_read_from_an_env_file_written_on_windows_loses_its_line_end(tmp_path, in_process_command):
    """OPENAI_API_KEY exported from an env-file with CRLF line ends ends in '\r', which no HTTP header may carry:
    every request failed as 'connection failed'. The key is taken stripped, as every variable is."""
    s = resolve(env={"OPENAI_API_KEY": " sk-test-123\r\n", "RANKER_HOME": str(tmp_path)})
    key = s.openai_api_key
    assert key.get_secret_value() == "sk-test-123"
