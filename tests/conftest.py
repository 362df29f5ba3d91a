"""Shared test fixtures. Every test runs with its own RANKER_HOME, so nothing touches the user's database."""
from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

import pytest

from require_all import pytest_make_collect_report, pytest_runtest_makereport  # noqa: F401  (hooks)

REPO = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"          # a copy of shared/data: five days + arXiv fixtures
DAYS = DATA / "days"
FIXTURES = DATA / "fixtures"
SEED_DIGEST = DATA / "seed_digest_2025-06-23.md"
MODELS = REPO / "models"
RANKER = [sys.executable, "-m", "ranker"]        # the CLI, as a process of this interpreter


def ranker(*args, env: dict | None = None, cwd=None, timeout: float = 900,
           pre: str = "") -> subprocess.CompletedProcess:
    """Run `ranker ARGS` as a real subprocess (the environment of this test, plus `env`; no RANKER_DEBUG) and
    return it finished, with text stdout and stderr. `pre`: Python run in that process before the CLI starts
    (to hide an installed package, or keep a server from binding beyond loopback)."""
    e = {**os.environ, **{k: str(v) for k, v in (env or {}).items()}}
    if "RANKER_DEBUG" not in (env or {}):
        e.pop("RANKER_DEBUG", None)
    cmd = [sys.executable, "-c", f"{pre}\nfrom ranker.cli import main; main()"] if pre else RANKER
    return subprocess.run([*cmd, *map(str, args)], capture_output=True, text=True, env=e, cwd=cwd,
                          timeout=timeout)


def python(code: str, *args, timeout: float | None = 20) -> subprocess.CompletedProcess:
    """Run Python `code` in a process of its own with this checkout importable (`sys.argv[1:]` = ARGS) and return
    it finished, with text stdout and stderr: for what may hang for good (a FIFO read) or must die alone."""
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "PYTHONPATH": str(REPO)})


def as_at_a_terminal() -> None:
    """preexec_fn for a command a test sends SIGINT (a Ctrl-C): its SIGINT at the default, as a terminal's command
    has it. A shell's background job (`make test &`, some CI runners) starts pytest with SIGINT ignored, and a
    child inherits that: the command ran on to its end and the test measured the ignore, not the command.
    (signal is imported with the module: the forked child, of a process that may run threads, imports nothing.)"""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def open_files(path) -> list[str]:
    """The files this process holds open at `path`, or under it when it is a folder (a removed one still open
    too): what a failed open or write must not leave behind."""
    at = os.path.realpath(path)
    out = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.path.realpath(f"/proc/self/fd/{fd}")
        except OSError:
            continue                              # (the listing's own descriptor, closed since)
        if target == at or target.startswith(at + os.sep):
            out.append(target)
    return out


@contextmanager
def ctrl_c_when(reached: threading.Event):
    """Ctrl-C the main thread (as the signal does: it raises KeyboardInterrupt at its next check) once `reached`
    is set, by the point of the code under test that the test means (a statement traced, a callback): a timer
    raced that code's way there on a loaded machine (early, the interrupt hit the test before the code was
    waiting, or the test itself; late, the wait had ended). Not sent once the block has ended. Python's own
    SIGINT handler is in place for the block: interrupt_main() does nothing where SIGINT is ignored, as in a
    pytest started as a background job of a shell (`make test &`, some CI runners), which passes on "ignore"."""
    import _thread
    import signal
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    lock, state = threading.Lock(), {"open": True}

    def send():
        reached.wait()
        with lock:
            if state["open"]:
                _thread.interrupt_main()

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    try:
        yield reached
    finally:
        with lock:
            state["open"] = False
        reached.set()
        sender.join()
        if previous is not None:                  # None: not set from Python, so not ours to put back
            signal.signal(signal.SIGINT, previous)


