#!/usr/bin/env python
"""Walk-forward figures of the prefilter's learners and zero-shot scores on a history of GPT-4o days.

A learner is measured as a user lives it: each of the last --test-days days (15) is ranked by a model fit only
on the days before it. A zero-shot score learns nothing, so it is measured on EVERY day (and on the last
--test-days too, for the comparison). Per approach it prints the mean over days of AUC, recall of GPT's picks
in the top 25% / 40%, keep95 (the smallest top fraction of a day that holds 95% of its picks), the time of one
fit and the time to rank one day; then the keep-by-recall check of the shipped learner (R = 0.95, 0.90).

    PYTHONPATH=$PWD flock /tmp/ranker-heavy.lock .venv/bin/python scripts/eval_walkforward.py \
        [--data ../shared/data] [--db STORE] [--approaches shipped,zero-shot,...] [--list]

Vectors come from the store (--db; default ../cache/history-embeddings.sqlite3 beside the checkout when it
exists, else $RANKER_HOME's); a day missing from it is embedded and stored.
"""
from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(1, str(REPO / "scripts"))        # wf_common
from wf_common import DATA, SHARED_CACHE, fmt_ci, fmt_diff  # noqa: E402  (found from a worktree too)
from script_cli import Parser  # noqa: E402  (a usage error: one line, status 1)


