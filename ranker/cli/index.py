"""`ranker index status|rebuild`: the FAISS corpus index kept beside the database."""
from __future__ import annotations

from typing import Annotated

import typer

from ..io import counted, local_stamp
from .common import (ConfigOpt, DbOpt, EmbedderOpt, MaxTokensOpt, OfflineOpt, QuietOpt, VerboseOpt, db_there, echo,
                     index_said, info, load_settings, nothing_to_do)

index_app = typer.Typer(help="""The corpus index (FAISS) of every stored paper vector: status, rebuild.

\b
Examples:
  ranker index status            vectors, embedder, kind, size, agreement with the database
  ranker index status --quick    without the full check
  ranker index rebuild           never needed for correctness: a sync rebuilds whatever disagrees
""", no_args_is_help=True, rich_markup_mode=None)


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def _when(t: float) -> str:
    return local_stamp(t) if t else "never"


def _embedder_key(s) -> str:
    from ..prefilter.embed import Embedder
    return Embedder.from_settings(s).key


def no_vectors(store, key: str, hint: str = "") -> str:
    """Why there is nothing to search or index for the embedder `key`: the database holds no paper vectors of
    it. When it holds another embedder's (the settings changed prefilter.embedder or prefilter.max_tokens since
    they were stored), the line names the setting that picked `key` and the one that finds those vectors:
    "no paper vectors yet" said to a database of months of papers sent the user to embed them all again.
    `hint` follows the line where the database holds no other vectors either (what stores them)."""
    other = other_vectors(store, key)
    if other:
        return f"no paper vectors for the embedder {key} {other}"
    return f"no paper vectors for the embedder {key} in {store.path} yet{hint}"


def other_vectors(store, key: str, more_than: int = 0) -> str | None:
    """When another embedder holds more than `more_than` paper vectors in the database (the settings changed
    prefilter.embedder or prefilter.max_tokens since they were stored): "(chosen by <setting>) in <database>; it
    holds N of the embedder E: <setting> <value> uses those". None otherwise."""
    from ..prefilter.embed import QUERY_PREFIX, key_parts as parts      # "minilm@64" -> ("minilm", "64")
    from .common import name_key, name_mention
    others = [(store.paper_vector_stats(e, QUERY_PREFIX)[0], e) for e in store.paper_embedders(QUERY_PREFIX)
              if e != key]
    if not others or max(others)[0] <= more_than:
        return None
    count, other = max(others)
    setting = {"prefilter.embedder": 0, "prefilter.max_tokens": 1}
    mine, theirs = parts(key), parts(other)
    keys = [k for k, i in setting.items() if mine[i] != theirs[i]]
    if not keys:
        return None
    use = " ".join(f"{name_mention(k)} {theirs[setting[k]]}" for k in keys)
    return (f"(chosen by {', '.join(name_key(k) for k in keys)}) in {store.path}; it holds {count:,} of the "
            f"embedder {other}: {use} uses those")


def panel_embedder_note(store, key: str) -> str | None:
    """What `ranker serve` and `ranker site` say when the configured embedder `key`, whose index gives the paper
    pages their similar papers first, holds fewer paper vectors than another (the settings switched embedder):
    the papers without a vector of `key` get theirs from that other one. None otherwise, and where `key` holds
    none (every panel comes from the other then, as before; search by meaning says its own)."""
    from ..prefilter.embed import QUERY_PREFIX
    n = store.paper_vector_stats(key, QUERY_PREFIX)[0]
    other = other_vectors(store, key, more_than=n) if n else None
    if not other:
        return None
    return (f"similar papers come first from the {n:,} paper vectors of the embedder {key} {other}; a paper "
            f"without one of {key} gets its similar papers from another embedder, and its page says so")


