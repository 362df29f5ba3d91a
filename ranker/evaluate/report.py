"""report.html of an eval (one self-contained page, built from ranker.compare.report's blocks) and the short
Markdown summary the command prints. Both read the content of eval.json."""
from __future__ import annotations

from typing import Any, Iterable, Mapping

import numpy as np

from ..compare.report import esc, figure, fmt, img, made_by, page_start, recall_png, scatter_png, table
from ..io import counted, day_span, grouped
from .figures import KEEPING, RANKING, SCORES, spearman_undefined

_NAMES = {"auc": "AUC", "recall@25": "R@25", "recall@40": "R@40", "keep95": "keep95",
          "kept_fraction": "kept", "kept_recall": "recall of kept"}


def _span(days: list[Mapping]) -> str:
    return day_span(d["date"] for d in days) or "no day"


def _n_days(n: int) -> str:
    return counted(n, "day")


def no_pick_note(o: Mapping) -> str:
    """What the means over days stand on when GPT picked nothing on some days ("" when it picked on every day):
    such a day counts in the kept fraction (and the digest's precision), not in the figures against the picks."""
    n = o.get("no_pick_days") or 0
    if not n:
        return ""
    fp = (", and its digest's picks as false positives," if n == 1 else
          ", and their digests' picks as false positives,") if "llm" in o else ""
    return (f"{_n_days(n)} with no GPT pick {'counts' if n == 1 else 'count'} in kept{fp} but not in AUC, R@25, "
            f"R@40, keep95 and recall of kept: those are means over the {_n_days(o['days'] - n)} with picks")


def took(t: Mapping) -> str:
    """Where the time went, from eval.json's timings ("" for a file from before they were recorded)."""
    if not t:
        return ""
    parts = [f"embedding the days {t['embedding']:.0f} s"]
    if t.get("fits"):
        parts.append(f"{counted(t['fits'], 'calibration fit')} {t['calibrate']:.0f} s")
    parts.append(f"ranking {t['prefilter']:.1f} s")
    if t.get("score"):
        parts.append(f"scoring {t['score']:.0f} s")
    return f"took {t['total']:.0f} s ({', '.join(parts)})"


def bounds(row: Mapping | None, signed: bool = False) -> str:
    """An interval as printed: "[0.83, 0.86]" (to 2 decimals: the third is within the bootstrap's own noise,
    see intervals.py), "[+0.07, +0.10]" for a difference; "–" where there is none."""
    if not row or row.get("low") is None or row.get("high") is None:
        return "–"
    f = "{:+.2f}" if signed else "{:.2f}"
    return f"[{f.format(row['low'])}, {f.format(row['high'])}]"


def interval_note(iv: Mapping | None, rows: Iterable[Mapping]) -> str:
    """What the intervals are, or why there are none ("" for an eval.json from before they were computed):
    `rows` the intervals of the figures shown ({"low", "high", "days"} each). Too narrow with few days is said
    when any figure with an interval rests on fewer than few_days, not only the one on the most days."""
    if not iv:
        return ""
    rows = list(rows)
    days = max((r["days"] for r in rows), default=0)
    if days < iv["min_days"]:
        return (f"No 95% intervals: {_n_days(days)} {'is' if days == 1 else 'are'} too few for a bootstrap over "
                f"days to mean anything (it needs at least {iv['min_days']})")
    fewest = min((r["days"] for r in rows if r.get("low") is not None), default=days)
    few_days = iv.get("few_days", 0)
    some = f" (some figures here stand on {fewest})" if fewest < few_days <= days else ""
    few = (f"; with fewer than {few_days} days{some} they are too narrow (a bootstrap over few days covers "
           "less than 95%)") if fewest < few_days else ""
    # a figure defined on a day or more, but on too few for an interval: its "–" is said, not left to guess
    under = sorted({r["days"] for r in rows if 0 < r["days"] < iv["min_days"]})
    none = (f"; a figure on fewer than {iv['min_days']} days (here {_and(under)}) has none") if under else ""
    return (f"95% intervals: {iv['method']} (the {_n_days(days)} resampled {iv['resamples']:,} times, seed "
            f"{iv['seed']}): where the figure could plausibly lie on other days like these{few}{none}")


