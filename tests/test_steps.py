"""A whole day through the four public steps with the fake backend and stored vectors (no model), the run
folder's manifest when a run fails or is killed, and `ranker run` / `ranker prefilter` as commands."""
from __future__ import annotations

import json
import math
import os
import signal
import stat
import subprocess
import sys
import textwrap

import pytest

from ranker.backends.fake import FakeBackend, fake_scores
from ranker.errors import BackendError, EmptyDay, InputError
from ranker.settings import resolve
from ranker.sources import read_papers, read_ranked
from ranker.steps import fetch_day, prefilter_day, render_digest, run_day, score_day
from ranker.store import Store

from conftest import DAYS, fake_settings, ranker, small_disk, store_vectors, vector_store, without_loading

LISTING = DAYS / "2025-05-15" / "listing.jsonl"
FLAGS = {"backend": "fake", "model": "tiny", "top": 8, "min_relevance": 5, "min_novelty": 5}


@pytest.fixture
def settings(tmp_path):
    return fake_settings(tmp_path, **FLAGS)


@pytest.fixture
def store(settings):
    with vector_store(settings, LISTING) as s:
        yield s


def lines(path):
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_a_whole_day_through_the_four_steps(settings, store, tmp_path):
    day = fetch_day(LISTING, settings, store=store)
    assert day.date == "2025-05-15" and len(day.papers) == 192 and store.count_papers() == 192
    assert day.stored.stored_new == 192

    pre = prefilter_day(day.papers, settings, store=store)
    assert len(pre.ranked) == 192 and pre.kept == 8 and pre.embedded == 0 and not pre.model_loaded
    assert [r.kept for r in pre.ranked] == [True] * 8 + [False] * 184
    assert {r.rule for r in pre.ranked} == {"top"} and pre.keep["rule"] == "top" and pre.keep["kept"] == 8
    assert pre.kept_papers == [r.paper for r in pre.ranked[:8]]

    run = score_day(pre.kept_papers, settings, store=store)
    assert run.backend == "fake" and run.model == "fake:tiny" and run.scored == 8 and run.status == "ok"
    assert {i: (s.relevance, s.novelty) for i, s in run.scores.items()} == {
        p.id: fake_scores(p.id) for p in pre.kept_papers}

    dig = render_digest(day.date, day.papers, run, settings, scanned=pre.kept)
    picks = [p.id for p in pre.kept_papers if min(fake_scores(p.id)) >= 5]
    assert sorted(dig.json) == sorted(picks) and len(dig.selected) == len(picks)
    assert dig.markdown.startswith("# Personalized Daily ArXiv Papers 2025-05-15")
    assert f"Total arXiv papers: 192\n\nTotal scanned papers: 8\n\nTotal relevant papers: {len(picks)}" in dig.markdown

    # the same day as one call, into a run folder; everything scored above is reused
    res = run_day(day, tmp_path / "out", settings, store=store)
    m = res.manifest
    assert m["status"] == "ok" and m["backend"] == "fake" and m["model"] == "fake:tiny"
    assert m["keep"]["rule"] == "top" and m["keep"]["kept"] == 8
    assert m["counts"] == {"papers": 192, "new_in_store": 192, "seen_before": 0, "excluded": 0, "kept": 8,
                           "pinned": 0, "reuploads": 0, "embedded": 0, "scored": 0, "reused": 8, "retried": 0,
                           "failed": 0, "selected": len(picks), "author_matches": 0}
    assert json.loads(res.files["manifest"].read_text()) == m
    assert [r["ARXIVID"] for r in lines(res.files["scores"])] == [p.id for p in pre.kept_papers]
    ranked = read_ranked(res.files["prefilter"])
    assert [r.paper.id for r in ranked] == [r.paper.id for r in pre.ranked] and sum(r.kept for r in ranked) == 8
    assert "kept" not in ranked[0].paper.extra                 # the verdict travels as Ranked, not as extra
    assert json.loads(res.files["json"].read_text()) == dig.json
    tail = "Total arXiv papers"                                # the token table differs: nothing new was asked
    assert res.files["markdown"].read_text().split(tail)[1] == dig.markdown.split(tail)[1]
    assert store.run_status(m["run_id"]) == "ok" and store.count_papers() == 192
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(f.name for f in res.files.values())


def test_the_keep_rule_travels_from_the_settings_to_each_row_and_the_manifest(settings, store, tmp_path):
    from ranker.prefilter.calibrate import fit_data, history_data
    from ranker.prefilter.embed import Embedder
    from ranker.prefilter.history import load_day
    from ranker.prefilter.recall import calibrated_recall, zero_shot_fraction
    from ranker.prompts import load_prompts
    day = fetch_day(LISTING, settings, store=store)
    flags = {**FLAGS, "top": None, "db": settings.db_path}
    # no calibration, a recall target: the zero-shot prior's fraction of the day, every row says so
    pre = prefilter_day(day.papers, resolve(flags={**flags, "recall": 0.9}, env={}), store=store)
    assert pre.keep["rule"] == "recall-prior" and pre.keep["target_recall"] == 0.9
    assert pre.kept == math.ceil(zero_shot_fraction(0.9) * 192 - 1e-9) and {r.rule for r in pre.ranked} == {
        "recall-prior"}
    # a calibration and no rule: recall 0.95 at the calibration's own threshold, recorded in the manifest
    hist = [load_day(DAYS / d) for d in ("2025-05-13", "2025-05-15")]
    store_vectors(store, hist[0].papers)
    cal = fit_data(history_data(hist, load_prompts(), embedder=Embedder("minilm"), store=store))
    cal.save(tmp_path / "cal.json")
    res = run_day(day, tmp_path / "out", resolve(flags={**flags, "calibration": tmp_path / "cal.json"}, env={}),
                  store=store)
    keep, thr = res.manifest["keep"], cal.recall_thresholds["0.95"]
    assert (keep["rule"], keep["target_recall"], keep["expected_recall"], keep["threshold"]) == (
        "recall", 0.95, 0.95, thr)
    ranked = read_ranked(res.files["prefilter"])
    assert sum(r.kept for r in ranked) == keep["kept"] == res.manifest["counts"]["kept"]
    assert {r.rule for r in ranked if r.kept} <= {"recall", "min_keep"}
    # the rule's own rows say "recall" (were there none, the threshold check below would check nothing): the
    # top kept_by_rule of the day, the min_keep floor only past them
    by_rule = [r.kept and r.rule == "recall" for r in ranked]
    assert keep["kept_by_rule"] > 0 and by_rule == [True] * keep["kept_by_rule"] + [False] * (
        len(ranked) - keep["kept_by_rule"])
    assert all(r.prefilter_score >= thr - 1e-6 for r in ranked if r.rule == "recall" and r.kept)
    assert all(r.prefilter_score < thr + 1e-6 for r in ranked if not r.kept)
    # a fixed fraction or count over it: the recall the calibration's record expects of that part of the day
    for rule in ({"keep": 0.3}, {"top": 48}):
        res = run_day(day, tmp_path / "out", resolve(flags={**flags, **rule, "calibration": tmp_path / "cal.json"},
                                                     env={}), store=store)
        keep = res.manifest["keep"]
        assert (keep["rule"], keep["kept_by_rule"]) == (*rule, round(0.3 * 192) if "keep" in rule else 48)
        assert keep["expected_recall"] == calibrated_recall(cal, 0.3 if "keep" in rule else 48 / 192) is not None