@contextmanager
def listening(kind: str, host: str = "127.0.0.1", every: float = 0.4):
    """A port of `host` where something that is no Ray cluster listens, for the block: "http" (http.server),
    "echo" (sends back what it reads), "closing" (closes each connection at once), "silent" (a listening socket
    that accepts nothing and answers nothing), "trickle" (sends one byte each `every` s, without end), or "grpc"
    (a gRPC server with no service: HTTP/2, as Ray's GCS)."""
    import socket
    if kind == "grpc":
        import grpc
        from concurrent.futures import ThreadPoolExecutor
        pool = ThreadPoolExecutor(max_workers=1)
        server = grpc.server(pool)
        port = server.add_insecure_port(f"{host}:0")
        server.start()
        try:
            yield port
        finally:
            server.stop(None).wait()
            pool.shutdown()
        return
    if kind == "http":
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        class Quiet(BaseHTTPRequestHandler):
            default_request_version = "HTTP/1.0"    # its errors with a status line, as a web server's (nginx)

            def log_message(self, *args):
                pass

        httpd = ThreadingHTTPServer((host, 0), Quiet)
        thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        thread.start()
        try:
            yield httpd.server_address[1]
        finally:
            httpd.shutdown()
            httpd.server_close()
            thread.join()
        return
    sock = socket.create_server((host, 0))
    stop = threading.Event()

    def serve():
        sock.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except OSError:
                continue
            with conn:
                if kind == "echo":
                    conn.settimeout(5)
                    try:
                        while data := conn.recv(4096):
                            conn.sendall(data)
                    except OSError:
                        pass
                elif kind == "trickle":
                    try:
                        while not stop.wait(every):
                            conn.sendall(b"x")
                    except OSError:
                        pass

    thread = threading.Thread(target=serve, daemon=True)
    if kind != "silent":
        thread.start()
    try:
        yield sock.getsockname()[1]
    finally:
        stop.set()
        if thread.is_alive():
            thread.join()
        sock.close()


def without_loading(err: str) -> str:
    """stderr less the model's 'loading <model> ...' / 'ready' lines, which come before everything else."""
    return "".join(x for x in err.splitlines(keepends=True) if not x.startswith("loading "))


def fake_settings(tmp_path, **flags):
    """Settings for a day on the fake backend (model "tiny"), the database in tmp_path, plus `flags`."""
    from ranker.settings import resolve
    return resolve(flags={"backend": "fake", "model": "tiny", **flags, "db": tmp_path / "db.sqlite3"},
                   env={"RANKER_HOME": str(tmp_path / "home")})


@contextmanager
def vector_store(settings, listing):
    """The settings' store, holding vectors for the papers of `listing` and the prompt's topics (store_vectors):
    a day's prefilter runs on it without loading a model."""
    from ranker.sources import read_papers
    from ranker.store import Store
    with Store(settings.db_path) as s:
        store_vectors(s, list(read_papers(listing)))
        yield s


