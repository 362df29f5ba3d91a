"""The Ray Data engine (ranker[ray]): the backfill's two phases as streaming Ray Data pipelines.

    rank:  read_datasource(the papers)                   one read task per split of the source, streaming
           .map_batches(EmbedStage, ActorPoolStrategy)   one embedder per actor, built once (GPU actors: one
                                                         per GPU; CPU: one per `embed_threads` cores)
           .write_datasink(ShardSink(OUT/_work/embedded)) spilled as they complete: a rerun of a stopped run
                                                         reads past what is there (the local engine's spill too)
           then read_parquet(the spill)
           .groupby("date").map_groups(prefilter_day)    a whole day per call (the zero-shot day median), with
                                                         the rows the day already holds in OUT/ranked
           .write_datasink(ShardSink(OUT/ranked))        shards written as they complete; the spill removed
    score: read_datasource(the rows to score)            one read task per ranked shard with work, each reading
                                                         only the rows it owns: a row ranked twice is read once
           .map_batches(ScoreStage, ActorPoolStrategy)   one backend per actor, built once: a vLLM engine per
                                                         GPU, or per tensor-parallel group of GPUs
           .write_datasink(ShardSink(OUT/scores))

The two phases run one after the other, so each gets every GPU. Actors are restarted and their batch retried
when a worker dies (max_restarts / max_task_retries); shard names depend only on their rows, so a retried
batch replaces its own file. With no address, a Ray instance is started on this machine for the run and
stopped after it; with an address ("auto", "ray://host:10001") the run joins that cluster, whose every node
needs ranker with the same extras installed, the models in the same models folder (Settings.models_dir) and
the output folder on a filesystem they all mount. Workers get the run's Settings with their stage; in offline
mode, workers on other nodes get netguard's offline variables. Progress: each sink tells a counting actor what it
wrote (on the driver's node, as the read tally is; a lost count stops the progress, not the run), which a driver
thread passes to the engine's progress callback (papers embedded, days ranked, papers scored of the run's to-do),
as the local engine reports. ray is imported only here.
"""
from __future__ import annotations

import functools
import gc
import logging
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

from ..backends.base import one_line
from ..errors import ConfigError, MissingDependency, RankerError, frame_owners
from ..io import Progress
from ..netguard import worker_env
from ..settings import Settings
from . import shards
from .plan import Filters, ReadTally, SplitReport, chunks, read_split
from .stages import EmbedStage, ScoreStage, prefilter_day, unranked

READ_BLOCK_ROWS = 1000
RETRIES = 3                  # restarts of a dead actor, and retries of the batch it held
# A lost ReadTally has no restart (a restarted one would hold none of the reports sent before): its counts are in
# the manifest the user reads, so the run fails with this line rather than record them short
TALLY_LOST = ("the Ray actor counting the source lines the read skipped was lost (its process or node died), so this "
              "run's counts of them are unknown; the rows written are kept: run the backfill again, which reads "
              "past them and counts the skipped lines anew")


def import_ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise MissingDependency("ray", "ray", "the Ray engine of `ranker backfill`") from None
    return ray


# --------------------------------------------------------------------------- the pieces Ray runs
def _read_blocks(index: int, split, filters_ref, tally, rows: int):
    """The papers of one split, in blocks; then what its read skipped, to the run's ReadTally actor."""
    import ray
    filters = ray.get(filters_ref[0])
    report = SplitReport(source=split.path)
    for batch in chunks(read_split(split, filters, report), rows):
        yield shards.papers_table(batch)
    if tally is not None:
        try:
            ray.get(tally.add.remote(index, report.record()))
        except ray.exceptions.RayActorError:
            raise RankerError(TALLY_LOST) from None


def papers_datasource(splits, filters, tally=None, rows_per_block: int = READ_BLOCK_ROWS):
    """A Ray Data datasource of the source's papers: one read task per split, blocks of ranked-schema rows.
    The filters go into the object store once (on a rerun they hold every row already ranked: a PairSet of
    millions of hashes for a snapshot), and each read task carries only a reference to them. Each task reports what its
    split skipped to `tally` (a ReadTally actor), by the split's index: a retried task replaces its report."""
    import ray
    filters_ref = [ray.put(filters)]       # held in a list, as _read_todo's reference is
    return _datasource([(functools.partial(_read_blocks, i, s, filters_ref, tally, rows_per_block), s.path)
                        for i, s in enumerate(splits)], shards.RANKED)


def _read_todo(path: str, keys_ref, rows: int):
    """The rows of one ranked shard to score: those it owns (shards.todo_per_file), each once."""
    import ray
    t = shards.read_to_score(Path(path), None if keys_ref is None else set(ray.get(keys_ref[0])))
    for start in range(0, t.num_rows, rows):
        yield t.slice(start, rows)


def todo_datasource(todo: shards.ScoreTodo, rows_per_block: int = READ_BLOCK_ROWS):
    """A Ray Data datasource of the ranked rows to score: one read task per shard that holds any, each with a
    reference to only its own rows, so a row ranked twice (twice in one shard, or in two) is read once."""
    import pyarrow as pa
    import ray
    reads = []
    for f, keys in zip(todo.files, shards.todo_per_file(todo)):
        if keys is not None and not keys:
            continue
        ref = None if keys is None else [ray.put(sorted(keys))]
        path = os.path.abspath(f)          # read by a worker, in a folder of Ray's
        reads.append((functools.partial(_read_todo, path, ref, rows_per_block), path))
    return _datasource(reads, pa.schema([shards.RANKED.field(n) for n in shards.SCORE_INPUT]))