def _and(xs: list) -> str:
    """"2", "2 and 4", "1, 2 and 4"."""
    xs = [str(x) for x in xs]
    return xs[0] if len(xs) == 1 else f"{', '.join(xs[:-1])} and {xs[-1]}"


def _rows(iv: Mapping) -> list[Mapping]:
    """The intervals of an eval's figures (as interval_note takes them)."""
    llm = iv.get("llm", {})
    return ([*iv.get("prefilter", {}).values(), *iv.get("zero_shot", {}).values(), *llm.get("digest", {}).values()]
            + [llm[w]["within1"] for w in ("relevance", "novelty") if w in llm])


def _cut_offs(s: Mapping, default_too: bool = False) -> str:
    """"RELEVANCE >= 7 and NOVELTY >= 7": the cut-offs GPT's picks were read at (and the local digest picks at),
    when they are not the digest's defaults or `default_too`; "" when not (or unknown: an older eval.json)."""
    from ..records import MIN_NOVELTY, MIN_RELEVANCE
    r, n = s.get("min_relevance"), s.get("min_novelty")
    if r is None or n is None or ((r, n) == (MIN_RELEVANCE, MIN_NOVELTY) and not default_too):
        return ""
    return f"RELEVANCE >= {r:g} and NOVELTY >= {n:g}"


def _how(s: Mapping) -> str:
    from ..prefilter.recall import DEFAULT_KEEP, DEFAULT_RECALL
    default = (f"recall {DEFAULT_RECALL:g}" if s["calibration"] != "zero-shot" else f"keep {DEFAULT_KEEP:g}") \
        + ", the default"
    rule = (f"top {s['top']}" if s.get("top") else f"keep {s['keep']:g}" if s.get("keep")
            else f"recall {s['recall']:g}" if s.get("recall") else default)
    return f"prefilter {s['embedder']} ({s['calibration']}; {rule})"


# ---------------------------------------------------------------------------------------- plots
def curves_png(days: list[Mapping]) -> str:
    """Each day's recall of GPT's picks against the top fraction kept (thin), their mean (thick), and where the
    keep rule cut each day (dots); a day GPT picked nothing on has no curve."""
    fig = figure(6.2, 4.6)
    ax = fig.add_subplot(111)
    grid = np.linspace(0, 1, len(days[0]["curve"])) if days else np.linspace(0, 1, 101)
    ax.plot([0, 1], [0, 1], color="#bbb", lw=1, ls="--", label="random")
    rows = []
    for d in days:
        if not d["prefilter"]["picks"]:
            continue                        # GPT picked nothing that day: no recall to draw
        y = np.array([np.nan if v is None else v for v in d["curve"]], dtype=float)
        rows.append(y)
        ax.plot(grid, y, color="#c05621", lw=0.8, alpha=0.35)
        p = d["prefilter"]
        if p.get("kept_fraction") is not None and p.get("kept_recall") is not None:
            ax.plot([p["kept_fraction"]], [p["kept_recall"]], "o", color="#2b6cb0", ms=3.5, alpha=0.8)
    if rows:
        ax.plot(grid, np.nanmean(np.vstack(rows), axis=0), color="#c05621", lw=2.4,
                label=f"mean of {counted(len(rows), 'day')}")
    ax.plot([], [], "o", color="#2b6cb0", ms=3.5, label="what the keep rule kept")
    return recall_png(fig, ax, "fraction of the day kept (best first)", "Prefilter: recall vs fraction kept, per day")


# ---------------------------------------------------------------------------------------- HTML
def _figures_row(name: str, m: Mapping, keys) -> list[str]:
    return [esc(name)] + [esc(fmt(m.get(k))) for k in keys]


