"""The README says what the code does: every ranker.toml snippet it shows is accepted by the real settings
loading (and each backend's options check), and every `ranker ...` command line it shows names a command,
subcommand and flags the CLI has, with the values and arguments they take, and every Python example names
functions, classes, parameters and attributes the library has. Fast: nothing is run, no model loaded; the
commands are read from the click objects typer builds (tests/clilines.py), the snippets go through
settings.gather/build and backends.check_options as `load_settings` sends a config file, the Python through
inspect.signature and the return annotations."""
from __future__ import annotations

import ast
import builtins
import importlib
import inspect
import io
import re
import shlex
import tokenize
import typing
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydantic import BaseModel

from ranker.backends import check_options
from ranker.errors import ConfigError
from ranker.settings import Settings, build, gather

from clilines import all_options, placeholder, problems, ranker_args

README = Path(__file__).resolve().parent.parent / "README.md"

SHELL = {"bash", "sh", "console", "shell"}      # blocks whose lines are commands
# every other kind of block the README holds, said here so that a new kind (```zsh) is not skipped unread
OTHER = {"toml", "python", "cron", "ini", ""}


# --------------------------------------------------------------------------- reading the README
@dataclass
class Block:
    lang: str
    line: int               # the README's line of the block's first content line
    text: str


def blocks(text: str | None = None) -> list[Block]:
    out, lang, start, body = [], None, 0, []
    for n, line in enumerate((README.read_text() if text is None else text).splitlines(), start=1):
        m = re.match(r"^\s*```(\S*)\s*$", line)
        if m and lang is None:
            lang, start, body = m.group(1).lower(), n + 1, []
        elif m:
            out.append(Block(lang, start, "\n".join(body) + "\n"))
            lang = None
        elif lang is not None:
            body.append(line)
    assert lang is None, "a code block of the README is never closed"
    return out


def test_every_block_kind_is_read():
    kinds = {b.lang for b in blocks()}
    assert kinds <= SHELL | OTHER, f"a kind of code block this test does not read: {kinds - SHELL - OTHER}"
    assert {"bash", "toml"} <= kinds


# --------------------------------------------------------------------------- ranker.toml snippets
COMMENTED_KEY = re.compile(r"^(\s*)#\s*([A-Za-z_][A-Za-z0-9_]*\s*=\s*\S.*)$")


def uncommented(text: str) -> str:
    """The config with its commented-out settings (`# key = value  # why`) turned on; comment lines that are
    prose (`#      # the model's own limit`, `# one 24 GB card ...`) stay comments."""
    return "".join(COMMENTED_KEY.sub(r"\1\2", line) + "\n" for line in text.splitlines())


def load(text: str, tmp_path: Path, name: str = "ranker.toml") -> Settings:
    """A config text through the settings loading a command runs (`load_settings` less its side effects: the
    log file, offline mode): gather + build, then the backends' options, the file's own tables included."""
    path = tmp_path / name
    path.write_text(text)
    s = build(gather(path, env={}))
    check_options(s)
    assert s.file_layer is not None
    check_options(s.file_layer)
    return s


def config_block() -> Block:
    found = [b for b in blocks() if b.lang == "toml" and "[fetch]" in b.text and "[digest]" in b.text]
    assert len(found) == 1, "the README's commented ranker.toml (### Configuration) is not found"
    return found[0]


def toml_snippets() -> list[Block]:
    return [b for b in blocks() if b.lang == "toml"]


@pytest.mark.parametrize("block", toml_snippets(), ids=lambda b: f"README:{b.line}")
def test_toml_snippet_is_accepted(block, tmp_path):
    """Each toml block as shown (its commented keys off) is a config the settings accept."""
    load(block.text, tmp_path)


# The commented keys of the Configuration block that are alternatives: one keep rule at a time (keep, top or
# recall; `top = 100` is named in a comment). Turned on together they are refused, as the settings must.
KEEP_RULES = {"keep": "0.4", "recall": "0.95", "top": "100"}


def _without_keep_rules(text: str) -> str:
    return "".join(line + "\n" for line in text.splitlines()
                   if not re.match(r"^\s*(%s)\s*=" % "|".join(KEEP_RULES), line))


def test_commented_config_turned_on_is_accepted(tmp_path):
    """Every commented-out key of the Configuration block, turned on, is a real setting (or backend option)
    with a value of its type; the keep rules, which exclude one another, each on its own."""
    full = uncommented(config_block().text)
    with pytest.raises(ConfigError) as e:
        load(full, tmp_path)
    assert "give one of keep, top and recall" in str(e.value), "only the keep rules may clash"
    rest = _without_keep_rules(full)
    for key, value in KEEP_RULES.items():
        text = rest.replace("[prefilter]\n", f"[prefilter]\n{key} = {value}\n", 1)
        s = load(text, tmp_path)
        assert getattr(s.prefilter, key) == float(value), key


def test_commented_config_lists_every_key_it_turns_on(tmp_path):
    """The turned-on config sets what it says: each `key = value` line of it reaches the settings (a key the
    loading dropped on the way would otherwise pass)."""
    rest = _without_keep_rules(uncommented(config_block().text))
    s = load(rest, tmp_path)
    assert s.prefilter.exclude == ["diffusion model", r"re:\bquantum\b"]
    assert s.scoring.options["vllm"]["tensor_parallel_size"] == 2
    assert s.scoring.options["vllm"]["engine_args"] == {"enforce_eager": True}
    assert s.scoring.options["openai"]["total_timeout"] == 300


# `name = value` pairs named inside a comment of the config ("# seconds; retries = 5, backoff = 2.0"): keys too
IN_COMMENT = re.compile(r"\b([a-z_][a-z0-9_]*) = (-?\d+(?:\.\d+)?|true|false|\"[^\"]*\")")


