"""The scoring orchestration with the deterministic fake backend (no model): requests, validation,
retry, failures, the store and resume. Real engines are tested in tests/test_backends_*.py."""
import json

import pytest

from ranker.backends import Result
from ranker.backends.fake import FakeBackend, fake_scores
from ranker.errors import BackendError
from ranker.io import atomic_write
from ranker.prompts import load_prompts
from ranker.records import Paper
from ranker.scoring import ScoreOptions, parse_result, score_papers
from ranker.store import Store

from conftest import DAYS


@pytest.fixture
def papers():
    rows = [json.loads(line) for line in (DAYS / "2025-05-15" / "listing.jsonl").open()][:12]
    return [Paper.from_dict(r) for r in rows]


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "db.sqlite3") as s:
        yield s


def lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def score_to(out, papers, backend, prompts, store, **kw):
    """score_papers, then its JSONL written to `out`, as `ranker score` does."""
    run = score_papers(papers, backend, prompts, store, **kw)
    atomic_write(out, run.lines())
    return run


def test_every_paper_once_with_exact_keys(papers, store, tmp_path):
    out = tmp_path / "s.jsonl"
    be = FakeBackend()
    run = score_to(out, papers, be, load_prompts(), store)
    rows = lines(out)
    assert [r["ARXIVID"] for r in rows] == [p.id for p in papers]
    assert all(set(r) == {"ARXIVID", "COMMENT", "RELEVANCE", "NOVELTY"} for r in rows)
    assert all((r["RELEVANCE"], r["NOVELTY"]) == fake_scores(r["ARXIVID"]) for r in rows)
    assert run.scored == 12 and run.reused == 0 and not run.failures
    assert len(be.calls) == 1 and len(be.calls[0]) == 12        # one batch, one paper per request


def test_rerun_is_free_and_resumes(papers, store, tmp_path):
    ps = load_prompts()
    score_to(tmp_path / "a.jsonl", papers[:5], FakeBackend(), ps, store)
    be = FakeBackend()
    run = score_to(tmp_path / "b.jsonl", papers, be, ps, store)
    assert run.reused == 5 and run.scored == 7
    assert sum(len(c) for c in be.calls) == 7                     # nothing rescored
    assert sorted(r["ARXIVID"] for r in lines(tmp_path / "b.jsonl")) == sorted(p.id for p in papers)
    # another prompt is another key: everything is scored again
    run = score_papers(papers, FakeBackend(), ps, store, options=ScoreOptions(abstract_tokens=100))
    assert run.reused == 0


def test_a_paper_whose_text_changed_is_scored_again(papers, store):
    """A replacement that rewrote the abstract (or the title, or the authors) under the same id: the stored
    score judged other text, so the paper is scored again; a new version with the same text, or spaces
    moved, keeps its score; a score stored before text hashes were kept is reused as it is."""
    from dataclasses import replace
    ps = load_prompts()
    score_papers(papers[:4], FakeBackend(), ps, store)
    changed = [replace(papers[0], abstract=papers[0].abstract + " We also release code.", version=2),
               replace(papers[1], title="A new title"),
               replace(papers[2], version=3, abstract="  " + papers[2].abstract.replace(" ", "\n ", 3)),
               papers[3]]
    be = FakeBackend()
    run = score_papers(changed, be, ps, store)
    assert sorted(k for c in be.calls for k in c) == sorted([papers[0].id, papers[1].id])
    assert run.reused == 2 and run.scored == 2
    assert score_papers(changed, FakeBackend(), ps, store).reused == 4          # now stored with their new text
    store.conn.execute("UPDATE scores SET text_hash=NULL")                   # as an older database holds them
    assert score_papers(papers[:4], FakeBackend(), ps, store).reused == 4


def test_retry_once_then_record_failure(papers, store, tmp_path):
    bad, flaky, cut, wrong = papers[0].id, papers[1].id, papers[2].id, papers[3].id
    be = FakeBackend(garbage={bad}, flaky={flaky}, length={cut}, wrong_id={wrong})
    out = tmp_path / "s.jsonl"
    run = score_to(out, papers, be, load_prompts(), store)
    assert {f.arxiv_id for f in run.failures} == {bad, cut, wrong}
    assert flaky in run.scores and run.retried == 4
    reasons = {f.arxiv_id: f.reason for f in run.failures}
    assert "cut off" in reasons[cut] and "not JSON" in reasons[bad] and "ARXIVID" in reasons[wrong]
    assert len(store.get_failures(be.model_name, run.prompt_hash)) == 3
    assert len(lines(out)) == 9                                    # failures are not written as scores
    # the next run retries only the failures
    be2 = FakeBackend()
    run2 = score_to(out, papers, be2, load_prompts(), store)
    assert run2.reused == 9 and run2.scored == 3 and not store.get_failures(be2.model_name, run2.prompt_hash)


