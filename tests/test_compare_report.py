"""report.html of `ranker compare` (self-contained, escaped, renders in headless Chromium) and the CLI."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from ranker.compare import read_scores, run_compare

from conftest import DAYS, SEED_DIGEST as SEED, ranker
EVIL = '<script>alert("x")</script><img src="https://evil.example/p.png">'



def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """One comparison over all five days with a listing and a prefilter file; untrusted text in comments."""
    tmp = tmp_path_factory.mktemp("compare")
    listing = [d for f in sorted(DAYS.glob("*/listing.jsonl")) for d in _jsonl(f)]
    gpt = {d["id"]: d for f in sorted(DAYS.glob("*/gpt_scores.jsonl")) for d in _jsonl(f)}
    with (tmp / "local.jsonl").open("w") as lo, (tmp / "ranked.jsonl").open("w") as pf:
        for k, d in enumerate(listing):
            picked = d["id"] in gpt
            r = (gpt[d["id"]]["RELEVANCE"] - k % 3) if picked else 1 + k % 9
            n = (gpt[d["id"]]["NOVELTY"] - k % 2) if picked else 2 + k % 7
            lo.write(json.dumps({"ARXIVID": d["id"], "COMMENT": f"{EVIL} {k}", "RELEVANCE": r, "NOVELTY": n}) + "\n")
            score = (0.5 if picked else 0.0) + (k % 17) / 40
            pf.write(json.dumps({"id": d["id"], "date": d["date"], "prefilter_score": score, "kept": score > 0.4,
                                 "title": d["title"]}) + "\n")
    out = tmp / "out"
    metrics = run_compare(str(DAYS / "*" / "gpt_scores.jsonl"), tmp / "local.jsonl", out, papers=DAYS,
                          prefilter=tmp / "ranked.jsonl")
    return out, metrics


class _Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.imgs: list[dict] = []
        self.resources: list[str] = []   # anything the browser would fetch
        self.scripts = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.imgs.append(a)
        if tag == "script":
            self.scripts += 1
        for key in ("src", "srcset", "data", "poster"):
            if a.get(key):
                self.resources.append(a[key])
        if tag == "link" and a.get("href"):
            self.resources.append(a["href"])


def test_report_is_self_contained_and_escaped(report):
    out, metrics = report
    text = (out / "report.html").read_text()
    p = _Collect()
    p.feed(text)
    assert len(p.imgs) == 5          # 2 scatters, 2 heatmaps, the prefilter recall curve
    assert all(r.startswith("data:image/png;base64,") for r in p.resources), p.resources
    assert p.scripts == 0
    assert "@import" not in text and "url(" not in text
    # the untrusted comment shows as text, never as markup
    assert "<script>alert" not in text and 'src="https://evil.example' not in text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in text
    for h in ("Score agreement", "Selection", "Prefilter", "Per day", "Largest disagreements"):
        assert h in text
    assert set(metrics["prefilter"]["recall_at"]) == {"10%", "25%", "40%", "60%"}
    # every pick was given a prefilter score above every other paper's: a perfect ranking, exactly
    assert metrics["prefilter"]["roc_auc"] == pytest.approx(1.0)
    assert metrics["prefilter"]["recall_at"]["40%"] == pytest.approx(1.0)


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return None


@pytest.mark.skipif(_chromium() is None, reason="needs the chromium browser (Debian: apt-get install chromium)")
def test_report_images_load_in_headless_chromium(report, tmp_path):
    """Open a copy of the report with a probe script appended; every <img> must have decoded (naturalWidth > 0)."""
    out, _ = report
    probe = ("<script>window.addEventListener('load', function () {"
             "var imgs = Array.prototype.slice.call(document.images);"
             "var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; });"
             "var d = document.createElement('pre'); d.id = 'probe';"
             "d.textContent = 'PROBE images=' + imgs.length + ' loaded=' + ok.length + ' widths=' +"
             " imgs.map(function (i) { return i.naturalWidth; }).join(',');"
             "document.body.appendChild(d); });</script>")
    page = tmp_path / "probe.html"
    page.write_text((out / "report.html").read_text().replace("</body>", probe + "</body>"))
    cmd = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           "--no-first-run", "--no-default-browser-check", f"--user-data-dir={tmp_path / 'profile'}",
           "--virtual-time-budget=10000", "--dump-dom", page.as_uri()]
    env = {**os.environ, "HOME": str(tmp_path)}
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    m = re.search(r"PROBE images=(\d+) loaded=(\d+) widths=([\d,]*)", res.stdout)
    assert m, f"no probe output; chromium rc={res.returncode}, stderr tail: {res.stderr[-800:]}"
    images, loaded = int(m.group(1)), int(m.group(2))
    assert images == 5 and loaded == images, m.group(0)
    assert all(int(w) > 100 for w in m.group(3).split(","))


# ------------------------------------------------------------------------------------------ CLI

def test_cli_prints_markdown_summary_and_writes_files(tmp_path):
    gpt = read_scores(SEED)
    local = tmp_path / "local.jsonl"
    local.write_text("".join(json.dumps({"ARXIVID": i, "COMMENT": "", "RELEVANCE": int(r.relevance) - 1,
                                         "NOVELTY": int(r.novelty)}) + "\n" for i, r in gpt.items())
                     + "{broken\n")
    res = ranker("compare", "--gpt", str(SEED), "--local", str(local), "--out", str(tmp_path / "out"),
                  "--min-relevance", "8", "--min-novelty", "7")
    assert res.returncode == 0, res.stderr
    assert "## ranker compare: 47 papers both judged" in res.stdout
    assert "| relevance |" in res.stdout and "| novelty |" in res.stdout
    # stdout is the Markdown summary alone (`ranker compare ... > summary.md`); where the files went is a note
    assert "Wrote" not in res.stdout and f"{tmp_path / 'out' / 'metrics.json'}" in res.stderr
    assert f"warning: {local}:48: skipped line" in res.stderr
    m = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert m["n_common"] == 47 and m["relevance"]["mae"] == 1.0 and m["relevance"]["exact"] == 0.0
    assert m["n_warnings"] == 1 and (tmp_path / "out" / "report.html").stat().st_size > 10_000


def test_cli_missing_file_is_one_line_error(tmp_path):
    res = ranker("compare", "--gpt", str(tmp_path / "missing.md"), "--local", str(SEED), "--out", str(tmp_path))
    assert res.returncode == 1
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --gpt ") and "missing.md" in lines[0], res.stderr
    assert "Traceback" not in res.stderr


def test_cli_help_has_an_example():
    res = ranker("compare", "--help")
    assert res.returncode == 0
    assert "Example:\n    ranker compare --gpt" in res.stdout and "--prefilter" in res.stdout


def test_cli_unquoted_glob_explains_itself(tmp_path):
    files = [str(p) for p in sorted(DAYS.glob("*/gpt_scores.jsonl"))]
    res = ranker("compare", "--gpt", *files, "--local", str(SEED), "--out", str(tmp_path))
    assert res.returncode == 1
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "quote a glob" in lines[0], res.stderr
    # (a quoted glob is expanded by ranker itself: see test_directory_and_glob_read_several_days)


def _listed(html_text: str, heading: str) -> list[str]:
    """The arXiv ids in the report's section under <h2>heading</h2> (none when the section is absent)."""
    if f"<h2>{heading}</h2>" not in html_text:
        return []
    section = html_text.split(f"<h2>{heading}</h2>", 1)[1].split("<h2>", 1)[0]
    return re.findall(r'<td class="t"><a href="https://arxiv.org/abs/[^"]+">([^<]+)</a></td>', section)