def test_keys_named_in_comments_are_settings(tmp_path):
    """A `key = value` written inside a comment of the Configuration block (`retries = 5, backoff = 2.0`,
    `top = 100`, `timeout = 120`) is a key of the table it sits in, taking that value."""
    table, seen = "", 0
    for line in config_block().text.splitlines():
        m = re.match(r"^\s*\[([a-z.]+)\]", line)
        if m:
            table = m.group(1)
        code, sep, comment = line.partition("#")
        if line.lstrip().startswith("#"):             # a commented key: its own comment is after its second #
            comment = comment.partition("#")[2] if COMMENTED_KEY.match(line) else comment
        for key, value in IN_COMMENT.findall(comment):
            seen += 1
            if table == "prefilter" and key in KEEP_RULES:
                continue                                # the keep rules: test_commented_config_turned_on...
            s = load(f"[{table}]\n{key} = {value}\n", tmp_path)
            assert default_of(table, key) == value_of(s, table, key), f"[{table}] {key}: not its default"
    assert seen >= 5


def test_every_setting_is_named_in_the_configuration_block():
    """The Configuration block names every setting there is (set, commented out, or named in a comment as
    `top = 100` is), the top-level ones before any table: a key the code takes was otherwise found only by
    reading the code."""
    named, table = set(), ""
    for line in uncommented(config_block().text).splitlines():
        m = re.match(r"^\s*\[([a-z.]+)\]", line)
        if m:
            table = m.group(1)
            continue
        code, _, comment = line.partition("#")
        keys = re.findall(r"^\s*([a-z_]+)\s*=", code) + [k for k, _ in IN_COMMENT.findall(comment)]
        named |= {f"{table}.{k}" if table else k for k in keys}
    every = set()
    for name, info in Settings.model_fields.items():
        section = info.annotation
        if isinstance(section, type) and issubclass(section, BaseModel):
            every |= {f"{name}.{k}" for k in section.model_fields if (name, k) != ("scoring", "options")}
        elif not info.exclude:                          # (the API key: the environment's only)
            every.add(name)
    assert every - named == set(), "settings the README's ranker.toml does not name"


def value_of(s: Settings, table: str, key: str):
    section, _, backend = table.partition(".")
    if backend:
        from ranker.backends import backend_class
        return backend_class(backend).Options.model_validate(s.scoring.options[backend]).model_dump()[key]
    return getattr(getattr(s, section), key)


def default_of(table: str, key: str):
    section, _, backend = table.partition(".")
    if backend:
        from ranker.backends import backend_class
        return backend_class(backend).Options().model_dump()[key]
    return getattr(getattr(Settings(), section), key)


def test_shown_values_are_the_defaults(tmp_path):
    """The Configuration block's uncommented values are the defaults: the file as shown changes nothing."""
    shown = load(config_block().text, tmp_path).model_dump(exclude={"home", "models_dir"})
    default = load("", tmp_path).model_dump(exclude={"home", "models_dir"})
    assert shown["scoring"].pop("options") == {"vllm": {}, "transformers": {}, "openai": {}}   # all commented
    default["scoring"].pop("options")
    assert shown == default


# `[table] key` (or `[table] key = value`) in the README's prose, e.g. "`[scoring] novelty_context`"
PROSE_KEY = re.compile(r"`\[([a-z.]+)\]\s+([a-z_]+)(?:\s+=\s+([^`]+))?`")


def test_keys_named_in_prose_are_settings(tmp_path):
    """A `[table] key` the prose names is a key of that table (a value given, of its type; a placeholder,
    `FILE`, `N`, `[...]`, stands for one)."""
    found = PROSE_KEY.findall(README.read_text())
    assert ("scoring.vllm", "engine_args", '{ tokenizer = "/path" }') in found      # across a line break
    for table, key, value in found:
        if value and not (placeholder(value) or value == "[...]"):
            load(f"[{table}]\n{key} = {value}\n", tmp_path)
        else:
            assert has_key(table, key), f"[{table}] {key}: no such setting"


def has_key(table: str, key: str) -> bool:
    from ranker.backends import REGISTRY, backend_class
    parts = table.split(".")
    if parts[0] == "scoring" and len(parts) == 2 and parts[1] in REGISTRY:
        return key in backend_class(parts[1]).Options.model_fields
    model = Settings
    for p in parts:
        info = model.model_fields.get(p)
        if info is None:
            return False
        model = info.annotation
    return key in model.model_fields


def test_configuration_prose(tmp_path):
    """What the Configuration section says in words: values typed strictly (its refused example), the older
    `engine_args` under [scoring], and --backend-option's examples each an option of some backend."""
    from ranker.backends import REGISTRY, backend_class
    from ranker.settings import parse_option
    text = README.read_text()
    assert '(`min_keep = "5"` is refused: write `5`)' in text
    with pytest.raises(ConfigError) as e:                # the README's example of something refused
        load('[prefilter]\nmin_keep = "5"\n', tmp_path)
    assert e.value.key == "prefilter.min_keep"
    assert load("[prefilter]\nmin_keep = 5\n", tmp_path).prefilter.min_keep == 5
    assert "`engine_args` directly\nunder `[scoring]`, still reaches the vllm backend" in text
    s = load("[scoring]\nengine_args = { enforce_eager = true }\n", tmp_path)
    assert s.scoring.options == {"vllm": {"engine_args": {"enforce_eager": True}}}
    m = re.search(r"the value read as TOML: ((?:`[^`]+`(?:, )?)+)", text.replace("\n", " "))
    examples = re.findall(r"`([^`]+)`", m.group(1))
    assert len(examples) == 3
    for example in examples:
        key, value = parse_option(example.replace("'", ""))
        takers = [b for b in REGISTRY if b != "fake" and key in backend_class(b).Options.model_fields]
        assert takers, f"--backend-option {example}: no backend has the option {key}"
        for b in takers:
            backend_class(b).parse_options({key: value})


