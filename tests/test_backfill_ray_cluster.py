"""`ranker backfill --engine ray --address HOST:PORT` on a real Ray cluster that the command joins: a head node and
a second node started with `ray start` on 127.0.0.1 (2 CPUs each, token authentication on, as `ray start` turns
it on once a token exists), their workers in another folder than the command's. The run writes what the local
engine writes and leaves the cluster running; a driver without the cluster's token, and an address where nothing
listens, are one line naming --address, at once."""
from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from conftest import DAYS, MODELS, REPO, as_at_a_terminal, backfill_settings, backfill_table, listening, \
    make_snapshot, ranker
from fixture_server import free_ports, refusing_port
from ranker.backfill import BackfillSpec, run_backfill

pytest.importorskip("ray", reason="the ray extra (ranker[ray]) is not installed; `make test` installs it")
pytestmark = pytest.mark.slow          # two Ray nodes and the real MiniLM embedder

RAY = str(Path(sys.executable).with_name("ray"))


def answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return True
    except OSError:
        return False


class Cluster:
    """`ray start --block` nodes, each in a session of its own, stopped by their process groups (never `ray
    stop`, which stops every Ray of this machine)."""

    def __init__(self, env: dict):
        self.env, self.procs = env, []
        self.port, *self._node_ports = free_ports(9)                  # the head's, then four for each node
        self.temp = tempfile.mkdtemp(prefix="ranker-rc-", dir="/tmp")

    def start(self, head: bool, cpus: int) -> None:
        ours, self._node_ports = self._node_ports[:4], self._node_ports[4:]
        assert len(ours) == 4, "a Cluster has ports for two nodes (the head and one more), not a third"
        ports = [f"--{k}={p}" for k, p in zip(("dashboard-agent-listen-port", "dashboard-agent-grpc-port",
                                               "runtime-env-agent-port", "metrics-export-port"), ours, strict=True)]
        where = ["--head", f"--port={self.port}", "--include-dashboard=false", f"--temp-dir={self.temp}",
                 "--object-store-memory=200000000"] if head else [f"--address=127.0.0.1:{self.port}"]
        log = open(os.path.join(self.temp, f"start-{len(self.procs)}.log"), "wb")
        self.procs.append(subprocess.Popen(
            [RAY, "start", "--block", *where, f"--num-cpus={cpus}", "--node-ip-address=127.0.0.1",
             "--disable-usage-stats", *ports], env=self.env, cwd="/", stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True))

    def wait_nodes(self, n: int, timeout: float = 60) -> None:
        code = ("import ray, sys; ray.init(address=sys.argv[1], log_to_driver=False); "
                "print(sum(1 for x in ray.nodes() if x['Alive']))")
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if answers(self.port):
                p = subprocess.run([sys.executable, "-c", code, f"127.0.0.1:{self.port}"], env=self.env,
                                   capture_output=True, text=True, timeout=60)
                if p.returncode == 0 and p.stdout.strip() == str(n):
                    return
            time.sleep(1)
        raise AssertionError(f"the test cluster did not come up with {n} nodes")

    def cpus_back(self, timeout: float = 60) -> dict:
        """Waits (up to `timeout`) until every CPU of the cluster is free, from a driver of its own; returns the
        cluster's and the free resources it saw last."""
        code = ("import json, ray, sys, time; ray.init(address=sys.argv[1], log_to_driver=False); "
                "end = time.monotonic() + float(sys.argv[2])\n"
                "while True:\n"
                "    have, free = ray.cluster_resources(), ray.available_resources()\n"
                "    if free.get('CPU', 0) >= have.get('CPU', 0) or time.monotonic() > end: break\n"
                "    time.sleep(0.5)\n"
                "print(json.dumps({'CPU': have.get('CPU'), 'free': free.get('CPU', 0)}))")
        p = subprocess.run([sys.executable, "-c", code, f"127.0.0.1:{self.port}", str(timeout)], env=self.env,
                           capture_output=True, text=True, timeout=timeout + 60)
        assert p.returncode == 0, p.stderr[-2000:]
        return json.loads(p.stdout.strip().splitlines()[-1])

    def stop(self) -> None:
        # the head's `ray start` took 33 s to end after its SIGTERM (the other node's in under 1 s): 30 s of each
        # run's teardown went on that wait before the SIGKILL that ended it, which its group's processes get too
        for p in reversed(self.procs):
            for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 10)):
                try:
                    os.killpg(p.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    p.wait(wait)
                    # the group's other processes (raylet, workers) end with their node; anything left is killed
                    os.killpg(p.pid, signal.SIGKILL)
                except (subprocess.TimeoutExpired, ProcessLookupError):
                    pass
        shutil.rmtree(self.temp, ignore_errors=True)


TOKEN = secrets.token_hex(32)
WITH_TOKEN = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": TOKEN}


@pytest.fixture(scope="module")
def cluster():
    env = {**os.environ, **WITH_TOKEN,
           "PYTHONPATH": os.pathsep.join([str(REPO)] + [p for p in [os.environ.get("PYTHONPATH")] if p])}
    env.pop("RAY_ADDRESS", None)
    c = Cluster(env)
    try:
        c.start(head=True, cpus=2)
        c.start(head=False, cpus=2)
        c.wait_nodes(2)
        yield c
    finally:
        c.stop()


def test_auto_where_no_cluster_runs_is_one_line_before_the_embedder_loads(tmp_path):
    """--address auto on a machine where no cluster runs (no `ray start`, no RAY_ADDRESS): its one line came
    after the driver had loaded the embedder for the prompt's queries (seconds), though a host:port where nothing
    listens was said before it. (Before the module's cluster starts: auto would join any Ray of this machine.)"""
    if subprocess.run(["pgrep", "-x", "gcs_server"], capture_output=True).returncode == 0:
        pytest.skip("a Ray instance runs on this machine: auto would join it")
    snap = make_snapshot(tmp_path / "snap.json", 20, 10)
    start = time.monotonic()
    r = ranker("backfill", "--from", snap, "--out", tmp_path / "bf", "--embed", "--all-categories",
               "--engine", "ray", "--address", "auto", env={"RAY_ADDRESS": ""}, timeout=60,
               pre="import sys; sys.modules['sentence_transformers'] = None")
    assert r.returncode == 1 and time.monotonic() - start < 30, r.stderr[-2000:]
    assert r.stderr.startswith("error: --address: no Ray cluster"), r.stderr
    assert " at auto" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_a_backfill_joins_a_two_node_cluster_writes_what_the_local_engine_writes_and_leaves_it_running(
        tmp_path, cluster):
    snap = make_snapshot(tmp_path / "snap.json", 300, 100)
    (tmp_path / "my-minilm").symlink_to(MODELS / "minilm")
    run_backfill(BackfillSpec(source=snap, out=tmp_path / "local", embed=True, score=True), backfill_settings(),
                 engine="local")
    # --from, --out and the models folder relative to the command's folder, which no worker runs in (the
    # workers wrote /bf/_work and the run said it ranked nothing); every embedder must fit on one node (it asked
    # for 3 of the 2+2 CPUs, and the run waited forever); the embedder named by its folder, relative to the
    # command's folder too (the workers looked for it in theirs, and took it for a Hugging Face id)
    r = ranker("backfill", "--from", "snap.json", "--out", "bf", "--embed", "--score", "--backend", "fake",
               "--model", "m", "--embedder", "my-minilm", "--all-categories",
               "--engine", "ray", "--address", f"127.0.0.1:{cluster.port}",
               cwd=tmp_path, env={**WITH_TOKEN, "RANKER_MODELS_DIR": os.path.relpath(MODELS, tmp_path)},
               timeout=300)
    assert r.returncode == 0, r.stderr
    for kind in ("ranked", "scores"):
        cols = (["id", "date", "kept", "topic", "day_papers"] if kind == "ranked" else
                ["id", "date", "status", "RELEVANCE", "NOVELTY", "model", "prompt_hash"])
        want = backfill_table(tmp_path / "local", kind).select(cols).sort_by([("id", "ascending")])
        got = backfill_table(tmp_path / "bf", kind).select(cols).sort_by([("id", "ascending")])
        assert got.num_rows == 300 and got.equals(want), kind
    # the memory measured is the driver's alone (the workers are the other nodes' raylets' children): said so
    (run,) = json.loads((tmp_path / "bf" / "manifest.json").read_text())["runs"]
    assert run["processes_of"] == "driver" and [p["name"] for p in run["processes"]] == ["driver"], run
    assert "; the driver's peak RSS " in r.stderr and " MB (the cluster's not measured); " in r.stderr, r.stderr
    cluster.wait_nodes(2, timeout=10)                  # the cluster it joined is still there, both nodes


def test_ctrl_c_of_a_driver_on_a_cluster_ends_the_command_and_gives_the_clusters_cpus_back(tmp_path, cluster):
    """A Ctrl-C (SIGINT to the driver's process alone, as a terminal sends it) while a joined cluster scores: the
    command ends with the Ctrl-C's line and status 130, its run interrupted; the user's cluster stays up, none of
    the run's actors keeps a CPU of it, and a rerun scores what is left, each paper once."""
    from collections import Counter
    day, out = DAYS / "2025-05-15", tmp_path / "bf"
    args = ["backfill", "--from", str(day), "--out", str(out), "--score", "--backend", "fake", "--model", "m",
            "--engine", "ray", "--address", f"127.0.0.1:{cluster.port}"]
    p = _start_backfill([*args, "--batch-size", "1", "--backend-option", "delay=0.3"], WITH_TOKEN)
    with _reaped(p):
        deadline = time.monotonic() + 240
        manifest = out / "manifest.json"
        while time.monotonic() < deadline and p.poll() is None and not (
                manifest.exists() and json.loads(manifest.read_text())["ranked_sources"]):
            time.sleep(0.2)
        time.sleep(3)                                   # scoring: 192 papers of 0.3 s each
        assert p.poll() is None, p.communicate()[1][-2000:]
        _ctrl_c(p, timeout=120)
    (run,) = json.loads((out / "manifest.json").read_text())["runs"]
    assert run["status"] == "interrupted" and "error" not in run and "score" in run["phases"]
    cluster.wait_nodes(2, timeout=10)                   # the user's cluster is still up
    free = cluster.cpus_back(timeout=60)
    assert free["CPU"] == 4 and free["free"] == 4, free
    r = ranker(*args, env=WITH_TOKEN, timeout=300)
    assert r.returncode == 0, r.stderr
    runs = json.loads((out / "manifest.json").read_text())["runs"]
    assert [x["status"] for x in runs] == ["interrupted", "ok"]
    assert Counter(backfill_table(out, "scores").column("id").to_pylist()) == \
        Counter(backfill_table(out, "ranked").column("id").to_pylist())            # each paper once
    assert cluster.cpus_back(timeout=60)["free"] == 4


@pytest.mark.parametrize("auth, says", [
    ({"RAY_AUTH_MODE": "disabled", "RAY_AUTH_TOKEN": ""}, "the cluster at {address} refused this driver's "),
    ({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "0" * 64}, "the cluster at {address} refused this driver's "),
    ({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "", "HOME": "{tmp}"},
     "RAY_AUTH_MODE is token and this driver has no authentication token: "),
])
def test_a_driver_without_the_clusters_token_is_told_to_give_it_before_the_embedder_loads(tmp_path, cluster, auth,
                                                                                           says):
    """A driver with no token, another token, or RAY_AUTH_MODE=token and no token anywhere: refused only by
    ray.init, after the driver had loaded the embedder and ray.init had retried for 20 s (the last one as an
    "unexpected failure"). One line naming --address, at once."""
    from ray._private.services import canonicalize_bootstrap_address
    snap = make_snapshot(tmp_path / "snap.json", 20, 10)
    address = f"127.0.0.1:{cluster.port}"
    canonical = canonicalize_bootstrap_address(address)
    named = address if canonical == address else f"{address} ({canonical})"
    start = time.monotonic()
    r = ranker("backfill", "--from", snap, "--out", tmp_path / "bf", "--embed", "--all-categories",
               "--engine", "ray", "--address", address, env={k: v.format(tmp=tmp_path) for k, v in auth.items()},
               timeout=300, pre="import sys; sys.modules['sentence_transformers'] = None")
    assert r.returncode == 1 and time.monotonic() - start < 30, r.stderr[-2000:]
    assert r.stderr.startswith("error: --address: cannot start or reach Ray: " + says.format(address=named)), r.stderr
    assert "RAY_AUTH_TOKEN" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / "bf").exists(), list((tmp_path / "bf").iterdir())
    cluster.wait_nodes(2, timeout=10)


