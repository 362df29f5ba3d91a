"""Calibration: learn from a user's history of GPT digests which papers GPT picks.

Signals, each seeing the paper differently:
  1. a logistic regression on the paper's embedding ("papers like the ones GPT picked"),
  2. a logistic regression on the paper's TF-IDF words and word pairs (the exact vocabulary GPT rewards:
     "provably", "sparse autoencoder", "KV cache" ...; it complements the embedding, which blurs terms),
  3. the zero-shot score from the prompt's topics (rank.zero_shot),
  4. what the history says about the paper's authors and categories (features.py): authors seen often or on
     past picks stand in for the seed pipeline's h-index filter, which no text model can see.
A last model ("stacking") weighs the signals using the regressions' out-of-day predictions (each day predicted
by a fit on other days) and the out-of-day author/category features, so each signal counts only as much as it
helps on days it was not fit on. Those out-of-day stacked scores also tell how high a score a held-back pick
reaches: the calibration keeps, per recall target, the score threshold that held that share of the picks
(recall.py turns it into "keep this many papers").
The user's own labels (ranker.labels) join the fit: a label overrides GPT's pick for its paper and weighs
Options.label_weight times a GPT row; labelled papers in no history day come as days of their own.
The result is written to one JSON file, with the embedder's name and dimension.
"""
from __future__ import annotations

import base64
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from ..errors import InputError
from ..io import atomic_write, counted, json_loads, local_stamp, read_text
from ..records import Paper
from .embed import paper_text
from .history import LABEL_DAY_SUFFIX

FORMAT = "ranker-calibration"
KEY = "prefilter.calibration"          # the setting a calibration file comes from, named in its errors
VERSION = 2
# Recall targets the file stores a score threshold for (recall.py interpolates between them).
RECALL_GRID = tuple(round(0.01 * i, 2) for i in range(1, 101))     # 0.01 .. 1.00
# Said where a calibration ranks under topics it was not fit for (Calibration.other_topics).
OTHER_TOPICS = ("the calibration was fit under other topics than this prompt's: its ranking and recall were "
                "measured for those (calibrate again)")
# The least history worth learning from: days with GPT picks, and picks over all of them. Below it the stacker has
# too few days to weigh its signals out of day and the walk-forward check cannot run, so nothing is written. A day
# GPT picked nothing on is learnt from (its papers are negatives) but not counted among these days.
MIN_DAYS = 3
MIN_PICKS = 30


@dataclass
class Options:
    """What a fit uses. The defaults are the walk-forward winner (scripts/eval_walkforward.py)."""
    c_emb: float = 1.0            # inverse L2 strength of the embedding regression (0: signal off)
    c_words: float = 10.0         # inverse L2 strength of the words regression (0: signal off)
    ngrams: int = 1               # words and word pairs (2) or words only (1)
    min_df: int = 2               # a term must occur in this many training papers
    c_title: float = 10.0         # inverse L2 strength of a regression on the title's words alone (0: off)
    zero_shot: bool = True        # the zero-shot score as a stacking input
    meta: bool = True             # author and category features as stacking inputs
    folds: int = 5                # out-of-day folds for the stacking inputs
    halflife: float = 0.0         # recency weighting of training days (days; 0: every day weighs the same)
    nonneg: bool = True           # drop a text signal whose stacking weight comes out negative
    label_weight: float = 3.0     # weight of a row whose label the user gave (vs GPT's pick)

    @classmethod
    def from_dict(cls, d: Mapping) -> "Options":
        known = {k: v for k, v in dict(d).items() if k in cls.__dataclass_fields__}
        return cls(**known)


def _sigmoid(logit: np.ndarray) -> np.ndarray:
    """The stack's probability. Logits past +-500 are clipped: exp would overflow (a RuntimeWarning on the
    user's terminal) where the probability is 0 or 1 to the last bit either way."""
    return 1.0 / (1.0 + np.exp(-np.clip(logit, -500.0, 500.0)))


def _b64(a: np.ndarray, dtype=np.float32) -> str:
    return base64.b64encode(np.ascontiguousarray(a, dtype=dtype).tobytes()).decode("ascii")


def _unb64(s: str, dtype=np.float32) -> np.ndarray:
    return np.frombuffer(base64.b64decode(s), dtype=dtype).astype(np.float64)


# --------------------------------------------------------------------------- the words model
def words_text(p: Paper) -> str:
    """What the words model reads: title, abstract and the arXiv categories as tokens (catcsLG, catstatML)."""
    cats = " ".join("cat" + "".join(ch for ch in c if ch.isalnum()) for c in (p.categories or []))
    return f"{paper_text(p)} {cats}".strip()