def test_a_failed_run_marks_its_manifest_failed(settings, store, tmp_path):
    day = fetch_day(LISTING, settings, store=store)
    out = tmp_path / "out"
    first = run_day(day, out, settings, store=store)
    assert first.manifest["status"] == "ok"
    broken = FakeBackend("other", raise_for={prefilter_day(day.papers, settings, store=store).kept_papers[0].id})
    with pytest.raises(BackendError):
        run_day(day, out, settings, store=store, backend=broken)
    m = json.loads((out / "2025-05-15-run.json").read_text())
    assert m["status"] == "failed" and "injected failure" in m["error"] and m["run_id"] != first.manifest["run_id"]
    assert store.run_status(m["run_id"]) == "failed"


def test_the_index_after_a_failed_rerun_names_the_model_of_the_digest_it_links(settings, store, tmp_path):
    """A rerun under another model that failed leaves the first run's digest, which the folder's index (rebuilt
    by the next day's run) still links: beside it, the index named the failed run's model (or none, for a run
    that failed before it scored). A second failure (or a killed run) in between keeps naming the digest's."""
    from ranker.runindex import write_index
    day = fetch_day(LISTING, settings, store=store)
    out = tmp_path / "out"
    first = run_day(day, out, settings, store=store)
    kept = prefilter_day(day.papers, settings, store=store).kept_papers
    for model in ("other", "third"):
        with pytest.raises(BackendError):
            run_day(day, out, settings, store=store, backend=FakeBackend(model, raise_for={kept[0].id}))
        (row,) = json.loads(write_index(out)["index_json"].read_text())["days"]
        assert (row["status"], row["digest"], row["model"]) == ("failed", "2025-05-15-output.md", first.run.model)
    (out / "2025-05-15-scores.jsonl").unlink()
    (out / "2025-05-15-scores.jsonl").mkdir()                    # a rerun that fails writing its files
    with pytest.raises(InputError, match="is a directory"):
        run_day(day, out, settings, store=store, backend=FakeBackend("other"))
    (row,) = json.loads(write_index(out)["index_json"].read_text())["days"]
    assert (row["status"], row["digest"], row["model"]) == ("failed", "2025-05-15-output.md", first.run.model)
    (out / "2025-05-15-scores.jsonl").rmdir()
    res = run_day(day, out, settings, store=store, backend=FakeBackend("other"))
    m = json.loads((out / "2025-05-15-run.json").read_text())
    assert m["status"] == "ok" and "shown_run" not in m and "shown_run" not in res.manifest
    (row,) = json.loads(write_index(out)["index_json"].read_text())["days"]
    assert (row["status"], row["model"]) == ("ok", "fake:other")


def test_a_run_whose_files_fail_leaves_the_days_digest_record_as_the_folder_has_it(settings, store, tmp_path):
    """The web view picks a day's scores by the store's digest record: a rerun that could not write its files
    must not leave it pointing at the rerun's model while the folder holds the first run's digest."""
    day = fetch_day(LISTING, settings, store=store)
    out = tmp_path / "out"
    first = run_day(day, out, settings, store=store)
    assert store.get_day_digest(day.date).run_id == first.manifest["run_id"]
    (out / "2025-05-15-scores.jsonl").unlink()
    (out / "2025-05-15-scores.jsonl").mkdir()                    # the rerun cannot put its file there
    other = FakeBackend("other")
    with pytest.raises(InputError, match="is a directory"):
        run_day(day, out, settings, store=store, backend=other)
    g = store.get_day_digest(day.date)
    assert g.run_id == first.manifest["run_id"] and g.model == first.run.model
    # a day that had no digest before has none after such a failure
    fresh = tmp_path / "fresh"
    (fresh / "2025-05-15-output.md").mkdir(parents=True)
    store.restore_day_digest(day.date, None)
    with pytest.raises(InputError):
        run_day(day, fresh, settings, store=store, backend=other)
    assert store.get_day_digest(day.date) is None


def test_a_rerun_that_fails_leaves_the_days_ranking_as_the_folder_has_it(settings, store, tmp_path):
    """The day's pages pick from the papers its stored ranking kept, under its digest record: a rerun under
    another keep rule that failed (its files, or its scoring) put the record back but left its own ranking,
    so the page's kept papers and picks were neither the folder's run nor the failed one."""
    from ranker.web.views import day_page
    day = fetch_day(LISTING, settings, store=store)
    out = tmp_path / "out"
    run_day(day, out, fake_settings(tmp_path, **{**FLAGS, "min_relevance": 1, "min_novelty": 1}), store=store)
    before = store.get_rankings(day.date)
    picks = list(json.loads((out / "2025-05-15-output.json").read_text()))
    page = day_page(store, day.date)
    assert page.counts["kept"] == 8 and [r.paper.id for r in page.picks] == picks and len(picks) == 8
    (out / "2025-05-15-scores.jsonl").unlink()
    (out / "2025-05-15-scores.jsonl").mkdir()                    # the rerun cannot put its file there
    one = fake_settings(tmp_path, **{**FLAGS, "top": 1})
    with pytest.raises(InputError, match="is a directory"):
        run_day(day, out, one, store=store, backend=FakeBackend("other"))
    assert store.get_rankings(day.date) == before
    page = day_page(store, day.date)
    assert page.counts["kept"] == 8 and [r.paper.id for r in page.picks] == picks
    # a rerun whose every request failed (a model that has scored nothing yet): its ranking is not the day's
    third = fake_settings(tmp_path, **{**FLAGS, "top": 1, "model": "third"})
    kept = prefilter_day(day.papers, third, store=store, record=False).kept_papers
    with pytest.raises(BackendError):
        run_day(day, out, third, store=store, backend=FakeBackend("third", raise_for={p.id for p in kept}))
    assert store.get_rankings(day.date) == before


def test_a_run_that_fails_after_another_run_of_the_day_ended_puts_back_that_runs_pages(settings, store, tmp_path,
                                                                                        monkeypatch):
    """A second run of the day (cron's, started while the first ran) read the day's ranking, digest record and
    shown run before it recorded itself as running: the first ending just then (its last write the one the
    second's row waited on) did not refuse it, and when it then failed it put back the pages from before the
    first run, and its manifest named that older run as the one the folder shows, while the folder held the
    first run's digest. The first run here ends inside the second's `recording`, just before its row."""
    from ranker.web.views import day_page
    day = fetch_day(LISTING, settings, store=store)
    out = tmp_path / "out"
    run_day(day, out, settings, store=store)                           # an earlier day's run: the older pages
    real = store.recording
    first: dict = {}

    def recording(kind, params):
        if kind == "run" and not first:                                  # the failing run's own row, not yet in
            first["started"] = True
            first["result"] = run_day(day, out, fake_settings(tmp_path, **{**FLAGS, "top": 4}), store=store,
                                      backend=FakeBackend("other"))
            first["ranked"] = store.get_rankings(day.date)
        return real(kind, params)
    monkeypatch.setattr(store, "recording", recording)
    kept = prefilter_day(day.papers, settings, store=store, record=False).kept_papers
    with pytest.raises(BackendError):
        run_day(day, out, settings, store=store, backend=FakeBackend("third", raise_for={kept[0].id}))
    done, ranked = first["result"], first["ranked"]
    assert done.manifest["status"] == "ok"
    g = store.get_day_digest(day.date)
    assert (g.run_id, g.model) == (done.manifest["run_id"], "fake:other")
    assert store.get_rankings(day.date) == ranked
    picks = list(json.loads((out / "2025-05-15-output.json").read_text()))
    page = day_page(store, day.date)
    assert page.counts["kept"] == 4 and [r.paper.id for r in page.picks] == picks
    m = json.loads((out / "2025-05-15-run.json").read_text())
    assert m["status"] == "failed" and m["shown_run"] == {"run_id": done.manifest["run_id"], "model": "fake:other"}


