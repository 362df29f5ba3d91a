"""`ranker run`: the daily job: fetch or read the day, prefilter, score, write the digest."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .common import (BackendOpt, ConfigOpt, DbOpt, EmbedderOpt, ModelOpt, NoveltyContextOpt, OfflineOpt, Progress,
                     PromptsOpt, ScoreModeOpt, LayoutOpt, apply_offline, config_with_overrides, echo, info)


def run(out: Annotated[Path, typer.Option("--out", help="Folder for the digest files.")],
        papers: Annotated[Optional[Path], typer.Option("--papers", help="The day's papers (JSONL, RSS/Atom XML or "
                                                       "a metadata snapshot). Without it, today's RSS is fetched.",
                                                       show_default=False)] = None,
        category: Annotated[Optional[str], typer.Option("--category", help="Categories to fetch, comma-separated "
                                                        "(default cs.LG,cs.AI).", show_default=False)] = None,
        announce: Annotated[Optional[str], typer.Option("--announce", help="Announce types to fetch "
                                                        "(default new,cross).", show_default=False)] = None,
        backend: BackendOpt = None, model: ModelOpt = None, embedder: EmbedderOpt = None, prompts: PromptsOpt = None,
        score_mode: ScoreModeOpt = None, prompt_layout: LayoutOpt = None, novelty_context: NoveltyContextOpt = None,
        calibration: Annotated[Optional[Path], typer.Option("--calibration", help="A `ranker calibrate` file.",
                                                            show_default=False)] = None,
        min_relevance: Annotated[Optional[int], typer.Option("--min-relevance", show_default=False,
                                                             help="Cut-off (default 8).")] = None,
        min_novelty: Annotated[Optional[int], typer.Option("--min-novelty", show_default=False,
                                                           help="Cut-off (default 7).")] = None,
        config: ConfigOpt = None, db: DbOpt = None, offline: OfflineOpt = False) -> None:
    """Run the whole day: fetch (or read) -> prefilter -> score -> digest (Markdown, JSON, scores, manifest).

    Example: ranker run --papers ranker/data/2025-05-15/listing.jsonl --out digest/ --offline
    """
    apply_offline(offline)
    from .. import config as cfgmod
    from ..pipeline import run_day
    from ..store import Store

    cfg = config_with_overrides(
        config, backend=backend, model=model, embedder=embedder, prompts=prompts, score_mode=score_mode,
        prompt_layout=prompt_layout, novelty_context=novelty_context,
        calibration=calibration, min_relevance=min_relevance, min_novelty=min_novelty,
        categories=category.split(",") if category else None, announce=announce.split(",") if announce else None)
    if papers is not None:
        from ..sources import read_papers
        rows = list(read_papers(papers, categories=cfg.fetch.categories, announce=cfg.fetch.announce))
    else:
        from ..sources import fetch_today
        rows = list(fetch_today(categories=cfg.fetch.categories, announce=cfg.fetch.announce))
    if not rows:
        info("no papers to rank (no announcement that day?): nothing written")
        return
    with Store(cfgmod.db_path(db)) as store, Progress() as bar:
        res = run_day(rows, out, cfg, store=store, log=info, progress=bar)
    c = res.manifest["counts"]
    info(f"{res.day}: {c['papers']} papers, {c['kept']} kept by the prefilter, {c['scored']} scored "
         f"({c['reused']} reused, {c['failed']} failed), {c['selected']} selected")
    echo(str(res.files["markdown"]))


def register(app: typer.Typer) -> None:
    app.command("run")(run)
