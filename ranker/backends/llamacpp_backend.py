"""Scoring with llama.cpp (through llama-cpp-python) on a GGUF file: the recommended engine on a CPU.

    backend = LlamaCppBackend("smollm2-135m")                 # the preset's GGUF as shipped (Q4_1 for SmolLM2)
    backend = LlamaCppBackend("smollm2-135m", quant="f32")    # the very weights vLLM loads, in F32
    backend = LlamaCppBackend("/data/Qwen2.5-7B-Instruct-Q4_K_M.gguf")
    results = backend.generate(requests, score_probs=True)

Greedy, the JSON schema enforced as a GBNF grammar (gbnf.py: the language xgrammar enforces for the other
backends), several requests decoded together and the day's shared prompt prefix computed once and kept
for the next call (llamacpp_engine.py). The prompt is the GGUF's own chat template, tokenised by llama.cpp.
Expected-score mode reads the grammar-allowed candidates among the top TOP_LOGPROBS tokens at each step.

Options (LlamaCppOptions, unknown keys are an error): quant (a preset's GGUF: as shipped, "f32" or
"f16"), gguf (a file, instead of the preset's), parallel (sequences decoded together), n_threads /
n_threads_batch (default: every core this process may use), n_ctx (KV cells shared by all sequences),
n_batch / n_ubatch (tokens per decode call / per compute step), flash_attn (off: on this CPU it cuts decode 7x),
kv_f32 (an F32 KV cache instead of F16; default on with quant="f32", so the precision is vLLM's), repack
(llama.cpp's repacked weight layouts, AMX among them; off by default: on this project's virtualised
Sapphire Rapids machine the AMX path dies of a general protection fault on the first forward pass of a
Q4_1 model), quiet.
"""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any, Mapping, Optional

from pydantic import Field

from .. import models
from ..errors import BackendError, MissingDependency, ModelError
from ..records import Usage
from .base import Backend, BackendOptions, Request, Result, one_line
from .gbnf import schema_to_gbnf
from .llamacpp_engine import Engine, EngineError, Job
from .probs import TOP_LOGPROBS, Step, score_distributions

CTX_PER_SEQUENCE = 4096   # default KV cells per parallel sequence (the shared prefix's cells count once)


class LlamaCppOptions(BackendOptions):
    """[scoring.llamacpp]"""
    quant: Optional[str] = None               # a preset's GGUF: None = as shipped, or "f32" / "f16"
    gguf: Optional[str] = None                # a GGUF file, instead of the preset's
    parallel: int = Field(8, ge=1, le=64)     # sequences decoded together
    n_threads: Optional[int] = Field(None, ge=1)
    n_threads_batch: Optional[int] = Field(None, ge=1)
    n_ctx: Optional[int] = Field(None, ge=256)
    n_batch: int = Field(512, ge=8)
    n_ubatch: int = Field(512, ge=8)
    flash_attn: bool = False                  # on: decode 5 tok/s against 37 without (SmolLM2 F32, here)
    kv_f32: Optional[bool] = None
    repack: bool = False
    quiet: bool = True


def import_llama_cpp():
    try:
        import llama_cpp
    except ImportError:
        raise MissingDependency("llama-cpp-python", extra="llamacpp",
                                purpose="the llamacpp backend (installing it compiles llama.cpp: minutes)") from None
    except Exception as e:           # a broken build is not a missing one
        raise BackendError(f"llama-cpp-python is installed but failed to import: {one_line(e)}") from None
    return llama_cpp


_BACKEND_READY = False


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def gguf_for(model: str, quant: str | None, gguf: str | None, models_dir: Path | None = None) -> Path:
    """The GGUF file to load: an explicit file, a model given as a .gguf path, or a preset's GGUF."""
    given = gguf or (model if model.endswith(".gguf") else None)
    if given:
        path = Path(given).expanduser()
        if not path.is_file():
            raise ModelError("no such GGUF file", where=str(path))
        return path
    return models.gguf_file(model, quant, models_dir)