def test_environment_variables():
    """The RANKER_* variables the README names are the ones ranker reads (its settings' or its tests'), and
    every variable the settings read is named (`RANKER_FETCH_TIMEOUT` / `_RETRIES` short for the others)."""
    from ranker.settings import ENV_KEYS, OTHER_ENV, SECRET_ENV
    text = README.read_text()
    named = set(re.findall(r"\b((?:RANKER|OPENAI)_[A-Z_]+)", text))
    named |= {"RANKER_FETCH" + suffix for suffix in re.findall(r"`(_[A-Z_]+)`", text)}
    assert named - {"RANKER_OFLINE"} <= set(ENV_KEYS) | set(SECRET_ENV) | set(OTHER_ENV)   # OFLINE: the typo
    assert set(ENV_KEYS) | set(SECRET_ENV) <= named


def test_every_setting_and_backend_option_is_named():
    """Each key ranker.toml takes, and each option of a real backend's table, is named in the README (an error
    told a CPU user to raise `kv_cache_gb`, which no page named); the API key's is its variable, OPENAI_API_KEY."""
    from ranker.backends import REGISTRY, backend_class
    text = README.read_text()
    keys = [(None, k) for k in Settings.model_fields if k != "openai_api_key"]
    keys += [(section, k) for section in ("fetch", "prefilter", "scoring", "digest")
             for k in Settings.model_fields[section].annotation.model_fields if k != "options"]
    keys += [(f"scoring.{b}", k) for b in REGISTRY if b != "fake" for k in backend_class(b).Options.model_fields]
    unnamed = [f"[{t}] {k}" if t else k for t, k in keys if not re.search(r"`[^`]*(?<![\w-])%s\b" % k, text)]
    assert not unnamed, f"settings the README never names: {unnamed}"


def test_the_toml_check_refuses_what_is_not_there(tmp_path):
    """Self-check: a made-up key or option, or a value of the wrong type, fails the checks above."""
    for text in ("[prefilter]\nno_such_key = 1\n", "[scoring.vllm]\nno_such_option = 1\n",
                 "[scoring.openai]\nconcurrency = \"8\"\n", "[no_such_table]\nx = 1\n"):
        with pytest.raises(ConfigError):
            load(text, tmp_path)
    assert uncommented("[fetch]\n# no_such_key = 1\n") == "[fetch]\nno_such_key = 1\n"
    with pytest.raises(ConfigError):
        load(uncommented("[fetch]\n# no_such_key = 1\n"), tmp_path)
    assert not has_key("scoring", "no_such_key") and not has_key("scoring.vllm", "no_such_option")
    assert has_key("scoring", "novelty_context") and has_key("scoring.vllm", "engine_args")


# --------------------------------------------------------------------------- command lines
@dataclass
class Line:
    where: str              # README:<line>
    args: list[str]         # what follows `ranker`


def shell_lines(block: Block) -> list[tuple[int, str]]:
    """The commands of a block, by the README line each starts on: continuations joined; in a console block
    only the `$ ` lines; in a cron table the command after the five time fields; in a systemd unit Exec*=."""
    out, pending, start = [], "", 0
    for n, line in enumerate(block.text.splitlines(), start=block.line):
        if block.lang == "console":
            if not pending and not line.startswith("$ "):
                continue
            line = line[2:] if not pending else line
        elif block.lang == "cron":
            if line.lstrip().startswith("#") or len(line.split()) < 6 or "=" in line.split()[0]:
                continue
            line = line.split(None, 5)[5]
        elif block.lang == "ini":
            m = re.match(r"^\s*Exec\w*=-?(.*)$", line)
            if not m:
                continue
            line = m.group(1)
        if not pending:
            start = n
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        out.append((start, pending + line))
        pending = ""
    assert not pending, f"README:{start}: a continued line without its end"
    return out


def command_lines(text: str | None = None) -> list[Line]:
    found = []
    for b in blocks(text):
        if b.lang in SHELL | {"cron", "ini"}:
            for n, command in shell_lines(b):
                found += [Line(f"README:{n}", args) for args in ranker_args(command)]
    return found


def inline_lines(text: str | None = None) -> list[Line]:
    """`ranker ...` in the prose's code spans ("`ranker run --recall`")."""
    text = README.read_text() if text is None else text
    found = []
    for n, line in enumerate(text.splitlines(), start=1):
        for span in re.findall(r"`(ranker(?: [^`]*)?)`", line):
            found.append(Line(f"README:{n}", shlex.split(span)[1:]))
    return found


def test_readme_has_command_lines():
    lines = command_lines()
    assert len(lines) >= 20
    names = {a[0] for line in lines for a in [line.args] if a}
    assert {"run", "fetch", "backfill", "models", "labels", "index"} <= names


@pytest.mark.parametrize("line", command_lines(), ids=lambda l: l.where)
def test_command_line_is_the_cli(line):
    """A command line of a code block: its command and subcommand exist, its flags are that command's, each
    with a value where it takes one, and it gives the arguments (and required flags) the command needs."""
    assert not problems(line.args), f"{line.where}: ranker {' '.join(line.args)}: {problems(line.args)}"


