#!/usr/bin/env python
"""Where to put the re-upload threshold: on the shared days, the cosine of every paper to its nearest paper
announced on an EARLIER day (another id), and what the pairs at the top of that distribution are.

    .venv/bin/python scripts/eval_reuploads.py [--days ../shared/data/days]
        [--vectors-db ../cache/history-embeddings.sqlite3] [--embedder minilm]

A pair counts as "the same paper" by its text, independently of the embedding: the two abstracts are near
copies (difflib ratio >= 0.9 on the lower-cased words). The script prints the cosine distribution, every pair
above 0.85 with its text ratio, the lowest cosine of a same-paper pair, the highest of a different-paper pair,
and how each candidate threshold sorts them. Vectors come from a store that holds them (read from a copy), and
papers it lacks are embedded with the model.

Real re-uploads are rare, so --plant N (default 200) also makes re-uploads of N random real papers the way
they happen (the same text; a sentence added or dropped; a few typos fixed; a subtitle; the same abstract
under another title) and prints each variant's cosine to its original (the model embeds them: a heavy run).
"""
from __future__ import annotations

import difflib
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(1, str(REPO / "scripts"))
from wf_common import DATA, SHARED_CACHE  # noqa: E402  (found from a worktree too)
from script_cli import Parser  # noqa: E402  (a usage error: one line, status 1)


def load_days(days: Path):
    from ranker.records import Paper
    first: dict[str, Paper] = {}
    repeats = 0
    for f in sorted(days.glob("*/listing.jsonl")):
        for line in f.read_text(encoding="utf-8").splitlines():
            p = Paper.from_dict(json.loads(line))
            if p.id in first:
                repeats += 1
                continue
            first[p.id] = p
    return list(first.values()), repeats


def vectors(papers, db: str | None, embedder: str) -> np.ndarray:
    from ranker.prefilter.embed import Embedder
    from ranker.store import Store
    tmp = Path(tempfile.mkdtemp(prefix="eval-reuploads-"))
    try:
        store_path = tmp / "r.sqlite3"
        if db and Path(db).exists():
            shutil.copy(db, store_path)
            for extra in ("-wal", "-shm"):
                if Path(db + extra).exists():
                    shutil.copy(db + extra, str(store_path) + extra)
        with Store(store_path) as store:
            emb = Embedder(embedder)
            v = emb.embed_papers(papers, store)
            print(f"vectors: {len(papers):,} papers, {emb.texts_encoded:,} embedded now, the rest from {db}")
            return v
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def words(text: str) -> list[str]:
    return text.lower().split()


def main() -> int:
    ap = Parser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--days", type=Path, default=DATA / "days")
    ap.add_argument("--vectors-db", default=str(SHARED_CACHE))
    ap.add_argument("--embedder", default="minilm")
    ap.add_argument("--show", type=float, default=0.85, help="list the pairs at or above this cosine")
    ap.add_argument("--plant", type=int, default=200, help="re-uploads to make of random real papers (0: none)")
    args = ap.parse_args()
    papers, repeats = load_days(args.days)
    days = sorted({p.date for p in papers})
    print(f"{len(days)} days {days[0]}..{days[-1]}, {len(papers):,} distinct papers "
          f"({repeats} listings of an id already seen on an earlier day: the same id, not re-uploads)")
    v = vectors(papers, args.vectors_db, args.embedder)
    order = np.argsort([p.date for p in papers], kind="stable")
    papers = [papers[i] for i in order]
    v = v[order]
    date = np.array([p.date for p in papers])

    best = np.full(len(papers), -1.0)
    arg = np.full(len(papers), -1)
    for i in range(0, len(papers), 2000):
        s = v[i:i + 2000] @ v.T
        earlier = date[None, :] < date[i:i + 2000, None]          # strictly earlier day: never itself
        s = np.where(earlier, s, -2.0)
        arg[i:i + 2000] = s.argmax(1)
        best[i:i + 2000] = s.max(1)
    has = best > -2
    cos = best[has]
    pct = (50, 90, 99, 99.9)
    print(f"nearest earlier paper, cosine over {has.sum():,} papers (all but the first day): percentiles {pct} = "
          f"{np.percentile(cos, pct).round(3).tolist()}, max {cos.max():.4f}")
    for t in (0.85, 0.9, 0.93, 0.95, 0.97, 0.98, 0.99):
        print(f"  >= {t:.2f}: {(cos >= t).sum()}")

    pairs = []
    for i in np.where(has & (best >= min(args.show, 0.8)))[0]:
        j = arg[i]
        a, b = papers[i], papers[j]
        ratio = difflib.SequenceMatcher(None, words(a.abstract), words(b.abstract), autojunk=False).ratio()
        pairs.append((best[i], ratio, a, b))
    pairs.sort(key=lambda x: -x[0])
    print(f"\npairs at cosine >= {args.show} (text ratio: difflib on the abstracts' words; >= 0.9 = same paper):")
    for c, r, a, b in pairs:
        if c < args.show:
            continue
        same_title = "same title" if " ".join(a.title.lower().split()) == " ".join(b.title.lower().split()) \
            else "other title"
        shared = len(set(a.authors) & set(b.authors))
        print(f"  {c:.4f}  ratio {r:.2f}  {a.id} ({a.date}) <- {b.id} ({b.date})  {same_title}, "
              f"{shared} shared authors")
        print(f"          {a.title[:90]}")
        if same_title == "other title":
            print(f"          {b.title[:90]}")
    from ranker.index.neighbours import REUPLOAD_COSINE, SAME_ABSTRACT_COSINE, same_text
    flagged = [(c, a.id, b.id) for c, _, a, b in pairs
               if c >= REUPLOAD_COSINE or (c >= SAME_ABSTRACT_COSINE and same_text(a.abstract, b.abstract))]
    print(f"\nthe product's rule (cosine >= {REUPLOAD_COSINE}, or >= {SAME_ABSTRACT_COSINE} with nearly the same "
          f"abstract) flags {len(flagged)} of the {has.sum():,} papers: "
          + ", ".join(f"{a} <- {b} ({c:.3f})" for c, a, b in flagged))
    same = [c for c, r, _, _ in pairs if r >= 0.9]
    other = [c for c, r, _, _ in pairs if r < 0.9]
    print(f"\nsame-paper pairs (text ratio >= 0.9): {len(same)}, cosine {min(same):.4f}..{max(same):.4f}"
          if same else "\nsame-paper pairs: none")
    print(f"different-paper pairs above 0.85: {len(other)}, highest cosine {max(other):.4f}" if other
          else "different-paper pairs above 0.85: none")
    for t in (0.9, 0.93, 0.95, 0.96, 0.97, 0.98, 0.99):
        tp = sum(c >= t for c in same)
        fp = (cos >= t).sum() - tp
        print(f"  threshold {t:.2f}: flags {tp} of {len(same)} same-paper pairs, {fp} different papers")
    if args.plant:
        planted(papers, v, args.plant, args.embedder)
    return 0


