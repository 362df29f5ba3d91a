"""The digest folder's index (ranker.runindex): rebuilt from the days' manifests, whatever else the folder holds."""
import json

from ranker.runindex import write_index


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