def _vectorizer(ngrams: int, min_df: int, vocabulary=None):
    from sklearn.feature_extraction.text import TfidfVectorizer
    return TfidfVectorizer(sublinear_tf=True, stop_words="english", ngram_range=(1, ngrams),
                           min_df=1 if vocabulary else min_df, vocabulary=vocabulary, dtype=np.float64)


def _lr(C: float):
    from sklearn.linear_model import LogisticRegression
    return LogisticRegression(C=C, max_iter=5000)


def title_text(p: Paper) -> str:
    return " ".join((p.title or "").split())


# The text signals: name -> what it reads. "embedding" reads the paper's vector, the others a TF-IDF of a text.
TEXTS = {"words": words_text, "title": title_text}


# --------------------------------------------------------------------------- the fitted parts
def _text_names(opt: Options) -> list[str]:
    return ((["embedding"] if opt.c_emb > 0 else []) + (["words"] if opt.c_words > 0 else [])
            + (["title"] if opt.c_title > 0 else []))


def _c(opt: Options, name: str) -> float:
    return {"embedding": opt.c_emb, "words": opt.c_words, "title": opt.c_title}[name]


class _NoTerms(Exception):
    """The papers a text regression was to learn from share no word (min_df): too few of them."""


@dataclass
class _Text:
    """The text regressions, fit on some rows; logits for any rows."""
    models: dict = field(default_factory=dict)      # name -> (vectorizer or None, LogisticRegression)

    @classmethod
    def fit(cls, X, papers, y, w, opt: Options) -> "_Text":
        t = cls()
        for name in _text_names(opt):
            if name == "embedding":
                t.models[name] = (None, _lr(opt.c_emb).fit(X, y, sample_weight=w))
            else:
                vec = _vectorizer(opt.ngrams if name == "words" else 1, opt.min_df)
                try:
                    rows = vec.fit_transform([TEXTS[name](p) for p in papers])
                except ValueError:          # sklearn's "empty vocabulary" / "no terms remain" after min_df
                    raise _NoTerms(name) from None
                t.models[name] = (vec, _lr(_c(opt, name)).fit(rows, y, sample_weight=w))
        return t

    def logits(self, X, papers) -> list[np.ndarray]:
        out = []
        for name, (vec, m) in self.models.items():
            rows = X if vec is None else vec.transform([TEXTS[name](p) for p in papers])
            out.append(m.decision_function(rows))
        return out

    def to_dict(self) -> dict:
        out = {}
        for name, (vec, m) in self.models.items():
            d = {"coef": _b64(m.coef_[0]), "intercept": float(m.intercept_[0])}
            if vec is not None:
                d.update(vocab=[str(v) for v in vec.get_feature_names_out()], idf=_b64(vec.idf_),
                         ngrams=int(vec.ngram_range[1]))
            out[name] = d
        return out


def input_names(opt: Options) -> list[str]:
    """The stacking inputs, in order."""
    from .features import FEATURES
    return _text_names(opt) + (["zero_shot"] if opt.zero_shot else []) + (list(FEATURES) if opt.meta else [])


