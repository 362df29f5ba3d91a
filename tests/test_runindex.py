"""The digest folder's index (ranker.runindex): rebuilt from the days' manifests, whatever else the folder holds."""
import json

from ranker.runindex import write_index

from conftest import python


def test_a_manifest_that_is_not_a_run_manifest_is_left_out_not_an_error(tmp_path):
    # a manifest edited by hand or half restored from a backup must not fail the next day's run at its end
    (tmp_path / "2025-05-15-run.json").write_text(json.dumps({"status": "ok", "model": "m",
                                                              "counts": {"papers": 5, "kept": 4, "scored": 3}}))
    (tmp_path / "2025-05-14-run.json").write_text("[]")
    (tmp_path / "2025-05-13-run.json").write_text(json.dumps({"status": "ok", "counts": [1, 2]}))
    (tmp_path / "2025-05-12-run.json").write_text(json.dumps({"status": 3, "counts": {"scored": "3", "kept": 2}}))
    files = write_index(tmp_path)
    days = json.loads(files["index_json"].read_text())["days"]
    assert [d["day"] for d in days] == ["2025-05-15", "2025-05-13", "2025-05-12"]
    assert days[0]["scored"] == 3 and days[1]["papers"] is None
    assert days[2]["scored"] is None and days[2]["kept"] == 2 and days[2]["status"] == "unknown"
    assert "| [2025-05-15](2025-05-15-output.md) | ok | 5 | 4 | 3 |" in files["index_md"].read_text()


def test_a_day_whose_rerun_stopped_keeps_the_link_to_its_earlier_digest(tmp_path):
    """A rerun interrupted (or failed) leaves the earlier run's digest whole beside a manifest that says so: the
    next day's run rewrites the index, which still leads to that digest; a day never finished leads nowhere."""
    (tmp_path / "2025-05-15-run.json").write_text(json.dumps({"status": "interrupted", "error": "interrupted"}))
    (tmp_path / "2025-05-15-output.md").write_text("# Personalized Daily ArXiv Papers 2025-05-15\n")
    (tmp_path / "2025-05-14-run.json").write_text(json.dumps({"status": "failed", "error": "no model"}))
    files = write_index(tmp_path)
    days = {d["day"]: d for d in json.loads(files["index_json"].read_text())["days"]}
    assert days["2025-05-15"]["digest"] == "2025-05-15-output.md" and days["2025-05-14"]["digest"] is None
    md = files["index_md"].read_text()
    assert "| [2025-05-15](2025-05-15-output.md) | interrupted | - |" in md and "| 2025-05-14 | failed | - |" in md


def test_a_failed_rerun_row_names_the_model_of_the_digest_it_links(tmp_path):
    """A rerun under model b that failed after scoring some papers records b (its failures' model) and the run
    whose digest the folder still holds: the row links that digest, so it names that run's model, a."""
    (tmp_path / "2025-05-15-run.json").write_text(json.dumps({"status": "failed", "model": "b", "run_id": 9,
                                                              "shown_run": {"run_id": 7, "model": "a"}}))
    (tmp_path / "2025-05-15-output.md").write_text("# Personalized Daily ArXiv Papers 2025-05-15\n")
    # the same without the earlier digest (a first run that failed): no link, the attempt's model
    (tmp_path / "2025-05-14-run.json").write_text(json.dumps({"status": "failed", "model": "b",
                                                              "shown_run": {"run_id": 7, "model": "a"}}))
    days = json.loads(write_index(tmp_path)["index_json"].read_text())["days"]
    assert [(d["day"], d["digest"], d["model"]) for d in days] == [
        ("2025-05-15", "2025-05-15-output.md", "a"), ("2025-05-14", None, "b")]


def test_two_runs_into_one_folder_write_its_index_in_turn(tmp_path, monkeypatch):
    """Two runs of other days into one folder end at about the same time: the one that read the manifests first
    (the other day still running) wrote its index last, and the folder's index said running, linking no digest,
    for a day that had finished. Reading and writing the index take turns: the last one written is the latest."""
    import threading

    from ranker import runindex

    (tmp_path / "2025-05-15-run.json").write_text(json.dumps({"status": "ok", "run_id": 1}))
    (tmp_path / "2025-05-15-output.md").write_text("# Personalized Daily ArXiv Papers 2025-05-15\n")
    (tmp_path / "2025-05-16-run.json").write_text(json.dumps({"status": "running", "run_id": 2}))
    reading, finished, waits = threading.Event(), threading.Event(), threading.Event()
    real_lock = getattr(runindex, "lock_exclusive", None)

    def lock_exclusive(fd, waiting, **kw):
        real_lock(fd, lambda: (waiting(), waits.set()), **kw)

    monkeypatch.setattr(runindex, "lock_exclusive", lock_exclusive, raising=False)

    def ended(run_id, day):            # the first run reads the store: the other run has not finished yet
        reading.set()
        assert finished.wait(10)
        return None

    first = threading.Thread(target=write_index, args=(tmp_path, ended))
    first.start()
    assert reading.wait(10)
    # the other run finishes: its files and manifest, then its own index (waiting while the first one writes)
    (tmp_path / "2025-05-16-output.md").write_text("# Personalized Daily ArXiv Papers 2025-05-16\n")
    (tmp_path / "2025-05-16-run.json").write_text(json.dumps({"status": "ok", "run_id": 2}))
    second = threading.Thread(target=lambda: (write_index(tmp_path), waits.set()))
    second.start()
    assert waits.wait(10)
    finished.set()
    first.join(10)
    second.join(10)
    days = {d["day"]: d for d in json.loads((tmp_path / "index.json").read_text())["days"]}
    assert days["2025-05-16"]["status"] == "ok" and days["2025-05-16"]["digest"] == "2025-05-16-output.md"
    assert "| [2025-05-16](2025-05-16-output.md) | ok |" in (tmp_path / "index.md").read_text()


