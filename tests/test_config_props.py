"""`ranker config` prints a ranker.toml: whatever strings the settings hold (paths and exclusion rules with quotes,
`$`, backslashes, control characters, unicode), the printed file reads back to the same settings."""
from __future__ import annotations

import io
import re

from hypothesis import HealthCheck, example, given, settings, strategies as st

from ranker.cli.common import TERM
from ranker.cli.config import config
from ranker.settings import resolve

PROPS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                        HealthCheck.too_slow])
WORD = st.lists(st.one_of(st.sampled_from(["$", "$$", "${X}", "$HOME", "\\", "\\n", '"', "'", "'''", '"""', "#",
                                           "=", "[", "]", "{", "}", ",", " ", "\t", "é", "\u2028", "\x7f", "\x01",
                                           "\U0001f600"]),
                          st.text(st.characters(blacklist_categories=["Cs"]), max_size=5)),
                min_size=1, max_size=8).map("".join)


def _toml_str(s: str) -> str:
    """A TOML basic string written by hand (every control character, DEL too, as an escape)."""
    return '"' + re.sub(r'[\x00-\x1f\x7f"\\]', lambda m: f"\\u{ord(m.group()):04x}", s) + '"'


@PROPS
@example(home="pay$ment", prompts="a\x7fb", exclude=["x\x7f"])   # DEL: JSON writes it bare, TOML must not
@given(home=WORD, prompts=WORD, exclude=st.lists(WORD.filter(str.strip), max_size=3))
def test_the_printed_config_reads_back_to_the_same_settings(tmp_path, monkeypatch, in_process_command, home,
                                                            prompts, exclude):
    for var in ("RANKER_HOME", "RANKER_DB", "RANKER_MODELS_DIR", "RANKER_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    literal = lambda s: s.replace("$", "$$")          # noqa: E731  (the file expands $NAME in paths)
    f = tmp_path / "ranker.toml"
    f.write_text(f"home = {_toml_str(literal(f'{tmp_path}/h{home}'))}\n[prefilter]\n"
                 f"exclude = [{', '.join(_toml_str(e) for e in exclude)}]\n"
                 f"[scoring]\nprompts = {_toml_str(literal(f'{tmp_path}/p{prompts}'))}\n", encoding="utf-8")
    first = resolve(f, env={})
    out = io.StringIO()
    monkeypatch.setattr(TERM, "_out", out)                 # what `ranker config` prints, in this process
    monkeypatch.setattr(TERM, "capture", lambda *a: None)  # (its descriptors left alone)
    monkeypatch.setattr(TERM, "verbose", TERM.verbose)
    config(config=f, db=None, offline=None, as_json=False)
    printed = out.getvalue()
    again = tmp_path / "again.toml"
    again.write_text(printed, encoding="utf-8")
    second = resolve(again, env={})
    assert (second.home, second.scoring.prompts, second.prefilter.exclude) == \
        (first.home, first.scoring.prompts, first.prefilter.exclude), printed