@pytest.mark.parametrize("auth, says", [
    ({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "", "HOME": "{tmp}"},
     "RAY_AUTH_MODE is token and this driver has no authentication token: "),
    ({"RAY_AUTH_TOKEN": "", "HOME": "{tmp}"}, "the cluster at {address} refused this driver's "),
    ({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "0" * 64}, "the cluster at {address} refused this driver's "),
])
def test_auto_a_cluster_refuses_is_one_line_before_the_embedder_loads(tmp_path, cluster, monkeypatch, auth, says):
    """--address auto (RAY_ADDRESS the cluster's) and a driver the cluster refuses (RAY_AUTH_MODE=token and no
    token anywhere, no mode and no token, another token): _not_admitted left auto to ray.init, so the refusal came
    after the driver had loaded the embedder (first as an "unexpected failure"). auto is resolved as ray.init
    resolves it and checked as an explicit address: one line naming --address, at once, nothing written."""
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    monkeypatch.delenv("RAY_AUTH_TOKEN_PATH", raising=False)
    snap = make_snapshot(tmp_path / "snap.json", 20, 10)
    start = time.monotonic()
    r = ranker("backfill", "--from", snap, "--out", tmp_path / "bf", "--embed", "--all-categories",
               "--engine", "ray", "--address", "auto", timeout=300,
               env={"RAY_ADDRESS": f"127.0.0.1:{cluster.port}",
                    **{k: v.format(tmp=tmp_path) for k, v in auth.items()}},
               pre="import sys; sys.modules['sentence_transformers'] = None")
    assert r.returncode == 1 and time.monotonic() - start < 30, r.stderr[-2000:]
    from ray._private.services import canonicalize_bootstrap_address
    named = f"auto ({canonicalize_bootstrap_address(f'127.0.0.1:{cluster.port}')})"
    assert r.stderr.startswith("error: --address: cannot start or reach Ray: " + says.format(address=named)), r.stderr
    assert "RAY_AUTH_TOKEN" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / "bf").exists(), list((tmp_path / "bf").iterdir())
    cluster.wait_nodes(2, timeout=10)


