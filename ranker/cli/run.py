"""`ranker run`: the daily job: fetch or read the day, prefilter, score, write the digest."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .common import (BackendOpt, BackendOptionOpt, CalibrationOpt, ConfigOpt, DbOpt, EmbedderOpt, LayoutOpt,
                     MaxTokensOpt, ModelOpt, NoveltyContextOpt, OfflineOpt, Progress, PromptsOpt, ScoreModeOpt,
                     echo, info, load_settings, warn)


def run(out: Annotated[Path, typer.Option("--out", help="Folder for the digest files.")],
        papers: Annotated[Optional[Path], typer.Option("--papers", help="The day's papers (JSONL, RSS/Atom XML or "
                                                       "a metadata snapshot). Without it, today's RSS is fetched.",
                                                       show_default=False)] = None,
        category: Annotated[Optional[str], typer.Option("--category", help="Categories to fetch, comma-separated "
                                                        "(default cs.LG,cs.AI).", show_default=False)] = None,
        announce: Annotated[Optional[str], typer.Option("--announce", help="Announce types to fetch "
                                                        "(default new,cross).", show_default=False)] = None,
        backend: BackendOpt = None, model: ModelOpt = None, backend_option: BackendOptionOpt = None,
        embedder: EmbedderOpt = None, max_tokens: MaxTokensOpt = None, prompts: PromptsOpt = None,
        score_mode: ScoreModeOpt = None, prompt_layout: LayoutOpt = None, novelty_context: NoveltyContextOpt = None,
        calibration: CalibrationOpt = None,
        min_relevance: Annotated[Optional[int], typer.Option("--min-relevance", show_default=False,
                                                             help="Cut-off (default 8).")] = None,
        min_novelty: Annotated[Optional[int], typer.Option("--min-novelty", show_default=False,
                                                           help="Cut-off (default 7).")] = None,
        config: ConfigOpt = None, db: DbOpt = None, offline: OfflineOpt = None) -> None:
    """Run the whole day: fetch (or read) -> prefilter -> score -> digest (Markdown, JSON, scores, manifest).

    Example: ranker run --papers ranker/data/2025-05-15/listing.jsonl --out digest/ --offline
    """
    s = load_settings(config, category=category, announce=announce, backend=backend, model=model,
                      backend_option=backend_option, embedder=embedder, max_tokens=max_tokens, prompts=prompts,
                      score_mode=score_mode, prompt_layout=prompt_layout, novelty_context=novelty_context,
                      calibration=calibration,
                      min_relevance=min_relevance, min_novelty=min_novelty, db=db, offline=offline)
    from ..steps import fetch_day, run_day
    from ..store import Store

    with Store(s.db_path) as store, Progress() as bar:
        day = fetch_day(papers, s, store=store, progress=bar, warn=warn)
        if not day.papers:
            info(f"no papers to rank in {day.source} (no announcement that day?): nothing written")
            return
        res = run_day(day, out, s, store=store, progress=bar, warn=info)
    c = res.manifest["counts"]
    info(f"{res.day}: {c['papers']} papers, {c['kept']} kept by the prefilter, {c['scored']} scored "
         f"({c['reused']} reused, {c['failed']} failed), {c['selected']} selected")
    echo(str(res.files["markdown"]))


def register(app: typer.Typer) -> None:
    app.command("run")(run)
