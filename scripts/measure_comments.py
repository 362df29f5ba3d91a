"""How long GPT-4o's COMMENTs are: the figures the default bound (backends.schema.COMMENT_CHARS) follows.

Reads every gpt_scores.jsonl under a history folder (the seed system's picks) and, when given, the seed
digest's **Comment:** lines; prints the count, percentiles, the longest, and how the comments end.

    python scripts/measure_comments.py --history ../shared/data/days --seed ../shared/seed/000_f584fc46408ca691.txt
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(1, str(Path(__file__).resolve().parent))      # script_cli
from script_cli import Parser  # noqa: E402  (a usage error: one line, status 1)


def percentile(xs: list[int], q: float) -> float:
    """Linear interpolation between the closest ranks (numpy's default)."""
    s = sorted(xs)
    k = (len(s) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def main() -> None:
    ap = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--history", default=str(REPO / "tests/data/days"))
    ap.add_argument("--seed", default=None, help="the seed digest (Markdown)")
    a = ap.parse_args()
    from ranker.backends.schema import COMMENT_CHARS
    comments = [json.loads(line)["COMMENT"] for f in sorted(Path(a.history).glob("*/gpt_scores.jsonl"))
                for line in f.read_text(encoding="utf-8").splitlines() if line.strip()]
    n = [len(c) for c in comments]
    print(f"{len(n)} GPT-4o comments in {a.history}")
    print("  min {}  median {:.0f}  p90 {:.1f}  p95 {:.2f}  p99 {:.2f}  max {}".format(
        min(n), percentile(n, 50), percentile(n, 90), percentile(n, 95), percentile(n, 99), max(n)))
    print(f"  ending with: {dict(Counter(c[-1] for c in comments).most_common())}")
    if a.seed:
        seed = [len(m) for m in re.findall(r"^\*\*Comment:\*\* (.*)$", Path(a.seed).read_text(), re.M)]
        print(f"seed digest: {len(seed)} comments, {min(seed)}-{max(seed)} characters")
    print(f"default bound (backends.schema.COMMENT_CHARS): {COMMENT_CHARS}")


if __name__ == "__main__":
    from ranker.cli.app import script_main
    raise SystemExit(script_main(main))   # a RankerError: one line, status 1
