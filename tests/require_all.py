"""With RANKER_REQUIRE_ALL=1 (what `make test`, hence CI, sets) a test skipped because a component it needs is
missing (vLLM, Ray, llama.cpp, xgrammar, Chromium, Playwright) fails instead: a broken install must not turn
the real-component tests into quiet skips. Skips for what the machine itself cannot do (no tmpfs mount
without root) stay skips. conftest.py imports these hooks; tests/test_require_all.py checks them."""
from __future__ import annotations

import os
import re

import pytest

# importorskip's own reason, and the reasons this suite gives for a missing package or browser
MISSING_COMPONENT = re.compile(r"could not import|not installed|chromium|playwright", re.IGNORECASE)


def _reason(longrepr) -> str:
    return str(longrepr[2]) if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)


def _fail_if_required(rep) -> None:
    if os.environ.get("RANKER_REQUIRE_ALL") != "1" or not rep.skipped or hasattr(rep, "wasxfail"):
        return
    reason = _reason(rep.longrepr)
    if MISSING_COMPONENT.search(reason):
        rep.outcome = "failed"
        rep.longrepr = f"RANKER_REQUIRE_ALL=1: a component this test needs is missing ({reason})"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    _fail_if_required(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    _fail_if_required(outcome.get_result())
