"""`ranker ...` command lines read as a shell would and checked against the CLI: the command, subcommand and
flags exist, each flag has a value its type and parser take, and the arguments are as many as the command
takes. The commands are read from the click objects typer builds (their params) and parsed by them; nothing
is run. Shared by the tests of the README's command lines (test_readme.py) and of the --help texts' examples
(test_cli_help_examples.py)."""
from __future__ import annotations

import re
import shlex

import typer
import typer.main

from ranker.cli.app import app

OPERATORS = {"&&", "||", ";", "|", "&", "(", ")", "$(", "`"}
REDIRECT = re.compile(r"(?<!\S)\d*(?:>>?|<)&?\s*\S+")


def _simple_commands(command: str) -> list[list[str]]:
    """A shell line (continuations joined) as its simple commands' words: comments, redirections and the
    operators between commands (&&, |, ;) taken out."""
    lexer = shlex.shlex(REDIRECT.sub(" ", command), posix=True, punctuation_chars="();&|")
    lexer.whitespace_split = True
    lexer.commenters = "#"
    out, cur = [], []
    for tok in lexer:
        if tok in OPERATORS or set(tok) <= set("();&|"):
            out.append(cur)
            cur = []
        else:
            cur.append(tok)
    out.append(cur)
    return [c for c in out if c]


def ranker_args(command: str) -> list[list[str]]:
    """The arguments of each `ranker` a shell line runs: the program word after any VAR=value, by its name
    whatever folder it is run from (`.venv/bin/ranker`); `cd ~/ranker` is not one."""
    found = []
    for words in _simple_commands(command):
        while words and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0]):
            words = words[1:]
        if words and words[0].rsplit("/", 1)[-1] == "ranker":
            found.append(words[1:])
    return found


ROOT = typer.main.get_command(app)


def _is_option(p) -> bool:
    return p.param_type_name == "option"


def _params(cmd) -> list:
    """The command's parameters, --help included (get_params adds it)."""
    return cmd.get_params(cmd.context_class(cmd, info_name=cmd.name))


def placeholder(word: str) -> bool:
    """A word that stands for one the reader writes (`COMMAND`, `<id>`, `DIR`, `...`)."""
    return word == "..." or bool(re.fullmatch(r"<[^>]+>|[A-Z][A-Z_]*", word))


def problems(args: list[str], *, exact: bool = True) -> list[str]:
    """What is wrong with `ranker ARGS` against the CLI: an unknown command or subcommand, an unknown flag, a
    flag without the value it takes, a value given to a switch; with `exact`, too few or too many arguments,
    and then a value the CLI's own parser refuses (parse_problems). Brackets of optional parts (`[--days N]`)
    are read as if they were not there."""
    args = [a.strip("[]") for a in args if a.strip("[]")]
    cmd, path, out = ROOT, ["ranker"], []
    i = 0
    while True:                                 # the group's own options, then its command
        while i < len(args) and args[i].startswith("-") and hasattr(cmd, "commands"):
            name = args[i].split("=", 1)[0]
            if not any(_is_option(p) and name in p.opts + p.secondary_opts for p in _params(cmd)):
                return [f"`{' '.join(path)}` has no option {name}"]
            i += 1
        if not hasattr(cmd, "commands") or i >= len(args):
            break
        if placeholder(args[i]) and not exact:
            return []
        sub = cmd.commands.get(args[i])
        if sub is None:
            return [f"`{' '.join(path)}` has no command {args[i]!r}"]
        cmd, path, i = sub, path + [args[i]], i + 1
    params = _params(cmd)
    options = {name: p for p in params if _is_option(p) for name in p.opts + p.secondary_opts}
    positional = []
    while i < len(args):
        word = args[i]
        i += 1
        if word == "-" or not word.startswith("-") or re.fullmatch(r"-\d+(\.\d+)?", word):
            positional.append(word)
            continue
        name, eq, value = word.partition("=")
        p = options.get(name)
        if p is None:
            out.append(f"`{' '.join(path)}` has no option {name}")
            continue
        takes_value = not (p.is_flag or p.count)
        if takes_value and not eq:
            if i >= len(args) or (args[i].startswith("-") and args[i] != "-"):
                if exact:
                    out.append(f"`{' '.join(path)}`: {name} needs a value")
                continue
            i += 1
        elif not takes_value and eq:
            out.append(f"`{' '.join(path)}`: {name} is a switch, given a value")
    if hasattr(cmd, "commands"):
        if exact:
            out.append(f"`{' '.join(path)}` needs a command ({', '.join(cmd.commands)})")
        return out
    if exact:
        arguments = [p for p in params if p.param_type_name == "argument"]
        least = sum(p.nargs if p.nargs > 0 else 1 for p in arguments if p.required)
        most = None if any(p.nargs < 0 for p in arguments) else sum(p.nargs for p in arguments)
        if len(positional) < least or (most is not None and len(positional) > most):
            out.append(f"`{' '.join(path)}` takes {least}{'' if most == least else '+' if most is None else f'-{most}'}"
                       f" argument(s), given {len(positional)}: {positional}")
        for p in params:
            if _is_option(p) and p.required and not any(o in options and options[o] is p for o in
                                                        (a.split("=", 1)[0] for a in args)):
                out.append(f"`{' '.join(path)}`: {p.opts[-1]} is required")
        if not out:
            out += parse_problems(args)
    return out


def parse_problems(args: list[str]) -> list[str]:
    """What the CLI's own parser refuses in `ranker ARGS` that the reading above lets through: a value its
    option does not take (`--k ten`, `--keep abc`), through each option's type and parser. The commands are
    parsed, never run; a line with a placeholder (`--days N`) or --help/--version (which would print) is not."""
    if any(placeholder(a) or a in ("--help", "--version") for a in args):
        return []
    cmd, path, rest, ctx = ROOT, ["ranker"], list(args), None
    try:
        while True:
            ctx = cmd.make_context(path[-1], rest, parent=ctx)
            if not hasattr(cmd, "commands"):
                return []
            name, cmd, rest = cmd.resolve_command(ctx, [*getattr(ctx, "_protected_args", ()), *ctx.args])
            path.append(name)
    except typer.TyperException as e:       # what main() answers as a usage mistake
        return [f"`{' '.join(path)}`: {e.format_message() if hasattr(e, 'format_message') else e}"]


def all_options(cmd=None) -> set[str]:
    cmd = ROOT if cmd is None else cmd
    found = {name for p in _params(cmd) if _is_option(p) for name in p.opts + p.secondary_opts}
    for sub in getattr(cmd, "commands", {}).values():
        found |= all_options(sub)
    return found