def test_backend_crash_keeps_what_was_stored(papers, store, tmp_path):
    out = tmp_path / "s.jsonl"
    out.write_text("an earlier run's scores\n")
    be = FakeBackend(raise_for={papers[7].id})
    with pytest.raises(BackendError):
        score_to(out, papers, be, load_prompts(), store, options=ScoreOptions(batch_size=4))
    assert out.read_text() == "an earlier run's scores\n"        # never half a file
    assert len(store.get_scores([p.id for p in papers], be.model_name, load_prompts().hash(
        **ScoreOptions(batch_size=4).prompt_options()))) == 4       # the first batch is stored
    run = score_to(out, papers, FakeBackend(), load_prompts(), store, options=ScoreOptions(batch_size=4))
    assert run.reused == 4 and [r["ARXIVID"] for r in lines(out)] == [p.id for p in papers]


def test_the_retry_asks_each_paper_alone_and_gives_a_cut_off_answer_more_room(papers, store):
    """A failed three-paper request is not sent again as it was (greedy decoding would fail the same way):
    its papers are asked one by one, so one bad paper no longer fails the two others, and a paper whose
    answer was cut off is asked with twice the token budget."""
    bad, cut = papers[1].id, papers[4].id
    be = FakeBackend(garbage={bad}, length={cut})
    sent = []
    real = be.generate
    be.generate = lambda reqs, **kw: (sent.append([(r.key, r.max_tokens) for r in reqs]), real(reqs, **kw))[1]
    opt = ScoreOptions(papers_per_request=3)
    run = score_papers(papers[:6], be, load_prompts(), store, options=opt)
    assert {f.arxiv_id for f in run.failures} == {bad, cut}
    assert set(run.scores) == {p.id for p in papers[:6]} - {bad, cut}
    first, second = sent
    assert [k.count(",") + 1 for k, _ in first] == [3, 3]
    assert [k for k, _ in second] == [p.id for p in papers[:6]]            # every paper of both requests, alone
    room = dict(second)
    assert room[cut] == 2 * room[bad] and run.retried == 6


def test_an_answer_the_context_cut_off_is_not_asked_again(papers, store):
    """A paper whose prompt left its answer less room in the model's context than its budget was asked again
    with twice the budget: a second prompt computed for nothing, as the room is the context's, not the
    budget's. It fails at once with the backend's reason; a paper cut off by its budget is still retried."""
    ctx, cut = papers[0].id, papers[1].id
    be = FakeBackend(context_full={ctx}, length={cut})
    run = score_papers(papers[:3], be, load_prompts(), store)
    asked = [k for call in be.calls for k in call]
    assert asked.count(ctx) == 1 and asked.count(cut) == 2 and asked.count(papers[2].id) == 1
    assert {f.arxiv_id for f in run.failures} == {ctx, cut} and run.retried == 1
    reasons = {f.arxiv_id: f.reason for f in run.failures}
    assert "leaves no more of a context of" in reasons[ctx]
    assert "finish_reason=length" in reasons[cut]


def test_several_papers_per_request(papers, store, tmp_path):
    be = FakeBackend()
    run = score_to(tmp_path / "s.jsonl", papers[:7], be, load_prompts(), store,
                       options=ScoreOptions(papers_per_request=3))
    assert [len(k.split(",")) for k in be.calls[0]] == [3, 3, 1]
    assert len(run.scores) == 7


def test_expected_mode_fills_expectations(papers, store):
    run = score_papers(papers[:3], FakeBackend(), load_prompts(), store,
                       options=ScoreOptions(score_mode="expected"))
    for pid, s in run.scores.items():
        assert s.expected_relevance is not None and abs(s.expected_relevance - s.relevance) <= 1
    # greedy scores stored earlier lack expectations, so expected mode scores them again
    run_g = score_papers(papers[3:5], FakeBackend(), load_prompts(), store)
    run_e = score_papers(papers[3:5], FakeBackend(), load_prompts(), store,
                         options=ScoreOptions(score_mode="expected"))
    assert run_g.scored == 2 and run_e.reused == 0 and run_e.scored == 2


