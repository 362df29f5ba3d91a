"""`ranker compare`: local judgements vs GPT's -> metrics.json, report.html and a terminal summary."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..records import MIN_NOVELTY, MIN_RELEVANCE
from .common import (OPTION_KEYS, ConfigOpt, OfflineOpt, QuietOpt, VerboseOpt, alert, check_out, echo, given_path, info,
                     load_settings, in_shown, not_empty, nothing_to_do)

_MAX_SHOWN_WARNINGS = 20


def compare(
    ctx: typer.Context,
    gpt: Annotated[list[str], typer.Option("--gpt", help="GPT's judgements: the seed's Markdown digest, its JSON "
                                           "output or JSONL (ARXIVID/id, RELEVANCE, NOVELTY, COMMENT). A file, a "
                                           "directory (searched recursively) or a quoted glob; repeat for more.",
                                           show_default=False)],
    local: Annotated[list[str], typer.Option("--local", help="The local model's judgements: `ranker score` JSONL "
                                             "or a `ranker run` JSON/Markdown digest; file, directory or glob.",
                                             show_default=False)],
    out: Annotated[Path, typer.Option("--out", help="Directory for metrics.json and report.html.", parser=given_path)],
    papers: Annotated[Optional[list[str]], typer.Option(
        "--papers", help="The day's whole listing (papers JSONL, listing.jsonl layout) for selection over every "
        "paper; file, directory or glob.", show_default=False)] = None,
    prefilter: Annotated[Optional[list[str]], typer.Option(
        "--prefilter", help="`ranker prefilter` output (id, prefilter_score, kept) to measure the prefilter's "
        "recall of GPT's picks.", show_default=False)] = None,
    min_relevance: Annotated[Optional[int], typer.Option(
        "--min-relevance", help=f"A pick needs RELEVANCE >= this (default: [digest] min_relevance of ranker.toml, "
        f"{MIN_RELEVANCE}).", show_default=False)] = None,
    min_novelty: Annotated[Optional[int], typer.Option(
        "--min-novelty", help=f"A pick needs NOVELTY >= this (default: [digest] min_novelty of ranker.toml, "
        f"{MIN_NOVELTY}).", show_default=False)] = None,
    config: ConfigOpt = None, offline: OfflineOpt = None, verbose: VerboseOpt = False, quiet: QuietOpt = False,
) -> None:
    """Compare a local model's judgements with GPT's: rank correlation, error, pick precision/recall.

    Writes OUT/metrics.json and a self-contained OUT/report.html (tables and plots) and prints a Markdown summary. Papers are matched by arXiv id (versions stripped); several days may be given at once: pass a directory, a quoted glob, or repeat the option.
    '-' is stdin, for one of --gpt, --local, --papers and --prefilter.

    \b
    Example:
      ranker compare --gpt 'data/days/*/gpt_scores.jsonl' --local out/scores.jsonl \\
        --papers 'data/days/*/listing.jsonl' --prefilter out/ranked.jsonl --out out/compare
    """
    from ..compare import run_compare
    from ..errors import InputError

    # the digest's cut-offs (flag, else ranker.toml), offline mode, the log file
    s = load_settings(config, verbose=verbose, quiet=quiet, min_relevance=min_relevance, min_novelty=min_novelty,
                      offline=offline)
    OPTION_KEYS.add("prefilter")       # the files' errors name --prefilter, not the [prefilter] settings
    if ctx.args:
        raise InputError(f"unexpected extra argument(s) {' '.join(ctx.args[:3])}{' ...' if len(ctx.args) > 3 else ''}: "
                         "quote a glob so the shell leaves it to ranker (--gpt 'days/*/gpt_scores.jsonl'), "
                         "pass a directory, or repeat the option for each file")
    # an empty value was read as the current folder: every judgement file under it compared
    not_empty(gpt=gpt, local=local, papers=papers, prefilter=prefilter)
    check_out(out, folder=True)
    # '-': stdin (`zcat gpt.jsonl.gz | ranker compare --gpt - ...`; the readers take it as /dev/stdin), which can be
    # read once, by any of its names (`--gpt /dev/stdin --local -` read it twice: the second side held no
    # judgement, "nothing to do")
    from ..io import stdin_or_descriptor
    given = {"gpt": gpt, "local": local, "papers": papers or [], "prefilter": prefilter or []}
    dashes = [k for k, specs in given.items() for x in specs if stdin_or_descriptor(x) == 0]
    if len(dashes) > 1:           # one flag twice: its name leads the line; several: each named once, in the text
        one = len(set(dashes)) == 1
        raise InputError("'-' (stdin) is given " + (f"{len(dashes)} times" if one else
                         "to " + " and ".join(f"{{key:{k}}}" for k in dict.fromkeys(dashes)))
                         + "; stdin can be read once: give files for the others", key=dashes[0] if one else None)

    dash = any(str(x) == "-" for specs in given.values() for x in specs)     # read as /dev/stdin, named stdin
    shown = 0

    def warn(msg: str) -> None:
        nonlocal shown
        shown += 1
        if shown <= _MAX_SHOWN_WARNINGS:
            alert(f"warning: {msg}")

    metrics = run_compare(gpt, local, out, papers=papers or None, prefilter=prefilter or None,
                          min_relevance=s.digest.min_relevance, min_novelty=s.digest.min_novelty, warn=warn,
                          stdin_name=in_shown("-") if dash else None)
    if metrics.get("nothing_to_do"):
        if shown > _MAX_SHOWN_WARNINGS:
            alert(f"warning: ... and {shown - _MAX_SHOWN_WARNINGS} more")
        nothing_to_do(metrics["nothing_to_do"])
        return
    if shown > _MAX_SHOWN_WARNINGS:
        alert(f"warning: ... and {shown - _MAX_SHOWN_WARNINGS} more (all are listed in {out / 'metrics.json'})")
    from ..compare import summary_markdown
    echo(summary_markdown(metrics))
    info(f"Wrote {out / 'metrics.json'} and {out / 'report.html'}")


def register(app: typer.Typer) -> None:
    app.command("compare", short_help="Compare a local model's judgements with GPT's.",
                context_settings={"allow_extra_args": True})(compare)