@index_app.command("status", short_help="Show the index's size, embedder and agreement with the database.")
def status(embedder: EmbedderOpt = None, max_tokens: MaxTokensOpt = None, config: ConfigOpt = None,
           db: DbOpt = None,
           quick: Annotated[bool, typer.Option("--quick", help="Skip the full check (the digest of every stored "
                                               "id and text hash, the files' checksums).")] = False,
           offline: OfflineOpt = None, verbose: VerboseOpt = False, quiet: QuietOpt = False) -> None:
    """Vectors, embedder, kind, size on disk, last update, and agreement with the database.

    Without --embedder: every embedder the database or the index folder has. Changes nothing: the next
    command that embeds brings the index up to date.

    \b
    Example:
      ranker index status
    """
    s = load_settings(config, verbose=verbose, quiet=quiet, embedder=embedder, max_tokens=max_tokens, db=db,
                      offline=offline)
    from ..index import index_statuses
    from ..store import Store

    chosen = embedder is not None or max_tokens is not None
    with Store(db_there(s), create=False) as store:    # a mistyped --db is an error, not an empty database
        sts = index_statuses(store, [_embedder_key(s)] if chosen else [], verify=not quick, warn=index_said)
        where, path = store.index_dir, store.path
    if not sts:
        echo(f"no paper vectors in the database {path} and no index under {where}")
        return
    for st in sts:
        echo(f"embedder      {st.embedder}")
        if not st.exists:
            what = "damaged" if st.damaged else "none"
            echo(f"  index       {what} ({st.problem}); the database holds {st.store_vectors:,} paper vectors")
            continue
        kind = "exact (flat)" if st.kind == "flat" else f"approximate (IVF, {st.nlist} lists, {st.nprobe} probed)"
        # the old rows of revised papers stay in the files until a merge or rebuild: said apart, never searched
        left = f"; {counted(st.dropped, 'old row')} of revised papers left in its files, never searched" \
            if st.dropped else ""
        echo(f"  vectors     {st.vectors:,} (the database holds {st.store_vectors:,}){left}")
        echo(f"  kind        {kind}")
        tail = f", {counted(st.tail, 'vector')} in {counted(st.segments, 'recent segment')}" \
            if st.kind != "flat" and st.segments else ""
        echo(f"  on disk     {_size(st.size_bytes)} in {st.directory}{tail}")
        echo(f"  built       {_when(st.built)}")
        echo(f"  updated     {_when(st.updated)}")
        if st.damaged:
            # a file of the index, not the database, is at fault: nothing stored is lost
            state = f"damaged: {st.problem} (the next sync rebuilds it from the database)"
        elif st.problem:
            state = f"disagrees with the database: {st.problem} (the next sync rebuilds it)"
        elif st.behind:
            state = f"{counted(st.behind, 'new vector')} not added yet (the next command that embeds adds them)"
        else:
            state = "agrees with the database" + ("" if quick else " (full check)")
        echo(f"  state       {state}")


@index_app.command("rebuild", short_help="Rebuild the corpus index from the database's vectors.")
def rebuild(embedder: EmbedderOpt = None, max_tokens: MaxTokensOpt = None, config: ConfigOpt = None,
            db: DbOpt = None, offline: OfflineOpt = None, verbose: VerboseOpt = False, quiet: QuietOpt = False) -> None:
    """Rebuild the corpus index from the database's vectors (of the configured embedder, or --embedder).

    Never needed for correctness: a missing, damaged or stale index is rebuilt on its own when next used. A
    database without paper vectors of the embedder is nothing to do.

    \b
    Example:
      ranker index rebuild --embedder minilm
    """
    s = load_settings(config, verbose=verbose, quiet=quiet, embedder=embedder, max_tokens=max_tokens, db=db,
                      offline=offline)
    from ..index import CorpusIndex
    from ..index.corpus import waiting_line
    from ..index.kinds import label
    from ..store import Store

    key = _embedder_key(s)
    with Store(db_there(s), create=False) as store:    # a mistyped --db is an error, not an empty database
        if not CorpusIndex(store, key, warn=index_said).status(verify=False).store_vectors:
            nothing_to_do(no_vectors(store, key))
            return
        idx = CorpusIndex(store, key)
        idx.waiting = lambda: info(waiting_line(idx.dir))      # not warn: the rebuild's line is this command's own
        res = idx.rebuild("asked to")
    info(f"index rebuilt for {key}: {counted(res.count, 'vector')}, {label(res.kind)}, {res.seconds:.1f}s")


def register(app: typer.Typer) -> None:
    app.add_typer(index_app, name="index", short_help="The corpus index (FAISS): status, rebuild.")
