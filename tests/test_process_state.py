"""A test that leaves ranker's process-wide state changed (offline mode on, a Ctrl-C still requested, the last
command's database) fails at its teardown (conftest's _process_state_kept), and the tests after it in the same
process start from a fresh process's state: CI runs the whole suite in one process, in file order."""
from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent

SUITE = '''
from ranker import netguard
from ranker.cli import common
from ranker.errors import interrupt_requested, request_interrupt


def test_a_leaves_offline_mode_on():
    netguard.enable_offline()


def test_b_leaves_a_ctrl_c_and_the_database_named():
    request_interrupt()
    common.DB_PATH[:] = ["/elsewhere/ranker.sqlite3"]


def test_c_starts_as_a_fresh_process(tmp_path):
    assert netguard._saved is None and not interrupt_requested() and common.DB_PATH == []
    os.chdir(tmp_path)


def test_d_runs_where_the_suite_started():
    assert os.getcwd() == START
'''


def run_with_the_state_check(tmp_path, name: str, text: str) -> subprocess.CompletedProcess:
    """pytest run on a test file `name` holding `text`, with the suite's conftest's _process_state_kept and
    nothing else of it; the tests' errors reported (-rE)."""
    (tmp_path / "conftest.py").write_text(
        "import importlib.util\n"
        f"spec = importlib.util.spec_from_file_location('suite_conftest', {str(HERE / 'conftest.py')!r})\n"
        "suite = importlib.util.module_from_spec(spec)\nspec.loader.exec_module(suite)\n"
        "_process_state_kept = suite._process_state_kept\n_torch_threads_kept = suite._torch_threads_kept\n")
    files = {name: text} if isinstance(text, str) else text
    for n, t in files.items():
        (tmp_path / n).write_text(t)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), str(HERE.parent)])}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=", "-rE",
                           "--basetemp", str(tmp_path / "t"), *(str(tmp_path / n) for n in files)],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)


def test_a_test_that_leaves_the_process_changed_fails_and_the_next_starts_afresh(tmp_path):
    r = run_with_the_state_check(tmp_path, "test_leaks.py", f"import os\nSTART = {str(tmp_path)!r}\n{SUITE}")
    out = r.stdout
    assert r.returncode == 1, out
    assert "4 passed, 3 errors" in out, out
    said = [x for x in out.splitlines() if x.startswith("the test left")]
    assert said == [
        "the test left the process changed for the tests after it: offline mode (ranker.netguard)",
        "the test left the process changed for the tests after it: a Ctrl-C requested (ranker.errors); the "
        "command's settings (ranker.cli.common: DB_PATH, DEBUG, ORIGINS, OPTION_KEYS, GIVEN, SETTING_PATHS)",
        f"the test left the process changed for the tests after it: the working directory "
        f"({tmp_path / 't' / 'test_c_starts_as_a_fresh_proce0'}, was {tmp_path})"], out
    assert "ERROR at teardown of test_c_starts_as_a_fresh_process" in out          # d passed: back in START


TORCH_THREADS = {
    "test_a_threads.py": '''
import pytest
import torch


@pytest.fixture(scope="module")
def more_threads():
    torch.set_num_threads(torch.get_num_threads() + 1)      # a module's backend given `threads`, never put back


def test_a_scores_with_its_threads(more_threads):
    pass
''',
    "test_b_after.py": '''
import torch

FRESH = torch.get_num_threads()                 # (read at collection, before any test ran)


def test_b_starts_with_a_fresh_process_s_count():
    assert torch.get_num_threads() == FRESH
'''}


def test_a_module_that_leaves_torchs_thread_count_changed_errors_and_the_next_starts_afresh(tmp_path):
    """A module fixture set torch's thread count (the transformers tests' threads=1) and no test noticed: the
    per-test check compares each test's start with its end, both after the fixture. The rest of the suite then
    embedded its papers in-process on one core of two. The module's last test errors, and the count is put back."""
    if importlib.util.find_spec("torch") is None:     # (not imported here: this process's count stays its own)
        pytest.skip("needs torch (the cpu extra)")
    r = run_with_the_state_check(tmp_path, "", TORCH_THREADS)
    assert r.returncode == 1 and "2 passed, 1 error" in r.stdout, r.stdout
    said = _left_one_thread_more(r.stdout)
    assert re.fullmatch(r"the module left torch's thread count at (\d+) \(torch.set_num_threads\), was (\d+), for "
                        r"the modules after it", said), said


def _left_one_thread_more(out: str) -> str:
    """The check's line in a run's output: the module's last test errors, saying the count its fixture raised by one."""
    assert "ERROR at teardown of test_a_scores_with_its_threads" in out, out
    (said,) = [x for x in out.splitlines() if x.startswith("the module left")]
    now, was = map(int, re.findall(r"\d+", said))
    assert now == was + 1, said
    return said