@pytest.fixture
def python_ctrl_c():
    """Python's own Ctrl-C handler for the test, as a user's process has it: an earlier test in this process
    (an engine, a server) may have left another in place, and the whole suite once ran the test below without
    its KeyboardInterrupt."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    if previous is not None:                      # None: not set from Python, so not ours to put back
        signal.signal(signal.SIGINT, previous)


def test_ctrl_c_while_the_run_folder_takes_its_new_files_leaves_one_whole_set(settings, store, tmp_path,
                                                                            monkeypatch, python_ctrl_c):
    """Ctrl-C landing between two renames of the run's files used to leave some files of the new run beside
    others of the old one, under a manifest saying "interrupted"; it is held back until the set (manifest
    included) has its names, then acted on."""
    out = tmp_path / "out"
    day = fetch_day(LISTING, settings, store=store)
    run_day(day, out, settings, store=store)
    real, done = os.replace, []

    def replace_then_ctrl_c(src, dst):
        real(src, dst)
        if str(dst).endswith("-prefilter.jsonl") or done:
            done.append(dst)
        if len(done) == 1:
            os.kill(os.getpid(), signal.SIGINT)          # arrives after the set's first rename

    monkeypatch.setattr(os, "replace", replace_then_ctrl_c)
    other = fake_settings(tmp_path, **{**FLAGS, "top": 12})
    with pytest.raises(KeyboardInterrupt):
        run_day(day, out, other, store=store)
    monkeypatch.setattr(os, "replace", real)
    # every file of the set, the index, then the interrupt (less the index set's journal taking its name)
    names = [p.name for p in done if not p.name.startswith(".ranker-set.")]
    assert names[:5] == ["2025-05-15-prefilter.jsonl", "2025-05-15-scores.jsonl", "2025-05-15-output.md",
                         "2025-05-15-output.json", "2025-05-15-run.json"]
    assert sorted(names[5:]) == ["index.json", "index.md"]
    m = json.loads((out / "2025-05-15-run.json").read_text())
    assert m["status"] == "ok" and m["counts"]["kept"] == 12
    assert store.run_status(m["run_id"]) == "ok"                         # the store says what the folder says
    assert json.loads((out / "index.json").read_text())["days"][0]["kept"] == 12   # the index rewritten too
    assert len(lines(out / "2025-05-15-prefilter.jsonl")) == len(day.papers)
    assert sum(r["kept"] for r in lines(out / "2025-05-15-prefilter.jsonl")) == 12
    assert not [f for f in out.iterdir() if f.name.endswith(".tmp")]


@pytest.fixture
def cli_sigterm():
    """The CLI's SIGTERM handler (it stops a command as a Ctrl-C does), put back and forgotten afterwards."""
    from ranker.cli import app
    from ranker.errors import clear_interrupt
    previous = signal.signal(signal.SIGTERM, app._on_term)
    yield
    signal.signal(signal.SIGTERM, previous)
    app._TERMINATED.clear()
    clear_interrupt()


def test_sigterm_while_the_run_folder_takes_its_new_files_leaves_one_whole_set(settings, store, tmp_path,
                                                                             monkeypatch, cli_sigterm):
    """A SIGTERM (systemd stopping the unit) is held back while the set takes its names, as Ctrl-C is: it stops
    the run as a Ctrl-C does, and landing between two renames it left files of two runs under one manifest."""
    out = tmp_path / "out"
    day = fetch_day(LISTING, settings, store=store)
    run_day(day, out, settings, store=store)
    real, done = os.replace, []

    def replace_then_sigterm(src, dst):
        real(src, dst)
        if str(dst).endswith("-prefilter.jsonl") or done:
            done.append(dst)
        if len(done) == 1:
            os.kill(os.getpid(), signal.SIGTERM)         # arrives after the set's first rename

    monkeypatch.setattr(os, "replace", replace_then_sigterm)
    other = fake_settings(tmp_path, **{**FLAGS, "top": 12})
    with pytest.raises(KeyboardInterrupt):
        run_day(day, out, other, store=store)
    monkeypatch.setattr(os, "replace", real)
    assert [p.name for p in done][:5] == ["2025-05-15-prefilter.jsonl", "2025-05-15-scores.jsonl",
                                          "2025-05-15-output.md", "2025-05-15-output.json", "2025-05-15-run.json"]
    m = json.loads((out / "2025-05-15-run.json").read_text())
    assert m["status"] == "ok" and m["counts"]["kept"] == 12
    assert sum(r["kept"] for r in lines(out / "2025-05-15-prefilter.jsonl")) == 12


def test_ctrl_c_while_the_folder_is_synced_after_the_new_files_is_a_whole_run(settings, store, tmp_path,
                                                                              monkeypatch, python_ctrl_c):
    """Once the run's files have their names, the folder is synced to disk (it can take a while): Ctrl-C there
    was taken for one before the renames, so the finished manifest was rewritten "interrupted" beside the new
    files and the day's digest record was put back to the earlier run's, which the folder no longer holds."""
    import ranker.io as rio
    out = tmp_path / "out"
    day = fetch_day(LISTING, settings, store=store)
    run_day(day, out, settings, store=store)
    real_replace, real_sync, armed = os.replace, rio._fsync_dir, []

    def replace(src, dst):
        real_replace(src, dst)
        if str(dst).endswith("-prefilter.jsonl"):         # only the run's set of files has this one
            armed.append(dst)

    def sync_then_ctrl_c(folder):
        real_sync(folder)
        if armed and len(armed) < 2:
            armed.append(folder)
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(rio, "_fsync_dir", sync_then_ctrl_c)
    other = fake_settings(tmp_path, **{**FLAGS, "top": 12})
    with pytest.raises(KeyboardInterrupt):
        run_day(day, out, other, store=store, backend=FakeBackend("other"))
    assert len(armed) == 2
    m = json.loads((out / "2025-05-15-run.json").read_text())
    assert m["status"] == "ok" and m["counts"]["kept"] == 12 and store.run_status(m["run_id"]) == "ok"
    g = store.get_day_digest(day.date)
    assert g.run_id == m["run_id"] and g.model == m["model"]


