"""Backfills: rank (and score) a whole arXiv snapshot, or a folder of papers files, into Parquet shards.

    run_backfill(BackfillSpec(source, out, since=..., until=..., embed=True, score=True), settings,
                 engine="local" | "ray", address=None)
    import_backfill(out, store)            the shards into the store (idempotent)

`settings` is the one Settings (ranker.settings) every step reads, as for a day: settings.prefilter (embedder,
keep / top / min_keep, calibration), settings.scoring (backend, model, its [scoring.<backend>] options, score
options, prompts), settings.fetch.categories (unless the spec asks for every category), models_dir, debug.

Two phases, the same steps in both engines (stages.py): rank (read -> embed per batch -> prefilter per day ->
OUT/ranked/) and score (kept rows -> the backend -> OUT/scores/). engine="local" runs them in this process;
engine="ray" runs them as Ray Data pipelines (ranker[ray]) on a local or existing Ray cluster, the embedder
and the scoring backend built once per actor. See job.py for exactly-once and resuming, shards.py for the
layout of the output.
"""
from __future__ import annotations

from .job import ENGINES, BackfillResult, BackfillSpec, run_backfill

__all__ = ["BackfillSpec", "BackfillResult", "run_backfill", "import_backfill", "ENGINES"]


def import_backfill(*args, **kwargs):
    from .importer import import_backfill as _imp
    return _imp(*args, **kwargs)
