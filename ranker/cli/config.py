"""`ranker config`: the settings in force (ranker.toml, the environment, the flags, the defaults) and where each
came from."""
from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .common import ConfigOpt, DbOpt, OfflineOpt, echo, flag_name, load_settings, warn_categories

if TYPE_CHECKING:
    from ..settings import Effective

DEFAULT = "default"


def config(config: ConfigOpt = None, db: DbOpt = None, offline: OfflineOpt = None,
           as_json: Annotated[bool, typer.Option("--json", help="One JSON object: the config file read and each "
                                                 "setting's key, value and origin.")] = False) -> None:
    """Show the settings a command would run with, each with where it came from: a flag, an environment
    variable, ranker.toml's line, or the default.

    The text is a ranker.toml (a setting that is not set, where the code then chooses, is a comment), in the
    order flags > environment > ranker.toml > defaults. Only the chosen backend's table lists every option.
    The API key is never shown, and nothing is written (no log file, no database).

    \b
    Examples:
      ranker config
      ranker config --config ~/lab/ranker.toml --json
    """
    from ..backends import options_in_force
    from ..prefilter.recall import with_applied_rule
    from ..settings import effective
    s = load_settings(config, log=False, db=db, offline=offline)      # no log file made for this
    warn_categories(s)
    rows = with_applied_rule(s, effective(s, options_in_force(s)))
    where = str(s.config_file) if s.config_file is not None else None
    if as_json:
        echo(json.dumps({"config_file": where, "settings": [
            {"key": r.key, "value": r.value, "from": _origin(r), **({"note": f"not set: {r.why}"} if r.applied else {})}
            for r in rows]}, indent=2, ensure_ascii=False))
        return
    echo("# the settings in force; each line says where its value came from (a flag, a variable, the file, or")
    echo("# the default); the order is flags > environment > ranker.toml > defaults")
    echo(f"# config file: {where}" if where else "# config file: none (no ranker.toml in the working folder)")
    table = ""
    for r in rows:
        *tables, name = r.key.split(".")
        if ".".join(tables) != table:
            table = ".".join(tables)
            echo(f"\n[{table}]")
        if r.applied:           # not set: the value the code applies then, as a comment (the file pins nothing)
            line, said = f"# {_key(name)} = {_toml(r.value)}", f"{_origin(r)}: {r.why}"
        else:
            line = f"{_key(name)} = {_toml(_as_written(r.key, r.value))}" if r.value is not None \
                else f"# {_key(name)} (not set)"
            said = _origin(r)
        echo(f"{line:<47} # {said}")


def _origin(r: "Effective") -> str:
    o = r.origin
    if o is None:
        return DEFAULT
    if o.kind == "flag":
        from ..settings import BACKEND_OPTION
        if o.name == BACKEND_OPTION:
            return f"{flag_name(o.name)} {r.key.split('.', 2)[-1]}"
        return f"--no-{flag_name(o.name)[2:]}" if r.value is False else flag_name(o.name)     # --no-offline
    if o.kind == "env":
        return o.name
    return f"{o.name}:{o.line}" if o.line else o.name


def _as_written(key: str, v: Any) -> Any:
    """A path's value as ranker.toml must write it to read back the same: its `$` as `$$` (the file expands $NAME
    in paths; home "/d/pay$ment" written as it is read back as /d/pay plus $ment's value, or an error). The
    engine arguments that name a file or folder are expanded too (engine_args = { download_dir = ... })."""
    from ..settings import ENGINE_NAME_ARGS, ENGINE_PATH_ARGS, MODEL_KEYS, PATH_KEYS
    if key.endswith(".engine_args") and isinstance(v, dict):
        return {a: x.replace("$", "$$") if a in (*ENGINE_PATH_ARGS, *ENGINE_NAME_ARGS) and isinstance(x, str) else x
                for a, x in v.items()}
    return v.replace("$", "$$") if key in (*PATH_KEYS, *MODEL_KEYS) and isinstance(v, str) else v


def _key(name: str) -> str:
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else json.dumps(name)


def _toml(v: Any) -> str:
    """A JSON-ready value as TOML (an inline table for a dict)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):     # JSON's string escapes are TOML's, but for DEL, which TOML must have escaped
        return json.dumps(v, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(v, (int, float)):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_toml(x)}" for k, x in v.items()) + " }" if v else "{}"
    return json.dumps(str(v))


def register(app: typer.Typer) -> None:
    app.command("config", short_help="Show the settings a command would run with.")(config)