def test_an_index_that_cannot_be_rewritten_is_a_warning_after_a_whole_run(settings, store, tmp_path):
    out = tmp_path / "out"
    (out / "index.md").mkdir(parents=True)               # the folder's index cannot be written
    notes: list[str] = []
    res = run_day(fetch_day(LISTING, settings, store=store), out, settings, store=store, warn=notes.append)
    assert res.manifest["status"] == "ok"
    assert json.loads((out / "2025-05-15-run.json").read_text())["status"] == "ok"
    assert store.run_status(res.manifest["run_id"]) == "ok"
    assert any("index was not rewritten" in n and "index.md" in n for n in notes), notes


KILLED_RUN = textwrap.dedent("""
    import os, sys
    from ranker.backends.fake import FakeBackend
    from ranker.settings import resolve
    from ranker.steps import fetch_day, run_day
    from ranker.store import Store

    class Killed(FakeBackend):
        def generate(self, requests, **kw):
            os._exit(9)                     # as a kill -9 in the middle of scoring would

    s = resolve(flags={"backend": "fake", "top": 12, "db": sys.argv[1]})     # other settings than the first run
    with Store(s.db_path) as store:
        run_day(fetch_day(sys.argv[2], s, store=store), sys.argv[3], s, store=store, backend=Killed("other"))
""")


