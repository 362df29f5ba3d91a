#!/usr/bin/env python
"""Does a fine-tuned embedder beat the shipped calibration? Trained ONCE, measured on the last days.

The split, as a user lives it (no day is ranked by a model that saw it):
  train  the days before the last --test-days (15): the shipped learner is fit on all of them;
  ft     the train days but the last --holdout-days (7): MiniLM is fine-tuned on them, end to end, as a
         classifier of GPT's picks (sentence-transformers model + a linear head on its normalised vector, the
         same form as the embedding regression; the head starts from that regression fit on these days);
  hold   the last --holdout-days train days: the fine-tuned model's scores there are out of sample, so the
         stacking weights that combine it with the shipped learner's inputs are fit on them;
  test   the last --test-days days, each embedded by the fine-tuned model and ranked.
Printed per approach: mean over the test days of AUC, R@25, R@40, keep95; then the times (fine-tuning
examples/s, embedding papers/s) and what a 50-day calibration with the fine-tuned embedder would take.

    PYTHONPATH=$PWD flock /tmp/ranker-heavy.lock .venv/bin/python scripts/eval_finetune.py [--probe]

Frozen MiniLM vectors come from the store (--db, default the shared history store); the fine-tuned model's
vectors are computed here and not stored.

Measured (2-core CPU, quiet; see the README, prefilter section; 3 min 46 s, peak RSS 2.15 GB): the shipped
calibration fit once on the 35 days before the test days AUC 0.926, keep95 0.352; fine-tuning 141 s for one
epoch of 2,976 examples (21.1 examples/s); the fine-tuned model alone 0.903 / keep95 0.443 (frozen vectors'
regression on the same days 0.887 / 0.510); stacked with the shipped inputs on the hold-out days 0.924 / 0.358
(the same stack without it 0.921 / 0.372).
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(1, str(REPO / "scripts"))
from wf_common import DATA, SHARED_CACHE  # noqa: E402  (found from a worktree too)
from script_cli import Parser  # noqa: E402  (a usage error: one line, status 1)


def load_minilm(models_dir: Path | None, max_tokens: int):
    from sentence_transformers import SentenceTransformer
    from ranker.models import resolve
    path = resolve("minilm", kind="embedder", models_dir=models_dir)
    m = SentenceTransformer(path, device="cpu", local_files_only=True)
    m.max_seq_length = max_tokens
    return m


class PickLoss:
    """A sentence-transformers loss: the normalised sentence embedding -> a linear head -> binary cross-entropy
    against "GPT picked it". Built lazily so torch is imported only when fine-tuning."""

    @staticmethod
    def make(model, coef: np.ndarray, intercept: float, pos_weight: float):
        import torch
        from torch import nn

        class _Loss(nn.Module):
            def __init__(self):
                super().__init__()
                self.model = model
                self.head = nn.Linear(len(coef), 1)
                with torch.no_grad():
                    self.head.weight.copy_(torch.tensor(coef, dtype=torch.float32)[None, :])
                    self.head.bias.fill_(float(intercept))
                self.bce = nn.BCEWithLogitsLoss(pos_weight=torch.tensor(pos_weight))

            def logits(self, features):
                e = self.model(features)["sentence_embedding"]
                return self.head(nn.functional.normalize(e, dim=-1))[:, 0]

            def forward(self, sentence_features, labels):
                return self.bce(self.logits(sentence_features[0]), labels.float())
        return _Loss()


def fine_tune(model, texts: list[str], y: np.ndarray, coef, intercept, *, epochs: int, batch: int, lr: float,
              head_lr: float, pos_weight: float, seed: int = 0, limit_steps: int | None = None):
    """Plain loop over shuffled mini-batches (sentence-transformers' own trainer needs the `datasets`
    package): AdamW, linear decay, one pass per epoch. Returns the loss module (model + head) and timings."""
    import torch
    torch.manual_seed(seed)
    loss = PickLoss.make(model, coef, intercept, pos_weight)
    params = [{"params": [p for p in model.parameters() if p.requires_grad], "lr": lr},
              {"params": loss.head.parameters(), "lr": head_lr}]
    opt = torch.optim.AdamW(params, weight_decay=0.01)
    rng = np.random.default_rng(seed)
    n_steps = epochs * int(np.ceil(len(texts) / batch))
    if limit_steps:
        n_steps = min(n_steps, limit_steps)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: max(0.0, 1 - s / max(1, n_steps)))
    model.train()
    step, seen, t0, losses = 0, 0, time.perf_counter(), []
    for _ in range(epochs):
        order = rng.permutation(len(texts))
        for i in range(0, len(order), batch):
            if step >= n_steps:
                break
            idx = order[i:i + batch]
            feats = model.tokenize([texts[j] for j in idx])
            out = loss([feats], torch.tensor(y[idx]))
            opt.zero_grad()
            out.backward()
            opt.step()
            sched.step()
            losses.append(float(out))
            step += 1
            seen += len(idx)
            if step % 50 == 0:
                print(f"  step {step}/{n_steps}: loss {np.mean(losses[-50:]):.4f} "
                      f"({seen / (time.perf_counter() - t0):.1f} examples/s)", flush=True)
    model.eval()
    return loss, {"seconds": time.perf_counter() - t0, "examples": seen, "steps": step}


def ft_scores(loss, texts: list[str], batch: int = 64) -> tuple[np.ndarray, float]:
    """The fine-tuned head's logit for each text, and the seconds it took (embedding included)."""
    import torch
    t0 = time.perf_counter()
    out = []
    with torch.no_grad():
        for i in range(0, len(texts), batch):
            feats = loss.model.tokenize(texts[i:i + batch])
            out.append(loss.logits(feats).numpy())
    return np.concatenate(out) if out else np.zeros(0), time.perf_counter() - t0