@dataclass
class Calibration:
    embedder: str
    dim: int
    options: dict = field(default_factory=dict)
    # text signal name -> {"coef": base64 float32, "intercept"} (+ "vocab", "idf", "ngrams" for TF-IDF ones)
    text_models: dict = field(default_factory=dict)
    counts: dict = field(default_factory=dict)          # features.Counts of the history (authors, categories)
    inputs: list[str] = field(default_factory=list)     # stacking input names
    input_mean: list[float] = field(default_factory=list)
    input_scale: list[float] = field(default_factory=list)
    stack_coef: list[float] = field(default_factory=list)
    stack_intercept: float = 0.0
    zs_mean: float = 0.0
    zs_std: float = 1.0
    # recall target (as "0.95") -> the score a held-back pick reached at that recall, from out-of-day scores
    recall_thresholds: dict = field(default_factory=dict)
    # recall target -> the top fraction of their day within which that share of the held-back picks ranked
    recall_fractions: dict = field(default_factory=dict)
    recall_source: str = ""
    trained_on: dict = field(default_factory=dict)
    walk_forward: dict = field(default_factory=dict)   # walk-forward figures on the history, when computed
    topics: str = ""             # QuerySet.digest() of the topics it was fit under ("": a file from before)

    # ------------------------------------------------------------------ use
    @property
    def opt(self) -> Options:
        return Options.from_dict(self.options)

    def _text_logits(self, vectors: np.ndarray, papers: Sequence[Paper]) -> list[np.ndarray]:
        out = []
        for name in self.inputs:
            d = self.text_models.get(name)
            if d is None:
                continue
            if name == "embedding":
                rows = np.asarray(vectors, dtype=np.float64)
            else:
                v = _vectorizer(int(d["ngrams"]), 1, d["vocab"])
                v.idf_ = _unb64(d["idf"])
                rows = v.transform([TEXTS[name](p) for p in papers])
            out.append(rows @ _unb64(d["coef"]) + float(d["intercept"]))
        return out

    def stack_inputs(self, vectors: np.ndarray, zero_shot: np.ndarray, papers: Sequence[Paper]) -> np.ndarray:
        from .features import Counts, features
        cols = self._text_logits(vectors, papers)
        if "zero_shot" in self.inputs:
            cols.append((np.asarray(zero_shot, dtype=np.float64) - self.zs_mean) / (self.zs_std or 1.0))
        M = np.column_stack(cols) if cols else np.zeros((len(papers), 0))
        if self.opt.meta:
            M = np.column_stack([M, features(papers, Counts.from_dict(self.counts))])
        return M

    def score(self, vectors: np.ndarray, zero_shot: np.ndarray, papers: Sequence[Paper]) -> np.ndarray:
        """P(GPT picks the paper), from its embedding, words, zero-shot score, authors and categories."""
        if len(vectors) == 0:
            return np.zeros(0)
        if vectors.shape[1] != self.dim:
            raise InputError(f"the calibration was made with a {self.dim}-d embedder ('{self.embedder}') but "
                             f"the papers are embedded in {vectors.shape[1]} dimensions", key=KEY)
        M = self.stack_inputs(vectors, zero_shot, papers)
        z = (M - np.asarray(self.input_mean)) / np.asarray(self.input_scale)
        logit = z @ np.asarray(self.stack_coef) + self.stack_intercept
        return _sigmoid(logit)

    def other_topics(self, topics: str) -> bool:
        """Whether it was fit under other topics than `topics` (a QuerySet.digest()); unknown (an older file):
        no."""
        return bool(self.topics) and self.topics != topics

    def fit_record(self) -> dict:
        """Which fit this is, for a run's manifest (calibration_fit) and each day of `ranker eval` (beside the
        file): when it was made, the days, papers, picks and labels it learnt from. None for what an older file
        does not record."""
        t = self.trained_on or {}
        days = sorted(t.get("days") or [])

        def count(key: str) -> int | None:
            v = t.get(key)
            return v if type(v) is int else None
        return {"created": t.get("created"), "days": len(days), "first_day": days[0] if days else None,
                "last_day": days[-1] if days else None, "papers": count("papers"), "picks": count("picks"),
                "labels": int(t.get("labels") or 0)}

    def check_embedder(self, key: str) -> None:
        if key != self.embedder:
            from .embed import key_parts       # a folder named 'emb@128' is that folder, not 'emb' cut

            name, tokens = key_parts(self.embedder)
            now_name, now_tokens = key_parts(key)
            if (name, tokens) == (now_name, now_tokens):    # 'minilm@128' is 'minilm': the same vectors
                return
            # only what differs: a calibration of 'minilm' refused at 256 tokens was told to use the embedder
            # minilm, which it already used, and not the token cut that was at fault
            use = " ".join(x for x in (f"{{key:prefilter.embedder}} {name}" if name != now_name else "",
                                       f"{{key:prefilter.max_tokens}} {tokens}" if tokens != now_tokens else "")
                           if x)
            raise InputError(f"this calibration was made with the embedder '{self.embedder}' ({self.dim}-d), "
                             f"not '{key}'; use {use} or calibrate again", key=KEY)

    # ------------------------------------------------------------------ file
    def save(self, path: str | Path, *, own_name: bool = False) -> None:
        """Write the calibration to `path` atomically; the temporary file a killed writer of it left is removed
        first (atomic_write's tidy), as every command's --out file. `own_name`: a name the caller made in its
        folder (eval's calibrations/DAY.json), a FIFO or device there replaced, not written into."""
        atomic_write(path, json.dumps({"format": FORMAT, "version": VERSION, **asdict(self)}), tidy=True,
                     own_name=own_name)

    @classmethod
    def load(cls, path: str | Path) -> "Calibration":
        """The calibration in `path`; what is wrong with the file an InputError naming it and the setting it came
        from (prefilter.calibration: `ranker run` said "gone.json: calibration file not found", naming no flag)."""
        try:
            return cls._load(Path(path))
        except InputError as e:
            e.key = e.key or KEY
            raise

    @classmethod
    def _load(cls, path: Path) -> "Calibration":
        bad = "not a calibration file (expected the JSON that `ranker calibrate` writes)"
        try:
            d = json_loads(read_text(path, "calibration file"))
        except json.JSONDecodeError:
            raise InputError(bad, where=str(path)) from None
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise InputError(bad, where=str(path))
        if d.get("version") != VERSION:
            raise InputError(f"calibration file version {d.get('version')} is not supported (this ranker reads "
                             f"version {VERSION}); calibrate again", where=str(path))
        try:
            cal = cls(**{k: v for k, v in d.items() if k not in ("format", "version")})
            problem = cal._problem()
        except (TypeError, ValueError, KeyError) as e:
            problem = str(e)
        if problem:
            raise InputError(f"malformed calibration file ({problem})", where=str(path))
        return cal

    def _problem(self) -> str | None:
        """What is wrong with a calibration read from a file (one edited by hand), or None: every field is
        checked here, so that ranking a day with it cannot crash or score NaN."""
        def number(v) -> bool:
            return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

        def numbers(v) -> bool:
            return isinstance(v, list) and all(number(x) for x in v)

        if not isinstance(self.embedder, str) or not isinstance(self.dim, int) or isinstance(self.dim, bool) \
                or self.dim < 1:
            return "its embedder or dimension"
        if not isinstance(self.options, dict):
            return "options is not an object"
        for k, v in self.options.items():
            default = Options.__dataclass_fields__[k].default if k in Options.__dataclass_fields__ else None
            if default is not None and not (isinstance(v, bool) if isinstance(default, bool) else number(v)
                                            and (isinstance(v, int) or not isinstance(default, int))):
                return f"options.{k} is {v!r}"
        opt = self.opt
        if self.inputs != input_names(opt):
            return "its stacking inputs are not the ones its options make"
        n = len(self.inputs)
        for k in ("stack_coef", "input_mean", "input_scale"):
            v = getattr(self, k)
            if not numbers(v) or len(v) != n:
                return f"{k} is not {n} finite numbers"
        if any(x == 0 for x in self.input_scale):
            return "input_scale holds 0"
        for k in ("stack_intercept", "zs_mean", "zs_std"):
            if not number(getattr(self, k)):
                return f"{k} is not a finite number"
        if not isinstance(self.text_models, dict):
            return "text_models is not an object"
        for name in _text_names(opt):
            t = self.text_models.get(name)
            if not isinstance(t, dict) or not number(t.get("intercept")):
                return f"text model {name}"
            coef = _unb64(t["coef"])
            if name == "embedding":
                size = self.dim
            else:
                vocab = t.get("vocab")
                if not isinstance(vocab, list) or not all(isinstance(w, str) for w in vocab) \
                        or len(set(vocab)) != len(vocab) or t.get("ngrams") not in (1, 2, 3):
                    return f"text model {name}: its vocabulary"
                size = len(vocab)
                if len(_unb64(t["idf"])) != size or not np.isfinite(_unb64(t["idf"])).all():
                    return "its coefficients do not match its sizes"
            if len(coef) != size or not np.isfinite(coef).all():
                return "its coefficients do not match its sizes"
        if opt.meta:
            c = self.counts
            if not isinstance(c, dict):
                return "counts is not an object"
            for k in ("papers", "picks", "cat_papers", "cat_picks", "prim_papers", "prim_picks"):
                v = c.get(k)
                if not isinstance(v, dict) or not all(isinstance(x, int) and not isinstance(x, bool)
                                                      for x in v.values()):
                    return f"counts.{k}"
            for k in ("n_papers", "n_picks", "n_days"):
                if not isinstance(c.get(k), int) or isinstance(c.get(k), bool):
                    return f"counts.{k}"
            if not isinstance(c.get("author_keys", 1), int) or isinstance(c.get("author_keys"), bool):
                return "counts.author_keys"
        for k in ("recall_thresholds", "recall_fractions"):
            v = getattr(self, k)
            if not isinstance(v, dict) or not all(number(x) for x in v.values()):
                return f"{k} is not an object of numbers"
            try:
                if not all(0 < float(r) <= 1 for r in v):
                    return f"{k}: a recall target outside (0, 1]"
            except ValueError:
                return f"{k}: a recall target that is not a number"
        for k in ("trained_on", "walk_forward"):
            if not isinstance(getattr(self, k), dict):
                return f"{k} is not an object"
        # the days it was fit on: the prefilter says when it ranks one of them (in-sample)
        days = self.trained_on.get("days", [])
        if not isinstance(days, list) or not all(isinstance(d, str) for d in days):
            return "trained_on.days is not a list of days"
        # counted into each run's manifest (fit_record), after the day is embedded and ranked
        labels = self.trained_on.get("labels", 0)
        if not isinstance(labels, int) or isinstance(labels, bool) or labels < 0:
            return "trained_on.labels is not a count"
        if not isinstance(self.topics, str):
            return "topics is not text"
        return None


