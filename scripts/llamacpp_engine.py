"""A small scoring engine on llama.cpp's C API (the ctypes bindings of llama-cpp-python): several sequences
decoded together over one KV cache, a shared prompt prefix computed once, greedy decoding under a GBNF
grammar. llamacpp_scorer.py (scripts/bench_scoring.py's llama.cpp engines) is its only user; llama_cpp is
passed in, never imported here.

How a batch of jobs runs:
  1. The jobs' common token prefix is held in sequence 0. What it shares with the prefix already held (from
     the previous call) stays in the KV cache; only the rest is computed ("primer" tokens).
  2. Each job takes one of `n_seq` slots (sequences 1..n_seq): the prefix's cells are shared with it
     (llama_memory_seq_cp on a unified KV cache copies no data), then only its own tokens are computed.
  3. Every step is one llama_decode over all busy slots: one token for each slot that is decoding and, in
     the room left (n_batch), the prompt tokens of slots still reading theirs. A slot that finishes takes
     the next job at once (continuous batching), so a decode step reads the weights once for n_seq tokens.
  4. The next token is the greedy choice under the job's grammar: the raw argmax when the grammar allows it
     (checked on that one token), else the best token after the grammar's mask of the whole vocabulary.
     Either way the token is what greedy decoding under the mask picks.
"""
from __future__ import annotations

import ctypes
import os
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

TOKEN_DTYPE = np.dtype([("id", np.intc), ("logit", np.single), ("p", np.single)], align=True)


class EngineError(RuntimeError):
    pass


@contextmanager
def quiet_stderr(enabled: bool = True):
    """llama.cpp logs every load to stderr; hold it in a file and hand back its last lines (for errors)."""
    if not enabled:
        yield lambda: ""
        return
    with tempfile.TemporaryFile() as buf:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(buf.fileno(), 2)
        try:
            yield lambda: _tail(buf)
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _tail(buf) -> str:
    os.fsync(buf.fileno())
    buf.seek(0)
    lines = [x for x in buf.read().decode("utf-8", "replace").splitlines() if x.strip()]
    return " | ".join(lines[-2:])


@dataclass
class Job:
    ids: list[int]                        # the prompt, as token ids
    gbnf: str                             # the grammar the answer must follow (root rule "root")
    max_tokens: int
    # filled in by the engine
    out: list[int] = field(default_factory=list)
    finish: str = "length"
    cached: int = 0                       # prompt tokens served from the KV cache
    error: str | None = None


@dataclass
class _Slot:
    seq: int
    job: Job
    grammar: Any
    pending: list[int]
    pos: int
    row: int = -1                         # batch row holding this slot's logits after a step