def _shown(iv: Mapping | None) -> bool:
    """Whether any figure of this block has an interval."""
    return bool(iv) and any(r.get("low") is not None for r in iv.values())


def _interval_row(iv: Mapping, keys, name: str = "95% interval") -> list[str]:
    return [esc(name)] + [esc(bounds(iv.get(k))) for k in keys]


def spearman_gaps(days: Iterable[Mapping], llm: Mapping) -> str:
    """Why a pooled Spearman of the LLM's agreement is undefined ("–"), one sentence, a clause per score whose
    is; "" when both are defined. Given one day and its `llm`, that day's. The reason is the one eval.json
    carries beside the null (`spearman_undefined`, written by figures.spearman_undefined when the figures were
    made): the report says what the file says. Only an eval.json from before that key has it worked out here
    again from the days' pairs."""
    days = list(days)
    out = []
    for k, w in enumerate(SCORES):
        figure = llm.get(w, {})
        if figure.get("spearman") is not None:
            continue
        if "spearman_undefined" in figure:
            why = figure["spearman_undefined"]
        else:
            why = spearman_undefined([p for d in days for p in d.get("pairs") or []], k)
        if why:
            out.append(f"{w} Spearman undefined: {why}")
    said = "; ".join(out)
    return said[:1].upper() + said[1:] + "." if said else ""


def day_spearman_gaps(days: Iterable[Mapping]) -> list[str]:
    """spearman_gaps of each scored day whose own Spearman is undefined, the day first: "2025-05-14: Novelty
    Spearman undefined: the model gave all 3 the same NOVELTY, 10." (the per-day table's "–")."""
    return [f"{d['date']}: {gaps}" for d in days if d.get("llm")
            for gaps in [spearman_gaps([d], d["llm"])] if gaps]


def scores_said(days: Iterable[Mapping], llm: Mapping) -> str:
    """What the LLM's scores of an eval are and where they came from: "scores of 12 kept papers (0 scored now, 12
    reused from the store)" (eval.json's `scored` counts the stored scores reused too, each day's `reused`
    those); "12 papers scored" for a day record without `reused`."""
    scored = [d["llm"] for d in days if d.get("llm")]
    if any("reused" not in m for m in scored):
        return f"{counted(llm['scored'], 'paper')} scored"
    reused = sum(m["reused"] for m in scored)
    return (f"scores of {counted(llm['scored'], 'kept paper')} ({llm['scored'] - reused:,} scored now, {reused:,} "
            "reused from the store)")


def _llm_tables(llm: Mapping, iv: Mapping | None = None, gaps: str = "") -> str:
    """The agreement table (with `gaps`, spearman_gaps' reason, right under it) and the digest's table."""
    agree = ("n", "spearman", "within1", "kendall", "mae", "exact", "mean_gpt", "mean_local", "bias")
    sel = ("n", "gpt_picks", "local_picks", "tp", "fp", "fn", "precision", "recall", "f1")
    iv = iv or {}
    rows = []
    for w in ("relevance", "novelty"):
        rows.append(_figures_row(w, llm[w], agree))
        if _shown(iv.get(w)):
            rows.append(_interval_row(iv[w], agree, "  95% interval"))
    digest = [_figures_row("all days", llm["digest"], sel)]
    if _shown(iv.get("digest")):
        digest.append(_interval_row(iv["digest"], sel))
    return (table(["score"] + list(agree), rows)
            + (f'<p class="muted">{esc(gaps)}</p>' if gaps else "")
            + "<p class=\"muted\">The final digest against GPT's picks over every paper of the days: a paper GPT "
            "did not pick counts as not picked by GPT, one the prefilter dropped as not picked locally.</p>"
            + table(["digest"] + list(sel), digest))