@pytest.mark.parametrize("line", inline_lines(), ids=lambda l: l.where)
def test_inline_command_is_the_cli(line):
    """`ranker ...` in the prose: the command, subcommand and flags exist (its arguments may be elided)."""
    assert not problems(line.args, exact=False), \
        f"{line.where}: ranker {' '.join(line.args)}: {problems(line.args, exact=False)}"


# flags the README names that are not ranker's: other programs' and words about flags
NOT_RANKER = {"--user": "systemctl/journalctl", "--now": "systemctl", "--head": "ray start",
              "--structured-outputs-config": "vllm serve", "--kep": "the misspelt flag of an error message",
              "--flag": "the layout's word for any flag"}


def test_every_flag_named_is_one():
    """Every --flag anywhere in the README is an option of some ranker command, one a script under scripts/
    defines, or one of NOT_RANKER (another program's)."""
    scripts = Path(__file__).resolve().parent.parent / "scripts"
    defined = {f for path in scripts.glob("*.py") for f in re.findall(r"[\"'](--[a-z0-9-]+)[\"']", path.read_text())}
    named = set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", README.read_text()))
    unknown = named - all_options() - defined - set(NOT_RANKER)
    assert not unknown, f"flags nothing defines: {sorted(unknown)}"
    assert set(NOT_RANKER) <= named, "NOT_RANKER lists a flag the README no longer names"


def _walk(cmd, path=("ranker",)):
    """Every command and group of the CLI, by its words, with its click object."""
    for name, sub in getattr(cmd, "commands", {}).items():
        yield path + (name,), sub
        yield from _walk(sub, path + (name,))


def unnamed_in(text: str) -> list[str]:
    """The commands, subcommands and options of the CLI that `text` never names: a command by its words
    (`ranker labels list`), an option by any of its spellings (`--no-labels` names `--labels/--no-labels`);
    --help and --version, which every CLI has, apart."""
    from clilines import ROOT, _is_option, _params
    text = " ".join(text.split())
    out = []
    for words, cmd in _walk(ROOT):
        if " ".join(words) not in text:
            out.append(" ".join(words))
        for p in _params(cmd):
            names = p.opts + p.secondary_opts if _is_option(p) else []
            if names and not {"--help", "--version"} & set(names) and not any(
                    re.search(r"(?<![\w-])%s(?![\w-])" % re.escape(n), text) for n in names):
                out.append(f"{' '.join(words)} {'/'.join(names)}")
    return out


def test_every_command_and_option_is_named():
    """A user looking in the README finds every command, subcommand and option the CLI has (the CLI's --help
    is not the only place a command is documented): `ranker labels list`, `fetch --ids` and `index status
    --quick` were not there."""
    assert not unnamed_in(README.read_text())
    assert {"ranker labels list", "ranker fetch --ids"} <= set(unnamed_in("ranker labels export ranker fetch"))


def test_the_command_check_refuses_what_is_not_there():
    """Self-check: the reader finds ranker where a shell would run it, and the check flags made-up commands,
    flags and missing values."""
    text = ("```bash\n"
            "cd ~/ranker && RANKER_OFFLINE=1 .venv/bin/ranker run --out d/ --no-such-flag \\\n"
            "  --keep 0.3   # a comment --not-a-flag\n"
            "ranker fetch --out - | ranker prefilter --papers - --out x.jsonl 2>&1 >> log\n"
            "```\n")
    lines = command_lines(text)
    assert [(x.where, x.args) for x in lines] == [
        ("README:2", ["run", "--out", "d/", "--no-such-flag", "--keep", "0.3"]),
        ("README:4", ["fetch", "--out", "-"]), ("README:4", ["prefilter", "--papers", "-", "--out", "x.jsonl"])]
    assert problems(lines[0].args) == ["`ranker run` has no option --no-such-flag"]
    assert problems(lines[1].args) == [] and problems(lines[2].args) == []
    assert problems(["no-such-command"]) == ["`ranker` has no command 'no-such-command'"]
    assert problems(["models", "no-such-sub"]) == ["`ranker models` has no command 'no-such-sub'"]
    assert problems(["models"]) and problems(["similar"])           # a subcommand, an argument missing
    assert problems(["run", "--out"]) == ["`ranker run`: --out needs a value"]
    assert problems(["run", "--out", "d/", "--offline=1"]) == ["`ranker run`: --offline is a switch, given a value"]
    assert problems(["prefilter", "--papers", "p"]) == ["`ranker prefilter`: --out is required"]
    assert problems(["-v", "run", "--out", "d/", "-v", "--no-offline"]) == []
    assert problems(["COMMAND", "--help"], exact=False) == []
    assert "--no-such-flag" not in all_options() and {"--keep", "--quick", "--gguf"} <= all_options()
    assert problems(["run", "...", "--kep"], exact=False) == ["`ranker run` has no option --kep"]
    # values go through the CLI's own parser: its types and parsers (a placeholder's line is not parsed)
    assert problems(["-v", "similar", "x", "--k", "ten"]) == [
        "`ranker similar`: Invalid value for '--k': Input should be a valid integer, unable to parse string as an "
        "integer"]
    assert problems(["run", "--out", "d/", "--papers", "https://h/p.jsonl"]) == [
        "`ranker run`: Invalid value for '--papers': a URL where a local path is expected (save what it points to "
        "first)"]
    assert problems(["eval", "--history", "h", "--out", "o", "--days", "N"]) == []
    cron = "```cron\n30 7 * * 1-5  cd $HOME/ranker && .venv/bin/ranker run --out $HOME/d >> $HOME/d/log 2>&1\n```\n"
    unit = "```ini\n[Service]\nWorkingDirectory=%h/ranker\nExecStart=%h/ranker/.venv/bin/ranker run --out %h/d\n```\n"
    assert [x.args for x in command_lines(cron + unit)] == [["run", "--out", "$HOME/d"], ["run", "--out", "%h/d"]]


