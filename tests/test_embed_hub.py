"""The embedder named by a Hugging Face id: downloaded when online and not cached, taken from the local
cache offline, and a clear ModelError when it is neither there nor downloadable."""
from __future__ import annotations

import http.server
import os
import subprocess
import sys
import threading

import pytest

from conftest import MODELS, REPO

_LOAD = """
import sys
from ranker import netguard
from ranker.errors import ModelError
from ranker.prefilter.embed import Embedder
if sys.argv[1] == "offline":
    netguard.enable_offline()
for name in sys.argv[2:]:
    try:
        e = Embedder(name)
        print("vector", e.encode(["a paper about graph neural networks"])[0][:4].round(4).tolist())
    except ModelError as err:
        print("ModelError", err)
"""


def _loads(mode: str, names: list[str], env: dict) -> list[str]:
    """What each embedder named says, loaded in turn by one process (each an Embedder of its own; the process
    start and torch's import, seconds, are paid once)."""
    p = subprocess.run([sys.executable, "-c", _LOAD, mode, *names], capture_output=True, text=True, cwd=REPO,
                       env={**os.environ, "PYTHONPATH": str(REPO), **env}, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    return p.stdout.strip().splitlines()[-len(names):]


def _load(mode: str, name: str, env: dict) -> str:
    return _loads(mode, [name], env)[0]


@pytest.fixture
def hub():
    """A stand-in for the Hugging Face Hub on 127.0.0.1 that has nothing (404) and records what is asked."""
    asked: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            asked.append(self.path)
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_HEAD = do_GET

        def log_message(self, *args):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{srv.server_port}", asked
    finally:
        srv.shutdown()


def test_an_uncached_id_is_downloaded_online_and_refused_offline(tmp_path, hub):
    """Online, an id not in the cache is asked of the Hub (here: which has not got it), and the error says it is
    not local and the download failed; offline, nothing is asked and the error says offline mode downloads
    nothing."""
    url, asked = hub
    env = {"HF_ENDPOINT": url, "HF_HOME": str(tmp_path / "hf")}
    out = _load("online", "someone/some-embedder", env)
    # the setting it came from named too (the CLI words it as the --embedder or ranker.toml line)
    assert out.startswith("ModelError prefilter.embedder someone/some-embedder: not a local folder, not a prepared "
                          "preset and not in the Hugging Face cache, and downloading it from Hugging Face failed: "
                          ), out
    assert any("someone/some-embedder" in path for path in asked), asked
    asked.clear()
    out = _load("offline", "someone/some-embedder", env)
    assert out.startswith("ModelError prefilter.embedder someone/some-embedder: not a local folder, not a prepared "
                          "preset and not in the Hugging Face cache; offline mode downloads nothing"), out
    assert asked == []


@pytest.mark.slow
def test_a_cached_id_loads_offline(tmp_path, hub):
    """An id in the local Hugging Face cache (MiniLM's files under its Hub name) loads offline and online
    without asking anyone, and embeds as the minilm preset does."""
    url, asked = hub
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hf" / "hub" / "models--sentence-transformers--all-MiniLM-L6-v2"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snap = repo / "snapshots" / commit
    snap.mkdir(parents=True)
    for f in (MODELS / "minilm").rglob("*"):
        if f.is_file():
            (snap / f.relative_to(MODELS / "minilm")).parent.mkdir(parents=True, exist_ok=True)
            (snap / f.relative_to(MODELS / "minilm")).symlink_to(f)
    env = {"HF_ENDPOINT": url, "HF_HOME": str(tmp_path / "hf")}
    cached, preset = _loads("offline", ["sentence-transformers/all-MiniLM-L6-v2", "minilm"], env)
    assert cached.startswith("vector ") and cached == preset
    assert asked == []
    assert _load("online", "sentence-transformers/all-MiniLM-L6-v2", env) == cached
    assert not [p for p in asked if "MiniLM" in p], asked   # online too: the cached model is not asked for


def test_a_cached_ids_token_limit_is_read_from_the_cache_without_loading_it(tmp_path, hub):
    """--max-tokens past the model's limit is one error for a Hugging Face id in the cache too (as for a preset
    or a folder), read from its sentence_bert_config.json without loading the model or asking the Hub; an id
    not cached stays unknown (clamped when it loads)."""
    url, asked = hub
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hf" / "hub" / "models--someone--cached-embedder"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    (repo / "snapshots" / commit).mkdir(parents=True)
    (repo / "snapshots" / commit / "sentence_bert_config.json").write_text('{"max_seq_length": 384}')
    code = """
import sys
from ranker.errors import InputError
from ranker.prefilter.embed import Embedder, token_limit
print(token_limit("someone/cached-embedder"), token_limit("someone/not-cached"))
Embedder("someone/cached-embedder", max_tokens=384)
try:
    Embedder("someone/cached-embedder", max_tokens=385)
except InputError as e:
    print(e)
"""
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120,
                       env={**os.environ, "PYTHONPATH": str(REPO), "HF_ENDPOINT": url, "HF_HOME": str(tmp_path / "hf")})
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.splitlines() == ["384 None", "prefilter.max_tokens: must be at most 384: "
                                                 "someone/cached-embedder reads no more tokens than that"]
    assert asked == []