# --------------------------------------------------------------------------- approaches
def zero_shot_approaches(ctx) -> dict:
    """name -> function(day HistoryData) -> scores, for scores that learn nothing."""
    from ranker.prefilter.rank import (APPLICATION, APPLICATION_WEIGHT, category_neighbourhood, query_firing,
                                       zero_shot)
    qs, qv_all = ctx["qs"], ctx["qv"]
    # the alternatives read the topic and relevant-keyword queries; the shipped score also the application ones
    pos = np.asarray(qs.topic_of) != APPLICATION
    qv, owner = qv_all[pos], np.asarray(qs.topic_of)[pos]
    pos_texts = [t for t, keep in zip(qs.texts, pos) if keep]
    n_topics = len(qs.topic_names)

    def firing(d, centre="median", floor=True, whiten=False, X=None):
        X = d.X if X is None else X
        if whiten:                    # remove the day's common direction from the papers first
            X = X - X.mean(axis=0, keepdims=True)
            X = X / np.linalg.norm(X, axis=1, keepdims=True)
        sims = X @ qv.T
        c = np.median(sims, axis=0, keepdims=True) if centre == "median" else \
            np.quantile(sims, centre, axis=0, keepdims=True)
        f = sims - c
        return (np.maximum(f, 0.0) if floor else f), sims

    def mean_firing(d, power=1.0, balanced=False, **kw):
        f, sims = firing(d, **kw)
        if balanced:                  # every topic's queries weigh as much as one query per topic; keywords too
            groups = [owner == i for i in range(n_topics)] + [owner == -1]
            f = np.stack([f[:, g].mean(axis=1) for g in groups if g.any()], axis=1)
        return (f ** power).mean(axis=1) ** (1 / power) + 1e-4 * sims.mean(axis=1)

    def max_firing(d):
        f, sims = firing(d)
        return f.max(axis=1) + 1e-4 * sims.mean(axis=1)

    def topk_firing(d, k):
        f, sims = firing(d)
        return np.sort(f, axis=1)[:, -k:].mean(axis=1) + 1e-4 * sims.mean(axis=1)

    def topic_max(d):                 # per topic: mean firing of its queries; then the best topic
        f, sims = firing(d)
        per = np.stack([f[:, owner == i].mean(axis=1) for i in range(n_topics)], axis=1)
        return per.max(axis=1) + 1e-4 * sims.mean(axis=1)

    def topic_mean_plus_max(d):
        f, sims = firing(d)
        per = np.stack([f[:, owner == i].mean(axis=1) for i in range(n_topics)], axis=1)
        return per.mean(axis=1) + per.max(axis=1) + 1e-4 * sims.mean(axis=1)

    def zscore(v):
        return (v - v.mean()) / (v.std() or 1.0)

    def with_authors(d, beta):        # generic prior of the seed pipeline: more authors, likelier h-index >= 20
        n = np.array([len(p.authors or []) for p in d.papers], dtype=float)
        return zscore(mean_firing(d)) + beta * np.log1p(n)

    import re
    kw_phrases = []
    for kw in ctx["prompts"].keywords.relevant:
        for part in re.split(r"[/()]", kw):
            if part.strip():
                kw_phrases.append(part.strip())
    item_phrases = kw_phrases + [t.split(": ", 1)[1] for t in pos_texts if ": " in t and len(t.split(": ", 1)[1]) < 40]

    def pattern(phrases):
        alts = sorted({re.escape(" ".join(re.split(r"[\s-]+", p.lower()))).replace(r"\ ", r"[\s-]+")
                       for p in phrases}, key=len, reverse=True)
        return re.compile(r"\b(?:" + "|".join(alts) + r")", re.I)
    kw_re, item_re = pattern(kw_phrases), pattern(item_phrases)

    def hits(d, rx, field):
        return np.array([1.0 if rx.search(getattr(p, field) or "") else 0.0 for p in d.papers])

    out = {
        "zs: max cosine to topic descriptions (reference)": lambda d: (d.X @ ctx["desc_q"].T).max(axis=1),
        "zs: SHIPPED rank.zero_shot (0.7-centred firing, z - 0.1 x application + 0.5 x keyword in title + 0.2 x "
        "category neighbourhood)": lambda d: d.zs,
        "zs: mean firing over queries, median-centred (previous default)": lambda d: mean_firing(d),
        "zs: mean cosine over queries (no centring)": lambda d: (d.X @ qv.T).mean(axis=1),
        "zs: mean firing, centred on the 0.75 quantile": lambda d: mean_firing(d, centre=0.75),
        "zs: mean firing, centred on the 0.9 quantile": lambda d: mean_firing(d, centre=0.9),
        "zs: mean centred cosine, no floor": lambda d: mean_firing(d, floor=False),
        "zs: max firing over queries": max_firing,
        "zs: mean of top-5 firings": lambda d: topk_firing(d, 5),
        "zs: per-topic mean firing, best topic": topic_max,
        "zs: per-topic mean firing, mean + best": topic_mean_plus_max,
    }
    for q in (0.6, 0.7, 0.8):
        out[f"zs: mean firing, centred on the {q} quantile"] = (lambda qq: lambda d: mean_firing(d, centre=qq))(q)
    out["zs: mean firing, power mean p=2"] = lambda d: mean_firing(d, power=2.0)
    out["zs: mean firing, power mean p=3"] = lambda d: mean_firing(d, power=3.0)
    out["zs: mean firing, topics balanced"] = lambda d: mean_firing(d, balanced=True)
    out["zs: mean firing, papers whitened on the day"] = lambda d: mean_firing(d, whiten=True)
    out["zs: mean firing, 0.75 quantile, power mean p=2"] = lambda d: mean_firing(d, centre=0.75, power=2.0)
    for q, g in ((0.75, 0.5), (0.75, 1.0), (0.65, 0.5), (0.8, 0.5)):
        out[f"zs: {q}-centred (z) + {g} x keyword in title"] = (
            lambda qq, gg: lambda d: zscore(mean_firing(d, centre=qq)) + gg * hits(d, kw_re, "title"))(q, g)
    def zfiring(d, centre=0.75, lse=None):
        sims = d.X @ qv.T
        zq = (sims - np.quantile(sims, centre, axis=0, keepdims=True)) / (sims.std(axis=0, keepdims=True) + 1e-9)
        if lse is not None:           # a smooth maximum over queries
            return np.log(np.exp(zq / lse).mean(axis=1)) * lse
        return np.maximum(zq, 0).mean(axis=1) + 1e-4 * sims.mean(axis=1)
    out["zs: per-query z-scored firing (0.75)"] = lambda d: zfiring(d)
    out["zs: per-query z-scored firing (0.5)"] = lambda d: zfiring(d, 0.5)
    out["zs: per-query z-scored firing (0.75) + 0.5 x keyword in title"] = (
        lambda d: zscore(zfiring(d)) + 0.5 * hits(d, kw_re, "title"))
    for t in (0.5, 1.0, 2.0):
        out[f"zs: smooth max of per-query z (temperature {t})"] = (lambda tt: lambda d: zfiring(d, 0.5, tt))(t)

    def lexical(d, per_query=False):
        from sklearn.feature_extraction.text import TfidfVectorizer
        from ranker.prefilter.embed import paper_text
        v = TfidfVectorizer(sublinear_tf=True, stop_words="english")
        P = v.fit_transform([paper_text(p) for p in d.papers])
        if per_query:
            S = (P @ v.transform(pos_texts).T).toarray()
            S = np.maximum(S - np.median(S, axis=0, keepdims=True), 0)
            return S.mean(axis=1)
        return (P @ v.transform([" ".join(pos_texts)]).T).toarray()[:, 0]

    def z75(d):
        return zscore(mean_firing(d, centre=0.75))
    for g in (0.25, 0.5):
        out[f"zs: 0.75-centred (z) + 0.5 x keyword in title + {g} x TF-IDF to topics (z)"] = (
            lambda gg: lambda d: z75(d) + 0.5 * hits(d, kw_re, "title") + gg * zscore(lexical(d)))(g)
    out["zs: 0.75-centred (z) + 0.5 x keyword in title + 0.25 x TF-IDF firing per query (z)"] = (
        lambda d: z75(d) + 0.5 * hits(d, kw_re, "title") + 0.25 * zscore(lexical(d, True)))
    for g in (0.5, 1.0):
        out[f"zs: median-centred (z) + {g} x keyword in title"] = (
            lambda gg: lambda d: zscore(mean_firing(d)) + gg * hits(d, kw_re, "title"))(g)
    out["zs: median-centred (z) + 0.5 x keyword in title + 0.25 x in abstract"] = (
        lambda d: zscore(mean_firing(d)) + 0.5 * hits(d, kw_re, "title") + 0.25 * hits(d, kw_re, "abstract"))
    out["zs: median-centred (z) + 0.5 x keyword or topic item in title"] = (
        lambda d: zscore(mean_firing(d)) + 0.5 * hits(d, item_re, "title"))
    def application(d, vecs=None):    # the application (or other) keywords' mean firing, z-scored on the day
        return zscore(query_firing(d.X, qv_all[~pos] if vecs is None else vecs)[1].mean(axis=1))

    def without_categories(d, app=0.0, irr=0.0):  # the shipped score before its category neighbourhood
        QS = type(qs)(texts=pos_texts, topic_of=owner.tolist(), topic_names=qs.topic_names,
                      title_terms=qs.title_terms)
        base = zero_shot(d.X, qv, QS, [p.title for p in d.papers])[0].astype(np.float64)
        if app:
            base = base - app * application(d)
        if irr:                       # the prompt's Irrelevant keywords against a paper too
            base = base - irr * application(d, ctx["irrelevant_q"])
        return base
    out["zs: 0.7-centred (z) + 0.5 x keyword in title, no category neighbourhood"] = without_categories
    for w in (0.1, 0.2, 0.3, 0.5):
        for k in (0.0, 5.0, 20.0):
            out[f"zs: ... + {w} x category neighbourhood (shrunk by {k:g} papers)"] = (
                lambda ww, kk: lambda d: (lambda b: b + ww * category_neighbourhood(
                    b, [p.primary for p in d.papers], kk))(without_categories(d)))(w, k)
    for a in (0.05, 0.1, 0.15, 0.2):      # the application keywords against a paper, then the neighbourhood
        out[f"zs: ... - {a} x application keywords' firing (z) + 0.2 x category neighbourhood"] = (
            lambda aa: lambda d: (lambda b: b + 0.2 * category_neighbourhood(b, [p.primary for p in d.papers]))(
                without_categories(d, aa)))(a)
    for a in (0.05, 0.1):
        out[f"zs: shipped, also - {a} x the Irrelevant keywords' firing (z)"] = (
            lambda aa: lambda d: (lambda b: b + 0.2 * category_neighbourhood(b, [p.primary for p in d.papers]))(
                without_categories(d, APPLICATION_WEIGHT, aa)))(a)
    for b in (0.1, 0.2, 0.3, 0.5):
        out[f"zs: median-centred (z) + {b} log(1 + authors)"] = (lambda bb: lambda d: with_authors(d, bb))(b)
    return out