def _datasource(reads, schema):
    """A Ray Data datasource of one read task per (generator function, the file it reads)."""
    from ray.data import Datasource, ReadTask
    from ray.data.block import BlockMetadata

    class FilesDatasource(Datasource):
        def estimate_inmemory_data_size(self):
            return None

        def get_read_tasks(self, parallelism, per_task_row_limit=None, data_context=None):
            return [ReadTask(fn, BlockMetadata(num_rows=None, size_bytes=None, exec_stats=None, input_files=[path]),
                             schema=schema)
                    for fn, path in reads]

    return FilesDatasource()


class WriteCount:
    """What the sinks of a pipeline wrote so far (a Ray actor the write tasks tell), for the progress."""

    def __init__(self):
        self.n = 0

    def add(self, n: int) -> None:
        self.n += n

    def get(self) -> int:
        return self.n


def shard_sink(root: str, prefix: str, schema, min_rows: int, count=None, days: bool = False):
    """A Ray Data datasink writing each write task's rows as per-day shards (shards.write_partitioned); each
    write task tells `count` (a WriteCount actor) the rows it wrote, or the days with `days`."""
    import pyarrow as pa
    from ray.data.block import BlockAccessor
    from ray.data.datasource import Datasink

    class ShardSink(Datasink):
        def __init__(self):
            self.files: list = []
            self.rows = 0

        @property
        def min_rows_per_write(self):
            return min_rows

        def write(self, blocks, ctx):
            tables = [BlockAccessor.for_block(b).to_arrow() for b in blocks]
            # a shuffle partition that held no day comes as an empty block without columns
            tables = [shards.conform(t, schema) for t in tables if t.num_rows]
            if not tables:
                return []
            written = shards.write_partitioned(pa.concat_tables(tables), root, prefix)
            if count is not None:             # waited for: counted before the pipeline can end
                import ray
                try:
                    ray.get(count.add.remote(len(written) if days else sum(n for _, n in written)))
                except Exception:             # a lost count stops the progress, never the run (its rows are written)
                    pass
            return written

        def on_write_complete(self, write_result):
            self.files = [f for r in write_result.write_returns for f in (r or [])]
            self.rows = int(write_result.num_rows)

    return ShardSink()


def _deferring(cls):
    """The stage class for an actor pool, holding back a RankerError of its constructor (a missing model, a
    bad option) until its first batch: raised there, it reaches the driver as itself; raised while the actor
    is built, Ray only passes on a traceback's text."""
    class Stage(cls):
        def __init__(self, *args, **kwargs):
            self._error = None
            try:
                super().__init__(*args, **kwargs)
            except RankerError as e:
                self._error = e

        def __call__(self, t):
            if self._error is not None:
                raise self._error
            return super().__call__(t)

    Stage.__name__ = Stage.__qualname__ = cls.__name__
    return Stage


def _prefilter_group(t, plan, done):
    if t.num_rows == 0:
        return shards.RANKED.empty_table()
    return prefilter_day(t, plan, done.get(t.column("date")[0].as_py(), frozenset()))


def _map_batches(ds, fn, **kwargs):
    """map_batches with bounded actor restarts and batch retries. Ray 2.60 takes them only as extra remote
    arguments, which it marks deprecated (its own default is to retry forever)."""
    import warnings
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*ray_remote_args.*deprecated")
        return ds.map_batches(fn, max_restarts=RETRIES, max_task_retries=RETRIES, **kwargs)


def _causes(e: BaseException, *, context: bool = False) -> list[BaseException]:
    """`e` and the exceptions it wraps, outermost first: the last is what a worker raised, out of Ray's wrappers
    (with `context`, also the exception each was raised while handling)."""
    chain, seen = [e], {id(e)}
    while True:
        nxt = getattr(e, "cause", None)
        nxt = nxt if isinstance(nxt, BaseException) else (e.__cause__ or (e.__context__ if context else None))
        if nxt is None or id(nxt) in seen:
            return chain
        seen.add(id(nxt))
        chain.append(nxt)
        e = nxt


# The advice Ray Data adds to a worker's exception once its retries are spent: to the end of its first argument when
# that is text, else as one more argument, which an OSError takes for its file name
RETRY_ADVICE = re.compile(r"\s*Failed to [^\n]*? after \d+/\d+ attempts \(total backoff [\d.]+s\)\..*?"
                          r"if you believe this to be transient\.", re.S)


def _root_text(e: BaseException) -> tuple[BaseException, str]:
    """The innermost cause of `e` and its text as the worker had it, without Ray's retry advice. An OSError's file
    name is not in the copy that reaches the driver (Ray's advice took its place among the arguments, all the copy
    keeps: "No such file or directory: 'Failed to apply UDF transform after 1/1 attempts..."); the worker's own
    line for it ends the traceback text its wrapper carries."""
    chain = _causes(e)
    root = chain[-1]
    text = RETRY_ADVICE.sub("", str(root))
    if isinstance(root, OSError) and isinstance(root.filename, str) and RETRY_ADVICE.fullmatch(root.filename):
        text = str(OSError(root.errno, root.strerror))
        head = f"{type(root).__name__}: {text}"
        for wrapper in reversed(chain[:-1]):
            lines = [x for x in RETRY_ADVICE.sub("", str(wrapper)).splitlines() if x.startswith(head)]
            if lines:
                text = lines[-1][len(type(root).__name__) + 2:]
                break
    return root, text


def _failure(e: BaseException) -> RankerError:
    """The error a failed pipeline reaches the caller as: the worker's own RankerError, or one line naming the
    innermost cause; detached from every traceback and chained exception (they hold the pipeline's frames)."""
    err = _ranker_error(e)
    if err is not None:       # Ray Data appends its retry advice to the exception's text: drop it
        err.args = (err.render(),)
    else:
        root, text = _root_text(e)
        err = RankerError(f"the Ray pipeline failed: {type(root).__name__}: {one_line(Exception(text))} "
                          "({key:debug} shows Ray's log)")
    err.__cause__ = err.__context__ = None
    err.__suppress_context__ = True
    return err.with_traceback(None)