TORCH_COMES_IN = {
    "test_0_plain.py": '''
def test_0_never_imports_torch():
    pass
''',
    "test_a_threads.py": '''
import sys

import pytest


@pytest.fixture(scope="module")
def more_threads():
    import torch                # torch first comes in with the module (as the transformers tests' backend did)
    torch.set_num_threads(torch.get_num_threads() + 1)


def test_a_starts_without_torch():
    assert "torch" not in sys.modules          # the check after test_0's module imported nothing


def test_a_scores_with_its_threads(more_threads):
    pass
''',
    "test_b_after.py": '''
import subprocess
import sys


def test_b_starts_with_a_fresh_process_s_count():
    import torch
    fresh = subprocess.run([sys.executable, "-c", "import torch; print(torch.get_num_threads())"],
                           capture_output=True, text=True, check=True).stdout.split()[-1]
    assert torch.get_num_threads() == int(fresh)
'''}


def test_a_module_that_brings_torch_in_and_leaves_its_count_changed_errors_and_the_check_imports_no_torch(
        tmp_path):
    """Where torch came in during the module, the count it must leave is a fresh process's (asked of one): that
    branch of the check, which the transformers tests' module takes in the suite, errors too; and a module that
    never imported torch is checked without importing it (a minimal environment has none)."""
    if importlib.util.find_spec("torch") is None:
        pytest.skip("needs torch (the cpu extra)")
    r = run_with_the_state_check(tmp_path, "", TORCH_COMES_IN)
    assert r.returncode == 1 and "4 passed, 1 error" in r.stdout, r.stdout
    _left_one_thread_more(r.stdout)


CTRL_C = '''
import threading, time

import pytest

from suite_conftest import ctrl_c_when


def test_ctrl_c_when_reaches_the_main_thread():
    waiting = threading.Event()
    with ctrl_c_when(waiting), pytest.raises(KeyboardInterrupt):
        waiting.set()
        for _ in range(300):        # interrupt_main() wakes no sleep: its Ctrl-C is raised between two of them
            time.sleep(0.1)
'''


def test_ctrl_c_when_interrupts_a_suite_started_with_sigint_ignored(tmp_path):
    """A shell's background job (`make test &`, some CI runners) starts pytest with SIGINT ignored, which Python
    keeps: conftest's ctrl_c_when sent its Ctrl-C to no one, and every in-process Ctrl-C test failed with 'DID NOT
    RAISE KeyboardInterrupt' (or waited out a lock for 120 s)."""
    import signal
    (tmp_path / "suite_conftest.py").write_text(
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('suite_conftest_', {str(HERE / 'conftest.py')!r})\n"
        "m = importlib.util.module_from_spec(spec)\nspec.loader.exec_module(m)\nctrl_c_when = m.ctrl_c_when\n")
    (tmp_path / "test_ctrl_c.py").write_text(CTRL_C)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(HERE), str(HERE.parent)])}
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=",
                        "--basetemp", str(tmp_path / "t"), str(tmp_path / "test_ctrl_c.py")],
                       capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
                       preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    assert r.returncode == 0 and "1 passed" in r.stdout, r.stdout


@pytest.fixture(scope="module")
def module_env():
    """What a module-scoped fixture (a store filled, a server started once a module) sees of the environment."""
    from ranker.settings import ENV_KEYS, SECRET_ENV
    return {k: os.environ.get(k) for k in (*ENV_KEYS, *SECRET_ENV, "MPLCONFIGDIR")}


def test_a_module_fixture_runs_in_the_session_s_environment_not_the_developer_s(module_env, tmp_path_factory):
    """Only each test had its own RANKER_HOME and none of the developer's RANKER_* variables: a module's fixture
    came first, and its `ranker serve` ran with the developer's database, home and logs."""
    base = str(tmp_path_factory.getbasetemp())
    assert module_env.pop("RANKER_HOME", "").startswith(base + os.sep), module_env
    assert module_env.pop("MPLCONFIGDIR", "").startswith(base + os.sep)
    assert not any(module_env.values()), module_env


SECRETS = '''
from ranker.io import add_secret, redact


def test_a_builds_a_backend_with_its_key():
    add_secret("plain-local-token-42")              # as OpenAIBackend(api_key=...) registers its key


def test_b_redacts_only_what_its_own_process_registered():
    assert redact("the server said plain-local-token-42") == "the server said plain-local-token-42"
'''


def test_an_api_key_a_test_registered_is_no_secret_of_the_tests_after_it(tmp_path):
    """A backend built with a key registers it for the process's life (ranker.io.add_secret): every later test's
    text holding it came out redacted, so a test of the credential shapes redact knows passed on the key an
    earlier test had registered (test_redact_removes_credential_shapes' "Incorrect API key provided: sk-...",
    with the sk- shape dropped from redact, passed in file order and failed alone)."""
    r = run_with_the_state_check(tmp_path, "test_secrets.py", SECRETS)
    out = r.stdout
    assert r.returncode == 1 and "2 passed, 1 error" in out, out
    assert [x for x in out.splitlines() if x.startswith("the test left")] == [
        "the test left the process changed for the tests after it: the secrets redacted (ranker.io._SECRETS: an "
        "API key registered)"], out