def _days_table(days: list[Mapping], zero_shot: bool) -> str:
    head = ["day", "papers", "picks", "AUC", "R@25", "R@40", "keep95", "kept", "recall of kept", "rule"]
    head += ["zero-shot AUC", "zero-shot keep95"] if zero_shot else []
    rows = []
    for d in days:
        p = d["prefilter"]
        r = [esc(d["date"]), esc(grouped(p["papers"])), esc(grouped(p["picks"]))]
        r += [esc(fmt(p.get(k))) for k in RANKING]
        r += [esc(f"{grouped(p['kept'])} ({fmt(p.get('kept_fraction'), 2)})"), esc(fmt(p.get("kept_recall"))),
              esc(p.get("rule") or "")]
        if zero_shot:
            z = d.get("zero_shot") or {}
            r += [esc(fmt(z.get("auc"))), esc(fmt(z.get("keep95")))]
        rows.append(r)
    return table(head, rows)


def _llm_days_table(days: list[Mapping]) -> str:
    head = ["day", "scored now", "reused", "failed", "GPT picks scored", "rel. Spearman", "rel. within 1",
            "nov. Spearman", "nov. within 1", "digest picks", "also GPT's", "precision", "recall", "F1"]
    rows = []
    for d in days:
        m = d.get("llm") or {}
        rel, nov, dg = m.get("relevance", {}), m.get("novelty", {}), m.get("digest", {})
        reused = m.get("reused")            # `scored` counts the scores reused from the store too
        now = m.get("scored") if reused is None or m.get("scored") is None else m["scored"] - reused
        rows.append([esc(d["date"])] + [esc(fmt(v)) for v in (
            now, reused, m.get("failed"), rel.get("n"), rel.get("spearman"), rel.get("within1"),
            nov.get("spearman"), nov.get("within1"), dg.get("local_picks"), dg.get("tp"), dg.get("precision"),
            dg.get("recall"), dg.get("f1"))])
    return table(head, rows)