class Components:
    """Per test day, each named signal's out-of-day values on the training rows and its values on the test day,
    computed once a run and shared by every approach that stacks it (the stackers are cheap; the signals not)."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.memo: dict = {}

    def get(self, name: str, tr):
        """(out-of-day values on the training rows, function(rows) -> values from a fit on all of them,
        seconds it took). With --cache, a signal's values on the training rows and on the next day (the test
        day of a walk-forward step) are kept on disk, so another run stacks them without refitting."""
        key = (name, tr.days[-1], len(tr.y))
        if key in self.memo:
            return self.memo[key]
        path = self._path(name, tr)
        if path is not None and path.exists():
            z = np.load(path)
            test_day, test_vals = str(z["test_day"]), z["test"]

            def apply(d, test_day=test_day, test_vals=test_vals, name=name, tr=tr):
                if d.days == [test_day]:
                    return test_vals
                return self._compute(name, tr)[1](d)          # not the cached day: fit after all
            self.memo[key] = (z["oof"], apply, float(z["seconds"]))
            return self.memo[key]
        t = time.perf_counter()
        oof, apply = self._compute(name, tr)
        secs = time.perf_counter() - t
        self.memo[key] = (oof, apply, secs)
        if path is not None and name not in UNCACHED:
            full = self.ctx["data"]
            later = [d for d in full.days if d > tr.days[-1]]
            if later:
                te = full.subset(full.groups == later[0])
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_name(path.name + ".part.npz")
                np.savez(tmp, oof=oof, test=apply(te), test_day=later[0], seconds=secs)
                tmp.replace(path)
        return self.memo[key]

    def _path(self, name, tr):
        from ranker.prefilter.features import FEATURES
        root = self.ctx.get("cache")
        if root is None or name in UNCACHED:
            return None
        tag = f"{len(tr.y)}-{int(tr.y.sum())}-{len(FEATURES) if name.startswith('meta') else 0}"
        if name == "senior":
            tag += f"-{len(SENIOR)}"
        kind = name.split(":")[0]
        # signals read from vectors are kept per embedder (MiniLM's files keep their old names)
        if kind in ("emb", "mlp", "knn", "dens", "nov", "temb") and self.ctx["embedder"] != "minilm":
            tag += f"-{self.ctx['embedder']}"
        if kind in ("emb2", "zs2"):
            tag += f"-{self.ctx['embedder2']}"
        safe = name.replace(":", "_")
        return Path(root) / f"{safe}--{tr.days[-1]}--{tag}.npz"

    def _raw(self, name, d):
        """Features that learn nothing, per row of d."""
        kind, *args = name.split(":")
        if kind in ("topics", "queries"):      # the zero-shot score's parts, before it averages them
            return self._firing(kind, d)
        k = int(args[0])
        if kind == "dens":                     # mean cosine to the k nearest other papers of the same day
            out = np.zeros(len(d.y))
            for day in d.days:
                m = d.groups == day
                S = d.X[m] @ d.X[m].T
                np.fill_diagonal(S, -1)
                out[m] = np.partition(S, -k, axis=1)[:, -k:].mean(axis=1)
            return out
        if kind == "nov":                      # mean cosine to the k nearest papers of the w days before
            w = int(args[1])
            full = self.ctx["data"]
            days = full.days
            out = np.zeros(len(d.y))
            for day in d.days:
                m = d.groups == day
                i = days.index(day)
                prev = np.isin(full.groups, days[max(0, i - w):i])
                if not prev.any():
                    continue
                S = d.X[m] @ full.X[prev].T
                out[m] = np.partition(S, -k, axis=1)[:, -k:].mean(axis=1)
            return out
        raise ValueError(kind)

    def _firing(self, kind, d):
        """Per row: each query's firing (rank.zero_shot's detector, scaled by its day's spread) -- "queries";
        or per topic the mean firing of its queries, the keywords' mean firing and a keyword-in-title flag --
        "topics". Label-free, so a stacker can weigh the prompt's parts by how GPT rewards them."""
        from ranker.prefilter.rank import KEYWORD, query_firing
        qs, qv = self.ctx["qs"], self.ctx["qv"]
        owner = np.asarray(qs.topic_of)
        pattern = qs.title_pattern()
        cols = len(qs.texts) if kind == "queries" else len(qs.topic_names) + 2
        out = np.zeros((len(d.y), cols))
        for day in d.days:
            m = np.flatnonzero(d.groups == day)
            fire = query_firing(d.X[m], qv)[1]
            fire /= fire.std(axis=0, keepdims=True) + 1e-9
            if kind == "queries":
                out[m] = fire
                continue
            out[m, :-2] = np.stack([fire[:, owner == i].mean(axis=1) for i in range(len(qs.topic_names))], 1)
            out[m, -2] = fire[:, owner == KEYWORD].mean(axis=1) if (owner == KEYWORD).any() else 0.0
            out[m, -1] = [1.0 if pattern and pattern.search(d.papers[i].title or "") else 0.0 for i in m]
        return out

    def _compute(self, name, tr):
        from ranker.prefilter import calibrate as cal
        from ranker.prefilter.features import counts_of, features, out_of_day_features, prior_day_features
        kind, *args = name.split(":")
        if kind in ("dens", "nov", "topics", "queries"):
            return self._raw(name, tr), lambda d: self._raw(name, d)
        if kind == "zs2":                     # the second embedder's zero-shot score
            z2 = self.ctx["zs2"]

            def get(d):
                return np.array([z2[p.id] for p in d.papers])
            mu, sd = get(tr).mean(), get(tr).std() or 1.0
            return (get(tr) - mu) / sd, lambda d: (get(d) - mu) / sd
        if kind == "zs":
            mu, sd = tr.zs.mean(), tr.zs.std() or 1.0
            return (tr.zs - mu) / sd, lambda d: (d.zs - mu) / sd
        if kind == "senior":                  # label-free author seniority from the listings (see seniority())
            return seniority(tr, None), lambda d: seniority(tr, d)
        if kind in ("meta", "metaprior"):     # training rows' counts from all other days, or earlier days only
            counts = counts_of(tr.papers, tr.y, tr.groups)
            feats = out_of_day_features if kind == "meta" else prior_day_features
            return feats(tr.papers, tr.y, tr.groups), lambda d: features(d.papers, counts)
        fit_one, apply_one = self._model(kind, args)
        oof = np.zeros(len(tr.y))
        for m in cal._folds(tr.groups, 5):
            oof[m] = apply_one(fit_one(tr.subset(~m)), tr.subset(m))
        final = fit_one(tr)
        return oof, lambda d: apply_one(final, d)

    def _model(self, kind, args):
        """(fit(train) -> model, apply(model, rows) -> values) of one signal."""
        import re
        from ranker.prefilter import calibrate as cal
        from ranker.prefilter.features import author_key
        if kind == "emb":                                    # emb:C[:halflife]
            C = float(args[0])
            hl = float(args[1]) if len(args) > 1 else 0.0
            return (lambda tr: cal._lr(C).fit(tr.X, tr.y, sample_weight=cal.day_weights(tr.groups, hl)),
                    lambda m, d: m.decision_function(d.X))
        if kind == "emb2":                                   # emb2:C  LR on the second embedder's vectors
            C = float(args[0])
            x2 = self.ctx["x2"]

            def X2(d):
                return np.stack([x2[p.id] for p in d.papers])
            return lambda tr: cal._lr(C).fit(X2(tr), tr.y), lambda m, d: m.decision_function(X2(d))
        if kind == "mlp":                                    # mlp:hidden  a one-hidden-layer network on the vectors
            h = int(args[0])

            def fit(tr):
                from sklearn.neural_network import MLPClassifier
                return MLPClassifier(hidden_layer_sizes=(h,), alpha=1e-3, early_stopping=True, max_iter=200,
                                     random_state=0).fit(tr.X, tr.y)

            def apply(m, d):
                p = np.clip(m.predict_proba(d.X)[:, 1], 1e-6, 1 - 1e-6)
                return np.log(p / (1 - p))
            return fit, apply
        if kind == "temb":                                   # temb:C  LR on title vectors
            C = float(args[0])
            tv = self.ctx["title_vecs"]

            def T(d):
                return np.stack([tv[p.id] for p in d.papers])
            return lambda tr: cal._lr(C).fit(T(tr), tr.y), lambda m, d: m.decision_function(T(d))
        if kind in ("words", "title"):          # words:ngrams:C[:min_df[:extras]], extras c: comment, a: authors
            n, C = int(args[0]), float(args[1])
            min_df = int(args[2]) if len(args) > 2 else 2
            extras = args[3] if len(args) > 3 else ""

            def text(p):
                t = cal.words_text(p) if kind == "words" else (p.title or "")
                if "c" in extras and p.comment:
                    t += " " + " ".join("comment" + w for w in re.findall(r"[a-z]+|\d{4}", p.comment.lower()))
                if "a" in extras:
                    t += " " + " ".join("author" + author_key(a).replace(" ", "") for a in p.authors or [])
                return t

            def fit(tr):
                v = cal._vectorizer(n, min_df)
                return v, cal._lr(C).fit(v.fit_transform([text(p) for p in tr.papers]), tr.y)
            return fit, lambda m, d: m[1].decision_function(m[0].transform([text(p) for p in d.papers]))
        if kind == "knn":                                     # knn:k  cosine to the k nearest picks - non-picks
            k = int(args[0])

            def top_mean(S, k):
                k = min(k, S.shape[1])
                return np.partition(S, -k, axis=1)[:, -k:].mean(axis=1) if k else np.zeros(len(S))

            def apply(m, d):
                P, N = m
                return top_mean(d.X @ P.T, k) - top_mean(d.X @ N.T, k)
            return (lambda tr: (tr.X[tr.y].astype(np.float32), tr.X[~tr.y].astype(np.float32))), apply
        raise ValueError(kind)