def test_expected_mode_with_several_papers_per_request_fills_each_and_a_rerun_reuses_them(papers, store):
    """Several papers answered at once: each one's distributions come keyed "<id>/<field>"; without reading
    them every paper lacked its expectation, and each rerun scored the whole day again."""
    opt = ScoreOptions(score_mode="expected", papers_per_request=2)
    run = score_papers(papers[:4], FakeBackend(), load_prompts(), store, options=opt)
    assert all(s.expected_relevance is not None and s.expected_novelty is not None for s in run.scores.values())
    assert {pid: round(s.expected_relevance) for pid, s in run.scores.items()} == \
        {pid: s.relevance for pid, s in run.scores.items()}
    again = score_papers(papers[:4], FakeBackend(), load_prompts(), store, options=opt)
    assert (again.reused, again.scored) == (4, 0)


@pytest.mark.parametrize("text,msg", [
    ('{"ARXIVID": "1", "COMMENT": "c", "RELEVANCE": 11, "NOVELTY": 3}', "RELEVANCE 11"),
    ('{"ARXIVID": "1", "COMMENT": "c", "RELEVANCE": 5}', "missing NOVELTY"),
    ('{"ARXIVID": "1", "COMMENT": 3, "RELEVANCE": 5, "NOVELTY": 3}', "COMMENT"),
    ('{"ARXIVID": "1", "COMMENT": "c", "RELEVANCE": true, "NOVELTY": 3}', "RELEVANCE True"),
    ('[1, 2]', "not a JSON object"),
    # a forged second key would win in a plain JSON parser: refused
    ('{"ARXIVID": "1", "COMMENT": "c", "RELEVANCE": 2, "NOVELTY": 3, "RELEVANCE": 10}', "'RELEVANCE' appears twice"),
    ('{"papers": [], "papers": [{"ARXIVID": "1"}]}', "'papers' appears twice"),
    # the id may only gain a version suffix
    ('{"ARXIVID": "1vEVIL", "COMMENT": "c", "RELEVANCE": 5, "NOVELTY": 3}', "ARXIVID '1vEVIL' is not '1'"),
    ('{"ARXIVID": "1v2x", "COMMENT": "c", "RELEVANCE": 5, "NOVELTY": 3}', "ARXIVID '1v2x'"),
    ('{"ARXIVID": "1 v2", "COMMENT": "c", "RELEVANCE": 5, "NOVELTY": 3}', "ARXIVID '1 v2'"),
])
def test_validation_messages(text, msg):
    with pytest.raises(ValueError, match=msg):
        parse_result(Result("1", text), ["1"], 300)


def test_a_versioned_id_is_accepted_and_stored_bare():
    got = parse_result(Result("2506.16065", r'{"ARXIVID": "2506.16065v3", "COMMENT": "c\u202e\u0000!", '
                                            r'"RELEVANCE": 5, "NOVELTY": 3}'), ["2506.16065"], 300)
    assert list(got) == ["2506.16065"] and got["2506.16065"].comment == "c!"      # bidi and NUL dropped


def test_the_instructions_first_layout_reaches_the_backend_and_is_its_own_key(papers, store):
    from ranker.settings import resolve

    class Recording(FakeBackend):
        def generate(self, requests, **kw):
            self.messages = [r.messages for r in requests]
            return super().generate(requests, **kw)

    ps = load_prompts()
    score_papers(papers[:3], FakeBackend(), ps, store)
    cfg = resolve(flags={"prompt_layout": "instructions-first"}, env={})
    be = Recording()
    run = score_papers(papers[:3], be, ps, store, options=ScoreOptions.from_settings(cfg.scoring))
    assert run.reused == 0 and run.scored == 3                     # not the seed layout's stored scores
    user = be.messages[0][1]["content"]
    assert user.index("## Instructions") < user.index(f"ArXiv ID: {papers[0].id}")


def test_expected_mode_needs_a_backend_that_reports_probabilities(papers, store):
    from ranker.errors import ConfigError

    class NoProbabilities(FakeBackend):
        supports_score_probs = False

    with pytest.raises(ConfigError) as e:
        score_papers(papers[:2], NoProbabilities(), load_prompts(), store, options=ScoreOptions(score_mode="expected"))
    assert e.value.key == "scoring.score_mode"
    assert score_papers(papers[:2], NoProbabilities(), load_prompts(), store).scored == 2     # greedy is fine


