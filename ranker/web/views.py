"""What each page shows, read from the store: plain data for the templates. The server and the static site both
render from here, so they show the same thing.

A day's page: the digest's picks first (best first, as the digest orders them), then the rest of the day in the
prefilter's order. A pick is a paper the prefilter kept whose score under the day's digest model and prompt
passes the day's cut-offs: exactly what the day's Markdown digest lists. A day shows the LLM's score of the
papers it kept only: a paper it dropped is not scored there, whatever the store holds for it from another day
or run (the paper's own page lists every stored score and the days whose digest it makes).
"""
from __future__ import annotations

import re
from collections import Counter, OrderedDict
from dataclasses import dataclass, field, replace
from typing import Callable

from ..digest import pick_papers, ranking_key
from ..errors import RankerError
from ..records import DayDigest, Label, Paper, RankingRow, Score
from ..store import Store
from . import plots
from .search import Neighbours, said_with_advice

DAY_RE = re.compile(r"^\d{4}-\d{2}-\d{2}\Z")          # \Z: "$" would let a line break end it
MONTH_RE = re.compile(r"^\d{4}-\d{2}\Z")
SHOW = ("all", "picked", "scored")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")


def month_name(month: str) -> str:
    y, m = month.split("-")
    return f"{MONTHS[int(m) - 1]} {y}"


@dataclass
class Row:
    paper: Paper
    rank: int | None = None              # place in the day's prefilter ranking, 1-based
    prefilter_score: float | None = None
    kept: bool = False
    topic: str = ""
    rule: str | None = None              # "pin" / "exclude:<the rule>" when a user rule decided the paper
    score: Score | None = None           # under the day's digest model and prompt
    picked: bool = False
    label: int = 0                       # +1 / -1 / 0 (none)
    day: str = ""

    @property
    def status(self) -> str:
        return "picked" if self.picked else "scored" if self.score is not None else "ranked"


@dataclass
class DayPage:
    day: str
    picks: list[Row]
    rest: list[Row]
    topics: list[tuple[str, int]]
    counts: dict
    digest: DayDigest | None
    topic: str = ""
    show: str = "all"
    prev_day: str | None = None
    next_day: str | None = None
    hist_svg: str = ""
    grid_svg: str = ""
    ranked: bool = True                  # the prefilter ranked the day (else: the store's order)
    last_run: dict | None = None         # the day's latest `ranker run` that failed, stopped or is running
    # every paper its counts count, those a filter hides too: a label given on one elsewhere (another tab) moves
    # the page's count of your labels when it is looked at again, not only on a reload
    paper_ids: list[str] = field(default_factory=list)

    @property
    def month(self) -> str:
        return self.day[:7]

    @property
    def shown(self) -> int:
        return len(self.picks) + len(self.rest)


def _unfinished_run(store: Store, day: str, digest: DayDigest | None) -> dict | None:
    """The day's latest `ranker run` when it did not end well (failed, interrupted) or is running, with
    "earlier": whether the day's digest is an earlier run's (a run that failed after recording its digest, writing
    its files, is the digest's own); else None."""
    run = store.last_run("run", day=day)
    if not run or run["status"] not in ("failed", "interrupted", "running"):
        return None
    return {**run, "earlier": digest is not None and digest.run_id != run["id"]}


def public_rule(rule: str | None) -> str | None:
    """The rule that decided a paper as a published page (the static site) shows it: that an exclusion dropped it,
    not the exclusion's text ("exclude:<the rule>" -> "exclude"), which is the user's own preference (a topic
    avoided, a group's name filtered out) that the site put on the web. The others name nothing of the user's
    ("pin" names no author; "top", "keep", ...: the keep rule)."""
    return "exclude" if rule and rule.startswith("exclude:") else rule