# signals cheaper to recompute than to read back
UNCACHED = ("zs", "topics", "queries")
SENIOR = ("senior_papers_max", "senior_coauthors_max", "senior_last_author_papers")


def seniority(tr, d) -> np.ndarray:
    """Label-free stand-ins for the seed's "some author has h-index >= 20" filter, from the listings alone:
    per paper, the max over its authors of log(1 + the author's papers in the history), of log(1 + the author's
    distinct co-authors there), and log(1 + the last author's papers). Counted per history day (x 50), so rows
    counted over more or fewer days read on one scale. d None: every row of tr, counted over tr's OTHER days;
    else d's rows counted over all of tr's days."""
    from collections import Counter, defaultdict
    from ranker.prefilter.features import paper_authors
    per_day: dict[str, tuple[Counter, dict]] = {}
    for p, g in zip(tr.papers, tr.groups.tolist()):
        papers, co = per_day.setdefault(g, (Counter(), defaultdict(Counter)))
        names = paper_authors(p)
        for a in names:
            papers[a] += 1
            for b in names:
                if b != a:
                    co[a][b] += 1
    tot_p, tot_c = Counter(), defaultdict(Counter)
    for papers, co in per_day.values():
        tot_p.update(papers)
        for a, c in co.items():
            tot_c[a].update(c)
    n_days = len(per_day)

    def rows(papers_, own):
        scale = 50.0 / max(1, n_days - (own is not None))
        out = np.zeros((len(papers_), len(SENIOR)))
        for i, p in enumerate(papers_):
            names = paper_authors(p)
            if not names:
                continue
            own_p, own_c = own if own is not None else (Counter(), {})
            n_p = [tot_p[a] - own_p[a] for a in names]
            n_c = [sum(1 for b, k in tot_c[a].items() if k - own_c.get(a, Counter())[b] > 0) for a in names]
            out[i] = (np.log1p(scale * max(n_p)), np.log1p(scale * max(n_c)), np.log1p(scale * n_p[-1]))
        return out
    if d is not None:
        return rows(d.papers, None)
    out = np.zeros((len(tr.y), len(SENIOR)))
    for g in per_day:
        idx = np.flatnonzero(tr.groups == g)
        out[idx] = rows([tr.papers[i] for i in idx], per_day[g])
    return out


def fit_push(Z: np.ndarray, y: np.ndarray, groups: np.ndarray, p: float = 4.0, tau: float = 1.0,
             l2: float = 1e-2, w0: np.ndarray | None = None) -> np.ndarray:
    """Stacking weights fit to keep95's own concern, the picks a day ranks lowest: per pick, the soft share of
    its day's non-picks that outrank it, r = mean sigmoid((s_neg - s_pick) / tau); the loss is the mean over a
    day's picks of r**p (p > 1 weighs a pick ranked low far more than one ranked high), summed over days, + L2.
    Returns the weights (no intercept: only the order within a day matters)."""
    from scipy.optimize import minimize
    days = [(Z[(groups == g) & y], Z[(groups == g) & ~y]) for g in np.unique(groups)
            if y[groups == g].any() and (~y[groups == g]).any()]

    def f(wv):
        loss, grad = l2 * wv @ wv, 2 * l2 * wv
        for P, N in days:
            sp, sn = P @ wv, N @ wv
            sig = 1.0 / (1.0 + np.exp(-(sn[None, :] - sp[:, None]) / tau))
            r = sig.mean(axis=1)
            loss += (r ** p).sum() / len(sp)
            dr = p * r ** (p - 1) / len(sp)
            h = sig * (1 - sig) / (tau * len(sn))
            grad += (dr[:, None] * h).sum(axis=0) @ N - (dr * h.sum(axis=1)) @ P
        return loss, grad
    return minimize(f, np.zeros(Z.shape[1]) if w0 is None else w0, jac=True, method="L-BFGS-B").x


def fit_gate(T: np.ndarray, U: np.ndarray, y: np.ndarray, w: np.ndarray, l2: float = 1.0):
    """A noisy-AND of two logistic models: P(pick) = sigmoid(T a + b) * sigmoid(U c + e), "on topic" AND
    "passes the author filter", fit by weighted maximum likelihood (L-BFGS, L2 on a and c). T and U are
    standardised here. Returns score(T, U) -> log P."""
    from scipy.optimize import minimize
    mt, st = T.mean(0), T.std(0) + 1e-9
    mu, su = U.mean(0), U.std(0) + 1e-9
    Tz, Uz = (T - mt) / st, (U - mu) / su
    kt = T.shape[1]
    lr0 = __import__("ranker.prefilter.calibrate", fromlist=["_lr"])._lr(1.0).fit(Tz, y, sample_weight=w)
    x0 = np.r_[lr0.coef_[0], lr0.intercept_[0], np.zeros(U.shape[1]), 3.0]
    yy = y.astype(float)

    def logsig(z):
        return -np.logaddexp(0, -z)

    def f(x):
        a, b, c, e = x[:kt], x[kt], x[kt + 1:-1], x[-1]
        zt, zu = Tz @ a + b, Uz @ c + e
        lp = logsig(zt) + logsig(zu)                      # log P
        l1p = np.log1p(-np.exp(np.minimum(lp, -1e-12)))   # log (1 - P)
        ll = (w * (yy * lp + (1 - yy) * l1p)).sum() / w.sum()
        # gradient through P = st * su
        p = np.exp(lp)
        g_lp = w * (yy - (1 - yy) * p / (1 - p + 1e-12)) / w.sum()   # d ll / d log P
        st_, su_ = np.exp(logsig(zt)), np.exp(logsig(zu))
        g_zt, g_zu = g_lp * (1 - st_), g_lp * (1 - su_)
        grad = np.r_[Tz.T @ g_zt, g_zt.sum(), Uz.T @ g_zu, g_zu.sum()]
        pen = 0.5 * l2 * ((a ** 2).sum() + (c ** 2).sum()) / len(y)
        gpen = np.r_[l2 * a / len(y), 0.0, l2 * c / len(y), 0.0]
        return -(ll - pen), -(grad - gpen)
    x = minimize(f, x0, jac=True, method="L-BFGS-B").x
    a, b, c, e = x[:kt], x[kt], x[kt + 1:-1], x[-1]
    return lambda T2, U2: logsig(((T2 - mt) / st) @ a + b) + logsig(((U2 - mu) / su) @ c + e)


