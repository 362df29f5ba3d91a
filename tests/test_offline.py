"""`ranker run --offline` on the bundled day, with the real embedder and the real vLLM engine, under a
guard (tests/netguard_site/sitecustomize.py, inherited by every child process) that records and refuses any
connection or name lookup that is not loopback."""
import json
import os
import subprocess
import sys

import pytest

from conftest import RANKER, REPO



@pytest.mark.slow
def test_run_offline_opens_no_network_connection(tmp_path):
    log = tmp_path / "net.log"
    cfg = tmp_path / "ranker.toml"
    cfg.write_text('[prefilter]\ntop = 6\nmin_keep = 0\n\n[scoring]\nbackend = "vllm"\nmodel = "smollm2-135m"\n'
                   'comment_chars = 80\n\n[digest]\nmin_relevance = 1\nmin_novelty = 1\n')
    env = dict(os.environ, RANKER_HOME=str(tmp_path / "home"), RANKER_TEST_NETLOG=str(log),
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO / "tests" / "netguard_site"),
                                                        os.environ.get("PYTHONPATH")])))
    for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "VLLM_HOST_IP", "RANKER_OFFLINE"):
        env.pop(k, None)       # --offline alone must be enough
    out = tmp_path / "digest"
    p = subprocess.run([*RANKER, "run", "--offline", "--papers", str(REPO / "ranker/data/2025-05-15/listing.jsonl"),
                        "--out", str(out), "--config", str(cfg)], env=env, capture_output=True, text=True,
                       timeout=900)
    assert p.returncode == 0, p.stderr[-3000:]
    attempts = log.read_text() if log.exists() else ""
    assert attempts == "", f"non-loopback network attempts:\n{attempts}"
    manifest = json.loads((out / "2025-05-15-run.json").read_text())
    assert manifest["counts"]["kept"] == 6 and manifest["counts"]["scored"] == 6
    assert manifest["keep"]["rule"] == "top" and manifest["keep"]["kept"] == 6     # the keep rule is recorded
    assert manifest["backend"] == "vllm"
    assert (out / "2025-05-15-output.md").read_text().startswith("# Personalized Daily ArXiv Papers 2025-05-15")
    assert "guard" not in p.stderr       # nothing was refused either: no library even tried


def test_guard_itself_catches_a_connection(tmp_path):
    """The guard is not a no-op: a process that reaches out is recorded."""
    log = tmp_path / "net.log"
    env = dict(os.environ, RANKER_TEST_NETLOG=str(log),
               PYTHONPATH=str(REPO / "tests" / "netguard_site"))
    code = "import socket\ntry:\n    socket.create_connection(('192.0.2.1', 80), timeout=1)\nexcept OSError:\n    pass\n"
    subprocess.run([sys.executable, "-c", code], env=env, check=True)
    assert "192.0.2.1" in log.read_text()