def render_html(result: Mapping[str, Any], comparison: Mapping[str, Any] | None = None) -> str:
    """report.html of eval.json's content, with its comparison with another eval (comparison.json's) when it
    has one."""
    s, days, o = result["settings"], result["days"], result["overall"]
    llm = "llm" in o
    rule, whose = _cut_offs(s, default_too=True), "GPT's and the digest's" if llm else "GPT's"
    parts: list[str] = []
    add = parts.append
    add(page_start(f"ranker eval: {_span(days)}"))
    add("<h1>The local pipeline replayed on your GPT history</h1>")
    add(f'<p class="muted">{made_by("ranker eval")} from <code>{esc(result["history"])}</code>: '
        f'{esc(_n_days(o["days"]))} ({esc(_span(days))}), {esc(counted(o["papers"], "paper"))}, '
        f'{esc(counted(o["picks"], "GPT pick"))}'
        + (f' ({esc(_n_days(o["no_pick_days"]))} with none)' if o.get("no_pick_days") else "") + '; '
        f'{esc(_how(s))}'
        + (f"; model {esc(s['model'])} ({esc(s['backend'])})" if llm else "")
        + (f", a pick ({whose}) is {esc(rule).replace('&gt;=', '&ge;')}" if rule else "")
        + (f"; {esc(took(result['timings']))}" if result.get("timings") else "") + ".</p>")
    if result.get("skipped"):
        add(f'<p class="note">{esc(_n_days(len(result["skipped"])))} skipped: '
            + "; ".join(f"{esc(x['day'])}: {esc(x['problem'])}" for x in result["skipped"]) + "</p>")
    for n in result.get("notes") or []:
        add(f'<p class="note">{esc(n)}</p>')

    add("<h2>Prefilter</h2>")
    add('<p class="muted">Means over days. AUC: how well the score separates GPT\'s picks; R@25 / R@40: the '
        "share of the picks in the top 25% / 40% of the day; keep95: the smallest top fraction of the day that "
        "holds 95% of the picks (what the LLM must read to lose few); kept and recall of kept: what the keep "
        "rule sent on to the LLM, and the share of the picks in it."
        + (f" {esc(no_pick_note(o))}." if no_pick_note(o) else "") + "</p>")
    keys = RANKING + KEEPING
    iv = o.get("intervals") or {}
    rows = [_figures_row(s["calibration"], o["prefilter"], keys)]
    if _shown(iv.get("prefilter")):
        rows.append(_interval_row(iv["prefilter"], keys))
    if o.get("zero_shot"):
        rows.append(_figures_row("zero-shot, same days", o["zero_shot"], RANKING) + ["–", "–"])
        if _shown(iv.get("zero_shot")):
            rows.append(_interval_row(iv["zero_shot"], RANKING) + ["–", "–"])
    add(table([""] + [_NAMES[k] for k in keys], rows))
    gain = iv.get("minus_zero_shot")
    if gain and any(r["low"] is not None for r in gain.values()):
        add("<p>The calibration's gain over zero-shot, day by day (paired): "
            + esc(", ".join(f"{_NAMES[k]} {_signed(gain[k]['difference'])} {bounds(gain[k], signed=True)}"
                            for k in RANKING)) + "</p>")
    if iv:
        add(f'<p class="muted">{esc(interval_note(iv, _rows(iv)))}.</p>')
    if llm:
        add(f"<h2>LLM ({esc(s['model'])}) against GPT</h2>")
        said = scores_said(days, o["llm"])
        add(f'<p class="muted">{esc(said[:1].upper() + said[1:])}, {esc(grouped(o["llm"]["failed"]))} failed. '
            "Agreement on GPT's picks the LLM saw (all days pooled): Spearman rank correlation and the share "
            "within one point, of RELEVANCE and NOVELTY. GPT's digest lists only its picks, so its scores span "
            "a narrow range (RELEVANCE 8-10, NOVELTY 7-10) and correlations over them are modest by construction; "
            "the digest's precision, recall and F1 below are the figures that decide.</p>")
        add(_llm_tables(o["llm"], (o.get("intervals") or {}).get("llm"), spearman_gaps(days, o["llm"])))
    if comparison:
        add(comparison_html(comparison))
    add("<h2>Per day: prefilter</h2>" + _days_table(days, bool(o.get("zero_shot"))))
    if llm:
        add("<h2>Per day: LLM and digest</h2>" + _llm_days_table(days)
            + "".join(f'<p class="muted">{esc(g)}</p>' for g in day_spearman_gaps(days)))

    add("<h2>Plots</h2><div class=\"plots\">")
    if days:
        add(img(curves_png(days), "recall vs fraction kept, per day",
                "Each day's recall of GPT's picks by the fraction of the day kept; dots: what the keep rule kept."))
    pairs = [p for d in days for p in d.get("pairs") or []]
    if pairs:
        for k, what in enumerate(("relevance", "novelty")):
            add(img(scatter_png([p["gpt"][k] for p in pairs], [p["local"][k] for p in pairs], what),
                    f"{what} scatter", f"{what.capitalize()} of GPT's picks the LLM scored: GPT's vs the LLM's."))
    add("</div>")
    add("</body></html>")
    return "\n".join(parts)