# --------------------------------------------------------------------------- Python examples
def python_blocks(text: str | None = None) -> list[Block]:
    return [b for b in blocks(text) if b.lang == "python"]


def _has(cls: type, attr: str) -> bool:
    """An instance of `cls` has `attr`: a class attribute, method or property, a dataclass or pydantic field."""
    return (hasattr(cls, attr) or attr in getattr(cls, "__dataclass_fields__", {})
            or attr in getattr(cls, "model_fields", {}))


def _returns(obj) -> type | None:
    """The class of what calling `obj` gives: the class itself, or the function's return annotation."""
    return obj if inspect.isclass(obj) else typing.get_type_hints(obj).get("return")


def _resolves(flags: dict, cwd: Path) -> str:
    """What resolve(flags=...) says of the flags (empty: taken), read without a ranker.toml or environment."""
    from ranker.settings import resolve
    try:
        resolve(cwd / "none.toml" if (cwd / "ranker.toml").exists() else None, flags=flags, env={})
    except (ValueError, ConfigError) as e:
        return str(e)
    return ""


def python_problems(block: Block, cwd: Path) -> list[str]:
    """What is wrong with a Python block of the README, read, not run: each name it imports is in that module,
    each call of a library function or class binds to its signature (the parameters' names, the arguments'
    count), each attribute it reads of a value it made is one that value's class has (the class a function's
    return annotation names), and its comments say the same: `Day: ...` after `day = f(...)` names f's return
    class, `res.summary` an attribute of res, `flags={...}` flags resolve() takes. `cwd`: an empty folder."""
    tree = ast.parse(block.text)
    objects: dict[str, object] = dict(vars(builtins))      # imported names, the builtins
    kinds: dict[str, type] = {}                             # variables: the class of their value
    assigned: dict[int, str] = {}                           # the block's line -> the variable it assigns
    out: list[str] = []

    def at(node) -> str:
        return f"README:{block.line + node.lineno - 1}"

    def callee(func):
        if isinstance(func, ast.Name):
            return objects.get(func.id)
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id in kinds:
            return getattr(kinds[func.value.id], func.attr, None)
        return None

    def check(expr) -> None:
        for node in ast.walk(expr):
            if isinstance(node, ast.Name) and node.id not in objects and node.id not in kinds:
                out.append(f"{at(node)}: {node.id} is not defined")
            elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in kinds:
                cls = kinds[node.value.id]
                if not _has(cls, node.attr):
                    out.append(f"{at(node)}: {node.value.id}.{node.attr}: a {cls.__name__} has no {node.attr}")
            elif isinstance(node, ast.Call):
                obj = callee(node.func)
                if obj is None:             # an undefined name is said above
                    if not isinstance(node.func, ast.Name):
                        out.append(f"{at(node)}: {ast.unparse(node.func)}: not a function or class the block has")
                    continue
                if any(isinstance(a, ast.Starred) for a in node.args) or any(k.arg is None for k in node.keywords):
                    continue
                try:
                    inspect.signature(obj).bind(*node.args, **{k.arg: k.value for k in node.keywords})
                except TypeError as e:
                    out.append(f"{at(node)}: {ast.unparse(node.func)}(...): {e}")
                flags = next((k.value for k in node.keywords if k.arg == "flags"), None)
                if getattr(obj, "__name__", "") == "resolve" and isinstance(flags, ast.Dict):
                    said = _resolves(ast.literal_eval(flags), cwd)
                    if said:
                        out.append(f"{at(node)}: resolve(flags=...): {said}")

    def kind_of(expr, name: str) -> type | None:
        obj = callee(expr.func) if isinstance(expr, ast.Call) else None
        kind = _returns(obj) if obj is not None else None
        if not inspect.isclass(kind):
            out.append(f"{at(expr)}: what {name} holds is not told (a call whose return annotation is a class)")
            return None
        return kind

    def read(body) -> None:
        for st in body:
            if isinstance(st, ast.ImportFrom):
                module = importlib.import_module(st.module)
                for a in st.names:
                    if not hasattr(module, a.name):
                        out.append(f"{at(st)}: {st.module} has no {a.name}")
                    objects[a.asname or a.name] = getattr(module, a.name, None)
            elif isinstance(st, ast.Assign) and len(st.targets) == 1 and isinstance(st.targets[0], ast.Name):
                check(st.value)
                name = st.targets[0].id
                kind = kind_of(st.value, name)
                if kind is not None:
                    kinds[name] = kind
                assigned.update((n, name) for n in range(st.lineno, st.end_lineno + 1))
            elif isinstance(st, ast.With):
                for item in st.items:
                    check(item.context_expr)
                    if isinstance(item.optional_vars, ast.Name):
                        name = item.optional_vars.id
                        kind = kind_of(item.context_expr, name)
                        if kind is not None:
                            kinds[name] = _returns(kind.__enter__)
                read(st.body)
            elif isinstance(st, ast.Expr):
                check(st.value)
            else:
                out.append(f"{at(st)}: a {type(st).__name__} statement, which this check does not read")

    read(tree.body)
    for tok in tokenize.generate_tokens(io.StringIO(block.text).readline):
        if tok.type != tokenize.COMMENT:
            continue
        line, comment = tok.start[0], tok.string.lstrip("#").strip()
        where = f"README:{block.line + line - 1}"
        m = re.match(r"([A-Z][A-Za-z]+):", comment)
        if m and line in assigned and assigned[line] in kinds and kinds[assigned[line]].__name__ != m.group(1):
            out.append(f"{where}: the comment says {m.group(1)}; {assigned[line]} is a "
                       f"{kinds[assigned[line]].__name__}")
        for var, attr in re.findall(r"\b([a-z_]\w*)\.([a-z_]\w*)\b", comment):
            if var in kinds and not _has(kinds[var], attr):
                out.append(f"{where}: the comment's {var}.{attr}: a {kinds[var].__name__} has no {attr}")
        for flags in re.findall(r"flags=(\{[^}]*\})", comment):
            said = _resolves(ast.literal_eval(flags.replace(", ...}", "}")), cwd)
            if said:
                out.append(f"{where}: the comment's flags={flags}: {said}")
    return out