def learner_approaches(ctx) -> dict:
    """name -> function(train HistoryData) -> (function(test HistoryData) -> scores)."""
    from ranker.prefilter import calibrate as cal
    comps = Components(ctx)

    def lib(**kw):
        opt = cal.Options(**kw)

        def fit(tr):
            c = cal.fit_data(tr, options=opt)
            score = cal._scorer(c)
            score.calibration = c                 # the recall check reads its thresholds
            return score
        return fit

    def stacked(names, stacker="lr", hl=0.0, dayz=False, pos_weight=1.0, or_gamma=0.0, drop=()):
        from ranker.prefilter.features import FEATURES

        def fit(tr):
            got = [comps.get(n, tr) for n in names]
            component_seconds = sum(g[2] for g in got)

            def cols(d):
                parts = [g[1](d) if d is not None else g[0] for g in got]
                M = np.column_stack([p if p.ndim == 2 else p[:, None] for p in parts])
                if dayz:                      # each input z-scored within its day (ranking is within a day)
                    grp = (d if d is not None else tr).groups
                    for day in set(grp.tolist()):
                        m = grp == day
                        M[m] = (M[m] - M[m].mean(axis=0)) / (M[m].std(axis=0) + 1e-9)
                return M
            t_stack = time.perf_counter()
            qs = ctx["qs"]
            wide = {"senior": list(SENIOR), "queries": [f"query{i}" for i in range(len(qs.texts))],
                    "topics": [f"topic{i}" for i in range(len(qs.topic_names))] + ["keywords", "title_hit"]}
            labels = [x for n in names for x in (list(FEATURES) if n.startswith("meta") else wide.get(n, [n]))]
            keep_cols = np.array([lab not in drop for lab in labels])
            labels = [lab for lab in labels if lab not in drop]
            base_cols = cols

            def cols(d):                          # noqa: F811  (the same inputs, some dropped)
                return base_cols(d)[:, keep_cols]
            M = cols(None)
            w = cal.day_weights(tr.groups, hl) * np.where(tr.y, pos_weight, 1.0)
            text = [i for i, lab in enumerate(labels) if lab.startswith(("emb", "words", "title", "temb", "mlp"))]
            author = [i for i, lab in enumerate(labels) if lab.startswith(("authors", "senior"))]
            if stacker == "gate":             # noisy-AND: on topic (text, zero-shot, categories) AND senior authors
                topic = [i for i in range(len(labels)) if i not in author]
                g = fit_gate(M[:, topic], M[:, author], tr.y, w)
                fit.totals.append(component_seconds + time.perf_counter() - t_stack)
                return lambda d: g(cols(d)[:, topic], cols(d)[:, author])
            if stacker == "interact":         # additive LR stack + (author input x text/zero-shot input) terms
                m0, s0 = M.mean(0), M.std(0) + 1e-9
                zs_col = [labels.index("zs")] if "zs" in labels else []
                pairs = [(i, j) for i in author for j in text + zs_col]

                def xcols(d, m0=m0, s0=s0, pairs=pairs):
                    Z = (cols(d) - m0) / s0
                    return np.column_stack([Z] + [Z[:, i] * Z[:, j] for i, j in pairs])
                st = cal._lr(1.0).fit(xcols(None), tr.y, sample_weight=w)
                fit.totals.append(component_seconds + time.perf_counter() - t_stack)
                return lambda d: st.decision_function(xcols(d))
            if stacker == "push":             # weights that lift each day's lowest-ranked picks (fit_push)
                mean, scale = M.mean(0), M.std(0) + 1e-9
                lr0 = cal._lr(1.0).fit((M - mean) / scale, tr.y, sample_weight=w)
                coef = fit_push((M - mean) / scale, tr.y, tr.groups, w0=lr0.coef_[0])
                fit.totals.append(component_seconds + time.perf_counter() - t_stack)
                return lambda d: ((cols(d) - mean) / scale) @ coef
            if stacker == "lr":
                mean, scale, coef, b = cal.fit_stack(M, tr.y, w, [("embedding" if lab.startswith(("emb", "words",
                                                     "title", "knn", "temb")) else lab) for lab in labels], True)
                fit.totals.append(component_seconds + time.perf_counter() - t_stack)
                if or_gamma:                  # OR-like: also reward the single strongest text signal
                    return lambda d: (((cols(d) - mean) / scale) @ coef + b
                                      + or_gamma * ((cols(d) - mean) / scale)[:, text].max(axis=1))
                return lambda d: ((cols(d) - mean) / scale) @ coef + b
            from sklearn.ensemble import HistGradientBoostingClassifier
            m = HistGradientBoostingClassifier(max_iter=200, learning_rate=0.05, max_leaf_nodes=15,
                                               min_samples_leaf=40, l2_regularization=1.0, random_state=0)
            m.fit(M, tr.y, sample_weight=w)
            fit.totals.append(component_seconds + time.perf_counter() - t_stack)
            return lambda d: m.predict_proba(cols(d))[:, 1]
        fit.totals = []
        return fit

    from ranker.prefilter.features import FEATURES
    v1 = ["emb:1", "words:1:10", "zs"]
    out = {
        "shipped: ranker calibrate (library fit)": lib(),
        "v1 = emb LR C1 + words LR C10 + zs, LR stack": stacked(v1),
        "emb LR C1 alone": stacked(["emb:1"]),
        "words LR alone": stacked(["words:1:10"]),
        "v1 + meta (authors, categories)": stacked(v1 + ["meta"]),
        "v1 + meta, training rows' author counts from earlier days only": stacked(v1 + ["metaprior"]),
        "v1 + meta, HGB stack": stacked(v1 + ["meta"], "hgb"),
        "v1 + meta + kNN(10)": stacked(v1 + ["meta", "knn:10"]),
        "v1 + meta + title words": stacked(v1 + ["meta", "title:1:10"]),
        "v1 + meta, emb C=0.3": stacked(["emb:0.3", "words:1:10", "zs", "meta"]),
        "v1 + meta, emb C=3": stacked(["emb:3", "words:1:10", "zs", "meta"]),
        "v1 + meta, words C=3": stacked(["emb:1", "words:1:3", "zs", "meta"]),
        "v1 + meta, words + arXiv comment": stacked(["emb:1", "words:1:10:2:c", "zs", "meta"]),
        "v1 + meta, words + author tokens": stacked(["emb:1", "words:1:10:2:a", "zs", "meta"]),
        "v1 + meta, word pairs": stacked(["emb:1", "words:2:10", "zs", "meta"]),
        "v1 + meta, recency halflife 15 days": stacked(["emb:1:15", "words:1:10", "zs", "meta"], hl=15),
    }
    best = v1 + ["meta", "title:1:10"]
    out.update({
        "B = v1 + meta + title words": stacked(best),
        "B, inputs z-scored within each day": stacked(best, dayz=True),
        "B + title-embedding LR": stacked(best + ["temb:1"]),
        "B + same-day density (10 nearest)": stacked(best + ["dens:10"]),
        "B + novelty vs the 10 days before (10 nearest)": stacked(best + ["nov:10:10"]),
        "B, emb C=3": stacked(["emb:3", "words:1:10", "zs", "meta", "title:1:10"]),
        "B + MLP on the embedding": stacked(best + ["mlp:256"]),
        "B, picks weigh 3x in the stack": stacked(best, pos_weight=3.0),
        "B, picks weigh 10x in the stack": stacked(best, pos_weight=10.0),
        "B + 0.5 x the strongest text signal (OR-like)": stacked(best, or_gamma=0.5),
        "B + 1.0 x the strongest text signal (OR-like)": stacked(best, or_gamma=1.0),
        "B without author features (categories only)": stacked(best, drop=tuple(
            f for f in FEATURES if f.startswith("authors") or f == "n_authors")),
        "B without category features": stacked(best, drop=("primary_rate", "category_rate_max")),
        "B without zero-shot": stacked(["emb:1", "words:1:10", "meta", "title:1:10"]),
        "B, MLP instead of the embedding LR": stacked(["mlp:256", "words:1:10", "zs", "meta", "title:1:10"]),
        "B + author seniority (papers, co-authors, last author)": stacked(best + ["senior"]),
        "B + seniority, author x text interaction terms": stacked(best + ["senior"], "interact"),
        "B, author x text interaction terms": stacked(best, "interact"),
        "B + seniority, noisy-AND gate (topic model x author model)": stacked(best + ["senior"], "gate"),
        "B, noisy-AND gate (topic model x author model)": stacked(best, "gate"),
        "B, tail-focused pairwise stack (push, p=4)": stacked(best, "push"),
        "B + per-topic firing, keywords, keyword in title": stacked(best + ["topics"]),
        "B + every query's firing": stacked(best + ["queries"]),
        "B2 = B + second embedder's LR": stacked(best + ["emb2:1"]),
        "B2 + second embedder's zero-shot": stacked(best + ["emb2:1", "zs2"]),
        "B with the second embedder's LR instead": stacked(["emb2:1", "words:1:10", "zs", "meta", "title:1:10"]),
        "B with the second embedder's LR and zero-shot instead": stacked(
            ["emb2:1", "words:1:10", "zs2", "meta", "title:1:10"]),
    })
    return out


