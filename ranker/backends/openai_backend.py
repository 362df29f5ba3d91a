"""Scoring through any OpenAI-compatible chat server: `vllm serve` on a workstation, or OpenAI itself.

The server is $OPENAI_BASE_URL (default https://api.openai.com/v1); the key, when one is needed, is
$OPENAI_API_KEY, read by ranker.settings and given as `api_key`; it is only ever put in the Authorization
header (never logged, printed, stored or shown in an error). A local server needs no key.

Each request carries the schema as `response_format={"type": "json_schema", ...}`, which vLLM's server
enforces with its grammar backend (it reads the schema; "strict" is accepted and ignored) and OpenAI
enforces in strict mode. Should a server reject the schema itself (HTTP 400 naming it), the backend
drops the keywords it may not support (lengths, ranges, prefixItems) for the rest of the run, and the
caller's validation catches what the server then lets through.

A request too long for the model's context ends as it does with the other backends: a refusal naming the
context's size (vLLM, OpenAI) is not retried; the request is sent once more with its answer's budget cut to the
room its prompt leaves, and an answer cut off short of its budget is the context's (Result.context_full, so the
caller does not ask again with a larger one). A 404 (a model the server does not serve, a base URL without its
/v1) is a ConfigError out of generate() naming scoring.model or scoring.openai.base_url: every request would
fail alike.

Requests run concurrently (`concurrency`, default 8) on daemon threads. 429, 5xx, timeouts and dropped
connections are retried with exponential backoff and jitter (`retries`, default 4; Retry-After is honoured)
within the request's deadline (`total_timeout`); what still fails becomes a Result with finish_reason
"error" and the reason, so the run goes on. Every wait is bounded: connecting (`connect_timeout`, 10 s), the
server's silence in one attempt (`timeout`, 120 s) and the whole request, retries included (`total_timeout`,
300 s), so one paper never holds a run for long. A request that cannot connect in all its attempts takes the
server for gone, as does one answered 502 or 503 in all of them (a proxy in front of a server down or still
loading): the requests after it fail at once with that reason (a rerun sends them), for a while; then one
request goes first and the others wait for its outcome. A connection the server dropped after accepting it
does not take the server for gone. Ctrl-C stops generate() at once: the waiting thread is
interrupted, no request is started after it, and the threads still waiting on a hung server are daemons
that never keep the process alive.

Options (OpenAIOptions, the [scoring.openai] table): base_url (OPENAI_BASE_URL), concurrency,
connect_timeout, timeout, total_timeout, retries, backoff (first wait, seconds), max_backoff (the longest
wait; a server asking for longer fails the request), probe (expected mode: ask the server for the next-token
distribution after an ambiguous '1', using vLLM's continue_final_message; default: on unless the server is
OpenAI's; an answer whose probe fails is an error, so scoring asks for the paper again). Error texts never
carry the key: a server that echoes it back is redacted (ranker.io.redact).
"""
from __future__ import annotations

import copy
import math
import re
import threading
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence, TypeVar
from urllib.parse import urlparse

from pydantic import Field

from ..errors import BackendError, ConfigError, FetchError, MissingDependency, RankerError
from ..io import (RETRY_STATUS, Cancelled, RetryPolicy, Retryable, add_secret, redact, retry,
                  retry_after_seconds, Warn)
from ..netguard import check_allowed
from ..records import Usage
from ..settings import MAX_WAIT
from .base import (MIN_ANSWER_ROOM, Backend, BackendOptions, GenerateInterrupted, Request, Result, answer_room,
                   cut_by_context, one_line)
from .pricing import cost_usd, price_for
from .probs import TOP_LOGPROBS, Step, probe_failed, score_distributions

DEFAULT_BASE_URL = "https://api.openai.com/v1"
# The largest answer read (decoded), each held whole in memory, one per request in flight: a paper's answer is a
# few kB, with log-probs some hundreds. A server that sent more (a proxy's error page of a file, a hostile or broken
# server ignoring max_tokens) was read to the end, as much as it sent, `concurrency` answers at once.
MAX_ANSWER_BYTES = 64 * 1024 * 1024
_RELAX_KEYS = {"maxLength", "minLength", "minimum", "maximum", "minItems", "maxItems"}


class _Fatal(Exception):
    """A failure a retry will not fix (bad request, refused key, unreadable answer)."""

    def __init__(self, message: str, status: int | None = None, body: str = ""):
        super().__init__(message)
        self.status = status
        self.body = body


class _ContextFull(_Fatal):
    """The server refused the request as too long for the model's context (context_refusal): `context` its size,
    `prompt` the prompt's tokens as the server counted them (None: not said), `exact` False where that count is
    only a lower bound."""

    def __init__(self, message: str, status: int, body: str, context: int, prompt: int | None, exact: bool):
        super().__init__(message, status, body)
        self.context, self.prompt, self.exact = context, prompt, exact


