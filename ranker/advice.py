"""What the edges add to an error for the user to act on: the CLI's error lines (cli.common.error_line), the web
pages' notes (web.search.said_with_advice) and the scripts' messages. The library raises the facts (a ModelError's
`prepare`: the preset, and its GGUF variant, found unprepared) and names no command; the edges word them here,
once."""
from __future__ import annotations


def prepare_advice(e: BaseException) -> str:
    """The command that prepares the preset a ModelError found unprepared ("; run: ranker models prepare NAME
    [--gguf f32]"); "" for any other error."""
    what = getattr(e, "prepare", None)
    if not what:
        return ""
    name, quant = what
    return f"; run: ranker models prepare {name}" + (f" --gguf {quant}" if quant else "")