def _admitted(env: dict, address: str = "auto", pre: str = "") -> str:
    code = pre + f"from ranker.backfill.ray_engine import _not_admitted; print(_not_admitted({address!r}))"
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "PYTHONPATH": str(REPO), **env})
    assert p.returncode == 0, p.stderr[-2000:]
    return p.stdout.strip()


# what the driver's process is left with after the check: its RAY_AUTH_MODE and the mode Ray's config reads
MODE_AFTER = ("; import os; from ray._raylet import AuthenticationMode, get_authentication_mode; "
              "print(os.environ.get('RAY_AUTH_MODE'), get_authentication_mode() == AuthenticationMode.TOKEN)")


def test_auto_with_the_clusters_token_is_admitted(tmp_path, cluster, monkeypatch):
    """The early check of auto lets through a driver with the cluster's token: given (RAY_AUTH_MODE=token and the
    token), or, for a cluster auto finds itself (no RAY_ADDRESS), RAY_AUTH_MODE not set and the token in
    ~/.ray/auth_token, which ray.init takes up for auto (maybe_enable_token_auth_if_token_available)."""
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    monkeypatch.delenv("RAY_AUTH_TOKEN_PATH", raising=False)
    assert _admitted({"RAY_ADDRESS": f"127.0.0.1:{cluster.port}", **WITH_TOKEN}) == "None"
    others = subprocess.run(["pgrep", "-x", "gcs_server"], capture_output=True, text=True).stdout.split()
    if len(others) != 1 or os.path.exists("/tmp/ray/ray_current_cluster"):
        pytest.skip("another Ray instance runs on this machine, or `ray start` left its address: auto would find it")
    (tmp_path / ".ray").mkdir()
    (tmp_path / ".ray" / "auth_token").write_text(TOKEN)
    assert _admitted({"RAY_ADDRESS": "", "HOME": str(tmp_path)}) == "None"
    # RAY_ADDRESS=auto is auto to ray.init (it takes the token up for it): it was refused here as an explicit address
    assert _admitted({"RAY_ADDRESS": "auto", "HOME": str(tmp_path)}) == "None"
    (tmp_path / ".ray" / "auth_token").write_text("0" * 64)
    from ray._private.services import canonicalize_bootstrap_address
    assert _admitted({"RAY_ADDRESS": "", "HOME": str(tmp_path)}).startswith(
        "cannot start or reach Ray: the cluster at "
        f"auto ({canonicalize_bootstrap_address(f'127.0.0.1:{cluster.port}')}) refused this driver's ")