class LlamaCppBackend(Backend):
    name = "llamacpp"
    Options = LlamaCppOptions
    supports_score_probs = True

    def __init__(self, model: str, options: Mapping[str, Any] | LlamaCppOptions | None = None, *,
                 models_dir: Path | None = None, **kwargs):
        global _BACKEND_READY
        opt = self.parse_options(options, **kwargs)
        self.options = opt
        path = gguf_for(model, opt.quant, opt.gguf, models_dir)
        self.model_name = model if opt.quant is None else f"{model}:{opt.quant}"
        self.gguf = str(path)
        lc = import_llama_cpp()
        if opt.quiet:
            logging.getLogger("llama-cpp-python").setLevel(logging.ERROR)
        if not _BACKEND_READY:
            lc.llama_backend_init()
            _BACKEND_READY = True
        self.n_threads = opt.n_threads or usable_cores()
        self.n_threads_batch = opt.n_threads_batch or self.n_threads
        kv_f32 = opt.kv_f32 if opt.kv_f32 is not None else opt.quant == "f32"
        n_ctx = opt.n_ctx or CTX_PER_SEQUENCE * (opt.parallel + 1)
        t0 = time.perf_counter()
        try:
            self._engine = Engine(lc, str(path), n_ctx=n_ctx, n_batch=opt.n_batch, n_ubatch=opt.n_ubatch,
                                  n_seq=opt.parallel, n_threads=self.n_threads,
                                  n_threads_batch=self.n_threads_batch, flash_attn=opt.flash_attn,
                                  kv_f32=kv_f32, extra_bufts=opt.repack, quiet=opt.quiet)
        except (EngineError, OSError, MemoryError) as e:
            raise ModelError(f"llama.cpp could not load {path.name}: {one_line(e)}", where=str(path)) from None
        self.load_seconds = time.perf_counter() - t0
        eng = self._engine
        # a prompt may not be longer than the model was trained for (vLLM's max_model_len does the same)
        self.max_model_len = min(eng.n_ctx, eng.n_ctx_train) if eng.n_ctx_train > 0 else eng.n_ctx
        template = eng.chat_template()
        if not template:
            self.close()
            raise ModelError("the GGUF file carries no chat template", where=str(path))
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        def special(key: str) -> str:
            v = eng.meta(key)
            return eng.special_text(int(v)) if v and v.lstrip("-").isdigit() else ""
        self._format = Jinja2ChatFormatter(template, eos_token=special("tokenizer.ggml.eos_token_id"),
                                           bos_token=special("tokenizer.ggml.bos_token_id"),
                                           add_generation_prompt=True)
        self._grammars: dict[str, str] = {}
        self._usage = Usage()
        self._stats = {"requests": 0, "failed": 0, "generate_seconds": 0.0}

    # ------------------------------------------------------------------ prompt
    def prompt_ids(self, messages: list[dict[str, str]]) -> list[int]:
        """The GGUF's chat template applied to the messages, tokenised by llama.cpp. No BOS is added: the
        template writes what the model expects (as vLLM's chat() does)."""
        return self._engine.tokenize(self._format(messages=messages).prompt, special=True)

    def count_tokens(self, text: str) -> int | None:
        return len(self._engine.tokenize(text, special=False))

    def _gbnf(self, schema: dict) -> str:
        key = repr(schema)
        if key not in self._grammars:
            if len(self._grammars) > 4096:
                self._grammars.clear()
            self._grammars[key] = schema_to_gbnf(schema)
        return self._grammars[key]

    # ------------------------------------------------------------------ the interface
    def generate(self, requests: list[Request], *, score_probs: bool = False) -> list[Result]:
        t0 = time.perf_counter()
        results: list[Result | None] = [None] * len(requests)
        jobs: dict[int, Job] = {}
        for i, req in enumerate(requests):
            try:
                ids = self.prompt_ids(req.messages)
                gbnf = self._gbnf(req.schema)
            except ValueError as e:
                results[i] = Result(req.key, None, "error", error=f"schema not supported: {one_line(e)}")
                continue
            except Exception as e:
                results[i] = Result(req.key, None, "error", error=f"chat template failed: {one_line(e)}")
                continue
            room = self.max_model_len - len(ids)
            if room < 8:
                results[i] = Result(req.key, None, "error", usage=Usage(prompt_tokens=len(ids)),
                                    error=f"prompt of {len(ids)} tokens does not fit the context of "
                                          f"{self.max_model_len}")
                continue
            jobs[i] = Job(ids, gbnf, min(req.max_tokens, room), top_k=TOP_LOGPROBS if score_probs else 0,
                          on_finish=self._read_probs if score_probs else None)
        self._run_isolating(list(jobs.values()))
        for i, job in jobs.items():
            results[i] = self._result(requests[i], job)
        self._stats["requests"] += len(requests)
        self._stats["failed"] += sum(1 for r in results if not r.ok)
        self._stats["generate_seconds"] += time.perf_counter() - t0
        return results  # type: ignore[return-value]

    def _run_isolating(self, jobs: list[Job]) -> None:
        """Run the jobs together; if the engine fails, run them one at a time so one bad job cannot sink
        the others."""
        if not jobs:
            return
        try:
            self._engine.run(jobs)
            return
        except EngineError as e:
            if len(jobs) == 1:
                jobs[0].error = f"llama.cpp: {one_line(e)}"
                return
        for j in jobs:
            j.out, j.steps, j.finish, j.error = [], [], "length", None
            self._run_isolating([j])

    def _result(self, req: Request, job: Job) -> Result:
        usage = Usage(prompt_tokens=len(job.ids), completion_tokens=len(job.out), cached_prompt_tokens=job.cached)
        if job.error:
            return Result(req.key, None, "error", error=job.error, usage=usage)
        self._usage.add(usage)
        eng = self._engine
        text = eng.detokenize([t for t in job.out if not eng.is_eog(t)])
        res = Result(req.key, text, job.finish, usage=usage)
        res.score_probs = getattr(job, "score_probs", None)
        return res

    # ------------------------------------------------------------------ expected-score mode
    def _read_probs(self, job: Job, ask) -> None:
        """Called by the engine when a job ends, while its KV cache is still there for `ask`."""
        if job.finish != "stop":
            return
        eng = self._engine
        ids = [t for t in job.out if not eng.is_eog(t)]
        pieces = [eng.piece(t) for t in ids]
        starts, acc = [], b""
        for p in pieces:
            starts.append(len(acc.decode("utf-8", "ignore")))
            acc += p
        text = acc.decode("utf-8", "replace")
        steps = [Step(t, [(c, eng.piece(c).decode("utf-8", "replace"), p) for c, p in cands])
                 for t, cands in zip(ids, job.steps)]

        def probe(pos: int, tok: int):
            return [(c, eng.piece(c).decode("utf-8", "replace"), p) for c, p in ask(pos, tok)]
        job.score_probs = score_distributions(text, starts, steps, ask=probe)

    # ------------------------------------------------------------------ reporting
    def stats(self) -> dict:
        u = self._usage
        eng = self._engine
        st = {k: round(v, 2) if isinstance(v, float) else v for k, v in self._stats.items()}
        return {"backend": self.name, "model": self.model_name, "gguf": self.gguf, "device": "cpu", **st,
                "prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens,
                "cached_prompt_tokens": u.cached_prompt_tokens,
                "computed_prompt_tokens": u.prompt_tokens - u.cached_prompt_tokens,
                "primer_prompt_tokens": eng.stats["primer_tokens"],
                "prefix_cache_hit_rate": round(u.cached_prompt_tokens / u.prompt_tokens, 4) if u.prompt_tokens else 0.0,
                "decode_steps": eng.stats["steps"], "grammar_full_masks": eng.stats["full_masks"],
                "probe_evals": eng.stats["probes"], "decode_only_tokens": eng.stats["decode_only_tokens"],
                "decode_only_seconds": round(eng.stats["decode_only_seconds"], 3),
                "load_seconds": round(self.load_seconds, 2),
                "n_ctx": eng.n_ctx, "max_model_len": self.max_model_len, "parallel": self.options.parallel,
                "n_threads": self.n_threads, "n_threads_batch": self.n_threads_batch,
                "n_batch": self.options.n_batch, "n_ubatch": self.options.n_ubatch}

    def close(self) -> None:
        eng = getattr(self, "_engine", None)
        if eng is not None:
            self._engine = None
            eng.close()