# --------------------------------------------------------------------------- main
@contextlib.contextmanager
def as_embedder2():
    """An error about the embedder in there is the second embedder's: named --embedder2, not --embedder."""
    from ranker.errors import RankerError
    try:
        yield
    except RankerError as e:
        if e.key == "prefilter.embedder":
            e.key = "embedder2"
        raise


def main() -> int:
    from ranker.cli.common import check_embedder
    from ranker.io import counted
    from ranker.prefilter.calibrate import history_data
    from ranker.prefilter.embed import Embedder
    from ranker.prefilter.history import load_history
    from ranker.prefilter.metrics import day_metrics, mean_of
    from ranker.prefilter.rank import build_queries
    from ranker.prefilter.walkforward import walk_forward
    from ranker.prompts import load_prompts
    from ranker.settings import resolve
    from ranker.store import Store

    ap = Parser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DATA,
                    help="folder holding days/<date>/ (default: %(default)s)")
    ap.add_argument("--db", type=Path, default=SHARED_CACHE if SHARED_CACHE.exists() else None)
    ap.add_argument("--embedder", default="minilm")
    ap.add_argument("--embedder2", default=None, help="a second embedder whose vectors the 'second embedder' "
                    "approaches read (e.g. mpnet; embedded through the store)")
    ap.add_argument("--prompts", type=Path, default=None)
    ap.add_argument("--test-days", type=int, default=15)
    ap.add_argument("--approaches", default="", help="comma-separated substrings of approach names (default all)")
    ap.add_argument("--cache", type=Path, default=None, help="keep each learned signal's walk-forward values "
                    "here, so later runs stack them without refitting")
    ap.add_argument("--every", type=int, default=1, help="use every Nth day only (a quick look at another "
                    "embedder's zero-shot figures; learners need consecutive days)")
    ap.add_argument("--window", type=int, default=0, help="fit each learner on only the N days just before "
                    "its test day (0: every earlier day); runs with N = 10, 20, 30, 40 show what more history buys")
    ap.add_argument("--per-day", action="store_true", help="also print each test day's figures per learner")
    ap.add_argument("--list", action="store_true", help="list the approaches and exit")
    ap.add_argument("--recall-study", action="store_true", help="only compare keep-by-recall rules for the "
                    "shipped learner: thresholds from its out-of-day (5-fold) scores vs from walk-forward scores")
    args = ap.parse_args()

    db_path = resolve(flags={"db": args.db}).db_path
    t0 = time.perf_counter()
    prompts = load_prompts(args.prompts)
    if args.list:       # the names only: it used to load every day first, embedding the missing ones into --db
        qs = build_queries(prompts)
        ctx = {"qs": qs, "qv": np.zeros((len(qs.texts), 1)), "prompts": prompts}
        print("\n".join([*zero_shot_approaches(ctx), *learner_approaches(ctx)]))
        return 0
    # an embedder neither prepared nor served by the store's vectors, said before any day is read (as the CLI's
    # calibrate and eval do): the second embedder's was said only after the first embedder's work (minutes)
    check_embedder(resolve(flags={"db": args.db, "embedder": args.embedder}), loadable=True)
    if args.embedder2:
        with as_embedder2():
            check_embedder(resolve(flags={"db": args.db, "embedder": args.embedder2}), loadable=True)
    days = load_history(args.data / "days", warn=lambda m: print(m, file=sys.stderr))[::args.every]
    emb = Embedder(args.embedder)
    qs = build_queries(prompts)
    with Store(db_path) as store:
        t = time.perf_counter()
        data = history_data(days, prompts, embedder=emb, store=store)
        if emb.texts_encoded:
            print(f"embedded {emb.texts_encoded} texts in {time.perf_counter() - t:.1f}s "
                  f"({emb.load_seconds:.1f}s of it loading the model)")
        ctx = {"qs": qs, "qv": emb.embed_queries(qs.texts, store), "prompts": prompts,
               "desc_q": emb.embed_queries([t.description for t in prompts.topics], store), "store": store,
               "irrelevant_q": emb.embed_queries([k for k in prompts.keywords.irrelevant if k.strip()], store)}
    all_days = sorted(set(data.groups.tolist()))
    test_days = all_days[-args.test_days:]
    print(f"{len(all_days)} days {all_days[0]}..{all_days[-1]}, {len(data.y)} papers, {int(data.y.sum())} picks; "
          f"embedder {emb.key}; {counted(emb.texts_encoded, 'text')} embedded; "
          f"loaded in {time.perf_counter() - t0:.1f}s")
    print(f"walk-forward test days: {test_days[0]}..{test_days[-1]} ({len(test_days)}), each ranked by a fit on "
          + (f"the {args.window} days before it" if args.window else "the days before it"))

    if args.recall_study:
        for line in recall_study(data, test_days, args.cache):
            print(line, flush=True)
        print(f"total {time.perf_counter() - t0:.0f}s")
        return 0
    zsa, lra = zero_shot_approaches(ctx), learner_approaches(ctx)
    want = [w.strip() for w in args.approaches.split(",") if w.strip()]
    pick = (lambda n: not want or any(w in n for w in want))
    second = [n for n in lra if "second embedder" in n and pick(n)]
    if second and not args.embedder2:
        # they read the second embedder's vectors: without them the run (by default every approach) ended in a
        # KeyError at the first of them, after hours of the others and before the recall checks
        print(f"left out, no --embedder2 given: {len(second)} approaches that read a second embedder's vectors")
        lra = {n: fn for n, fn in lra.items() if n not in second}
    ctx["data"] = data
    ctx["cache"] = args.cache
    ctx["embedder"], ctx["embedder2"] = emb.key, args.embedder2
    if any(pick(n) and "title-embedding" in n for n in lra):
        t = time.perf_counter()
        with Store(db_path) as store:
            tv = emb.embed_queries([p.title or "" for p in data.papers], store)
        ctx["title_vecs"] = {p.id: tv[i] for i, p in enumerate(data.papers)}
        print(f"title vectors: {time.perf_counter() - t:.1f}s")

    if args.embedder2:
        t = time.perf_counter()
        with as_embedder2(), Store(db_path) as store:
            d2 = history_data(days, prompts, embedder=Embedder(args.embedder2), store=store)
        ctx["x2"] = {p.id: d2.X[i] for i, p in enumerate(d2.papers)}
        ctx["zs2"] = {p.id: d2.zs[i] for i, p in enumerate(d2.papers)}
        print(f"second embedder {args.embedder2}: {time.perf_counter() - t:.1f}s")

    rows, recall_checks = [], []
    per_test = {}                       # approach -> day -> its figures, on the last days: for the intervals
    for name, fn in zsa.items():
        if not pick(name):
            continue
        per, secs = {}, []
        for d in all_days:
            sub = data.subset(data.groups == d)
            t = time.perf_counter()
            s = fn(sub)
            secs.append(time.perf_counter() - t)
            per[d] = day_metrics(s, sub.y)
        rows.append((name, mean_of([per[d] for d in test_days]), mean_of(list(per.values())), 0.0,
                     float(np.mean(secs))))
        per_test[name] = {d: per[d] for d in test_days}
        print_row(*rows[-1], flush=True)
    for name, fn in lra.items():
        if not pick(name):
            continue
        fits = {}

        def fit_and_keep(tr, fn=fn, fits=fits):
            if args.window:
                tr = tr.subset(np.isin(tr.groups, tr.days[-args.window:]))
            score = fn(tr)
            fits[tr.days[-1]] = score
            return score
        rep = walk_forward(data, lambda tr, _day: fit_and_keep(tr), test_days)
        # a stack of shared signals: its fit time counts every signal it stacks, whichever approach computed it
        fit_s = float(np.mean(fn.totals)) if getattr(fn, "totals", None) else float(np.mean(rep.fit_seconds))
        rows.append((name, rep.mean(), None, fit_s, float(np.mean(rep.rank_seconds))))
        per_test[name] = dict(rep.learned)
        print_row(*rows[-1], flush=True)
        if args.per_day:
            for d in rep.days:
                m = rep.learned[d]
                print(f"    {d} papers {len(rep.labels[d]):4d} picks {int(rep.labels[d].sum()):3d}  AUC {m['auc']:.3f}"
                      f"  R@25 {m['recall@25']:.3f}  R@40 {m['recall@40']:.3f}  keep95 {m['keep95']:.3f}"
                      f"  (zero-shot keep95 {rep.zero_shot[d]['keep95']:.3f})")
        cals = [getattr(fits[max(x for x in all_days if x < d)], "calibration", None) for d in rep.days]
        if all(c is not None for c in cals):
            recall_checks.append((name, recall_check(rep, cals, all_days)))

    print()
    print(f"{'approach':<58}| last {len(test_days)} days, walk-forward: AUC  R@25  R@40 keep95 "
          f"| all {len(all_days)} days: AUC  R@25  R@40 keep95 | fit s | rank s/day")
    for r in rows:
        print_row(*r)
    print()
    # how far each mean can be trusted: its 95% interval from a bootstrap over the days, and its paired difference
    # from the shipped zero-shot score on the same days (ranker/evaluate/intervals.py, as `ranker eval` gives them)
    base = {d: day_metrics(data.zs[data.groups == d], data.y[data.groups == d]) for d in test_days}
    print(f"last {len(test_days)} days: each mean with its 95% interval (bootstrap over days; none under 5 days), "
          "and the approach minus the shipped zero-shot score on the same days (paired)")
    for name, per in per_test.items():
        ds = [d for d in test_days if d in per]
        print(f"{name[:57]:<58}| {fmt_ci([per[d] for d in ds])}")
        print(f"{'':<58}| minus zero-shot: {fmt_diff([per[d] for d in ds], [base[d] for d in ds])}")
    print()
    print("zero-shot prior for keep-by-recall without a calibration (shipped zero-shot score, all days): the "
          "top fraction at which the mean recall over days reached R, the shipped table, and its recall")
    print(f"{'R':>5} {'fraction needed':>16} {'shipped table':>14} {'recall, all days':>17} "
          f"{'recall, last days':>18} {'kept, last days':>16}")
    from ranker.prefilter.metrics import recall_at
    from ranker.prefilter.recall import ZERO_SHOT_FRACTIONS, zero_shot_fraction
    per_day = [(data.zs[data.groups == d], data.y[data.groups == d]) for d in all_days]
    grid = np.round(np.arange(0.01, 1.001, 0.01), 2)
    mean_rec = np.array([np.mean([recall_at(z, y, f) for z, y in per_day]) for f in grid])
    for R in sorted(r for r in ZERO_SHOT_FRACTIONS if r > 0):       # 0 -> 0 is no measurement
        need = grid[np.argmax(mean_rec >= R - 1e-9)]
        f = zero_shot_fraction(R)
        ra = np.mean([recall_at(z, y, f) for z, y in per_day])
        rl = np.mean([recall_at(z, y, f) for z, y in per_day[-len(test_days):]])
        print(f"{R:5.2f} {need:16.2f} {f:14.2f} {ra:17.3f} {rl:18.3f} {f:16.2f}")
    for f in (0.4, 0.5, 0.6):
        print(f"fixed fraction {f}: mean recall {np.mean([recall_at(z, y, f) for z, y in per_day]):.3f} on all "
              f"days, {np.mean([recall_at(z, y, f) for z, y in per_day[-len(test_days):]]):.3f} on the last "
              f"{len(test_days)}")
    for name, lines in recall_checks:
        print()
        print(f"keep by recall, {name}: each test day kept by its own walk-forward fit's rule (mean over days)")
        for line in lines:
            print(line)
    print(f"total {time.perf_counter() - t0:.0f}s")
    return 0


