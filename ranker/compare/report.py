"""report.html (one self-contained file: inline CSS, plots as base64 PNG) and the terminal summary.

Every string taken from the inputs (titles, comments, file names, warnings) goes through html.escape.
"""
from __future__ import annotations

import base64
import html
import io
from datetime import datetime, timezone
from typing import Any, Mapping

import numpy as np

from ..io import counted, grouped
from .readers import ScoreRow

CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:2em auto;max-width:1150px;
     color:#222;padding:0 1em;line-height:1.4}
h1{font-size:1.6em;margin-bottom:.2em}h2{margin-top:1.6em;border-bottom:1px solid #ddd;padding-bottom:.2em}
table{border-collapse:collapse;margin:.6em 0;font-size:.92em}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:right;vertical-align:top}
th{background:#f3f3f3}td.t,th.t{text-align:left}
.note{background:#fff6dd;border:1px solid #e8d48a;padding:.5em .8em;border-radius:4px}
.muted{color:#595959;font-size:.9em}.plots{display:flex;flex-wrap:wrap;gap:1em}
.plots figure{margin:0}.plots img{max-width:540px;width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:.85em;color:#555}td.c{max-width:330px;text-align:left;font-size:.88em}
code{background:#f4f4f4;padding:0 .2em}
"""


def esc(x: Any) -> str:
    """Text from the inputs, escaped for HTML."""
    return html.escape("" if x is None else str(x), quote=True)


def page_start(title: str) -> str:
    """A report page's HTML up to its body: the title (escaped) and the shared CSS."""
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{esc(title)}</title><style>{CSS}</style></head><body>")


def made_by(command: str) -> str:
    """'Made by <command> on <now, UTC>', as each report's first line says it."""
    return f'Made by <code>{esc(command)}</code> on {esc(datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))}'


def fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return grouped(v)              # as the terminal's summaries write a count: 12,345
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def fmt_score(v: float) -> str:
    return f"{v:g}"


# ---------------------------------------------------------------------------------------- plots

def png(fig) -> str:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def figure(w: float = 5.2, h: float = 4.4):
    # A bare Figure drawn by FigureCanvasAgg (the Agg backend) leaves pyplot's global state alone.
    from matplotlib.figure import Figure
    return Figure(figsize=(w, h))


def scatter_png(gpt: list[float], local: list[float], what: str) -> str:
    fig = figure()
    ax = fig.add_subplot(111)
    rng = np.random.default_rng(0)
    g = np.asarray(gpt, dtype=float)
    l = np.asarray(local, dtype=float)
    jg = g + rng.uniform(-0.18, 0.18, len(g))
    jl = l + rng.uniform(-0.18, 0.18, len(l))
    ax.plot([0.5, 10.5], [0.5, 10.5], color="#bbb", lw=1, ls="--", zorder=1)
    ax.scatter(jg, jl, s=18, alpha=0.6, color="#2b6cb0", edgecolors="none", zorder=2)
    ax.set_xlim(0.5, 10.5)
    ax.set_ylim(0.5, 10.5)
    ax.set_xticks(range(1, 11))
    ax.set_yticks(range(1, 11))
    ax.set_xlabel(f"GPT {what}")
    ax.set_ylabel(f"local {what}")
    ax.set_title(f"{what.capitalize()}: local vs GPT (n={grouped(len(g))}, jittered)")
    ax.grid(alpha=0.2)
    return png(fig)


def heatmap_png(matrix: list[list[int]], what: str) -> str:
    fig = figure(5.4, 4.8)
    ax = fig.add_subplot(111)
    m = np.asarray(matrix, dtype=float)
    im = ax.imshow(m, cmap="Blues", origin="upper", aspect="equal")
    n = m.shape[0]
    labels = [str(i) for i in range(1, n + 1)]
    ax.set_xticks(range(n), labels)
    ax.set_yticks(range(n), labels)
    ax.set_xlabel(f"local {what}")
    ax.set_ylabel(f"GPT {what}")
    ax.set_title(f"{what.capitalize()} confusion (rows GPT, columns local)")
    top = m.max() if m.size else 0
    for i in range(n):
        for j in range(n):
            if m[i, j]:
                ax.text(j, i, f"{int(m[i, j])}", ha="center", va="center", fontsize=8,
                        color="white" if m[i, j] > top / 2 else "#123")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    return png(fig)


def recall_curve_png(curve: Mapping[str, list], recall_at: Mapping[str, Any], auc: float | None) -> str:
    fig = figure(5.6, 4.4)
    ax = fig.add_subplot(111)
    xs = [x for x, y in zip(curve["fraction"], curve["recall"]) if y is not None]
    ys = [y for y in curve["recall"] if y is not None]
    ax.plot([0, 1], [0, 1], color="#bbb", lw=1, ls="--", label="random")
    ax.plot(xs, ys, color="#c05621", lw=2, label="prefilter" + (f" (ROC AUC {auc:.3f})" if auc is not None else ""))
    for k, v in recall_at.items():
        if v is not None:
            f = float(k.rstrip("%")) / 100
            ax.plot([f], [v], "o", color="#c05621")
            ax.annotate(f"{v:.2f}", (f, v), textcoords="offset points", xytext=(4, -12), fontsize=8)
    return recall_png(fig, ax, "fraction of each day's papers kept", "Prefilter: recall vs fraction kept")


def recall_png(fig, ax, xlabel: str, title: str) -> str:
    """A plot of the recall of GPT's picks against the fraction kept, framed as every report draws one (this
    one's and ranker.evaluate's), as a base64 PNG."""
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("recall of GPT's picks")
    ax.set_title(title)
    ax.grid(alpha=0.2)
    ax.legend(loc="lower right", fontsize=8)
    return png(fig)


# ---------------------------------------------------------------------------------------- HTML

def table(header: list[str], rows: list[list[str]], left: int = 1) -> str:
    """header/rows are already-escaped HTML snippets; the first `left` columns are left-aligned."""
    th = "".join(f'<th class="t">{h}</th>' if i < left else f"<th>{h}</th>" for i, h in enumerate(header))
    body = []
    for r in rows:
        body.append("<tr>" + "".join(f'<td class="t">{c}</td>' if i < left else f"<td>{c}</td>"
                                     for i, c in enumerate(r)) + "</tr>")
    return f"<table><thead><tr>{th}</tr></thead><tbody>{''.join(body)}</tbody></table>"


_AGREE_KEYS = ("n", "spearman", "kendall", "mae", "exact", "within1", "mean_gpt", "mean_local", "bias")
_SEL_KEYS = ("n", "gpt_picks", "local_picks", "tp", "fp", "fn", "precision", "recall", "f1")


def _agreement_table(m: Mapping[str, Any]) -> str:
    rows = [[esc(what)] + [esc(fmt(m[what].get(k))) for k in _AGREE_KEYS] for what in ("relevance", "novelty")]
    return table(["score"] + list(_AGREE_KEYS), rows)


def _selection_table(sel: Mapping[str, Any]) -> str:
    names = {"common": "papers both scored", "listing": "whole listing"}
    rows = [[esc(names.get(k, k))] + [esc(fmt(v.get(c))) for c in _SEL_KEYS] for k, v in sel.items()]
    return table(["over"] + list(_SEL_KEYS), rows)


def _paper_link(pid: str) -> str:
    return f'<a href="https://arxiv.org/abs/{esc(pid)}">{esc(pid)}</a>'


def _pairs_table(ids: list[str], gpt: Mapping[str, ScoreRow], local: Mapping[str, ScoreRow]) -> str:
    rows = []
    for i in ids:
        g, l = gpt.get(i), local.get(i)
        title = (g.title if g and g.title else (l.title if l else "")) or ""
        rows.append([_paper_link(i), esc(title),
                     esc(f"{fmt_score(g.relevance)}/{fmt_score(g.novelty)}") if g else "–",
                     esc(f"{fmt_score(l.relevance)}/{fmt_score(l.novelty)}") if l else "–",
                     f'<span>{esc(g.comment)}</span>' if g else "", f'<span>{esc(l.comment)}</span>' if l else ""])
    html_rows = []
    for r in rows:
        html_rows.append("<tr>" + f'<td class="t">{r[0]}</td><td class="c">{r[1]}</td><td>{r[2]}</td>'
                         f'<td>{r[3]}</td><td class="c">{r[4]}</td><td class="c">{r[5]}</td>' + "</tr>")
    head = ('<tr><th class="t">id</th><th class="t">title</th><th>GPT R/N</th><th>local R/N</th>'
            '<th class="t">GPT comment</th><th class="t">local comment</th></tr>')
    return f"<table><thead>{head}</thead><tbody>{''.join(html_rows)}</tbody></table>"


def _days_table(days: Mapping[str, Any]) -> str:
    header = ["day", "GPT", "local", "common", "rel. Spearman", "rel. MAE", "nov. Spearman", "nov. MAE",
              "F1 (common)", "F1 (listing)", "prefilter AUC"]
    rows = []
    for d, m in days.items():
        rows.append([esc(d), esc(fmt(m["n_gpt"])), esc(fmt(m["n_local"])), esc(fmt(m["n_common"])),
                     esc(fmt(m["relevance"]["spearman"])), esc(fmt(m["relevance"]["mae"])),
                     esc(fmt(m["novelty"]["spearman"])), esc(fmt(m["novelty"]["mae"])),
                     esc(fmt(m["selection"]["common"]["f1"])),
                     esc(fmt(m["selection"].get("listing", {}).get("f1"))),
                     esc(fmt(m.get("prefilter", {}).get("roc_auc")))])
    return table(header, rows)


def img(b64: str, alt: str, caption: str) -> str:
    return (f'<figure><img alt="{esc(alt)}" src="data:image/png;base64,{b64}">'
            f"<figcaption>{esc(caption)}</figcaption></figure>")


def render_html(metrics: Mapping[str, Any], gpt: Mapping[str, ScoreRow], local: Mapping[str, ScoreRow],
                *, max_rows: int = 30) -> str:
    common = sorted(set(gpt) & set(local))
    th = metrics["thresholds"]
    mr, mn = th["min_relevance"], th["min_novelty"]
    parts: list[str] = []
    add = parts.append
    add(page_start("ranker compare: local vs GPT"))
    add("<h1>Local model vs GPT</h1>")
    add(f'<p class="muted">{made_by("ranker compare")}. A pick is RELEVANCE &ge; {esc(fmt_score(mr))} '
        f"and NOVELTY &ge; {esc(fmt_score(mn))}.</p>")
    if metrics.get("message"):
        add(f'<p class="note">{esc(metrics["message"])}</p>')

    counts = [["GPT judgements", esc(fmt(metrics["n_gpt"]))], ["local judgements", esc(fmt(metrics["n_local"]))],
              ["papers both judged", esc(fmt(metrics["n_common"]))]]
    if "n_papers" in metrics:
        counts += [["papers in the listing", esc(fmt(metrics["n_papers"]))],
                   ["GPT judgements outside the listing", esc(fmt(metrics["gpt_not_in_papers"]))],
                   ["local judgements outside the listing", esc(fmt(metrics["local_not_in_papers"]))]]
    add("<h2>Counts</h2>" + table(["", "n"], counts))
    outside = _outside_listing(metrics)
    if outside:
        add(f'<p class="note">{esc(outside)}</p>')
    scorers = _mixed_scorers(metrics)
    if scorers:
        add(f'<p class="note">{esc(scorers)}</p>')
    for key, what in (("papers_days_skipped", "Listing days left out (not judged by both sides)"),
                      ("prefilter_days_skipped", "Prefilter days left out (GPT judged none of their papers)"),
                      ("gpt_days_without_rows", "Days GPT's files cover with no paper (nothing picked)"),
                      ("local_days_without_rows", "Days the local files cover with no paper (nothing picked)")):
        if metrics.get(key):
            add(f'<p class="note">{esc(what)}: {esc(", ".join(metrics[key]))}</p>')

    add("<h2>Score agreement (papers both judged)</h2>")
    add('<p class="muted">Spearman and Kendall (tau-b) rank correlations, mean absolute error, share of exact '
        "matches and of matches within one point; bias = mean(local − GPT). GPT's digest lists only its picks, "
        "so its scores span a narrow range and correlations over it are modest by construction.</p>")
    add(_agreement_table(metrics))

    add("<h2>Selection</h2>")
    add("<p class=\"muted\">Local picks judged against GPT's picks under the same cut-offs. Over the whole listing, a "
        "paper GPT did not list counts as not picked by GPT, and one the local model did not score as not "
        "picked locally.</p>")
    add(_selection_table(metrics["selection"]))

    prefilter = metrics.get("prefilter")
    if prefilter:
        add("<h2>Prefilter</h2>")
        rows = [[esc(f"recall of GPT's picks at {k} kept"), esc(fmt(v))] for k, v in prefilter["recall_at"].items()]
        rows += [["ROC AUC of prefilter_score vs GPT-picked", esc(fmt(prefilter["roc_auc"]))],
                 ["share the prefilter kept (kept=true)", esc(fmt(prefilter["kept_fraction"]))],
                 ["recall of GPT's picks among kept=true", esc(fmt(prefilter["recall_at_kept"]))],
                 ["prefilter rows / GPT picks among them",
                  esc(f"{fmt(prefilter['n'])} / {fmt(prefilter['gpt_picks'])}")],
                 ["GPT picks missing from the prefilter file", esc(fmt(prefilter["gpt_picks_not_in_prefilter"]))]]
        add(table(["", "value"], rows))

    if metrics.get("days"):
        add("<h2>Per day</h2>")
        add('<p class="muted">Each day with its own rows: a paper listed on several days counts on each, with the '
            "judgements of that day (one without a day on every day its paper is listed); the figures above count "
            "it once.</p>")
        add(_days_table(metrics["days"]))

    add("<h2>Plots</h2><div class=\"plots\">")
    if common:
        add(img(scatter_png([gpt[i].relevance for i in common], [local[i].relevance for i in common], "relevance"),
                 "relevance scatter", "Relevance, one dot per paper both judged; the dashed line is agreement."))
        add(img(scatter_png([gpt[i].novelty for i in common], [local[i].novelty for i in common], "novelty"),
                 "novelty scatter", "Novelty, one dot per paper both judged."))
        add(img(heatmap_png(metrics["confusion_relevance"], "relevance"), "relevance confusion heatmap",
                 "How often GPT's relevance (row) met each local relevance (column)."))
        add(img(heatmap_png(metrics["confusion_novelty"], "novelty"), "novelty confusion heatmap",
                 "How often GPT's novelty (row) met each local novelty (column)."))
    if prefilter and prefilter["curve"]["fraction"] and prefilter["gpt_picks"]:
        add(img(recall_curve_png(prefilter["curve"], prefilter["recall_at"], prefilter["roc_auc"]), "prefilter recall curve",
                 "Share of GPT's picks the prefilter keeps when each day keeps its top fraction."))
    if not common and not (prefilter and prefilter["gpt_picks"]):
        add('<p class="muted">No plots: no paper is in both inputs.</p>')
    add("</div>")

    if common:
        diff = sorted(common, key=lambda i: (-(abs(gpt[i].relevance - local[i].relevance)
                                                + abs(gpt[i].novelty - local[i].novelty)), i))
        diff = [i for i in diff if (gpt[i].relevance, gpt[i].novelty) != (local[i].relevance, local[i].novelty)]
        add(f"<h2>Largest disagreements</h2><p class=\"muted\">Up to {max_rows} papers, by |Δrelevance| + "
            "|Δnovelty|.</p>")
        add(_pairs_table(diff[:max_rows], gpt, local) if diff else "<p>None: every score matches.</p>")
    # the table's misses and false picks (over the listing's judged days, or the papers both judged)
    missed = list(metrics.get("gpt_picks_missed", []))
    if missed:
        add(f"<h2>GPT picks the local model did not pick</h2><p class=\"muted\">{counted(len(missed), 'paper')}"
            f"{'; the first ' + grouped(max_rows) if len(missed) > max_rows else ''}.</p>")
        add(_pairs_table(missed[:max_rows], gpt, local))
    extra = list(metrics.get("local_picks_extra", []))
    if extra:
        add(f"<h2>Local picks GPT did not pick</h2><p class=\"muted\">{counted(len(extra), 'paper')}"
            f"{'; the first ' + grouped(max_rows) if len(extra) > max_rows else ''}.</p>")
        add(_pairs_table(extra[:max_rows], gpt, local))

    add("<h2>Inputs</h2>")
    # '-' (metrics.json's record of stdin, the value given) alone reads as "none" (as in the run index): say stdin
    for side, key in (("GPT", "gpt_files"), ("local", "local_files"), ("papers", "papers_files"),
                      ("prefilter", "prefilter_files")):
        files = metrics.get(key)
        if files:
            add(f"<p><b>{esc(side)}</b>: " + ", ".join(f"<code>{esc(f)}</code>" + (" (stdin)" if f == "-" else "")
                                                       for f in files) + "</p>")
    warns = metrics.get("warnings") or []
    if warns:
        add(f"<h2>Warnings ({esc(fmt(metrics.get('n_warnings', len(warns))))})</h2><ul>")
        add("".join(f"<li><code>{esc(w)}</code></li>" for w in warns))
        add("</ul>")
    add("</body></html>")
    return "\n".join(parts)


def _mixed_scorers(metrics: Mapping[str, Any]) -> str:
    """The local days' models and prompts, when their run manifests name several (compare.local_scorers)."""
    groups = metrics.get("local_scorers") or []
    if len(groups) < 2:
        return ""

    def days(d: list[str]) -> str:
        return d[0] if len(d) == 1 else f"{d[0]}..{d[-1]} ({len(d)} days)"
    parts = [f"{g['model']} with prompt {g['prompt_hash'][:12] or '?'} on {days(g['days'])}" for g in groups]
    return (f"the local days were scored by {len(groups)} model and prompt pairs (their run manifests), "
            f"pooled here: {'; '.join(parts)}")


def _outside_listing(metrics: Mapping[str, Any]) -> str:
    """What a listing of another day (or one missing GPT's papers) does to the figures, said where it happens: GPT's
    judgements outside it count in none of the listing's figures, so its picks there are not missed by anyone."""
    n = metrics.get("gpt_not_in_papers")
    if not n:
        return ""
    return (f"{grouped(n)} of GPT's {grouped(metrics['n_gpt'])} judgements are not in the listing and count in none "
            "of its figures: is the listing of the same day?")


# ---------------------------------------------------------------------------------------- terminal

def summary_markdown(metrics: Mapping[str, Any]) -> str:
    """A short Markdown summary for the terminal."""
    th = metrics["thresholds"]
    lines = [f"## ranker compare: {grouped(metrics['n_common'])} papers both judged "
             f"(GPT {grouped(metrics['n_gpt'])}, local {grouped(metrics['n_local'])})", ""]
    if metrics.get("message"):
        lines += [f"> {metrics['message']}", ""]
    lines += ["| score | Spearman | Kendall | MAE | exact | within 1 | bias |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    for what in ("relevance", "novelty"):
        m = metrics[what]
        lines.append(f"| {what} | {fmt(m['spearman'])} | {fmt(m['kendall'])} | {fmt(m['mae'])} | "
                     f"{fmt(m['exact'])} | {fmt(m['within1'])} | {fmt(m['bias'])} |")
    lines += ["", f"Picks (RELEVANCE >= {fmt_score(th['min_relevance'])}, NOVELTY >= {fmt_score(th['min_novelty'])}):",
              "", "| over | n | GPT picks | local picks | precision | recall | F1 |", "|---|---:|---:|---:|---:|---:|---:|"]
    for k, s in metrics["selection"].items():
        lines.append(f"| {k} | {fmt(s['n'])} | {fmt(s['gpt_picks'])} | {fmt(s['local_picks'])} | "
                     f"{fmt(s['precision'])} | {fmt(s['recall'])} | {fmt(s['f1'])} |")
    for key, what in (("papers_days_skipped", "listing days left out (not judged by both sides)"),
                      ("prefilter_days_skipped", "prefilter days left out (GPT judged none of their papers)"),
                      ("gpt_days_without_rows", "days GPT's files cover with no paper (nothing picked)"),
                      ("local_days_without_rows", "days the local files cover with no paper (nothing picked)")):
        if metrics.get(key):
            lines += ["", f"Note: {what}: {', '.join(metrics[key])}"]
    outside = _outside_listing(metrics)
    if outside:
        lines += ["", f"Note: {outside}"]
    scorers = _mixed_scorers(metrics)
    if scorers:
        lines += ["", f"Note: {scorers}"]
    prefilter = metrics.get("prefilter")
    if prefilter:
        at = ", ".join(f"{k}: {fmt(v)}" for k, v in prefilter["recall_at"].items())
        lines += ["", f"Prefilter recall of GPT's picks by share kept: {at}; ROC AUC {fmt(prefilter['roc_auc'])}"]
    if metrics.get("days"):
        lines += ["", "| day | common | rel. Spearman | nov. Spearman | F1 |", "|---|---:|---:|---:|---:|"]
        for d, m in metrics["days"].items():
            f1 = m["selection"].get("listing", m["selection"]["common"])["f1"]
            lines.append(f"| {d} | {fmt(m['n_common'])} | {fmt(m['relevance']['spearman'])} | "
                         f"{fmt(m['novelty']['spearman'])} | {fmt(f1)} |")
    if metrics.get("n_warnings"):
        lines += ["", f"{grouped(metrics['n_warnings'])} input warnings (see metrics.json / report.html)."]
    return "\n".join(lines)