def test_an_answer_may_only_add_a_version_to_the_id(papers, store):
    pid = papers[0].id
    ok = parse_result(Result(pid, f'{{"ARXIVID": "{pid}v2", "COMMENT": "{"x" * 400}", "RELEVANCE": 5, '
                                  f'"NOVELTY": 4, "EXTRA": 1}}'), [pid], 300)
    assert ok[pid].relevance == 5 and len(ok[pid].comment) == 300          # lenient on what is cosmetic
    with pytest.raises(ValueError, match="ARXIVID"):
        parse_result(Result(pid, f'{{"ARXIVID": "{pid}vEVIL", "COMMENT": "", "RELEVANCE": 5, "NOVELTY": 4}}'),
                     [pid], 300)


def test_a_ctrl_c_during_the_retry_keeps_the_batch_s_good_answers(papers, store):
    """The answers of a batch's first call are stored before its retry call: Ctrl-C (or a backend error) while
    one bad paper is asked again used to lose every other paper of the batch, answered and validated."""
    from ranker.errors import Interrupted
    ps = load_prompts()
    be = FakeBackend(flaky={papers[0].id}, interrupt_after=1)     # the retry call is interrupted
    with pytest.raises(Interrupted) as e:
        score_papers(papers, be, ps, store)
    assert e.value.scored == 11
    phash = ps.hash(**ScoreOptions().prompt_options())
    assert set(store.get_scores([p.id for p in papers], be.model_name, phash)) == {p.id for p in papers[1:]}
    again = FakeBackend()
    run = score_papers(papers, again, ps, store)
    assert (run.reused, run.scored) == (11, 1) and again.calls == [[papers[0].id]]


def test_a_request_s_tokens_are_shared_out_whole_among_its_papers(papers, store):
    """Several papers per request: each paper's stored tokens are a share of the request's, and the shares add
    up to it (they were rounded down, so the digest's token table fell short of what the model spent)."""
    run = score_papers(papers[:12], FakeBackend(), load_prompts(), store, options=ScoreOptions(papers_per_request=5))
    assert not run.failures and run.retried == 0
    assert run.scores_usage == run.usage
    ids = ["2506.00001", "2506.00002", "2506.00003"]
    text = json.dumps({"papers": [{"ARXIVID": i, "COMMENT": "c", "RELEVANCE": 5, "NOVELTY": 4} for i in ids]})
    from ranker.records import Usage
    got = parse_result(Result("k", text, usage=Usage(1000, 101, 2)), ids, 300)
    assert [s.prompt_tokens for s in got.values()] == [334, 333, 333]
    assert sum(s.completion_tokens for s in got.values()) == 101
    assert sum(s.cached_prompt_tokens for s in got.values()) == 2


def test_a_one_paper_request_the_backend_failed_is_not_sent_again(papers, store):
    """A request that got no answer at all (the backend's own error, after its own retries: a server down, a
    prompt too long) is recorded as failed, not sent again unchanged: with a dead server every paper cost
    twice the backend's retries before the run could fail. A several-paper request is still split."""
    be = FakeBackend(error={papers[0].id})
    run = score_papers(papers[:3], be, load_prompts(), store)
    assert len(be.calls) == 1 and run.retried == 0
    assert [(f.arxiv_id, f.reason) for f in run.failures] == [(papers[0].id, "injected error")]
    be = FakeBackend(error={papers[3].id})
    run = score_papers(papers[3:6], be, load_prompts(), store, options=ScoreOptions(papers_per_request=2))
    assert be.calls[1] == [papers[3].id, papers[4].id] and run.retried == 2
    assert [f.arxiv_id for f in run.failures] == [papers[3].id] and len(run.scores) == 2


def test_progress_counts_the_papers_answered_whether_the_engine_names_its_requests_or_not(papers, store):
    """Three papers a request, seven papers: requests of 3, 3 and 1. A backend that names the requests that
    finished (the fake, in order) counts each request's own papers; one that tells only how many (vLLM) counts
    each as the smallest left (the short one, with the least to write, finishes first there): before, each
    finished request counted three papers, the short one too, so the bar ran ahead of the answers."""
    class CountsOnly(FakeBackend):
        def generate(self, requests, *, score_probs=False, on_done=None):
            out = super().generate(requests, score_probs=score_probs)
            for _ in requests:
                on_done(1)
            return out

    for be, want in ((FakeBackend("a"), [0, 3, 6, 7, 7]), (CountsOnly("b"), [0, 1, 4, 7, 7])):
        seen = []
        score_papers(papers[:7], be, load_prompts(), store, options=ScoreOptions(papers_per_request=3),
                     progress=lambda stage, done, total: seen.append((stage, done, total)))
        assert seen == [("scoring", n, 7) for n in want], type(be).__name__