def test_a_refusal_leaves_the_process_out_of_token_mode(tmp_path, cluster, monkeypatch):
    """auto, RAY_AUTH_MODE not set and a token in ~/.ray/auth_token that is not the cluster's: the check turned
    token mode on (RAY_AUTH_MODE=token, Ray's config re-read) and left it on after refusing, ray.init never
    running: a library caller that catches the RankerError, or later code of the process, was in token mode."""
    for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.delenv(k, raising=False)
    others = subprocess.run(["pgrep", "-x", "gcs_server"], capture_output=True, text=True).stdout.split()
    if len(others) != 1 or os.path.exists("/tmp/ray/ray_current_cluster"):
        pytest.skip("another Ray instance runs on this machine, or `ray start` left its address: auto would find it")
    (tmp_path / ".ray").mkdir()
    (tmp_path / ".ray" / "auth_token").write_text("0" * 64)
    code = ("from ranker.backfill.ray_engine import _not_admitted; print(_not_admitted('auto'))" + MODE_AFTER)
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "PYTHONPATH": str(REPO), "RAY_ADDRESS": "", "HOME": str(tmp_path)})
    assert p.returncode == 0, p.stderr[-2000:]
    said, after = p.stdout.strip().split("\n")[-2:]
    assert said.startswith("cannot start or reach Ray: the cluster at auto ("), said
    assert after == "None False", p.stdout


