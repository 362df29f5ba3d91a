"""llama.cpp (through llama-cpp-python) as a scoring engine for scripts/bench_scoring.py: the same requests
the library builds, answered under the same JSON schema, so llama.cpp can be set beside vLLM on this machine.
Not a ranker backend: on this project's CPU vLLM scores faster (the README's figures table).

    scorer = LlamaCppScorer(models.gguf_file("smollm2-135m", "f32"), parallel=16, kv_f32=True)
    results = scorer.generate(requests)            # ranker.backends.Result, one per request, in order

Greedy, the schema enforced as a GBNF grammar (gbnf.py), several requests decoded together and the
requests' shared prompt prefix computed once (llamacpp_engine.py). The prompt is the GGUF's own chat
template, tokenised by llama.cpp. Settings (LlamaCppSettings): parallel (sequences decoded together),
n_threads (default: every core this process may use), n_ctx (KV cells shared by all sequences), n_batch /
n_ubatch (tokens per decode call / per compute step), flash_attn, kv_f32 (an F32 KV cache instead of F16),
repack (llama.cpp's repacked weight layouts, AMX among them; off: on this project's virtualised Sapphire
Rapids machine the AMX path died of a general protection fault on the first forward pass of a Q4_1 model).
"""
from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from gbnf import schema_to_gbnf
from llamacpp_engine import Engine, Job
from ranker.backends.base import Request, Result, answer_room
from ranker.records import Usage

CTX_PER_SEQUENCE = 4096   # default KV cells per parallel sequence (the shared prefix's cells count once)


@dataclass
class LlamaCppSettings:
    parallel: int = 8
    n_threads: int | None = None
    n_ctx: int | None = None
    n_batch: int = 512
    n_ubatch: int = 512
    flash_attn: bool | None = None        # None: llama.cpp decides
    kv_f32: bool = False
    repack: bool = False


_BACKEND_READY = False


class LlamaCppScorer:
    name = "llamacpp"

    def __init__(self, gguf: Path | str, **settings):
        global _BACKEND_READY
        import llama_cpp as lc              # the bench's optional extra: pip install 'ranker[llamacpp]'
        s = LlamaCppSettings(**settings)
        self.settings = s
        self.gguf = str(gguf)
        if not _BACKEND_READY:
            lc.llama_backend_init()
            _BACKEND_READY = True
        self.n_threads = s.n_threads or len(os.sched_getaffinity(0))
        t0 = time.perf_counter()
        self._engine = Engine(lc, self.gguf, n_ctx=s.n_ctx or CTX_PER_SEQUENCE * (s.parallel + 1),
                              n_batch=s.n_batch, n_ubatch=s.n_ubatch, n_seq=s.parallel, n_threads=self.n_threads,
                              n_threads_batch=self.n_threads, flash_attn=s.flash_attn, kv_f32=s.kv_f32,
                              extra_bufts=s.repack)
        self.load_seconds = time.perf_counter() - t0
        eng = self._engine
        # a prompt may not be longer than the model was trained for (vLLM's max_model_len does the same)
        self.max_model_len = min(eng.n_ctx, eng.n_ctx_train) if eng.n_ctx_train > 0 else eng.n_ctx
        template = eng.chat_template()
        if not template:
            self.close()
            raise ValueError(f"{self.gguf}: the GGUF file carries no chat template")
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        def special(key: str) -> str:
            v = eng.meta(key)
            return eng.special_text(int(v)) if v and v.lstrip("-").isdigit() else ""
        self._format = Jinja2ChatFormatter(template, eos_token=special("tokenizer.ggml.eos_token_id"),
                                           bos_token=special("tokenizer.ggml.bos_token_id"),
                                           add_generation_prompt=True)
        self._grammars: dict[str, str] = {}
        self._usage = Usage()

    def prompt_ids(self, messages: list[dict[str, str]]) -> list[int]:
        """The GGUF's chat template applied to the messages, tokenised by llama.cpp. No BOS is added: the
        template writes what the model expects (as vLLM's chat() does)."""
        return self._engine.tokenize(self._format(messages=messages).prompt, special=True)

    def count_tokens(self, text: str) -> int:
        return len(self._engine.tokenize(text, special=False))

    def _gbnf(self, schema: dict) -> str:
        key = repr(schema)
        if key not in self._grammars:
            self._grammars[key] = schema_to_gbnf(schema)
        return self._grammars[key]

    def generate(self, requests: list[Request]) -> list[Result]:
        """Every request answered (an error Result for a prompt that does not fit), in order."""
        results: list[Result | None] = [None] * len(requests)
        jobs: dict[int, Job] = {}
        for i, req in enumerate(requests):
            ids = self.prompt_ids(req.messages)
            room, too_long = answer_room(req.key, len(ids), self.max_model_len)
            if too_long is not None:
                results[i] = too_long
                continue
            jobs[i] = Job(ids, self._gbnf(req.schema), min(req.max_tokens, room))
        self._engine.run(list(jobs.values()))
        for i, job in jobs.items():
            results[i] = self._result(requests[i], job)
        return results  # type: ignore[return-value]

    def _result(self, req: Request, job: Job) -> Result:
        usage = Usage(prompt_tokens=len(job.ids), completion_tokens=len(job.out), cached_prompt_tokens=job.cached)
        if job.error:
            return Result(req.key, None, "error", error=job.error, usage=usage)
        self._usage.add(usage)
        eng = self._engine
        return Result(req.key, eng.detokenize([t for t in job.out if not eng.is_eog(t)]), job.finish, usage=usage)

    def forget(self) -> None:
        """Empty the KV cache: the next call computes its shared prefix again."""
        self._engine.forget()

    def stats(self) -> dict:
        u, st = self._usage, self._engine.stats
        return {**asdict(self.settings), "prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens,
                "cached_prompt_tokens": u.cached_prompt_tokens,
                "computed_prompt_tokens": u.prompt_tokens - u.cached_prompt_tokens,
                "primer_prompt_tokens": st["primer_tokens"], "decode_steps": st["steps"],
                "grammar_full_masks": st["full_masks"], "decode_only_tokens": st["decode_only_tokens"],
                "decode_only_seconds": st["decode_only_seconds"], "load_seconds": self.load_seconds,
                "n_ctx": self._engine.n_ctx, "n_threads": self.n_threads}

    def close(self) -> None:
        eng = getattr(self, "_engine", None)
        if eng is not None:
            self._engine = None
            eng.close()