# --------------------------------------------------------------------------- fitting
def _folds(groups: np.ndarray, k: int) -> list[np.ndarray]:
    """Test masks of whole days, at most k folds (days dealt round-robin in date order)."""
    days = sorted(set(groups.tolist()))
    k = min(k, len(days))
    fold_of = {d: i % k for i, d in enumerate(days)}
    f = np.array([fold_of[g] for g in groups.tolist()])
    return [f == i for i in range(k)]


def day_weights(groups: np.ndarray, halflife: float) -> np.ndarray:
    """Recency weights: a day `a` days before the newest history day weighs 0.5 ** (a / halflife)."""
    if not halflife or halflife <= 0:
        return np.ones(len(groups))
    days = sorted(set(groups.tolist()))
    age = {d: len(days) - 1 - i for i, d in enumerate(days)}
    return np.array([0.5 ** (age[g] / halflife) for g in groups.tolist()])


def _apply_labels(papers, y, w, labels: Mapping[str, bool] | None, weight: float):
    """The user's own labels override GPT's pick for their papers and weigh `weight` times as much."""
    if not labels:
        return y, w
    y, w = y.copy(), w.copy()
    for i, p in enumerate(papers):
        if p.id in labels:
            y[i] = bool(labels[p.id])
            w[i] *= weight
    return y, w


