"""One backfill run: check and pin the settings, find what earlier runs already wrote, hand the two phases
(rank, then score) to an engine, and record the run in the manifest.

Exactly once: ranking reads past the (id, date) rows earlier runs wrote; with the prefilter a day is ranked
whole, so a day that gets papers (an interrupted day's rest, a newer snapshot's late papers) is ranked again
with the rows it holds and only the new rows are written; scoring skips the papers that already have a score row
for the same model and prompt hash (a failed row is tried again). Shard names depend only on their rows, so a
batch written twice (a retried worker) replaces itself.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError, InputError, RankerError
from ..io import Progress, Warn, atomic_write, check_output_dir, local_stamp, read_regular
from ..scoring import ScoreOptions
from ..settings import Settings
from . import manifest as mf
from . import shards
from .plan import Filters, SourcePlan

ENGINES = ("local", "ray")


@dataclass
class BackfillSpec:
    """What a backfill reads and writes and which phases it runs. How each step runs (the embedder, the keep
    policy, the calibration, the prompt, the backend, its model and options, the score options, the
    categories) comes from the Settings run_backfill is given, as for the daily steps."""
    source: str | Path
    out: str | Path
    since: str | None = None
    until: str | None = None
    all_categories: bool = False                 # False: settings.fetch.categories; True: every category
    announce: list[str] | None = None            # None: every announce type
    embed: bool = False                          # embed + per-day prefilter; without it every paper is kept
    score: bool = False
    device: str | None = None                    # the embedder's torch device (default cpu; cuda on GPU workers)
    embed_batch: int = 256                       # papers per embedding batch
    shard_rows: int = 2000                       # rows per written shard (at least; one day's rows per file)


@dataclass
class Job:
    """A spec and its settings resolved against the output folder: what the engines are handed."""
    spec: BackfillSpec
    settings: Settings
    out: Path
    source: SourcePlan
    filters: Filters
    pins: dict
    prompts: Any
    options: ScoreOptions                        # settings.scoring as score options
    calibration: Any = None                      # prefilter.calibrate.Calibration, loaded once
    rules: Any = None                            # prefilter.rules.DayRules (exclusions, author pins), read once
    plan: Any = None                             # stages.PrefilterPlan, when ranking with the prefilter
    model_key: str | None = None
    prompt_hash: str | None = None

    @property
    def score_prefix(self) -> str:
        from ..prefilter.embed import slug
        return f"{slug(self.model_key or 'none')}-{self.prompt_hash}"

    def embedded_dir(self) -> Path:
        """Where either engine keeps the papers it embedded and has not ranked yet (a killed run's rerun
        embeds only the rest), emptied when a run with other settings or another window left it, or when a
        file of the source it read has changed or gone since. A folder source that only gained files (the
        next day's listing, fetched while the backfill was stopped) keeps it: what it holds was read from
        files that are as they were."""
        work = self.out / shards.WORK_DIR / "embedded"
        key = hashlib.sha1(json.dumps([self.pins, self.filters.since, self.filters.until],
                                      sort_keys=True, default=str).encode()).hexdigest()
        stamp = work / "params"
        try:
            # only from a regular file: a FIFO in its place was read as text, and the run waited for a writer
            old = json.loads(read_regular(stamp))
            keep = old["key"] == key and all(f in self.source.fingerprint for f in old["files"])
        except (OSError, ValueError, KeyError, TypeError):
            keep = False             # none yet, an older ranker's stamp, or not a file ranker wrote
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
            work.mkdir(parents=True)
        atomic_write(stamp, json.dumps({"key": key, "files": self.source.fingerprint}), tidy=True, own_name=True)
        return work

    def embedded_done(self, work: Path) -> None:
        """Every day of embedded_dir() ranked: its spill removed, and OUT/_work with it when nothing else is there
        (a finished run left the empty folder behind, as if a stopped run's state were in it)."""
        shutil.rmtree(work, ignore_errors=True)
        try:
            work.parent.rmdir()             # only an empty one: what it holds besides is left as it is
        except OSError:
            pass


@dataclass
class BackfillResult:
    out: Path
    manifest: Path
    run: dict
    summary: dict


def _sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def _rules_pins(rules) -> dict[str, str | None]:
    """What the folder pins of the user's rules, each on its own so a refused resume names the one that changed:
    the exclusions and the pinned authors, as matched (a digest, None without any)."""
    def digest(what: list) -> str | None:
        return hashlib.sha1(json.dumps(what, ensure_ascii=False).encode()).hexdigest()[:16] if what else None
    return {"exclude": digest([r.text for r in rules.exclusions.rules]),
            "authors": digest([p.forms for p in rules.pins.pins])}


def _check_spec(spec: BackfillSpec) -> None:
    from ..sources.filters import check_day
    if not (spec.embed or spec.score):
        raise InputError("ask for the embedding prefilter, scoring ({key:score}) or both; neither is asked for",
                         key="embed")
    if spec.since:
        spec.since = check_day(spec.since, "since")
    if spec.until:
        spec.until = check_day(spec.until, "until")
    if spec.since and spec.until and spec.until < spec.since:
        raise InputError(f"{spec.until} is before since {spec.since}", key="until")
    if spec.embed_batch < 1 or spec.shard_rows < 1:
        raise InputError("must be at least 1", key="embed_batch" if spec.embed_batch < 1 else "shard_rows")


def _engine(name: str, address: str | None, ray_options: dict | None, progress: Progress | None,
            debug: bool):
    if name not in ENGINES:
        raise InputError(f"unknown engine {name!r}; choose local or ray", key="engine")
    if name == "ray":
        from .ray_engine import RayEngine           # raises MissingDependency without ranker[ray]
        return RayEngine(address=address, progress=progress, debug=debug, **(ray_options or {}))
    if address:
        raise InputError("an address is for the ray engine", key="address")
    from .local import LocalEngine
    return LocalEngine(progress=progress)


def run_backfill(spec: BackfillSpec, settings: Settings, *, engine: str = "local", address: str | None = None,
                 store=None, ray_options: dict | None = None, progress: Progress | None = None,
                 warn: Warn | None = None) -> BackfillResult:
    """Rank (and score) a whole source into spec.out, each step as `settings` says (prefilter, scoring,
    fetch.categories); see the module doc. `store` (a Store) caches the prompt's query vectors, so a rerun
    loads no model when nothing is left to do. `warn` hears what the ranking does not mean here (a
    calibration fit under other topics)."""
    from ..prompts import load_prompts
    from ..sources import ANNOUNCE_TYPES
    from ..sources.filters import parse_list

    _check_spec(spec)
    if spec.score and settings.scoring.novelty_context > 0:
        raise ConfigError("a backfill scores without the novelty context (the earlier papers come from the corpus "
                          "index, which the backfill's own papers join only on `ranker import`); set it to 0 for "
                          "the backfill", key="scoring.novelty_context")
    out = Path(spec.out).expanduser()
    check_output_dir(out)        # a file there, a folder that cannot be made or written in: as every command's
    cats = None if spec.all_categories else list(settings.fetch.categories)
    ann = parse_list(spec.announce, key="announce", allowed=ANNOUNCE_TYPES) if spec.announce else None
    eng = _engine(engine, address, ray_options, progress, settings.debug)
    check = getattr(eng, "check_address", None)
    if check is not None:
        # a cluster's address where nothing answers: said before any work (the embedder it loads for the
        # prompt's queries) and before the manifest records anything (it was a failed run in the folder's
        # manifest, and the settings it pinned there)
        check()
    want = settings.prefilter
    prompts = load_prompts(settings.scoring.prompts)
    source = SourcePlan.of(spec.source)

    pins: dict = {"embed": spec.embed, "categories": sorted(cats) if cats else None,
                  "announce": sorted(ann) if ann else None}
    embedder = calibration = rules = None
    if spec.embed:
        from ..prefilter.calibrate import Calibration
        from ..prefilter.embed import Embedder
        from ..prefilter.rank import build_queries
        embedder = Embedder.from_settings(settings)
        if want.calibration:                 # a missing or wrong file is one error before any work
            calibration = Calibration.load(want.calibration)
            calibration.check_embedder(embedder.key)
        from ..steps import day_rules
        rules = day_rules(settings, prompts, warn)  # as `ranker prefilter` reads them; a bad one is an error here
        qs = build_queries(prompts)
        if calibration is not None and calibration.other_topics(qs.digest()) and warn is not None:
            from ..prefilter.calibrate import OTHER_TOPICS
            warn(f"prefilter: {OTHER_TOPICS}")
        from ..prefilter.recall import effective_rule
        top, keep, recall = effective_rule(top=want.top, keep=want.keep, recall=want.recall,
                                           calibrated=bool(want.calibration))
        pins.update(embedder=embedder.key, keep=keep, top=top, min_keep=want.min_keep, recall=recall,
                    calibration=_sha256(want.calibration) if want.calibration else None,
                    queries=hashlib.sha1("\n".join(qs.texts).encode()).hexdigest()[:16],
                    **_rules_pins(rules))
    job = Job(spec=spec, settings=settings, out=out, source=source,
              filters=Filters(spec.since, spec.until, tuple(cats) if cats else None, tuple(ann) if ann else None),
              pins=pins, prompts=prompts, options=ScoreOptions.from_settings(settings.scoring),
              calibration=calibration, rules=rules)
    if spec.score:
        from ..backends import model_key
        job.model_key = model_key(settings.scoring.backend, settings.scoring.model, settings.models_dir)
        job.prompt_hash = job.options.prompt_hash(prompts)

    with mf.locked(out):
        # this run is the folder's one writer now: the shards' temporary files a killed run left go
        shards.remove_dead_temporaries(out)
        m = mf.load(out)
        if m.get("pinned") != pins and not shards.shard_files(out / shards.RANKED_DIR):
            # nothing was ranked under the pinned settings (an earlier run failed first, or read no papers):
            # they bind nothing yet, and neither does a source that run read
            m["pinned"], m["ranked_sources"] = None, []
        mf.check_pins(m, pins, out)
        m["pinned"] = pins
        mf.save(out, m)
        run: dict = {"started": local_stamp(), "engine": engine, "address": address, "source": str(spec.source),
                     "since": spec.since, "until": spec.until, "status": "running", "phases": {}}
        if spec.score:
            run["scoring"] = {"backend": settings.scoring.backend, "model": job.model_key,
                              "prompt_hash": job.prompt_hash, "options": job.options.prompt_options(),
                              "score_mode": job.options.score_mode}
        t_all = time.perf_counter()
        try:
            _rank(job, eng, m, embedder, store, run["phases"])
            mf.save(out, m)             # the source ranked: a rerun after a kill while scoring does not read it again
            if spec.score:
                _score(job, eng, run["phases"])
            run["status"] = "ok"
        except KeyboardInterrupt:
            run["status"] = "interrupted"
            raise
        except BaseException as e:
            run["status"] = "failed"
            run["error"] = mf.error_text(e)
            raise
        finally:
            try:
                eng.close()
            finally:
                run["seconds"] = round(time.perf_counter() - t_all, 2)
                run["finished"] = local_stamp()
                run["processes"], run["processes_of"] = measured_processes(eng)
                m["runs"].append(run)
                try:
                    m["summary"] = shards.summary(out)
                except RankerError:
                    pass
                except KeyboardInterrupt:
                    # Ctrl-C while the totals are read from every shard (seconds on months of history): the
                    # run is recorded all the same, and the totals of before it are not kept as the folder's
                    if run["status"] == "ok":
                        run["status"] = "interrupted"
                    m.pop("summary", None)
                    mf.save(out, m)
                    raise
                path = mf.save(out, m)
    return BackfillResult(out=out, manifest=path, run=run, summary=m.get("summary", {}))


def _rank(job: Job, eng, m: dict, embedder, store, phases: dict) -> None:
    """The rank phase, its record put in `phases` (the run's). A run stopped part-way (Ctrl-C, a failure) records
    what it left on disk: the ranked rows it wrote, and the papers embedded and not ranked yet (a rerun ranks
    them without embedding them again)."""
    spec = job.spec
    if mf.covers(m, job.source.fingerprint, spec.since, spec.until):
        phases["rank"] = {"skipped": "this source and window were ranked by an earlier run"}
        return
    t0 = time.perf_counter()
    ranked_before = set(shards.shard_files(job.out / shards.RANKED_DIR))
    try:
        phases["rank"] = _rank_source(job, eng, m, embedder, store)
    except BaseException:
        try:
            new = [f for f in shards.shard_files(job.out / shards.RANKED_DIR) if f not in ranked_before]
            phases["rank"] = {"shards": len(new), "rows_written": shards.file_rows(new)}
            if spec.embed:
                phases["rank"]["embedded_not_ranked"] = shards.file_rows(
                    shards.shard_files(job.out / shards.WORK_DIR / "embedded"))
        except Exception:
            pass
        raise
    finally:
        if "rank" in phases:
            phases["rank"]["seconds"] = round(time.perf_counter() - t0, 2)


def _rank_source(job: Job, eng, m: dict, embedder, store) -> dict:
    spec, want = job.spec, job.settings.prefilter
    # every paper is read; those already ranked on their day are passed over, one by one: a newer snapshot's
    # late papers of a day ranked before are new, and (with the prefilter) rank with that day's ranked rows
    state = shards.ranked_state(job.out)
    job.filters = Filters(**{**job.filters.__dict__, "skip_pairs": state.pairs})
    if spec.embed:
        from .stages import PrefilterPlan
        job.plan = PrefilterPlan.build(job.prompts, embedder, keep=None if want.top else want.keep, top=want.top,
                                       min_keep=want.min_keep, recall=want.recall, calibration=job.calibration,
                                       store=store, rules=job.rules)
    res = eng.rank(job)
    added = {d: n for d, n in res.pop("written_by_day").items() if d in state.days}
    res["added_to_ranked_days"] = sum(added.values())
    # of this run's window: the folder's other days were never this run's to rank
    res["days_already_complete"] = sum(1 for d in state.complete_days if d not in added and
                                       not (spec.since and d < spec.since) and not (spec.until and d > spec.until))
    m["ranked_sources"].append({"files": job.source.fingerprint, "since": spec.since, "until": spec.until})
    return res


def _score(job: Job, eng, phases: dict) -> None:
    """The score phase, its record put in `phases` (the run's) as it starts: a run stopped part-way (Ctrl-C, a
    backend that gave up) records what the engine did by then, which comes with the error (LocalEngine.score),
    so it still says what its answers cost."""
    t0 = time.perf_counter()
    todo = shards.score_todo(job.out, job.model_key, job.prompt_hash, job.spec.since, job.spec.until)
    res = phases["score"] = {"papers": todo.candidates, "already_done": todo.done, "to_do": todo.count,
                             "not_kept": todo.not_kept}
    try:
        if todo.count:
            res.update(eng.score(job, todo))
    except BaseException as e:
        res.update(getattr(e, "score_phase", None) or {})
        raise
    finally:
        res["seconds"] = round(time.perf_counter() - t0, 2)


def measured_processes(eng) -> tuple[list[dict], str]:
    """The run's peak RSS by process and whose they are (the manifest's `processes`, `processes_of`): the engine's
    samples under its own label, or, where it sampled nothing (Ray failed to start before its sampler did, or
    sampling was off), this driver's own peak, labelled the driver's: it was "driver and its Ray instance", which
    was not measured."""
    procs = getattr(eng, "processes", None)
    if procs:
        return procs, getattr(eng, "processes_of", "driver")
    return _own_peak(), "driver"


def _own_peak() -> list[dict]:
    import os
    import resource
    return [{"pid": os.getpid(), "name": "driver",
             "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}]
