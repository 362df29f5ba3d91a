"""Calibration: learn from a user's history of GPT digests which papers GPT picks.

Three signals, each cheap and each seeing the paper differently, are combined:
  1. an L2-regularised logistic regression on the paper's embedding ("papers like the ones GPT picked"),
  2. an L2-regularised logistic regression on the paper's TF-IDF words (the exact vocabulary GPT rewards:
     "provably", "sparse autoencoder", "KV cache" ...; it complements the embedding, which blurs terms),
  3. the zero-shot score from the prompt's topics (rank.zero_shot).
A last logistic regression ("stacking") weighs the three signals using the regressions' out-of-day
predictions (each day predicted by a fit on other days), so each signal counts only as much as it helps on
days it was not fit on.
The result is written to one JSON file, with the embedder's name and dimension.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import InputError
from ..records import Paper
from .embed import paper_text
from .metrics import day_metrics

FORMAT = "ranker-calibration"
VERSION = 1
# Inverse L2 strengths: sklearn's default for the unit-norm embedding; ten times weaker for the sparse TF-IDF
# rows, whose informative terms each carry a small weight. Not tuned to any history (the five shared days
# give the same picture for 1, 10 or 100).
C_EMB = 1.0
C_WORDS = 10.0
MAX_FOLDS = 5
TFIDF_MIN_DF = 2


# --------------------------------------------------------------------------- the words model
def _vectorizer(vocabulary=None):
    from sklearn.feature_extraction.text import TfidfVectorizer
    return TfidfVectorizer(sublinear_tf=True, stop_words="english", min_df=1 if vocabulary else TFIDF_MIN_DF,
                           vocabulary=vocabulary, dtype=np.float64)


@dataclass
class Calibration:
    embedder: str
    dim: int
    emb_coef: list[float]
    emb_intercept: float
    vocab: list[str] = field(default_factory=list)
    idf: list[float] = field(default_factory=list)
    words_coef: list[float] = field(default_factory=list)
    words_intercept: float = 0.0
    # final logit = stack[0]*embedding logit + stack[1]*words logit + stack[2]*z(zero-shot) + stack[3]
    stack: list[float] = field(default_factory=lambda: [1.0, 0.0, 0.0, 0.0])
    zs_mean: float = 0.0
    zs_std: float = 1.0
    C: dict = field(default_factory=dict)
    trained_on: dict = field(default_factory=dict)
    loo: dict = field(default_factory=dict)      # leave-one-day-out metrics on the history, when computed

    # ------------------------------------------------------------------ use
    def emb_logit(self, vectors: np.ndarray) -> np.ndarray:
        return np.asarray(vectors, dtype=np.float64) @ np.asarray(self.emb_coef) + self.emb_intercept

    def words_logit(self, papers: Sequence[Paper]) -> np.ndarray:
        if not self.vocab:
            return np.zeros(len(papers))
        v = _vectorizer(self.vocab)
        v.idf_ = np.asarray(self.idf)
        X = v.transform([words_text(p) for p in papers])
        return X @ np.asarray(self.words_coef) + self.words_intercept

    def score(self, vectors: np.ndarray, zero_shot: np.ndarray, papers: Sequence[Paper]) -> np.ndarray:
        """P(GPT picks the paper), from its embedding, its words and its zero-shot score."""
        if len(vectors) == 0:
            return np.zeros(0)
        if vectors.shape[1] != self.dim:
            raise InputError(f"the calibration was made with a {self.dim}-d embedder ('{self.embedder}') but "
                             f"the papers are embedded in {vectors.shape[1]} dimensions", where="--calibration")
        a, b, c, d = self.stack
        z = (np.asarray(zero_shot, dtype=np.float64) - self.zs_mean) / (self.zs_std or 1.0)
        logit = a * self.emb_logit(vectors) + b * self.words_logit(papers) + c * z + d
        return 1.0 / (1.0 + np.exp(-logit))

    def check_embedder(self, key: str, where: str = "--calibration") -> None:
        if key != self.embedder:
            name, _, tokens = self.embedder.partition("@")
            flags = f"--embedder {name}" + (f" --max-tokens {tokens}" if tokens else "")
            raise InputError(f"this calibration was made with the embedder '{self.embedder}' ({self.dim}-d), "
                             f"not '{key}'; use {flags} or calibrate again", where=where)

    # ------------------------------------------------------------------ file
    def save(self, path: str | Path) -> None:
        path = Path(path)
        if path.is_dir():
            raise InputError("is a directory; give a file name", where=str(path))
        path.parent.mkdir(parents=True, exist_ok=True)
        d = {"format": FORMAT, "version": VERSION, **asdict(self)}
        tmp = path.with_name(path.name + ".part")
        tmp.write_text(json.dumps(d), encoding="utf-8")
        tmp.replace(path)

    @classmethod
    def load(cls, path: str | Path) -> "Calibration":
        path = Path(path)
        bad = "not a calibration file (expected the JSON that `ranker calibrate` writes)"
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InputError("calibration file not found", where=str(path)) from None
        except IsADirectoryError:
            raise InputError("is a directory, not a calibration file", where=str(path)) from None
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise InputError(bad, where=str(path)) from None
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise InputError(bad, where=str(path))
        if d.get("version") != VERSION:
            raise InputError(f"calibration file version {d.get('version')} is not supported (this ranker reads "
                             f"version {VERSION}); calibrate again", where=str(path))
        try:
            cal = cls(**{k: v for k, v in d.items() if k not in ("format", "version")})
        except TypeError as e:
            raise InputError(f"malformed calibration file ({e})", where=str(path)) from None
        if (len(cal.emb_coef) != cal.dim or len(cal.stack) != 4 or len(cal.vocab) != len(cal.idf)
                or len(cal.vocab) != len(cal.words_coef)):
            raise InputError("malformed calibration file (its coefficients do not match its sizes)",
                             where=str(path))
        return cal


# --------------------------------------------------------------------------- fitting
def _lr(C: float):
    from sklearn.linear_model import LogisticRegression
    return LogisticRegression(C=C, max_iter=5000)


def words_text(p: Paper) -> str:
    """What the words model reads: title, abstract and the arXiv categories as tokens (catcsLG, catstatML)."""
    cats = " ".join("cat" + "".join(ch for ch in c if ch.isalnum()) for c in (p.categories or []))
    return f"{paper_text(p)} {cats}".strip()


def _folds(groups: np.ndarray) -> list[np.ndarray]:
    """Test masks of whole days, at most MAX_FOLDS folds (days dealt round-robin in date order)."""
    days = sorted(set(groups.tolist()))
    k = min(MAX_FOLDS, len(days))
    fold_of = {d: i % k for i, d in enumerate(days)}
    f = np.array([fold_of[g] for g in groups.tolist()])
    return [f == i for i in range(k)]


def _fit_emb(X, y, C):
    return _lr(C).fit(X, y)


def _fit_words(texts, y, C):
    v = _vectorizer()
    m = _lr(C).fit(v.fit_transform(texts), y)
    return v, m


def _oof(X, texts, y, groups, c_emb, c_words) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-day logits of both regressions (each fold's days predicted by a fit on the others)."""
    oe, ow = np.zeros(len(y)), np.zeros(len(y))
    for te in _folds(groups):
        tr = ~te
        if y[tr].all() or not y[tr].any():
            continue
        oe[te] = _fit_emb(X[tr], y[tr], c_emb).decision_function(X[te])
        v, m = _fit_words(texts[tr], y[tr], c_words)
        ow[te] = m.decision_function(v.transform(texts[te]))
    return oe, ow