def test_a_ray_without_the_auto_token_step_still_refuses_an_explicit_address(tmp_path, cluster):
    """A Ray lacking the private names of auto's token step: they were imported with the others, so the check
    said nothing for any address, a host:port with another token included (refused by ray.init only after the
    embedder loaded). Only that step is skipped now."""
    pre = ("from ray._private.authentication import authentication_token_setup as s\n"
           "for n in ('maybe_enable_token_auth_if_token_available', '_enable_token_auth'):\n"
           "    delattr(s, n)\n")
    said = _admitted({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "0" * 64}, address=f"127.0.0.1:{cluster.port}",
                     pre=pre)
    assert said.startswith("cannot start or reach Ray: the cluster at 127.0.0.1:"), said
    assert "refused this driver's authentication token" in said, said


@pytest.mark.parametrize("form, says", [
    ("127.0.0.1:{port}", "no Ray cluster answers at 127.0.0.1:{port}"),
    # Ray Client's connect retried these past minutes before its error
    ("ray://127.0.0.1:{port}", "no Ray cluster answers at ray://127.0.0.1:{port} (127.0.0.1:{port}): Connection refused"),
    ("ray://h:99999999", "no Ray cluster at ray://h:99999999: '99999999' is not a port number (ray://HOST:PORT)"),
    ("127.0.0.1:0", "no Ray cluster at 127.0.0.1:0: '0' is not a port number (HOST:PORT, or auto)"),
])
def test_an_address_where_nothing_listens_is_one_line_at_once(tmp_path, form, says):
    snap = make_snapshot(tmp_path / "snap.json", 20, 10)
    with refusing_port() as port:
        start = time.monotonic()
        # ray.init tried it 20 times, 40 s each, before its error; and it came after the driver had loaded the
        # embedder for the prompt's queries (seconds): without sentence-transformers the line must be the same
        r = ranker("backfill", "--from", snap, "--out", tmp_path / "bf", "--embed", "--all-categories",
                   "--engine", "ray", "--address", form.format(port=port), timeout=60,
                   pre="import sys; sys.modules['sentence_transformers'] = None")
    assert r.returncode == 1 and time.monotonic() - start < 30, r.stderr[-2000:]
    assert r.stderr.startswith(f"error: --address: {says.format(port=port)}"), r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "is not a port number" in says or ": Connection refused" in r.stderr, r.stderr
    # refused before anything is recorded: the folder's manifest had a failed run and the settings it pinned
    assert not (tmp_path / "bf").exists(), list((tmp_path / "bf").iterdir())