def test_readme_has_python_examples():
    assert len(python_blocks()) >= 2


@pytest.mark.parametrize("block", python_blocks(), ids=lambda b: f"README:{b.line}")
def test_python_example_is_the_library(block, tmp_path):
    """A Python block names functions and classes the library has, calls them with parameters they take and
    reads attributes their results have (nothing heavy is run: the signatures and annotations are read)."""
    found = python_problems(block, tmp_path)
    assert not found, "\n".join(found)


@pytest.mark.slow
def test_the_layout_example_runs_a_day(tmp_path):
    """The Layout section's example (the four steps, run_day, compare) run as written, a user's script in a
    folder holding listing.jsonl, GPT's gpt_scores.jsonl and a ranker.toml that picks the fake backend
    offline: the static check above reads names and signatures; this one runs it (the real embedder loaded),
    so a step that fails on the example's own calls, or writes on the script's stdout or stderr, is seen."""
    import json
    import os
    import shutil
    import subprocess
    import sys
    from ranker import REPO_DAY
    block = next(b for b in python_blocks() if "run_day(day" in b.text)
    shutil.copy(REPO_DAY, tmp_path / "listing.jsonl")
    shutil.copy(REPO_DAY.parent / "gpt_scores.jsonl", tmp_path)
    (tmp_path / "ranker.toml").write_text('offline = true\n[scoring]\nbackend = "fake"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("RANKER_") or k == "RANKER_MODELS_DIR"}
    env.update(RANKER_HOME=str(tmp_path / "home"),
               PYTHONPATH=os.pathsep.join(filter(None, [str(README.parent), env.get("PYTHONPATH")])))
    code = block.text + ("print(day.date, len(day.papers), pre.kept, run.scored, len(dig.json), "
                         "res.manifest['status'])\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=280)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    date, papers, kept, scored, picked, status = r.stdout.split()
    assert (date, papers, status) == ("2025-05-15", "192", "ok") and int(kept) == int(scored) > 0 < int(picked)
    assert (tmp_path / "digest" / "2025-05-15-output.md").exists()
    assert json.loads((tmp_path / "cmp" / "metrics.json").read_text())["n_common"] > 0
    assert (tmp_path / "home" / "ranker.sqlite3").exists()


def test_the_python_check_refuses_what_is_not_there(tmp_path):
    """Self-check: planted mistakes of each kind in a Python block are found."""
    text = ("```python\n"
            "from ranker.settings import resolve\n"
            "from ranker.steps import fetch_day, no_such_step\n"
            "from ranker.store import Store\n"
            "\n"
            "s = resolve(flags={\"keep\": 0.3, \"kepp\": 1})        # Settings: s.db_path (+ flags={\"topp\": 3, ...})\n"
            "with Store(s.db_path, timeout=3) as store:\n"
            "    day = fetch_day(\"x.jsonl\", s, store=store)     # Digest: day.titles\n"
            "    day = fetch_day(\"x.jsonl\", s, stor=store)\n"
            "    pre = prefilter_day(day.paper, s)\n"
            "```\n")
    assert python_problems(python_blocks(text)[0], tmp_path) == [
        "README:3: ranker.steps has no no_such_step",
        "README:6: resolve(flags=...): no setting for the flag parameter 'kepp'",
        "README:7: Store(...): got an unexpected keyword argument 'timeout'",
        "README:9: fetch_day(...): missing a required argument: 'store'",
        "README:10: prefilter_day is not defined",
        "README:10: day.paper: a Day has no paper",
        "README:10: what pre holds is not told (a call whose return annotation is a class)",
        "README:6: the comment's flags={\"topp\": 3, ...}: no setting for the flag parameter 'topp'",
        "README:8: the comment says Digest; day is a Day",
        "README:8: the comment's day.titles: a Day has no titles"]


# --------------------------------------------------------------------------- the two commands
def test_make_run_installs_no_system_package():
    """`make run` on a fresh machine is the venv, the models and the day: the Debian packages only the tests use
    (chromium, tmux) are installed by `make test`, with apt-get, which fails for a user who is not root (`make
    run` stopped there, before ranking anything). Read with `make -n`: nothing is run."""
    import shutil
    import subprocess
    if not shutil.which("make"):
        pytest.skip("make is not installed")
    run = subprocess.run(["make", "-n", "run"], cwd=README.parent, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert "ranker run --papers ranker/data/" in run.stdout and "models prepare" in run.stdout
    assert "apt-get" not in run.stdout, run.stdout
    test = subprocess.run(["make", "-n", "test"], cwd=README.parent, capture_output=True, text=True, timeout=60)
    assert "apt-get install -y -qq chromium" in test.stdout and "pytest" in test.stdout


def test_make_bench_prepares_what_bench_scoring_needs():
    """`make bench` on a fresh machine (`make -n -B`: as if nothing were built yet) installs llama-cpp-python and
    writes every GGUF that bench_scoring.py's default engines load before it runs the script: before, the script
    refused at once (exit 2, "the GGUF of preset 'smollm2-135m' is not prepared; run: ranker models prepare
    smollm2-135m --gguf f32"), after bench_prefilter.py had run, and bench_load.py never ran. And it installs no
    Debian package: it ran `make setup`, whose apt-get of the tests' chromium and tmux fails for a user who is not
    root, before any benchmark."""
    import importlib.util
    import shutil
    import subprocess
    if not shutil.which("make"):
        pytest.skip("make is not installed")
    spec = importlib.util.spec_from_file_location("bench_scoring", REPO / "scripts" / "bench_scoring.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    p = subprocess.run(["make", "-n", "-B", "bench"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    at = next(i for i, line in enumerate(lines) if "scripts/bench_scoring.py" in line)
    before = "\n".join(lines[:at])
    assert "'.[llamacpp]'" in before, p.stdout
    quants = {bench.engine_settings(e, None).get("quant") for e in bench.DEFAULT_ENGINES if e.startswith("llamacpp")}
    assert None in quants and quants - {None}                  # the shipped GGUF and float copies of it
    prepared = set()                                           # (preset, quant) of each `models prepare`
    for words in (line.split() for line in lines[:at] if " models prepare " in line):
        names = [w for w in words[words.index("prepare") + 1:] if not w.startswith("-")]
        floats = [words[i + 1] for i, w in enumerate(words[:-1]) if w == "--gguf"]
        prepared |= {(n, q) for n in names if n not in floats for q in [None, *floats]}
    model = "smollm2-135m"                                     # bench_scoring.py's --model default
    assert f'"--model", default="{model}"' in (REPO / "scripts" / "bench_scoring.py").read_text()
    assert {(model, q) for q in quants} <= prepared, p.stdout
    assert "apt-get" not in p.stdout, p.stdout      # chromium and tmux are the tests' (as root): no benchmark's


# --------------------------------------------------------------------------- the layout
REPO = README.parent


def layout_entries() -> dict[str, str]:
    """The Layout section's tree, ranker/'s entries (`scoring.py`, `sources/`) and the repository's (`scripts/`),
    each with its text, continuation lines included."""
    found = [b for b in blocks() if b.lang == "" and b.text.startswith("ranker/\n")]
    assert len(found) == 1, "the README's layout tree (## Layout) is not found"
    entries, name = {}, None
    for line in found[0].text.splitlines()[1:]:
        m = re.match(r"^(  )?(\S+)\s+(.*)$", line)
        if m and not line.startswith("   "):
            name = ("ranker/" if m.group(1) else "") + m.group(2)
            entries[name] = m.group(3)
        elif name:
            entries[name] += " " + line.strip()
    return entries


def _module_words(text: str) -> set[str]:
    return set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", text))


def layout_problems(entries: dict[str, str], readme: str) -> list[str]:
    """What the layout tree leaves out of the repository: a module or folder of ranker/ with no entry, a module of
    a package its entry does not name (the commands' own modules of cli/ apart: "one module per command,
    listed in app.py"), a script of scripts/ the README never names."""
    out = []
    pkg = REPO / "ranker"
    for child in sorted(pkg.iterdir()):
        if child.name.startswith((".", "__")) or child.suffix == ".pyc":
            continue
        key = f"ranker/{child.name}" + ("/" if child.is_dir() else "")
        if child.suffix == ".py" or child.is_dir():
            if key not in entries:
                out.append(f"{key}: no entry in the layout")
        elif not any(child.name in text for text in entries.values()):
            out.append(f"{key}: not named in the layout")
        if not child.is_dir() or key not in entries:
            continue
        for module in sorted(child.glob("*.py")):
            if module.stem == "__init__" or module.stem in _module_words(entries[key]):
                continue
            if child.name == "cli" and re.search(r"^def register\(", module.read_text(), re.M):
                continue
            out.append(f"{key}{module.name}: not named in its folder's entry")
    for script in sorted((REPO / "scripts").glob("*.py")):
        if script.stem not in _module_words(readme):
            out.append(f"scripts/{script.name}: the README never names it")
    return out


def test_layout_names_every_module_and_script():
    """The Layout section names every module and folder of ranker/, in its folder's entry, and the README every
    script (sources/xmlutil, backfill/manifest and procmem, web's server, security, views and render,
    cli/common, ranker/data and two scripts were missing)."""
    assert not layout_problems(layout_entries(), README.read_text())
    entries = layout_entries()
    assert {"ranker/sources/", "ranker/cli/", "ranker/scoring.py", "scripts/", "tests/"} <= set(entries)
    entries["ranker/sources/"] = entries["ranker/sources/"].replace("xmlutil", "")
    del entries["ranker/steps.py"]
    assert layout_problems(entries, README.read_text().replace("wf_common", "")) == [
        "ranker/sources/xmlutil.py: not named in its folder's entry", "ranker/steps.py: no entry in the layout",
        "scripts/wf_common.py: the README never names it"]


# --------------------------------------------------------------------------- the numbers it quotes
def quoted_constants() -> list[tuple[str, str]]:
    """(what the README says, where the code keeps it), the README's words made from the code's constants: a
    limit, a default, a threshold the prose states (not the measured figures). A constant changed alone, or
    the README's number changed alone, no longer reads the same."""
    import inspect as _inspect

    from ranker.backfill import plan, ray_engine
    from ranker.cli import term
    from ranker.index import corpus, kinds, neighbours, stream
    from ranker.labels import LABEL_WEIGHT, MIN_LABELS_EACH
    from ranker.prefilter import calibrate, embed, rank, recall
    from ranker.prompts import AUTHORS_LAST, MAX_AUTHORS
    from ranker.settings import Settings
    from ranker.sources import net, report
    from ranker.web import app
    d, f = Settings(), recall.ZERO_SHOT_FRACTIONS
    store_mb = _inspect.signature(ray_engine.RayEngine.__init__).parameters["object_store_mb"].default
    return [
        (f"the newest {term.KEEP_LOGS} are kept", "cli.term.KEEP_LOGS"),
        (f"an XML feed larger than {report.XML_CAP >> 20} MiB", "sources.report.XML_CAP"),
        (f"a JSON line longer than {report.LINE_CAP >> 20} MiB", "sources.report.LINE_CAP"),
        (f"an HTTP answer larger than {net.MAX_ANSWER >> 20} MiB", "sources.net.MAX_ANSWER"),
        (f"busy for over {app.BUSY_TIMEOUT:g} s", "web.app.BUSY_TIMEOUT"),
        (f"a chunk ({stream.CHUNK:,}) at a time", "index.stream.CHUNK"),
        (f"({embed.CHUNK} texts a chunk", "prefilter.embed.CHUNK"),
        (f"first {embed.DEFAULT_MAX_TOKENS} tokens of title + abstract", "prefilter.embed.DEFAULT_MAX_TOKENS"),
        (f"{kinds.LISTS_PER_SQRT}·√n lists, {kinds.NPROBE} probed; retrained when the corpus has grown "
         f"{kinds.RETRAIN_GROWTH}x", "index.kinds"),
        (f"Exact below {kinds.APPROX_THRESHOLD:,} vectors", "index.kinds.APPROX_THRESHOLD"),
        (f"once there are more than {corpus.MAX_SEGMENTS},", "index.corpus.MAX_SEGMENTS"),
        (f"both {corpus.TAIL_MIN:,} vectors and {corpus.TAIL_SHARE:.0%} of the index", "index.corpus.TAIL_*"),
        (f"over {corpus.DROPPED_MIN:,} rows and over {corpus.DROPPED_SHARE:.0%} of it", "index.corpus.DROPPED_*"),
        (f"and {corpus.N_PROBES} sampled (id, text hash) pairs", "index.corpus.N_PROBES"),
        (f"at least {neighbours.REUPLOAD_COSINE} cosine", "index.neighbours.REUPLOAD_COSINE"),
        (f"ratio >= {neighbours.SAME_TEXT_RATIO} over the words, at cosine >= {neighbours.SAME_ABSTRACT_COSINE}",
         "index.neighbours.SAME_*"),
        (f"weighs {LABEL_WEIGHT:g}x a GPT row", "labels.LABEL_WEIGHT"),
        (f"{MIN_LABELS_EACH} up and {MIN_LABELS_EACH} down", "labels.MIN_LABELS_EACH"),
        (f"{calibrate.MIN_DAYS} days with GPT picks and {calibrate.MIN_PICKS} picks", "calibrate.MIN_DAYS/PICKS"),
        (f"the day's {rank.FIRING_QUANTILE * 100:.0f}th percentile", "prefilter.rank.FIRING_QUANTILE"),
        (f"less {rank.APPLICATION_WEIGHT} x the z-scored mean firing", "prefilter.rank.APPLICATION_WEIGHT"),
        (f"plus {rank.TITLE_BONUS} when one of the prompt's relevant keywords", "prefilter.rank.TITLE_BONUS"),
        (f"plus {rank.CATEGORY_WEIGHT} x its category neighbourhood", "prefilter.rank.CATEGORY_WEIGHT"),
        (f"towards the day's mean by {rank.CATEGORY_PRIOR_PAPERS:g} papers", "prefilter.rank.CATEGORY_PRIOR_PAPERS"),
        (f"(R 0.80: {f[0.80]:.0%}, 0.90: {f[0.90]:.0%}, 0.95: {f[0.95]:.0%}; below 0.50, measured at {f[0.50]:.0%}",
         "prefilter.recall.ZERO_SHOT_FRACTIONS"),
        (f"recall {recall.DEFAULT_RECALL} with a calibration; without one the fixed fraction "
         f"{recall.DEFAULT_KEEP:.0%}", "prefilter.recall.DEFAULT_*"),
        (f"never fewer than min(N, {d.prefilter.min_keep}) papers", "[prefilter] min_keep"),
        (f"into {plan.SPLIT_BYTES >> 20} MB byte ranges", "backfill.plan.SPLIT_BYTES"),
        (f"(a {store_mb} MB object store)", "backfill.ray_engine.RayEngine object_store_mb"),
        (f"(up to {ray_engine.RETRIES} times)", "backfill.ray_engine.RETRIES"),
        (f"about `[scoring] abstract_tokens` ({d.scoring.abstract_tokens})", "[scoring] abstract_tokens"),
        (f"`max_authors` names ({MAX_AUTHORS}: the first ones, the count left out, the last "
         f"{['none', 'one', 'two', 'three', 'four', 'five'][AUTHORS_LAST]})", "prompts.MAX_AUTHORS/AUTHORS_LAST"),
        (f"shows its first {MAX_AUTHORS - AUTHORS_LAST} and last {AUTHORS_LAST}", "prompts.MAX_AUTHORS/AUTHORS_LAST"),
        (f"The COMMENT's bound, {d.scoring.comment_chars} characters by default", "[scoring] comment_chars"),
    ]


def test_quoted_limits_and_defaults_are_the_code_constants():
    """Each limit, default and threshold the README's prose states is the value the code holds (the config
    block's values are checked against the settings above; these are the ones written in sentences)."""
    text = " ".join(README.read_text().split())
    missing = [f"{where}: the README does not say {said!r}" for said, where in quoted_constants()
               if " ".join(said.split()) not in text]
    assert not missing, "\n".join(missing)