class _TooLarge(Exception):
    """An answer longer than MAX_ANSWER_BYTES, left unread."""

    def __init__(self, status: int):
        # no "of a paper": the listing of the models (GET /models) is read so too
        super().__init__(f"the server's answer (HTTP {status}) is larger than {MAX_ANSWER_BYTES // 2**20} MiB, "
                         "more than any answer of the API: not read")


class _NotThere(Retryable):
    """A connection that could not be made (nothing listens at the address): unlike a connection the server
    dropped mid-request, it says the server is not there."""


def relax_schema(schema: dict) -> dict:
    """The schema without the keywords a stricter server may refuse: bounds, lengths, prefixItems."""
    def walk(node):
        if isinstance(node, dict):
            out = {k: walk(v) for k, v in node.items() if k not in _RELAX_KEYS}
            if "prefixItems" in out:
                objs = out.pop("prefixItems")
                ids = [o["properties"]["ARXIVID"]["enum"][0] for o in objs]
                item = copy.deepcopy(objs[0])
                item["properties"]["ARXIVID"] = {"type": "string", "enum": ids}
                out["items"] = item
            return out
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node
    return walk(schema)


# a 404's body that speaks of a model (not of a path that holds /models: OpenAI's "Invalid URL (POST
# /v1/models/chat/completions)" is the base URL's)
_NAMES_A_MODEL = re.compile(r"(?<![/a-z0-9])models?(?![/a-z0-9])", re.IGNORECASE)

# How a server refuses a request too long for the model's context, in the words of vLLM's versions, OpenAI's API
# and llama.cpp's server: the context's size is always said. The prompt's is said exactly in most, only as a
# lower bound where vLLM stops counting one token past what fits ("at least", "You passed"), or not at all (a
# budget larger than the whole context).
_CONTEXT_SIZE = re.compile(r"maximum context length (?:is |\()(\d+)|maximum model length of (\d+)"
                           r"|context length is only (\d+)|greater than max_model_len=(\d+)"
                           r"|available context size \((\d+) tokens\)", re.I)
_PROMPT_SIZE = re.compile(r"(\d+) (?:tokens )?in the messages|request has (\d+) input tokens"
                          r"|prompt contains (\d+) input tokens|messages resulted in (\d+) tokens"
                          r"|prompt \(length (\d+)\)|input length \((\d+)\)|request \((\d+) tokens\) exceeds", re.I)
_PROMPT_AT_LEAST = re.compile(r"contains at least (\d+) input tokens|you passed (\d+) input tokens"
                              r"|upper bound for (\d+) input tokens", re.I)


def _number(m: re.Match | None) -> int | None:
    return None if m is None else int(next(g for g in m.groups() if g is not None))


def context_refusal(text: str) -> tuple[int, int | None, bool] | None:
    """(the context's tokens, the prompt's tokens or None, whether that count is exact) when a server's error
    text refuses a request as too long for the model's context; None for any other error."""
    context = _number(_CONTEXT_SIZE.search(text or ""))
    if context is None:
        return None
    exact = _number(_PROMPT_SIZE.search(text))
    if exact is not None:
        return context, exact, True
    return context, _number(_PROMPT_AT_LEAST.search(text)), False


def _snippet(text: str, limit: int = 200) -> str:
    """A bounded, redacted one-line excerpt of what a server said."""
    text = redact(" ".join((text or "").split()))
    return text if len(text) <= limit else text[:limit - 3] + "..."


T = TypeVar("T")
R = TypeVar("R")


def run_on_daemons(fn: Callable[[T], R], items: Sequence[T], workers: int, cancel: threading.Event) -> list[R]:
    """[fn(x) for x in items] on up to `workers` daemon threads, in order. The calling thread waits in short
    slices, so Ctrl-C reaches it at once; it then sets `cancel` (no item starts after it) and leaves without
    joining: a thread still blocked on a hung server is a daemon and never keeps the process alive. The
    KeyboardInterrupt is raised as GenerateInterrupted, holding the items' results so far (None: not finished)."""
    if not items:
        return []
    results: list[Any] = [None] * len(items)
    failed: list[BaseException] = []
    lock = threading.Lock()
    done = threading.Event()
    state = {"next": 0, "left": len(items)}

    def work() -> None:
        while not cancel.is_set() and not failed:
            with lock:
                i = state["next"]
                if i >= len(items):
                    return
                state["next"] += 1
            try:
                results[i] = fn(items[i])
            except BaseException as e:                # handed to the caller, which raises it
                failed.append(e)
            with lock:
                state["left"] -= 1
                if state["left"] == 0:
                    done.set()
        done.set()

    for _ in range(min(workers, len(items))):
        threading.Thread(target=work, daemon=True, name="ranker-openai").start()
    try:
        while not done.wait(0.25):
            pass
    except KeyboardInterrupt:
        cancel.set()
        raise GenerateInterrupted(list(results)) from None
    except BaseException:
        cancel.set()
        raise
    if failed:
        raise failed[0]
    return results