def _ranker_error(e: BaseException) -> RankerError | None:
    """The RankerError a worker raised, out of the exceptions Ray wraps it in."""
    seen = set()
    todo = [e]
    while todo:
        x = todo.pop(0)
        if x is None or id(x) in seen:
            continue
        seen.add(id(x))
        cause = getattr(x, "cause", None)
        if isinstance(cause, RankerError):
            return cause
        if isinstance(x, RankerError) and type(x).__module__.startswith("ranker"):
            return x
        todo += [cause if isinstance(cause, BaseException) else None, x.__cause__, x.__context__]
    return None


def _not_answering(address: str, timeout: float = 5.0) -> str | None:
    """Why no Ray cluster answers at `address` (host:port, or "auto": RAY_ADDRESS or the cluster
    `ray start` started on this machine): nothing listens there, or what does is no gRPC server (_not_http2). None
    when a gRPC server answers there (with TLS, RAY_USE_TLS: when anything listens) or it cannot be told here (a
    Ray Client address without a port, a name offline mode does not look up): then ray.init says what it finds."""
    import socket
    if "://" in address:
        # Ray Client (ray://HOST:PORT): its connect retries a port where nothing listens, or one that cannot be,
        # for minutes; another protocol's module is ray.init's own, as it reads it
        scheme, _, rest = address.partition("://")
        hostport = rest.split("/", 1)[0]
        if scheme.lower() != "ray" or ":" not in hostport.rpartition("]")[2]:   # no port: Ray Client's default
            return None
    else:
        try:
            from ray._private.services import canonicalize_bootstrap_address
            hostport = canonicalize_bootstrap_address(address)
        except ConnectionError as e:
            # `auto` where RAY_ADDRESS is not set and no cluster runs on this machine: ray.init says the same,
            # but only after the driver's own work (the embedder it loads for the prompt's queries)
            return f"no Ray cluster at {address}: {one_line(e)}"
        except Exception:             # ray.init names a bad address in its own words
            return None
        if not hostport or "://" in hostport:     # `auto` that RAY_ADDRESS makes a Ray Client address
            return None
    host, _, port = hostport.rpartition(":")
    if not (port.isdigit() and 0 < int(port) < 65536):
        form = "ray://HOST:PORT" if "://" in address else "HOST:PORT, or auto"
        return f"no Ray cluster at {address}: {port!r} is not a port number ({form})"
    named = _named(address, hostport)
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout) as sock:
            other = None if _tls() else _not_http2(sock, timeout)
            return None if other is None else f"no Ray cluster at {named}: {other}"
    except RankerError:           # offline mode's guard: not to be told from here
        return None
    except socket.gaierror as e:
        from ..netguard import is_offline
        return None if is_offline() else f"no Ray cluster at {address}: cannot look up {host} ({one_line(e)})"
    except (OSError, ValueError) as e:
        why = "timed out" if isinstance(e, TimeoutError) else (getattr(e, "strerror", None) or one_line(e))
        return f"no Ray cluster answers at {named}: {why}"


# HTTP/2's client connection preface and an empty SETTINGS frame (RFC 9113 3.4): what a gRPC client sends first
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])


def _tls() -> bool:
    """Whether this driver speaks TLS to the cluster (RAY_USE_TLS): its servers answer a TLS handshake, not
    HTTP/2 in the clear."""
    return os.environ.get("RAY_USE_TLS", "0").strip().lower() in ("1", "true")


def _named(address: str, hostport: str) -> str:
    """`address` as an error names it: with the host:port it stands for where that differs (`auto`, ray://)."""
    return address if address == hostport else f"{address} ({hostport})"


def _not_http2(sock, timeout: float) -> str | None:
    """What answered on `sock` (connected to a cluster's address) when it is no gRPC server, in words, or None
    when an HTTP/2 server did: its first frame, SETTINGS (type 4, stream 0). A Ray cluster's GCS (and a Ray
    Client server) speaks gRPC; another listener there (a web server on the port, an echo, a proxy that answers
    nothing) passed the connect, and ray.init then waited for it a minute and more, after the driver's own
    work (the embedder it loads for the prompt's queries), to end in a line that named no cause."""
    end = time.monotonic() + timeout      # the check's, not each read's: a byte a while kept it a minute and more
    got = b""
    try:
        _until(sock, end)
        sock.sendall(H2_PREFACE)
        while len(got) < 9:
            _until(sock, end)
            chunk = sock.recv(9 - len(got))
            if not chunk:
                break
            got += chunk
        if got and not _settings_frame(got):     # the rest of its first line, if it comes at once
            line_end = min(end, time.monotonic() + 1.0)
            while b"\n" not in got and len(got) < 120:
                _until(sock, line_end)
                chunk = sock.recv(120 - len(got))
                if not chunk:
                    break
                got += chunk
    except TimeoutError:
        if not got:
            return f"what listens there answered nothing in {timeout:g} s (a Ray cluster speaks gRPC at once)"
    except OSError:                       # a reset: read as the close it is
        pass
    if _settings_frame(got):
        return None
    if not got:
        return "what listens there closed the connection without a word (a Ray cluster speaks gRPC, HTTP/2)"
    line = got.split(b"\n", 1)[0].rstrip(b"\r").decode("latin-1")
    line = line if len(line) <= 60 else line[:57] + "..."
    if got.startswith(b"HTTP/"):
        return f"an HTTP/1 server answers there ({line!r}), not a Ray cluster (gRPC, HTTP/2)"
    return f"something other than a Ray cluster answers there ({line!r}; a Ray cluster speaks gRPC, HTTP/2)"


def _until(sock, end: float) -> None:
    """Bound `sock`'s next call by the time left to `end` (time.monotonic()); TimeoutError when none is left."""
    left = end - time.monotonic()
    if left <= 0:
        raise TimeoutError
    sock.settimeout(left)


