# Put on PYTHONPATH by ranker.netguard.enable_offline(), so processes started by ranker (vLLM's engine core)
# inherit the offline guard.
import os

if os.environ.get("RANKER_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}:
    try:
        from ranker.netguard import install_guard
        install_guard()
    except Exception:  # never stop a child process from starting because of the guard itself
        pass