def recall_check(rep, cals, all_days) -> list[str]:
    """Achieved recall and kept fraction of keep_for_recall on each walk-forward day (thresholds from the fit
    that ranked it), and of the alternative rule that keeps the picks' within-day rank fraction."""
    from ranker.prefilter.recall import decide_keep
    out = [f"{'R':>5} {'rule':<34} {'achieved recall':>16} {'kept fraction':>14} {'min recall':>11}"]
    for R in (0.80, 0.90, 0.95):
        for rule in ("score threshold (shipped)", "within-day rank fraction"):
            rec, frac = [], []
            for d, c in zip(rep.days, cals):
                s, y = rep.scores[d], rep.labels[d]
                if rule.startswith("score"):
                    k = decide_keep(s, recall=R, calibration=c, min_keep=0).n_keep
                else:
                    k = int(np.ceil(c.recall_fractions[f"{R:.2f}"] * len(s) - 1e-9))
                kept = np.argsort(-s, kind="stable")[:k]
                rec.append(y[kept].sum() / y.sum())
                frac.append(k / len(s))
            out.append(f"{R:5.2f} {rule:<34} {np.mean(rec):16.3f} {np.mean(frac):14.3f} {np.min(rec):11.3f}")
    return out


def walk_forward_scores(data, days, cache) -> dict:
    """day -> (its scores from the shipped fit on the days before it, its labels, that fit's thresholds),
    kept in `cache` (a folder) when given."""
    import json
    from ranker.prefilter import calibrate as cal
    from wf_common import shipped_path
    out = {}
    for d in days:
        tr, te = data.subset(data.groups < d), data.subset(data.groups == d)
        path = shipped_path(cache, d, tr)
        if path is not None and path.exists():
            z = np.load(path)
            out[d] = (z["scores"], z["labels"].astype(bool), json.loads(str(z["thresholds"])))
            continue
        c = cal.fit_data(tr)
        out[d] = (c.score(te.X, te.zs, te.papers), te.y, c.recall_thresholds)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".part.npz")
            np.savez(tmp, scores=out[d][0], labels=te.y, thresholds=json.dumps(c.recall_thresholds))
            tmp.replace(path)
    return out