class OpenAIOptions(BackendOptions):
    """[scoring.openai]"""
    base_url: str = DEFAULT_BASE_URL
    concurrency: int = Field(8, ge=1)
    # seconds are finite and at most a day, as [fetch]'s: TOML's inf, or 1e23, would overflow the socket's timeout
    # in every request
    connect_timeout: float = Field(10.0, gt=0, le=MAX_WAIT, allow_inf_nan=False)   # seconds to open a connection
    timeout: float = Field(120.0, gt=0, le=MAX_WAIT, allow_inf_nan=False)  # the server's silence in one attempt
    total_timeout: float = Field(300.0, gt=0, le=MAX_WAIT, allow_inf_nan=False)  # one request, retries included
    retries: int = Field(4, ge=0)
    backoff: float = Field(1.0, ge=0, le=MAX_WAIT, allow_inf_nan=False)
    max_backoff: float = Field(30.0, gt=0, le=MAX_WAIT, allow_inf_nan=False)
    probe: bool | None = None


def _text_of(content: Any) -> str | None:
    """A message's content as text: a string as it is, a list of content parts (as some servers send it) as its
    text parts joined, None as None. Anything else raises: the answer is unreadable."""
    if content is None or isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(p, dict) and p.get("type") == "text"
                                         and isinstance(p.get("text"), str) for p in content):
        return "".join(p["text"] for p in content)
    raise TypeError(f"a content of type {type(content).__name__}")


def _usage_of(data: dict) -> Usage:
    """The tokens an answer's "usage" reports (the prompt's cached part too, where the server says it)."""
    u = data.get("usage") or {}
    details = u.get("prompt_tokens_details") or {}
    return Usage(prompt_tokens=int(u.get("prompt_tokens") or 0), completion_tokens=int(u.get("completion_tokens") or 0),
                 cached_prompt_tokens=int(details.get("cached_tokens") or 0))


