"""`ranker eval`: replay a history of GPT digests through the local pipeline, walk-forward, and measure each
day against GPT's picks, so a user sees on their own history whether to switch.

    from ranker.evaluate import evaluate_history
    res = evaluate_history("~/gpt-digests", "eval/", settings, store=store, calibrate=True, llm=True)
    res.overall["prefilter"]["keep95"], res.overall["llm"]["digest"]["f1"], res.files["html"]

Submodules: replay (which days, the loop through ranker.steps, eval.json), figures (the numbers, pure),
report (report.html from ranker.compare's blocks, the terminal summary).
"""
from __future__ import annotations

from .replay import DayEval, EvalResult, choose_days, evaluate_history, read_eval_history
from .report import render_html, summary_markdown

__all__ = ["evaluate_history", "read_eval_history", "EvalResult", "DayEval", "choose_days", "render_html",
           "summary_markdown"]