def main() -> int:
    from ranker.prefilter import calibrate as cal
    from ranker.prefilter.embed import paper_text
    from ranker.prefilter.history import load_history
    from ranker.prefilter.metrics import day_metrics, mean_of
    from ranker.prompts import load_prompts
    from ranker.settings import resolve
    from ranker.store import Store

    ap = Parser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--db", type=Path, default=SHARED_CACHE if SHARED_CACHE.exists() else None)
    ap.add_argument("--test-days", type=int, default=15)
    ap.add_argument("--holdout-days", type=int, default=7)
    ap.add_argument("--negatives", type=float, default=3.0, help="non-picks per pick in the fine-tuning set")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=2e-5)
    ap.add_argument("--head-lr", type=float, default=1e-3)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--probe", action="store_true", help="only time a few training steps and an encode")
    args = ap.parse_args()

    import torch
    torch.set_num_threads(2)
    s = resolve(flags={"db": args.db})
    t0 = time.perf_counter()
    prompts = load_prompts()
    days = load_history(args.data / "days", warn=lambda m: print(m, file=sys.stderr))
    with Store(s.db_path) as store:
        data = cal.history_data(days, prompts, embedder="minilm", store=store)
    all_days = data.days
    test_days = all_days[-args.test_days:]
    train_days = all_days[:-args.test_days]
    hold_days = train_days[-args.holdout_days:]
    ft_days = train_days[:-args.holdout_days]
    train = data.subset(np.isin(data.groups, train_days))
    ftd = data.subset(np.isin(data.groups, ft_days))
    print(f"{len(all_days)} days: fine-tune on {ft_days[0]}..{ft_days[-1]} ({len(ft_days)} days, "
          f"{len(ftd.y)} papers, {int(ftd.y.sum())} picks); stacking weights on {hold_days[0]}..{hold_days[-1]}; "
          f"test {test_days[0]}..{test_days[-1]} ({len(test_days)} days); loaded in {time.perf_counter() - t0:.0f}s",
          flush=True)

    # the fine-tuning set: every pick of the ft days and --negatives random non-picks per pick
    rng = np.random.default_rng(0)
    pos = np.flatnonzero(ftd.y)
    neg = rng.choice(np.flatnonzero(~ftd.y), size=min(int(args.negatives * len(pos)), int((~ftd.y).sum())),
                     replace=False)
    idx = rng.permutation(np.r_[pos, neg])
    texts = [paper_text(ftd.papers[i]) for i in idx]
    y = ftd.y[idx].astype(np.float32)
    head = cal._lr(1.0).fit(ftd.X, ftd.y)            # the embedding regression on the frozen vectors: the start
    model = load_minilm(s.models_dir, args.max_tokens)
    pw = float((1 - y).sum() / y.sum())             # balance the classes in the loss

    if args.probe:
        loss, tm = fine_tune(model, texts, y, head.coef_[0], head.intercept_[0], epochs=1, batch=args.batch,
                             lr=args.lr, head_lr=args.head_lr, pos_weight=pw, limit_steps=6)
        _, enc_s = ft_scores(loss, [paper_text(p) for p in data.papers[:256]])
        print(f"probe: {tm['examples'] / tm['seconds']:.1f} training examples/s (batch {args.batch}), "
              f"{256 / enc_s:.1f} papers/s embedded")
        return 0

    rows = []

    def report(name, scores_by_day, fit_s=None):
        ms = [day_metrics(scores_by_day[d], data.y[data.groups == d]) for d in test_days]
        m = mean_of(ms)
        rows.append((name, m, fit_s))
        print(f"{name:<66} AUC {m['auc']:.3f}  R@25 {m['recall@25']:.3f}  R@40 {m['recall@40']:.3f}  keep95 "
              f"{m['keep95']:.3f}" + (f"  (fit {fit_s:.0f}s)" if fit_s is not None else ""), flush=True)

    def per_day(fn):
        return {d: fn(data.subset(data.groups == d)) for d in test_days}

    # the shipped learner, fit once on all train days; its stacking inputs reused below
    t = time.perf_counter()
    fitted = cal.fit_inputs(train.X, train.y, train.zs, train.groups, train.papers)
    names = cal.input_names(fitted.options)
    mean, scale, coef, b = cal.fit_stack(fitted.oof, fitted.y, fitted.w, names, True)
    ship_s = time.perf_counter() - t
    test_inputs = {d: fitted.inputs(sub.X, sub.zs, sub.papers)
                   for d in test_days for sub in [data.subset(data.groups == d)]}
    report(f"shipped calibration (fit once on the {len(train_days)} train days)",
           {d: ((M - mean) / scale) @ coef + b for d, M in test_inputs.items()}, ship_s)
    report("zero-shot", per_day(lambda sub: sub.zs))
    emb35 = cal._lr(1.0).fit(train.X, train.y)
    report(f"embedding LR alone, frozen MiniLM, {len(train_days)} days",
           per_day(lambda sub: emb35.decision_function(sub.X)))
    report("embedding LR alone, frozen MiniLM, the fine-tuning days", per_day(lambda sub: head.decision_function(sub.X)))

    # fine-tune
    print(f"fine-tuning on {len(texts)} examples ({len(pos)} picks), {args.epochs} epoch(s), batch {args.batch}",
          flush=True)
    loss, tm = fine_tune(model, texts, y, head.coef_[0], head.intercept_[0], epochs=args.epochs, batch=args.batch,
                         lr=args.lr, head_lr=args.head_lr, pos_weight=pw)
    train_rate = tm["examples"] / tm["seconds"]
    print(f"fine-tuned in {tm['seconds']:.0f}s ({train_rate:.1f} examples/s)", flush=True)

    hold = data.subset(np.isin(data.groups, hold_days))
    ft_hold, s_hold = ft_scores(loss, [paper_text(p) for p in hold.papers])
    ft_test, n_test, s_test = {}, 0, 0.0
    for d in test_days:
        sub = data.subset(data.groups == d)
        ft_test[d], sec = ft_scores(loss, [paper_text(p) for p in sub.papers])
        n_test += len(sub.y)
        s_test += sec
    embed_rate = (len(hold.y) + n_test) / (s_hold + s_test)
    report("fine-tuned MiniLM + its head, alone", ft_test)

    # stacking weights on the hold-out days: the shipped inputs (out of day) with and without the fine-tuned score
    hmask = np.isin(fitted.groups, hold_days)
    Mh, yh, wh = fitted.oof[hmask], fitted.y[hmask], fitted.w[hmask]
    mean0, scale0, coef0, b0 = cal.fit_stack(Mh, yh, wh, names, True)
    report("shipped inputs, stacking weights from the hold-out days only (control)",
           {d: ((M - mean0) / scale0) @ coef0 + b0 for d, M in test_inputs.items()})
    M1 = np.column_stack([Mh, ft_hold])
    mean1, scale1, coef1, b1 = cal.fit_stack(M1, yh, wh, names + ["embedding"], True)
    report("shipped inputs + fine-tuned score, stacked on the hold-out days",
           {d: ((np.column_stack([M, ft_test[d]]) - mean1) / scale1) @ coef1 + b1 for d, M in test_inputs.items()})
    emb_col = names.index("embedding")
    keep = [i for i in range(len(names)) if i != emb_col]
    M2 = np.column_stack([Mh[:, keep], ft_hold])
    names2 = [names[i] for i in keep] + ["embedding"]
    mean2, scale2, coef2, b2 = cal.fit_stack(M2, yh, wh, names2, True)
    report("shipped inputs, fine-tuned score instead of the embedding LR, hold-out stack",
           {d: ((np.column_stack([M[:, keep], ft_test[d]]) - mean2) / scale2) @ coef2 + b2
            for d, M in test_inputs.items()})

    n50, p50 = len(data.y), int(data.y.sum())
    est = p50 * (1 + args.negatives) * args.epochs / train_rate + n50 / embed_rate
    print(f"\ntimes: fine-tuning {train_rate:.1f} examples/s, embedding with the fine-tuned model {embed_rate:.1f} "
          f"papers/s; a calibration on the {len(all_days)} days ({n50} papers, {p50} picks, {args.negatives:g} "
          f"non-picks per pick, {args.epochs} epoch(s)) would need about {est / 60:.1f} min for fine-tuning and "
          f"re-embedding, plus the shipped fit ({ship_s:.0f}s here on {len(train_days)} days)")
    print(f"total {time.perf_counter() - t0:.0f}s")
    return 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    from ranker.cli.app import script_main
    raise SystemExit(script_main(main, flags={"db": "--db"}))   # a RankerError: one line, status 1