def _neighbours(store: Store, day: str, days: list[str] | None = None) -> tuple[str | None, str | None]:
    days = store.days() if days is None else days
    if day not in days:
        return None, None
    i = days.index(day)
    return (days[i - 1] if i > 0 else None), (days[i + 1] if i + 1 < len(days) else None)


def day_page(store: Store, day: str, *, topic: str = "", show: str = "all", with_labels: bool = True,
             plots_too: bool = True, all_days: list[str] | None = None, public: bool = False) -> DayPage | None:
    """None when the store knows nothing of `day`. all_days: store.days(), when the caller already has it.
    public: a page to publish, its rules as public_rule shows them."""
    if not DAY_RE.match(day or ""):
        return None
    show = show if show in SHOW else "all"
    rankings: list[RankingRow] = store.get_rankings(day)
    ids = [r.paper_id for r in rankings] if rankings else store.day_paper_ids(day)
    digest = store.get_day_digest(day)
    if not ids and digest is None:
        return None
    papers = store.get_papers(ids)
    by_rank = {r.paper_id: (i, r) for i, r in enumerate(rankings, start=1)}
    # without a ranking, a day's digest scored every paper (each was "kept"); a day only ingested (by `calibrate`
    # or `eval` from a history) has neither: nothing was kept
    kept = {r.paper_id for r in rankings if r.kept} if rankings else set(ids) if digest is not None else set()
    # the scores of the papers the day kept only: the store also holds, under the same model and prompt, scores
    # of papers this day's prefilter dropped (scored on another day, or by another run of this one), which made
    # such a paper "scored" here, in the scored filter and with the LLM's verdict, though the day's run never
    # sent it to the LLM (its page lists every stored score)
    scores = store.get_scores([i for i in ids if i in kept], digest.model, digest.prompt_hash) if digest else {}
    picked = []
    if digest is not None:
        # in the ranking's order, so ties fall as in the digest (it scores the kept papers in that order)
        picked = [s.paper.id for s in pick_papers({i: scores[i] for i in ids if i in scores},
                                                  papers, min_relevance=digest.min_relevance,
                                                  min_novelty=digest.min_novelty)]
    labels = store.get_labels(ids) if with_labels else {}
    rows: dict[str, Row] = OrderedDict()
    for pid in ids:
        if pid not in papers:
            continue
        rank, rr = by_rank.get(pid, (None, None))
        rows[pid] = Row(paper=papers[pid], rank=rank, prefilter_score=rr.prefilter_score if rr else None,
                        kept=pid in kept, topic=rr.topic if rr else "",
                        rule=(public_rule(rr.rule) if public else rr.rule) if rr else None,
                        score=scores.get(pid), picked=False, label=labels[pid].label if pid in labels else 0, day=day)
    for pid in picked:
        rows[pid].picked = True
    topics = Counter(r.topic for r in rows.values() if r.topic)
    counts = {"papers": len(rows), "kept": sum(r.kept for r in rows.values()),
              "scored": sum(r.score is not None for r in rows.values()), "picks": len(picked),
              "up": sum(r.label > 0 for r in rows.values()), "down": sum(r.label < 0 for r in rows.values())}

    def keep(r: Row) -> bool:
        if topic and r.topic != topic:
            return False
        return show == "all" or (show == "picked" and r.picked) or (show == "scored" and r.score is not None)

    pick_rows = [rows[p] for p in picked if keep(rows[p])]
    rest = [r for r in rows.values() if not r.picked and keep(r)]
    prev_day, next_day = _neighbours(store, day, all_days)
    page = DayPage(day=day, picks=pick_rows, rest=rest, topics=sorted(topics.items(), key=lambda kv: (-kv[1], kv[0])),
                   counts=counts, digest=digest, topic=topic, show=show, prev_day=prev_day, next_day=next_day,
                   ranked=bool(rankings), paper_ids=list(rows))
    if not public:
        # a day whose run failed (or was stopped, or runs now) said only "not ranked yet ... the store holds its
        # papers, from a history or a fetch", or showed an older run's digest as if it were the latest word
        page.last_run = _unfinished_run(store, day, digest)
    if plots_too:
        if rankings:
            page.hist_svg = plots.score_histogram([r.prefilter_score for r in rankings], [r.kept for r in rankings])
        if digest is not None and scores:
            pairs = [(s.relevance, s.novelty) for s in scores.values()]
            page.grid_svg = plots.score_grid(pairs, digest.min_relevance, digest.min_novelty)
    return page