class OpenAIBackend(Backend):
    name = "openai"
    Options = OpenAIOptions
    supports_score_probs = True
    uses_api_key = True               # make_backend passes the settings' OPENAI_API_KEY as api_key
    uses_warn = True                  # make_backend passes the caller's Warn (an unpriced OpenAI model's line)
    # how long a server that could not be reached is taken for gone: its requests fail at once, then one tries
    # again, the others waiting for it (a long-lived backend, as in `ranker eval` over many days, sees a
    # restarted server)
    down_seconds = 30.0

    @classmethod
    def store_name(cls, model: str, models_dir: Path | None = None) -> str | None:
        return None if model in ("", "auto") else model     # "auto": the model the server serves, once asked

    def __init__(self, model: str, options: Mapping[str, Any] | OpenAIOptions | None = None, *,
                 models_dir: Path | None = None, api_key: str | None = None, warn: Warn | None = None, **kwargs):
        o = self.parse_options(options, **kwargs)
        base_url = o.base_url
        try:
            import httpx
        except ImportError as e:
            raise MissingDependency(e.name or "httpx", extra="", purpose="the openai backend") from None
        self._httpx = httpx
        self.base_url = base_url.rstrip("/")
        parsed = urlparse(self.base_url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ConfigError(f"not an http(s) URL: {self.base_url!r}", key="scoring.openai.base_url")
        self.host = parsed.hostname
        self.is_openai = self.host.endswith("openai.com")
        if self.is_openai and model in ("", "auto"):
            # OpenAI lists dozens of models: the first of them would be scored with, and billed, unasked
            raise ConfigError("OpenAI's API serves many models; name the one to score with (gpt-4o-mini, "
                              "gpt-4.1, ...)", key="scoring.model")
        try:
            check_allowed(self.base_url)
        except FetchError:
            raise ConfigError(f"offline mode forbids the server {self.host}; point the backend at a local "
                              "server", key="scoring.openai.base_url") from None
        self.probe = (not self.is_openai) if o.probe is None else o.probe
        self.concurrency = o.concurrency
        self.retries = o.retries
        self.connect_timeout, self.timeout, self.total_timeout = o.connect_timeout, o.timeout, o.total_timeout
        self._retry = RetryPolicy(retries=o.retries, backoff=o.backoff, max_wait=o.max_backoff)
        headers = {"Content-Type": "application/json"}
        if api_key:
            add_secret(api_key)                   # redacted from any error text, should a server echo it
            headers["Authorization"] = f"Bearer {api_key}"
        del api_key
        self._client = httpx.Client(base_url=self.base_url, headers=headers, timeout=self._timeout(None),
                                    limits=httpx.Limits(max_connections=self.concurrency + 2))
        self._cancel = threading.Event()          # set on Ctrl-C: nothing new starts, waits end
        self._lock = threading.Lock()
        self._relaxed = False
        self._refused: str | None = None
        self._down: str | None = None             # why the server is taken for gone: no connection, retries spent
        self._down_until = 0.0                    # ... until this time.monotonic()
        self._trying: threading.Event | None = None   # set when the request sent first after that ends is over
        self._usage = Usage()
        self._stats = {"requests": 0, "failed": 0, "retries": 0, "probe_requests": 0, "seconds": 0.0}
        try:
            self.model_name = self._discover_model() if model in ("", "auto") else model
        except BaseException:
            # the connection that asked would stay open in the pool of a backend nobody can close, for as long
            # as the caller holds the error
            self._client.close()
            raise
        if self.is_openai and price_for(self.model_name) is None and warn is not None:
            warn(f"{self.model_name} is not in ranker's price table (ranker/backends/pricing.py): what OpenAI "
                 "bills for it shows as $0 in the digest and the manifest")

    # ------------------------------------------------------------------ HTTP
    def _timeout(self, deadline: float | None):
        """The httpx timeouts of one attempt: connect, then the server's silence, none past `deadline`."""
        left = float("inf") if deadline is None else max(0.05, deadline - time.monotonic())
        read = min(self.timeout, left)
        return self._httpx.Timeout(read, connect=min(self.connect_timeout, left), pool=read)

    def _read(self, method: str, path: str, **kw):
        """The server's answer, its body read whole, or _TooLarge past MAX_ANSWER_BYTES (decoded: a small gzip
        of a large body counts what it unpacks to), said by its Content-Length or found while reading: nothing
        more of it is read, and its connection is closed."""
        httpx = self._httpx
        with self._client.stream(method, path, **kw) as resp:
            declared = resp.headers.get("content-length", "").strip()
            encoded = resp.headers.get("content-encoding", "identity").strip().lower() not in ("", "identity")
            if declared.isdigit() and int(declared) > MAX_ANSWER_BYTES and not encoded:
                raise _TooLarge(resp.status_code)
            chunks, size = [], 0
            for chunk in resp.iter_bytes():
                size += len(chunk)
                if size > MAX_ANSWER_BYTES:
                    raise _TooLarge(resp.status_code)
                chunks.append(chunk)
        # its body as it was decoded: the headers without the encoding, which would be decoded again
        headers = [(k, v) for k, v in resp.headers.multi_items() if k.lower() not in ("content-encoding",
                                                                                     "content-length")]
        return httpx.Response(resp.status_code, headers=headers, content=b"".join(chunks), request=resp.request)

    def _discover_model(self) -> str:
        """The model the server serves ("auto"): the one it lists. A server that lists several (Ollama every
        model pulled, vLLM its LoRA adapters beside the base model) is a ConfigError naming them: the first
        would be scored with, unasked."""
        ids = self._models()
        if len(ids) > 1:
            shown = ", ".join(ids[:5]) + (", ..." if len(ids) > 5 else "")
            raise ConfigError(f"{self.base_url} serves {len(ids)} models ({_snippet(shown)}); name the one to score "
                              "with", key="scoring.model")
        return ids[0]

    def _models(self) -> list[str]:
        """The ids of the models the server lists (GET /models): a BackendError saying why when it lists none, a
        ConfigError naming the base URL when the server has no such path."""
        try:
            resp = self._read("GET", "/models", timeout=self._timeout(time.monotonic() + self.total_timeout))
        except Exception as e:
            why = f"{type(e).__name__}: {_snippet(str(e), 120)}" if str(e) else type(e).__name__
            raise BackendError(f"cannot list the models of {self.base_url}: {why}") from None
        if resp.status_code == 404:
            raise self._no_api("/models")
        if resp.status_code in (401, 403):
            raise BackendError(f"cannot list the models of {self.base_url}: HTTP {resp.status_code}: the server "
                               "refused the request's credentials (check OPENAI_API_KEY)")
        try:
            ids = [str(m["id"]) for m in resp.json()["data"]]
        except Exception:
            ids = []
        if not ids:
            raise BackendError(f"cannot list the models of {self.base_url}: HTTP {resp.status_code}, no model "
                               f"listed: {_snippet(resp.text, 120)!r}")
        return ids

    def _no_api(self, path: str) -> ConfigError:
        """A 404 at one of the API's paths: the base URL is not an OpenAI-compatible API's."""
        return ConfigError(f"{self.base_url}{path} is not there (HTTP 404): not the base URL of an OpenAI-compatible "
                           "API, which usually ends in /v1", key="scoring.openai.base_url")

    def _not_served(self, text: str) -> ConfigError:
        """A 404 from the chat endpoint: the model named is not one the server serves, or there is no such
        endpoint at the base URL. Either fails every request alike. The servers' own words tell them apart: a
        model they do not serve is named (vLLM "The model `x` does not exist.", Ollama 'model "x" not found',
        OpenAI "The model `x` does not exist or ..."), a path they do not have is not (vLLM {"detail": "Not
        Found"}, llama.cpp "File Not Found", Ollama "404 page not found", OpenAI "Invalid URL (POST /v1/...)").
        A body that names no model (a gateway's bare "Not Found") is asked about at the base URL's /models: a
        404 there too is the base URL; a list without the model is the model; otherwise both are named."""
        if _NAMES_A_MODEL.search(text):
            try:
                ids = [] if self.is_openai else self._models()  # OpenAI lists dozens: its own words say enough
            except RankerError:
                ids = []
            if ids:
                return self._serves_other(ids)
            return ConfigError(f"{self.base_url} does not serve the model '{self.model_name}': "
                               f"{_snippet(text, 160)}", key="scoring.model")
        try:
            ids = self._models()
        except ConfigError:                 # /models is not there either: the base URL is not the API's
            return self._no_api("/chat/completions")
        except RankerError:
            ids = []
        if ids and self.model_name not in ids:
            return self._serves_other(ids)
        if ids:
            return ConfigError(f"{self.base_url}/chat/completions is not there (HTTP 404), though "
                               f"{self.base_url}/models lists '{self.model_name}': the server answers no chat "
                               "completions at this base URL", key="scoring.openai.base_url")
        said = f" ({_snippet(text, 80)!r})" if text.strip() else ""
        return ConfigError(f"{self.base_url}/chat/completions answered HTTP 404{said}: either the base URL is not "
                           "an OpenAI-compatible API's (which usually ends in /v1), or the server does not serve "
                           f"the model '{self.model_name}' ({{key:scoring.model}})", key="scoring.openai.base_url")

    def _serves_other(self, ids: list[str]) -> ConfigError:
        shown = ", ".join(f"'{i}'" for i in ids[:5]) + (", ..." if len(ids) > 5 else "")
        return ConfigError(f"{self.base_url} serves {_snippet(shown)}, not '{self.model_name}'", key="scoring.model")

    def _post_once(self, body: dict, deadline: float | None = None) -> dict:
        httpx = self._httpx
        if self._cancel.is_set():
            raise Cancelled("cancelled")
        try:
            resp = self._read("POST", "/chat/completions", json=body, timeout=self._timeout(deadline))
        except _TooLarge as e:
            raise _Fatal(str(e)) from None
        except httpx.ConnectTimeout:
            # no connection within connect_timeout (a firewall dropping the packets, a host that is down): the
            # server is not there, as a refused connection says, and the bound is connect_timeout, not timeout
            raise _NotThere(f"connection timed out after {self.connect_timeout:g} s ([scoring.openai] "
                            f"connect_timeout) at {self.base_url}", kind="connection") from None
        except httpx.TimeoutException:
            raise Retryable("timed out", kind="timeout") from None
        except httpx.ConnectError as e:
            # the server named, and why (refused, a name not found, a certificate): this is the reason a failed
            # run's one line shows
            raise _NotThere(f"connection failed ({type(e).__name__}: {_snippet(str(e), 120)}) at {self.base_url}",
                            kind="connection") from None
        except httpx.TransportError as e:
            raise Retryable(f"connection failed ({type(e).__name__})", kind="connection") from None
        refusal = context_refusal(resp.text) if resp.status_code >= 400 else None
        if refusal is not None:
            # the same request again would be refused the same way, whatever the status (vLLM answers some
            # prompts too long with a 500): not retried
            raise _ContextFull(f"HTTP {resp.status_code}: {_snippet(resp.text)}", resp.status_code, resp.text,
                               *refusal)
        if resp.status_code in RETRY_STATUS:
            raise Retryable(f"HTTP {resp.status_code}: {_snippet(resp.text)}", status=resp.status_code,
                            retry_after=retry_after_seconds(resp.headers.get("retry-after")))
        if resp.status_code in (401, 403):
            raise _Fatal(f"HTTP {resp.status_code}: the server refused the request's credentials "
                         "(check OPENAI_API_KEY)", resp.status_code)
        if resp.status_code == 404:
            # a setting is wrong (the model, the base URL), not this paper: raised out of generate(), the run
            # stops with one line naming it (every request sent would fail the same way)
            raise self._not_served(resp.text)
        if resp.status_code >= 400:
            raise _Fatal(f"HTTP {resp.status_code}: {_snippet(resp.text)}", resp.status_code, resp.text)
        try:
            data = resp.json()
            message = data["choices"][0]["message"]
            message["content"] = _text_of(message.get("content"))
        except Exception:
            raise _Fatal(f"unreadable response (HTTP {resp.status_code}): {_snippet(resp.text, 120)!r}") from None
        return data

    def _post(self, body: dict, deadline: float | None = None) -> dict:
        """POST with retries on 429/5xx/timeouts (ranker.io.retry: exponential backoff, Retry-After honoured),
        none started after `deadline` (time.monotonic()); a Ctrl-C ends the waits (Cancelled)."""
        def count(_n, _e, _wait):
            with self._lock:
                self._stats["retries"] += 1

        deadline = deadline if deadline is not None else time.monotonic() + self.total_timeout
        return retry(lambda: self._post_once(body, deadline), self._retry, count, deadline=deadline,
                     sleep=self._cancel.wait)

    # ------------------------------------------------------------------ one request
    def _body(self, req: Request, score_probs: bool, relaxed: bool, max_tokens: int | None = None) -> dict:
        schema = relax_schema(req.schema) if relaxed else req.schema
        body = {"model": self.model_name, "messages": req.messages, "temperature": 0,
                "max_tokens": req.max_tokens if max_tokens is None else max_tokens, "seed": 0,
                "response_format": {"type": "json_schema",
                                    "json_schema": {"name": "paper_scores", "schema": schema, "strict": True}}}
        if score_probs:
            body.update(logprobs=True, top_logprobs=TOP_LOGPROBS)
        if req.chat_template_kwargs and not self.is_openai:    # vLLM's server hands it to the chat template
            body["chat_template_kwargs"] = dict(req.chat_template_kwargs)
        return body

    def _admit(self) -> str | bool:
        """Whether a request may be sent: False to send it as usual; a reason to fail it at once (the server
        taken for gone, for a while); True when it is the one sent first once that while is over. The requests
        that come while that one is out wait for its outcome (the other workers would each spend all their
        attempts and backoff on a server still gone): the server back, they are sent; still gone, they fail
        at once as before."""
        while True:
            with self._lock:
                if not self._down:
                    return False
                if time.monotonic() < self._down_until:
                    # the requests after one that could not connect in all its attempts: not sent, for a while
                    return self._down
                if self._trying is None:
                    self._trying = threading.Event()
                    return True
                trying = self._trying
            while not trying.wait(0.05):            # in slices: a Ctrl-C ends the wait
                if self._cancel.is_set():
                    return "cancelled (interrupted)"

    def _tried(self) -> None:
        """The request sent first after the while is over: unless it took the server for gone again, the
        server is taken as there (it answered, or failed otherwise); the requests waiting for it go on."""
        with self._lock:
            if time.monotonic() >= self._down_until:
                self._down = None
            self._trying.set()
            self._trying = None

    def _one(self, req: Request, score_probs: bool) -> tuple[Result, dict | None]:
        if self._refused:
            return Result(req.key, None, "error", error=self._refused), None
        admit = self._admit()
        if isinstance(admit, str):
            return Result(req.key, None, "error", error=admit), None
        try:
            return self._send(req, score_probs)
        finally:
            if admit:
                self._tried()

    def _post_fitting(self, req: Request, score_probs: bool, relaxed: bool,
                      deadline: float) -> tuple[dict, int, Usage] | Result:
        """POST the request: (the answer, the budget it was given, the tokens of a measuring request). One the
        server refuses as too long for the model's context is sent once more with its answer's budget cut to the
        room its prompt leaves, as the vllm backend gives it; where the refusal does not say the prompt's size
        exactly, a one-token answer tells it first. A prompt that leaves no room is the request's error Result."""
        budget, spent = req.max_tokens, Usage()
        try:
            return self._post(self._body(req, score_probs, relaxed), deadline), budget, spent
        except _ContextFull as e:
            context, prompt, exact = e.context, e.prompt, e.exact
        if not exact and (prompt is None or context - prompt >= MIN_ANSWER_ROOM):
            try:
                data = self._post(self._body(req, score_probs, relaxed, 1), deadline)
            except _ContextFull as e:        # not even a one-token answer fits
                context, prompt, exact = e.context, e.context if e.prompt is None else e.prompt, e.exact
            else:
                spent = _usage_of(data)
                with self._lock:
                    self._usage.add(spent)
                prompt, exact = spent.prompt_tokens or None, bool(spent.prompt_tokens)
        if prompt is not None and context - prompt < MIN_ANSWER_ROOM:
            if exact:
                res = answer_room(req.key, prompt, context)[1]
            else:
                res = Result(req.key, None, "error", error=f"prompt of at least {prompt} tokens does not fit a "
                                                            f"context of {context} tokens")
            res.usage = spent
            return res
        if not exact or context - prompt >= budget:
            # the server's count of the prompt is unknown, or differs from the one it refused it by
            return Result(req.key, None, "error", usage=spent, context_full=True,
                          error=f"the prompt and its answer's budget of {budget} tokens do not fit a context "
                                f"of {context} tokens")
        budget = context - prompt
        try:
            return self._post(self._body(req, score_probs, relaxed, budget), deadline), budget, spent
        except _ContextFull:
            return Result(req.key, None, "error", usage=spent, context_full=True,
                          error=f"the prompt of {prompt} tokens and its answer's budget of {budget} tokens do not "
                                f"fit a context of {context} tokens")

    def _send(self, req: Request, score_probs: bool) -> tuple[Result, dict | None]:
        deadline = time.monotonic() + self.total_timeout
        try:
            relaxed = self._relaxed       # what this request sends: another thread may relax the schema meanwhile
            try:
                sent = self._post_fitting(req, score_probs, relaxed, deadline)
            except _Fatal as e:
                schema_trouble = e.status == 400 and not relaxed and any(
                    w in e.body.lower() for w in ("schema", "response_format", "json_schema"))
                if not schema_trouble:
                    raise
                with self._lock:
                    self._relaxed = True
                sent = self._post_fitting(req, score_probs, True, deadline)
            if isinstance(sent, Result):
                return sent, None
            data, budget, spent = sent
        except Retryable as e:
            # each bound named by its option, as the way out where the server is only slow
            if e.too_long:
                why = (f"the server asks to wait {e.retry_after:.0f} s, longer than [scoring.openai] max_backoff "
                       f"({self._retry.max_wait:g} s)")
            elif e.out_of_time:
                why = (f"no time left of the request's {self.total_timeout:g} s ([scoring.openai] total_timeout) "
                       f"after {e.attempts} attempts")
            elif e.kind == "timeout":
                why = f"after {e.attempts} attempts, each waiting up to {self.timeout:g} s ([scoring.openai] timeout)"
            else:
                why = f"after {e.attempts} attempts"
            error = redact(f"{e} ({why})")
            # 502/503 through every attempt: a server loading or gone behind a proxy. Not OpenAI's own API, whose
            # 503 is a "slow down" of the moment, nor a 503 asking to wait longer than max_backoff (one attempt)
            unavailable = e.status in (502, 503) and not self.is_openai and not e.too_long
            if (isinstance(e, _NotThere) or unavailable) and not e.out_of_time:
                # a server that is not there (not started, stopped; behind a proxy, or still loading, it answers
                # 502 or 503 through all the attempts): each request would spend the same attempts and backoff
                # in vain, minutes over a day; the rest fail at once with this reason
                with self._lock:
                    self._down = (f"{error}; {self.base_url} is {'unavailable' if unavailable else 'not answering'}"
                                  ", so the remaining requests were not sent")
                    self._down_until = time.monotonic() + self.down_seconds
            return Result(req.key, None, "error", error=error), None
        except Cancelled:
            return Result(req.key, None, "error", error="cancelled (interrupted)"), None
        except _Fatal as e:
            if e.status in (401, 403):
                self._refused = redact(e)
            return Result(req.key, None, "error", error=redact(e)), None
        choice = data["choices"][0]
        text = choice["message"].get("content")
        usage = _usage_of(data)
        with self._lock:
            self._usage.add(usage)
        finish = choice.get("finish_reason") or "stop"
        if text is None:
            refusal = choice["message"].get("refusal")
            return Result(req.key, None, "error", usage=usage,
                          error=f"no content in the answer{': ' + _snippet(refusal) if refusal else ''}"), None
        if finish not in ("stop", "length"):
            return Result(req.key, text, "error", error=f"finished with '{finish}'", usage=usage), None
        res = Result(req.key, text, finish, usage=usage)
        if finish == "length" and (budget < req.max_tokens or 0 < usage.completion_tokens < budget):
            # cut off by the model's context, not by the answer's budget: given the room its prompt leaves (above),
            # or cut short of its budget (vLLM gives an answer no more room than that itself), so a larger budget
            # would not help
            limit = usage.completion_tokens or budget
            cut_by_context(res, limit, usage.prompt_tokens, usage.prompt_tokens + limit, "the server's")
        res.usage.add(spent)
        return res, choice.get("logprobs")

    # ------------------------------------------------------------------ the interface
    def generate(self, requests: list[Request], *, score_probs: bool = False,
                 on_done: Callable[..., None] | None = None) -> list[Result]:
        t0 = time.perf_counter()
        lock = threading.Lock()

        def one(item: tuple[int, Request]):
            i, r = item
            pair = self._one(r, score_probs)
            if on_done is not None:
                with lock:
                    on_done(1, [i])
            return pair

        try:
            pairs = run_on_daemons(one, list(enumerate(requests)), self.concurrency, self._cancel)
        except GenerateInterrupted as e:          # the answers already paid for go back with the interrupt
            raise GenerateInterrupted([None if p is None or score_probs else p[0] for p in e.results]) from None
        results = [p[0] for p in pairs]
        if score_probs:
            try:
                self._fill_score_probs(requests, pairs)
            except GenerateInterrupted:           # its results are the probes': no answer has its probabilities yet
                raise GenerateInterrupted([None] * len(requests)) from None
        self._stats["requests"] += len(requests)
        self._stats["failed"] += sum(1 for r in results if not r.ok)
        self._stats["seconds"] += time.perf_counter() - t0
        return results

    def _fill_score_probs(self, requests, pairs) -> None:
        prepared = []
        needs: list[tuple[int, int, str]] = []
        for n, (res, lp) in enumerate(pairs):
            content = (lp or {}).get("content") if res.ok else None
            if not content:
                continue
            steps, starts, raw = [], [], b""
            for tok in content:
                b = bytes(tok["bytes"]) if tok.get("bytes") is not None else tok["token"].encode("utf-8")
                starts.append(len(raw.decode("utf-8", errors="ignore")))
                raw += b
                cands = [(c["token"], c["token"], math.exp(c["logprob"])) for c in tok.get("top_logprobs") or []
                         if c.get("logprob") is not None and c["logprob"] > -math.inf]
                steps.append(Step(tok["token"], cands))
            prepared.append((n, res, starts, steps))
            score_distributions(res.text, starts, steps,
                                ask=lambda pos, tok, n=n: needs.append((n, pos, tok)) or None)
        answers: dict = {}
        failed: dict[int, str] = {}               # answer -> why a probe it needed failed
        spent: dict[int, Usage] = {}              # answer -> its probes' tokens (billed like any request)
        if needs and self.probe:
            def run(need):
                n, pos, tok = need
                res = pairs[n][0]
                starts = next(p[2] for p in prepared if p[0] == n)
                try:
                    return need, self._probe(requests[n], res.text[:starts[pos]] + tok), None
                except Exception as e:
                    return need, None, redact(one_line(e))
            for need, got, why in run_on_daemons(run, needs, self.concurrency, self._cancel):
                if why is None:
                    answers[need], usage = got
                    spent.setdefault(need[0], Usage()).add(usage)
                else:
                    failed.setdefault(need[0], why)
        for n, usage in spent.items():
            pairs[n][0].usage.add(usage)
        for n, res, starts, steps in prepared:
            if n in failed:
                # a server that cannot answer probes at all (no continue_final_message) fails every such answer:
                # the option that counts the '1' as 1 instead is named
                probe_failed(res, f"{failed[n]}; a server without probes: [scoring.openai] probe = false")
                continue
            res.score_probs = score_distributions(res.text, starts, steps,
                                                  ask=lambda pos, tok, n=n: answers.get((n, pos, tok)))

    def _probe(self, req: Request, prefix: str):
        """(next-token candidates, the probe's tokens) after the assistant has written `prefix` (vLLM's
        continue_final_message). A probe the server fails raises as _post does; an answer without log-probs is a
        _Fatal."""
        body = {"model": self.model_name, "temperature": 0, "max_tokens": 1, "logprobs": True,
                "top_logprobs": TOP_LOGPROBS, "continue_final_message": True, "add_generation_prompt": False,
                "messages": [*req.messages, {"role": "assistant", "content": prefix}]}
        if req.chat_template_kwargs and not self.is_openai:
            body["chat_template_kwargs"] = dict(req.chat_template_kwargs)
        with self._lock:
            self._stats["probe_requests"] += 1
        data = self._post(body)
        usage = _usage_of(data)
        with self._lock:
            self._usage.add(usage)
        try:
            content = data["choices"][0]["logprobs"]["content"]
            return [(c["token"], c["token"], math.exp(c["logprob"])) for c in content[0]["top_logprobs"]], usage
        except (KeyError, IndexError, TypeError, ValueError):
            raise _Fatal("the probe's answer has no log-probs") from None

    # ------------------------------------------------------------------ reporting
    def cost_usd(self) -> float:
        return cost_usd(self.model_name, self._usage)

    def stats(self) -> dict:
        u = self._usage
        return {"backend": self.name, "model": self.model_name, "server": self.host, **self._stats,
                "concurrency": self.concurrency, "schema_relaxed": self._relaxed,
                "prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens,
                "cached_prompt_tokens": u.cached_prompt_tokens, "cost_usd": round(self.cost_usd(), 6)}

    def close(self) -> None:
        if self._cancel.is_set():     # interrupted: a daemon thread may still wait on the server; let it be
            return
        self._client.close()