def fit(X: np.ndarray, y: np.ndarray, zs: np.ndarray, groups: Sequence[str], papers: Sequence[Paper], *,
        embedder: str, c_emb: float = C_EMB, c_words: float = C_WORDS) -> Calibration:
    """Fit on all rows. groups: each row's day (the stacking weights come from out-of-day predictions)."""
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=bool)
    zs = np.asarray(zs, dtype=np.float64)
    groups = np.asarray([str(g) for g in groups])
    texts = np.asarray([words_text(p) for p in papers], dtype=object)
    if y.all() or not y.any():
        raise InputError("the history needs both papers GPT picked and papers it did not")
    mu, sd = float(zs.mean()), float(zs.std() or 1.0)
    if len(set(groups.tolist())) >= 2:
        oe, ow = _oof(X, texts, y, groups, c_emb, c_words)
        st = _lr(1.0).fit(np.column_stack([oe, ow, (zs - mu) / sd]), y)
        stack = [max(0.0, float(v)) for v in st.coef_[0]]   # a signal that hurts out of sample is dropped
        stack.append(float(st.intercept_[0]))
    else:                                                    # one day: no out-of-day evidence to weigh by
        stack = [1.0, 1.0, 0.0, 0.0]
    m_emb = _fit_emb(X, y, c_emb)
    vec, m_words = _fit_words(texts, y, c_words)
    return Calibration(
        embedder=embedder, dim=int(X.shape[1]),
        emb_coef=[float(v) for v in m_emb.coef_[0]], emb_intercept=float(m_emb.intercept_[0]),
        vocab=[str(t) for t in vec.get_feature_names_out()], idf=[float(v) for v in vec.idf_],
        words_coef=[float(v) for v in m_words.coef_[0]], words_intercept=float(m_words.intercept_[0]),
        stack=stack, zs_mean=mu, zs_std=sd, C={"embedding": c_emb, "words": c_words},
        trained_on={"days": sorted(set(groups.tolist())), "papers": int(len(y)), "picks": int(y.sum()),
                    "created": time.strftime("%Y-%m-%d %H:%M:%S")})


