"""Scoring with vLLM's offline engine: every request of a batch in one call, the JSON schema enforced by
the engine's grammar (xgrammar), the prompt prefix shared by a day's requests computed once.

    backend = VLLMBackend("smollm2-135m")                    # preset, folder or Hugging Face id
    results = backend.generate(requests, score_probs=True)

Options (VLLMOptions, the [scoring.vllm] table; all optional): max_model_len, gpu_memory_utilization,
tensor_parallel_size, dtype, kv_cache_gb (CPU: the KV cache size, default 1 GiB), seed, prime_prefix (compute
the requests' common prompt prefix once before the batch, default on), engine_process (run vLLM's engine
core in a separate process: vLLM's own default, kept on GPUs; off on CPU, where it gains nothing and the
engine's start-up errors then reach us with their message), quiet (vLLM logs at WARNING), batch_invariant
(VLLM_BATCH_INVARIANT: greedy output that does not depend on what else shares the batch, so a day scored
again gives the same answers; NVIDIA GPUs of compute capability 8.0+ only, refused elsewhere; slower),
engine_args (a dict passed through to vllm.LLM, winning over everything above: quantization="awq",
kv_cache_dtype="fp8", enable_chunked_prefill, ...).

The installed vLLM's version is checked at start (vllm_env.check_version): one warning line outside the
tested range, an error when it is too old for structured outputs.

On a CPU build of vLLM the defaults are float32, eager mode, 32-token KV blocks and a 1 GiB KV cache
(VLLM_CPU_KVCACHE_SPACE, when set, wins); vLLM binds its OpenMP threads itself (VLLM_CPU_OMP_THREADS_BIND,
default: all cores but one), except on a machine of up to four cores, where the worker gets them all (see
vllm_env.cpu_thread_env, which holds all of the backend's environment handling). Scripts that use this backend need an `if __name__ == "__main__":` guard: vLLM starts a
worker process.
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Callable, Literal, Mapping

from pydantic import Field, field_validator

from .. import models, netguard
from ..errors import ConfigError, ModelError, frame_owners
from ..io import Warn, json_loads
from ..records import Usage
from .base import (SHORTER_PROMPT, Backend, BackendOptions, Request, Result, answer_room, chat_template_problem,
                   config_context,
                   cut_by_context, hf_config_context, local_model_key, one_line)
from .probs import TOP_LOGPROBS, Step, probe_failed, score_distributions
from .vllm_env import (check_batch_invariant, check_version, import_vllm, scoped_env, start_env, torch_threads,
                       user_kv_cache)

CPU_MAX_MODEL_LEN = 8192


def _model_max_len(path: str) -> int | None:
    """The model's context length from its config as transformers reads it (the text model's config for a
    multimodal one, a model type's default where config.json leaves it out), or None when no config says."""
    try:
        from transformers import AutoConfig
        cfg = AutoConfig.from_pretrained(path)
    except Exception:             # a model type this transformers does not know: config.json as written
        return _written_max_len(Path(path) / "config.json")
    return hf_config_context(cfg)


def context_name(context: int, *, option: int | None, engine_args: Mapping[str, Any], model_max: int | None,
                 cpu: bool) -> str:
    """Where the engine's context of `context` tokens comes from, as a prompt too long for it says: the setting
    that sets it (and how far the model goes), or what shortens the prompt where no setting raises it."""
    if "max_model_len" in engine_args:
        where = "[scoring.vllm] engine_args.max_model_len"
    elif option is not None:
        where = "[scoring.vllm] max_model_len"
    elif cpu and model_max is not None and context < model_max:
        where = f"[scoring.vllm] max_model_len, {CPU_MAX_MODEL_LEN} by default on CPU"
    else:
        where = None
    if where is not None and (model_max is None or context < model_max):
        return where + (f"; the model takes up to {model_max}" if model_max is not None else "")
    own = f"the model's own, as {where} sets it" if where else "the model's own"
    return f"{own}; {SHORTER_PROMPT}"