def test_no_offline_overrides_the_environment(tmp_path):
    """RANKER_OFFLINE=1 (or a config's offline = true) is a default: --no-offline lets this one command reach
    the network again, and without it the command refuses before any connection."""
    log = tmp_path / "net.log"
    env = dict(os.environ, RANKER_HOME=str(tmp_path / "home"), RANKER_TEST_NETLOG=str(log), RANKER_OFFLINE="1",
               RANKER_RSS_URL="http://192.0.2.1/rss/cs.LG", RANKER_FETCH_RETRIES="0", RANKER_FETCH_TIMEOUT="1",
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO / "tests" / "netguard_site"),
                                                        os.environ.get("PYTHONPATH")])))
    args = [*RANKER, "fetch", "--out", str(tmp_path / "o.jsonl")]
    p = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 1 and "offline mode" in p.stderr and not log.exists(), p.stderr
    p = subprocess.run([*args, "--no-offline"], env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 1 and "offline mode" not in p.stderr, p.stderr
    assert "192.0.2.1" in log.read_text()        # it tried the feed (the guard refused it: no real traffic)
    assert not (tmp_path / "o.jsonl").exists()


_LOOKS_UP = """
import socket, urllib.error, urllib.request
from ranker import netguard
netguard.enable_offline()
try:
    urllib.request.urlopen("http://huggingface.co/api/models/org/model", timeout=30)
except urllib.error.URLError as e:
    print("refused:", e.reason)
for host in ("localhost", "127.0.0.1", "::1", None):
    socket.getaddrinfo(host, 80)          # no name server asked: these still work
netguard.disable_offline()
"""


def test_offline_asks_no_name_server(tmp_path):
    """A library that reaches for the Hub anyway, offline: its lookup of huggingface.co was sent to the name
    server before the connect guard refused the connection (a query leaving the machine, and in a lab whose
    resolver is unreachable seconds of waiting per try). The lookup itself is refused now, as a failed lookup,
    and the guard (tests/netguard_site) records no attempt; loopback names and addresses still resolve."""
    log = tmp_path / "net.log"
    env = dict(os.environ, RANKER_TEST_NETLOG=str(log),
               PYTHONPATH=os.pathsep.join([str(REPO / "tests" / "netguard_site"), str(REPO)]))
    p = subprocess.run([sys.executable, "-c", _LOOKS_UP], env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout == ("refused: [Errno -2] offline mode: will not look up 'huggingface.co' (only loopback is "
                        "allowed)\n")
    assert not log.exists(), log.read_text()


def _names_in_hosts_file() -> list[str]:
    """Names /etc/hosts gives this machine that the offline guard does not let through on their own (neither a
    loopback name nor the host name): resolved from the file, no name server asked."""
    import socket
    from ranker import netguard
    try:
        lines = open("/etc/hosts", encoding="utf-8").read().splitlines()
    except OSError:
        return []
    names = [n for line in lines for n in line.split("#")[0].split()[1:]]
    return [n for n in names if not netguard._lookup_allowed(n) and socket.gethostname().lower() != n.lower()]


def test_serve_offline_listens_on_a_name_of_this_machine():
    """`ranker serve --host <a name of this machine>` in offline mode (offline = true in a lab's ranker.toml):
    the guard on name lookups refused the name the user gave to listen on ("cannot resolve ... offline mode:
    will not look up"), though /etc/hosts answers it and binding reaches no one."""
    import socket
    from ranker import netguard
    from ranker.web.server import bind
    names = _names_in_hosts_file()
    if not names:
        pytest.skip("/etc/hosts names no other name of this machine")
    netguard.enable_offline()
    try:
        for sock in bind(names[0], 0):
            sock.close()
        with pytest.raises(socket.gaierror):            # a library's own lookup is still refused
            socket.getaddrinfo(names[0], 80)
    finally:
        netguard.disable_offline()


def test_the_steps_called_from_python_honour_settings_offline_and_leave_the_process_as_it_was(tmp_path):
    """A program that uses ranker as a library, with `offline` set (offline = true in ranker.toml,
    RANKER_OFFLINE=1, Settings(offline=True)), got no offline mode at all: only the CLI read the setting, and the
    steps reached the network (today's RSS feed, a Hugging Face id). Each step is offline now, the process not
    after it."""
    import socket
    from ranker import netguard
    from ranker.errors import FetchError, ModelError
    from ranker.settings import Settings
    from ranker.steps import fetch_day, prefilter_day
    papers = fetch_day(REPO / "ranker/data/2025-05-15/listing.jsonl", Settings(home=tmp_path), store=None).papers
    connect, env = socket.socket.connect, dict(os.environ)
    # a feed on a documentation address (TEST-NET-1): never reached, whatever the test machine's network
    s = Settings(home=tmp_path, offline=True, fetch={"rss_url": "http://192.0.2.1/rss/", "retries": 0,
                                                     "timeout": 0.5, "download_timeout": 1.0})
    with pytest.raises(FetchError, match="offline mode: will not connect to 192.0.2.1"):
        fetch_day(None, s, store=None)
    s = Settings(home=tmp_path, offline=True, prefilter={"embedder": "no-such-org/no-such-embedder"})
    with pytest.raises(ModelError, match="offline mode downloads nothing"):
        prefilter_day(papers[:3], s, store=None)
    assert not netguard.is_offline() and socket.socket.connect is connect and dict(os.environ) == env
    # the CLI's switch, on for the whole command, stays on after a step
    netguard.enable_offline()
    try:
        with pytest.raises(FetchError, match="offline mode"):
            fetch_day(None, s, store=None)
        assert netguard.is_offline()
    finally:
        netguard.disable_offline()


_STEP_THEN_HUB = """
import sys
from ranker.settings import Settings
from ranker.steps import fetch_day, prefilter_day
assert "huggingface_hub.constants" not in sys.modules
from pathlib import Path
papers = fetch_day(Path(sys.argv[1]), Settings(home=sys.argv[2]), store=None).papers
prefilter_day(papers[:3], Settings(home=sys.argv[2], offline=True), store=None)   # imports the embedder's stack
import huggingface_hub.constants as hc
from transformers.utils.hub import is_offline_mode   # what transformers asks before a download
print(hc.HF_HUB_OFFLINE, hc.HF_HUB_DISABLE_TELEMETRY, is_offline_mode())
"""


@pytest.mark.slow
def test_an_offline_step_leaves_the_hub_online_after_it(tmp_path):
    """huggingface_hub reads HF_HUB_OFFLINE once, when it is first imported: an offline step that loaded the
    embedder (importing sentence-transformers, transformers and the hub) left the hub offline for the rest of the
    process once the step had put the environment back, and a later online step asked huggingface.co nothing."""
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE",
                                                             "HF_HUB_DISABLE_TELEMETRY", "DO_NOT_TRACK",
                                                             "DISABLE_TELEMETRY", "RANKER_OFFLINE")}
    env["PYTHONPATH"] = str(REPO)
    p = subprocess.run([sys.executable, "-c", _STEP_THEN_HUB, str(REPO / "ranker/data/2025-05-15/listing.jsonl"),
                        str(tmp_path)], env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["False", "False", "False"]


def test_offline_switches_a_hub_already_imported_and_back():
    """The other order: a hub imported before the step stayed online through it (the variable set too late)."""
    import huggingface_hub.constants as hc
    from ranker import netguard
    before = (hc.HF_HUB_OFFLINE, hc.HF_HUB_DISABLE_TELEMETRY)
    with netguard.offline_while(True):
        assert hc.HF_HUB_OFFLINE and hc.HF_HUB_DISABLE_TELEMETRY and hc.is_offline_mode()
    assert (hc.HF_HUB_OFFLINE, hc.HF_HUB_DISABLE_TELEMETRY) == before


def test_enable_offline_called_during_a_step_stays_on_after_it():
    """A direct enable_offline() (a program going offline for good, say from another thread) while a step held
    offline_while was undone when the step ended: the step had decided at its start that it switched offline on."""
    from ranker import netguard
    try:
        with netguard.offline_while(True):
            netguard.enable_offline()
        assert netguard.is_offline()
    finally:
        netguard.disable_offline()
    with netguard.offline_while(True):       # a step's own switch still ends with it
        assert netguard.is_offline()
    assert not netguard.is_offline()