def _settings_frame(got: bytes) -> bool:
    """Whether `got` is an HTTP/2 frame header of a SETTINGS frame (type 4) on stream 0, as a server's first."""
    return len(got) == 9 and got[3] == 4 and got[5:] == bytes(4) and int.from_bytes(got[:3], "big") % 6 == 0


def _not_admitted(address: str, timeout: float = 5.0) -> str | None:
    """Why the Ray cluster that answers at `address` (host:port) would refuse this driver for its authentication
    token, or None (admitted, or not to be told here): a driver with RAY_AUTH_MODE=token and no token, or one
    without the token the cluster asks for, or with another. ray.init said so only after the driver's own work
    (the embedder it loads for the prompt's queries) and 20 s of its retries; asked here of the cluster's GCS
    once, as ray.init asks it first (its cluster id). `auto` is resolved as ray.init resolves it (RAY_ADDRESS, else
    the cluster `ray start` last started here, ray_current_cluster, else any of this machine's), and for a cluster
    found so (RAY_ADDRESS not set, empty or auto) token authentication is turned on where RAY_AUTH_MODE is not set
    and this machine has a token, as ray.init turns it on for it (and put back after the question: ray.init turns
    it on again): auto was left to ray.init, a driver the cluster refuses told so only after the embedder had
    loaded. A Ray without that step's function is asked without it. A Ray Client address (RAY_ADDRESS's too) is
    its server's check.
    Asked only of an address whose listener answered HTTP/2 (_not_answering): a gRPC server that takes the call
    and answers nothing holds it `timeout` s; Ray's client adds its own wait of about 10 s for a channel that
    cannot connect at all (15 s at 5 s, 11 s at 0.1 s: a limit below `timeout` would shorten only the case of
    a slow cluster), the worst case here when the cluster went away after answering the probe."""
    from_env = os.environ.get("RAY_ADDRESS") if address == "auto" else None
    if "://" in (from_env or address):
        return None
    # ray.init replaces auto by RAY_ADDRESS only when it is not empty, and takes a token up for auto still auto
    explicit = from_env not in (None, "", "auto")
    try:
        from ray._private.authentication.authentication_token_setup import (AUTH_MODE_ENV_VAR,
                                                                            ensure_token_if_auth_enabled)
        from ray._private.services import canonicalize_bootstrap_address
        from ray._raylet import InnerGcsClient
        from ray.exceptions import AuthenticationError
        hostport = canonicalize_bootstrap_address(address)
    except Exception:               # another Ray, or no cluster for auto: ray.init says what it finds
        return None
    if not hostport:
        return None
    mode_before = os.environ.get(AUTH_MODE_ENV_VAR)
    try:
        return _refused(address, hostport, explicit, timeout, ensure_token_if_auth_enabled, InnerGcsClient,
                        AuthenticationError)
    finally:
        # only a question: token mode it turned on is put back (ray.init turns it on again for auto it admits),
        # so that a caller that catches the refusal, or later code of this process, is not left in token mode
        if os.environ.get(AUTH_MODE_ENV_VAR) != mode_before:
            _restore_auth_mode(AUTH_MODE_ENV_VAR, mode_before)


def _refused(address, hostport, explicit, timeout, ensure_token_if_auth_enabled, InnerGcsClient,
             AuthenticationError) -> str | None:
    """_not_admitted's question of the cluster at `hostport`, token mode turned on first as ray.init turns it on
    for an address it resolves itself (`explicit` false); a Ray without that step is asked without it."""
    try:
        if address == "auto" and not explicit:
            from ray._private.authentication import authentication_token_setup as setup
            enable = getattr(setup, "maybe_enable_token_auth_if_token_available", None)
            if enable is not None:  # what ray.init calls for auto next; its warning is ray.init's to give
                log = logging.getLogger(setup.__name__)
                was, log.disabled = log.disabled, True
                try:
                    enable(warn_if_disabled=False)
                finally:
                    log.disabled = was
        ensure_token_if_auth_enabled(None, create_token_if_missing=False)
    except AuthenticationError:
        return ("cannot start or reach Ray: RAY_AUTH_MODE is token and this driver has no authentication token: "
                "put the cluster's token in ~/.ray/auth_token, RAY_AUTH_TOKEN_PATH or RAY_AUTH_TOKEN")
    except Exception:
        return None
    try:
        InnerGcsClient.standalone(hostport, None, int(timeout * 1000))
    except AuthenticationError as e:
        return (f"cannot start or reach Ray: the cluster at {_named(address, hostport)} refused this driver's "
                f"authentication token (none, or not the cluster's){_auth_hint(e)}")
    except Exception:               # not reached in time, or no Ray of this version: ray.init says what it finds
        return None
    return None


def _restore_auth_mode(var: str, before: str | None) -> None:
    """RAY_AUTH_MODE as it was before _not_admitted turned token mode on, and Ray's cached config read again."""
    if before is None:
        os.environ.pop(var, None)
    else:
        os.environ[var] = before
    try:
        from ray._raylet import Config
        Config.initialize("")
    except Exception:
        pass


def _auth_hint(e: BaseException) -> str:
    """What to do when a cluster refused this driver for want of its authentication token (Ray enables token
    authentication for `ray start` once a token exists, and a driver given an address does not send one
    unless told): Ray says only that it failed to connect, the reason deep in a chained traceback's text."""
    if any("AuthenticationError" in type(x).__name__ or "InvalidAuthToken" in str(x)
           for x in _causes(e, context=True)):
        return ("; the cluster asks for its authentication token: set RAY_AUTH_MODE=token with the "
                "cluster's token in ~/.ray/auth_token, RAY_AUTH_TOKEN_PATH or RAY_AUTH_TOKEN")
    return ""


