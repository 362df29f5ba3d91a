"""ranker outside a UTF-8 terminal: an ASCII locale with Python's UTF-8 mode off (an old server's LC_ALL=C, where
argv's and file names' non-ASCII bytes reach Python as surrogate escapes), as real subprocesses; arguments
given and output read as bytes, as a terminal sends and shows them."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from ranker.records import Paper
from ranker.store import Store

from conftest import DAYS, RANKER

ASCII = {"LC_ALL": "C", "PYTHONCOERCECLOCALE": "0", "PYTHONUTF8": "0"}
UTF8 = {"LC_ALL": "C.UTF-8"}


def run(*args, locale: dict = ASCII, cwd=None) -> subprocess.CompletedProcess:
    """`ranker ARGS` under `locale` (every other LC_*/LANG/PYTHONIOENCODING of this environment dropped), each
    argument passed as the bytes a UTF-8 terminal sends (bytes as they are); stdout and stderr as bytes."""
    return _run([*RANKER, *args], locale, cwd)


def python(code: str, *args, locale: dict = ASCII, cwd=None) -> subprocess.CompletedProcess:
    """`python -c CODE ARGS` as `run` runs ranker: the library under `locale`."""
    return _run([sys.executable, "-c", code, *args], locale, cwd)


def _run(argv: list, locale: dict, cwd) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LC_", "LANG", "PYTHONIOENCODING", "PYTHONUTF8", "PYTHONCOERCECLOCALE",
                                "RANKER_DEBUG"))}
    argv = [a if isinstance(a, bytes) else str(a).encode("utf-8") for a in argv]
    return subprocess.run(argv, capture_output=True, env={**env, **locale}, cwd=cwd, timeout=300)


def test_the_ascii_setting_is_what_it_claims():
    """The setting these tests stand for: ASCII streams, argv as surrogate escapes (and a plain LC_ALL=C, as cron
    or a systemd unit without LANG gives, coerced to UTF-8 by Python itself)."""
    code = "import sys; print(sys.stdout.encoding, ascii(sys.argv[1]))"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LC_", "LANG", "PYTHON"))}
    r = subprocess.run([sys.executable, "-c", code, "ö".encode()], capture_output=True, text=True,
                       env={**env, **ASCII})
    assert r.stdout.split() == ["ascii", "'\\udcc3\\udcb6'"]
    r = subprocess.run([sys.executable, "-c", code, "ö".encode()], capture_output=True, text=True,
                       env={**env, "LC_ALL": "C"})
    assert r.stdout.split() == ["utf-8", "'\\xf6'"]


def stock(db, key: str = "minilm"):
    """`db` with one day's first 20 papers and random 384-d vectors under the embedder `key`; their ids."""
    import json
    rows = [json.loads(line) for line in (DAYS / "2025-05-15" / "listing.jsonl").read_text().splitlines()[:20]]
    papers = [Paper.from_dict(r) for r in rows]
    v = np.random.default_rng(0).normal(size=(len(papers), 384)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    with Store(db) as s:
        s.add_papers(papers)
        s.put_embeddings(((p.id, "h", v[i]) for i, p in enumerate(papers)), key)
    return [p.id for p in papers]


@pytest.fixture
def stocked(tmp_path):
    """A database with one day's papers and random 384-d vectors under the minilm key."""
    db = tmp_path / "r.sqlite3"
    stock(db)
    return db


def test_similar_takes_a_non_ascii_query_as_typed_under_an_ascii_locale(stocked):
    """`ranker similar "naïve Bayes für Ökonomie"` under LC_ALL=C (UTF-8 mode off) ended 'unexpected failure:
    'utf-8' codec can't encode characters: surrogates not allowed': the query's bytes came as surrogate escapes.
    It is read as the UTF-8 the terminal sent: the same neighbours as under C.UTF-8, and a file's name (./pöper.json)
    refused as under C.UTF-8. Bytes that are no UTF-8 are the argument's one line."""
    query = "naïve Bayes für Ökonomie 数据"
    under_ascii = run("similar", query, "--k", "3", "--db", stocked, "--offline")
    assert under_ascii.returncode == 0, under_ascii.stderr
    under_utf8 = run("similar", query, "--k", "3", "--db", stocked, "--offline", locale=UTF8)
    assert under_utf8.returncode == 0, under_utf8.stderr
    assert under_ascii.stdout == under_utf8.stdout and under_ascii.stdout.count(b"\n") == 3
    (stocked.parent / "pöper.json").write_text("{}")
    for locale in (ASCII, UTF8):
        r = run("similar", b"na\xffve Bayes", "--db", stocked, "--offline", locale=locale)
        assert r.returncode == 1 and r.stdout == b""
        assert r.stderr == b"error: QUERY: not UTF-8 text (bytes the terminal's encoding sent?): type it again in " \
                           b"UTF-8\n"
        # a file's name is still refused as one (under ASCII is_file could not spell the typed "ö": a search)
        r = run("similar", "./pöper.json", "--db", stocked, "--offline", locale=locale, cwd=stocked.parent)
        assert r.returncode == 1 and r.stdout == b"", r.stdout
        assert r.stderr.startswith(b"error: ") and r.stderr.count(b"\n") == 1, r.stderr
        assert b"per.json': is a file: " in r.stderr or b"per.json: is a file: " in r.stderr, r.stderr


def test_a_model_folders_non_ascii_name_keys_its_vectors_alike_under_any_locale(tmp_path):
    """`--embedder ./mödel` (a model folder) under LC_ALL=C (UTF-8 mode off) keyed its vectors by the folder's
    path as surrogate escapes: 'unexpected failure: surrogates not allowed' from SQLite (and its index folder's
    name could not be made). The key is the path's UTF-8 text, the one a C.UTF-8 run stores: vectors stored
    under either locale serve both, from one index folder. A folder named like a token cut ("mödel@64") is that
    folder under either locale (and refused under both where "mödel" cut at 64 tokens is one too)."""
    for name in ("mödel", "mödel@64"):
        work = tmp_path / name
        folder = work / name
        folder.mkdir(parents=True)  # an id's neighbours need no model loaded: its vectors are in the store
        db = work / "r.sqlite3"
        ids = stock(db, key=str(folder))
        outs = []
        for locale in (ASCII, UTF8):
            r = run("similar", ids[0], "--k", "2", "--embedder", f"./{name}", "--db", db, "--offline",
                    locale=locale, cwd=work)
            assert r.returncode == 0, r.stderr
            assert r.stdout.count(b"\n") == 2, r.stdout
            outs.append(r.stdout)
        assert outs[0] == outs[1]
        index = work / "faiss-r.sqlite3"
        assert [p.name.rsplit("-", 1)[0] for p in index.iterdir()] == [name.replace("@", "_")]
    (work / "mödel").mkdir()        # "./mödel@64" now also names the folder mödel cut at 64 tokens: one key for two
    for locale in (ASCII, UTF8):
        r = run("similar", ids[0], "--embedder", "./mödel@64", "--db", db, "--offline", locale=locale, cwd=work)
        assert r.returncode == 1 and b"names both the folder" in r.stderr, r.stderr


def test_a_name_partly_not_utf8_reads_as_a_utf8_run_reads_it():
    """fs_text of a file name whose bytes are partly UTF-8 ("ö") and partly not (0xff): under LC_ALL=C (UTF-8 mode
    off) it stayed all surrogate escapes where a UTF-8 run reads "ö\\udcff"; it reads as the UTF-8 run does, and
    fs_name takes it back to the name it was."""
    check = ("import os\nfrom ranker.io import fs_name, fs_text\nn = os.fsdecode(b'm\\xc3\\xb6\\xff')\n"
             "print(ascii(fs_text(n)), fs_name(fs_text(n)) == n)")
    for locale in (ASCII, UTF8):
        r = python(check, locale=locale)
        assert r.stdout == b"'m\\xf6\\udcff' True\n", r.stderr


def test_a_config_files_non_ascii_paths_name_the_files_a_utf8_terminal_shows(tmp_path):
    """ranker.toml (UTF-8) naming `db = "dö_数据.sqlite3"`: under LC_ALL=C (UTF-8 mode off) every command ended
    'unexpected failure: 'ascii' codec can't encode character'. The name is the file its UTF-8 bytes name, the
    one `ls` shows and the C.UTF-8 run uses: a label imported under the one locale is listed under the other."""
    db = tmp_path / "dö_数据.sqlite3"
    Store(db).close()
    (tmp_path / "ranker.toml").write_text('db = "dö_数据.sqlite3"\n', encoding="utf-8")
    (tmp_path / "l.jsonl").write_text('{"id": "2505.09343", "label": 1, "time": "2025-05-16T10:00:00+00:00", '
                                      '"day": "2025-05-15"}\n')
    r = run("labels", "import", tmp_path / "l.jsonl", "--config", tmp_path / "ranker.toml")
    assert r.returncode == 0, r.stderr
    assert b"1 added" in r.stderr
    for locale in (ASCII, UTF8):
        r = run("labels", "list", "--config", tmp_path / "ranker.toml", locale=locale)
        assert r.returncode == 0, r.stderr
        assert r.stdout.startswith(b"2505.09343\tup\t2025-05-15"), r.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dö_数据.sqlite3", "home", "l.jsonl", "ranker.toml"]


def test_a_config_files_non_ascii_model_folder_and_engine_paths_name_the_folders(tmp_path):
    """ranker.toml naming a model folder (`[prefilter] embedder = "./mödel"`) or a vLLM engine argument's folder
    (`download_dir = "./dö"`): under LC_ALL=C (UTF-8 mode off) only the file's plain paths (db, home) were taken
    as the file system names them; the model's was 'no such model folder' and vLLM was handed a path naming no
    folder. Every one names the folder its UTF-8 bytes name, from the file's folder or the working one."""
    from ranker.io import fs_name
    assert fs_name("\ud800") == "\ud800" and fs_name("dö\ud800") == "dö\ud800"   # no encoding spells it: as it is
    for name in ("mödel", "dö"):
        (tmp_path / name).mkdir()
    db = tmp_path / "r.sqlite3"
    ids = stock(db, key=str(tmp_path / "mödel"))
    (tmp_path / "ranker.toml").write_text('[prefilter]\nembedder = "./mödel"\n[scoring.vllm]\nengine_args = '
                                          '{download_dir = "./dö", tokenizer = "./dö"}\n', encoding="utf-8")
    check = ("import os, sys\nfrom ranker.settings import resolve\ns = resolve(*sys.argv[1:])\n"
             "a = s.scoring.options['vllm']['engine_args']\n"
             "print(*(os.path.isdir(p) for p in (s.prefilter.embedder, a['download_dir'], a['tokenizer'])))")
    for config, cwd in (((), tmp_path), (("--config", tmp_path / "ranker.toml"), tmp_path.parent)):
        r = python(check, *config[1:], cwd=cwd)
        assert r.stdout == b"True True True\n", r.stderr
        r = run("similar", ids[0], "--k", "2", *config, "--db", db, "--offline", cwd=cwd)
        assert r.returncode == 0 and r.stdout.count(b"\n") == 2, r.stderr


def test_a_config_files_non_ascii_model_name_that_names_no_folder_is_kept_as_written(tmp_path):
    """A server's model name (`[scoring] backend = "openai"`, `model = "mistral-français"`) or a vLLM tokenizer's
    Hugging Face id is any text, no path: under LC_ALL=C (UTF-8 mode off) taking it as the file system names it
    made it 'mistral-fran\\udcc3\\udca7ais' (SQLite: 'surrogates not allowed'; the server was asked for a model it
    lacks). Only a name that is a file or folder there is taken as one; the rest is as the file says."""
    (tmp_path / "ranker.toml").write_text('[scoring]\nbackend = "openai"\nmodel = "mistral-français"\n'
                                          '[scoring.vllm]\nengine_args = {tokenizer = "org/tök"}\n',
                                          encoding="utf-8")
    check = ("import sys\nfrom ranker.settings import resolve\ns = resolve(*sys.argv[1:])\n"
             "print(ascii(s.scoring.model), ascii(s.scoring.options['vllm']['engine_args']['tokenizer']))")
    for config, cwd in (((), tmp_path), (("--config", tmp_path / "ranker.toml"), tmp_path.parent)):
        for locale in (ASCII, UTF8):
            r = python(check, *config[1:], cwd=cwd, locale=locale)
            assert r.stdout == b"'mistral-fran\\xe7ais' 'org/t\\xf6k'\n", r.stderr


def test_a_scoring_model_folders_non_ascii_name_keys_its_scores_alike_under_any_locale(tmp_path):
    """`[scoring] backend = "transformers"`, `model = "./mödel"` (a folder), or `--model ./mödel`: under LC_ALL=C
    (UTF-8 mode off) its scores' key was the folder's path as surrogate escapes, 'unexpected failure: surrogates
    not allowed' from SQLite (and the backfill's file prefix could not be made). The key is the path's UTF-8
    text, the one a C.UTF-8 run stores (and always stored): scores under either locale are the same model's."""
    (tmp_path / "mödel").mkdir()         # the key needs no model loaded
    (tmp_path / "ranker.toml").write_text('[scoring]\nbackend = "transformers"\nmodel = "./mödel"\n',
                                          encoding="utf-8")
    check = ("import sys\nfrom ranker.settings import resolve\nfrom ranker.backends import backend_class\n"
             "from ranker.cli.common import _model_keys\nfrom ranker.prefilter.embed import slug\n"
             "s = resolve()\ncls = backend_class(s.scoring.backend)\n"
             "for model in (s.scoring.model, sys.argv[1]):\n"
             "    key = cls.model_key(model, s.models_dir)\n"
             "    print(ascii(key), ascii(_model_keys(cls, s)), ascii(slug(key)))")
    outs = []
    for locale in (ASCII, UTF8):
        r = python(check, "./mödel", cwd=tmp_path, locale=locale)
        assert r.returncode == 0, r.stderr
        outs.append(r.stdout)
    assert outs[0] == outs[1]
    key = ascii(str((tmp_path / "mödel").resolve())).encode()
    assert outs[0].count(key) == 4, outs[0]


def test_what_reaches_the_terminal_names_the_users_files_and_spells_what_it_cannot_show(tmp_path):
    """Under LC_ALL=C (UTF-8 mode off) a terminal line wrote '?' for each character ASCII cannot spell: `ranker
    site --out sö_数据` printed "s??_??????/index.html" on stdout, a path naming no file (a script's $(ranker
    site ...) went nowhere), and a title "Déjà Vu" came out "D?j? Vu". A name's own bytes go back out as they came
    in (the same stdout as under C.UTF-8); a character the stream cannot spell is its backslash escape, as under
    PYTHONIOENCODING=latin-1 for a CJK title."""
    import json
    db = tmp_path / "r.sqlite3"
    first = json.loads((DAYS / "2025-05-15" / "listing.jsonl").read_text().splitlines()[0])
    deja = {**first, "id": "2505.99998", "title": "Déjà Vu", "date": "2025-05-15"}
    deja_cjk = {**first, "id": "2505.99999", "title": "Déjà Vu 数据", "date": "2025-05-15"}
    with Store(db) as s:
        s.add_papers([Paper.from_dict(deja), Paper.from_dict(deja_cjk)])
    (tmp_path / "l.jsonl").write_text("".join(json.dumps({"id": i, "label": 1, "time": f"2025-04-18T10:0{n}:00+00:00",
                                                          "day": "2025-05-15"}) + "\n"
                                              for n, i in enumerate((deja["id"], deja_cjk["id"]))))
    assert run("labels", "import", tmp_path / "l.jsonl", "--db", db).returncode == 0

    r = run("labels", "list", "--db", db)
    assert r.returncode == 0, r.stderr
    assert r.stdout == (b"2505.99999\tup\t2025-05-15\tD\\xe9j\\xe0 Vu \\u6570\\u636e\n"
                        b"2505.99998\tup\t2025-05-15\tD\\xe9j\\xe0 Vu\n")
    # no log to open (a home that cannot be made): lines go out through sys.stdout itself, which did not take
    # them ('unexpected failure: 'ascii' codec can't encode')
    no_log = run("labels", "list", "--db", db, locale={**ASCII, "RANKER_HOME": "/proc/nohome"})
    assert (no_log.returncode, no_log.stdout) == (0, r.stdout), no_log.stderr
    r = run("labels", "list", "--db", db, locale={**UTF8, "PYTHONIOENCODING": "latin-1"})
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(b"2505.99999\tup\t2025-05-15\tD\xe9j\xe0 Vu \\u6570\\u636e\n")
    # a name that is no UTF-8 (b"s\xff", latin-1's "sÿ") too, under C.UTF-8 as well: its own bytes, as Python's
    # own stdout writes them there (surrogateescape), where it printed "s?", naming no folder
    for locale, out in ((ASCII, "ascii"), (UTF8, "utf8")):
        for name in ("sö_数据".encode(), b"s\xff"):
            r = run("site", "--out", name, "--db", db, locale=locale, cwd=tmp_path)
            assert r.returncode == 0, r.stderr
            assert r.stdout == name + b"/index.html\n", (out, r.stdout)
            assert b"-> " + name + b"/index.html" in r.stderr
            assert (tmp_path / os.fsdecode(name) / "index.html").is_file()


def test_prefilter_to_stdout_writes_utf8_json_lines_under_any_locale(tmp_path):
    """`ranker prefilter --out -` wrote its JSON lines through the terminal's stream, in its encoding: latin-1
    bytes under PYTHONIOENCODING=latin-1 (no JSON reader took them), '?' for each "é" under LC_ALL=C (the title
    lost). Written as fetch's and score's `--out -` are: UTF-8 (ensure_ascii off), the same bytes under every
    locale, the same as its --out file."""
    import json
    db = tmp_path / "r.sqlite3"
    rows = [json.loads(line) for line in (DAYS / "2025-05-15" / "listing.jsonl").read_text().splitlines()[:20]]
    rows[0] = {**rows[0], "title": "Déjà Vu 数据", "authors": ["Zoë Ökonom"]}
    papers_file = tmp_path / "p.jsonl"
    papers_file.write_text("".join(json.dumps(r) + "\n" for r in rows))
    papers = [Paper.from_dict(r) for r in rows]
    v = np.random.default_rng(0).normal(size=(len(papers), 384)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    with Store(db) as s:
        s.add_papers(papers)
        s.put_embeddings(((p.id, "h", v[i]) for i, p in enumerate(papers)), "minilm")
    args = ("prefilter", "--papers", papers_file, "--keep", "1", "--db", db, "--offline")
    r = run(*args, "--out", tmp_path / "ranked.jsonl", locale=UTF8)
    assert r.returncode == 0, r.stderr
    want = (tmp_path / "ranked.jsonl").read_bytes()
    assert "Déjà Vu 数据".encode() in want
    for locale in (ASCII, {**UTF8, "PYTHONIOENCODING": "latin-1"}, UTF8):     # (cp1252 fails as latin-1 does)
        r = run(*args, "--out", "-", locale=locale)
        assert r.returncode == 0, r.stderr
        assert r.stdout == want, locale
