"""Scoring with plain Hugging Face transformers, the JSON schema enforced by xgrammar's logits processor.
The fallback where vLLM is not installed: correct, greedy, and slow (no batching across a day's papers
by default, no prefix cache).

Options (TransformersOptions, the [scoring.transformers] table): device ("cpu", "cuda", default: cuda when
available), dtype ("auto": the checkpoint's own; default float32 on CPU, bfloat16 on GPU), batch_size (default
1: one paper at a time; larger batches are left-padded), threads (torch CPU threads; default: torch's own choice).
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any, Callable, Mapping

from pydantic import Field, field_validator

from .. import models
from ..errors import ConfigError, MissingDependency, ModelError
from ..io import quiet_transformers
from ..records import Usage
from .base import (SHORTER_PROMPT, Backend, BackendOptions, GenerateInterrupted, Request, Result, answer_room,
                   chat_template_problem, cut_by_context, hf_config_context, local_model_key, one_line)
from .probs import TOP_LOGPROBS, Step, score_distributions


def _imports():
    try:
        import torch
    except ImportError:
        raise MissingDependency("torch", extra="", purpose="the transformers backend") from None
    try:
        import transformers
    except ImportError:
        raise MissingDependency("transformers", extra="", purpose="the transformers backend") from None
    try:
        import xgrammar
        import xgrammar.contrib.hf  # noqa: F401
    except ImportError:
        raise MissingDependency("xgrammar", extra="", purpose="constrained output in the transformers backend") from None
    return torch, transformers, xgrammar


def _device(torch, name: str) -> str:
    """`name` checked as a torch device this machine has ("cpu", "cuda", "cuda:1", "mps"), before any model
    is loaded: a ConfigError (scoring.transformers.device) for a name torch does not know or a device that is
    not here."""
    key = "scoring.transformers.device"
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError, TypeError):
        raise ConfigError(f"{name!r} is not a torch device (cpu, cuda, cuda:N, mps, ...)", key=key) from None
    if dev.type == "cpu":
        return str(dev)
    backend = getattr(torch, dev.type, None)          # torch.cuda, torch.mps, torch.xpu, ...
    available = getattr(backend, "is_available", None)
    try:
        here = bool(available()) if callable(available) else False
    except Exception:
        here = False
    if not here:
        build = f" (this torch {torch.__version__} is built without CUDA)" \
            if dev.type == "cuda" and getattr(torch.version, "cuda", None) is None else ""
        raise ConfigError(f"no {dev.type} device on this machine{build}; use cpu", key=key)
    count = getattr(backend, "device_count", None)
    if dev.index is not None and callable(count) and dev.index >= count():
        raise ConfigError(f"no device {dev}: this machine has {count()} {dev.type} device(s)", key=key)
    return str(dev)


# where the context comes from (transformers takes no setting for it), and what fits a prompt into it
CONTEXT_NAME = f"the model's config; {SHORTER_PROMPT}"


# the dtypes a model computes in, by name ("auto": the checkpoint's own): the option is checked with the settings,
# before any work (it was checked as the model loaded, after a run's prefilter had embedded the day), and without
# torch, since the options of every [scoring.*] table are checked whichever backend scores
COMPUTE_DTYPES = frozenset({"auto", "float32", "float", "float16", "half", "bfloat16", "float64", "double"})


class TransformersOptions(BackendOptions):
    """[scoring.transformers]"""
    device: str | None = None         # default: cuda when available, else cpu
    dtype: str | None = None          # a torch dtype name or "auto"; default float32 on CPU, bfloat16 on GPU
    batch_size: int = Field(1, ge=1)
    threads: int | None = Field(None, ge=1)

    @field_validator("dtype")
    @classmethod
    def _a_dtype_a_model_computes_in(cls, v: str | None) -> str | None:
        # int8, bool or complex64 failed in the loader's words without the key, a float8 type as an "unexpected
        # failure"
        if v is not None and v not in COMPUTE_DTYPES:
            raise ValueError(f"a model cannot compute in dtype {v!r}; use auto, float32, bfloat16 or float16")
        return v


class TransformersBackend(Backend):
    name = "transformers"
    Options = TransformersOptions
    supports_score_probs = True
    loads_local_model = True

    def __init__(self, model: str, options: Mapping[str, Any] | TransformersOptions | None = None, *,
                 models_dir: Path | None = None, **kwargs):
        o = self.parse_options(options, **kwargs)
        device, dtype, threads = o.device, o.dtype, o.threads
        path = models.resolve(model, kind="llm", models_dir=models_dir)
        self.model_name = local_model_key(model, models_dir)
        torch, transformers, xgr = _imports()
        self._torch, self._xgr = torch, xgr
        if threads:
            torch.set_num_threads(int(threads))
        self.device = _device(torch, device) if device else ("cuda" if torch.cuda.is_available() else "cpu")
        if dtype is None:
            torch_dtype = torch.float32 if self.device == "cpu" else torch.bfloat16
        elif dtype == "auto":
            torch_dtype = "auto"                        # the checkpoint's own; self.dtype says which it was
        else:
            torch_dtype = getattr(torch, dtype)         # one of COMPUTE_DTYPES: the options checked it
        t0 = time.perf_counter()
        try:
            # its "Loading weights" bar is not drawn on the caller's stderr
            with quiet_transformers():
                self._tok = transformers.AutoTokenizer.from_pretrained(path)
                problem = chat_template_problem(self._tok, self.prompt_text)     # said before the weights load
                if problem is not None:
                    raise ModelError(f"model {model} cannot be scored: {problem}")
                self._model = transformers.AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype)
                self._model.to(self.device).eval()
            # for the manifest: the dtype loaded ("auto" resolved); scores are keyed by the model, not its dtype
            self.dtype = str(self._model.dtype).removeprefix("torch.")
        except (OSError, ValueError) as e:
            raise ModelError(f"transformers could not load {model}: {one_line(e)}") from None
        except (RuntimeError, MemoryError) as e:
            if "out of memory" in str(e).lower() or isinstance(e, MemoryError):
                raise ModelError(f"model {model} does not fit in memory: {one_line(e)}") from None
            raise ModelError(f"transformers could not load {model}: {one_line(e)}") from None
        self.load_seconds = time.perf_counter() - t0
        if self._tok.pad_token_id is None:
            self._tok.pad_token = self._tok.eos_token
        self._tok.padding_side = "left"
        self._eos = self._stop_ids()
        # decoding is what generate() is told and nothing else: generate fills every setting it is not given
        # from the model's generation_config.json, whose sampling defaults (Qwen2.5's repetition_penalty 1.05,
        # no_repeat_ngram_size, suppressed tokens, ...) then bent the greedy answer and its probabilities, which
        # vLLM's explicit sampling parameters never apply; only the stop and pad tokens are kept
        self._model.generation_config = transformers.GenerationConfig(
            eos_token_id=sorted(self._eos) or None, pad_token_id=self._tok.pad_token_id)
        # the context the model was built for (None: its config does not say); a prompt must leave room in it
        self.max_model_len = hf_config_context(self._model.config)
        # the logits' width: a multimodal model (Gemma 3) keeps vocab_size in its text model's config only
        config = self._model.config
        text = getattr(config, "get_text_config", None)       # (as hf_config_context: older releases lack it)
        vocab = max(int((text() if text else config).vocab_size), len(self._tok))
        info = xgr.TokenizerInfo.from_huggingface(self._tok, vocab_size=vocab,
                                                  stop_token_ids=sorted(self._eos) or None)
        self._compiler = xgr.GrammarCompiler(info)
        self.batch_size = o.batch_size
        self._usage = Usage()
        self._stats = {"requests": 0, "failed": 0, "generate_seconds": 0.0, "probe_forwards": 0}

    def _stop_ids(self) -> set[int]:
        ids: set[int] = set()
        for src in (getattr(self._model, "generation_config", None), self._model.config):
            e = getattr(src, "eos_token_id", None) if src is not None else None
            if isinstance(e, int):
                ids.add(e)
            elif isinstance(e, (list, tuple)):
                ids.update(int(x) for x in e)
        if self._tok.eos_token_id is not None:
            ids.add(int(self._tok.eos_token_id))
        return ids

    def prompt_text(self, messages: list[dict[str, str]], chat_template_kwargs: dict | None = None) -> str:
        """The model's chat template applied to the messages, with `chat_template_kwargs` (enable_thinking)
        given to the template."""
        return self._tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True,
                                             **(chat_template_kwargs or {}))

    def prompt_ids(self, messages: list[dict[str, str]], chat_template_kwargs: dict | None = None) -> list[int]:
        return list(self._tok.encode(self.prompt_text(messages, chat_template_kwargs), add_special_tokens=False))

    def _grammar(self, schema: dict):
        return self._compiler.compile_json_schema(json.dumps(schema), any_whitespace=False,
                                                  separators=(",", ":"))

    # ------------------------------------------------------------------ the interface
    def generate(self, requests: list[Request], *, score_probs: bool = False,
                 on_done: Callable[..., None] | None = None) -> list[Result]:
        t0 = time.perf_counter()
        results: list[Result] = []
        try:
            for k in range(0, len(requests), self.batch_size):
                chunk = requests[k:k + self.batch_size]
                got = self._try_chunk(chunk, score_probs)
                if isinstance(got, str) and len(chunk) == 1:
                    results.append(Result(chunk[0].key, None, "error", error=got))
                elif isinstance(got, str):
                    # isolate the request at fault, after the failure's handler: its traceback, which holds the
                    # batch's tensors (a GPU's out-of-memory batch), is gone by then
                    self._release()
                    for r in chunk:
                        one = self._try_chunk([r], score_probs)
                        results.extend([Result(r.key, None, "error", error=one)] if isinstance(one, str) else one)
                else:
                    results.extend(got)
                if on_done is not None:
                    on_done(len(chunk), list(range(k, k + len(chunk))))
        except KeyboardInterrupt:
            # the answers finished before the Ctrl-C (seconds of CPU each, a call holds scoring's whole batch) go
            # back with it, in order: the ones not reached are None
            raise GenerateInterrupted(results + [None] * (len(requests) - len(results))) from None
        finally:
            self._stats["requests"] += len(results)
            self._stats["failed"] += sum(1 for r in results if not r.ok)
            self._stats["generate_seconds"] += time.perf_counter() - t0
        return results

    def _try_chunk(self, chunk: list[Request], score_probs: bool) -> list[Result] | str:
        """_generate_chunk's results, or the failure's reason as a Result's error: only its words leave the
        handler, not the exception, whose frames hold the failed call's tensors."""
        try:
            return self._generate_chunk(chunk, score_probs)
        except Exception as e:
            return f"transformers: {one_line(e)}"

    def _release(self) -> None:
        """Hand the memory a failed batch held back to the device (a CUDA allocator keeps it cached otherwise)."""
        torch = getattr(self, "_torch", None)
        if torch is not None and str(getattr(self, "device", "cpu")).startswith("cuda"):
            try:
                torch.cuda.empty_cache()
            except Exception:
                pass

    def _generate_chunk(self, chunk: list[Request], score_probs: bool) -> list[Result]:
        """Results for `chunk`: a prompt that leaves its answer no room in the model's context is refused with
        that reason, the others generated together, each with at most the room its prompt leaves."""
        out: list[Result | None] = [None] * len(chunk)
        todo, prompts, limits = [], [], []
        for i, r in enumerate(chunk):
            ids = self.prompt_ids(r.messages, r.chat_template_kwargs)
            room, too_long = (r.max_tokens, None) if self.max_model_len is None else \
                answer_room(r.key, len(ids), self.max_model_len, CONTEXT_NAME)
            if too_long is not None:
                out[i] = too_long
                continue
            todo.append(i)
            prompts.append(ids)
            limits.append(min(r.max_tokens, room))
        groups = [list(range(len(todo)))] if todo else []
        if todo and self.max_model_len is not None and max(map(len, prompts)) + max(limits) > self.max_model_len:
            # left-padded to its longest prompt, the batch runs every row to its largest limit: that prompt's
            # row would go past the context (each fits alone)
            groups = [[k] for k in range(len(todo))]
        for g in groups:
            got = self._generate_fitting([chunk[todo[k]] for k in g], [prompts[k] for k in g],
                                         [limits[k] for k in g], score_probs)
            for k, res in zip(g, got):
                out[todo[k]] = res
        return out  # type: ignore[return-value]

    def _generate_fitting(self, chunk: list[Request], prompts: list[list[int]], limits: list[int],
                          score_probs: bool) -> list[Result]:
        torch, xgr = self._torch, self._xgr
        width = max(len(p) for p in prompts)
        pad = self._tok.pad_token_id
        input_ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts], device=self.device)
        attention = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=self.device)
        grammars = [self._grammar(r.schema) for r in chunk]
        processor = xgr.contrib.hf.LogitsProcessor(grammars)
        max_new = max(limits)
        with torch.inference_mode():
            out = self._model.generate(
                input_ids=input_ids, attention_mask=attention, max_new_tokens=max_new, do_sample=False,
                temperature=None, top_p=None, top_k=None, logits_processor=[processor],
                pad_token_id=pad, eos_token_id=sorted(self._eos), return_dict_in_generate=True,
                output_scores=score_probs, use_cache=True)
        gen = out.sequences[:, width:].tolist()
        results = []
        for row, (req, prompt, limit) in enumerate(zip(chunk, prompts, limits)):
            ids = gen[row]
            n_gen, stopped = len(ids), False
            for j, t in enumerate(ids):
                if t in self._eos:
                    n_gen, stopped = j + 1, True
                    break
            text_ids = [t for t in ids[:n_gen] if t not in self._eos]
            if n_gen > limit:               # a batch runs to its longest limit: cut to this request's
                text_ids = text_ids[:limit]
            text = self._tok.decode(text_ids, skip_special_tokens=True)
            usage = Usage(prompt_tokens=len(prompt), completion_tokens=min(n_gen, limit))
            self._usage.add(usage)
            res = Result(req.key, text, "stop" if stopped and n_gen <= limit else "length", usage=usage)
            if res.finish_reason == "length" and limit < req.max_tokens:
                # cut off by the context, not by the answer's budget: a larger budget would not help
                cut_by_context(res, limit, len(prompt), self.max_model_len, CONTEXT_NAME)
            if score_probs and res.ok:
                res.score_probs = self._probs(out, row, prompt, text_ids, width,
                                              single=len(chunk) == 1)
            results.append(res)
        return results

    # ------------------------------------------------------------------ expected-score mode
    def _probs(self, out, row: int, prompt: list[int], ids: list[int], width: int, single: bool):
        torch = self._torch
        steps = []
        for pos, tid in enumerate(ids):
            logp = torch.log_softmax(out.scores[pos][row].float(), dim=-1)
            top = torch.topk(logp, TOP_LOGPROBS)
            cands = [(int(t), self._tok.decode([int(t)]), math.exp(float(v)))
                     for v, t in zip(top.values.tolist(), top.indices.tolist()) if v != -math.inf]
            steps.append(Step(tid, cands))
        starts = [len(self._tok.decode(ids[:k], skip_special_tokens=True)) for k in range(len(ids))]
        text = self._tok.decode(ids, skip_special_tokens=True)
        cache = getattr(out, "past_key_values", None) if single else None

        def ask(pos: int, tok: int):
            """Next-token candidates after the prompt, ids[:pos] and `tok` (one short forward pass)."""
            self._stats["probe_forwards"] += 1
            with torch.inference_mode():
                if cache is not None and hasattr(cache, "crop"):
                    extra = cache.get_seq_length() - (width + pos)
                    if extra > 0:
                        cache.crop(-extra)
                    logits = self._model(input_ids=torch.tensor([[tok]], device=self.device),
                                         past_key_values=cache, use_cache=True).logits[0, -1]
                else:
                    seq = torch.tensor([prompt + ids[:pos] + [tok]], device=self.device)
                    logits = self._model(input_ids=seq).logits[0, -1]
            logp = torch.log_softmax(logits.float(), dim=-1)
            top = torch.topk(logp, TOP_LOGPROBS)
            return [(int(t), self._tok.decode([int(t)]), math.exp(float(v)))
                    for v, t in zip(top.values.tolist(), top.indices.tolist())]

        # the cache can only be cut back, so answer later positions first
        needs: list[tuple[int, Any]] = []
        score_distributions(text, starts, steps, ask=lambda p, t: needs.append((p, t)) or None)
        answers = {need: ask(*need) for need in sorted(needs, key=lambda n: -n[0])}
        return score_distributions(text, starts, steps, ask=lambda p, t: answers.get((p, t)))

    def stats(self) -> dict:
        u = self._usage
        return {"backend": self.name, "model": self.model_name, "device": self.device, **self._stats,
                "prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens,
                "cached_prompt_tokens": 0, "computed_prompt_tokens": u.prompt_tokens,
                "load_seconds": round(self.load_seconds, 2), "batch_size": self.batch_size,
                "dtype": self.dtype, "max_model_len": self.max_model_len}

    def close(self) -> None:
        self._model = None
