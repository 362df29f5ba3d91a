"""Small plots as inline SVG, drawn here in Python (no chart library, no script).

Every text that reaches the SVG goes through `esc`; the functions return markup ready to embed. Colours are
presentation attributes (not style attributes), so a strict Content-Security-Policy leaves them alone.
"""
from __future__ import annotations

import html
import math
from typing import Sequence

# every text colour is at least 4.5:1 on white (WCAG AA; #777 was 4.48), as the stylesheet's are
INK, MUTED, GRID = "#222", "#656d76", "#e4e4e4"
KEPT, DROPPED, PICK = "#2b6cb0", "#c3d3e6", "#ad4a1b"


def esc(x) -> str:
    return html.escape("" if x is None else str(x), quote=True)


def _num(v: float) -> str:
    return f"{v:.1f}".rstrip("0").rstrip(".") if abs(v - round(v)) > 1e-9 else str(int(round(v)))


def _svg(w: int, h: int, label: str, body: list[str]) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="plot" viewBox="0 0 {w} {h}" width="{w}" height="{h}" '
            f'role="img" aria-label="{esc(label)}"><title>{esc(label)}</title>' + "".join(body) + "</svg>")


def _text(x: float, y: float, s, *, anchor: str = "start", size: int = 11, fill: str = INK, extra: str = "") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="{size}" fill="{fill}"{extra}>'
            f"{esc(s)}</text>")


def _luminance(rgb: tuple[int, int, int]) -> float:
    def f(c: float) -> float:
        c /= 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4
    return 0.2126 * f(rgb[0]) + 0.7152 * f(rgb[1]) + 0.0722 * f(rgb[2])


def _text_on(rgb: tuple[int, int, int]) -> str:
    """The colour a text on a fill of `rgb` is read in: white where that is at least 4.5:1, else the ink, else black
    (a middle blue is under 4.5:1 with both white and the ink: white counts on the grid's were down to 2.3:1)."""
    lum = _luminance(rgb)
    if 1.05 / (lum + 0.05) >= 4.5:
        return "#fff"
    return INK if (lum + 0.05) / (_luminance((0x22, 0x22, 0x22)) + 0.05) >= 4.5 else "#000"     # 0x22: INK


def _nice_step(span: float, n: int = 5) -> float:
    raw = span / max(1, n)
    if raw <= 0:
        return 1.0
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * mag:
            return m * mag
    return 10 * mag


def score_histogram(scores: Sequence[float], kept: Sequence[bool], *, bins: int = 30) -> str:
    """The day's prefilter scores, kept papers in the darker colour, and a dashed line where the keep cut-off
    falls (between the lowest kept and the highest dropped score)."""
    w, h, left, right, top, bottom = 560, 210, 44, 12, 26, 40
    label = "Prefilter scores of the day's papers; the dashed line is the keep cut-off"
    if not scores:
        return _svg(w, 60, label, [_text(10, 30, "No prefilter scores for this day.", fill=MUTED)])
    lo, hi = float(min(scores)), float(max(scores))
    if hi - lo < 1e-12:
        hi = lo + 1.0
    width = (hi - lo) / bins
    counts_k, counts_d = [0] * bins, [0] * bins
    for s, k in zip(scores, kept):
        b = min(bins - 1, int((float(s) - lo) / width))
        (counts_k if k else counts_d)[b] += 1
    ymax = max(a + b for a, b in zip(counts_k, counts_d)) or 1
    pw, ph = w - left - right, h - top - bottom

    def x(v: float) -> float:
        return left + (v - lo) / (hi - lo) * pw

    def y(c: float) -> float:
        return top + ph - c / ymax * ph

    body = [_text(left, 15, "Prefilter score: papers kept for the LLM (dark) and the rest", size=12)]
    step = _nice_step(ymax, 4)
    t = 0.0
    while t <= ymax + 1e-9:
        body.append(f'<line x1="{left}" x2="{w - right}" y1="{y(t):.1f}" y2="{y(t):.1f}" stroke="{GRID}"/>')
        body.append(_text(left - 5, y(t) + 4, _num(t), anchor="end", size=10, fill=MUTED))
        t += step
    bw = pw / bins
    for i in range(bins):
        x0 = left + i * bw
        for c0, c1, colour in ((0, counts_d[i], DROPPED), (counts_d[i], counts_d[i] + counts_k[i], KEPT)):
            if c1 > c0:
                body.append(f'<rect x="{x0 + 0.5:.1f}" y="{y(c1):.1f}" width="{max(bw - 1, 0.5):.1f}" '
                            f'height="{y(c0) - y(c1):.1f}" fill="{colour}"/>')
    xs = _nice_step(hi - lo, 5)
    t = math.ceil(lo / xs) * xs
    while t <= hi + 1e-12:
        body.append(_text(x(t), h - bottom + 14, f"{t:.3g}", anchor="middle", size=10, fill=MUTED))
        t += xs
    body.append(_text(left + pw / 2, h - 8, "prefilter score", anchor="middle", size=11, fill=MUTED))
    ks = [float(s) for s, k in zip(scores, kept) if k]
    ds = [float(s) for s, k in zip(scores, kept) if not k]
    if ks and ds:
        lowest = min(ks)
        below = [d for d in ds if d <= lowest]
        cut = (lowest + max(below)) / 2 if below else lowest
        cx = x(cut)
        body.append(f'<line class="cutoff" x1="{cx:.1f}" x2="{cx:.1f}" y1="{top - 4}" y2="{top + ph}" stroke="{PICK}" '
                    f'stroke-width="1.5" stroke-dasharray="5,3"/>')
        body.append(_text(cx + 4, top + 8, f"kept: {len(ks)} of {len(scores)}", size=10, fill=PICK))
    return _svg(w, h, label, body)