def leave_one_day_out(X: np.ndarray, y: np.ndarray, zs: np.ndarray, groups: Sequence[str],
                      papers: Sequence[Paper], *, embedder: str,
                      progress=None) -> dict[str, dict[str, dict[str, float]]]:
    """Per held-out day: metrics of the zero-shot score and of a calibration fit on the other days only."""
    groups = np.asarray([str(g) for g in groups])
    y = np.asarray(y, dtype=bool)
    days = sorted(set(groups.tolist()))
    out: dict[str, dict[str, dict[str, float]]] = {}
    if len(days) < 2:
        return out
    papers = list(papers)
    for i, d in enumerate(days):
        te = groups == d
        tr = ~te
        if not y[te].any() or y[tr].all() or not y[tr].any():
            continue
        idx_tr, idx_te = np.where(tr)[0], np.where(te)[0]
        cal = fit(X[tr], y[tr], zs[tr], groups[tr], [papers[j] for j in idx_tr], embedder=embedder)
        out[d] = {"zero_shot": day_metrics(zs[te], y[te]),
                  "calibrated": day_metrics(cal.score(X[te], zs[te], [papers[j] for j in idx_te]), y[te])}
        if progress is not None:
            progress(i + 1, len(days))
    return out


def mean_metrics(loo: dict[str, dict[str, dict[str, float]]], which: str) -> dict[str, float]:
    rows = [v[which] for v in loo.values() if which in v]
    if not rows:
        return {}
    out = {}
    for k in rows[0]:
        vals = [r[k] for r in rows if not math.isnan(r[k])]
        out[k] = float(np.mean(vals)) if vals else float("nan")
    return out


# --------------------------------------------------------------------------- from a history of digests
@dataclass
class HistoryData:
    X: np.ndarray
    y: np.ndarray
    zs: np.ndarray
    groups: np.ndarray
    papers: list[Paper]
    embedder: str

    def subset(self, mask: np.ndarray) -> "HistoryData":
        idx = np.flatnonzero(mask)
        return HistoryData(self.X[idx], self.y[idx], self.zs[idx], self.groups[idx],
                           [self.papers[i] for i in idx], self.embedder)

    @property
    def days(self) -> list[str]:
        return sorted(set(self.groups.tolist()))


def history_data(days, prompts, *, embedder="minilm", store=None, progress=None) -> HistoryData:
    """Embed every history day (through the store's cache) and score it zero-shot, day by day."""
    from .embed import Embedder
    from .rank import build_queries, zero_shot
    emb = embedder if isinstance(embedder, Embedder) else Embedder(embedder)
    qs = build_queries(prompts)
    qv = emb.embed_queries(qs.texts, store)
    Xs, ys, zss, gs, papers = [], [], [], [], []
    for i, day in enumerate(days):
        v = emb.embed_papers(day.papers, store)
        zs, _ = zero_shot(v, qv, qs)
        Xs.append(v)
        ys.append(np.asarray(day.labels, dtype=bool))
        zss.append(zs)
        gs += [day.date] * len(day.papers)
        papers += day.papers
        if progress is not None:
            progress(i + 1, len(days))
    return HistoryData(np.concatenate(Xs), np.concatenate(ys), np.concatenate(zss).astype(np.float64),
                       np.asarray(gs), papers, emb.key)


def calibrate(days, prompts, *, embedder="minilm", store=None, evaluate: bool = True,
              progress=None) -> tuple[Calibration, dict]:
    """Fit a calibration on history days; with `evaluate`, also the leave-one-day-out metrics."""
    data = history_data(days, prompts, embedder=embedder, store=store,
                        progress=(lambda d, n: progress("embedding", d, n)) if progress else None)
    loo = {}
    if evaluate:
        loo = leave_one_day_out(data.X, data.y, data.zs, data.groups, data.papers, embedder=data.embedder,
                                progress=(lambda d, n: progress("leave-one-day-out", d, n)) if progress else None)
    cal = fit(data.X, data.y, data.zs, data.groups, data.papers, embedder=data.embedder)
    return cal, loo