class Engine:
    def __init__(self, lc, path: str, *, n_ctx: int, n_batch: int, n_ubatch: int, n_seq: int,
                 n_threads: int, n_threads_batch: int, flash_attn: bool | None, kv_f32: bool,
                 extra_bufts: bool, quiet: bool = True):
        self.lc = lc
        self.model = self.ctx = self.batch = None
        with quiet_stderr(quiet) as log:
            try:
                self._load(path, n_ctx=n_ctx, n_batch=n_batch, n_ubatch=n_ubatch, n_seq=n_seq,
                           n_threads=n_threads, n_threads_batch=n_threads_batch, flash_attn=flash_attn,
                           kv_f32=kv_f32, extra_bufts=extra_bufts)
            except EngineError as e:
                self.close()
                said = log()
                raise EngineError(f"{e}: {said}" if said else str(e)) from None

    def _load(self, path: str, *, n_ctx: int, n_batch: int, n_ubatch: int, n_seq: int, n_threads: int,
              n_threads_batch: int, flash_attn: bool | None, kv_f32: bool, extra_bufts: bool) -> None:
        lc = self.lc
        mp = lc.llama_model_default_params()
        mp.n_gpu_layers = 0
        mp.use_extra_bufts = bool(extra_bufts)
        self.model = lc.llama_model_load_from_file(path.encode("utf-8"), mp)
        if not self.model:
            raise EngineError("llama.cpp could not load the model file")
        self.vocab = lc.llama_model_get_vocab(self.model)
        self.n_vocab = int(lc.llama_vocab_n_tokens(self.vocab))
        cp = lc.llama_context_default_params()
        cp.n_ctx, cp.n_batch, cp.n_ubatch = int(n_ctx), int(n_batch), int(min(n_ubatch, n_batch))
        cp.n_seq_max = int(n_seq) + 1
        cp.kv_unified = True
        cp.n_threads, cp.n_threads_batch = int(n_threads), int(n_threads_batch)
        if flash_attn is not None:
            cp.flash_attn_type = lc.LLAMA_FLASH_ATTN_TYPE_ENABLED if flash_attn else lc.LLAMA_FLASH_ATTN_TYPE_DISABLED
        if kv_f32:
            cp.type_k = cp.type_v = lc.GGML_TYPE_F32
        self.ctx = lc.llama_init_from_model(self.model, cp)
        if not self.ctx:
            raise EngineError(f"llama.cpp could not create a context of {n_ctx} tokens")
        self.mem = lc.llama_get_memory(self.ctx)
        self.n_ctx = int(lc.llama_n_ctx(self.ctx))
        self.n_ctx_train = int(lc.llama_model_n_ctx_train(self.model))
        self.n_batch = int(n_batch)
        self.n_seq = int(n_seq)
        self.batch = lc.llama_batch_init(self.n_batch, 0, 1)
        self.held: list[int] = []                    # the prefix sequence 0 holds
        self._cand = np.zeros(self.n_vocab, dtype=TOKEN_DTYPE)
        self._all_ids = np.arange(self.n_vocab, dtype=np.intc)
        self._one = np.zeros(1, dtype=TOKEN_DTYPE)
        self.stats = {"primer_tokens": 0, "steps": 0, "full_masks": 0,
                      "decode_only_seconds": 0.0, "decode_only_tokens": 0}

    # ------------------------------------------------------------------ text
    def tokenize(self, text: str, special: bool = True) -> list[int]:
        data = text.encode("utf-8")
        n = len(data) + 16
        buf = (self.lc.llama_token * n)()
        got = self.lc.llama_tokenize(self.vocab, data, len(data), buf, n, False, special)
        if got < 0:
            raise EngineError("tokenisation overflow")
        return list(buf[:got])

    def piece(self, token: int, special: bool = False) -> bytes:
        buf = ctypes.create_string_buffer(64)
        n = self.lc.llama_token_to_piece(self.vocab, int(token), buf, 64, 0, special)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = self.lc.llama_token_to_piece(self.vocab, int(token), buf, -n, 0, special)
        return buf.raw[:n]

    def detokenize(self, ids: list[int]) -> str:
        return b"".join(self.piece(t) for t in ids).decode("utf-8", "replace")

    def meta(self, key: str) -> str | None:
        buf = ctypes.create_string_buffer(1 << 16)
        n = self.lc.llama_model_meta_val_str(self.model, key.encode("utf-8"), buf, len(buf))
        return buf.value.decode("utf-8", "replace") if n >= 0 else None

    def chat_template(self) -> str | None:
        t = self.lc.llama_model_chat_template(self.model, None)
        return t.decode("utf-8", "replace") if t else None

    def is_eog(self, token: int) -> bool:
        return bool(self.lc.llama_vocab_is_eog(self.vocab, int(token)))

    def special_text(self, token: int) -> str:
        return self.piece(token, special=True).decode("utf-8", "replace")

    # ------------------------------------------------------------------ KV cache and decoding
    def forget(self) -> None:
        """Empty the KV cache (after an error, or to measure from cold)."""
        self.lc.llama_memory_clear(self.mem, True)
        self.held = []

    def _decode(self, entries: list[tuple[int, int, int, bool]]) -> None:
        """One llama_decode of (token, position, sequence, wants logits) entries."""
        b = self.batch
        for i, (tok, pos, seq, logits) in enumerate(entries):
            b.token[i] = tok
            b.pos[i] = pos
            b.n_seq_id[i] = 1
            b.seq_id[i][0] = seq
            b.logits[i] = logits
        b.n_tokens = len(entries)
        rc = self.lc.llama_decode(self.ctx, b)
        if rc != 0:
            raise EngineError(f"llama_decode returned {rc}" + (" (the KV cache is full)" if rc == 1 else ""))

    def logits(self, row: int) -> np.ndarray:
        ptr = self.lc.llama_get_logits_ith(self.ctx, row)
        return np.ctypeslib.as_array(ptr, shape=(self.n_vocab,))

    def _hold_prefix(self, target: list[int]) -> int:
        """Make sequence 0 hold `target`; returns how many of its tokens were computed now."""
        keep = 0
        for a, b in zip(self.held, target):
            if a != b:
                break
            keep += 1
        if keep < len(self.held):
            self.lc.llama_memory_seq_rm(self.mem, 0, keep, -1)
        todo = target[keep:]
        for k in range(0, len(todo), self.n_batch):
            chunk = todo[k:k + self.n_batch]
            self._decode([(t, keep + k + i, 0, False) for i, t in enumerate(chunk)])
        self.held = list(target)
        self.stats["primer_tokens"] += len(todo)
        return len(todo)

    # ------------------------------------------------------------------ grammar
    def _grammar(self, gbnf: str):
        g = self.lc.llama_sampler_init_grammar(self.vocab, gbnf.encode("utf-8"), b"root")
        if not g:
            raise EngineError("llama.cpp rejected the grammar")
        return g

    def _apply(self, grammar, arr: np.ndarray) -> None:
        lc = self.lc
        data = lc.llama_token_data_array(data=arr.ctypes.data_as(lc.llama_token_data_p), size=len(arr),
                                         selected=-1, sorted=False)
        lc.llama_sampler_apply(grammar, ctypes.byref(data))

    def _choose(self, grammar, logits: np.ndarray) -> int:
        best = int(np.argmax(logits))
        one = self._one
        one["id"][0], one["logit"][0], one["p"][0] = best, logits[best], 0.0
        self._apply(grammar, one)
        if one["logit"][0] != -np.inf:
            return best
        self.stats["full_masks"] += 1
        c = self._cand
        c["id"] = self._all_ids
        c["logit"] = logits
        c["p"] = 0.0
        self._apply(grammar, c)
        masked = c["logit"]
        if not np.isfinite(masked).any():
            raise EngineError("the grammar allows no token here")
        return int(c["id"][int(np.argmax(masked))])

    # ------------------------------------------------------------------ the scheduler
    def run(self, jobs: list[Job]) -> None:
        """Run every job to its end (results are written into the jobs)."""
        if not jobs:
            return
        lc = self.lc
        for s in range(1, self.n_seq + 1):
            lc.llama_memory_seq_rm(self.mem, s, -1, -1)
        shortest = min(len(j.ids) for j in jobs)
        target = list(jobs[0].ids[:shortest - 1])
        for j in jobs[1:]:
            n = 0
            for a, b in zip(target, j.ids):
                if a != b:
                    break
                n += 1
            del target[n:]
        self._hold_prefix(target)
        p0 = len(target)
        queue = list(jobs)
        slots: list[_Slot | None] = [None] * self.n_seq
        cells = lambda j: len(j.ids) - p0 + j.max_tokens  # noqa: E731
        used = p0
        try:
            while queue or any(slots):
                for k in range(self.n_seq):          # admit
                    if slots[k] is None and queue and used + cells(queue[0]) <= self.n_ctx:
                        job = queue.pop(0)
                        seq = k + 1
                        lc.llama_memory_seq_cp(self.mem, 0, seq, 0, p0)
                        job.cached = p0
                        slots[k] = _Slot(seq, job, self._grammar(job.gbnf), list(job.ids[p0:]), p0)
                        used += cells(job)
                if not any(slots):
                    job = queue.pop(0)
                    job.error = f"needs {cells(job) + p0} KV cells, the context holds {self.n_ctx}"
                    continue
                t_step = time.perf_counter()
                reading = any(not s.job.out for s in slots if s is not None)   # a prompt in this step
                entries: list[tuple[int, int, int, bool]] = []
                room = self.n_batch
                busy = sorted((s for s in slots if s is not None), key=lambda s: len(s.pending))
                for s in busy:                        # decoding slots (1 token) first, then prompt chunks
                    take = min(len(s.pending), room)
                    s.row = -1
                    for i in range(take):
                        last = i == take - 1 and take == len(s.pending)
                        if last:
                            s.row = len(entries)
                        entries.append((s.pending[i], s.pos + i, s.seq, last))
                    s.pos += take
                    s.pending = s.pending[take:]
                    room -= take
                self._decode(entries)
                self.stats["steps"] += 1
                done = []
                for k, s in enumerate(slots):
                    if s is None or s.row < 0:
                        continue
                    job = s.job
                    logits = self.logits(s.row)
                    tok = self._choose(s.grammar, logits)
                    lc.llama_sampler_accept(s.grammar, tok)
                    job.out.append(tok)
                    if self.is_eog(tok):
                        job.finish = "stop"
                    elif len(job.out) < job.max_tokens:
                        s.pending = [tok]
                        continue
                    done.append(k)
                if not reading:            # decode-only steps: the engine's decode rate
                    self.stats["decode_only_seconds"] += time.perf_counter() - t_step
                    self.stats["decode_only_tokens"] += len(entries)
                for k in done:
                    s, slots[k] = slots[k], None
                    used -= cells(s.job)
                    self._finish(s)
        except BaseException:
            for s in slots:
                if s is not None:
                    lc.llama_sampler_free(s.grammar)
            self.forget()
            raise

    def _finish(self, s: _Slot) -> None:
        self.lc.llama_sampler_free(s.grammar)
        self.lc.llama_memory_seq_rm(self.mem, s.seq, -1, -1)

    def close(self) -> None:
        lc = self.lc
        if getattr(self, "batch", None) is not None:
            lc.llama_batch_free(self.batch)
            self.batch = None
        if getattr(self, "ctx", None):
            lc.llama_free(self.ctx)
            self.ctx = None
        if getattr(self, "model", None):
            lc.llama_model_free(self.model)
            self.model = None