def recall_study(data, test_days, cache) -> list[str]:
    """Keep-by-recall rules for the shipped learner on the test days, each day ranked by a fit on the days
    before it, its rule made only from what that fit (or fits before it) saw:
      out-of-day threshold   the score threshold from the fit's own 5-fold out-of-day scores (mean over days)
      walk-forward threshold the threshold from the walk-forward scores of the last third of the days before
                             the test day (each scored by a fit on the days before IT), as `ranker calibrate`
                             computes them; mean over days, or pooled over picks
      walk-forward fraction  the top fraction of a day that held R of those days' picks on average."""
    from ranker.prefilter import calibrate as cal
    days = sorted(set(data.groups.tolist()))
    first = min(days.index(d) - len(cal.eval_days(days[:days.index(d)])) for d in test_days)
    wf = walk_forward_scores(data, days[max(1, first):], cache)
    out = [f"keep by recall, shipped learner, {len(test_days)} test days {test_days[0]}..{test_days[-1]}",
           f"{'R':>5} {'rule':<36} {'achieved recall':>16} {'min':>6} {'kept fraction':>14} {'max kept':>9}"]
    for R in (0.80, 0.90, 0.95):
        for rule in ("out-of-day threshold", "walk-forward threshold", "walk-forward threshold, pooled",
                     "walk-forward fraction"):
            rec, frac = [], []
            for d in test_days:
                s, y, own = wf[d]
                before = cal.eval_days(days[:days.index(d)])
                S = np.concatenate([wf[x][0] for x in before])
                Y = np.concatenate([wf[x][1] for x in before])
                G = np.concatenate([[x] * len(wf[x][0]) for x in before])
                if rule == "out-of-day threshold":
                    k = int((s >= own[f"{R:.2f}"]).sum())
                elif rule.startswith("walk-forward threshold"):
                    t = cal.recall_thresholds(S, Y, None if rule.endswith("pooled") else G)[f"{R:.2f}"]
                    k = int((s >= t).sum())
                else:
                    f = cal.recall_fractions(S, Y, G)[f"{R:.2f}"]
                    k = int(np.ceil(f * len(s) - 1e-9))
                kept = np.argsort(-s, kind="stable")[:k]
                rec.append(y[kept].sum() / y.sum())
                frac.append(k / len(s))
            out.append(f"{R:5.2f} {rule:<36} {np.mean(rec):16.3f} {np.min(rec):6.3f} {np.mean(frac):14.3f} "
                       f"{np.max(frac):9.3f}")
    return out


def _fmt(m):
    if m is None:
        return f"{'':>28}"
    return f"{m['auc']:.3f} {m['recall@25']:.3f} {m['recall@40']:.3f} {m['keep95']:.3f}"


def print_row(name, last, every, fit_s, rank_s, flush=False):
    print(f"{name[:57]:<58}| {_fmt(last):>40} | {_fmt(every):>35} | {fit_s:5.1f} | {rank_s:.3f}", flush=flush)


if __name__ == "__main__":
    np.seterr(all="ignore")
    from ranker.cli.app import script_main
    # a RankerError: one line, status 1
    raise SystemExit(script_main(main, flags={"prefilter.embedder": "--embedder", "embedder2": "--embedder2",
                                              "db": "--db"}))