def test_missed_and_extra_lists_are_the_selection_tables_papers(tmp_path):
    """GPT judged one day of five, the local model all five: the report's lists of misses and false picks hold
    exactly the listing table's fn and fp papers (its judged day), not local picks on days GPT never saw."""
    gpt = {d["id"]: d for d in _jsonl(DAYS / "2025-06-23" / "gpt_scores.jsonl")}
    listing = [d for f in sorted(DAYS.glob("*/listing.jsonl")) for d in _jsonl(f)]
    with (tmp_path / "local.jsonl").open("w") as f:
        for k, d in enumerate(listing):
            r, n = (9, 8) if k % 4 == 0 else (3, 2)          # picks every fourth paper of every day
            f.write(json.dumps({"ARXIVID": d["id"], "COMMENT": "", "RELEVANCE": r, "NOVELTY": n}) + "\n")
    m = run_compare(SEED, tmp_path / "local.jsonl", tmp_path / "out", papers=DAYS)
    day = {d["id"] for d in listing if d["date"] == "2025-06-23"}
    local_picks = {d["id"] for k, d in enumerate(listing) if k % 4 == 0}
    want_missed, want_extra = sorted(set(gpt) - local_picks), sorted((local_picks & day) - set(gpt))
    sel = m["selection"]["listing"]
    assert (sel["fn"], sel["fp"]) == (len(want_missed), len(want_extra))
    text = (tmp_path / "out" / "report.html").read_text()
    assert f"<h2>Local picks GPT did not pick</h2><p class=\"muted\">{len(want_extra)} papers;" in text
    assert f"<h2>GPT picks the local model did not pick</h2><p class=\"muted\">{len(want_missed)} papers" in text
    assert _listed(text, "Local picks GPT did not pick") == want_extra[:30]
    assert _listed(text, "GPT picks the local model did not pick") == want_missed[:30]
    assert m["gpt_picks_missed"] == want_missed and m["local_picks_extra"] == want_extra


