"""RANKER_REQUIRE_ALL=1 turns a skip for a missing component into a failure (tests/require_all.py), in a real
pytest run of a small suite."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

SUITE = '''
import pytest

def test_needs_a_missing_package():
    pytest.importorskip("no_such_package_for_ranker")

@pytest.mark.skipif(True, reason="needs Debian's chromium and the playwright package")
def test_needs_a_browser():
    pass

def test_needs_root():
    pytest.skip("a full disk needs a tmpfs mount (root)")

def test_plain():
    assert True
'''
MODULE = '''
import pytest

ray = pytest.importorskip("no_such_ray_for_ranker")


def test_x():
    pass
'''


def _run(tmp_path, require: bool) -> subprocess.CompletedProcess:
    (tmp_path / "test_suite.py").write_text(SUITE)
    (tmp_path / "test_module.py").write_text(MODULE)
    env = {**os.environ, "PYTHONPATH": str(HERE)}
    env.pop("RANKER_REQUIRE_ALL", None)
    if require:
        env["RANKER_REQUIRE_ALL"] = "1"
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-rA", "-p", "require_all", "-p", "no:cacheprovider",
                           "-o", "addopts=", "--continue-on-collection-errors", str(tmp_path)], capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=120)


def test_missing_components_fail_only_when_the_whole_suite_is_required(tmp_path):
    r = _run(tmp_path, require=False)
    assert r.returncode == 0 and "1 passed, 4 skipped" in r.stdout, r.stdout
    r = _run(tmp_path, require=True)
    assert r.returncode == 1, r.stdout
    assert "1 failed, 1 passed, 1 skipped, 2 errors" in r.stdout, r.stdout
    assert "ERROR test_suite.py::test_needs_a_browser" in r.stdout
    assert "FAILED test_suite.py::test_needs_a_missing_package" in r.stdout
    assert "ERROR test_module.py" in r.stdout
    assert "SKIPPED" in r.stdout and "tmpfs mount" in r.stdout
