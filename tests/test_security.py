"""What hostile or careless input cannot get out of ranker: a server URL's password into the log file, an
outsized request body into `ranker serve`'s memory."""
from __future__ import annotations

import json
import os
import stat



def test_a_password_in_the_servers_url_stays_out_of_the_log_file_which_is_the_owners_only(tmp_path):
    """`ranker score` against https://user:PASSWORD@host/v1 (a proxy in front of a lab's server): error lines, the
    store and run.json had the password redacted, but httpx logs every request's URL at INFO, and the command's
    log file (RANKER_HOME/logs, made readable by every user of the machine) held it once a request."""
    from conftest import DAYS, ranker
    from test_backends_openai_errors import Server
    row = json.loads((DAYS / "2025-05-15" / "listing.jsonl").open().readline())
    row["abstract"] += " MODE=ok"
    papers = tmp_path / "p.jsonl"
    papers.write_text(json.dumps(row) + "\n")
    server = Server()
    try:
        url = server.url.replace("://", "://lab:hunter2-pass@")
        r = ranker("score", "--papers", papers, "--out", tmp_path / "s.jsonl", "--backend", "openai",
                   "--db", tmp_path / "db.sqlite3", env={"OPENAI_BASE_URL": url, "RANKER_HOME": tmp_path / "home"})
    finally:
        server.close()
    assert r.returncode == 0, r.stderr
    (log,) = (tmp_path / "home" / "logs").iterdir()
    text = log.read_text()
    assert "HTTP Request: POST http://lab:[redacted]@127.0.0.1:" in text, text    # the requests are logged ...
    assert "hunter2" not in text + r.stderr                                         # ... without the password
    assert stat.S_IMODE(os.stat(log).st_mode) & 0o077 == 0, oct(os.stat(log).st_mode)
