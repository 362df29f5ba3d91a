"""The openai backend against a scripted OpenAI-like server on 127.0.0.1: concurrency, usage and cost,
retries on 429/5xx/timeouts, unreadable answers, schema refusal, credentials, expected-score mode.

The user message of each request names how the server should behave: "MODE=ok", "MODE=429once", ..."""
from __future__ import annotations

import json
import math
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ranker.backends.base import Request
from ranker.backends.openai_backend import OpenAIBackend, relax_schema
from ranker.backends.schema import check_answer, paper_schema
from ranker.errors import BackendError, ConfigError
from ranker.records import Usage

from conftest import ctrl_c_when
from fixture_server import closed_port_url

KEY = "sk-test-SECRET-0123456789"
CONTEXT, ANSWER_TOKENS = 2048, 40         # the context of the scripted server's model, a whole answer's tokens


def answer_for(schema: dict) -> dict:
    props = schema["properties"]
    if "papers" in props:
        items = props["papers"].get("prefixItems") or []
        return {"papers": [answer_for(o) for o in items]}
    return {"ARXIVID": props["ARXIVID"]["enum"][0], "COMMENT": "matches criterion 1",
            "RELEVANCE": 10, "NOVELTY": 7}


def logprobs_for(text: str) -> dict:
    """Characters as tokens; at the RELEVANCE value '1' (then '0') and at NOVELTY '7', with rivals."""
    content = []
    for i, ch in enumerate(text):
        tops = [{"token": ch, "logprob": 0.0}]
        before = text[:i]
        if before.endswith('"RELEVANCE":'):
            tops = [{"token": "1", "logprob": -0.5}, {"token": "8", "logprob": -1.0}]
        elif before.endswith('"RELEVANCE":1'):
            tops = [{"token": "0", "logprob": -0.1}, {"token": ",", "logprob": -2.4}]
        elif before.endswith('"NOVELTY":'):
            tops = [{"token": "7", "logprob": -0.2}, {"token": "6", "logprob": -1.7}]
        content.append({"token": ch, "logprob": tops[0]["logprob"], "bytes": list(ch.encode()),
                        "top_logprobs": tops})
    return {"content": content}