def for_workers(job):
    """The job as a worker sees it: its paths absolute (the output folder, the source's files, the models folder,
    the calibration, an embedder, model or vLLM engine argument named by a relative folder). The prompts, the
    exclusions and pinned authors and the calibration are read by the driver and shipped loaded. A worker runs
    in a folder of Ray's, not the command's: on a cluster a relative --out was written under the workers'
    folder while the driver found nothing there (the run said it ranked no paper), and a relative models
    folder, source or model folder was not found."""
    import dataclasses
    from ..settings import ENGINE_NAME_ARGS, ENGINE_PATH_ARGS
    s = job.settings
    pre = s.prefilter
    update: dict = {"embedder": _model_for_workers(pre.embedder, s.models_dir)}
    if pre.calibration is not None:
        update["calibration"] = Path(pre.calibration).absolute()
    pre = pre.model_copy(update=update)
    # the model and vLLM's engine arguments that name a file or folder, as resolve and the engine read them
    scoring = s.scoring.model_copy(update={"model": _model_for_workers(s.scoring.model, s.models_dir)})
    vllm = scoring.options.get("vllm")
    if isinstance(vllm, dict) and isinstance(vllm.get("engine_args"), dict):
        args = dict(vllm["engine_args"])
        for k in ENGINE_PATH_ARGS + ENGINE_NAME_ARGS:
            if isinstance(args.get(k), str) and args[k].strip():
                args[k] = _model_for_workers(args[k], s.models_dir, always=k in ENGINE_PATH_ARGS)
        scoring = scoring.model_copy(update={"options": {**scoring.options, "vllm": {**vllm, "engine_args": args}}})
    settings = s.model_copy(update={"models_dir": Path(s.models_dir).absolute(), "prefilter": pre,
                                    "scoring": scoring})
    splits = [dataclasses.replace(x, path=os.path.abspath(x.path)) for x in job.source.splits]
    return dataclasses.replace(job, out=Path(job.out).absolute(), settings=settings,
                               source=dataclasses.replace(job.source, splits=splits))


def _model_for_workers(name: str, models_dir: Path | None, *, always: bool = False) -> str:
    """A model (or tokenizer, or engine argument's file) named by a folder of the command's working folder,
    named from the root: a worker looking for 'embs/mini' in Ray's folder took it for a Hugging Face id. A
    preset, an id, "auto" and an absolute path stay as given; a relative name that is no folder here stays too
    unless written as one ("./x", "../x") or `always` (a path whatever it holds: vLLM's download_dir)."""
    from .. import models
    path = Path(name).expanduser()
    if path.is_absolute() or name in ("auto", "vllm"):
        return name
    try:
        if name in models.presets(models_dir):
            return name
    except RankerError:          # no presets to read: the worker's resolve says so
        pass
    if always or path.exists() or name.startswith(("./", "../")):
        return str(path.absolute())
    return name