def test_cli_cut_offs_come_from_the_settings_and_are_checked(tmp_path):
    # [digest] min_relevance / min_novelty of ranker.toml are the cut-offs of `ranker run`: compare's picks use
    # them too when no flag is given, and a cut-off outside 1-10 is an error naming its flag
    (tmp_path / "ranker.toml").write_text("[digest]\nmin_relevance = 3\nmin_novelty = 2\n")
    res = ranker("compare", "--gpt", str(SEED), "--local", str(SEED), "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    m = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert m["thresholds"] == {"min_relevance": 3, "min_novelty": 2}
    res = ranker("compare", "--gpt", str(SEED), "--local", str(SEED), "--out", str(tmp_path / "out"),
                 "--min-novelty", "5", cwd=tmp_path)
    m = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert res.returncode == 0 and m["thresholds"] == {"min_relevance": 3, "min_novelty": 5}
    for bad in ("-5", "11", "nan"):
        res = ranker("compare", "--gpt", str(SEED), "--local", str(SEED), "--out", str(tmp_path / "bad"),
                     "--min-relevance", bad, cwd=tmp_path)
        assert res.returncode == 1 and res.stderr.startswith("error: --min-relevance: "), res.stderr
        assert len(res.stderr.splitlines()) == 1 and not (tmp_path / "bad").exists()


def test_a_failed_write_leaves_the_earlier_metrics_and_report_together(tmp_path):
    """metrics.json and report.html are one set: when report.html cannot be written (here a folder has its name),
    the command is one error line naming it, and metrics.json is still the earlier run's, not a new one beside
    a report of another run."""
    out = tmp_path / "out"
    assert ranker("compare", "--gpt", str(SEED), "--local", str(SEED), "--out", str(out)).returncode == 0
    before = (out / "metrics.json").read_bytes()
    assert json.loads(before)["relevance"]["mae"] == 0.0
    local = tmp_path / "local.jsonl"
    local.write_text("".join(json.dumps({"ARXIVID": i, "RELEVANCE": 1, "NOVELTY": 1}) + "\n"
                             for i in read_scores(SEED)))
    (out / "report.html").unlink()
    (out / "report.html").mkdir()
    res = ranker("compare", "--gpt", str(SEED), "--local", str(local), "--out", str(out))
    assert res.returncode == 1
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "report.html" in lines[0], res.stderr
    assert (out / "metrics.json").read_bytes() == before
    assert sorted(p.name for p in out.iterdir()) == ["metrics.json", "report.html"]      # no temporary left


def test_gpt_judgements_outside_the_listing_are_said_not_silently_dropped(tmp_path):
    """GPT's own JSONL carries no day, so nothing tells a listing of another day apart by date: GPT's 47 picks
    were left out of the listing's figures (0 GPT picks over 192 papers) with no word on the terminal. The summary
    and the report now say how many of GPT's judgements the listing lacks; a listing that holds them says nothing."""
    gpt = tmp_path / "gpt.jsonl"
    gpt.write_text("".join(json.dumps({k: d[k] for k in ("id", "RELEVANCE", "NOVELTY", "COMMENT")}) + "\n"
                           for d in _jsonl(DAYS / "2025-06-23" / "gpt_scores.jsonl")))
    res = ranker("compare", "--gpt", str(gpt), "--local", str(gpt), "--out", str(tmp_path / "out"),
                 "--papers", str(DAYS / "2025-05-15" / "listing.jsonl"))
    assert res.returncode == 0, res.stderr
    assert "| listing | 192 | 0 | 0 |" in res.stdout
    note = "47 of GPT's 47 judgements are not in the listing"
    assert f"Note: {note}" in res.stdout
    assert note.replace("'", "&#x27;") in (tmp_path / "out" / "report.html").read_text()
    res = ranker("compare", "--gpt", str(gpt), "--local", str(gpt), "--out", str(tmp_path / "same"),
                 "--papers", str(DAYS / "2025-06-23" / "listing.jsonl"))
    assert res.returncode == 0 and "| listing | 380 | 47 | 47 |" in res.stdout and "not in the listing" not in res.stdout
    assert "not in the listing" not in (tmp_path / "same" / "report.html").read_text()


def test_a_run_folder_scored_by_two_models_or_prompts_is_said_to_pool_them(tmp_path):
    """A `ranker run` folder lived in for weeks holds days scored under the topics and model of their time: the
    user edits the topics, then switches model. `ranker compare --local folder/` pooled every day's scores into
    one set of figures without a word; the summary and the report now name each (model, prompt) pair and its
    days, from the days' run manifests (a failed rerun's manifest, beside the earlier run's files, names no one)."""
    gpt = _jsonl(DAYS / "2025-05-15" / "gpt_scores.jsonl")
    folder = tmp_path / "digests"
    folder.mkdir()
    runs = {"2025-05-12": ("fake:a", "aaaa1111bbbb2222", "ok"), "2025-05-13": ("fake:a", "aaaa1111bbbb2222", "ok"),
            "2025-05-14": ("fake:a", "cccc3333dddd4444", "ok"), "2025-05-15": ("fake:b", "cccc3333dddd4444", "ok"),
            "2025-05-16": ("fake:c", "eeee5555ffff6666", "failed")}
    for k, (day, (model, h, status)) in enumerate(runs.items()):
        (folder / f"{day}-scores.jsonl").write_text("".join(
            json.dumps({"ARXIVID": d["id"], "COMMENT": "x", "RELEVANCE": 9, "NOVELTY": 8}) + "\n"
            for d in gpt[4 * k:4 * k + 4]))
        (folder / f"{day}-run.json").write_text(json.dumps({"day": day, "status": status, "model": model,
                                                            "prompts": {"source": "p", "hash": h}}))
    (tmp_path / "gpt.jsonl").write_text("".join(json.dumps(d) + "\n" for d in gpt))
    res = ranker("compare", "--gpt", str(tmp_path / "gpt.jsonl"), "--local", str(folder), "--out",
                 str(tmp_path / "out"))
    assert res.returncode == 0, res.stderr
    note = ("the local days were scored by 3 model and prompt pairs (their run manifests), pooled here: "
            "fake:a with prompt aaaa1111bbbb on 2025-05-12..2025-05-13 (2 days); fake:a with prompt cccc3333dddd "
            "on 2025-05-14; fake:b with prompt cccc3333dddd on 2025-05-15")
    assert f"Note: {note}" in res.stdout, res.stdout
    assert note in (tmp_path / "out" / "report.html").read_text()
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert [g["model"] for g in metrics["local_scorers"]] == ["fake:a", "fake:a", "fake:b"]
    for day in ("2025-05-14", "2025-05-15", "2025-05-16"):      # one scorer: nothing to say
        (folder / f"{day}-run.json").unlink()
        (folder / f"{day}-scores.jsonl").unlink()
    res = ranker("compare", "--gpt", str(tmp_path / "gpt.jsonl"), "--local", str(folder), "--out",
                 str(tmp_path / "one"))
    assert res.returncode == 0 and "pooled" not in res.stdout, res.stdout
    assert "local_scorers" not in json.loads((tmp_path / "one" / "metrics.json").read_text())


def test_days_outside_the_comparison_are_not_said_to_be_pooled(tmp_path):
    """A run folder of weeks, its model switched before the one day GPT judged: the figures hold that day's
    papers only, one model's, yet the note said two model and prompt pairs were pooled (it counted every day of
    the folder, compared or not)."""
    gpt = _jsonl(DAYS / "2025-05-15" / "gpt_scores.jsonl")
    old = _jsonl(DAYS / "2025-05-13" / "gpt_scores.jsonl")
    folder = tmp_path / "digests"
    folder.mkdir()
    for day, rows, model in (("2025-05-13", old[:4], "fake:a"), ("2025-05-15", gpt[:4], "fake:b")):
        (folder / f"{day}-scores.jsonl").write_text("".join(
            json.dumps({"ARXIVID": d["id"], "COMMENT": "x", "RELEVANCE": 9, "NOVELTY": 8}) + "\n" for d in rows))
        (folder / f"{day}-run.json").write_text(json.dumps({"day": day, "status": "ok", "model": model,
                                                            "prompts": {"source": "p", "hash": "abcd"}}))
    (tmp_path / "gpt.jsonl").write_text("".join(json.dumps(d) + "\n" for d in gpt))
    m = run_compare(tmp_path / "gpt.jsonl", folder, tmp_path / "out")
    assert m["n_common"] == 4 and "local_scorers" not in m, m.get("local_scorers")
    (tmp_path / "gpt.jsonl").write_text("".join(json.dumps(d) + "\n" for d in gpt + old))    # both days judged
    m = run_compare(tmp_path / "gpt.jsonl", folder, tmp_path / "out")
    assert [(g["model"], g["days"]) for g in m["local_scorers"]] == [("fake:a", ["2025-05-13"]),
                                                                      ("fake:b", ["2025-05-15"])]


def test_a_lone_surrogate_escape_in_judgements_is_replaced_not_fatal(tmp_path):
    """A JSON "\\ud800" escape (valid JSON, no character) in a COMMENT or title of a judgements file: compare
    died with 'unexpected failure' writing report.html; it is replaced with U+FFFD and said at its file:line, as
    the papers readers do."""
    gpt = _jsonl(DAYS / "2025-05-15" / "gpt_scores.jsonl")[:6]
    (tmp_path / "gpt.jsonl").write_text("".join(json.dumps(d) + "\n" for d in gpt))
    lines = [json.dumps({"ARXIVID": d["id"], "COMMENT": "x", "RELEVANCE": 9, "NOVELTY": 8}) for d in gpt]
    lines[2] = lines[2].replace('"x"', '"a lone \\ud800 and a pair \\ud83d\\ude80", "title": "t \\udfff"')
    (tmp_path / "local.jsonl").write_text("\n".join(lines) + "\n")
    said: list[str] = []
    run_compare(tmp_path / "gpt.jsonl", tmp_path / "local.jsonl", tmp_path / "out", warn=said.append)
    assert said == [f"{tmp_path / 'local.jsonl'}:3: a lone surrogate escape (\\ud800-\\udfff), no character, "
                    "replaced with U+FFFD"], said
    row = read_scores(tmp_path / "local.jsonl")[gpt[2]["id"]]
    assert (row.comment, row.title) == ("a lone \ufffd and a pair \U0001f680", "t \ufffd")
    assert "a lone \ufffd and a pair \U0001f680" in (tmp_path / "out" / "report.html").read_text(encoding="utf-8")


def test_a_lone_surrogate_escape_in_a_judgements_date_is_replaced_not_fatal(tmp_path):
    """The same escape in a judgement's "date" (its row of the per-day table): compare died with 'unexpected
    failure' writing report.html, the comment and title being the only texts repaired."""
    gpt = _jsonl(DAYS / "2025-05-15" / "gpt_scores.jsonl")[:3]
    lines = [json.dumps({**d, "date": "2025-05-15"}) for d in gpt]
    lines[1] = lines[1].replace('"date": "2025-05-15"', '"date": "2025-05-15\\udc80"')
    (tmp_path / "gpt.jsonl").write_text("\n".join(lines) + "\n")
    (tmp_path / "local.jsonl").write_text("".join(json.dumps({"ARXIVID": d["id"], "COMMENT": "x", "RELEVANCE": 9,
                                                              "NOVELTY": 8}) + "\n" for d in gpt))
    said: list[str] = []
    run_compare(tmp_path / "gpt.jsonl", tmp_path / "local.jsonl", tmp_path / "out", warn=said.append)
    assert said == [f"{tmp_path / 'gpt.jsonl'}:2: a lone surrogate escape (\\ud800-\\udfff), no character, "
                    "replaced with U+FFFD"], said
    assert "2025-05-15\ufffd" in (tmp_path / "out" / "report.html").read_text(encoding="utf-8")


def test_the_report_groups_its_counts_as_the_summary_does(tmp_path):
    """The terminal's summary says "1,234 papers both judged"; report.html's tables said 1234 (its counts, the
    selection's n and picks, the lists' lengths): both group thousands with the one helper, ranker.io.grouped."""
    from ranker.compare import summary_markdown
    from ranker.io import grouped
    n = 1234
    for name, shift in (("gpt.jsonl", 0), ("local.jsonl", 3)):
        (tmp_path / name).write_text("".join(json.dumps(
            {"ARXIVID": f"2505.{10000 + i}", "COMMENT": "x", "RELEVANCE": 1 + (i + shift) % 10,
             "NOVELTY": 1 + (7 * i + shift) % 10}) + "\n" for i in range(n)))
    m = run_compare(tmp_path / "gpt.jsonl", tmp_path / "local.jsonl", tmp_path / "out")
    summary = summary_markdown(m)
    page = (tmp_path / "out" / "report.html").read_text()
    assert grouped(n) == "1,234" and f"## ranker compare: {grouped(n)} papers both judged" in summary
    cells = re.findall(r"<td>([0-9][0-9,.]*)</td>", page)
    assert cells.count(grouped(n)) >= 4                  # GPT's, the local, both judged, the selection's n
    assert not [c for c in cells if re.fullmatch(r"\d{4,}", c)], cells
    assert f"{grouped(len(m['gpt_picks_missed']))} papers" in page


def test_the_scatter_titles_group_their_count(monkeypatch):
    """The relevance and novelty scatters' titles said "n=1234" where every table of the report says 1,234."""
    from ranker.compare import report
    drawn = []
    monkeypatch.setattr(report, "png", lambda fig: drawn.append(fig) or "")
    report.scatter_png([5.0] * 1234, [6.0] * 1234, "relevance")
    assert drawn[0].axes[0].get_title() == "Relevance: local vs GPT (n=1,234, jittered)"