def _sentences(text: str) -> list[str]:
    import re
    return [s for s in re.split(r"(?<=[.!?])\s+(?=[A-Z])", text) if s]


def planted(papers, v, n: int, embedder: str) -> None:
    """Re-uploads of n random real papers, the ways they happen; each variant's cosine to its original, and the
    share the product's rule flags (cosine >= REUPLOAD_COSINE, or >= SAME_ABSTRACT_COSINE with nearly the same
    abstract)."""
    import random
    from ranker.index.neighbours import REUPLOAD_COSINE, SAME_ABSTRACT_COSINE, same_text
    from ranker.prefilter.embed import Embedder, paper_text
    from ranker.records import Paper
    rng = random.Random(0)
    pick = rng.sample(range(len(papers)), n)

    def typos(text: str) -> str:
        w = text.split()
        for i in rng.sample(range(len(w)), min(3, len(w))):
            if len(w[i]) > 3:
                j = rng.randrange(1, len(w[i]) - 1)
                w[i] = w[i][:j] + w[i][j + 1] + w[i][j] + w[i][j + 2:]
        return " ".join(w)

    variants = {
        "same title and abstract": lambda p: (p.title, p.abstract),
        "abstract + a code sentence": lambda p: (p.title, p.abstract + " Code is available at "
                                                 "https://github.com/anonymous/project."),
        "abstract - its last sentence": lambda p: (p.title, " ".join(_sentences(p.abstract)[:-1]) or p.abstract),
        "three words with a typo": lambda p: (p.title, typos(p.abstract)),
        "title + a subtitle": lambda p: (p.title + ": An Extended Version", p.abstract),
        "the abstract under another title": lambda p: (papers[(papers.index(p) + 7) % len(papers)].title,
                                                       p.abstract),
    }
    emb = Embedder(embedder)
    print(f"\nplanted re-uploads of {n} random papers: cosine to the original, and the share each threshold "
          "flags")
    for name, make in variants.items():
        texts = [paper_text(Paper(id="x", title=t, abstract=a)) for t, a in (make(papers[i]) for i in pick)]
        got = emb.encode(texts)
        c = np.sum(got * v[pick], axis=1)
        shares = "  ".join(f">={t}: {np.mean(c >= t):.0%}" for t in (0.8, 0.95, 0.98, 0.99))
        made = [make(papers[i]) for i in pick]
        rule = np.mean([ci >= REUPLOAD_COSINE or (ci >= SAME_ABSTRACT_COSINE and same_text(a, papers[i].abstract))
                        for ci, (_, a), i in zip(c, made, pick)])
        print(f"  {name:<34} min {c.min():.4f}  p5 {np.percentile(c, 5):.4f}  median {np.median(c):.4f}  {shares}"
              f"  | the rule: {rule:.0%}")


if __name__ == "__main__":
    from ranker.cli.app import script_main
    # a RankerError: one line naming the script's flag, status 1
    raise SystemExit(script_main(main, flags={"prefilter.embedder": "--embedder"}))