def test_a_killed_run_never_leaves_an_earlier_ok_manifest_beside_its_files(settings, store, tmp_path):
    out = tmp_path / "out"
    first = run_day(fetch_day(LISTING, settings, store=store), out, settings, store=store)
    before = {f.name: f.read_bytes() for f in out.iterdir()}
    store.close()
    p = subprocess.run([sys.executable, "-c", KILLED_RUN, str(settings.db_path), str(LISTING), str(out)],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 9, p.stderr
    m = json.loads((out / "2025-05-15-run.json").read_text())
    assert m["status"] == "running" and m["run_id"] != first.manifest["run_id"]       # not the old "ok"
    assert sorted(f.name for f in out.iterdir()) == sorted(before)                   # no temporary left
    data = {f.name: f.read_bytes() for f in out.iterdir() if not f.name.endswith("-run.json")}
    assert data == {k: v for k, v in before.items() if not k.endswith("-run.json")}  # the old set, whole
    with Store(settings.db_path) as again:           # the next open sees the process is gone
        assert again.run_status(m["run_id"]) == "interrupted" and again.integrity_check() == "ok"


def test_a_run_of_the_day_leaves_a_live_writers_temporary_files_and_removes_a_killed_ones(settings, store,
                                                                                          tmp_path):
    """A run of the day from another home (or another machine on a shared database: not refused) writing into
    the same folder: this run's start removed its temporary files, whole and waiting for their names, and that
    run failed "cannot write". Only the temporary files no live process holds locked go."""
    import fcntl
    out = tmp_path / "out"
    run_day(fetch_day(LISTING, settings, store=store), out, settings, store=store)
    live, dead = out / ".2025-05-15-output.md.0000beef.tmp", out / ".2025-05-15-output.md.0000dead.tmp"
    live.write_text("another run's digest, waiting for its name")
    dead.write_text("a killed run's digest")
    fd = os.open(live, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)                   # as its live writer holds it (write_together)
        res = run_day(fetch_day(LISTING, settings, store=store), out, settings, store=store)
        assert res.manifest["status"] == "ok"
        assert live.exists() and not dead.exists()
    finally:
        os.close(fd)


def test_a_run_killed_while_it_scores_leaves_the_days_pages_as_its_folder_is(settings, store, tmp_path):
    """The day's pages (ranker serve, ranker site) pick from the stored ranking and the digest record: a rerun
    killed while it scored (kill -9: no except runs, nothing is put back) had replaced the ranking (top 12, not
    8) and not the digest record, so the pages disagreed with the digest the folder still holds. The ranking is
    stored with the digest record, once scoring has ended."""
    out = tmp_path / "out"
    first = run_day(fetch_day(LISTING, settings, store=store), out, settings, store=store)
    ranked_before, digest_before = store.get_rankings("2025-05-15"), store.get_day_digest("2025-05-15")
    store.close()
    p = subprocess.run([sys.executable, "-c", KILLED_RUN, str(settings.db_path), str(LISTING), str(out)],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 9, p.stderr
    with Store(settings.db_path) as again:
        ranked = again.get_rankings("2025-05-15")
        assert sum(r.kept for r in ranked) == 8 and {r.run_id for r in ranked} == {first.manifest["run_id"]}
        assert ranked == ranked_before and again.get_day_digest("2025-05-15") == digest_before


# --------------------------------------------------------------------------- as commands
def test_ranker_run_and_prefilter_as_commands(store, settings, tmp_path):
    db = settings.db_path
    r = ranker("run", "--papers", LISTING, "--out", tmp_path / "out", "--db", db, "--backend", "fake",
               "--config", _toml(tmp_path), "--offline")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(tmp_path / "out" / "2025-05-15-output.md")
    assert r.stderr.strip().splitlines()[-1].startswith("2025-05-15: 192 papers, 8 kept by the prefilter, 8 scored")
    ranked = tmp_path / "ranked.jsonl"
    r = ranker("prefilter", "--papers", LISTING, "--out", ranked, "--db", db, "--top", "5")
    assert r.returncode == 0, r.stderr
    r = ranker("score", "--papers", ranked, "--only-kept", "--out", tmp_path / "s.jsonl", "--db", db,
               "--backend", "fake", "--model", "tiny")
    assert r.returncode == 0, r.stderr
    assert [x["ARXIVID"] for x in lines(tmp_path / "s.jsonl")] == [x["id"] for x in lines(ranked)[:5]]
    assert "5 of 5 papers scored" in r.stderr and "5 reused" in r.stderr     # `ranker run` stored them
    # --recall replaces the config's top = 8: the zero-shot prior keeps 45% of the day for recall 0.9 (87 of 192)
    r = ranker("run", "--papers", LISTING, "--out", tmp_path / "out2", "--db", db, "--backend", "fake",
               "--config", _toml(tmp_path), "--offline", "--recall", "0.9")
    assert r.returncode == 0, r.stderr
    m = json.loads((tmp_path / "out2" / "2025-05-15-run.json").read_text())
    assert m["keep"]["rule"] == "recall-prior" and m["counts"]["kept"] == 87
    r = ranker("run", "--papers", LISTING, "--out", tmp_path / "out3", "--db", db, "--backend", "fake",
               "--offline", "--recall", "1.5")
    assert r.returncode == 1 and r.stderr.startswith("error: --recall: ") and len(r.stderr.splitlines()) == 1


def test_papers_of_two_days_are_refused_before_the_days_ranking_and_digest_are_replaced(store, settings, tmp_path):
    """Two days' listings in one file were ranked as one day and stored, and written, as the day most of them
    carry: over 2025-05-15's own ranking and run folder. `ranker run` refuses them in one line, touching
    neither, before it stores any of the papers."""
    other = list(read_papers(DAYS / "2025-05-13" / "listing.jsonl"))[:50]
    mixed = tmp_path / "two-days.jsonl"
    mixed.write_text(LISTING.read_text() + "".join(json.dumps(p.to_dict()) + "\n" for p in other))
    store_vectors(store, other)                        # (no model loads, whatever the command does)
    out = tmp_path / "out"
    run_day(fetch_day(LISTING, settings, store=store), out, settings, store=store)
    before = {f.name: f.read_bytes() for f in out.iterdir()}
    ranking = [(r.paper_id, r.kept) for r in store.get_rankings("2025-05-15")]
    n_papers = store.count_papers()
    store.close()
    r = ranker("run", "--papers", mixed, "--out", out, "--db", settings.db_path, "--backend", "fake", "--config",
               _toml(tmp_path), "--offline")
    assert r.returncode == 1 and r.stderr.splitlines() == [
        f"error: --papers {mixed}: holds papers of 2 days (2025-05-13: 50, 2025-05-15: 192); a day's digest is "
        "of one day's papers: give one day's, or the day they were all announced as --date"], r.stderr
    assert {f.name: f.read_bytes() for f in out.iterdir()} == before
    with Store(settings.db_path) as s:
        assert [(r.paper_id, r.kept) for r in s.get_rankings("2025-05-15")] == ranking
        assert s.get_rankings("2025-05-13") == []
        assert s.count_papers() == n_papers and s.get_paper(other[0].id) is None    # not even the papers stored
    # labelled as one day (`ranker run --date`), they are one day's papers
    r = ranker("run", "--papers", mixed, "--date", "2025-05-15", "--out", tmp_path / "one", "--db",
               settings.db_path, "--backend", "fake", "--config", _toml(tmp_path), "--offline")
    assert r.returncode == 0 and "2025-05-15: 242 papers" in r.stderr, r.stderr


def test_a_ranked_file_ranked_again_keeps_nothing_of_the_earlier_verdict(store, settings, tmp_path):
    """`ranker prefilter` reads its own output back as papers: the earlier verdict it carries was written beside
    the new one, so a re-upload the new ranking did not find (an earlier database's) stayed in the file."""
    old = tmp_path / "old.jsonl"
    old.write_text("".join(json.dumps({**p.to_dict(), "prefilter_score": 9.0, "kept": True, "topic": "Old",
                                       "rule": "pin", "reupload_of": {"id": "2401.00001", "date": "2024-01-02",
                                                                      "cosine": 0.99}}) + "\n"
                           for p in read_papers(LISTING)))
    store.close()
    r = ranker("prefilter", "--papers", old, "--out", tmp_path / "new.jsonl", "--db", settings.db_path, "--top", "5")
    assert r.returncode == 0, r.stderr
    new = lines(tmp_path / "new.jsonl")
    assert len(new) == 192 and sum(x["kept"] for x in new) == 5 and {x["rule"] for x in new} == {"top"}
    assert not any("reupload_of" in x for x in new) and "Old" not in {x["topic"] for x in new}


def _toml(tmp_path):
    f = tmp_path / "ranker.toml"
    f.write_text("[prefilter]\ntop = 8\n[scoring]\nmodel = 'tiny'\n")
    return f


def test_writing_to_dev_null_keeps_the_device(store, settings, tmp_path):
    before = os.stat("/dev/null")
    try:
        r = ranker("prefilter", "--papers", LISTING, "--out", "/dev/null", "--db", settings.db_path)
        assert r.returncode == 0, r.stderr
        r = ranker("fetch", "--from", LISTING, "--out", "/dev/null", "--db", settings.db_path)
        assert r.returncode == 0, r.stderr
        after = os.stat("/dev/null")
        assert stat.S_ISCHR(after.st_mode) and after.st_rdev == before.st_rdev
    finally:
        from test_io import _repair_dev_null
        _repair_dev_null(before)
    r = ranker("prefilter", "--papers", LISTING, "--out", tmp_path, "--db", settings.db_path)
    assert r.returncode == 1 and r.stderr == f"error: --out {tmp_path}: is a directory; give a file name\n"


# --------------------------------------------------------------------------- the run folder, adversarially
def test_a_killed_rerun_into_an_older_run_folder_leaves_the_older_set_whole(store, settings, tmp_path):
    """`ranker run` with other settings into a folder holding an earlier run's files, SIGKILLed while it
    scores: the folder still holds the earlier run's data files, all of them, and a manifest that says the
    new run is running (never the old run's "ok" beside new files)."""
    import signal
    import time
    from conftest import RANKER
    out, db = tmp_path / "out", settings.db_path
    store.close()
    r = ranker("run", "--papers", LISTING, "--out", out, "--db", db, "--backend", "fake", "--config", _toml(tmp_path))
    assert r.returncode == 0, r.stderr
    before = {f.name: f.read_bytes() for f in out.iterdir()}
    other = tmp_path / "other.toml"
    other.write_text("[prefilter]\ntop = 12\n[scoring]\nmodel = 'other'\nbatch_size = 1\n")
    p = subprocess.Popen([*RANKER, "run", "--papers", LISTING, "--out", str(out), "--db", str(db), "--backend", "fake",
                          "--config", str(other), "--backend-option", "delay=0.3"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    t0 = time.monotonic()
    with Store(db) as s:
        while s.conn.execute("SELECT COUNT(*) FROM scores WHERE model='fake:other'").fetchone()[0] < 2:
            assert p.poll() is None, p.stderr.read()
            assert time.monotonic() - t0 < 60
            time.sleep(0.05)
    p.send_signal(signal.SIGKILL)
    p.wait()
    after = {f.name: f.read_bytes() for f in out.iterdir()}
    assert sorted(after) == sorted(before)                                      # no temporary left
    m = json.loads(after.pop("2025-05-15-run.json"))
    assert m["status"] == "running" and "model" not in m
    assert after == {k: v for k, v in before.items() if k != "2025-05-15-run.json"}   # the older set, whole


def test_out_dev_stdout_redirected_to_a_file_is_written_through(store, settings, tmp_path):
    """`ranker score --out /dev/stdout > s.jsonl` (as root): the redirected file gets the lines and stays the
    file the shell opened (not renamed over); a pipe works too."""
    from conftest import RANKER
    store.close()
    target = tmp_path / "s.jsonl"
    with open(target, "w") as f:
        inode = os.fstat(f.fileno()).st_ino
        p = subprocess.run([*RANKER, "score", "--papers", LISTING, "--out", "/dev/stdout", "--db", settings.db_path,
                            "--backend", "fake"], stdout=f, stderr=subprocess.PIPE, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert os.stat(target).st_ino == inode and sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("."))\
        == []
    assert len(lines(target)) == 192
    r = ranker("score", "--papers", LISTING, "--out", "/dev/stdout", "--db", settings.db_path, "--backend", "fake")
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 192
    r = ranker("score", "--papers", LISTING, "--out", tmp_path, "--db", settings.db_path, "--backend", "fake")
    assert r.returncode == 1 and r.stderr == f"error: --out {tmp_path}: is a directory; give a file name\n"


def test_a_full_disk_under_the_run_folder_names_the_file_and_leaves_no_temporary(store, settings, tmp_path):
    d = tmp_path / "tiny"
    store.close()
    with small_disk(d, "64k"):
        r = ranker("run", "--papers", LISTING, "--out", d, "--db", settings.db_path, "--backend", "fake",
                   "--config", _toml(tmp_path))
        err = without_loading(r.stderr)
        assert r.returncode == 1 and len(err.splitlines()) == 1
        assert err.startswith(f"error: --out {d / '2025-05-15-'}") and "No space left on device" in r.stderr
        assert sorted(p.name for p in d.iterdir()) == ["2025-05-15-run.json"]           # no .tmp / .part
        m = json.loads((d / "2025-05-15-run.json").read_text())
        assert m["status"] == "failed" and "No space left on device" in m["error"]


# --------------------------------------------------------------------------- unreadable rows are reported
def test_run_and_score_report_the_rows_they_skip(store, settings, tmp_path):
    """3 unreadable rows and 1 overlong abstract: each command that reads papers says so the way `ranker
    prefilter` does (a count and the first place), and goes on with the rest."""
    rows = LISTING.read_text().splitlines()[:10]
    long = json.loads(rows[4])
    long["abstract"] = "x " * 15_000
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join([rows[0], "{not json", rows[1], '{"title": "no id"}', json.dumps(long), rows[2],
                              '{"id": "2505.99999"}', *rows[5:]]) + "\n")
    want = [f"warning: 3 records skipped (unreadable or without id/title); first at {bad}:2",
            f"warning: 1 overlong abstract/title/author/comment cut to 20,000/1,000/1,000/5,000 characters; "
             f"first at {bad}:5"]
    store_vectors(store, list(read_papers(bad)))             # the cut abstract's vector too: no model is loaded
    store.close()
    for cmd in (["prefilter", "--out", tmp_path / "r.jsonl"],
                ["score", "--out", tmp_path / "s.jsonl", "--backend", "fake"],
                ["run", "--out", tmp_path / "out", "--backend", "fake", "--config", _toml(tmp_path)]):
        r = ranker(*cmd, "--papers", bad, "--db", settings.db_path)
        assert r.returncode == 0, r.stderr
        assert [x for x in r.stderr.splitlines() if x.startswith("warning:")] == want, (cmd[0], r.stderr)


def test_the_novelty_context_without_a_usable_index_stops_the_run_with_one_line(tmp_path):
    """The prefilter only warns when the index cannot be written (derived data); scoring with the novelty
    context needs the index, so the run stops with one line naming the setting, and no score is stored
    under the context's prompt hash without its context."""
    from ranker.errors import RankerError
    s = fake_settings(tmp_path, top=10, novelty_context=2)
    notes = []
    with vector_store(s, DAYS / "2025-05-15" / "listing.jsonl") as store:
        papers = list(read_papers(DAYS / "2025-05-15" / "listing.jsonl"))
        store.index_dir.parent.mkdir(parents=True, exist_ok=True)
        store.index_dir.write_text("a file where the index folder would be\n")
        day = fetch_day(papers, s, store=store)
        with pytest.raises(RankerError) as e:
            run_day(day, tmp_path / "out", s, store=store, warn=notes.append)
        assert e.value.key == "scoring.novelty_context" and str(store.index_dir) in str(e.value)
        assert any(n.startswith("index: not updated") for n in notes)       # the prefilter's warning came first
        assert store.conn.execute("SELECT COUNT(*) FROM scores").fetchone()[0] == 0
    manifest = json.loads((tmp_path / "out" / "2025-05-15-run.json").read_text())
    assert manifest["status"] == "failed" and "novelty context" in manifest["error"]



def test_a_calibration_fit_on_the_day_it_ranks_says_so(settings, store, tmp_path):
    """Ranking a day with a calibration that learned that very day's picks gives figures that are not a
    forecast (its recall there is in-sample): the prefilter's summary says so, and only then."""
    from ranker.prefilter.calibrate import fit_data, history_data
    from ranker.prefilter.embed import Embedder
    from ranker.prefilter.history import load_day
    from ranker.prompts import load_prompts
    day = fetch_day(LISTING, settings, store=store)                # 2025-05-15
    flags = {**FLAGS, "top": None, "db": settings.db_path}
    for names in (("2025-04-30", "2025-05-13", "2025-05-15"), ("2025-04-30", "2025-05-13")):
        hist = [load_day(DAYS / d) for d in names]
        for h in hist:
            store_vectors(store, h.papers)
        f = tmp_path / f"cal-{len(names)}.json"
        fit_data(history_data(hist, load_prompts(), embedder=Embedder("minilm"), store=store)).save(f)
        pre = prefilter_day(day.papers, resolve(flags={**flags, "calibration": f}, env={}), store=store)
        said = "fit on this day" in pre.summary()
        assert said == ("2025-05-15" in names) and pre.fit_on == ["2025-05-15"][:int(said)], pre.summary()


def test_score_only_kept_on_rows_without_their_kept_says_why_none_is_read(tmp_path):
    """Prefilter output whose `kept` column was dropped (a spreadsheet round trip, a hand edit): every row is
    skipped, and the one-line error says why instead of calling readable lines unreadable."""
    rows = [json.loads(x) for x in LISTING.read_text().splitlines()[:3]]
    edited = tmp_path / "ranked.jsonl"
    edited.write_text("".join(json.dumps({**r, "prefilter_score": 0.5}) + "\n" for r in rows))
    r = ranker("score", "--papers", edited, "--only-kept", "--out", tmp_path / "s.jsonl", "--db",
               tmp_path / "db.sqlite3", "--backend", "fake")
    assert r.returncode == 1 and not (tmp_path / "s.jsonl").exists()
    assert r.stderr == (f"error: --papers {edited}: no valid paper line (3 skipped: 3 with a missing or malformed "
                        f"prefilter verdict (prefilter_score, kept); first at {edited}:1)\n")


# --------------------------------------------------------------------------- two runs of one day at once
def test_a_second_run_of_a_day_under_way_stops_before_touching_anything(store, settings, tmp_path):
    """A cron job and a hand-started `ranker run` of the same day on one database: the second one stops with
    one line naming the first one's process, scores nothing (no paper asked of the model twice) and leaves the
    run folder and the day's ranking to the first, which ends ok with every paper its own."""
    import sqlite3
    import time
    from conftest import RANKER
    store.close()
    db, out, cfg = settings.db_path, tmp_path / "out", tmp_path / "ranker.toml"
    cfg.write_text("[prefilter]\ntop = 8\n[scoring]\nmodel = 'tiny'\nbatch_size = 1\n")    # stored one by one
    args = ["run", "--papers", LISTING, "--out", out, "--db", db, "--backend", "fake", "--config", cfg, "--offline"]
    # 8 papers a second apart: the second run's start (a new interpreter, on a loaded machine) comes well within
    first = subprocess.Popen([*RANKER, *map(str, args), "--backend-option", "delay=1.0"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)

    def scored() -> int:
        c = sqlite3.connect(db)
        try:
            return c.execute("SELECT count(*) FROM scores").fetchone()[0]
        except sqlite3.OperationalError:
            return 0
        finally:
            c.close()
    t0 = time.monotonic()
    while scored() < 1 and first.poll() is None and time.monotonic() - t0 < 60:
        time.sleep(0.05)
    assert first.poll() is None, first.stderr.read()
    manifest = (out / "2025-05-15-run.json").read_bytes()
    with Store(db) as s:
        ranking = s.get_rankings("2025-05-15")
    second = ranker(*args)
    assert second.returncode == 1 and second.stdout == ""
    assert second.stderr.startswith(f"error: {db}: another run of 2025-05-15 is under way on this database "
                                    f"(process {first.pid}, started ") and len(second.stderr.splitlines()) == 1
    assert (out / "2025-05-15-run.json").read_bytes() == manifest          # the first run's, "running"
    with Store(db) as s:
        assert s.get_rankings("2025-05-15") == ranking
    _, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    m = json.loads((out / "2025-05-15-run.json").read_text())
    assert m["status"] == "ok" and (m["counts"]["scored"], m["counts"]["reused"]) == (8, 0)
    c = sqlite3.connect(db)
    assert c.execute("SELECT kind, status FROM runs ORDER BY id").fetchall()[-2:] == [("run", "ok"), ("run", "failed")]
    assert c.execute("SELECT count(*) FROM scores").fetchone()[0] == 8
    c.close()


def test_a_run_of_the_day_recorded_by_another_host_is_said_not_refused(settings, store, tmp_path):
    """A run row another machine left "running" (a database on a shared disk; a container started afresh under a
    new name after its run was killed): its process cannot be looked at from here. Refusing would stop every
    rerun of the day for good where that machine never runs ranker again, so the run goes ahead and says so;
    the row stays as it is (only its own machine can tell its process is gone)."""
    import time
    day = fetch_day(LISTING, settings, store=store)
    with store.transaction() as c:
        c.execute("INSERT INTO runs (kind, started_at, status, params, pid, host) VALUES ('run', ?, 'running', ?, "
                  "4242, 'elsewhere.example')", (time.time() - 60, json.dumps({"day": "2025-05-15"})))
    assert store.holder().startswith("probably ranker run, pid 4242 on elsewhere.example, running since ")
    warnings: list[str] = []
    res = run_day(day, tmp_path / "out", settings, store=store, warn=warnings.append)
    assert res.manifest["status"] == "ok"
    said = [w for w in warnings if "elsewhere.example" in w]
    assert len(said) == 1 and said[0].startswith("a run of 2025-05-15 recorded on elsewhere.example (process "
                                                 "4242, started ") and "still marked running" in said[0], warnings
    m = json.loads((tmp_path / "out" / "2025-05-15-run.json").read_text())
    assert m["status"] == "ok"
    with Store(settings.db_path) as again:                  # and no open here takes it for a dead run
        assert again.conn.execute("SELECT status FROM runs WHERE host='elsewhere.example'").fetchall() == [("running",)]


def test_another_host_s_run_is_said_with_the_offset_of_its_start(settings, store, tmp_path, monkeypatch):
    """Another machine's run still marked running was said as "started 2025-05-16 08:00:00" (and the store's
    holder "running since 08:00:00", no day): this machine's local time without a zone, read as the other
    machine's own clock when it is elsewhere in the world (a shared disk between Tokyo and California), or as
    today when it began yesterday. Both say the day and the offset, naming the row's instant."""
    import re
    import time
    from datetime import datetime
    day = fetch_day(LISTING, settings, store=store)
    at = int(time.time()) - 3600
    with store.transaction() as c:
        c.execute("INSERT INTO runs (kind, started_at, status, params, pid, host) VALUES ('run', ?, 'running', ?, "
                  "4242, 'elsewhere.example')", (at, json.dumps({"day": "2025-05-15"})))
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    warnings: list[str] = []
    try:
        holder = store.holder()
        run_day(day, tmp_path / "out", settings, store=store, warn=warnings.append)
    finally:
        monkeypatch.undo()
        time.tzset()
    (said,) = [w for w in warnings if "elsewhere.example" in w]
    for line in (holder, said):
        (stamp,) = re.findall(r"(?:since|started) (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4})\b", line)
        shown = datetime.fromisoformat(stamp)
        assert shown.utcoffset().total_seconds() == 9 * 3600 and shown.timestamp() == at, line


def test_an_out_that_cannot_be_written_is_refused_before_any_work(tmp_path):
    """`prefilter --out DIR` was refused only once the embedder had loaded and embedded the day, `score` once the
    model had scored it, `fetch`, `run --out FILE` and `eval` once the --db was made (fetch and run had stored the
    papers), `compare` once it had read every input: one line now, before any of that."""
    db, f = tmp_path / "new" / "db.sqlite3", tmp_path / "f.txt"
    f.write_text("")
    a_dir = f"error: --out {tmp_path}: is a directory; give a file name\n"
    for args, said in ((("prefilter", "--papers", LISTING, "--out", tmp_path), a_dir),
                       (("score", "--papers", LISTING, "--backend", "fake", "--model", "tiny", "--out", tmp_path),
                        a_dir),
                       (("fetch", "--from", LISTING, "--out", tmp_path), a_dir),
                       (("run", "--papers", LISTING, "--backend", "fake", "--model", "tiny", "--offline", "--out", f),
                        f"error: --out {f}: not a directory\n")):
        r = ranker(*args, "--db", db)
        assert r.returncode == 1 and r.stderr == said, r.stderr        # no "loading ..." line before it
        assert not (tmp_path / "new").exists()
    gpt = DAYS / "2025-05-15" / "gpt_scores.jsonl"
    r = ranker("compare", "--gpt", gpt, "--local", gpt, "--out", f)
    assert r.returncode == 1 and r.stderr == f"error: --out {f}: not a directory\n", r.stderr


def test_the_manifest_says_which_fit_of_the_calibration_file_ranked_the_day(settings, store, tmp_path):
    """`ranker calibrate` weekly rewrites the same file (calib.json, which ranker.toml names): the manifests of
    the days it ranked all said "calibration": "calib.json", whichever week's fit it was, so a day's ranking
    could not be told apart from a rerun's under the next week's. Each manifest now records the fit: when it was
    made and the days and labels it learnt from."""
    from ranker.prefilter.calibrate import fit_data, history_data
    from ranker.prefilter.embed import Embedder
    from ranker.prefilter.history import load_day
    from ranker.prompts import load_prompts
    day = fetch_day(LISTING, settings, store=store)
    flags = {**FLAGS, "top": None, "db": settings.db_path, "calibration": tmp_path / "calib.json"}
    res = run_day(day, tmp_path / "out", resolve(flags={**FLAGS, "db": settings.db_path}, env={}), store=store)
    assert res.manifest["calibration"] is None and res.manifest["calibration_fit"] is None
    hist = [load_day(DAYS / d) for d in ("2025-05-13", "2025-05-15", "2025-06-23")]
    for h in hist:
        store_vectors(store, h.papers)
    fits, sizes = [], []
    for week in (hist[:2], hist):
        cal = fit_data(history_data(week, load_prompts(), embedder=Embedder("minilm"), store=store))
        cal.trained_on["created"] = f"2025-06-{len(week):02d} 07:00:00"
        cal.save(tmp_path / "calib.json")
        fits.append(run_day(day, tmp_path / "out", resolve(flags=flags, env={}), store=store).manifest)
        sizes.append({"papers": sum(len(h.papers) for h in week), "picks": sum(len(h.picks) for h in week)})
    assert [m["calibration_fit"] for m in fits] == [
        {"created": "2025-06-02 07:00:00", "days": 2, "first_day": "2025-05-13", "last_day": "2025-05-15",
         **sizes[0], "labels": 0},
        {"created": "2025-06-03 07:00:00", "days": 3, "first_day": "2025-05-13", "last_day": "2025-06-23",
         **sizes[1], "labels": 0}]
    assert json.loads(res.files["manifest"].read_text())["calibration_fit"] == fits[-1]["calibration_fit"]


def test_the_loading_note_names_what_the_backend_loads(tmp_path):
    """`ranker run --backend fake` said "loading smollm2-135m" (the default preset's name), as if that model were
    loaded: the fake backend loads none and now names itself (and the name its scores are stored under). A
    backend that loads a model names it; one only its server knows, the server, then the model it serves."""
    from ranker.steps import loading_stage
    env = {"RANKER_HOME": str(tmp_path)}
    fake = resolve(flags={"backend": "fake"}, env=env)
    assert loading_stage(fake) == loading_stage(fake, FakeBackend("smollm2-135m")) == \
        "loading the fake backend (fake:smollm2-135m)"
    assert loading_stage(resolve(flags={"backend": "vllm"}, env=env)) == "loading smollm2-135m"
    assert loading_stage(resolve(flags={"backend": "transformers", "model": "./m"}, env=env)) == "loading ./m"
    assert loading_stage(resolve(flags={"backend": "openai", "model": "gpt-4o"}, env=env)) == "loading gpt-4o"
    served = resolve(flags={"backend": "openai", "backend_option": ["base_url='http://127.0.0.1:9/v1'"]}, env=env)
    assert loading_stage(served) == "loading the model http://127.0.0.1:9/v1 serves"


def test_a_ctrl_c_while_a_reruns_model_loads_counts_the_stored_scores_it_keeps(settings, store, monkeypatch):
    """A rerun of a stopped day: 3 scores stored, 5 papers pending, and the Ctrl-C comes while the model loads (the
    longest wait of a rerun: vLLM's start). The line said "0 papers scored so far are kept", as if the 3 were lost;
    it says them apart from what this command scored, as the scoring stage's line does."""
    from ranker.errors import Interrupted
    papers = list(read_papers(LISTING))[:8]
    first = score_day(papers[:3], settings, store=store, backend=FakeBackend("tiny"))
    assert first.scored == 3

    def ctrl_c_while_loading(*args, **kwargs):
        raise KeyboardInterrupt                  # what SIGINT raises in the loading engine
    monkeypatch.setattr("ranker.steps.make_backend", ctrl_c_while_loading)
    with pytest.raises(Interrupted) as e:
        score_day(papers, settings, store=store)
    assert (e.value.stage, e.value.scored, e.value.reused, e.value.due) == ("scoring (loading the model)", 3, 3, 8)
    assert str(e.value) == ("interrupted during scoring (loading the model); 0 papers scored now and 3 reused from "
                            "the store are kept; rerun to resume")
    with pytest.raises(Interrupted) as e:        # a first run: nothing stored, the line as it was
        score_day(list(read_papers(LISTING))[10:12], settings, store=store)
    assert str(e.value) == "interrupted during scoring (loading the model); 0 papers scored so far are kept; " \
                           "rerun to resume"


def test_a_day_without_papers_is_refused_before_the_days_digest_is_replaced(store, settings, tmp_path, monkeypatch):
    """run_day on a Day holding no papers (fetch_day(keep=False), a file or feed of no announcements, read on a
    day whose digest the folder holds) wrote an empty digest over that day's files, ranking and digest record
    (`ranker run` says "nothing to do" before it calls run_day; a program using the library got no word). It is
    an InputError saying why the day is empty, and nothing is touched."""
    import ranker.sources.days as days
    out = tmp_path / "out"
    run_day(fetch_day(LISTING, settings, store=store), out, settings, store=store)
    before = {f.name: f.read_bytes() for f in out.iterdir()}
    ranking, digest = store.get_rankings("2025-05-15"), store.get_day_digest("2025-05-15")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    monkeypatch.setattr(days, "current_day", lambda *a, **k: "2025-05-15")     # read on the day's own evening
    unkept = fetch_day(LISTING, settings, store=store, keep=False)
    for day, why, empty_day in [(unkept, "fetch_day(keep=False) returned the day without its papers", False),
                                (fetch_day(empty, settings, store=store), f"no announcements in {empty}", True)]:
        assert day.date == "2025-05-15" and day.papers == []
        with pytest.raises(InputError, match=r"^no papers to rank: ") as e:
            run_day(day, out, settings, store=store)
        assert why in str(e.value) and "--" not in str(e.value)
        assert isinstance(e.value, EmptyDay) is empty_day      # a day with nothing to rank, not the caller's doing
        assert {f.name: f.read_bytes() for f in out.iterdir()} == before
        assert store.get_rankings("2025-05-15") == ranking and store.get_day_digest("2025-05-15") == digest


def test_a_daily_script_skips_a_day_without_announcements_by_its_error_class(store, settings, tmp_path):
    """A library user's daily job on a holiday got an InputError, the class a bad file raises too: it could
    only skip the day by reading the message. run_day raises EmptyDay (an InputError) for a day with no
    papers to rank, so `except EmptyDay` skips the holiday and a bad file still stops the job."""
    holiday = tmp_path / "holiday.jsonl"
    holiday.write_text("")
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json\n")
    skipped = []
    for path in (holiday, LISTING):
        try:
            run_day(fetch_day(path, settings, store=store), tmp_path / "out", settings, store=store)
        except EmptyDay as e:
            skipped.append((path, str(e)))
    assert [p for p, _ in skipped] == [holiday] and "no announcements" in skipped[0][1]
    assert (tmp_path / "out" / "2025-05-15-output.md").exists()
    with pytest.raises(InputError) as e:
        run_day(fetch_day(bad, settings, store=store), tmp_path / "out", settings, store=store)
    assert not isinstance(e.value, EmptyDay)


def test_a_backend_name_no_backend_has_is_refused_before_the_day_is_ranked(store, settings, tmp_path):
    """A program that built its Settings with a misspelt backend ("vlm") had run_day rank the whole day (the
    embedder's minutes on a large day) and rewrite the folder's manifest as failed before score_day said the
    name was unknown (the CLI checks it as it reads the settings). run_day says so first, naming the setting
    and the backends there are, and touches nothing."""
    from ranker.errors import ConfigError
    out = tmp_path / "out"
    day = fetch_day(LISTING, settings, store=store)
    run_day(day, out, settings, store=store)
    before = {f.name: f.read_bytes() for f in out.iterdir()}
    last = store.last_run("run")
    wrong = fake_settings(tmp_path, **{**FLAGS, "backend": "vlm"})
    with pytest.raises(ConfigError) as e:
        run_day(day, out, wrong, store=store)
    assert e.value.key == "scoring.backend" and "choose one of: fake, openai, transformers, vllm" in str(e.value)
    assert {f.name: f.read_bytes() for f in out.iterdir()} == before
    assert store.last_run("run") == last               # no run recorded either