def _written_max_len(config: Path) -> int | None:
    """The context length config.json itself states (its text config's for a multimodal one), or None."""
    try:
        data = json_loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None                # no config (a Hub id not cached): vLLM finds out for itself
    if not isinstance(data, dict):
        return None
    text = data.get("text_config") if isinstance(data.get("text_config"), dict) else data
    return config_context(text.get) or config_context(data.get)


def _engine_error(e: BaseException, model: str) -> ModelError:
    msg = one_line(e)
    low = msg.lower()
    if any(s in low for s in ("kv cache", "out of memory", "memory on node", "no available memory",
                              "larger than the available", "cuda out of memory")):
        return ModelError(f"model {model} does not fit in memory: {msg} (lower [scoring.vllm] max_model_len, "
                          "raise its gpu_memory_utilization / kv_cache_gb, or choose a smaller model)")
    if "support `--runner generate`" in low:
        return ModelError(f"model {model} is not a text-generation model: vLLM runs its architecture for "
                          "embedding or classification only; scoring needs a causal language model (an "
                          "...ForCausalLM checkpoint)")
    if "engine core initialization failed" in low:
        return ModelError(f"the vLLM engine for {model} failed to start; the cause is in vLLM's log "
                          "(most often: the model does not fit in memory, lower [scoring.vllm] max_model_len)")
    return ModelError(f"vLLM could not load {model}: {msg}")


def _processes_started() -> set:
    import multiprocessing
    return set(multiprocessing.active_children())


def _stop_failed_start(e: BaseException, before: set) -> None:
    """Stop what a failed engine start left running. vLLM shuts its workers down (with the weights they
    loaded, 1.5 GB for SmolLM2 on a CPU) only in a finalizer that keeps the executor alive itself, so they
    lived until this process exited: shut the executors found in the failure's frames (an executor shut
    down on purpose logs no "worker died"), then end any process the start left all the same."""
    import multiprocessing
    done = set()
    for obj in frame_owners(e):
        for part in (obj, getattr(obj, "model_executor", None)):
            kind = type(part)
            if (part is not None and id(part) not in done and kind.__module__.startswith("vllm.")
                    and kind.__name__.endswith("Executor") and hasattr(part, "shutdown")):
                done.add(id(part))
                try:
                    part.shutdown()
                except Exception:
                    pass
    left = [p for p in multiprocessing.active_children() if p not in before]
    for p in left:
        p.terminate()
    for p in left:
        p.join(10)
        if p.is_alive():
            p.kill()
            p.join(5)


