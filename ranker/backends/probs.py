"""Expected-score mode: the probability of each score value, read from the generated tokens' log-probs.

Every backend reduces its engine's output to the same picture: the generated text, where each generated
token starts in it, which token was emitted at each position, and the top candidates (token, text,
probability) the engine reported there. `score_distributions` then, for each RELEVANCE / NOVELTY value
in the text:

1. finds the token in which the value's first digit was written (a token may carry text before the
   digit, e.g. '":7' in some vocabularies: that lead must match for a candidate to count);
2. reads the value each candidate at that position would have started: '7' -> 7, ' 8' -> 8, '10' or
   '10,' -> 10 (a complete number), and '1' alone is ambiguous: 1 or the start of 10;
3. splits an ambiguous '1' with the next-token distribution after it: P('0') against P(number ends:
   ',', '}', ']' or whitespace). Where '1' is the token the model emitted, that is the next position's
   reported candidates (already under the grammar); otherwise the backend is asked (`ask`) for the
   next-token distribution after the prefix ending in that candidate, which it answers with one short
   extra forward pass (batched), or None when it has no way to ask (the openai backend with probe off: the
   '1' mass then counts as 1). A probe that was sent and failed leaves the value unknown: the backend fails
   that answer (`probe_failed`) rather than count the '1' as 1;
4. renormalises over the allowed values 1..10.

The candidates' probabilities are whatever the engine reports at that position. vLLM (logprobs_mode
'raw_logprobs', the default) and the transformers backend report them after the grammar's token mask
(disallowed tokens get -inf), i.e. already renormalised over what the schema allows; tokens that lead to
no number (extra whitespace, where the grammar allows it) are dropped before the final renormalisation.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from .base import SCORE_FIELDS, Result

ALLOWED = tuple(range(1, 11))
TOP_LOGPROBS = 20          # candidates every backend asks its engine for at each generated position
_END = re.compile(r"[,}\]\s]")


@dataclass
class Step:
    """One generated position: the emitted token and the candidates the engine reported there."""
    token: Any
    candidates: list[tuple[Any, str, float]] = field(default_factory=list)   # (token, text, probability)


# --------------------------------------------------------------------------- locating values in the JSON
def locate_values(text: str, fields: Iterable[str] = SCORE_FIELDS) -> list[tuple[str | None, str, int, int]]:
    """(ARXIVID of the enclosing object or None, field, start, end) for every integer value of `fields`
    in a JSON text, in order. A tiny scanner (strings, escapes, nesting), so a comment that mentions
    "RELEVANCE": 9 is never mistaken for a value. Tolerates a truncated text."""
    wanted = set(fields)
    out: list[tuple[str | None, str, int, int]] = []
    stack: list[dict[str, Any]] = []     # per open object: {"id":..., "pending": [...], "key": ...}
    i, n = 0, len(text)
    last_string: str | None = None
    expect_value_for: str | None = None
    while i < n:
        c = text[i]
        if c == '"':
            j, buf = i + 1, []
            while j < n and text[j] != '"':
                if text[j] == "\\" and j + 1 < n:
                    buf.append(text[j:j + 2])
                    j += 2
                    continue
                buf.append(text[j])
                j += 1
            s = "".join(buf)
            if expect_value_for is not None:
                if expect_value_for == "ARXIVID" and stack:
                    stack[-1]["id"] = s
                expect_value_for = None
            else:
                last_string = s
            i = j + 1
            continue
        if c == ":":
            expect_value_for, last_string = last_string, None
            i += 1
            continue
        if c == "{":
            stack.append({"id": None, "pending": []})
            expect_value_for = None
        elif c == "}":
            if stack:
                obj = stack.pop()
                out.extend((obj["id"], f, s, e) for f, s, e in obj["pending"])
            expect_value_for = None
        elif c in "[,":
            expect_value_for = None
        elif (c.isdigit() or c == "-") and expect_value_for is not None:
            j = i + 1
            while j < n and text[j].isdigit():
                j += 1
            if expect_value_for in wanted and stack:
                stack[-1]["pending"].append((expect_value_for, i + (c == "-"), j))
            expect_value_for = None
            i = j
            continue
        i += 1
    for obj in reversed(stack):      # truncated text: report what the open objects hold
        out.extend((obj["id"], f, s, e) for f, s, e in obj["pending"])
    return sorted(out, key=lambda t: t[2])


# --------------------------------------------------------------------------- the distributions
def _token_at(starts: list[int], pos: int) -> int:
    """Index of the token whose text covers character `pos` (starts are non-decreasing)."""
    lo, hi = 0, len(starts) - 1
    ans = 0
    while lo <= hi:
        mid = (lo + hi) // 2
        if starts[mid] <= pos:
            ans, lo = mid, mid + 1
        else:
            hi = mid - 1
    # skip empty tokens that share the start
    while ans + 1 < len(starts) and starts[ans + 1] == starts[ans] and starts[ans] <= pos:
        ans += 1
    return ans


def _read_number(piece: str, lead: str) -> tuple[str, bool] | None:
    """(digits, complete) a candidate token text would start the value with; None if it starts no number."""
    if not piece.startswith(lead):
        return None
    rest = piece[len(lead):].lstrip()
    m = re.match(r"\d+", rest)
    if not m:
        return None
    return m.group(0), len(rest) > m.end()


def extension_share(next_candidates: Iterable[tuple[Any, str, float]], digit: str = "0") -> float | None:
    """P(the number goes on with `digit`) against P(it ends), from a next-token distribution."""
    more = end = 0.0
    for _, piece, p in next_candidates:
        if not piece:
            continue
        if piece.startswith(digit) and (len(piece) == 1 or not piece[1].isdigit()):
            more += p
        elif _END.match(piece):
            end += p
    if more + end <= 0:
        return None
    return more / (more + end)


AskFn = Callable[[int, Any], "list[tuple[Any, str, float]] | None"]


def score_distributions(text: str, starts: list[int], steps: list[Step], ask: AskFn | None = None,
                        allowed: tuple[int, ...] = ALLOWED) -> dict[str, dict[int, float]] | None:
    """{field: {value: p}} for a one-paper answer, or {"<id>/<field>": ...} for every paper of a
    several-paper answer. None when nothing is found.

    `starts[i]` is where token i begins in `text`; `ask(i, token)` returns the next-token candidates after
    the generated prefix up to token i-1 followed by `token` (or None)."""
    if not steps or len(starts) != len(steps):
        return None
    allowed_str = {str(v) for v in allowed}
    found = locate_values(text)
    out: dict[str, dict[int, float]] = {}
    ids = {aid for aid, _, _, _ in found}
    for aid, fld, s, _e in found:
        i = _token_at(starts, s)
        lead = text[starts[i]:s]
        mass: dict[int, float] = {}
        for tok, piece, p in steps[i].candidates:
            if p <= 0:
                continue
            read = _read_number(piece, lead)
            if read is None:
                continue
            digits, complete = read
            longer = [v for v in allowed_str if v != digits and v.startswith(digits)]
            if complete or not longer:
                if digits in allowed_str:
                    mass[int(digits)] = mass.get(int(digits), 0.0) + p
                continue
            # ambiguous: '1' may be 1 or the start of 10
            if tok == steps[i].token and i + 1 < len(steps):
                nxt = steps[i + 1].candidates
            else:
                nxt = ask(i, tok) if ask else None
            q = extension_share(nxt, longer[0][len(digits)]) if nxt else None
            q = 0.0 if q is None else q
            if digits in allowed_str:
                mass[int(digits)] = mass.get(int(digits), 0.0) + p * (1 - q)
            mass[int(longer[0])] = mass.get(int(longer[0]), 0.0) + p * q
        total = sum(mass.values())
        if total <= 0:
            continue
        dist = {v: mass.get(v, 0.0) / total for v in allowed}
        key = fld if len(ids) <= 1 else f"{aid}/{fld}"
        out[key] = dist
    return out or None


def probe_failed(result: Result, reason: str) -> None:
    """Fail an answer a probe of which failed: its ambiguous '1' may be 1 or the start of 10, and counted as 1
    it would give a wrong expectation, stored and then reused by every rerun. Its text and usage are kept;
    scoring asks for the paper again, then records it as failed."""
    result.finish_reason, result.score_probs = "error", None
    result.error = f"score probabilities unknown: the probe telling 1 from 10 failed ({reason})"


def expected_value(dist: dict[int, float] | None) -> float | None:
    """The mean score of a distribution over score values, its mass normalised to 1 (rounded to 4 places); None
    for no distribution or one without mass."""
    if not dist:
        return None
    total = sum(dist.values())
    if total <= 0:
        return None
    return round(sum(int(v) * p for v, p in dist.items()) / total, 4)