class Server:
    def __init__(self, port: int = 0):
        self.bodies: list[dict] = []
        self.auth: list[str | None] = []
        self.attempts: dict[str, int] = {}
        self.in_flight = 0
        self.max_in_flight = 0
        self.connections = 0              # connections a client holds open (kept alive between requests)
        self.models = ["served-model"]    # what GET /v1/models lists
        self.only_its_models = False      # answer a request for another model as vLLM's server does (404)
        self.not_served_body: dict | None = None    # ... with this body instead (a gateway's, naming no model)
        self.models_status = 200          # how GET /v1/models answers (a 500: it cannot tell)
        self.key: str | None = None       # the key it requires (vLLM's --api-key), or none
        self.answered = 0                 # requests answered (a hanging one is not, until the server closes)
        self.release = threading.Event()  # ends the hanging requests: set when the server closes
        self.ok_sent = threading.Event()  # an "ok" request answered: the "afterok" ones answer after it
        self.lock = threading.Lock()
        srv = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _send(self, status, payload, headers=None, raw=None):
                body = raw if raw is not None else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                try:
                    self.wfile.write(body)
                except OSError:
                    pass

            def handle(self):
                with srv.lock:
                    srv.connections += 1
                try:
                    super().handle()          # request after request, until the client closes the connection
                finally:
                    with srv.lock:
                        srv.connections -= 1

            def _refused(self) -> bool:
                """A path without its /v1 or a missing key, answered as vLLM's server does."""
                if not self.path.startswith("/v1/"):      # a base URL without its /v1
                    self._send(404, {"detail": "Not Found"})
                    return True
                if srv.key is not None and self.headers.get("Authorization") != f"Bearer {srv.key}":
                    self._send(401, {"error": "Unauthorized"})
                    return True
                return False

            def do_GET(self):  # noqa: N802
                if not self._refused() and srv.models_status != 200:
                    self._send(srv.models_status, {"error": "internal error"})
                elif not self._refused():
                    self._send(200, {"object": "list", "data": [{"id": m, "object": "model"} for m in srv.models]})

            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with srv.lock:
                    srv.bodies.append(body)
                    srv.auth.append(self.headers.get("Authorization"))
                    srv.in_flight += 1
                    srv.max_in_flight = max(srv.max_in_flight, srv.in_flight)
                try:
                    if self._refused():
                        return
                    if srv.only_its_models and body["model"] not in srv.models and srv.not_served_body:
                        return self._send(404, srv.not_served_body)
                    if srv.only_its_models and body["model"] not in srv.models:
                        return self._send(404, {"error": {"message": f"The model `{body['model']}` does not exist.",
                                                          "type": "NotFoundError", "param": "model", "code": 404}})
                    self._answer(body)
                finally:
                    with srv.lock:
                        srv.in_flight -= 1
                        srv.answered += 1

            def _answer(self, body):
                user = body["messages"][-1]["content"] if body["messages"][-1]["role"] == "user" \
                    else body["messages"][-2]["content"]
                mode = re.search(r"MODE=(\w+)", user).group(1)
                with srv.lock:
                    n = srv.attempts[user] = srv.attempts.get(user, 0) + 1
                if body.get("continue_final_message"):     # a probe: the token after the answer so far
                    if mode == "probe500":
                        return self._send(500, {"error": {"message": "the probe exploded"}})
                    tops = [{"token": "0", "logprob": -0.1}, {"token": "}", "logprob": -2.4}]
                    return self._send(200, {"id": "p", "object": "chat.completion", "model": body["model"],
                                            "choices": [{"index": 0, "finish_reason": "length",
                                                         "message": {"role": "assistant", "content": "0"},
                                                         "logprobs": {"content": [{"token": "0", "logprob": -0.1,
                                                                                   "top_logprobs": tops}]}}],
                                            "usage": {"prompt_tokens": 1040, "completion_tokens": 1}})
                ctx = re.fullmatch(r"ctx(old|new|bound|gone)_(\d+)", mode)
                if ctx:
                    return self._context(body, ctx.group(1), int(ctx.group(2)))
                if mode == "slow" or mode == "ok":
                    time.sleep(0.3 if mode == "slow" else 0)
                elif mode == "afterok":         # answered after an "ok" one, however late the client sent it
                    srv.ok_sent.wait(60)
                    time.sleep(0.3)
                elif mode == "429once" and n == 1:
                    return self._send(429, {"error": {"message": "rate limited"}}, {"Retry-After": "0"})
                elif mode == "429long":
                    return self._send(429, {"error": {"message": "rate limited"}}, {"Retry-After": "120"})
                elif mode == "500":
                    return self._send(500, {"error": {"message": "upstream exploded"}})
                elif mode == "503":             # a proxy in front of a server that is still loading
                    return self._send(503, None, raw=b"<html>503 Service Temporarily Unavailable</html>")
                elif mode == "503long":         # busy for a while, and says for how long
                    return self._send(503, {"error": {"message": "overloaded"}}, {"Retry-After": "120"})
                elif mode == "garbage":
                    return self._send(200, None, raw=b"<html>a proxy login page</html>")
                elif mode in ("nomessage", "numeric"):   # JSON, but no message, or a content that is no text
                    return self._send(200, {"choices": [{"index": 0, "finish_reason": "stop", "message":
                                                         None if mode == "nomessage" else {"content": 7}}]})
                elif mode == "drop":           # the connection closed before any answer: the server is there
                    self.close_connection = True
                    return
                elif mode == "hang":             # until the test is over (it used to end after 3 s)
                    srv.release.wait(120)
                    return self._send(200, {})
                elif mode in ("echo", "echo500"):   # a server (or proxy) that echoes the request's credentials
                    auth = self.headers.get("Authorization") or ""
                    return self._send(400 if mode == "echo" else 500, {"error": {
                        "message": f"bad request; you sent Authorization: {auth} (key {auth[7:]})"}})
                elif mode == "denied":
                    return self._send(401, {"error": {"message": "Incorrect API key provided"}})
                elif mode == "strict":
                    schema = body["response_format"]["json_schema"]["schema"]
                    if "maxLength" in json.dumps(schema):
                        return self._send(400, {"error": {"message": "Invalid schema for response_format "
                                                          "'paper_scores': 'maxLength' is not permitted."}})
                schema = body["response_format"]["json_schema"]["schema"]
                if "papers" in schema["properties"] and "prefixItems" not in schema["properties"]["papers"]:
                    ids = schema["properties"]["papers"]["items"]["properties"]["ARXIVID"]["enum"]
                    data = {"papers": [{**answer_for(paper_schema([i], 50))} for i in ids]}
                else:
                    data = answer_for(schema)
                text = json.dumps(data, separators=(",", ":"))
                choice = {"index": 0, "finish_reason": "stop",
                          "message": {"role": "assistant", "content": text}}
                if mode == "parts":                # the content as a list of text parts
                    choice["message"]["content"] = [{"type": "text", "text": text[:9]},
                                                    {"type": "text", "text": text[9:]}]
                if body.get("logprobs"):
                    choice["logprobs"] = logprobs_for(text)
                self._send(200, {"id": "x", "object": "chat.completion", "model": body["model"],
                                 "choices": [choice],
                                 "usage": {"prompt_tokens": 1000, "completion_tokens": 40, "total_tokens": 1040,
                                           "prompt_tokens_details": {"cached_tokens": 600}}})
                if mode == "ok":
                    srv.ok_sent.set()

            def _context(self, body, version, prompt):
                """A model with a context of CONTEXT tokens, this request's prompt `prompt` tokens long and a
                whole answer ANSWER_TOKENS long, as vLLM's versions treat a prompt and budget that do not fit:
                refused with the sizes (old: exactly; bound: the prompt only to one token past what fits),
                or (new, 0.32) the budget cut to the room the prompt leaves; a prompt longer than the context
                refused in any version (gone: with a 500, as 0.18's engine did)."""
                budget = body["max_tokens"]
                if prompt >= CONTEXT or (version in ("old", "bound") and prompt + budget > CONTEXT):
                    if version == "old":
                        message = (f"This model's maximum context length is {CONTEXT} tokens. However, you requested "
                                   f"{prompt + budget} tokens ({prompt} in the messages, {budget} in the completion). "
                                   "Please reduce the length of the messages or completion.")
                    elif version == "bound":
                        seen = CONTEXT - budget + 1
                        message = (f"This model's maximum context length is {CONTEXT} tokens. However, you requested "
                                   f"{budget} output tokens and your prompt contains at least {seen} input tokens, "
                                   f"for a total of at least {seen + budget} tokens. Please reduce the length of the "
                                   "input prompt or the number of requested output tokens.")
                    else:
                        message = (f"This model's maximum context length is {CONTEXT} tokens. However, your prompt "
                                   f"contains at least {CONTEXT + 1} input tokens, which exceeds this limit even "
                                   "without any output tokens. Please reduce the length of the input prompt.")
                    return self._send(500 if version == "gone" else 400, {"error": {
                        "message": message, "type": "BadRequestError", "param": "input_tokens", "code": 400}})
                room = min(budget, CONTEXT - prompt)
                text = json.dumps(answer_for(body["response_format"]["json_schema"]["schema"]), separators=(",", ":"))
                done = ANSWER_TOKENS <= room
                self._send(200, {"id": "c", "object": "chat.completion", "model": body["model"], "choices": [{
                    "index": 0, "finish_reason": "stop" if done else "length",
                    "message": {"role": "assistant", "content": text if done else text[:room]}}],
                    "usage": {"prompt_tokens": prompt, "completion_tokens": ANSWER_TOKENS if done else room}})

        class Quiet(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, *a):
                pass

        self.httpd = Quiet(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


def req(arxiv_id: str, mode: str, ids=None) -> Request:
    ids = ids or [arxiv_id]
    return Request(arxiv_id, [{"role": "system", "content": "judge"},
                              {"role": "user", "content": f"paper {arxiv_id} MODE={mode}"}],
                   paper_schema(ids, 50), max_tokens=100)


def backend(server, model="gpt-4o-mini", **kw) -> OpenAIBackend:
    kw.setdefault("backoff", 0.01)
    kw.setdefault("max_backoff", 0.05)
    return OpenAIBackend(model, base_url=server.url, **kw)


def test_concurrent_requests_usage_cost_and_the_key(server, in_process_command):
    from ranker.backends import make_backend
    from ranker.settings import resolve
    # the key and the server come from the environment, through the settings, as in `ranker score`
    s = resolve(flags={"backend": "openai", "model": "gpt-4o-mini",
                       "backend_option": ["concurrency=4", "backoff=0.01", "max_backoff=0.05"]},
                env={"OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": server.url})
    assert KEY not in repr(s) and KEY not in json.dumps(s.public())
    be = make_backend(s)
    reqs = [req(f"2506.0000{i}", "slow") for i in range(8)]
    out = be.generate(reqs)
    assert [r.key for r in out] == [r.key for r in reqs]
    for r in out:
        assert r.ok, r.error
        check_answer(json.loads(r.text), [r.key], 50)
    assert server.max_in_flight >= 2                      # really concurrent
    assert server.max_in_flight <= 4
    assert all(a == f"Bearer {KEY}" for a in server.auth)
    body = next(b for b in server.bodies if reqs[0].key in b["messages"][-1]["content"])
    rf = body["response_format"]
    assert rf["type"] == "json_schema" and rf["json_schema"]["strict"] is True
    assert rf["json_schema"]["schema"] == reqs[0].schema and body["temperature"] == 0
    st = be.stats()
    assert st["prompt_tokens"] == 8000 and st["completion_tokens"] == 320 and st["cached_prompt_tokens"] == 4800
    assert st["cost_usd"] == pytest.approx((3200 * 0.15 + 4800 * 0.075 + 320 * 0.60) / 1e6)
    assert KEY not in json.dumps(st) and KEY not in repr(be.__dict__.get("base_url"))
    be.close()


def test_local_server_needs_no_key_and_model_auto(server):
    be = backend(server, model="auto")
    assert be.model_name == "served-model"
    out = be.generate([req("2506.00001", "ok")])
    assert out[0].ok and server.auth == [None]
    assert be.stats()["cost_usd"] == 0.0            # unknown / local model: free


def _connections_closed(server, within: float = 5.0) -> bool:
    """Whether every client connection to the test server is closed (within a few seconds: the server's
    handler thread sees the close)."""
    deadline = time.monotonic() + within
    while server.connections and time.monotonic() < deadline:
        time.sleep(0.05)
    return server.connections == 0


def test_a_backend_that_cannot_learn_the_model_lets_go_of_its_connection(server):
    """`auto` asks the server for its model; a server that does not say (a base URL without its /v1: 404) is an
    error, and the connection the backend asked on is closed before the caller has it. It stayed open in the
    failed backend's pool, for as long as the caller held the error."""
    with pytest.raises(ConfigError) as e:
        OpenAIBackend("auto", base_url=server.url.removesuffix("/v1"))
    assert "/models is not there (HTTP 404)" in str(e.value)
    assert _connections_closed(server), e.value


def test_a_scoring_stage_whose_backend_serves_another_model_than_planned_closes_it(server):
    """A backfill plans the name its scores are stored under; a worker whose backend serves another model (a
    model folder named relative to another working directory, on a Ray node) is a BackendError, and the backend
    is closed first: it stayed open in a stage nobody could close (a vLLM engine, its GPU held, for as long as
    the actor lived). Here what stayed open is the backend's connection to its server."""
    from ranker.backfill.stages import ScoreStage
    from ranker.prompts import load_prompts
    from ranker.settings import resolve
    s = resolve(flags={"backend": "openai", "model": "auto"}, env={"OPENAI_BASE_URL": server.url})
    with pytest.raises(BackendError) as e:
        ScoreStage(s, load_prompts(), model_key="planned-model")
    assert "serves 'served-model', not 'planned-model'" in str(e.value)
    assert _connections_closed(server), e.value


def test_429_is_retried(server):
    be = backend(server)
    out = be.generate([req("2506.00001", "429once")])
    assert out[0].ok
    assert server.attempts["paper 2506.00001 MODE=429once"] == 2
    assert be.stats()["retries"] == 1


def test_500_storm_becomes_an_error_result_and_the_rest_goes_on(server):
    be = backend(server, retries=2)
    out = be.generate([req("2506.00001", "500"), req("2506.00002", "ok")])
    bad, good = out
    assert bad.text is None and bad.finish_reason == "error" and not bad.ok
    assert "HTTP 500" in bad.error and "3 attempts" in bad.error
    assert server.attempts["paper 2506.00001 MODE=500"] == 3
    assert good.ok


def test_garbage_body_is_an_error_result(server):
    out = backend(server).generate([req("2506.00001", "garbage")])
    assert out[0].finish_reason == "error" and "unreadable response" in out[0].error


def only_the_hanging_request_left(server, answered: int) -> threading.Event:
    """An event set once the server has answered `answered` requests and, of the backend's worker threads started
    from now on, one is left (the one waiting on the hanging request; each other one ended after its last answer
    was in the backend's hands): when a Ctrl-C finds every other answer back, told rather than guessed (a 1 s
    timer raced them on a loaded machine)."""
    before = set(threading.enumerate())
    event = threading.Event()

    def watch():
        while not event.is_set():
            workers = [t for t in threading.enumerate() if t.name == "ranker-openai" and t not in before]
            if server.answered >= answered and len(workers) == 1:
                event.set()
            time.sleep(0.01)
    threading.Thread(target=watch, daemon=True).start()
    return event


def test_ctrl_c_keeps_the_answers_that_came_back_before_it(server, tmp_path):
    """A metered API bills every answer: Ctrl-C while one request hangs keeps the batch's answered papers in
    the store (the rerun does not pay for them again), and the interrupt still stops the run. Each kept score
    carries its answer's tokens, so the rerun's digest table (scores_usage) counts them as any stored score,
    while the rerun's own spend (usage: the manifest's tokens and cost) is the one paper it asked for."""
    from ranker.prompts import load_prompts
    from ranker.records import Paper
    from ranker.scoring import ScoreOptions, score_papers
    from ranker.store import Store
    papers = [Paper(id=f"2506.{i:05d}", title=f"paper {i}", abstract=f"MODE={'hang' if i == 3 else 'ok'}",
                    categories=["cs.LG"]) for i in range(6)]
    be = backend(server, concurrency=2)
    with Store(tmp_path / "r.sqlite3") as store:
        with ctrl_c_when(only_the_hanging_request_left(server, 5)), pytest.raises(KeyboardInterrupt):
            score_papers(papers, be, load_prompts(), store, options=ScoreOptions(papers_per_request=1))
        phash = load_prompts().hash(**ScoreOptions(papers_per_request=1).prompt_options())
        got = store.get_scores([p.id for p in papers], be.model_name, phash)
        assert sorted(got) == [p.id for p in papers if p.id != "2506.00003"]      # all but the hanging one
        assert all((s.prompt_tokens, s.completion_tokens, s.cached_prompt_tokens) == (1000, 40, 600)
                   for s in got.values())
        papers[3].abstract = "MODE=ok"
        run = score_papers(papers, backend(server), load_prompts(), store, options=ScoreOptions(papers_per_request=1))
    assert (run.reused, run.scored) == (5, 1)
    assert (run.usage.prompt_tokens, run.usage.completion_tokens) == (1000, 40)
    assert (run.scores_usage.prompt_tokens, run.scores_usage.completion_tokens) == (6000, 240)


def test_a_run_stopped_by_ctrl_c_records_what_its_answers_cost(server, tmp_path, in_process_command):
    """`ranker run` on a metered API, Ctrl-C while one request hangs: the five answers that came back are kept
    (and paid for), and the day's manifest, rewritten as interrupted, says what the run spent (it said nothing:
    the kept answers were paid for by no run's account; the rerun's spend is only the paper it asks for)."""
    from conftest import store_vectors
    from ranker.records import Paper
    from ranker.settings import resolve
    from ranker.steps import fetch_day, run_day
    from ranker.store import Store
    papers = [Paper(id=f"2506.{i:05d}", date="2025-06-02", title=f"paper {i}", categories=["cs.LG"],
                    abstract=f"MODE={'hang' if i == 3 else 'ok'}") for i in range(6)]
    s = resolve(flags={"backend": "openai", "model": "gpt-4o-mini", "top": 6, "db": tmp_path / "r.sqlite3",
                       "backend_option": ["concurrency=2", "backoff=0.01", "max_backoff=0.05"]},
                env={"OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": server.url, "RANKER_HOME": str(tmp_path / "home")})
    out = tmp_path / "out"
    with Store(s.db_path) as store:
        store_vectors(store, papers)
        day = fetch_day(papers, s, store=store, date="2025-06-02")
        with ctrl_c_when(only_the_hanging_request_left(server, 5)), pytest.raises(KeyboardInterrupt):
            run_day(day, out, s, store=store)
    m = json.loads((out / "2025-06-02-run.json").read_text())
    assert m["status"] == "interrupted" and m["error"].startswith("interrupted during scoring; 5 papers")
    assert m["tokens"] == {"prompt": 5000, "completion": 200, "cached_prompt": 3000}
    assert m["cost_usd"] == pytest.approx((2000 * 0.15 + 3000 * 0.075 + 200 * 0.60) / 1e6)


def test_ctrl_c_in_a_backfill_keeps_the_answers_of_the_block_that_came_back(server, tmp_path, in_process_command):
    """`ranker backfill` on a metered API, Ctrl-C while one request of a block hangs: the block's other answers
    are written, with their tokens (the block was thrown away whole, and the rerun paid for those answers
    again), and the hanging paper has no row, so the rerun asks for it alone."""
    from ranker.backfill import BackfillSpec, run_backfill, shards
    from ranker.settings import resolve
    src = tmp_path / "papers.jsonl"
    ids = [f"2506.{i:05d}" for i in range(6)]
    src.write_text("".join(json.dumps({"id": i, "date": "2025-06-02", "title": f"paper {i}", "categories": ["cs.LG"],
                                       "abstract": f"MODE={'hang' if i == ids[3] else 'ok'}"}) + "\n" for i in ids))
    s = resolve(flags={"backend": "openai", "model": "gpt-4o-mini",
                       "backend_option": ["concurrency=2", "backoff=0.01", "max_backoff=0.05"]},
                env={"OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": server.url})
    out = tmp_path / "bf"
    with ctrl_c_when(only_the_hanging_request_left(server, 5)), pytest.raises(KeyboardInterrupt):
        run_backfill(BackfillSpec(source=src, out=out, score=True), s)
    rows = shards.read_table(shards.shard_files(out / shards.SCORES_DIR), shards.SCORES).to_pylist()
    assert sorted(r["id"] for r in rows) == [i for i in ids if i != ids[3]]
    assert all((r["status"], r["prompt_tokens"], r["completion_tokens"]) == ("scored", 1000, 40) for r in rows)
    m = json.loads((out / "manifest.json").read_text())
    (run,) = m["runs"]
    assert run["status"] == "interrupted"
    todo = shards.score_todo(out, run["scoring"]["model"], run["scoring"]["prompt_hash"])
    assert todo.count == 1 and todo.todo == {f"{ids[3]}|2025-06-02"}
    # what the five answers cost is reported: the folder's tokens of scores, and the stopped run's own spend
    scores = m["summary"]["scores"][f"{run['scoring']['model']}|{run['scoring']['prompt_hash']}"]
    assert (scores["scored"], scores["prompt_tokens"], scores["completion_tokens"]) == (5, 5000, 200)
    phase = run["phases"]["score"]
    assert (phase["to_do"], phase["rows_written"]) == (6, 5)
    assert (phase["engine"]["prompt_tokens"], phase["engine"]["completion_tokens"]) == (5000, 200)
    assert phase["engine"]["cost_usd"] == pytest.approx((2000 * 0.15 + 3000 * 0.075 + 200 * 0.60) / 1e6)


def test_progress_counts_the_papers_of_each_request_that_came_back(server, tmp_path):
    """Three papers a request, seven papers: the short last request (one paper) is answered first. The progress
    bar counted each finished request as three papers, so it showed 3, then 6 papers scored while 1, then 4
    had an answer, until the batch ended; it counts each request's own papers."""
    from ranker.prompts import load_prompts
    from ranker.records import Paper
    from ranker.scoring import ScoreOptions, score_papers
    from ranker.store import Store
    # the two full requests are answered after the short one (0.3 s after it: when they only slept 0.3 s, a
    # loaded machine sent the short one later than that and the counts came in another order)
    papers = [Paper(id=f"2506.{i:05d}", title=f"paper {i}", abstract=f"MODE={'ok' if i == 6 else 'afterok'}",
                    categories=["cs.LG"]) for i in range(7)]
    seen: list[tuple] = []
    with Store(tmp_path / "r.sqlite3") as store:
        run = score_papers(papers, backend(server, concurrency=3), load_prompts(), store,
                           options=ScoreOptions(papers_per_request=3), progress=lambda *e: seen.append(e))
    assert len(run.scores) == 7 and len(server.bodies) == 3
    assert seen == [("scoring", n, 7) for n in (0, 1, 4, 7, 7)]


def novelty_against_a_one(monkeypatch, seven: float, one: float) -> None:
    """The scripted server writes NOVELTY 7 against a '1' candidate (1, or the start of 10?), with these
    log-probs: an answer whose expectation needs a probe."""
    plain = logprobs_for

    def novelty_1_or_10(text):
        lp = plain(text)
        for i, tok in enumerate(lp["content"]):
            if text[:i].endswith('"NOVELTY":'):
                tok["top_logprobs"] = [{"token": "7", "logprob": seven}, {"token": "1", "logprob": one}]
        return lp
    monkeypatch.setitem(globals(), "logprobs_for", novelty_1_or_10)


def test_ctrl_c_while_the_probabilities_are_probed_is_still_an_interrupt(server, tmp_path, monkeypatch):
    """Expected-score mode: every answer came back, and Ctrl-C lands while the ambiguous score digits are being
    probed. The interrupt still stops the run as one (the probes' own partial results were handed on as the
    requests' answers, and reading them failed with an AttributeError), and no answer without its
    probabilities is stored as a score."""
    from ranker.prompts import load_prompts
    from ranker.records import Paper
    from ranker.scoring import ScoreOptions, score_papers
    from ranker.store import Store
    papers = [Paper(id=f"2506.{i:05d}", title=f"paper {i}", abstract="MODE=ok", categories=["cs.LG"])
              for i in range(3)]
    novelty_against_a_one(monkeypatch, -0.2, -1.7)
    be = backend(server, model="served-model", concurrency=2, probe=True)
    probed, hanging = threading.Event(), threading.Event()

    def probe(req, prefix):               # (probes start once every answer is back)
        probed.set()
        if req.key.endswith("2"):         # the last one hangs, until the test is over; the Ctrl-C comes then
            hanging.set()
            server.release.wait(120)
        return [], Usage()
    monkeypatch.setattr(be, "_probe", probe)
    opt = ScoreOptions(papers_per_request=1, score_mode="expected")
    with Store(tmp_path / "r.sqlite3") as store:
        with ctrl_c_when(hanging), pytest.raises(KeyboardInterrupt):
            score_papers(papers, be, load_prompts(), store, options=opt)
        phash = load_prompts().hash(**opt.prompt_options())
        assert probed.is_set() and store.get_scores([p.id for p in papers], be.model_name, phash) == {}


def test_an_answer_whose_probe_failed_is_not_stored_with_the_one_counted_as_one(server, tmp_path, monkeypatch):
    """Expected mode: NOVELTY 7 was written against a '1' that may be 1 or the start of 10, which a probe asks
    the server to tell. Where the probe answers, the '1' is split by it; where it fails (HTTP 500, retries
    spent), the '1' was counted as 1, and a NOVELTY expectation pulled towards 1 was stored and reused by
    every rerun. Now that answer fails: the paper is asked for again, then recorded as failed, never stored."""
    from ranker.prompts import load_prompts
    from ranker.records import Paper
    from ranker.scoring import ScoreOptions, score_papers
    from ranker.store import Store
    novelty_against_a_one(monkeypatch, -0.7, -0.7)
    papers = [Paper(id="2506.00001", title="a", abstract="MODE=ok", categories=["cs.LG"]),
              Paper(id="2506.00002", title="b", abstract="MODE=probe500", categories=["cs.LG"])]
    be = backend(server, model="served-model", probe=True, retries=1)
    opt = ScoreOptions(papers_per_request=1, score_mode="expected")
    with Store(tmp_path / "r.sqlite3") as store:
        run = score_papers(papers, be, load_prompts(), store, options=opt)
        stored = store.get_scores([p.id for p in papers], be.model_name, run.prompt_hash)
    q = math.exp(-0.1) / (math.exp(-0.1) + math.exp(-2.4))          # the probe: '0' against '}' after the '1'
    assert run.scores["2506.00001"].expected_novelty == pytest.approx(7 * 0.5 + 10 * 0.5 * q + 1 * 0.5 * (1 - q),
                                                                      abs=1e-4)
    assert sorted(stored) == ["2506.00001"] and run.retried == 1
    # the probes are billed like any request: the run's spend and the paper's own tokens hold its probe's
    # (three answers of 1000 + 40 tokens, one probe of 1040 + 1; the failed probes answered nothing)
    assert (run.usage.prompt_tokens, run.usage.completion_tokens) == (3 * 1000 + 1040, 3 * 40 + 1)
    assert (be.stats()["prompt_tokens"], be.stats()["completion_tokens"]) == (3 * 1000 + 1040, 3 * 40 + 1)
    assert (stored["2506.00001"].prompt_tokens, stored["2506.00001"].completion_tokens) == (2040, 41)
    (f,) = run.failures
    assert f.arxiv_id == "2506.00002" and "probe telling 1 from 10 failed" in f.reason and "HTTP 500" in f.reason
    assert "[scoring.openai] probe = false" in f.reason                  # the way out for a server without probes
    assert f.raw.startswith('{"ARXIVID":"2506.00002"')              # the answer that came back, for the record
    assert be.stats()["failed"] == 2                                  # the first answer and its retry


def test_a_hanging_server_times_out(server):
    be = backend(server, timeout=0.5, retries=1)
    t0 = time.monotonic()
    out = be.generate([req("2506.00001", "hang")])
    assert time.monotonic() - t0 < 30                      # two 0.5 s attempts; the server hangs until it closes
    assert out[0].finish_reason == "error" and "timed out" in out[0].error and "2 attempts" in out[0].error


def test_a_server_that_is_not_there_is_given_up_after_one_request_s_attempts():
    """No server on the port (not started, stopped): the first requests spend their attempts, the rest are
    not sent and fail at once naming the reason, so a day of papers ends in seconds, not minutes each."""
    with closed_port_url("/v1") as url:                                # bound, never listening: refused
        be = OpenAIBackend("m", base_url=url, concurrency=1, retries=2, backoff=0.01, max_backoff=0.02)
        out = be.generate([req(f"2506.{i:05d}", "ok") for i in range(6)])
    assert all(r.finish_reason == "error" and "connection failed" in r.error for r in out)
    assert "not answering" not in out[0].error and "3 attempts" in out[0].error
    # the first reason, which a run that scored nothing shows as its one line, names the server too
    assert out[0].error == \
        f"connection failed (ConnectError: [Errno 111] Connection refused) at {url} (after 3 attempts)"
    assert all("is not answering, so the remaining requests were not sent" in r.error for r in out[1:])
    assert be.stats()["retries"] == 2                                 # the first request's, no other's


class _Clock:
    """The backend module's `time`, its monotonic clock moved on by `ahead` seconds when a test says so: a while
    passed without waiting it, and a moment "still within" it however long a loaded machine took to get there."""

    def __init__(self):
        self.ahead = 0.0

    def monotonic(self) -> float:
        return time.monotonic() + self.ahead

    def __getattr__(self, name):
        return getattr(time, name)


def test_a_server_taken_for_gone_is_tried_again_after_a_while(server, monkeypatch):
    """The backend outlives one day (`ranker eval` scores day after day with one backend): a server stopped
    and started again is used again once `down_seconds` have passed, not given up for the object's life.
    (The while is passed on the backend's clock: with a real 1 s one, a loaded machine that took longer than
    that to start the server again had the request that must wait sent and answered.)"""
    from ranker.backends import openai_backend
    clock = _Clock()
    monkeypatch.setattr(openai_backend, "time", clock)
    port = server.httpd.server_address[1]
    be = backend(server, concurrency=1, retries=1)
    be.down_seconds = 30.0
    server.close()                        # (before any request: a kept-alive connection would still answer)
    out = be.generate([req(f"2506.0001{i}", "ok") for i in range(3)])
    assert all("is not answering" in r.error for r in out[1:]), [r.error for r in out]
    again = Server(port)
    try:
        out = be.generate([req("2506.00020", "ok")])            # still within down_seconds: not sent
        assert "is not answering" in out[0].error and again.attempts == {}
        clock.ahead = be.down_seconds + 1                         # the while has passed
        out = be.generate([req("2506.00021", "ok"), req("2506.00022", "ok")])
        assert all(r.ok for r in out), [r.error for r in out]
    finally:
        again.close()


def test_after_the_while_one_request_goes_first_and_the_others_wait_for_it():
    """Once `down_seconds` have passed, every worker used to send its request, each spending all its attempts
    and backoff on a server still gone (8 workers: 8 requests' retries at once, again each time the while
    ends). Now one request goes first; the others wait for its outcome: still gone, they fail at once."""
    with closed_port_url("/v1") as url:                                # bound, never listening: refused
        be = OpenAIBackend("m", base_url=url, concurrency=8, retries=2, backoff=0.2, max_backoff=0.4)
        be.down_seconds = 0.5
        out = be.generate([req("2506.00001", "ok")])
        assert "3 attempts" in out[0].error and be.stats()["retries"] == 2
        time.sleep(0.6)
        be.down_seconds = 30.0            # gone again: long enough for the waiting ones to see it, however slow
        out = be.generate([req(f"2506.{i:05d}", "ok") for i in range(10, 18)])
    first = [r for r in out if "not answering" not in r.error]
    assert len(first) == 1 and "connection failed" in first[0].error and "3 attempts" in first[0].error, \
        [r.error for r in out]
    assert be.stats()["retries"] == 4                     # the first request's and the one sent after the while


def test_after_the_while_the_others_are_sent_once_the_first_is_answered(server):
    """The server started again: the request sent first after the while is answered, and the ones that waited
    for it are sent too (not failed as while it was gone)."""
    port = server.httpd.server_address[1]
    be = backend(server, concurrency=8, retries=1)
    be.down_seconds = 0.5
    server.close()                        # (before any request: a kept-alive connection would still answer)
    out = be.generate([req("2506.00001", "ok")])
    assert "connection failed" in out[0].error
    again = Server(port)
    try:
        time.sleep(0.6)
        out = be.generate([req(f"2506.{i:05d}", "slow") for i in range(10, 18)])
        assert all(r.ok for r in out), [r.error for r in out]
        assert len(again.bodies) == 8
        out = be.generate([req("2506.00020", "ok")])                    # and from then on, as usual
        assert out[0].ok, out[0].error
    finally:
        again.close()


def test_a_connection_dropped_mid_request_does_not_give_the_server_up(server):
    """A server that is there but drops one request's connection before answering (a proxy's reset, a worker
    that died on that prompt): that paper fails after its attempts, the papers after it are still sent."""
    be = backend(server, concurrency=1, retries=1)
    out = be.generate([req("2506.00001", "drop"), req("2506.00002", "ok"), req("2506.00003", "ok")])
    assert out[0].finish_reason == "error" and "connection failed" in out[0].error
    assert "not answering" not in out[0].error and out[1].ok and out[2].ok, [r.error for r in out]


def test_refused_key_fails_fast_without_showing_it(server, in_process_command):
    be = backend(server, concurrency=1, api_key=KEY)
    out = be.generate([req("2506.00001", "denied"), req("2506.00002", "denied")])
    assert all(r.finish_reason == "error" and "OPENAI_API_KEY" in r.error for r in out)
    assert all(KEY not in r.error for r in out)
    assert len(server.bodies) == 1                  # the second was not even sent


def test_a_server_that_refuses_the_schema_gets_a_relaxed_one(server):
    be = backend(server, concurrency=1)
    out = be.generate([req("2506.00001", "strict"), req("2506.00002", "strict")])
    assert all(r.ok for r in out)
    sent = [json.dumps(b["response_format"]["json_schema"]["schema"]) for b in server.bodies]
    assert "maxLength" in sent[0] and all("maxLength" not in s for s in sent[1:])
    assert len(server.bodies) == 3 and be.stats()["schema_relaxed"] is True
    relaxed = relax_schema(paper_schema(["a", "b"], 50))
    assert relaxed["properties"]["papers"]["items"]["properties"]["ARXIVID"]["enum"] == ["a", "b"]
    assert "prefixItems" not in json.dumps(relaxed) and "minimum" not in json.dumps(relaxed)


def test_concurrent_requests_each_retry_relaxed_when_the_schema_is_refused(server):
    """Four requests in flight when the server refuses the strict schema: each one that sent it strict tries
    again relaxed, even when another has already switched the backend to relaxed schemas."""
    be = backend(server, concurrency=4)
    out = be.generate([req(f"2506.0000{i}", "strict") for i in range(1, 5)])
    assert all(r.ok for r in out), [r.error for r in out]
    assert be.stats()["schema_relaxed"] is True


def test_expected_mode_reads_top_logprobs(server):
    be = backend(server, probe=False)
    out = be.generate([req("2506.00001", "ok")], score_probs=True)
    probs = out[0].score_probs
    assert server.bodies[0]["logprobs"] is True and server.bodies[0]["top_logprobs"] == 20
    rel, nov = probs["RELEVANCE"], probs["NOVELTY"]
    assert sum(rel.values()) == pytest.approx(1.0) and sum(nov.values()) == pytest.approx(1.0)
    import math
    p1, p8 = math.exp(-0.5), math.exp(-1.0)
    q = math.exp(-0.1) / (math.exp(-0.1) + math.exp(-2.4))          # after '1': '0' against ','
    assert rel[10] == pytest.approx(p1 * q / (p1 + p8))
    assert rel[1] == pytest.approx(p1 * (1 - q) / (p1 + p8))
    assert nov[7] == pytest.approx(math.exp(-0.2) / (math.exp(-0.2) + math.exp(-1.7)))


def test_offline_mode_refuses_a_remote_server(offline, server):
    with pytest.raises(ConfigError, match="offline") as e:
        OpenAIBackend("gpt-4o", base_url="https://api.openai.com/v1")
    assert e.value.key == "scoring.openai.base_url"
    with pytest.raises(ConfigError):
        OpenAIBackend("gpt-4o", base_url="ftp://example.org")
    assert backend(server).generate([req("2506.00001", "ok")])[0].ok     # a loopback server is fine


def test_an_openai_model_without_a_price_is_said_once_not_billed_as_zero_silently(server):
    """OpenAI bills every model; one missing from the price table would show $0 in the digest without a
    word. A local or LAN server's model costs nothing, so it says nothing."""
    notes: list[str] = []
    OpenAIBackend("gpt-9-preview", base_url="https://api.openai.com/v1", warn=notes.append).close()
    assert len(notes) == 1 and "gpt-9-preview" in notes[0] and "price table" in notes[0]
    OpenAIBackend("gpt-4o-2024-08-06", base_url="https://api.openai.com/v1", warn=notes.append).close()
    backend(server, model="local-model", warn=notes.append).close()
    assert len(notes) == 1


def test_chat_template_kwargs_reach_a_local_server_but_not_openai(server):
    """vLLM's server hands `chat_template_kwargs` to the model's chat template (thinking off for a reasoning
    template); OpenAI's API refuses unknown fields, so it is never sent there."""
    r = req("2506.00001", "ok")
    r.chat_template_kwargs = {"enable_thinking": False}
    be = backend(server, model="local-model")
    (out,) = be.generate([r])
    assert out.ok and server.bodies[-1]["chat_template_kwargs"] == {"enable_thinking": False}
    be.close()
    be = backend(server, model="gpt-4o")
    be.is_openai = True                      # as for api.openai.com
    be.generate([r])
    assert "chat_template_kwargs" not in server.bodies[-1]
    be.close()
def test_a_key_echoed_by_the_server_never_reaches_an_error_text(server, in_process_command):
    be = backend(server, api_key=KEY, retries=1)
    out = be.generate([req("2506.00001", "echo"), req("2506.00002", "echo500")])
    assert all(r.finish_reason == "error" and "HTTP" in r.error for r in out)
    assert all(KEY not in r.error and "sk-test" not in r.error and "[redacted]" in r.error for r in out), out


@pytest.mark.parametrize("text", [
    f"Incorrect API key provided: {KEY}.", f"Authorization: Bearer {KEY}", f'{{"api_key": "{KEY}"}}',
    "Bearer abc.def-ghi_123456", "x-api-key: 0123456789abcdef", "sk-proj-AbCdEf0123456789",
])
def test_redact_removes_credential_shapes(text):
    from ranker.io import redact
    out = redact(text)
    assert "[redacted]" in out and KEY not in out and "0123456789" not in out and "abc.def" not in out


def test_redact_removes_a_registered_secret_of_any_shape_and_leaves_prose(in_process_command):
    from ranker.io import add_secret, redact
    add_secret("plain-local-token-42")
    assert redact("server said plain-local-token-42 is wrong") == "server said [redacted] is wrong"
    for prose in ("the token limit is 4096 tokens", "Basic assumption", "API key missing", "HTTP 500: upstream"):
        assert redact(prose) == prose


def test_the_key_is_absent_from_stderr_the_failures_run_json_and_the_runs_table(server, tmp_path):
    """`ranker score` and `ranker run` against a server that echoes the key in its error bodies."""
    import sqlite3
    from conftest import DAYS, ranker
    from ranker.store import Store
    from conftest import store_vectors
    from ranker.sources import read_papers
    rows = [json.loads(x) for x in (DAYS / "2025-05-15" / "listing.jsonl").open()][:3]
    for r in rows:
        r["abstract"] += " MODE=echo"
    papers = tmp_path / "p.jsonl"
    papers.write_text("".join(json.dumps(r) + "\n" for r in rows))
    db = tmp_path / "db.sqlite3"
    with Store(db) as s:
        store_vectors(s, list(read_papers(papers)))
    env = {"OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": server.url}
    opts = ["--backend", "openai", "--model", "gpt-4o-mini", "--backend-option", "backoff=0.01", "--db", db]
    r = ranker("score", "--papers", papers, "--out", tmp_path / "s.jsonl", *opts, env=env)
    assert r.returncode == 1 and "could not be scored" in r.stderr and "[redacted]" in r.stderr, r.stderr
    out = ranker("run", "--papers", papers, "--out", tmp_path / "out", *opts, env=env)
    assert out.returncode == 1, out.stderr
    assert any(a == f"Bearer {KEY}" for a in server.auth)           # the key was sent, and echoed back
    c = sqlite3.connect(db)
    stored = json.dumps(c.execute("SELECT * FROM failures").fetchall() + c.execute("SELECT * FROM runs").fetchall())
    c.close()
    manifest = (tmp_path / "out" / "2025-05-15-run.json").read_text()
    for text in (r.stderr, out.stderr, stored, manifest):
        assert KEY not in text and "sk-test" not in text
    assert "[redacted]" in stored and "[redacted]" in manifest


def test_a_server_with_no_model_named_scores_with_its_own_not_as_the_default_preset(server, tmp_path):
    """`--backend openai` pointed at a local server, no model named (as the README's OPENAI_BASE_URL recipe
    does): the server's own model. The default model, the local preset smollm2-135m, was sent instead (vLLM's
    server refuses it, llama.cpp's takes any name) and scores were stored under that preset's name: a day the
    preset had scored was answered from the store with the preset's scores, the server never asked."""
    from conftest import DAYS, ranker
    from ranker.prompts import load_prompts
    from ranker.records import Score
    from ranker.scoring import ScoreOptions
    from ranker.sources import read_papers
    from ranker.store import Store
    rows = [json.loads(x) for x in (DAYS / "2025-05-15" / "listing.jsonl").open()][:2]
    for r in rows:
        r["abstract"] += " MODE=ok"
    papers = tmp_path / "p.jsonl"
    papers.write_text("".join(json.dumps(r) + "\n" for r in rows))
    db, out = tmp_path / "db.sqlite3", tmp_path / "s.jsonl"
    ps = list(read_papers(papers))
    phash = load_prompts().hash(**ScoreOptions().prompt_options())
    with Store(db) as s:            # what `ranker score` with the local preset (the default backend) stored
        s.put_scores([Score(p.id, 2, 3, "the local preset's verdict.") for p in ps], "smollm2-135m", phash,
                     texts={p.id: p.scored_text for p in ps})
    r = ranker("score", "--papers", papers, "--out", out, "--backend", "openai", "--db", db,
               env={"OPENAI_BASE_URL": server.url})
    assert r.returncode == 0, r.stderr
    assert len(server.bodies) == 2 and {b["model"] for b in server.bodies} == {"served-model"}
    assert [(x["RELEVANCE"], x["NOVELTY"]) for x in map(json.loads, out.read_text().splitlines())] == [(10, 7)] * 2
    with Store(db) as s:
        assert {k: v.relevance for k, v in s.get_scores([p.id for p in ps], "served-model", phash).items()} == \
            {p.id: 10 for p in ps}
        assert {v.relevance for v in s.get_scores([p.id for p in ps], "smollm2-135m", phash).values()} == {2}


def test_the_loading_line_of_a_server_s_own_model_names_the_server_then_the_model(server, tmp_path):
    """With no model named ("auto") the loading lines said "loading auto ...", "loading auto: ready": now the
    server asked while the backend learns the model, then the model it serves, with the time it took."""
    from conftest import DAYS, ranker
    row = json.loads((DAYS / "2025-05-15" / "listing.jsonl").open().readline())
    row["abstract"] += " MODE=ok"
    papers = tmp_path / "p.jsonl"
    papers.write_text(json.dumps(row) + "\n")
    r = ranker("score", "--papers", papers, "--out", tmp_path / "s.jsonl", "--backend", "openai",
               "--db", tmp_path / "db.sqlite3", env={"OPENAI_BASE_URL": server.url})
    assert r.returncode == 0, r.stderr
    loading = [x for x in r.stderr.splitlines() if x.startswith("loading ")]
    assert len(loading) == 2 and loading[0] == f"loading the model {server.url} serves ...", r.stderr
    assert re.fullmatch(r"loading served-model: ready in \d+\.\d s", loading[1]), r.stderr
    assert "auto" not in r.stderr


def test_openai_s_own_api_with_no_model_named_is_refused_not_scored_with_its_first_listed(offline):
    """The server's own model is a local server's; OpenAI lists dozens, and the first of them would be scored
    with, and billed, unasked: one line asks for the model, before any connection (offline here: no server)."""
    from ranker.backends import make_backend
    from ranker.settings import resolve
    s = resolve(flags={"backend": "openai"}, env={})
    assert s.scoring.model == "auto"
    with pytest.raises(ConfigError, match="name the one to score with") as e:
        make_backend(s)
    assert e.value.key == "scoring.model"
    named = resolve(flags={"backend": "openai", "model": "gpt-4o-mini"}, env={})
    assert named.scoring.model == "gpt-4o-mini"
    assert resolve(flags={"backend": "vllm"}, env={}).scoring.model == "smollm2-135m"


def test_auto_against_a_server_that_serves_several_models_asks_which(server):
    """`auto` (the default with a local server) scores with the model the server serves; one that lists several
    (Ollama lists every model pulled, vLLM its LoRA adapters) is one line naming them, not the first of them
    scored with unasked, and the connection that asked is closed."""
    server.models = ["llama3.1:8b", "qwen2.5:7b", "mistral:7b"]
    with pytest.raises(ConfigError, match="serves 3 models .llama3.1:8b, qwen2.5:7b, mistral:7b.; name the one") as e:
        backend(server, model="auto")
    assert e.value.key == "scoring.model"
    assert _connections_closed(server), e.value
    assert backend(server, model="qwen2.5:7b").model_name == "qwen2.5:7b"
    assert not server.bodies


def test_an_answer_without_a_readable_message_fails_its_paper_not_the_run(server):
    """A body that is JSON but holds no message, or a content that is no text, is that request's error
    ('unreadable response'): it raised out of generate(), and the whole call's answers, paid for, were lost with
    a run that ended in 'unexpected failure'. A content sent as a list of text parts is read as their text."""
    be = backend(server)
    out = be.generate([req("2506.00001", "ok"), req("2506.00002", "nomessage"), req("2506.00003", "numeric"),
                       req("2506.00004", "parts")])
    assert [r.ok for r in out] == [True, False, False, True]
    assert all("unreadable response" in r.error for r in out[1:3])
    check_answer(json.loads(out[3].text), ["2506.00004"], 50)


def test_a_password_in_the_servers_url_is_kept_out_of_error_texts_and_the_stored_settings():
    """A server reached as https://user:PASSWORD@host/v1 (a proxy in front of a lab's server): its URL went
    into every error line naming the server and, through the settings, into the runs table as it was."""
    from ranker.io import redact
    from ranker.settings import Settings
    url = "https://lab:hunter2-pass@llm.example:8443/v1"
    assert redact(f"cannot list the models of {url}: ConnectError") == \
        "cannot list the models of https://lab:[redacted]@llm.example:8443/v1: ConnectError"
    assert redact("see https://arxiv.org/abs/2505.01234 and user@example.org") == \
        "see https://arxiv.org/abs/2505.01234 and user@example.org"
    s = Settings(scoring={"backend": "openai", "model": "m", "openai": {"base_url": url}})
    public = json.dumps(s.public())
    assert "hunter2" not in public and "https://lab:[redacted]@llm.example:8443/v1" in public
    assert s.scoring.options["openai"]["base_url"] == url       # the backend still connects with it


def test_an_answer_the_server_cut_short_of_its_budget_is_the_context_s_cut_off_not_asked_again(server, tmp_path):
    """vLLM's server (0.32) gives an answer no more room than its prompt leaves in the model's context, whatever
    the budget asked for, and says 'length' where it ran out. That was taken for a cut by the budget: the paper
    was asked again with twice the budget, cut off at the same place, and failed saying 'finish_reason=length'.
    Now, as the other backends, it is the context's cut-off (context_full, the context named): asked once."""
    from ranker.prompts import load_prompts
    from ranker.records import Paper
    from ranker.scoring import score_papers
    from ranker.store import Store
    (res,) = backend(server, model="served-model").generate([req("2506.00001", "ctxnew_2030")])
    assert res.finish_reason == "length" and res.context_full and not res.ok
    assert res.error == ("answer cut off after 18 tokens: its prompt of 2030 tokens leaves no more of a context of "
                         "2048 tokens (the server's)")
    # a whole answer cut by its own budget is still a cut by the budget: asked again with twice that
    r = req("2506.00002", "ctxnew_1000")
    r.max_tokens = 30
    (res,) = backend(server, model="served-model").generate([r])
    assert res.finish_reason == "length" and not res.context_full and res.error is None
    papers = [Paper(id="2506.00003", title="a", abstract="MODE=ctxnew_2030", categories=["cs.LG"]),
              Paper(id="2506.00004", title="b", abstract="MODE=ctxnew_1000", categories=["cs.LG"])]
    with Store(tmp_path / "r.sqlite3") as store:
        run = score_papers(papers, backend(server, model="served-model"), load_prompts(), store)
    (f,) = run.failures
    assert f.arxiv_id == "2506.00003" and "leaves no more of a context of 2048 tokens" in f.reason
    assert run.retried == 0 and sorted(run.scores) == ["2506.00004"]
    asked = [b["messages"][-1]["content"] for b in server.bodies[2:]]
    assert sum("MODE=ctxnew_2030" in m for m in asked) == 1, asked


@pytest.mark.parametrize("version", ["old", "bound"])
def test_a_budget_the_server_refuses_for_the_context_is_cut_to_the_room_the_prompt_leaves(server, version):
    """vLLM's servers before 0.32 refuse a request whose prompt and budget exceed the model's context (HTTP 400,
    the sizes in the message; some count the prompt only to one token past what fits). That was the paper's
    failure, its reason the server's raw JSON; the vllm backend gives such an answer the room its prompt leaves.
    Now so does this one: the budget cut to that room (the prompt's size asked for with a one-token answer where
    the refusal only bounds it), and an answer cut off there is the context's, as the other backends say it."""
    be = backend(server, model="served-model", concurrency=1)
    fits, cut = be.generate([req("2506.00001", f"ctx{version}_2000"), req("2506.00002", f"ctx{version}_2030")])
    assert fits.ok, fits.error
    check_answer(json.loads(fits.text), ["2506.00001"], 50)
    assert cut.finish_reason == "length" and cut.context_full
    assert cut.error == ("answer cut off after 18 tokens: its prompt of 2030 tokens leaves no more of a context of "
                         "2048 tokens (the server's)")
    sent = [b["max_tokens"] for b in server.bodies]
    assert sent == ([100, 48, 100, 18] if version == "old" else [100, 1, 48, 100, 1, 18])
    assert be.stats()["retries"] == 0
    if version == "bound":               # the one-token answers that measured the prompts are billed too
        assert fits.usage.prompt_tokens == 2 * 2000 and cut.usage.prompt_tokens == 2 * 2030


@pytest.mark.parametrize("version", ["old", "new", "gone"])
def test_a_prompt_longer_than_the_server_s_context_fails_at_once_saying_so(server, version):
    """A prompt that leaves its answer no room is refused by every version of vLLM's server (0.18's engine with a
    500); it failed with the server's raw JSON, and the 500 was sent five times. Now it is sent once and fails as
    the other backends' does: the prompt does not fit the context (its size a lower bound where vLLM's is)."""
    be = backend(server, model="served-model")
    (res,) = be.generate([req("2506.00001", f"ctx{version}_{2045 if version == 'old' else 2100}")])
    assert res.text is None and res.finish_reason == "error"
    if version == "old":
        assert res.error == "prompt of 2045 tokens does not fit a context of 2048 tokens"
    else:
        assert res.error == "prompt of at least 2049 tokens does not fit a context of 2048 tokens"
    assert len(server.bodies) == 1 and be.stats()["retries"] == 0
    assert not be._down                   # the server is there: the requests after it are sent
    assert be.generate([req("2506.00002", "ok")])[0].ok


def test_other_refusals_are_not_taken_for_the_context():
    """Only a refusal that says the context's size is the context's; another 400 (or one mentioning a context
    in other words) stays the request's own error."""
    from ranker.backends.openai_backend import context_refusal
    assert context_refusal("max_tokens is too large: 32000. This model supports at most 16384 completion tokens, "
                           "whereas you provided 32000.") is None
    assert context_refusal('{"detail": "Not Found"}') is None
    assert context_refusal("Invalid schema for response_format 'paper_scores': context is not permitted") is None
    assert context_refusal("'max_tokens' or 'max_completion_tokens' is too large: 300. This model's maximum context "
                           "length is 2048 tokens and your request has 1900 input tokens (300 > 2048 - 1900).") \
        == (2048, 1900, True)
    assert context_refusal("You passed 1949 input tokens and requested 100 output tokens. However, the model's "
                           "context length is only 2048 tokens, resulting in a maximum input length of 1948 "
                           "tokens. Please reduce the length of the input prompt.") == (2048, 1949, False)
    assert context_refusal("max_tokens=5000 cannot be greater than max_model_len=4096. Please request fewer output "
                           "tokens.") == (4096, None, False)
    assert context_refusal("The decoder prompt (length 2300) is longer than the maximum model length of 2048. Make "
                           "sure that `max_model_len` is no smaller than the number of text tokens.") \
        == (2048, 2300, True)
    assert context_refusal("This model's maximum context length is 128000 tokens. However, your messages resulted "
                           "in 130012 tokens. Please reduce the length of the messages.") == (128000, 130012, True)
    assert context_refusal('{"error":{"code":400,"message":"request (9412 tokens) exceeds the available context size '
                           '(8192 tokens), try increasing it","type":"exceed_context_size_error","n_prompt_tokens":'
                           '9412,"n_ctx":8192}}') == (8192, 9412, True)           # llama.cpp's server


def test_a_model_the_server_does_not_serve_stops_the_run_with_one_line_naming_the_setting(server, tmp_path):
    """vLLM's server answers a request for a model it does not serve with a 404. Every paper failed with the
    server's raw JSON ('nothing was scored: 3 of 3 papers could not be scored (first: ...: HTTP 404: {"error":
    ...')), every request sent. Now the first 404 stops the run: one line naming the setting (the flag that set
    it) and the models the server serves."""
    from conftest import DAYS, ranker
    server.only_its_models = True
    be = backend(server, model="other-model", concurrency=1)
    with pytest.raises(ConfigError) as e:
        be.generate([req("2506.00001", "ok"), req("2506.00002", "ok")])
    assert e.value.key == "scoring.model" and len(server.bodies) == 1
    assert str(e.value) == f"scoring.model: {server.url} serves 'served-model', not 'other-model'"
    papers = tmp_path / "p.jsonl"
    papers.write_text("".join(line for line, _ in zip((DAYS / "2025-05-15" / "listing.jsonl").open(), range(2))))
    r = ranker("score", "--papers", papers, "--out", tmp_path / "s.jsonl", "--backend", "openai", "--model",
               "other-model", "--db", tmp_path / "db.sqlite3", env={"OPENAI_BASE_URL": server.url})
    assert r.returncode == 1
    assert f"error: --model: {server.url} serves 'served-model', not 'other-model'" in r.stderr, r.stderr


def test_a_base_url_without_its_v1_is_one_line_naming_the_setting(server, tmp_path):
    """OPENAI_BASE_URL=http://host:8000, the /v1 left out: with the model named every paper failed with
    'HTTP 404: {"detail": "Not Found"}'; with `auto` the run stopped on 'cannot list the models of ...: KeyError'.
    Now either is one line naming the setting the base URL came from, and what is wrong with it."""
    from conftest import DAYS, ranker
    bare = server.url.removesuffix("/v1")
    with pytest.raises(ConfigError) as e:
        OpenAIBackend("served-model", base_url=bare).generate([req("2506.00001", "ok")])
    assert e.value.key == "scoring.openai.base_url" and "/chat/completions is not there (HTTP 404)" in str(e.value)
    papers = tmp_path / "p.jsonl"
    papers.write_text((DAYS / "2025-05-15" / "listing.jsonl").open().readline())
    for model in ("served-model", "auto"):
        r = ranker("score", "--papers", papers, "--out", tmp_path / "s.jsonl", "--backend", "openai", "--model",
                   model, "--db", tmp_path / "db.sqlite3", env={"OPENAI_BASE_URL": bare})
        path = "/models" if model == "auto" else "/chat/completions"
        assert r.returncode == 1
        assert (f"error: OPENAI_BASE_URL: {bare}{path} is not there (HTTP 404): not the base URL of an "
                "OpenAI-compatible API, which usually ends in /v1") in r.stderr, r.stderr


def test_a_404_that_names_no_model_is_told_apart_by_the_base_url_s_models(server):
    """A 404 whose body names no model was always blamed on the base URL ('not the base URL of an
    OpenAI-compatible API, which usually ends in /v1'), also where the base URL ends in /v1 and its /models
    answers: a gateway's bare 'Not Found' for a model it does not route. The base URL's /models now tells: a list
    without the model is the model's fault; a /models that cannot say leaves both named."""
    server.only_its_models = True
    server.not_served_body = {"detail": "Not Found"}
    with pytest.raises(ConfigError) as e:
        backend(server, model="other-model").generate([req("2506.00001", "ok")])
    assert e.value.key == "scoring.model"
    assert str(e.value) == f"scoring.model: {server.url} serves 'served-model', not 'other-model'"

    server.models_status = 500
    with pytest.raises(ConfigError) as e:
        backend(server, model="other-model").generate([req("2506.00001", "ok")])
    assert e.value.key == "scoring.openai.base_url"
    assert str(e.value) == (f"scoring.openai.base_url: {server.url}/chat/completions answered HTTP 404 "
                            "('{\"detail\": \"Not Found\"}'): either the base URL is not an OpenAI-compatible "
                            "API's (which usually ends in /v1), or the server does not serve the model "
                            "'other-model' (scoring.model)")


def test_a_404_both_causes_line_names_the_model_as_the_user_gave_it(server, tmp_path):
    """Where /models cannot tell a bare 404 apart, the line names both causes; the model's setting was the literal
    key 'scoring.model' after a --model flag (the CLI words a mentioned setting as its flag, the base URL's as the
    variable that gave it)."""
    from conftest import DAYS, ranker
    server.only_its_models, server.not_served_body, server.models_status = True, {"detail": "Not Found"}, 500
    papers = tmp_path / "p.jsonl"
    papers.write_text((DAYS / "2025-05-15" / "listing.jsonl").open().readline())
    r = ranker("score", "--papers", papers, "--out", tmp_path / "s.jsonl", "--backend", "openai", "--model",
               "other-model", "--db", tmp_path / "db.sqlite3", env={"OPENAI_BASE_URL": server.url})
    assert r.returncode == 1
    assert (f"error: OPENAI_BASE_URL: {server.url}/chat/completions answered HTTP 404 ('{{\"detail\": \"Not "
            "Found\"}'): either the base URL is not an OpenAI-compatible API's (which usually ends in /v1), or the "
            "server does not serve the model 'other-model' (--model)") in r.stderr, r.stderr


def test_auto_against_a_server_that_wants_a_key_says_so(server, in_process_command):
    """A `vllm serve --api-key` asked for its model without OPENAI_API_KEY answers 401: that was 'cannot list the
    models of ...: KeyError'. Now it says the credentials were refused, and where the key comes from."""
    server.key = KEY
    with pytest.raises(BackendError, match=r"HTTP 401: the server refused the request's credentials \(check "
                                           r"OPENAI_API_KEY\)"):
        backend(server, model="auto")
    assert backend(server, model="auto", api_key=KEY).model_name == "served-model"


def test_a_key_with_the_line_end_of_its_file_is_sent_without_it(server, in_process_command):
    """OPENAI_API_KEY read from a file with Windows line ends (an env-file of `docker --env-file`) ends in '\\r',
    which no HTTP header may carry: every request failed as 'connection failed (LocalProtocolError)', retried,
    the key never mentioned. The key is stripped as every other variable is."""
    from ranker.backends import make_backend
    from ranker.settings import resolve
    s = resolve(flags={"backend": "openai", "model": "served-model", "backend_option": ["retries=0"]},
                env={"OPENAI_API_KEY": KEY + "\r\n", "OPENAI_BASE_URL": server.url})
    be = make_backend(s)
    (res,) = be.generate([req("2506.00001", "ok")])
    assert res.ok, res.error
    assert server.auth == [f"Bearer {KEY}"]
    assert resolve(flags={"backend": "openai"}, env={"OPENAI_API_KEY": " \n"}).openai_api_key is None


def test_a_server_unavailable_through_a_request_s_attempts_is_given_up_as_one_not_there():
    """Behind a proxy, a server that is down or still loading answers 503 (or 502), not a refused connection:
    every request spent all its attempts and backoff on it (concurrency 8: a day of papers took minutes to fail,
    the server asked five times each). Now, as a server that is not there, the first request's attempts are
    spent and the rest fail at once saying so; a server answering 500 is still asked for every paper."""
    s = Server()
    try:
        be = backend(s, concurrency=1, retries=2)
        out = be.generate([req(f"2506.{i:05d}", "503") for i in range(6)])
        assert all(r.finish_reason == "error" and "HTTP 503" in r.error for r in out)
        assert "3 attempts" in out[0].error and "unavailable" not in out[0].error
        assert all("is unavailable, so the remaining requests were not sent" in r.error for r in out[1:])
        assert len(s.bodies) == 3
        be = backend(s, concurrency=1, retries=1)
        out = be.generate([req(f"2506.{i:05d}", "500") for i in range(10, 13)])
        assert all("2 attempts" in r.error for r in out) and len(s.bodies) == 3 + 6
    finally:
        s.close()


def test_a_503_of_the_moment_does_not_give_the_server_up():
    """A 503 that asks to wait longer than max_backoff (one attempt, given up at once), and OpenAI's own API,
    whose 503 is a "slow down" of the moment, tripped the breaker made for a server that is not there: after
    one such answer every other paper failed unsent for down_seconds. Each paper is now asked."""
    s = Server()
    try:
        be = backend(s, concurrency=1, retries=2)
        out = be.generate([req(f"2506.{i:05d}", "503long") for i in range(3)])
        assert all("max_backoff" in r.error and "not sent" not in r.error for r in out), [r.error for r in out]
        assert len(s.bodies) == 3
        be = backend(s, concurrency=1, retries=1)
        be.is_openai = True                                # (what a base URL at api.openai.com sets)
        out = be.generate([req(f"2506.{i:05d}", "503") for i in range(10, 13)])
        assert all("2 attempts" in r.error and "not sent" not in r.error for r in out), [r.error for r in out]
        assert len(s.bodies) == 3 + 6
    finally:
        s.close()


def test_a_connection_that_times_out_names_connect_timeout_and_gives_the_server_up():
    """No connection within connect_timeout (a firewall dropping the packets): the error named
    `[scoring.openai] timeout` and its 120 s, and each paper spent its attempts. It names connect_timeout, and
    the server is given up as one that is not there."""
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(0)
        port = sock.getsockname()[1]
        waiting = []
        for _ in range(4):                    # the listening queue full: the next connection is never answered
            c = socket.socket()
            c.setblocking(False)
            try:
                c.connect(("127.0.0.1", port))
            except BlockingIOError:
                pass
            waiting.append(c)
        try:
            url = f"http://127.0.0.1:{port}/v1"
            be = OpenAIBackend("m", base_url=url, concurrency=1, retries=1, backoff=0.01, max_backoff=0.02,
                               connect_timeout=0.3)
            out = be.generate([req(f"2506.{i:05d}", "ok") for i in range(3)])
        finally:
            for c in waiting:
                c.close()
    assert out[0].error == (f"connection timed out after 0.3 s ([scoring.openai] connect_timeout) at {url} "
                            "(after 2 attempts)"), out[0].error
    assert all("is not answering, so the remaining requests were not sent" in r.error for r in out[1:])


def test_auto_against_no_server_says_why_it_cannot_connect():
    """`auto` with nothing listening said 'cannot list the models of <URL>: ConnectError', the same words for a
    refused connection, an unknown host and a refused certificate; it now says which."""
    with closed_port_url("/v1") as url:                                # bound, never listening: refused
        with pytest.raises(BackendError) as e:
            OpenAIBackend("auto", base_url=url)
    assert str(e.value) == f"cannot list the models of {url}: ConnectError: [Errno 111] Connection refused"


def test_a_request_that_ran_out_of_a_bound_names_the_option_that_sets_it(server):
    """A slow server (a CPU build, a long queue) or a rate limit asking for a long wait failed every paper with
    'timed out (after 5 attempts)' or '(the server asks to wait 120 s)': nothing said the wait is a setting. Each
    reason now names its option, as the probe's does."""
    be = backend(server, timeout=0.5, retries=1)
    hang, limited = be.generate([req("2506.00001", "hang"), req("2506.00002", "429long")])
    assert hang.error == "timed out (after 2 attempts, each waiting up to 0.5 s ([scoring.openai] timeout))"
    assert limited.error == ('HTTP 429: {"error": {"message": "rate limited"}} (the server asks to wait 120 s, '
                             "longer than [scoring.openai] max_backoff (0.05 s))")
