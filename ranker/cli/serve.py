"""`ranker serve`: browse the store's digests in a browser and give thumbs up/down."""
from __future__ import annotations

import os
from typing import Annotated

import typer

from .common import (ConfigOpt, DbOpt, EmbedderOpt, MaxTokensOpt, OfflineOpt, QuietOpt, VerboseOpt, db_there, info,
                     load_settings, not_empty, warn)


def serve(port: Annotated[int, typer.Option("--port", help="Port to listen on (0: any free port).")] = 8000,
          host: Annotated[str, typer.Option("--host", help="Address to listen on. Anything but loopback exposes "
                                            "your store and labels to the network.")] = "127.0.0.1",
          read_only: Annotated[bool, typer.Option("--read-only", help="No feedback buttons; every POST is "
                                                  "refused.")] = False,
          allow_host: Annotated[list[str] | None, typer.Option(
              "--allow-host", help="Another Host name the server answers to (repeat it): a DNS alias or a proxy's "
              "name. It answers to the loopback names, the address bound and, bound beyond loopback, this "
              "machine's names and addresses; any other Host is refused (DNS rebinding).")] = None,
          trusted_proxies: Annotated[str | None, typer.Option(
              "--trusted-proxies", help="Comma-separated addresses or networks (10.0.0.5, 10.0.0.0/24) of reverse "
              "proxies on other machines whose X-Forwarded-Proto and X-Forwarded-For are believed (an HTTPS proxy's "
              "label posts are otherwise refused as cross-site); a proxy on this machine (127.0.0.1, ::1) always is, "
              "anyone else never (default: $RANKER_TRUSTED_PROXIES, else [serve] trusted_proxies of "
              "ranker.toml).")] = None,
          embedder: EmbedderOpt = None, max_tokens: MaxTokensOpt = None, config: ConfigOpt = None,
          db: DbOpt = None, offline: OfflineOpt = None, verbose: VerboseOpt = False, quiet: QuietOpt = False) -> None:
    """Serve the archive, each day's digest and ranking, papers, search and your labels on http://127.0.0.1:8000.

    Thumbs up/down are stored as your labels (`ranker labels export` takes them to another machine).

    A database named with --db (or RANKER_DB, ranker.toml's db) must exist; the home's own is made on a first
    serve.

    Search is by meaning when the store holds the embedder's vectors (the prefilter's --embedder and
    --max-tokens), else by words. The server's own messages go to the command's log file (-v: the terminal).

    \b
    Example:
      ranker serve --port 8000
    """
    # `--allow-host "$PROXY"` with PROXY unset: served without the name meant, every request through it refused
    not_empty(allow_host=allow_host)
    s = load_settings(config, verbose=verbose, quiet=quiet, embedder=embedder, max_tokens=max_tokens, db=db,
                      offline=offline, trusted_proxies=trusted_proxies)
    from ..web.security import is_loopback
    from ..web.server import addresses_of, allowed_hosts_for, bind, serve as run_server, url_of
    try:
        from ..web.app import create_app
    except ImportError as e:                         # fastapi's own dependencies (starlette, pydantic)
        from ..errors import MissingDependency
        raise MissingDependency(e.name or "fastapi", "web", "ranker serve") from None

    from ..prefilter.embed import Embedder
    from ..store import Store
    from .index import panel_embedder_note
    # serve writes labels, so a missing database is not an empty one held in memory (as for the commands that
    # only read): a mistyped --db is an error; the home's own database is made on a first serve (an empty archive)
    db_path = db_there(s)
    if read_only and not db_path.exists():
        # --read-only writes nothing: the home's own database is not made (every page said it was gone)
        from ..errors import InputError
        raise InputError("no database there, and --read-only makes none; `ranker run` makes one", key="db",
                         where=str(db_path))
    # --read-only: opened read-only, so nothing is written to the store (an older schema is not upgraded: one
    # that needs it is refused, saying so)
    from ..errors import StoreError
    from ..store import behind_message
    try:
        with Store(db_path, read_only=read_only) as store:  # one that cannot be opened is one line, not a 500 a page
            cannot_write = None if read_only else store.read_only
            fewer = panel_embedder_note(store, Embedder.from_settings(s).key)
    except StoreError as e:
        if not e.behind:
            raise
        raise StoreError(behind_message(e.behind, "start ranker serve once without --read-only (or run any "
                                        "command that writes to it) to upgrade it"), where=e.where) from None
    if cannot_write and not read_only:
        # a store on read-only media (or a file not the user's) was served with its thumbs, and every click failed
        # with "The store failed" (500): it is served read-only, and the pages and this command say why
        read_only = f"{db_path} cannot be written: {cannot_write}"
    hosts = allowed_hosts_for(host, tuple(allow_host or ()))
    socks = bind(host, port)          # before the warning: an address it cannot listen on is one line
    hosts |= addresses_of(socks)
    # judged by the addresses bound, not the name: a name that resolves beyond loopback (localhost listed with a
    # LAN address in /etc/hosts) is listened on at every address it has
    if not is_loopback(host) or not all(is_loopback(str(x.getsockname()[0])) for x in socks):
        # every page carries the token a label's POST needs: whoever reads the pages can post labels too
        change = ("none of them can change your labels (read-only)" if read_only else
                  "any of them can change your labels (--read-only: they only read them)")
        warn(f"--host {host} serves your store and labels to every machine that can reach it, and {change}; "
             f"it answers to the Host names {', '.join(sorted(hosts))} (--allow-host adds one)")
    app = create_app(s, read_only=read_only, allowed_hosts=hosts,
                     host_hint="the server's owner can allow another with ranker serve --allow-host NAME")
    how = f" (read-only: {read_only})" if isinstance(read_only, str) else " (read-only)" if read_only else ""
    if fewer:
        # the counts of this moment: the panels choose per request, each page saying whose its panel is (vectors
        # stored while it runs, by a `ranker run` or `index`, change them; this line said them as if lasting)
        info(f"note: at start, {fewer}")
    if os.environ.get("FORWARDED_ALLOW_IPS", "").strip():
        # uvicorn's own variable, which it read when no proxy was named ('*' in many container images: anyone's
        # X-Forwarded-Proto believed): ranker names its proxies itself, so one who set it is told what to use
        info("note: FORWARDED_ALLOW_IPS is not read; name a reverse proxy on another machine with --trusted-proxies "
             "(or RANKER_TRUSTED_PROXIES); one on this machine is always believed")
    # every address listened on (--host localhost: [::1] and 127.0.0.1), the first the one to open
    info(f"serving {' and '.join(url_of(x) for x in socks)}{how}; Ctrl-C stops")
    try:
        run_server(app, socks, trusted_proxies=s.serve.trusted_proxies)
    except KeyboardInterrupt:
        # how a server is stopped (uvicorn closes its connections, then hands the Ctrl-C on): nothing was cut
        # short, so not the steps' "interrupted ... rerun to resume" and its status 130
        info(f"stopped; your labels are kept in {db_path}")


def register(app: typer.Typer) -> None:
    app.command("serve", short_help="Serve the archive, digests, search and labels over HTTP.")(serve)