# --------------------------------------------------------------------------- archive and months
@dataclass
class MonthGroup:
    month: str
    days: list[dict]

    @property
    def name(self) -> str:
        return month_name(self.month)

    @property
    def picks(self) -> int:
        return sum(d["picks"] for d in self.days)

    @property
    def papers(self) -> int:
        return sum(d["papers"] for d in self.days)


def archive(store: Store) -> list[MonthGroup]:
    """Months, newest first, each with its days (newest first) and their counts."""
    groups: dict[str, MonthGroup] = OrderedDict()
    for d in store.day_summaries():
        if not DAY_RE.match(d["day"]):
            continue
        groups.setdefault(d["day"][:7], MonthGroup(d["day"][:7], [])).days.append(d)
    return list(groups.values())


@dataclass
class MonthPage:
    month: str
    days: list[dict]
    per_topic: list[tuple[str, int]]
    picks: int
    bars_svg: str = ""
    prev_month: str | None = None
    next_month: str | None = None

    @property
    def name(self) -> str:
        return month_name(self.month)


def month_page(store: Store, month: str, groups: list[MonthGroup] | None = None) -> MonthPage | None:
    """groups: archive(store), when the caller already has it."""
    if not MONTH_RE.match(month or ""):
        return None
    groups = archive(store) if groups is None else groups
    months = [g.month for g in groups]            # newest first
    if month not in months:
        return None
    g = groups[months.index(month)]
    picks = store.digest_picks(month + "-")
    per_topic = Counter(t or "(no topic)" for _, _, t in picks)
    items = sorted(per_topic.items(), key=lambda kv: (-kv[1], kv[0]))
    i = months.index(month)
    return MonthPage(month=month, days=g.days, per_topic=items, picks=len(picks),
                     bars_svg=plots.topic_bars(items, f"Digest picks per topic, {month_name(month)}"),
                     prev_month=months[i + 1] if i + 1 < len(months) else None,
                     next_month=months[i - 1] if i > 0 else None)


# --------------------------------------------------------------------------- a paper
@dataclass
class ScoreLine:
    model: str
    prompt_hash: str
    score: Score
    days: list[str] = field(default_factory=list)      # the days whose digest these scores make
    picked: bool = False


@dataclass
class PaperPage:
    paper: Paper
    days: list[str]
    rankings: list[RankingRow]
    scores: list[ScoreLine]
    main: ScoreLine | None                  # the score of the latest day's digest, if any
    picked_on: list[str]
    label: Label | None
    similar: list[tuple[Paper, float]]
    similar_note: str = ""                  # why there are no similar papers, when they could not be looked up
    similar_from: str = ""                  # whose vectors they are, when not the configured embedder's

    @property
    def pdf_url(self) -> str:
        return f"https://arxiv.org/pdf/{self.paper.id}"

    @property
    def day(self) -> str:
        return self.days[-1] if self.days else (self.paper.date or "")

    @property
    def ranking(self) -> RankingRow | None:
        return self.rankings[-1] if self.rankings else None


SimilarFn = Callable[[Store, str, int], list[tuple[str, float]]]


SIMILAR_K = 8          # similar papers on a paper's page


