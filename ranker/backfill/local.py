"""The one-process engine: the same steps as the Ray engine, run in this process, for a workstation.

Ranking streams the source in batches; with the prefilter, each embedded batch is spilled to
OUT/_work/embedded/date=<day>/ (so memory holds one batch, then one day), then every day with new papers is
ranked whole, with the rows it already holds in OUT/ranked/, and its new rows are written there. A paper whose
spill is on disk is not read or embedded again by a rerun of an interrupted run with the same source and
settings, wherever it stopped. Scoring reads the ranked shards that hold work and writes score shards of
`shard_rows` rows as it goes.
"""
from __future__ import annotations

import contextlib
import shutil

from . import shards
from .plan import Filters, ReadTally, chunks, read_source
from .stages import EmbedStage, ScoreStage, ScoringInterrupted, prefilter_day, unranked


class LocalEngine:
    name = "local"

    def __init__(self, progress=None):
        self.progress = progress or (lambda stage, done, total: None)

    # ------------------------------------------------------------------ ranking
    def rank(self, job) -> dict:
        tally = ReadTally(job.source.splits)
        ranked_root = job.out / shards.RANKED_DIR
        written = []
        if job.plan is None:
            papers = read_source(job.source.splits, job.filters, tally)
            n = 0
            for batch in chunks(papers, job.spec.shard_rows):
                written += shards.write_partitioned(unranked(shards.papers_table(batch)), ranked_root, "ranked")
                n += len(batch)
                self.progress("reading", n, None)
            return {"read": n, "input": tally.record(), "shards": len(written),
                    "rows_written": sum(r for _, r in written), "written_by_day": shards.rows_by_day(written)}

        # what a stopped run spilled is not read again (as in the Ray engine): the rows it ranked since are
        # passed over now, so the papers left would not fall into the same batches; a spilled day is ranked
        # when it still holds a row not ranked
        work = job.embedded_dir()
        spill = shards.shard_files(work)
        spilled = shards.pairs_in(spill)
        filters = Filters(**{**job.filters.__dict__, "skip_pairs": job.filters.skip_pairs | spilled})
        papers = read_source(job.source.splits, filters, tally)
        stage = EmbedStage(job.settings, device=job.spec.device)
        days = shards.days_with_new_rows(spill, job.filters.skip_pairs)
        n = embedded = 0
        for batch in chunks(papers, job.spec.embed_batch):
            t = shards.papers_table(batch)
            days.update(t.column("date").to_pylist())
            n += len(batch)
            shards.write_partitioned(stage(t), work, "emb")
            embedded += len(batch)
            self.progress("embedding", n, None)
        for i, day in enumerate(sorted(days)):
            # the day whole: its papers embedded now, and the rows ranked before (their vectors), which stay
            done = shards.read_table(shards.shard_files(ranked_root, day, day), shards.RANKED)
            t = shards.read_table(shards.shard_files(work, day, day), shards.RANKED)
            t = prefilter_day(_concat([done, t]), job.plan, set(done.column("id").to_pylist()))
            written += shards.write_partitioned(t, ranked_root, "ranked")
            shutil.rmtree(work / f"date={day}", ignore_errors=True)
            self.progress("ranking days", i + 1, len(days))
        job.embedded_done(work)
        return {"read": n, "input": tally.record(), "embedded": embedded, "already_embedded": len(spilled),
                "days": len(days),
                "shards": len(written), "rows_written": sum(r for _, r in written),
                "written_by_day": shards.rows_by_day(written),
                "model_load_seconds": round(stage.embedder.load_seconds, 2)}

    # ------------------------------------------------------------------ scoring
    def score(self, job, todo: shards.ScoreTodo) -> dict:
        stage = ScoreStage(job.settings, job.prompts, job.model_key)
        root = job.out / shards.SCORES_DIR
        prefix = job.score_prefix
        batch = job.options.batch_size * job.options.papers_per_request
        pending, held, done, written = [], 0, 0, []
        try:
            # a row ranked twice (in one shard or two) is scored once, from the first shard that holds it
            for f, mine in zip(todo.files, shards.todo_per_file(todo)):
                t = shards.read_to_score(f, mine)
                for start in range(0, t.num_rows, batch):
                    try:
                        part = stage(t.slice(start, batch))
                    except ScoringInterrupted as e:
                        pending.append(e.rows)      # the batch's answers that came back before the Ctrl-C
                        raise
                    pending.append(part)
                    held += part.num_rows
                    done += part.num_rows
                    if held >= job.spec.shard_rows:
                        written += shards.write_partitioned(_concat(pending), root, prefix)
                        pending, held = [], 0
                    self.progress("scoring", done, todo.count)
            if pending:
                written += shards.write_partitioned(_concat(pending), root, prefix)
            stats = stage.backend.stats()
        except BaseException as e:
            # Ctrl-C or a backend that gave up: keep the answers already in hand (up to a shard's worth), so
            # the rerun resumes after them; the error that stopped the run is what the caller sees, carrying
            # what the phase did by then (`score_phase`: the run's record, what the engine spent included)
            if pending:
                with contextlib.suppress(Exception):
                    written += shards.write_partitioned(_concat(pending), root, prefix)
            with contextlib.suppress(Exception):
                e.score_phase = _phase(written, stage.backend.stats())
            raise
        finally:
            stage.close()
        return _phase(written, stats)

    def close(self) -> None:
        pass


def _phase(written: list[tuple[str, int]], stats: dict) -> dict:
    """The score phase's record: the rows and shards written, the engine's figures (tokens, a metered API's
    cost)."""
    return {"rows_written": sum(r for _, r in written), "shards": len(written), "engine": stats}


def _concat(tables):
    import pyarrow as pa
    return pa.concat_tables(tables)
