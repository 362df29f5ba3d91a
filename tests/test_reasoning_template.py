"""Reasoning chat templates (Qwen3 and others think by default): the scoring request tells the template not to
think (chat_template_kwargs, default enable_thinking=False), so no token budget goes to a hidden monologue
and the JSON is not broken. Tested with a copy of the bundled SmolLM2 folder whose chat template has Qwen3's
switch: thinking on unless enable_thinking is false."""
from __future__ import annotations

import shutil

import pytest

from ranker.sources import read_papers

from conftest import DAYS, MODELS

LISTING = DAYS / "2025-05-15" / "listing.jsonl"
OPEN, CLOSED = "<|im_start|>assistant\n<think>\n", "<|im_start|>assistant\n<think>\n\n</think>\n\n"
# SmolLM2's template with a Qwen3-style switch at the generation prompt
THINKING_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
    "'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}"
    "{% if enable_thinking is defined and enable_thinking is false %}{{ '<think>\\n\\n</think>\\n\\n' }}"
    "{% else %}{{ '<think>\\n' }}{% endif %}{% endif %}")


def thinking_copy(dest):
    """A model folder like the bundled SmolLM2's (weights linked, not copied) with a thinking template."""
    src = MODELS / "smollm2-135m"
    dest.mkdir()
    for f in src.iterdir():
        if f.name == "chat_template.jinja" or f.is_dir():     # only the model's own files
            continue
        if f.stat().st_size > 1_000_000:
            (dest / f.name).symlink_to(f.resolve())
        else:
            shutil.copy(f, dest / f.name)
    (dest / "chat_template.jinja").write_text(THINKING_TEMPLATE)
    return dest


@pytest.fixture(scope="module")
def thinking_model(tmp_path_factory):
    return thinking_copy(tmp_path_factory.mktemp("models") / "smollm2-thinking")


@pytest.mark.slow
def test_transformers_scores_with_thinking_off(thinking_model, tmp_path, torch_threads_put_back):
    from ranker.backends.transformers_backend import TransformersBackend
    from ranker.settings import resolve
    from ranker.steps import score_day
    from ranker.store import Store

    be = TransformersBackend(str(thinking_model), threads=2)    # (torch's, for the process: put back after it)
    msgs = [{"role": "system", "content": "judge"}, {"role": "user", "content": "paper"}]
    assert be.prompt_text(msgs).endswith(OPEN)                                  # the template thinks by default
    assert be.prompt_text(msgs, {"enable_thinking": False}).endswith(CLOSED)
    rendered = []
    real = be.prompt_text
    be.prompt_text = lambda m, kw=None: rendered.append(real(m, kw)) or rendered[-1]
    s = resolve(flags={"backend": "transformers", "model": str(thinking_model), "db": tmp_path / "db.sqlite3"},
                env={"RANKER_HOME": str(tmp_path)})
    s.scoring.comment_chars = 80
    with Store(s.db_path) as store:
        run = score_day(list(read_papers(LISTING))[:2], s, store=store, backend=be)
    be.close()
    assert rendered and all(r.endswith(CLOSED) for r in rendered)             # every request: thinking off
    assert run.scored == 2 and not run.failures                                # and the JSON came out whole
    assert all(len(sc.comment) <= 80 for sc in run.scores.values())


def test_the_vllm_backend_renders_its_prompts_with_thinking_off(thinking_model):
    """The vllm backend's own rendering (the code its generate() uses), on the model's real tokenizer, without
    starting an engine."""
    from transformers import AutoTokenizer

    from ranker.backends.base import Request
    from ranker.backends.vllm_backend import VLLMBackend
    from ranker.prompts import load_prompts
    from ranker.scoring import ScoreOptions, build_requests
    be = object.__new__(VLLMBackend)
    be._tok = AutoTokenizer.from_pretrained(thinking_model)
    (req,) = build_requests([list(read_papers(LISTING))[:1]], load_prompts(), ScoreOptions())
    assert isinstance(req, Request) and req.chat_template_kwargs == {"enable_thinking": False}
    assert be.prompt_text(req.messages, req.chat_template_kwargs).endswith(CLOSED)
    assert be.prompt_text(req.messages).endswith(OPEN)
    ids = be.prompt_ids(req.messages, req.chat_template_kwargs)
    assert be._tok.decode(ids).endswith(CLOSED)