@pytest.mark.parametrize("kind, says", [
    ("http", "an HTTP/1 server answers there ('HTTP/1.0 505 "),
    ("echo", "something other than a Ray cluster answers there ('PRI * HTTP/2.0'; "),
    ("closing", "what listens there closed the connection without a word"),
    ("silent", "what listens there answered nothing in 5 s"),
])
def test_an_address_where_something_else_listens_is_one_line_before_the_embedder_loads(tmp_path, kind, says):
    """A port where a web server, an echo, a socket that closes, or one that answers nothing listens, given as the
    cluster's address: it passed the early check (a connect), the command loaded the embedder, then waited in
    ray.init (past 200 s with a web server there) before any line. Refused at once, naming --address and what
    answered. (Listening where Ray takes 127.0.0.1 to: this machine's address.)"""
    from ray._private.services import resolve_ip_for_localhost
    host = resolve_ip_for_localhost("127.0.0.1")
    snap = make_snapshot(tmp_path / "snap.json", 20, 10)
    with listening(kind, host) as port:
        start = time.monotonic()
        r = ranker("backfill", "--from", snap, "--out", tmp_path / "bf", "--embed", "--all-categories",
                   "--engine", "ray", "--address", f"127.0.0.1:{port}", env={"RAY_USE_TLS": "0"}, timeout=120,
                   pre="import sys; sys.modules['sentence_transformers'] = None")
        took = time.monotonic() - start
    assert r.returncode == 1 and took < 30, (took, r.stderr[-2000:])
    named = f"127.0.0.1:{port}" + ("" if host == "127.0.0.1" else f" ({host}:{port})")
    assert r.stderr.startswith(f"error: --address: no Ray cluster at {named}: {says}"), r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / "bf").exists(), list((tmp_path / "bf").iterdir())


def test_every_embedder_fits_on_one_node_of_the_cluster():
    from ranker.backfill.ray_engine import embed_pool
    # (threads, embedders, CPUs each asks for): by the nodes, not the cluster's total (3 of 2+2 was never placed)
    assert embed_pool([(2, 0), (2, 0)]) == (2, 2, 1)
    assert embed_pool([(0, 0), (4, 0), (4, 0), (4, 0)]) == (4, 3, 3)     # a head that runs no work
    assert embed_pool([(16, 0), (8, 0)]) == (8, 3, 7)
    assert embed_pool([(2, 0)]) == (2, 1, 1) and embed_pool([(1, 0)]) == (1, 1, 1)   # one machine, as before
    assert embed_pool([(2, 0)], threads=4) == (4, 1, 1)