@dataclass
class Fitted:
    """A fit's parts before they are written into a Calibration (the eval script swaps stackers on them)."""
    text: _Text
    oof: np.ndarray               # the stacking inputs of the training rows, out of day
    y: np.ndarray
    w: np.ndarray
    groups: np.ndarray
    counts: object
    zs_mean: float
    zs_std: float
    options: Options

    def inputs(self, X: np.ndarray, zs: np.ndarray, papers: Sequence[Paper]) -> np.ndarray:
        """The stacking inputs of new rows, from the base models fit on every training row."""
        from .features import features
        cols = self.text.logits(np.asarray(X, dtype=np.float64), list(papers))
        if self.options.zero_shot:
            cols.append((np.asarray(zs, dtype=np.float64) - self.zs_mean) / self.zs_std)
        M = np.column_stack(cols) if cols else np.zeros((len(papers), 0))
        if self.options.meta:
            M = np.column_stack([M, features(papers, self.counts)])
        return M


def fit_inputs(X: np.ndarray, y: np.ndarray, zs: np.ndarray, groups: Sequence[str], papers: Sequence[Paper], *,
               options: Options | None = None, labels: Mapping[str, bool] | None = None) -> Fitted:
    """The base models on all rows, and every row's stacking inputs from fits that did not see its day."""
    from .features import counts_of, out_of_day_features
    opt = options or Options()
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=bool)
    zs = np.asarray(zs, dtype=np.float64)
    groups = np.asarray([str(g) for g in groups])
    papers = list(papers)
    w = day_weights(groups, opt.halflife)
    y, w = _apply_labels(papers, y, w, labels, opt.label_weight)
    if y.all() or not y.any():
        raise InputError("the history needs both papers GPT picked and papers it did not")
    mu, sd = float(zs.mean()), float(zs.std() or 1.0)

    n_text = len(_text_names(opt))
    oof = np.zeros((len(y), n_text))
    if n_text and len(set(groups.tolist())) >= 2:
        for te in _folds(groups, opt.folds):
            tr = ~te
            if y[tr].all() or not y[tr].any():
                continue
            try:
                part = _Text.fit(X[tr], [papers[i] for i in np.flatnonzero(tr)], y[tr], w[tr], opt)
            except _NoTerms:
                # a fold left with a few papers to learn from (a day of two labels, the rest of the labels one
                # other day's) shares no word: no out-of-day inputs from it, as a fold of one class; it had
                # ended calibrate as an "unexpected failure"
                continue
            oof[te] = np.column_stack(part.logits(X[te], [papers[i] for i in np.flatnonzero(te)]))
    cols = [oof]
    if opt.zero_shot:
        cols.append(((zs - mu) / sd)[:, None])
    if opt.meta:
        cols.append(out_of_day_features(papers, y, groups))
    try:
        text = _Text.fit(X, papers, y, w, opt)
    except _NoTerms as e:
        what = "titles" if str(e) == "title" else "titles and abstracts"
        raise InputError(f"too few papers to learn from: no word is in {opt.min_df} of the {len(papers)} papers' "
                         f"{what}") from None
    return Fitted(text=text, oof=np.column_stack(cols), y=y, w=w, groups=groups,
                  counts=counts_of(papers, y, groups), zs_mean=mu, zs_std=sd, options=opt)