def test_a_full_disk_while_the_index_is_rewritten_leaves_both_files_as_they_were(tmp_path, monkeypatch):
    """index.json and index.md are one set: a disk that fills while the Markdown one is written left the new
    JSON index beside the old Markdown one, which disagree on the days."""
    import pytest

    from conftest import disk_full_writing
    from ranker.errors import InputError
    (tmp_path / "2025-05-15-run.json").write_text(json.dumps({"status": "ok", "counts": {"papers": 5}}))
    files = write_index(tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    (tmp_path / "2025-05-16-run.json").write_text(json.dumps({"status": "ok", "counts": {"papers": 7}}))
    failed = disk_full_writing(monkeypatch, "index.md")
    with pytest.raises(InputError) as e:
        write_index(tmp_path)
    assert failed and str(e.value).startswith(f"{files['index_md']}: cannot write: No space left on device")
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.name != "2025-05-16-run.json"} == before


def test_a_manifest_nested_too_deeply_is_left_out_as_bad_json_is(tmp_path):
    """A '<day>-run.json' of '[' * 100000 raised RecursionError past the readers' `except ValueError`: the run
    index, compare's note on who scored a folder and a rerun's earlier-digest lookup all died 'unexpected
    failure'. It is left out, as a manifest that is not JSON is."""
    from ranker.compare import local_scorers
    from ranker.steps import shown_run
    (tmp_path / "2025-05-15-run.json").write_text(json.dumps({"status": "ok", "model": "m",
                                                              "prompts": {"hash": "h"}}))
    (tmp_path / "2025-05-15-scores.jsonl").write_text("")
    deep = tmp_path / "2025-05-14-run.json"
    deep.write_text("[" * 100_000)
    (tmp_path / "2025-05-14-scores.jsonl").write_text("")
    files = write_index(tmp_path)
    assert [d["day"] for d in json.loads(files["index_json"].read_text())["days"]] == ["2025-05-15"]
    assert local_scorers(sorted(tmp_path.glob("*-scores.jsonl"))) == [
        {"model": "m", "prompt_hash": "h", "days": ["2025-05-15"]}]
    assert shown_run(deep) is None


def test_a_fifo_named_as_a_manifest_is_left_out_and_a_link_to_one_is_read_without_hanging_the_index(tmp_path):
    """read_days read every <day>-run.json it listed: a FIFO with that name (or a link to one) hung it for good
    (the read waits for a writer), and with it every later run into the folder, at its index. A FIFO is not a
    manifest and is left out, as an unreadable manifest is; a link to a manifest (a folder of links to runs'
    files: git-annex, stow) is one and is indexed. In a process of its own, with a timeout: it cannot hang."""
    import os
    import stat
    out = tmp_path / "out"
    out.mkdir()
    (out / "2026-01-02-run.json").write_text(json.dumps({"status": "ok", "counts": {"papers": 5}}))
    os.mkfifo(out / "2026-01-01-run.json")
    (tmp_path / "elsewhere.json").write_text(json.dumps({"status": "ok", "counts": {"papers": 7}}))
    (out / "2026-01-03-run.json").symlink_to(tmp_path / "elsewhere.json")
    os.mkfifo(tmp_path / "fifo")
    (out / "2026-01-04-run.json").symlink_to(tmp_path / "fifo")
    done = python("import sys; from ranker.runindex import write_index; write_index(sys.argv[1])", out)
    assert done.returncode == 0, done.stderr
    days = json.loads((out / "index.json").read_text())["days"]
    assert [(d["day"], d["papers"]) for d in days] == [("2026-01-03", 7), ("2026-01-02", 5)]
    assert stat.S_ISFIFO(os.lstat(out / "2026-01-01-run.json").st_mode) and (out / "2026-01-03-run.json").is_symlink()


def test_a_fifo_named_as_a_manifest_does_not_hang_compare_or_a_rerun_s_lookup(tmp_path):
    """compare's note on who scored a folder read the <day>-run.json beside each scores file, and a rerun read
    the day's manifest for the run whose digest the folder holds: a FIFO there hung both for good. Left out, as
    the run index leaves it. In a process of its own, with a timeout: the test cannot hang."""
    import os
    (tmp_path / "2025-05-15-run.json").write_text(json.dumps({"status": "ok", "model": "m",
                                                              "prompts": {"hash": "h"}}))
    (tmp_path / "2025-05-15-scores.jsonl").write_text("")
    os.mkfifo(tmp_path / "2025-05-14-run.json")
    (tmp_path / "2025-05-14-scores.jsonl").write_text("")
    code = ("import sys; from pathlib import Path; from ranker.compare import local_scorers; "
            "from ranker.steps import shown_run; d = Path(sys.argv[1]); "
            "print(local_scorers(sorted(d.glob('*-scores.jsonl'))), shown_run(d / '2025-05-14-run.json'))")
    done = python(code, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "[{'model': 'm', 'prompt_hash': 'h', 'days': ['2025-05-15']}] None\n"