def _start_backfill(args: list, env: dict) -> subprocess.Popen:
    env = {k: v for k, v in {**os.environ, **env}.items() if k != "RANKER_DEBUG"}
    return subprocess.Popen([sys.executable, "-m", "ranker", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, start_new_session=True,
                            preexec_fn=as_at_a_terminal)      # it is sent a Ctrl-C


@contextlib.contextmanager
def _reaped(p: subprocess.Popen):
    """The driver's whole group killed if the test leaves it running (a wait that failed, a Ctrl-C not obeyed)."""
    try:
        yield p
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def _ctrl_c(p: subprocess.Popen, timeout: float) -> float:
    """A Ctrl-C (SIGINT to the driver alone, as a terminal sends it): the driver must end with the Ctrl-C's line
    and status 130; how many seconds it took to end."""
    sent = time.monotonic()
    p.send_signal(signal.SIGINT)
    _out, err = p.communicate(timeout=timeout)
    took = time.monotonic() - sent
    assert p.returncode == 130, err[-2000:]
    assert err == "interrupted; what was stored so far is kept; rerun to resume\n"
    return took


def _wait_for(p: subprocess.Popen, ready, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and p.poll() is None and not ready():
        time.sleep(0.2)
    assert p.poll() is None and ready(), (p.poll(), p.poll() is not None and p.communicate()[1][-2000:])


def test_ctrl_c_while_a_cluster_embeds_stops_the_run_and_the_rerun_resumes_past_the_finished_days(tmp_path, cluster):
    """A folder whose first two days a run finished; a run of the whole snapshot, Ctrl-C'd (SIGINT to the driver
    alone) while the cluster's embedders are at work: the command ends within seconds with the Ctrl-C's line and
    status 130, the run recorded as interrupted, nothing ranked by it; the cluster stays up with every CPU free;
    the rerun embeds only the papers of the days not finished, and ranks every paper once."""
    from collections import Counter
    # six days of 100 papers: the first two finished by a run of their own; the interrupted run has 400 to embed,
    # two batches of 256 (one for each node's embedder), and is stopped seconds after its embedders start
    snap = make_snapshot(tmp_path / "snap.json", 600, 100)
    first = tmp_path / "first.json"
    first.write_bytes(b"".join(snap.read_bytes().splitlines(keepends=True)[:200]))
    out = tmp_path / "bf"
    args = ["--out", out, "--embed", "--all-categories", "--engine", "ray", "--address", f"127.0.0.1:{cluster.port}"]
    r = ranker("backfill", "--from", first, *args, env=WITH_TOKEN, timeout=300)
    assert r.returncode == 0, r.stderr
    p = _start_backfill(["backfill", "--from", snap, *args], WITH_TOKEN)
    with _reaped(p):
        _wait_for(p, lambda: (out / "_work" / "embedded" / "params").exists() and
                  _node_of(cluster, "EmbedStage") is not None)
        time.sleep(2)
        took = _ctrl_c(p, timeout=60)
    assert took < 20, took
    runs = json.loads((out / "manifest.json").read_text())["runs"]
    assert [x["status"] for x in runs] == ["ok", "interrupted"] and "error" not in runs[1], runs[1]
    assert runs[1]["phases"]["rank"]["rows_written"] == 0, runs[1]
    cluster.wait_nodes(2, timeout=10)
    free = cluster.cpus_back(timeout=60)
    assert free["CPU"] == 4 and free["free"] == 4, free
    r = ranker("backfill", "--from", snap, *args, env=WITH_TOKEN, timeout=300)
    assert r.returncode == 0, r.stderr
    runs = json.loads((out / "manifest.json").read_text())["runs"]
    assert [x["status"] for x in runs] == ["ok", "interrupted", "ok"]
    rank = runs[2]["phases"]["rank"]
    assert rank["embedded"] + rank["already_embedded"] == 400 and rank["days_already_complete"] == 2, rank
    ids = backfill_table(out, "ranked").column("id").to_pylist()
    assert len(ids) == 600 and set(Counter(ids).values()) == {1}
    assert cluster.cpus_back(timeout=60)["free"] == 4


def _node_of(cluster: Cluster, name: str) -> int | None:
    """The index in cluster.procs of the node (its `ray start` process and what it started: raylet, workers)
    that runs a process with `name` in its command line (a Ray actor renames itself ray::<what it runs>), or
    None."""
    parent, named = {}, []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = Path(f"/proc/{d}/stat").read_text()
            parent[int(d)] = int(stat[stat.rindex(")") + 2:].split()[1])
            if name in Path(f"/proc/{d}/cmdline").read_bytes().decode(errors="replace"):
                named.append(int(d))
        except (OSError, ValueError):
            continue
    starts = {p.pid: i for i, p in enumerate(cluster.procs)}
    for pid in named:
        while pid > 1 and pid not in starts:
            pid = parent.get(pid, 1)
        if pid in starts:
            return starts[pid]
    return None