def fit_stack(M: np.ndarray, y: np.ndarray, w: np.ndarray, names: list[str], nonneg: bool):
    """A logistic regression on standardised stacking inputs: (mean, scale, coef, intercept). With `nonneg`,
    a text signal whose weight comes out negative (it hurts out of sample) is dropped and the rest refit."""
    mean = M.mean(axis=0)
    scale = M.std(axis=0)
    scale[scale == 0] = 1.0
    Z = (M - mean) / scale
    use = np.ones(M.shape[1], dtype=bool)
    for _ in range(M.shape[1] + 1):
        st = _lr(1.0).fit(Z[:, use], y, sample_weight=w)
        coef = np.zeros(M.shape[1])
        coef[use] = st.coef_[0]
        bad = [i for i, n in enumerate(names) if use[i] and n in ("embedding", "words", "title", "zero_shot")
               and coef[i] < 0] if nonneg else []
        if not bad:
            return mean, scale, coef, float(st.intercept_[0])
        use[bad] = False
    return mean, scale, coef, float(st.intercept_[0])


def recall_thresholds(scores: np.ndarray, y: np.ndarray, groups: np.ndarray | None = None,
                      ) -> dict[str, float]:
    """Per recall target R of RECALL_GRID: the highest score t such that keeping every paper scoring at least t
    holds, on average over the days (`groups`), a share R of each day's picks; without groups, a share R of all
    the picks together. The scores must be out of day (each row scored by a model that did not see its day)."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(y, dtype=bool)
    if not y.any():
        return {}
    g = np.zeros(len(s), dtype=int) if groups is None else np.unique(np.asarray(groups), return_inverse=True)[1]
    days = [d for d in np.unique(g) if y[g == d].any()]
    # candidate thresholds: the picks' scores, best first; the mean recall of keeping score >= t rises with rank
    cand = np.sort(s[y])[::-1]
    rec = np.zeros(len(cand))
    for d in days:
        picks = np.sort(s[(g == d) & y])                  # ascending
        # picks of day d scoring at least cand[i], as a share of the day's picks
        rec += (len(picks) - np.searchsorted(picks, cand, side="left")) / len(picks)
    rec /= len(days)
    out = {}
    for r in RECALL_GRID:
        i = int(np.searchsorted(rec, r - 1e-9, side="left"))
        out[f"{r:.2f}"] = float(cand[min(i, len(cand) - 1)])
    return out


def within_day_fractions(scores: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Each row's rank within its day as a top fraction (the best paper of a 200-paper day: 1/200)."""
    scores = np.asarray(scores, dtype=np.float64)
    groups = np.asarray(groups)
    out = np.zeros(len(scores))
    for d in set(groups.tolist()):
        idx = np.flatnonzero(groups == d)
        order = np.argsort(-scores[idx], kind="stable")
        out[idx[order]] = (np.arange(len(idx)) + 1) / len(idx)
    return out


def recall_fractions(scores: np.ndarray, y: np.ndarray, groups: np.ndarray) -> dict[str, float]:
    """Per recall target R of RECALL_GRID: the smallest top fraction of a day that holds, on average over the
    days, a share R of each day's picks (recall_thresholds on the within-day rank fractions)."""
    t = recall_thresholds(-within_day_fractions(scores, groups), y, groups)
    return {r: -v for r, v in t.items()}