def paper_page(store: Store, paper_id: str, *, similar: SimilarFn | None = None, k: int = SIMILAR_K,
               with_labels: bool = True, public: bool = False) -> PaperPage | None:
    """public: a page to publish, its rules as public_rule shows them."""
    paper = store.get_paper(paper_id)
    if paper is None:
        return None
    rankings = store.rankings_of_paper(paper_id)
    if public:
        rankings = [replace(r, rule=public_rule(r.rule)) for r in rankings]
    days = store.paper_days(paper_id)
    digests = {d: g for d in days if (g := store.get_day_digest(d)) is not None}
    kept_on = {r.day for r in rankings if r.kept}
    lines: list[ScoreLine] = []
    picked_on: list[str] = []
    for model, phash, sc in store.scores_of_paper(paper_id):
        made = [d for d, g in digests.items() if (g.model, g.prompt_hash) == (model, phash)]
        on = [d for d in made if d in kept_on and sc.relevance >= digests[d].min_relevance
              and sc.novelty >= digests[d].min_novelty]
        lines.append(ScoreLine(model, phash, sc, made, bool(on)))
        picked_on += on
    lines.sort(key=lambda s: (max(s.days) if s.days else "", ranking_key(s.score)), reverse=True)
    main = lines[0] if lines and lines[0].days else None
    picked_on = sorted(set(picked_on))
    label = store.get_labels([paper_id]).get(paper_id) if with_labels else None
    sims: list[tuple[Paper, float]] = []
    note = source = ""
    if similar is not None:
        try:
            near = similar(store, paper_id, k)
            found = [(i, s) for i, s in near if i != paper_id][:k]
        except RankerError as e:
            # a store on read-only media (its corpus index cannot be built beside it): the page had no similar
            # papers and did not say why
            found, note = [], said_with_advice(e)
        else:
            # another embedder's panel (this paper has no vector of the configured one): said here, as each page
            # is answered, where serve said it once at start, which went stale as vectors were stored
            source = near.note() if isinstance(near, Neighbours) else ""
        got = store.get_papers([i for i, _ in found])
        sims = [(got[i], s) for i, s in found if i in got]
    return PaperPage(paper=paper, days=days, rankings=rankings, scores=lines, main=main, picked_on=picked_on,
                     label=label, similar=sims, similar_note=note, similar_from=source)


# --------------------------------------------------------------------------- labels and search
@dataclass
class LabelRow:
    label: Label
    paper: Paper | None
    day_known: bool = False              # the store holds the label's digest day (it has a page)


def labels_page(store: Store, events: int = 50) -> tuple[list[LabelRow], list[dict]]:
    labels = list(store.get_labels().values())                    # newest first
    papers = store.get_papers([lb.paper_id for lb in labels])
    days = set(store.days())          # a label imported from another machine may name a day this one never had
    rows = [LabelRow(lb, papers.get(lb.paper_id), lb.day in days) for lb in labels]
    history = store.label_events()[-events:][::-1]
    return rows, history


def paper_rows(store: Store, ids: list[str], *, with_labels: bool = True) -> list[Row]:
    """Rows for a list of papers outside a day (search results): each with its latest ranking and digest score."""
    papers = store.get_papers(ids)
    labels = store.get_labels(ids) if with_labels else {}
    out = []
    for pid in ids:
        if pid not in papers:
            continue
        rk = store.rankings_of_paper(pid)
        r = rk[-1] if rk else None
        day = r.day if r else papers[pid].date
        score, picked = None, False
        g = store.get_day_digest(day) if day else None
        if g is not None and (r is None or r.kept):       # a paper the day dropped: not scored there (day_page)
            score = store.get_scores([pid], g.model, g.prompt_hash).get(pid)
            picked = bool(score and r and score.relevance >= g.min_relevance and score.novelty >= g.min_novelty)
        out.append(Row(paper=papers[pid], rank=None, prefilter_score=r.prefilter_score if r else None,
                       kept=bool(r and r.kept), topic=r.topic if r else "", rule=r.rule if r else None,
                       score=score, picked=picked, label=labels[pid].label if pid in labels else 0, day=day or ""))
    return out