def _check_engine_args(vllm, engine_args: Mapping[str, Any]) -> None:
    """A key of engine_args that this vLLM's LLM does not take is a ConfigError naming it, before the engine
    starts (vLLM's own TypeError read as the model failing to load)."""
    import dataclasses
    import inspect
    try:
        known = {n for n, p in inspect.signature(vllm.LLM.__init__).parameters.items()
                 if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
        known |= {f.name for f in dataclasses.fields(vllm.EngineArgs)}
    except Exception:             # cannot tell: vLLM says so itself
        return
    for key in engine_args:
        if key not in known:
            raise ConfigError("unknown engine argument of this vLLM", key=f"scoring.vllm.engine_args.{key}")


def _completions(on_done: Callable[[int], None]):
    """What vLLM's generate() takes as `use_tqdm` (a tqdm factory) to report each request as it finishes:
    a tqdm drawing nowhere whose update() tells `on_done`."""
    import io

    from tqdm import tqdm

    class Completions(tqdm):
        def __init__(self, *args, **kwargs):
            kwargs.update(file=io.StringIO(), dynamic_ncols=False, mininterval=3600)
            super().__init__(*args, **kwargs)

        def update(self, n=1):
            out = super().update(n)
            on_done(int(n or 0))
            return out

    return Completions


class _Told:
    """A generate() call's `on_done`, told of each request once. The engine tells of a request as it finishes;
    an engine call that then fails loses the answers it had, and its requests are run again one at a time (or
    fail): `lost` takes back what that call had counted, and on_done hears only what goes past the most it has
    heard. So no request is counted twice, and the count ends at the number of requests."""

    def __init__(self, on_done: Callable[[int], None]):
        self.on_done = on_done
        self.finished = 0          # requests finished, less those of engine calls that failed
        self.told = 0              # what on_done has heard

    def __call__(self, n: int = 1) -> None:
        self.finished += n
        if self.finished > self.told:
            self.on_done(self.finished - self.told)
            self.told = self.finished

    def lost(self, n: int) -> None:
        self.finished -= n


def common_prefix(seqs: list[list[int]]) -> int:
    if not seqs:
        return 0
    first = seqs[0]
    n = min(len(s) for s in seqs)
    for k in range(n):
        t = first[k]
        if any(s[k] != t for s in seqs[1:]):
            return k
    return n


# the dtypes vLLM's engine takes by name (its ModelDType): another was its own multi-line validation error, worded
# as the model failing to load, after the engine had been imported
VLLMDtype = Literal["auto", "half", "float16", "bfloat16", "float", "float32"]


class VLLMOptions(BackendOptions):
    """[scoring.vllm]"""
    max_model_len: int | None = Field(None, ge=16)           # default: the model's (CPU: at most 8192)
    gpu_memory_utilization: float | None = Field(None, gt=0, le=1)
    tensor_parallel_size: int = Field(1, ge=1)
    dtype: VLLMDtype | None = None                            # default: float32 on CPU, the model's on GPU
    # CPU default 1 GiB (VLLM_CPU_KVCACHE_SPACE wins); finite: `kv_cache_gb = inf` passed, and the engine's start
    # then failed as 'unexpected failure: cannot convert float infinity to integer'
    kv_cache_gb: float | None = Field(None, gt=0, allow_inf_nan=False)
    seed: int = 0
    prime_prefix: bool = True                                 # compute the batch's shared prefix once first
    engine_process: bool | None = None                        # engine core in its own process (GPU default)
    quiet: bool = True                                        # vLLM logs at WARNING
    batch_invariant: bool = False                             # VLLM_BATCH_INVARIANT (GPU, capability 8.0+)
    engine_args: dict[str, Any] = {}                          # passed to vllm.LLM, winning over the above

    @field_validator("engine_args")
    @classmethod
    def _not_the_model(cls, v: dict[str, Any]) -> dict[str, Any]:
        # it won over the model named: another model's answers then stored as the named one's scores
        if "model" in v:
            raise ValueError("the model is not an engine argument: name it with {key:scoring.model}")
        return v


class VLLMBackend(Backend):
    name = "vllm"
    Options = VLLMOptions
    supports_score_probs = True
    loads_local_model = True
    uses_warn = True                  # make_backend passes the caller's Warn (the version check's line)

    def __init__(self, model: str, options: Mapping[str, Any] | VLLMOptions | None = None, *,
                 models_dir: Path | None = None, warn: Warn | None = None, **kwargs):
        o = self.parse_options(options, **kwargs)
        tokenizer = self.given_tokenizer(o)
        path = models.resolve(model, kind="llm", models_dir=models_dir, tokenizer=tokenizer)
        self.model_name = local_model_key(model, models_dir)
        vllm = import_vllm(quiet=o.quiet)
        self.vllm_version = check_version(warn)
        from vllm.platforms import current_platform

        self.device = "cpu" if current_platform.is_cpu() else current_platform.device_type or "gpu"
        self.batch_invariant = o.batch_invariant
        if o.batch_invariant:
            cap = None
            if self.device != "cpu":
                try:
                    c = current_platform.get_device_capability()
                    cap = (int(c.major), int(c.minor)) if c is not None else None
                except Exception:
                    cap = None
            check_batch_invariant(self.device, cap)
        engine_process = o.engine_process if o.engine_process is not None else self.device != "cpu"
        max_model_len = o.max_model_len
        model_max: int | None = None          # the model's own context, where read (said when a prompt is long)
        # runner: a model vLLM would run for embedding or classification (a BERT, a reward model) is refused
        # while its config is read, not started as one whose every request then fails
        kwargs: dict[str, Any] = dict(model=path, tokenizer=path, runner="generate", seed=o.seed,
                                      enable_prefix_caching=True,
                                      tensor_parallel_size=o.tensor_parallel_size,
                                      structured_outputs_config={"backend": "xgrammar",
                                                                 "disable_any_whitespace": True})
        if self.device == "cpu":
            # "mp": the worker, which pins its OpenMP threads to cores, runs in its own process and
            # leaves this one alone (with the engine core in-process, vLLM would otherwise run it here).
            # block_size: the prefix cache reuses whole blocks; vLLM's CPU default of 128 tokens leaves up
            # to 127 tokens of the shared prefix to recompute per request, 32 (the smallest the CPU
            # attention kernel takes) at most 31.
            kwargs.update(dtype=o.dtype or "float32", enforce_eager=True, distributed_executor_backend="mp",
                          block_size=32)
            if not user_kv_cache():
                kwargs["kv_cache_memory_bytes"] = int((o.kv_cache_gb or 1.0) * (1 << 30))
            if max_model_len is None:       # at most CPU_MAX_MODEL_LEN; unknown: vLLM's own choice
                model_max = _model_max_len(path)
                max_model_len = min(CPU_MAX_MODEL_LEN, model_max) if model_max else None
        else:
            if o.dtype:
                kwargs["dtype"] = o.dtype
            if o.kv_cache_gb:
                kwargs["kv_cache_memory_bytes"] = int(o.kv_cache_gb * (1 << 30))
        if max_model_len is not None:
            kwargs["max_model_len"] = int(max_model_len)
        if o.gpu_memory_utilization is not None:
            kwargs["gpu_memory_utilization"] = float(o.gpu_memory_utilization)
        _check_engine_args(vllm, o.engine_args)
        kwargs.update(o.engine_args)
        if tokenizer is not None:
            kwargs["tokenizer"] = tokenizer         # as found (a folder's ~ expanded)
        self.engine_args = {k: v for k, v in kwargs.items() if k not in ("model", "tokenizer")}

        t0 = time.perf_counter()
        threads = torch_threads()
        env = start_env(self.device, o.tensor_parallel_size, engine_process, o.batch_invariant)
        self.engine_env = {k: v for k, v in env.items() if k.startswith("VLLM_CPU") or k == "VLLM_BATCH_INVARIANT"}
        self._run_env = {"VLLM_BATCH_INVARIANT": "1"} if o.batch_invariant else {}
        failure: ModelError | None = None
        started = _processes_started()
        try:
            with scoped_env(env):
                self._llm = vllm.LLM(**kwargs)
        except Exception as e:
            failure = (_engine_error(e, model)
                       if isinstance(e, (ValueError, RuntimeError, OSError, MemoryError))
                       or type(e).__name__ == "OutOfMemoryError"
                       else ModelError(f"vLLM could not load {model}: {one_line(e)}"))
            _stop_failed_start(e, started)
        finally:
            torch_threads(threads)     # starting the engine drops this process to one torch thread
        if failure is not None:
            raise failure
        self.load_seconds = time.perf_counter() - t0
        self._vllm = vllm
        self._tok = self._llm.get_tokenizer()
        problem = chat_template_problem(self._tok, self.prompt_text)
        if problem is not None:     # (the engine's tokenizer, known once it runs: a tokenizer of engine_args, ...)
            self.close()
            raise ModelError(f"model {model} cannot be scored: {problem}")
        self.max_model_len = int(self._llm.llm_engine.model_config.max_model_len)
        if model_max is None and (o.max_model_len is not None or "max_model_len" in o.engine_args):
            model_max = _model_max_len(path)          # how far a setting could raise it
        self.context_name = context_name(self.max_model_len, option=o.max_model_len, engine_args=o.engine_args,
                                         model_max=model_max, cpu=self.device == "cpu")
        # the dtype the engine computes in, for the manifest: on a GPU without the option, the model's own
        self.dtype = str(getattr(self._llm.llm_engine.model_config, "dtype", "") or "").removeprefix("torch.") or None
        self.prime_prefix = o.prime_prefix
        self._usage = Usage()
        self._stats = {"requests": 0, "failed": 0, "batches": 0, "generate_seconds": 0.0,
                       "primer_prompt_tokens": 0, "probe_requests": 0}

    @classmethod
    def given_tokenizer(cls, options: Mapping[str, Any] | VLLMOptions | None = None) -> str | None:
        """engine_args' tokenizer (vLLM's own: a folder or a Hugging Face id), which the engine loads in place
        of the model folder's, so that folder need not hold one. A path must be there (a folder with a
        tokenizer's files), an id offline in the local Hugging Face cache: a ModelError naming the key
        otherwise, before the engine starts and fails in its own words (or tries the network)."""
        name = cls.parse_options(options).engine_args.get("tokenizer")
        if name is None:
            return None
        key = "scoring.vllm.engine_args.tokenizer"
        if not isinstance(name, str) or not name.strip():
            raise ConfigError("must be a tokenizer's folder or Hugging Face id", key=key)
        path = Path(name).expanduser()
        if path.exists():
            if path.is_dir() and not models.holds_tokenizer(path):
                raise ModelError("no tokenizer in this folder (tokenizer.json, tokenizer_config.json or "
                                 "tokenizer.model)", key=key, where=str(path))
            return str(path.resolve())
        if not models.looks_like_hub_id(name):
            raise ModelError("no such tokenizer folder", key=key, where=name)
        if netguard.is_offline() and models.hub_cached(name) is None:
            raise ModelError("not a local folder and not in the Hugging Face cache; offline mode downloads "
                             "nothing (copy the tokenizer's folder over and name it)", key=key, where=name)
        return name

    # ------------------------------------------------------------------ helpers
    def prompt_text(self, messages: list[dict[str, str]], chat_template_kwargs: dict | None = None) -> str:
        """The chat template applied the way vLLM's chat() does, `chat_template_kwargs` (enable_thinking)
        given to the template."""
        return self._tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True,
                                             **(chat_template_kwargs or {}))

    def prompt_ids(self, messages: list[dict[str, str]], chat_template_kwargs: dict | None = None) -> list[int]:
        """The prompt as token ids (no extra BOS, as vLLM's chat() does)."""
        return list(self._tok.encode(self.prompt_text(messages, chat_template_kwargs), add_special_tokens=False))

    def _sampling(self, req: Request, max_tokens: int, logprobs: bool):
        from vllm.sampling_params import SamplingParams, StructuredOutputsParams
        return SamplingParams(temperature=0.0, max_tokens=max_tokens,
                              structured_outputs=StructuredOutputsParams(json=req.schema),
                              logprobs=TOP_LOGPROBS if logprobs else None)

    def _run(self, prompts: list[list[int]], params: list, on_done: Callable[[int], None] | None = None) -> list:
        try:
            with scoped_env(self._run_env):
                outs = self._llm.generate([{"prompt_token_ids": p} for p in prompts], params,
                                          use_tqdm=_completions(on_done) if on_done is not None else False)
        except BaseException:
            self._drop_unfinished()
            raise
        if len(outs) != len(prompts):       # never hand one request's answer to another
            raise RuntimeError(f"the engine returned {len(outs)} outputs for {len(prompts)} requests")
        return outs

    def _drop_unfinished(self) -> None:
        """Abort the requests a failed engine call left in the engine: the next call would return their outputs
        with its own, each answer then given to the wrong request."""
        engine = self._llm.llm_engine
        try:
            ids = list(engine.output_processor.request_states)
            if ids:
                try:
                    engine.abort_request(ids, internal=True)
                except TypeError:           # vLLM before internal request ids
                    engine.abort_request(ids)
        except Exception:
            pass

    # ------------------------------------------------------------------ the interface
    def generate(self, requests: list[Request], *, score_probs: bool = False,
                 on_done: Callable[[int], None] | None = None) -> list[Result]:
        if not requests:
            return []
        t0 = time.perf_counter()
        results: list[Result | None] = [None] * len(requests)
        prompts: list[list[int]] = []
        todo: list[int] = []
        params = []
        for i, req in enumerate(requests):
            try:
                ids = self.prompt_ids(req.messages, req.chat_template_kwargs)
            except Exception as e:
                results[i] = Result(req.key, None, "error", error=f"chat template failed: {one_line(e)}")
                continue
            room, too_long = answer_room(req.key, len(ids), self.max_model_len, self.context_name)
            if too_long is not None:
                results[i] = too_long
                continue
            todo.append(i)
            prompts.append(ids)
            params.append(self._sampling(req, min(req.max_tokens, room), score_probs))

        if len(prompts) > 1 and self.prime_prefix:
            self._prime(prompts)
        if on_done is not None and len(todo) < len(requests):
            on_done(len(requests) - len(todo))          # refused before the engine: done at once
        outs = self._generate_isolating(prompts, params, [requests[i].key for i in todo],
                                        _Told(on_done) if on_done is not None else None)
        for i, ids, sp, out in zip(todo, prompts, params, outs):
            results[i] = res = out if isinstance(out, Result) else self._result(requests[i], ids, out)
            if res.finish_reason == "length" and sp.max_tokens < requests[i].max_tokens:
                # cut off by the context, not by the answer's budget: a larger budget would not help
                cut_by_context(res, sp.max_tokens, len(ids), self.max_model_len, self.context_name)
        if score_probs:
            self._fill_score_probs([(results[i], prompts[k], outs[k]) for k, i in enumerate(todo)
                                    if not isinstance(outs[k], Result)])
        self._stats["batches"] += 1
        self._stats["requests"] += len(requests)
        self._stats["failed"] += sum(1 for r in results if not r.ok)
        self._stats["generate_seconds"] += time.perf_counter() - t0
        return results  # type: ignore[return-value]

    def _prime(self, prompts: list[list[int]]) -> None:
        """Compute the shared prompt prefix once so every request of the batch finds it in the cache
        (submitted together, the first few would otherwise all compute it before any could reuse it)."""
        from vllm.sampling_params import SamplingParams
        n = common_prefix(prompts)
        if n < 32:
            return
        try:
            self._run([prompts[0][:n]], [SamplingParams(max_tokens=1, temperature=0.0)])
            self._stats["primer_prompt_tokens"] += n
        except Exception:
            pass   # only an optimisation

    def _generate_isolating(self, prompts, params, keys, on_done: _Told | None = None) -> list:
        """One engine call for the batch; if it fails as a whole, find the request(s) at fault by
        running them one at a time, so one bad request cannot sink the others. `on_done` hears each request
        once: the requests the failed call had finished are run again, and one that fails alone is done."""
        if not prompts:
            return []
        before = on_done.finished if on_done is not None else 0
        try:
            return self._run(prompts, params, on_done)
        except Exception as e:
            if on_done is not None:
                on_done.lost(on_done.finished - before)
            if len(prompts) == 1:
                if on_done is not None:
                    on_done(1)
                return [Result(keys[0], None, "error", error=f"vLLM: {one_line(e)}",
                               usage=Usage(prompt_tokens=len(prompts[0])))]
        out = []
        for p, sp, k in zip(prompts, params, keys):
            out.extend(self._generate_isolating([p], [sp], [k], on_done))
        return out

    @staticmethod
    def _usage_of(out, prompt_ids: list[int] | None = None) -> Usage:
        """The tokens one engine output computed: its prompt (the cached part too) and its completion."""
        return Usage(prompt_tokens=len(out.prompt_token_ids or prompt_ids or ()),
                     completion_tokens=len(out.outputs[0].token_ids),
                     cached_prompt_tokens=int(out.num_cached_tokens or 0))

    def _result(self, req: Request, prompt_ids: list[int], out) -> Result:
        c = out.outputs[0]
        usage = self._usage_of(out, prompt_ids)
        self._usage.add(usage)
        finish = c.finish_reason or "stop"
        if finish not in ("stop", "length"):
            return Result(req.key, c.text, "error", error=f"vLLM finished with '{finish}'", usage=usage)
        return Result(req.key, c.text, finish, usage=usage)

    # ------------------------------------------------------------------ expected-score mode
    def _steps(self, c) -> tuple[list[int], list[Step]]:
        ids = list(c.token_ids)
        steps = []
        for pos, tid in enumerate(ids):
            lp = c.logprobs[pos] if c.logprobs is not None and pos < len(c.logprobs) else None
            cands = []
            for cand_id, info in (lp or {}).items():
                if info.logprob is None or info.logprob == -math.inf:
                    continue
                piece = info.decoded_token
                if piece is None:
                    piece = self._tok.decode([cand_id])
                cands.append((cand_id, piece, math.exp(info.logprob)))
            steps.append(Step(tid, cands))
        starts = [len(self._tok.decode(ids[:k], skip_special_tokens=True)) for k in range(len(ids))]
        return starts, steps

    def _fill_score_probs(self, items) -> None:
        from vllm.sampling_params import SamplingParams
        prepared = []
        needs: list[tuple[int, int, int]] = []           # (item, position, token)
        for n, (res, prompt, out) in enumerate(items):
            if not res.ok:
                continue
            c = out.outputs[0]
            starts, steps = self._steps(c)
            prepared.append((n, res, prompt, c, starts, steps))
            score_distributions(c.text, starts, steps,
                                ask=lambda pos, tok, n=n: needs.append((n, pos, tok)) or None)
        answers: dict[tuple[int, int, int], list] = {}
        failed: dict[int, str] = {}                      # item -> why a probe it needed failed
        if needs:
            probe_prompts = [items[n][1] + list(items[n][2].outputs[0].token_ids[:pos]) + [tok]
                             for n, pos, tok in needs]
            sp = SamplingParams(max_tokens=1, temperature=0.0, logprobs=TOP_LOGPROBS)
            # as the answers: a failed call is run again one probe at a time, so one bad probe fails one answer
            outs = self._generate_isolating(probe_prompts, [sp] * len(probe_prompts),
                                            [f"probe {k}" for k in range(len(needs))])
            self._stats["probe_requests"] += len(outs)
            for need, o in zip(needs, outs):
                if isinstance(o, Result):                # this probe failed, alone
                    failed.setdefault(need[0], o.error or "no answer")
                    continue
                spent = self._usage_of(o)
                self._usage.add(spent)
                items[need[0]][0].usage.add(spent)       # the answer's tokens hold its probes'
                lp = o.outputs[0].logprobs[0] if o.outputs[0].logprobs else {}
                answers[need] = [(t, info.decoded_token if info.decoded_token is not None
                                  else self._tok.decode([t]), math.exp(info.logprob))
                                 for t, info in lp.items() if info.logprob not in (None, -math.inf)]
        for n, res, _prompt, c, starts, steps in prepared:
            if n in failed:
                probe_failed(res, failed[n])
                continue
            res.score_probs = score_distributions(c.text, starts, steps,
                                                  ask=lambda pos, tok, n=n: answers.get((n, pos, tok)))

    # ------------------------------------------------------------------ reporting
    def stats(self) -> dict:
        u = self._usage
        return {
            "backend": self.name, "model": self.model_name, "device": self.device,
            **self._stats,
            "prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens,
            "cached_prompt_tokens": u.cached_prompt_tokens,
            "computed_prompt_tokens": u.prompt_tokens - u.cached_prompt_tokens,
            "prefix_cache_hit_rate": round(u.cached_prompt_tokens / u.prompt_tokens, 4) if u.prompt_tokens else 0.0,
            "load_seconds": round(self.load_seconds, 2),
            "max_model_len": self.max_model_len, "dtype": self.dtype,
            "vllm": self.vllm_version, "batch_invariant": self.batch_invariant,
            "engine_args": {k: v for k, v in self.engine_args.items() if isinstance(v, (int, float, str, bool))},
            "engine_env": dict(self.engine_env),
        }

    def close(self) -> None:
        llm = getattr(self, "_llm", None)
        if llm is None:
            return
        self._llm = None
        try:
            llm.llm_engine.engine_core.shutdown()
        except Exception:
            pass
        del llm
        import gc
        gc.collect()