def store_vectors(store, papers, prompts=None, embedder: str = "minilm", dim: int = 384) -> None:
    """Put deterministic unit vectors for `papers` and the prompt's topic queries into `store`, under the keys
    the embedder looks them up by, so the prefilter runs on them without loading a model (orchestration
    tests; the real embedder is tested in test_prefilter_minilm.py)."""
    import hashlib

    import numpy as np

    from ranker.prefilter.embed import QUERY_PREFIX, embedder_key, paper_text, text_hash
    from ranker.prefilter.rank import build_queries
    from ranker.prompts import load_prompts

    def vec(key: str) -> np.ndarray:
        rng = np.random.default_rng(int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little"))
        v = rng.normal(size=dim).astype(np.float32)
        return v / np.linalg.norm(v)

    rows = [(p.id, text_hash(paper_text(p)), vec(p.id)) for p in papers]
    for t in build_queries(prompts or load_prompts()).texts:
        t = " ".join(t.split())
        rows.append((QUERY_PREFIX + text_hash(t), text_hash(t), vec(t)))
    store.put_embeddings(rows, embedder_key(embedder))


def first_papers(folder: Path, n: int = 3, day: str = "2025-05-15") -> Path:
    """The first n lines of a shared day's listing.jsonl, written to folder/first.jsonl: a test of a command's words
    reads a few papers, not a whole day's ~200 (with store_vectors for them, no model is loaded either)."""
    with open(DAYS / day / "listing.jsonl", encoding="utf-8") as f:
        head = [line for line, _ in zip(f, range(n))]
    out = folder / "first.jsonl"
    out.write_text("".join(head), encoding="utf-8")
    return out


def make_snapshot(out: Path, n: int, per_day: int = 100) -> Path:
    """An arXiv metadata snapshot of n papers, per_day a day, spliced from the shared days
    (scripts/make_snapshot.py), written to `out`."""
    subprocess.run([sys.executable, str(REPO / "scripts" / "make_snapshot.py"), "--n", str(n), "--per-day",
                    str(per_day), "--out", str(out)], check=True, capture_output=True)
    return out


def grown_snapshot(folder: Path, per_day: int = 100) -> tuple[Path, Path]:
    """A snapshot of six days of `per_day` papers (600 by default) and all but its last per_day/2 lines: the older
    snapshot, whose last day had half its papers yet (the last days of a snapshot are incomplete). In the newer
    one the first paper has a second version since, with another abstract (its day, the first version's, is the
    same)."""
    snap = make_snapshot(folder / "snap.json", 6 * per_day, per_day)
    lines = snap.read_bytes().splitlines(keepends=True)
    old = folder / "old.json"
    old.write_bytes(b"".join(lines[:6 * per_day - per_day // 2]))
    first = json.loads(lines[0])
    first["versions"] = first["versions"][:1] + [{"version": "v2", "created": "Mon, 2 Mar 2026 10:00:00 GMT"}]
    first["abstract"] = "A second version: the method rewritten, new results."
    snap.write_bytes(json.dumps(first).encode() + b"\n" + b"".join(lines[1:]))
    return old, snap


def snapshot_with_bad_lines(path, garbage: int = 0):
    """A 300-paper snapshot with a line that is not JSON (line 41), a row without an id (152), `garbage` more
    lines that are not JSON after it, and a truncated last line; gzipped when the name ends in .gz."""
    good = make_snapshot(path.parent / f"{path.name}.good", 300).read_bytes().splitlines(keepends=True)
    lines = good[:40] + [b"not json {\n"] + good[40:150] + [b'{"title": "No id", "abstract": "x"}\n'] + \
        good[150:] + [b"<garbage>\n"] * garbage + [good[0][:100]]
    data = b"".join(lines)
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
    return path


def damaged_gz(folder: Path) -> dict[str, Path]:
    """The five days as one .gz, damaged three ways: cut short within its first 64 KB (the format sniff reads
    that far), cut short further on, and with bytes overwritten past the middle where zlib itself fails (a
    damaged block header: zlib.error, neither OSError nor EOFError)."""
    import io
    import zlib
    whole = gzip.compress(b"".join((d / "listing.jsonl").read_bytes() for d in sorted(DAYS.iterdir())))
    assert len(whole) > 300_000

    def overwritten(at: int) -> bytes:
        return whole[:at] + bytes(b ^ 0xFF for b in whole[at:at + 50]) + whole[at + 50:]

    def zlib_fails(data: bytes) -> bool:
        try:
            for _ in gzip.GzipFile(fileobj=io.BytesIO(data)):
                pass
        except zlib.error:
            return True
        except (OSError, EOFError):
            pass
        return False
    corrupt = next(d for at in range(len(whole) // 2, len(whole) - 100, 1000) if zlib_fails(d := overwritten(at)))
    out = {}
    for name, data in (("short", whole[:5000]), ("cut", whole[:len(whole) // 2]), ("corrupt", corrupt)):
        out[name] = folder / f"{name}.jsonl.gz"
        out[name].write_bytes(data)
    return out


def store_tables(db) -> dict:
    """Every data table of a store, rows in a fixed order (runs left out: each command is one run), to compare
    a database before and after."""
    import sqlite3
    c = sqlite3.connect(db)
    try:
        return {t: c.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall()
                for t in ("papers", "paper_days", "scores", "failures", "embeddings")}
    finally:
        c.close()


# --------------------------------------------------------------------------- backfills
def backfill_settings(*options: str, **flags):
    """Settings as `ranker backfill` resolves them from these flags (the fake backend and model m unless
    given); `options` are --backend-option KEY=VALUE texts."""
    from ranker.settings import resolve
    return resolve(flags={"backend": "fake", "model": "m", **flags, "backend_option": list(options)})


def backfill_table(out, kind: str):
    """Every row of a backfill folder's `ranked` or `scores` shards, as one pyarrow Table."""
    from ranker.backfill import shards
    schema = shards.RANKED if kind == "ranked" else shards.SCORES
    return shards.read_table(shards.shard_files(Path(out) / kind), schema)


def parquet_files(out) -> dict[str, int]:
    """Each Parquet file under `out` with its mtime: equal before and after means nothing was written."""
    return {str(p.relative_to(out)): p.stat().st_mtime_ns for p in Path(out).rglob("*.parquet")}


# --------------------------------------------------------------------------- one process, many tests
# CI runs the whole suite in one process: state a test leaves in ranker's modules is the next test's start (a
# Ctrl-C still requested, offline mode still on, the last command's database named by every database error).
# Each entry: what that state is now (None where its module is not imported yet) and how to put it back.
def _per_command(common):
    return (list(common.DB_PATH), list(common.DEBUG), dict(common.ORIGINS), set(common.OPTION_KEYS),
            dict(common.GIVEN), list(common.SETTING_PATHS))


def _put_back_per_command(common, saved):
    db, debug, origins, keys, given, setting_paths = saved
    common.DB_PATH[:], common.DEBUG[:], common.SETTING_PATHS[:] = db, debug, setting_paths
    common.GIVEN.clear()
    common.GIVEN.update(given)
    common.ORIGINS.clear()
    common.ORIGINS.update(origins)
    common.OPTION_KEYS.clear()
    common.OPTION_KEYS.update(keys)


PROCESS_STATE = {
    # name: (module, what it holds now, its state in a fresh process, put it back to a saved one)
    "offline mode (ranker.netguard)": ("ranker.netguard", lambda m: m._saved is not None, False,
                                       lambda m, on: None if on else m.disable_offline()),
    "a Ctrl-C requested (ranker.errors)": ("ranker.errors", lambda m: m.interrupt_requested(), False,
                                           lambda m, on: m.request_interrupt() if on else m.clear_interrupt()),
    "a SIGTERM received (ranker.cli.app)": ("ranker.cli.app", lambda m: list(m._TERMINATED), [],
                                            lambda m, v: m._TERMINATED.__setitem__(slice(None), v)),
    "the descriptors given (ranker.io)": ("ranker.io", lambda m: m._GIVEN_FDS if m._GIVEN_FDS is None
                                          else set(m._GIVEN_FDS), None, lambda m, v: m.given_descriptors(v)),
    "the command's settings (ranker.cli.common: DB_PATH, DEBUG, ORIGINS, OPTION_KEYS, GIVEN, SETTING_PATHS)": (
        "ranker.cli.common", _per_command, ([], [], {}, set(), {}, []), _put_back_per_command),
    "the terminal's -q and -v (ranker.cli.term.TERM)": (
        "ranker.cli.term", lambda m: (m.TERM.quiet, m.TERM.verbose), (False, False),
        lambda m, v: (setattr(m.TERM, "quiet", v[0]), setattr(m.TERM, "verbose", v[1]))),
    "the terminal's descriptors sent to a log (ranker.cli.term.TERM)": (
        "ranker.cli.term", lambda m: m.TERM._saved is not None, False,
        lambda m, on: None if on else m.TERM.restore()),
    # a backend built with an API key registers it (add_secret) for the process's life: a later test's text that
    # holds it was redacted by the registered key, whatever the credential shapes redact knows
    "the secrets redacted (ranker.io._SECRETS: an API key registered)": (
        "ranker.io", lambda m: set(m._SECRETS), set(), lambda m, v: _put_back_set(m._SECRETS, v)),
}


def _put_back_set(now: set, saved: set) -> None:
    now.clear()
    now.update(saved)


def process_state() -> dict:
    return {name: (get(sys.modules[mod]) if mod in sys.modules else fresh)
            for name, (mod, get, fresh, _) in PROCESS_STATE.items()}


def put_back_process_state(saved: dict) -> None:
    for name, (mod, get, fresh, put) in PROCESS_STATE.items():
        if mod in sys.modules and get(sys.modules[mod]) != saved[name]:
            put(sys.modules[mod], saved[name])


@pytest.fixture
def in_process_command():
    """For a test that runs a command's own function in this process, or builds a backend with an API key: ranker's
    per-process state put back after it (a command is one process: it keeps its settings' database, debug and
    origins in module globals, and the key it was given among the secrets it redacts)."""
    saved = process_state()
    yield
    put_back_process_state(saved)


@pytest.fixture(autouse=True)
def _process_state_kept():
    """Every test leaves ranker's process-wide state (PROCESS_STATE) and the working directory as it found them:
    one that does not fails here, naming what it left, and the state is put back for the tests after it."""
    cwd, before = os.getcwd(), process_state()
    yield
    after = process_state()
    left = [name for name in before if after[name] != before[name]]
    if os.getcwd() != cwd:
        left.append(f"the working directory ({os.getcwd()}, was {cwd})")
        os.chdir(cwd)
    put_back_process_state(before)
    if left:
        pytest.fail("the test left the process changed for the tests after it: " + "; ".join(left), pytrace=False)


_FRESH_TORCH_THREADS: list[int] = []


def _fresh_torch_threads() -> int:
    """torch's thread count in a fresh process of this environment (asked once, of a process of its own: importing
    torch here would start every test with it imported)."""
    if not _FRESH_TORCH_THREADS:
        out = subprocess.run([sys.executable, "-c", "import torch; print(torch.get_num_threads())"],
                             capture_output=True, text=True, check=True, timeout=300).stdout
        _FRESH_TORCH_THREADS.append(int(out.split()[-1]))
    return _FRESH_TORCH_THREADS[0]


def _torch_threads():
    torch = sys.modules.get("torch")
    return torch.get_num_threads() if hasattr(torch, "get_num_threads") else None


@pytest.fixture(scope="module", autouse=True)
def _torch_threads_kept():
    """torch's thread count belongs to the process (torch.set_num_threads: a backend's or an embedder's `threads`,
    set for the module's tests by a module fixture as often as by a test): a module that left it changed left it
    so for every module after it, and the transformers tests' threads=1 had the rest of the suite embed its papers
    in-process on one core of two. Each module leaves it as it found it (as a fresh process has it, where torch
    came in during the module): one that does not errors at its last test's teardown, and the count is put back."""
    before = _torch_threads()
    yield
    after = _torch_threads()
    if after is None:
        return
    want = before if before is not None else _fresh_torch_threads()
    if after != want:
        sys.modules["torch"].set_num_threads(want)
        pytest.fail(f"the module left torch's thread count at {after} (torch.set_num_threads), was {want}, for "
                    "the modules after it", pytrace=False)


@pytest.fixture(scope="module")
def torch_threads_put_back():
    """For a module whose tests give a backend or an embedder `threads` (torch.set_num_threads: the process's
    count): the count it found put back after its last test, failed or not, as _torch_threads_kept asks."""
    import torch
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session", autouse=True)
def _session_env(tmp_path_factory):
    """The environment of the whole session, module- and session-scoped fixtures included (a store filled, a
    server started once a module: they come before any test's own environment, _ranker_home): none of the
    developer's RANKER_* / OPENAI_* variables, a RANKER_HOME of the session's own (a module's `ranker serve` ran
    with the developer's), and matplotlib's font cache and config folder (the charts of compare's and eval's
    reports) in the session's temporary folder, not ~/.cache/matplotlib and ~/.config/matplotlib."""
    from ranker.settings import ENV_KEYS, SECRET_ENV
    with pytest.MonkeyPatch.context() as mp:
        for var in (*ENV_KEYS, *SECRET_ENV):
            mp.delenv(var, raising=False)
        mp.setenv("RANKER_HOME", str(tmp_path_factory.mktemp("session-home")))
        mp.setenv("MPLCONFIGDIR", str(tmp_path_factory.mktemp("matplotlib")))
        yield


@pytest.fixture(autouse=True)
def _ranker_home(tmp_path, monkeypatch):
    from ranker.settings import ENV_KEYS, SECRET_ENV
    for var in (*ENV_KEYS, *SECRET_ENV):        # nothing of the developer's environment leaks into a test
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("RANKER_HOME", str(tmp_path / "home"))
    yield


@pytest.fixture
def offline():
    """Offline mode (ranker.netguard) for one test, switched off again afterwards."""
    from ranker.netguard import disable_offline, enable_offline
    enable_offline()
    try:
        yield
    finally:
        disable_offline()


@pytest.fixture(scope="session")
def embed_cache_db(tmp_path_factory):
    """A store shared by the slow prefilter/calibration tests, so each real day is embedded once a session."""
    return tmp_path_factory.mktemp("embed-cache") / "ranker.sqlite3"


@contextmanager
def small_disk(d: Path, size: str):
    """`d`, a folder on a tmpfs of `size` (a real full disk), unmounted after the block; the test is skipped
    where mounting is not permitted (not root)."""
    d.mkdir(parents=True, exist_ok=True)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(d)], capture_output=True).returncode:
        pytest.skip("a full disk needs a tmpfs mount (root)")
    try:
        yield d
    finally:
        subprocess.run(["umount", str(d)], check=True)


def disk_full_writing(monkeypatch, name: str) -> list[str]:
    """The disk fills while a file whose name holds `name` is written (its temporary file beside it too): its
    fsync fails with ENOSPC, as the kernel reports a full disk, every other file is written as usual. Returns the
    list of the paths it failed, for the test to check that the failure came where it meant (Linux: /proc)."""
    import errno
    if not Path("/proc/self/fd").is_dir():
        pytest.skip("needs /proc/self/fd to tell which file an fsync is for")
    real, failed = os.fsync, []

    def fsync(fd):
        try:
            path = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            path = ""
        if name in Path(path).name:
            failed.append(path)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return failed


def rules_config(tmp_path: Path, authors: str, exclude: str, prefilter: str = "top = 8") -> tuple[Path, Path]:
    """(a copy of the default prompt folder holding these authors.txt and exclude.txt, a ranker.toml naming it
    with these [prefilter] lines): the user's rules for the backfill's keep tests."""
    import shutil
    from ranker.prompts import DEFAULT_DIR
    prompts = tmp_path / "prompts"
    shutil.copytree(DEFAULT_DIR, prompts)
    (prompts / "authors.txt").write_text(authors)
    (prompts / "exclude.txt").write_text(exclude)
    cfg = tmp_path / "ranker.toml"
    cfg.write_text(f"[prefilter]\n{prefilter}\n[scoring]\nprompts = '{prompts}'\n")
    return prompts, cfg