def fit(X: np.ndarray, y: np.ndarray, zs: np.ndarray, groups: Sequence[str], papers: Sequence[Paper], *,
        embedder: str, options: Options | None = None, labels: Mapping[str, bool] | None = None,
        topics: str = "") -> Calibration:
    """Fit on all rows. groups: each row's day (the stacking weights come from out-of-day inputs).
    labels: the user's own verdicts by paper id; each overrides GPT's pick for that paper and weighs
    options.label_weight times as much. topics: the QuerySet.digest() the zero-shot scores `zs` were measured
    under."""
    f = fit_inputs(X, y, zs, groups, papers, options=options, labels=labels)
    opt = f.options
    names = input_names(opt)
    if len(set(f.groups.tolist())) >= 2:
        mean, scale, coef, b = fit_stack(f.oof, f.y, f.w, names, opt.nonneg)
    else:                                    # one day: no out-of-day evidence to weigh by; text signals only
        mean, scale = np.zeros(len(names)), np.ones(len(names))
        coef = np.array([1.0 if n in ("embedding", "words", "title") else 0.0 for n in names])
        b = 0.0
    cal = Calibration(
        embedder=embedder, dim=int(np.asarray(X).shape[1]), topics=topics, options=asdict(opt),
        text_models=f.text.to_dict(),
        counts=f.counts.to_dict() if opt.meta else {},
        inputs=names, input_mean=[float(v) for v in mean], input_scale=[float(v) for v in scale],
        stack_coef=[float(v) for v in coef], stack_intercept=b, zs_mean=f.zs_mean, zs_std=f.zs_std,
        trained_on={"days": sorted(set(f.groups.tolist())), "papers": int(len(f.y)), "picks": int(f.y.sum()),
                    # labels, not rows: a paper of two history days is one label (said as "N labels")
                    "labels": len({p.id for p in papers if labels and p.id in labels}),
                    "created": local_stamp()})
    # Keeping by recall learns from whole days only: a user's labels outside the history form "days" of the
    # few papers they labelled (LABEL_DAY_SUFFIX), whose recall says nothing about a day's ranking.
    whole = np.array([not str(g).endswith(LABEL_DAY_SUFFIX) for g in f.groups])
    if len(set(f.groups[whole].tolist())) < 2:
        # one day has no held-back picks to learn a threshold from (its out-of-day inputs are placeholders):
        # keeping by recall falls back to the zero-shot prior
        cal.recall_source = "none"
        return cal
    # how high held-back picks scored: the stacker applied to the out-of-day inputs
    oof_scores = _sigmoid(((f.oof[whole] - mean) / scale) @ coef + b)
    cal.recall_thresholds = recall_thresholds(oof_scores, f.y[whole], f.groups[whole])
    cal.recall_fractions = recall_fractions(oof_scores, f.y[whole], f.groups[whole])
    cal.recall_source = "out-of-day"
    return cal


# --------------------------------------------------------------------------- from a history of digests
@dataclass
class HistoryData:
    X: np.ndarray
    y: np.ndarray
    zs: np.ndarray
    groups: np.ndarray
    papers: list[Paper]
    embedder: str
    topics: str = ""             # QuerySet.digest() of the topics zs was measured under

    def subset(self, mask: np.ndarray) -> "HistoryData":
        idx = np.flatnonzero(mask)
        return HistoryData(self.X[idx], self.y[idx], self.zs[idx], self.groups[idx],
                           [self.papers[i] for i in idx], self.embedder, self.topics)

    @property
    def days(self) -> list[str]:
        return sorted(set(self.groups.tolist()))


def fit_data(data: HistoryData, *, options: Options | None = None,
             labels: Mapping[str, bool] | None = None) -> Calibration:
    return fit(data.X, data.y, data.zs, data.groups, data.papers, embedder=data.embedder, options=options,
               labels=labels, topics=data.topics)


def history_data(days, prompts, *, embedder="minilm", store=None, progress=None) -> HistoryData:
    """Embed every history day (through the store's cache) and score it zero-shot, day by day."""
    from .embed import Embedder
    from .rank import build_queries, zero_shot_papers
    emb = embedder if isinstance(embedder, Embedder) else Embedder(embedder)
    qs = build_queries(prompts)
    qv = emb.embed_queries(qs.texts, store)
    Xs, ys, zss, gs, papers = [], [], [], [], []
    for i, day in enumerate(days):
        v = emb.embed_papers(day.papers, store)
        zs, _ = zero_shot_papers(v, qv, qs, day.papers)
        Xs.append(v)
        ys.append(np.asarray(day.labels, dtype=bool))
        zss.append(zs)
        gs += [day.date] * len(day.papers)
        papers += day.papers
        if progress is not None:
            progress(i + 1, len(days))
    return HistoryData(np.concatenate(Xs), np.concatenate(ys), np.concatenate(zss).astype(np.float64),
                       np.asarray(gs), papers, emb.key, qs.digest())