def embed_pool(nodes: list[tuple[float, float]], threads: int | None = None) -> tuple[int, int, int]:
    """(threads per embedder, embedders, CPUs each asks for) of a CPU-only cluster of `nodes` ((CPUs, GPUs)
    each): an embedder per `threads` CPUs of a node (by default the largest node's, at most 8), each asking
    for one CPU fewer (left to the read and write tasks); every embedder fits on one node."""
    largest = max([c for c, _ in nodes] + [1])
    threads = threads or int(min(largest, 8)) or 1
    n = sum(int(c // threads) for c, _ in nodes)
    return threads, max(1, n), int(max(1, min(threads, largest) - 1))


def gpus_per_engine(settings: Settings) -> int:
    """GPUs one scoring engine takes: the chosen backend's tensor_parallel_size (its engine_args' wins)."""
    from ..backends import backend_class
    name = settings.scoring.backend
    o = backend_class(name).parse_options(settings.scoring.options.get(name))
    engine_args = getattr(o, "engine_args", None) or {}
    return max(1, int(engine_args.get("tensor_parallel_size") or getattr(o, "tensor_parallel_size", 1) or 1))


# --------------------------------------------------------------------------- the engine
class RayEngine:
    name = "ray"

    def __init__(self, address: str | None = None, progress: Progress | None = None, *, debug: bool = False,
                 num_cpus: int | None = None, object_store_mb: int = 512, embed_actors: int | None = None,
                 embed_threads: int | None = None, score_actors: int | None = None, progress_bars: bool = False,
                 sample_memory: bool = True):
        """debug (Settings.debug): leave Ray's own console lines and native log lines on stderr."""
        self.ray = import_ray()
        self.address = address
        self.progress = progress
        self.debug = debug
        self.num_cpus = num_cpus
        self.object_store_mb = object_store_mb
        self.embed_actors, self.embed_threads, self.score_actors = embed_actors, embed_threads, score_actors
        self.progress_bars = progress_bars
        self.sample_memory = sample_memory
        self.processes: list[dict] | None = None
        # whose memory `processes` holds: with an address, the driver's alone (the cluster's workers are the
        # children of its nodes' raylets, on other machines or not, and are not sampled); else this driver and the
        # Ray instance it started, workers included
        self.processes_of = "driver" if address else "driver and its Ray instance"
        self._own = False
        self._connected = False
        self._temp: str | None = None
        self._sampler = None
        self._filter = None

    # ------------------------------------------------------------------ session
    def check_address(self) -> None:
        """The cluster address where nothing answers, or that cannot be one, or whose cluster refuses this
        driver's authentication token: its one line (a RankerError naming the address), before the driver does
        any work of its own (the embedder it loads for the prompt's queries took seconds before a mistyped port
        was said). Connecting checks the address again."""
        if self.address and not self._connected and not self.ray.is_initialized():
            why = _not_answering(self.address)
            if why is None:
                # Ray's C++ client logs the refusal on stderr besides raising it: one line is the user's
                quiet = None if self.debug else NativeLogFilter().start()
                try:
                    why = _not_admitted(self.address)
                finally:
                    if quiet is not None:
                        quiet.stop()
            if why is not None:
                raise RankerError(why, key="address")

    def _connect(self) -> None:
        if self._connected:
            return
        ray = self.ray
        if self._filter is None and not self.debug:
            self._filter = NativeLogFilter().start()
        if self.sample_memory:
            from .procmem import PeakSampler
            self._sampler = PeakSampler().start()
        if not ray.is_initialized():
            common = dict(log_to_driver=False, logging_level=logging.ERROR, include_dashboard=False)
            failure: RankerError | None = None
            term = _KeptSigterm()
            try:
                if self.address:
                    # ray.init retries an address where nothing listens 20 times, 40 s each: a mistyped port
                    # was a wait of 13 minutes before its error
                    why = _not_answering(self.address)
                    if why is not None:
                        raise RankerError(why, key="address")
                    # workers on other nodes do not inherit this process's environment: offline mode travels
                    # to them as variables (a local instance's workers are this process's children)
                    env = worker_env()
                    ray.init(address=self.address, runtime_env={"env_vars": env} if env else None, **common)
                else:
                    self._temp = tempfile.mkdtemp(prefix="ranker-ray-", dir="/tmp")
                    ray.init(num_cpus=self.num_cpus or os.cpu_count() or 1,
                             object_store_memory=int(self.object_store_mb) << 20, _temp_dir=self._temp, **common)
            except BaseException as e:
                self._stop_failed_start(e)
                term.passed_on(e)
                if isinstance(e, RankerError):
                    raise
                # AuthenticationError: RAY_AUTH_MODE=token and no token found (where the early check left it to
                # ray.init: a `ray://` address, or a Ray without the names it asks with), an "unexpected failure"
                # with the advice to set RANKER_DEBUG
                if not isinstance(e, (ConnectionError, RuntimeError, ValueError, ray.exceptions.AuthenticationError)):
                    raise
                failure = RankerError(f"cannot start or reach Ray: {one_line(e)}{_auth_hint(e)}",
                                      key="address" if self.address else None)
            finally:
                term.restore()
            if failure is not None:
                raise failure
            self._own = True
        if not self.debug:
            # Ray Data's console lines (progress notes, and each failure with Ray's traceback) stay in its log
            # file; a failure reaches the user as one line from the exception
            for h in logging.getLogger("ray.data").handlers:
                if not type(h).__name__.endswith("FileHandler"):
                    h.setLevel(logging.CRITICAL + 1)
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = self.progress_bars
        ctx.print_on_execution_start = False
        ctx.raise_original_map_exception = True     # a stage's RankerError comes back as itself
        self._connected = True

    def _stop_failed_start(self, e: BaseException) -> None:
        """Stop what a ray.init that failed had started. It can fail after starting Ray's first processes (the
        GCS, the autoscaler's monitor, the dashboard on its port: an object store below Ray's minimum, a raylet
        that does not come up), and ray.shutdown() does not know of them: they ran until this process exited,
        their folder left in /tmp. They are the processes of the Node in the failure's frames; a Node ray.init had
        already made its own, ray.shutdown() stops."""
        try:
            from ray._private.node import Node
        except ImportError:       # another Ray: what ray.shutdown() knows is stopped all the same
            Node = None
        for node in frame_owners(e) if Node is not None else ():
            if isinstance(node, Node):
                try:
                    node.kill_all_processes(check_alive=False, allow_graceful=True, wait=True)
                except Exception:
                    pass
        try:
            self.ray.shutdown()
        except Exception:
            pass
        if self._temp:
            shutil.rmtree(self._temp, ignore_errors=True)
            self._temp = None

    def _resources(self) -> tuple[float, float]:
        r = self.ray.cluster_resources()
        return float(r.get("CPU", 1)), float(r.get("GPU", 0))

    def _nodes(self) -> list[tuple[float, float]]:
        """(CPUs, GPUs) of each live node: an actor runs on one node, so a pool is sized by them, not by the
        cluster's totals (an embedder asking for 3 of 2+2 CPUs was never placed, and the run waited forever)."""
        nodes = [(float(n.get("Resources", {}).get("CPU", 0)), float(n.get("Resources", {}).get("GPU", 0)))
                 for n in self.ray.nodes() if n.get("Alive")]
        return nodes or [self._resources()]

    def _execute(self, run, stage: str | None = None, total: int | None = None, count=None) -> None:
        """Run a pipeline; with `stage`, its sink's WriteCount `count` goes to the progress callback as it grows
        (a driver thread polls it: the driver itself waits in Ray while the pipeline runs)."""
        watch = None
        if stage is not None and count is not None and self.progress is not None:
            watch = _Watch(self.ray, count, lambda n: self.progress(stage, min(n, total) if total else n, total))
        failure: RankerError | None = None
        try:
            if watch is not None:
                watch.start()
            run()
        except Exception as e:
            failure = _failure(e)
        finally:
            if watch is not None:
                watch.stop()
            if count is not None:
                self.ray.kill(count)
        if failure is not None:
            # Ray Data lets a failed pipeline's actors go by dropping its references to them, not by killing
            # them; the last references sit in the dead frames of the failure's traceback, in cycles that only
            # a full collection frees, and each actor holds its CPUs or GPU until then: the next pipeline in
            # this process waited forever for them. The error goes up without that traceback, collected first.
            gc.collect()
            raise failure

    def _count(self):
        """A WriteCount actor for one pipeline's sink (None without a progress callback, or while Ray Data draws
        its own bars on the same terminal)."""
        if self.progress is None or self.progress_bars:
            return None
        return self._bookkeeper(WriteCount)

    def _bookkeeper(self, cls, *args):
        """An actor of `cls` for the run's bookkeeping (a WriteCount, the ReadTally): no CPU, and on the driver's
        node, with no restart. Placed by Ray's default it could sit on any node of a cluster, and a worker node
        lost mid-run took it with it: the sinks' count failed the whole pipeline, a lost tally the ranking's end.
        On the driver's node it lives as long as the run can."""
        ray = self.ray
        try:
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
            here = ray.get_runtime_context().get_node_id()
        except Exception:           # a driver whose node cannot be told (another Ray's client): Ray's default
            here = None
        opts: dict = {"num_cpus": 0, "max_restarts": 0}
        if here:
            opts["scheduling_strategy"] = NodeAffinitySchedulingStrategy(node_id=here, soft=False)
        return ray.remote(**opts)(cls).remote(*args)

    def _tallied(self, tally) -> dict:
        """The manifest's record of what the read skipped (ReadTally.record; `rank` ends the actor)."""
        try:
            return self.ray.get(tally.record.remote())
        except self.ray.exceptions.RayActorError:
            raise RankerError(TALLY_LOST) from None

    # ------------------------------------------------------------------ the phases
    def rank(self, job) -> dict:
        self._connect()
        job = for_workers(job)
        tally = self._bookkeeper(ReadTally, job.source.splits)    # the read tasks report to it
        try:
            return self._rank(job, tally)
        finally:
            # also when a pipeline failed: the handle in the error's frames kept the actor (a worker process)
            # alive for as long as the caller held the error
            self.ray.kill(tally)

    def _rank(self, job, tally) -> dict:
        ray, spec = self.ray, job.spec
        cpus, gpus = self._resources()
        info: dict = {"read_tasks": len(job.source.splits)}
        if job.plan is None:
            ds = ray.data.read_datasource(papers_datasource(job.source.splits, job.filters, tally))
            ds = ds.map_batches(unranked, batch_format="pyarrow")
            count = self._count()
            sink = shard_sink(str(job.out / shards.RANKED_DIR), "ranked", shards.RANKED, spec.shard_rows, count)
            self._execute(lambda: ds.write_datasink(sink), "reading", None, count)
            return {**info, "input": self._tallied(tally), "shards": len(sink.files), "rows_written": sink.rows,
                    "written_by_day": shards.rows_by_day(sink.files)}
        # 1. embed what a killed run did not: spilled to OUT/_work/embedded (a day is ranked only whole, after
        #    a shuffle that keeps nothing if the run dies, so the embedding is kept apart from it)
        work = job.embedded_dir()
        spilled = shards.pairs_in(shards.shard_files(work))
        filters = Filters(**{**job.filters.__dict__, "skip_pairs": job.filters.skip_pairs | spilled})
        ds = ray.data.read_datasource(papers_datasource(job.source.splits, filters, tally))
        if gpus >= 1:
            n, threads = self.embed_actors or int(gpus), None
            res = {"num_gpus": 1, "num_cpus": 1}
            device = spec.device or "cuda"
        else:
            threads, n, per_actor = embed_pool(self._nodes(), self.embed_threads)
            n = self.embed_actors or n
            res = {"num_cpus": per_actor}
            device = spec.device
        ds = _map_batches(ds, _deferring(EmbedStage),
                          fn_constructor_kwargs=dict(settings=job.settings, device=device, threads=threads),
                          batch_size=spec.embed_batch, batch_format="pyarrow",
                          compute=ray.data.ActorPoolStrategy(size=n), **res)
        info.update(embed_actors=n, embed_threads=threads, embed_resources=res)
        count = self._count()
        spill = shard_sink(str(work), "emb", shards.RANKED, spec.shard_rows, count)
        self._execute(lambda: ds.write_datasink(spill), "embedding", None, count)
        info.update(input=self._tallied(tally), embedded=spill.rows, already_embedded=len(spilled))
        # 2. rank every day with new papers whole: its spilled rows with the rows it already holds (their
        #    vectors; days a killed run ranked in full since it spilled them are left out)
        spilled_files = shards.shard_files(work)
        days = sorted(shards.days_with_new_rows(spilled_files, job.filters.skip_pairs))
        ranked_root = job.out / shards.RANKED_DIR
        held = [f for d in days for f in shards.shard_files(ranked_root, d, d)]
        # the ids a day already holds go to its prefilter task (only those days': a newer snapshot's last few)
        done: dict[str, set[str]] = {}
        t = shards.read_table(held, shards.RANKED, ["id", "date"])
        for i, d in zip(t.column("id").to_pylist(), t.column("date").to_pylist()):
            done.setdefault(d, set()).add(i)
        wanted = set(days)
        files = [f for f in spilled_files if f.parent.name[5:] in wanted] + held
        rows, written = 0, []
        if files:
            parts = max(2, min(200, int(cpus) * 2))
            ds = ray.data.read_parquet([str(f) for f in files], partitioning=None)
            ds = ds.groupby("date", num_partitions=parts).map_groups(
                _prefilter_group, fn_kwargs={"plan": job.plan, "done": done}, batch_format="pyarrow")
            count = self._count()
            sink = shard_sink(str(ranked_root), "ranked", shards.RANKED, spec.shard_rows, count, days=True)
            self._execute(lambda: ds.write_datasink(sink), "ranking days", len(days), count)
            rows, written = sink.rows, sink.files
        job.embedded_done(work)
        return {**info, "shards": len(written), "rows_written": rows,
                "written_by_day": shards.rows_by_day(written)}

    def score(self, job, todo: shards.ScoreTodo) -> dict:
        self._connect()
        ray, spec = self.ray, job.spec
        cpus, gpus = self._resources()
        backend = job.settings.scoring.backend
        if gpus >= 1 and backend in ("vllm", "transformers"):
            tp = gpus_per_engine(job.settings)
            nodes = self._nodes()
            most = max(g for _, g in nodes)
            if tp > most:           # an actor that cannot be placed: Ray Data would wait for it forever
                where = "the Ray cluster has" if len(nodes) == 1 else "no node of the Ray cluster has more than"
                raise ConfigError(f"one scoring engine takes {tp} GPUs and {where} {most:g}; use at "
                                  "most as many", key=f"scoring.{backend}.tensor_parallel_size")
        job = for_workers(job)
        ds = ray.data.read_datasource(todo_datasource(todo))
        if gpus >= 1 and backend in ("vllm", "transformers"):
            n = self.score_actors or max(1, sum(int(g) // tp for _, g in nodes))
            res = {"num_gpus": tp, "num_cpus": 1}
        else:
            n = self.score_actors or 1
            res = {"num_cpus": 1}
        opts = job.options
        ds = _map_batches(ds, _deferring(ScoreStage),
                          fn_constructor_kwargs=dict(settings=job.settings, prompts=job.prompts,
                                                     model_key=job.model_key),
                          batch_size=opts.batch_size * opts.papers_per_request, batch_format="pyarrow",
                          compute=ray.data.ActorPoolStrategy(size=n), **res)
        count = self._count()
        sink = shard_sink(str(job.out / shards.SCORES_DIR), job.score_prefix, shards.SCORES, spec.shard_rows, count)
        self._execute(lambda: ds.write_datasink(sink), "scoring", todo.count, count)
        return {"score_actors": n, "score_resources": res, "shards": len(sink.files), "rows_written": sink.rows}

    def close(self) -> None:
        if self._sampler is not None:
            self.processes = self._sampler.stop()
            self._sampler = None
        if self._own:
            try:
                self.ray.shutdown()
            finally:
                self._own = False
                if self._temp:
                    shutil.rmtree(self._temp, ignore_errors=True)
                    self._temp = None
        if self._filter is not None:
            self._filter.stop()
            self._filter = None
        self._connected = False


class _KeptSigterm:
    """The SIGTERM handler in place before ray.init, put back after it. ray.init sets its own in the driver (a
    sys.exit(15)), which replaced the CLI's: a SIGTERM to `ranker backfill --engine ray` (systemd stopping the
    unit, `kill PID`) ended the command with status 15 and no line, the run recorded 'failed' with
    "SystemExit: 15" rather than interrupted. A handler the caller chose (a Python one, or ignoring the signal)
    is put back; at the default action Ray's stays, as it lets the driver stop Ray on the way out."""

    def __init__(self):
        self.handler = signal.getsignal(signal.SIGTERM)

    def restore(self) -> None:
        if self.handler in (signal.SIG_DFL, None) or threading.current_thread() is not threading.main_thread():
            return                       # only the main thread sets a handler (ray.init sets none elsewhere)
        if signal.getsignal(signal.SIGTERM) is not self.handler:
            signal.signal(signal.SIGTERM, self.handler)

    def passed_on(self, e: BaseException) -> None:
        """A SIGTERM that came while ray.init ran met Ray's handler, whose exit `e` is: handed to the caller's
        handler instead (the CLI's raises the KeyboardInterrupt of a Ctrl-C). Anything else is left alone."""
        if isinstance(e, SystemExit) and e.code == signal.SIGTERM and callable(self.handler):
            self.restore()
            self.handler(signal.SIGTERM, None)


class _Watch:
    """A driver thread that passes a WriteCount's number to `report` as it changes (twice a second), and once
    more when stopped."""

    def __init__(self, ray, count, report, interval: float = 0.5):
        self.ray, self.count, self.report, self.interval = ray, count, report, interval
        self.last = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="ray-progress", daemon=True)

    def _poll(self) -> None:
        try:
            n = self.ray.get(self.count.get.remote(), timeout=10)
        except Exception:         # the progress is never the run's failure
            return
        if n != self.last:
            self.last = n
            self.report(n)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._poll()

    def start(self) -> "_Watch":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self._poll()


class NativeLogFilter:
    """Keeps the log lines of Ray's C++ core ("[2026-01-05 10:00:00,123 E 123 123] core_worker.cc:...") off
    this process's stderr while the engine runs; everything else written there passes through. The driver's
    core worker prints one such ERROR line per actor pool (Ray Data keeps the actors' arguments in the object
    store and asks for restarts), which is noise to a user: a real failure reaches us as an exception.
    Debug mode (Settings.debug) leaves stderr alone. The last lines dropped are kept in `dropped`."""

    PATTERN = re.compile(rb"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d[,.]\d+ [DIWEF] \d+ \d+\] \S+\.(?:cc|h):\d+: ")

    def __init__(self):
        self.dropped: list[str] = []
        self._saved: int | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> "NativeLogFilter":
        try:
            sys.stderr.flush()
            self._saved = os.dup(2)
            r, w = os.pipe()
            os.dup2(w, 2)
            os.close(w)
        except OSError:
            self._saved = None
            return self
        self._thread = threading.Thread(target=self._pump, args=(r, self._saved), name="ray-stderr",
                                        daemon=True)
        self._thread.start()
        return self

    def _pump(self, r: int, out: int) -> None:
        with os.fdopen(r, "rb", buffering=0) as src:
            pending = b""
            while True:
                chunk = src.read(65536)
                if not chunk:
                    break
                pending += chunk
                *lines, pending = pending.split(b"\n")
                keep = []
                for line in lines:
                    if self.PATTERN.match(line):
                        self.dropped = (self.dropped + [line.decode(errors="replace")])[-50:]
                    else:
                        keep.append(line + b"\n")
                if keep:
                    os.write(out, b"".join(keep))
                if pending and not pending.startswith(b"["):   # a progress bar redraws without a newline
                    os.write(out, pending)
                    pending = b""
            if pending:
                os.write(out, pending)

    def stop(self) -> None:
        if self._saved is None:
            return
        try:
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        os.dup2(self._saved, 2)          # closes the pipe's write end: the pump reads EOF and ends
        if self._thread is not None:
            self._thread.join(timeout=5)
        os.close(self._saved)
        self._saved = None