# ---------------------------------------------------------------------------------------- terminal
def summary_markdown(result: Mapping[str, Any]) -> str:
    """A short Markdown summary for the terminal."""
    s, days, o = result["settings"], result["days"], result["overall"]
    none = f" ({_n_days(o['no_pick_days'])} with none)" if o.get("no_pick_days") else ""
    whose = "GPT's picks (and the digest's)" if "llm" in o else "GPT's picks"
    lines = [f"## ranker eval: {_n_days(o['days'])} ({_span(days)}), {counted(o['papers'], 'paper')}, "
             f"{counted(o['picks'], 'GPT pick')}{none}", "",
             *([f"{whose} at your cut-offs: {_cut_offs(s)}", ""] if _cut_offs(s) else []),
             f"{_how(s)}; means over days" + (f" ({no_pick_note(o)})" if none else "") + ":", "",
             "| prefilter | AUC | R@25 | R@40 | keep95 | kept | recall of kept |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    p, iv = o["prefilter"], o.get("intervals") or {}
    lines.append(f"| {s['calibration']} | " + " | ".join(fmt(p.get(k)) for k in RANKING + KEEPING) + " |")
    if _shown(iv.get("prefilter")):
        lines.append("| 95% interval | " + " | ".join(bounds(iv["prefilter"].get(k)) for k in RANKING + KEEPING)
                     + " |")
    if o.get("zero_shot"):
        z = o["zero_shot"]
        lines.append("| zero-shot | " + " | ".join(fmt(z.get(k)) for k in RANKING) + " | | |")
        if _shown(iv.get("zero_shot")):
            lines.append("| 95% interval | " + " | ".join(bounds(iv["zero_shot"].get(k)) for k in RANKING)
                         + " | | |")
    gain = iv.get("minus_zero_shot")
    if gain and any(r["low"] is not None for r in gain.values()):
        lines += ["", "The calibration's gain over zero-shot, day by day (paired): "
                  + ", ".join(f"{_NAMES[k]} {_signed(gain[k]['difference'])} {bounds(gain[k], signed=True)}"
                              for k in RANKING)]
    if iv:
        lines += ["", interval_note(iv, _rows(iv)) + "."]
    if "llm" in o:
        m = o["llm"]
        d = m["digest"]
        lines += ["", f"LLM {s['model']} ({s['backend']}): {scores_said(days, m)}, {m['failed']:,} failed; "
                      f"on GPT's picks it scored (n={m['relevance']['n']:,}):", "",
                  "| score | Spearman | within 1 |", "|---|---:|---:|"]
        for w in ("relevance", "novelty"):
            lines.append(f"| {w} | {fmt(m[w]['spearman'])} | {fmt(m[w]['within1'])} |")
        gaps = spearman_gaps(days, m)
        if gaps:
            lines += ["", gaps]
        lines += ["", f"Digest vs GPT's picks: {d['local_picks']:,} picked, {d['gpt_picks']:,} by GPT, {d['tp']:,} both: "
                      f"precision {fmt(d['precision'])}, recall {fmt(d['recall'])}, F1 {fmt(d['f1'])}"]
        li = iv.get("llm") or {}
        if _shown(li.get("digest")):
            lines += ["", "95% intervals over days: precision " + bounds(li["digest"]["precision"]) + ", recall "
                      + bounds(li["digest"]["recall"]) + ", F1 " + bounds(li["digest"]["f1"]) + "; within 1: "
                      f"relevance {bounds(li['relevance']['within1'])}, novelty {bounds(li['novelty']['within1'])}"]
    if result.get("skipped"):
        lines += ["", f"{_n_days(len(result['skipped']))} skipped: "
                  + "; ".join(f"{x['day']} ({x['problem']})" for x in result["skipped"])]
    for n in result.get("notes") or []:
        lines += ["", f"Note: {n}"]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------- two evals
_LLM_NAMES = (("digest", "precision", "digest precision"), ("digest", "recall", "digest recall"),
              ("digest", "f1", "digest F1"), ("relevance", "within1", "relevance within 1"),
              ("novelty", "within1", "novelty within 1"))


def _what(s: Mapping) -> str:
    """How an eval ranked (and scored), from its settings; an eval.json that does not record them says so."""
    if not s.get("embedder") or not s.get("calibration"):
        return "(its settings are not recorded)"
    return _how(s) + (f"; model {s['model']} ({s.get('backend')})" if s.get("model") else "")


def _signed(v) -> str:
    return "–" if v is None else f"{v:+.3f}"


def _comparison_rows(c: Mapping[str, Any]) -> list[tuple[str, Mapping]]:
    """(figure's name, its paired row) for each figure a comparison holds, in the order they are shown."""
    rows = [(_NAMES[k], c["prefilter"][k]) for k in RANKING + KEEPING]
    if "llm" in c:
        rows += [(name, c["llm"][block][k]) for block, k, name in _LLM_NAMES]
    return rows


def comparison_caveat(c: Mapping[str, Any]) -> str:
    """What a comparison's intervals are, or why some or all are missing (interval_note's words, paired)."""
    iv = {"min_days": c["min_days"], "few_days": c["few_days"], "method": "paired " + c["method"],
          "resamples": c["resamples"], "seed": c["seed"]}
    return interval_note(iv, [r for _, r in _comparison_rows(c)])


def _left_out(c: Mapping[str, Any]) -> str:
    left = [f"{counted(c['only_this'], 'day')} only in this eval" if c["only_this"] else "",
            f"{counted(c['only_other'], 'day')} only in the other" if c["only_other"] else ""]
    return " and ".join(x for x in left if x)


def _replaced(c: Mapping[str, Any]) -> str:
    """Said when the eval compared with was the earlier one in this eval's folder, which this one replaced."""
    return " (the earlier eval in this folder, since replaced by this one: its figures are kept here)" \
        if (c.get("against_eval") or {}).get("replaced") else ""


def comparison_markdown(c: Mapping[str, Any], this: str = "this eval") -> str:
    """intervals.paired_comparison's result as Markdown: per figure the two means over the shared days, the
    difference and its paired interval. `this`: how to call the eval compared (its folder)."""
    lines = [f"## {this} against {c['against']}: {counted(c['days'], 'shared day')} ({c['span']})", "",
             f"- this: {_what(c['this'])}", f"- other: {_what(c['other'])}{_replaced(c)}"]
    if _left_out(c):
        lines.append(f"- left out: {_left_out(c)}")
    if "llm" not in c and (c["this"].get("model") or c["other"].get("model")):
        lines.append("- the digests are not compared: only one of the two scored with a model")
    lines += ["", "Means over the shared days, the difference (this minus other) and its 95% interval "
              "(keep95 and kept: lower reads less of each day):", "",
              "| figure | this | other | difference | 95% interval | days |", "|---|---:|---:|---:|---:|---:|"]
    for name, r in _comparison_rows(c):
        lines.append(f"| {name} | {fmt(r['this'])} | {fmt(r['other'])} | {_signed(r['difference'])} | "
                     f"{bounds(r, signed=True)} | {grouped(r['days'])} |")
    lines += ["", comparison_caveat(c) + "."]
    return "\n".join(lines)


def comparison_html(c: Mapping[str, Any]) -> str:
    """The comparison (comparison.json's content) as a report.html section: what was compared, the table of
    comparison_markdown and its caveat."""
    other = c.get("against_eval") or {}
    digest = f' (content sha256 <code>{esc(other["content_sha256"][:12])}</code>)' \
        if other.get("content_sha256") else ""
    items = [f"<li>this: {esc(_what(c['this']))}</li>",
             f"<li>other: {esc(_what(c['other']))}{esc(_replaced(c))}</li>"]
    if _left_out(c):
        items.append(f"<li>left out: {esc(_left_out(c))}</li>")
    if "llm" not in c and (c["this"].get("model") or c["other"].get("model")):
        items.append("<li>the digests are not compared: only one of the two scored with a model</li>")
    rows = [[esc(name), esc(fmt(r["this"])), esc(fmt(r["other"])), esc(_signed(r["difference"])),
             esc(bounds(r, signed=True)), esc(grouped(r["days"]))] for name, r in _comparison_rows(c)]
    return ("<h2>Against another eval</h2>"
            f'<p>This eval against <code>{esc(c["against"])}</code>{digest}: '
            f'{esc(counted(c["days"], "shared day"))} ({esc(c["span"])}).</p>'
            f"<ul>{''.join(items)}</ul>"
            "<p class=\"muted\">Means over the shared days, the difference (this minus other) and its 95% interval "
            "(keep95 and kept: lower reads less of each day). Written beside this report as comparison.json.</p>"
            + table(["figure", "this", "other", "difference", "95% interval", "days"], rows)
            + f'<p class="muted">{esc(comparison_caveat(c))}.</p>')
