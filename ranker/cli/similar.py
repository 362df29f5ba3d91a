"""`ranker similar`: the papers nearest to one paper, or to any text, in the corpus the database holds."""
from __future__ import annotations

from typing import Annotated, Optional

import typer

from .common import (ConfigOpt, DbOpt, EmbedderOpt, MaxTokensOpt, OfflineOpt, QuietOpt, VerboseOpt, db_there, echo,
                     given_text, index_said, info, load_settings, nothing_to_do)


def similar(query: Annotated[str, typer.Argument(help="An arXiv id the database knows, or free text (quote it).",
                                                 show_default=False, parser=given_text)],
            k: Annotated[int, typer.Option("--k", help="How many papers to list.")] = 10,
            since: Annotated[Optional[str], typer.Option(
                "--since", help="Only papers first announced on or after this day (YYYY-MM-DD).",
                show_default=False)] = None,
            embedder: EmbedderOpt = None, max_tokens: MaxTokensOpt = None,
            config: ConfigOpt = None, db: DbOpt = None, offline: OfflineOpt = None,
            verbose: VerboseOpt = False, quiet: QuietOpt = False) -> None:
    """The papers nearest to a paper (by id) or to any text, among every paper the database holds.

    Prints cosine, day, id and title, nearest first. Works offline on whatever the database holds; an id needs
    no model at all (its vector is stored). A database without paper vectors yet is nothing to do.

    \b
    Examples:
      ranker similar 2505.09343 --k 5
      ranker similar "mixture of experts routing for long context" --since 2025-06-01
    """
    s = load_settings(config, verbose=verbose, quiet=quiet, embedder=embedder, max_tokens=max_tokens, db=db,
                      offline=offline)
    from ..index import CorpusIndex, similar as find
    from ..index.neighbours import check_query
    from ..prefilter.embed import Embedder
    from ..store import Store
    from .index import no_vectors, other_vectors

    check_query(query, k=k, since=since)             # a bad flag is an error even on an empty database
    _not_a_file(query)
    _not_a_link(query)
    emb = Embedder.from_settings(s)
    with Store(db_there(s), create=False) as store:    # a mistyped --db is an error, not an empty database
        if not CorpusIndex(store, emb.key, warn=index_said).status(verify=False).store_vectors:
            nothing_to_do(no_vectors(store, emb.key, " (`ranker run`, `ranker prefilter` or `ranker fetch --embed` "
                                                     "stores them)"))
            return
        res = find(store, query, embedder=emb, k=k, since=since, warn=index_said)
        # settings switched to another embedder (or token cut) search its few vectors, not "every paper the
        # database holds": said, with the setting that finds the many
        fewer = other_vectors(store, emb.key, more_than=res.corpus)
    if res.paper is not None:
        info(f"nearest to {res.paper.id} ({res.paper.date or 'undated'}): {res.paper.title}")
    if res.paper is not None and res.other_version and res.paper.version:
        info(f"note: the database holds {res.paper.id}v{res.paper.version}, not v{res.other_version}: these are "
             f"the neighbours of v{res.paper.version}'s title and abstract")
    elif res.paper is not None and res.other_version:
        info(f"note: the database holds {res.paper.id} without its version: these are the neighbours of the title "
             f"and abstract it stored, maybe not v{res.other_version}'s")
    if fewer:
        info(f"searched only the {res.corpus:,} paper vectors of the embedder {emb.key} {fewer}")
    if not res.neighbours:
        info(f"no paper matches among {res.corpus:,}" + (f" since {since}" if since else ""))
        return
    for n in res.neighbours:
        echo(f"{n.cosine:.3f}  {n.date or 'undated':10}  {n.id:<16} {n.title}")


def _not_a_file(query: str) -> None:
    """A query naming a file (a paper's JSON, a PDF, notes) is refused: it was embedded as the text of its
    name, "paper.json", and answered with that string's neighbours as if they were the file's. Only a word that
    reads as a path (a dot or a slash in it): a plain word is a search even where a file of that name lies in
    the folder (quotes cannot tell the shell's word from the file)."""
    from pathlib import Path

    from ..errors import InputError
    from ..io import arxiv_id, fs_name
    q = query.strip()
    name = fs_name(q)       # given_text's "ö" as a file's name: its UTF-8 bytes (under ASCII is_file said False)
    if (q and arxiv_id(q) is None and not any(c.isspace() for c in q) and any(c in q for c in "./~")
            and Path(name).expanduser().is_file()):
        raise InputError("is a file: give an arXiv id the database knows, or the text to search for", where=name)


def _not_a_link(query: str) -> None:
    """A link that is not arXiv's (a paper's page on Hugging Face, alphaXiv, Semantic Scholar) is refused: it
    was embedded as the text of the URL and answered with papers nearest to that string, at cosines near 0.3,
    as if they were the paper's neighbours. The line gives the arXiv id the link holds, when it holds one."""
    import re

    from ..errors import InputError
    from ..io import arxiv_id
    q = query.strip()
    if arxiv_id(q) is not None or any(c.isspace() for c in q) or not re.match(r"(?i)(https?://|www\.)", q):
        return
    inside = re.search(r"(?<![\d.])(\d{4}\.\d{4,5})(?:v\d+)?(?![\d])", q)
    hint = f"`ranker similar {inside.group(1)}`" if inside else "its arXiv id (or an arxiv.org/abs/ link)"
    raise InputError(f"is a link, not an arXiv id or text to search for: give {hint}", where=q)


def register(app: typer.Typer) -> None:
    app.command("similar", short_help="Find the stored papers nearest to a paper id or a text.")(similar)