def check_enough(days, *, labels_short: int | None = None, where: str | None = None) -> None:
    """InputError when `days` (HistoryDays) are too few to learn from (MIN_DAYS days, MIN_PICKS picks), saying
    how much more is needed. `labels_short`: how many more labels a calibration from labels alone needs (0:
    enough, then a short GPT history is no obstacle); None when labels are not used. Days GPT picked nothing on
    are not counted as days (see MIN_DAYS), and said beside them."""
    n_days, n_picks = sum(1 for d in days if d.picks), sum(len(d.picks) for d in days)
    if (n_days >= MIN_DAYS and n_picks >= MIN_PICKS) or labels_short == 0:
        return
    need = ([counted(MIN_DAYS - n_days, "more day", "more days")] if n_days < MIN_DAYS else []) \
        + ([counted(MIN_PICKS - n_picks, "more GPT pick", "more GPT picks")] if n_picks < MIN_PICKS else [])
    alt = f", or {counted(labels_short, 'more label', 'more labels')} of yours" if labels_short else ""
    none = len(days) - n_days
    raise InputError(f"too short to learn from: {counted(n_days, 'day')} with "
                     f"{counted(n_picks, 'GPT pick')}{f' (and {none} with none)' if none else ''}; a calibration needs at least {MIN_DAYS} "
                     f"days and {MIN_PICKS} picks ({' and '.join(need)} needed{alt}); no calibration written",
                     where=where)


def calibrate(days, prompts, *, embedder="minilm", store=None, evaluate: bool = True, eval_share: float = 1 / 3,
              options: Options | None = None, labels: Mapping[str, bool] | None = None,
              label_dates: Mapping[str, str] | None = None, eval_on: Sequence[str] | None = None,
              progress: Callable | None = None):
    """Fit a calibration on history days. With `evaluate`, also the walk-forward figures on the last
    `eval_share` of the days with picks (of `eval_on`, when given: e.g. the GPT days, not the days of labels
    alone), each ranked by a fit on the days before it, beside zero-shot's. `labels`: the user's verdicts by paper id (each
    overrides GPT's pick and weighs options.label_weight); `label_dates`: the day each was given (YYYY-MM-DD):
    a walk-forward fit uses only the labels given before its test day (one without a date counts as given
    before every day). Returns (calibration, walkforward.Report or None)."""
    t0 = time.perf_counter()
    data = history_data(days, prompts, embedder=embedder, store=store,
                        progress=(lambda d, n: progress("embedding", d, n)) if progress else None)
    seconds = {"embedding": time.perf_counter() - t0}
    report = None
    # the walk-forward figures rank days against their picks: a day with none (GPT picked nothing) is no test day
    on = [d for d in (sorted(eval_on) if eval_on else data.days) if data.y[data.groups == d].any()]
    if evaluate and len(on) >= 3:
        t = time.perf_counter()
        report = walk_forward_report(data, eval_days(on, eval_share), options=options, labels=labels,
                                     label_dates=label_dates,
                                     progress=(lambda d, n: progress("walk-forward", d, n)) if progress else None)
        seconds["walk_forward"] = time.perf_counter() - t
    if progress:
        progress("fitting", 0, 1)
    t = time.perf_counter()
    cal = fit_data(data, options=options, labels=labels)
    seconds["fit"] = time.perf_counter() - t
    if progress:
        progress("fitting", 1, 1)
    if report is not None:
        cal.walk_forward = report.to_dict()
    cal.trained_on["seconds"] = {k: round(v, 1) for k, v in seconds.items()}
    return cal, report


def walk_forward_report(data: HistoryData, test_days: Sequence[str], *, options: Options | None = None,
                        labels: Mapping[str, bool] | None = None, label_dates: Mapping[str, str] | None = None,
                        progress: Callable | None = None):
    """The shipped learner, walk-forward on `test_days` (see calibrate: labels given on or after a test day are
    left out of its fit, as a user ranking that day did not have them yet)."""
    from .walkforward import walk_forward
    dates = label_dates or {}

    def fit_before(tr: HistoryData, day: str):
        known = {pid: v for pid, v in (labels or {}).items() if dates.get(pid, "") < day}
        return _scorer(fit_data(tr, options=options, labels=known or None))
    return walk_forward(data, fit_before, test_days=test_days, progress=progress)


# The walk-forward check ranks at most this many days. Each is ranked by a fit on every day before it, so a third
# of the days made the check grow with the square of the history: 19 fits at 57 days, 83 fits on 5x the papers
# each at a year's 250 (hours on a CPU), for figures whose mean moves less than the day-to-day spread by then.
MAX_EVAL_DAYS = 20


def eval_days(days: Sequence[str], share: float = 1 / 3, most: int = MAX_EVAL_DAYS) -> list[str]:
    """The last `share` of the days, at most `most` (at least one, and never the first: it has nothing before
    it)."""
    days = sorted(days)
    n = max(1, min(len(days) - 1, round(len(days) * share), most))
    return days[-n:]


def _scorer(cal: Calibration):
    return lambda d: cal.score(d.X, d.zs, d.papers)