def score_grid(pairs: Sequence[tuple[int, int]], min_relevance: int, min_novelty: int) -> str:
    """How many scored papers got each (RELEVANCE, NOVELTY); the outlined corner is where the digest's picks are."""
    cell, left, top = 24, 48, 30
    w, h = left + 10 * cell + 150, top + 10 * cell + 44
    label = (f"LLM scores of the day's scored papers; picks need relevance >= {min_relevance} "
             f"and novelty >= {min_novelty}")
    counts = [[0] * 10 for _ in range(10)]
    for r, n in pairs:
        if 1 <= r <= 10 and 1 <= n <= 10:
            counts[n - 1][r - 1] += 1
    top_count = max((max(row) for row in counts), default=0) or 1
    body = [_text(left, 16, f"LLM scores of the {len(pairs)} papers scored", size=12)]
    for n in range(10, 0, -1):
        yy = top + (10 - n) * cell
        body.append(_text(left - 6, yy + cell * 0.65, n, anchor="end", size=10, fill=MUTED))
        for r in range(1, 11):
            xx = left + (r - 1) * cell
            c = counts[n - 1][r - 1]
            shade = 0.0 if c == 0 else 0.15 + 0.85 * c / top_count
            rgb = (int(255 - shade * 212), int(255 - shade * 147), int(255 - shade * 79))
            fill = "#f7f7f7" if c == 0 else "rgb({},{},{})".format(*rgb)
            body.append(f'<rect x="{xx}" y="{yy}" width="{cell - 1}" height="{cell - 1}" fill="{fill}"/>')
            if c:
                body.append(_text(xx + cell / 2 - 0.5, yy + cell * 0.66, c, anchor="middle", size=9,
                                  fill=_text_on(rgb)))
    for r in range(1, 11):
        body.append(_text(left + (r - 0.5) * cell, top + 10 * cell + 13, r, anchor="middle", size=10, fill=MUTED))
    body.append(_text(left + 5 * cell, top + 10 * cell + 30, "relevance", anchor="middle", fill=MUTED))
    body.append(_text(14, top + 5 * cell, "novelty", anchor="middle", fill=MUTED,
                      extra=f' transform="rotate(-90 14 {top + 5 * cell})"'))
    if 1 <= min_relevance <= 10 and 1 <= min_novelty <= 10:
        px = left + (min_relevance - 1) * cell - 1
        py = top - 1
        pw = (11 - min_relevance) * cell + 1
        ph = (11 - min_novelty) * cell + 1
        body.append(f'<rect class="cutoff" x="{px}" y="{py}" width="{pw}" height="{ph}" fill="none" stroke="{PICK}" '
                    f'stroke-width="2"/>')
        picks = sum(1 for r, n in pairs if r >= min_relevance and n >= min_novelty)
        lx = left + 10 * cell + 10
        body.append(_text(lx, top + 12, "picks:", size=11, fill=PICK))
        body.append(_text(lx, top + 27, f"relevance \u2265 {min_relevance}", size=11, fill=PICK))
        body.append(_text(lx, top + 42, f"novelty \u2265 {min_novelty}", size=11, fill=PICK))
        body.append(_text(lx, top + 60, f"{picks} papers here", size=11, fill=INK))
    return _svg(w, h, label, body)


def topic_bars(items: Sequence[tuple[str, int]], title: str) -> str:
    """Horizontal bars, one per (name, count), largest first."""
    items = sorted(items, key=lambda kv: (-kv[1], kv[0]))
    row, left, right, top = 22, 250, 50, 28
    w = 620
    h = top + row * max(1, len(items)) + 10
    label = title
    body = [_text(10, 16, title, size=12)]
    if not items:
        body.append(_text(10, top + 14, "Nothing to show.", fill=MUTED))
        return _svg(w, top + 30, label, body)
    mx = max(c for _, c in items) or 1
    for i, (name, c) in enumerate(items):
        yy = top + i * row
        shown = name if len(name) <= 38 else name[:37] + "\u2026"
        body.append(_text(left - 8, yy + row * 0.65, shown or "(no topic)", anchor="end", size=11,
                          extra=f' data-full="{esc(name)}"'))
        bw = (w - left - right) * c / mx
        body.append(f'<rect x="{left}" y="{yy + 3}" width="{max(bw, 1):.1f}" height="{row - 7}" fill="{KEPT}"/>')
        body.append(_text(left + bw + 5, yy + row * 0.65, c, size=11, fill=MUTED))
    return _svg(w, h, label, body)
