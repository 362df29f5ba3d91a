"""The shared helpers of ranker.io: atomic writes (full disk, special files, links), arXiv ids, retry."""
from __future__ import annotations

import errno
import importlib
import os
import shutil
import stat
import subprocess
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from ranker.errors import InputError
from ranker.io import (RetryPolicy, Retryable, arxiv_id, atomic_write, expand_paths, is_loopback_host,
                       is_loopback_url, parse_arxiv_id, retry, retry_after_seconds, same_paper_id)

from conftest import DAYS, python, ranker


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


# --------------------------------------------------------------------------- atomic writes
def test_text_bytes_and_lines_replace_the_file_whole(tmp_path):
    f = tmp_path / "sub" / "a.txt"
    atomic_write(f, "one\n")
    assert f.read_text() == "one\n"
    assert atomic_write(f, (f"{i}\n" for i in range(3))) == 3
    assert f.read_text() == "0\n1\n2\n"
    atomic_write(f, b"\x00\x01")
    assert f.read_bytes() == b"\x00\x01"
    assert leftovers(f.parent) == []


def test_a_failing_producer_leaves_the_old_file_and_no_temporary(tmp_path):
    f = tmp_path / "a.jsonl"
    f.write_text("old\n")

    def lines():
        yield "new 1\n"
        raise InputError("the reader broke", where="feed.xml:3")

    with pytest.raises(InputError, match="feed.xml:3"):
        atomic_write(f, lines())
    assert f.read_text() == "old\n" and leftovers(tmp_path) == []


def test_a_rewritten_file_keeps_its_permissions(tmp_path):
    f = tmp_path / "a.txt"
    f.write_text("x")
    os.chmod(f, 0o640)
    atomic_write(f, "y")
    assert stat.S_IMODE(f.stat().st_mode) == 0o640
    new = tmp_path / "b.txt"
    atomic_write(new, "z")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(new.stat().st_mode) == 0o666 & ~umask      # not mkstemp's 0600


def test_a_temporary_file_refused_its_permissions_is_closed(tmp_path, monkeypatch):
    """A file system that will not give the temporary file the old file's permissions (EPERM, as some FUSE and
    network mounts answer) fails the write, naming the file; the temporary file's descriptor, opened before the
    file object that closes it, stayed open for the life of the process (one more each time)."""
    f = tmp_path / "a.txt"
    f.write_text("old")

    def refuse(*args, **kwargs):
        raise PermissionError(errno.EPERM, os.strerror(errno.EPERM))

    monkeypatch.setattr(os, "chmod", refuse)
    monkeypatch.setattr(os, "fchmod", refuse)
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(3):
        with pytest.raises(InputError, match=rf"^{f}: cannot write: Operation not permitted$"):
            atomic_write(f, "new")
    assert len(os.listdir("/proc/self/fd")) == before
    assert f.read_text() == "old" and leftovers(tmp_path) == []


@pytest.fixture
def full_dir(tmp_path, monkeypatch):
    """A folder on a 64 KiB tmpfs (a real full disk) where mounting is permitted; elsewhere a folder whose
    writes fail with ENOSPC at fsync, as the kernel reports a full disk."""
    d = tmp_path / "tiny"
    d.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(d)],
                             capture_output=True).returncode == 0
    if not mounted:
        def full(fd):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        monkeypatch.setattr(os, "fsync", full)
    try:
        yield d
    finally:
        if mounted:
            subprocess.run(["umount", str(d)], check=True)


def test_a_full_disk_names_the_file_and_leaves_nothing_behind(full_dir):
    f = full_dir / "2025-05-15-output.md"
    with pytest.raises(InputError) as e:
        atomic_write(f, ("x" * 1000 + "\n" for _ in range(200)))        # 200 KB into 64 KiB
    msg = str(e.value)
    assert msg.startswith(f"{f}: cannot write") and "No space left on device" in msg and "\n" not in msg
    assert list(full_dir.iterdir()) == []                                # no .part / .tmp left


def test_a_read_only_folder_names_the_file(tmp_path):
    if os.geteuid() == 0:      # root writes anyway: use a read-only bind of the folder
        ro = tmp_path / "ro"
        ro.mkdir()
        if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=16k", "tmpfs", str(ro)]).returncode != 0:
            pytest.fail("cannot mount a read-only tmpfs as root")
        try:
            with pytest.raises(InputError, match=rf"^{ro / 'a.txt'}: cannot write: Read-only file system$"):
                atomic_write(ro / "a.txt", "x")
        finally:
            subprocess.run(["umount", str(ro)], check=True)
    else:
        ro = tmp_path / "ro"
        ro.mkdir()
        os.chmod(ro, 0o500)
        with pytest.raises(InputError, match=rf"^{ro / 'a.txt'}: cannot write: Permission denied$"):
            atomic_write(ro / "a.txt", "x")


def test_a_directory_is_a_clean_error(tmp_path):
    with pytest.raises(InputError, match=rf"^{tmp_path}: is a directory; give a file name$"):
        atomic_write(tmp_path, "x")


def test_a_directory_in_the_place_of_one_of_ranker_s_own_files_is_told_to_move_not_to_name_a_file(tmp_path):
    """A folder where ranker keeps a file of its own (a day's DATE-run.json, the index's manifest.json) said
    "give a file name", advice for a path the user gave: they gave none, and can only move the folder away."""
    own = tmp_path / "manifest.json"
    own.mkdir()
    with pytest.raises(InputError, match=rf"^{own}: is a directory where ranker keeps one of its files; move it "
                                         "away or remove it$"):
        atomic_write(own, "x", own_name=True)
    with pytest.raises(InputError, match=rf"^{own}: is a directory; give a file name$"):
        atomic_write(own, "x")                      # a path the user gave (--out FILE): as before
    out = tmp_path / "out"
    (out / "2025-05-15-run.json").mkdir(parents=True)
    r = ranker("run", "--papers", DAYS / "2025-05-15" / "listing.jsonl", "--out", out, "--backend", "fake",
               "--offline", "--db", tmp_path / "db.sqlite3", env={"RANKER_HOME": tmp_path / "home"})
    assert r.returncode == 1 and r.stderr == (f"error: --out {out / '2025-05-15-run.json'}: is a directory where "
                                              "ranker keeps one of its files; move it away or remove it\n"), r.stderr


def test_a_symlink_is_followed_and_kept(tmp_path):
    target = tmp_path / "real.jsonl"
    target.write_text("old\n")
    link = tmp_path / "link.jsonl"
    link.symlink_to(target)
    atomic_write(link, "new\n")
    assert link.is_symlink() and target.read_text() == "new\n"
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "made.txt")
    atomic_write(dangling, "made\n")
    assert dangling.is_symlink() and (tmp_path / "made.txt").read_text() == "made\n"


def test_dev_null_stays_a_character_device():
    before = os.stat("/dev/null")
    try:
        atomic_write("/dev/null", ("line\n" for _ in range(3)))
        atomic_write("/dev/null", "text")
        after = os.stat("/dev/null")
        assert stat.S_ISCHR(after.st_mode) and after.st_rdev == before.st_rdev
    finally:
        _repair_dev_null(before)


def _repair_dev_null(before) -> None:
    """Should a broken implementation have replaced /dev/null (as root), put the device back."""
    st = os.lstat("/dev/null")
    if not stat.S_ISCHR(st.st_mode) and os.geteuid() == 0:
        os.unlink("/dev/null")
        os.mknod("/dev/null", stat.S_IFCHR | 0o666, before.st_rdev)
        os.chmod("/dev/null", 0o666)


def test_a_file_in_a_folder_under_dev_is_replaced_whole_not_appended_to():
    """/dev/shm (a tmpfs) holds plain files: `ranker run --out /dev/shm/digests` twice leaves one digest and
    one manifest (JSON), not two glued together, and a failed write leaves the earlier file whole."""
    if not os.path.isdir("/dev/shm") or not os.access("/dev/shm", os.W_OK):
        pytest.skip("this machine has no writable /dev/shm")
    folder = Path(tempfile.mkdtemp(prefix="ranker-test-", dir="/dev/shm"))
    try:
        f = folder / "new" / "2025-05-15-run.json"
        atomic_write(f, '{"status": "running"}\n')
        atomic_write(f, '{"status": "ok"}\n')
        assert f.read_text() == '{"status": "ok"}\n'

        def broken():
            yield "half"
            raise OSError(28, "No space left on device")
        with pytest.raises(InputError):
            atomic_write(f, broken())
        assert f.read_text() == '{"status": "ok"}\n' and os.listdir(f.parent) == [f.name]
        # a link made there to that file is a file's name too: its target replaced whole, the link kept
        link = folder / "latest.json"
        link.symlink_to(f)
        atomic_write(link, '{"status": "again"}\n')
        assert link.is_symlink() and f.read_text() == '{"status": "again"}\n'
    finally:
        shutil.rmtree(folder)


def test_a_fifo_is_written_through(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(open(fifo).read()))
    reader.start()
    atomic_write(fifo, ["a\n", "b\n"])
    reader.join(5)
    assert got == ["a\nb\n"] and stat.S_ISFIFO(os.lstat(fifo).st_mode)


_OWN_NAMES = """
import os, socket, sys
from pathlib import Path
from ranker.io import atomic_write, write_together
d = Path(sys.argv[1])
os.mkfifo(d / "elsewhere")
for name in ("fifo.json", "link.json", "sock.json", "set-a.md", "set-b.json"):
    if name == "link.json":
        (d / name).symlink_to(d / "elsewhere")
    elif name == "sock.json":
        socket.socket(socket.AF_UNIX).bind(str(d / name))
    else:
        os.mkfifo(d / name)
for name in ("fifo.json", "link.json", "sock.json"):
    atomic_write(d / name, name, own_name=True)
write_together({d / "set-a.md": ["a"], d / "set-b.json": ["b"]})
print(sorted(p.name for p in d.iterdir() if p.is_file() and not p.is_symlink()))
"""


def test_a_fifo_socket_or_link_to_a_fifo_in_the_place_of_a_name_ranker_made_is_replaced(tmp_path):
    """A day's DATE-run.json, its digest, an index's manifest.json: names ranker makes in a folder. A FIFO there
    (or a link to one) was written into in place, as a user's `--out /dev/stdout` is, and the command waited for
    a reader forever; a socket's open failed. With own_name (write_together's files always) the new file takes
    the name by the rename; the FIFO a link led to is left. In a process of its own, with a timeout."""
    done = python(_OWN_NAMES, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "['fifo.json', 'link.json', 'set-a.md', 'set-b.json', 'sock.json']\n"
    assert {n: (tmp_path / n).read_text() for n in ("fifo.json", "link.json", "set-a.md")} == \
        {"fifo.json": "fifo.json", "link.json": "link.json", "set-a.md": "a"}
    assert stat.S_ISFIFO(os.lstat(tmp_path / "elsewhere").st_mode) and leftovers(tmp_path) == []


_OWN_WRITERS = """
import os, sys
from pathlib import Path
import pyarrow as pa
from ranker.backfill import manifest, shards
from ranker.index.files import MANIFEST, Manifest, write_manifest
from ranker.prefilter.calibrate import Calibration
from ranker.steps import _write_json
from ranker.store import Store
from ranker.web.site import MARKER, build_site
d = Path(sys.argv[1])
names = {"run": d / "2025-05-15-run.json", "backfill": d / "bf" / manifest.NAME, "index": d / "faiss" / MANIFEST,
         "shard": d / "bf" / "ranked" / "date=2025-05-15" / "ranked-0123456789abcdef.parquet",
         "calibration": d / "eval" / "calibrations" / "2025-05-15.json", "site": d / "site" / MARKER}
for path in names.values():
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(path)
(d / "site" / "static" / "search").mkdir(parents=True)
(d / "site" / "static" / "search" / "index.js").write_text("window.RANKER_SEARCH = {}")   # a site ranker wrote
_write_json(names["run"], {"status": "running"})
manifest.save(names["backfill"].parent, {"version": 1})
write_manifest(names["index"].parent, Manifest(embedder="minilm", dim=384, kind="flat"))
shards.write_shard(pa.table({"id": ["2505.00001"]}), names["shard"])
Calibration(embedder="minilm", dim=384).save(names["calibration"], own_name=True)
with Store(d / "db.sqlite3") as store:
    build_site(store, d / "site", similar=lambda *a: [])
print(sorted(k for k, path in names.items() if path.is_file() and path.stat().st_size))
"""


def test_every_writer_of_a_name_of_its_own_replaces_a_fifo_there(tmp_path):
    """The files ranker names in a folder, beyond a day's run (test_daily): a backfill's manifest.json and its
    shards, the corpus index's manifest.json, eval's calibrations/DAY.json, the site's marker. A FIFO in the
    place of each was written into and the command waited for a reader for good; each is replaced."""
    done = python(_OWN_WRITERS, tmp_path, timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "['backfill', 'calibration', 'index', 'run', 'shard', 'site']\n"


@pytest.mark.parametrize("name", ["/dev/fd/{fd}", "/proc/self/fd/{fd}"])
def test_a_descriptor_held_is_written_through_it_where_its_owner_left_off(tmp_path, name):
    """/dev/fd/N of a file this process has open (the CLI's `--out -` on a redirected stdout): the data goes
    where the descriptor stands and moves it, so what its owner writes next follows the data. Opened afresh,
    the data went at the file's end and the owner's next write landed over it."""
    path = tmp_path / "out.txt"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        os.write(fd, b"HEAD\n")
        atomic_write(name.format(fd=fd), ["a\n", "b\n"])
        os.write(fd, b"TAIL\n")
    finally:
        os.close(fd)
    assert path.read_text() == "HEAD\na\nb\nTAIL\n"


def test_a_descriptor_held_that_cannot_be_opened_leaves_no_copy_of_it_open(tmp_path, monkeypatch):
    """The copy of a held descriptor that _write_in_place (and read_text) made stayed open when the open on it
    failed: each failure leaked one descriptor."""
    import ranker.io as rio
    from ranker.io import read_text

    def open_descriptors():
        return {n for n in os.listdir("/proc/self/fd") if os.path.exists(f"/proc/self/fd/{n}")}

    def refuse(file, *a, **kw):
        raise OSError(errno.EMFILE, "Too many open files")
    fd = os.open(tmp_path / "out.txt", os.O_RDWR | os.O_CREAT)
    try:
        before = open_descriptors()
        monkeypatch.setattr(rio, "open", refuse, raising=False)
        with pytest.raises(InputError, match="Too many open files"):
            atomic_write(f"/dev/fd/{fd}", "x")
        with pytest.raises(InputError, match="Too many open files"):
            read_text(f"/dev/fd/{fd}")
        assert open_descriptors() == before
    finally:
        os.close(fd)


def test_a_descriptor_held_is_read_from_where_its_owner_left_off(tmp_path):
    """read_text of /dev/stdin (`labels import -` in `{ read header; ranker labels import -; } < f`) reads on
    from where the descriptor stands, as a pipe would; opened afresh it read the file again from its start."""
    from ranker.io import read_text
    path = tmp_path / "in.txt"
    path.write_text("HEAD\nrest\n")
    fd = os.open(path, os.O_RDONLY)
    try:
        os.read(fd, 5)
        assert read_text(f"/dev/fd/{fd}") == "rest\n"
    finally:
        os.close(fd)


@pytest.mark.parametrize("text,want", [
    ("GET http://h/v1/models?key=SECRET&token=TOK failed", "GET http://h/v1/models?key=[redacted]&token=[redacted] failed"),
    ("https://b.blob/x?sv=2024&sig=abc%2Bd&se=1", "https://b.blob/x?sv=2024&sig=[redacted]&se=1"),
    ("https://s3/o?X-Amz-Credential=AK/1&X-Amz-Signature=f00d", "https://s3/o?X-Amz-Credential=[redacted]&X-Amz-Signature=[redacted]"),
    ("http://h/?secret=s&password=p&client_secret=c", "http://h/?secret=[redacted]&password=[redacted]&client_secret=[redacted]"),
    ("password: hunter2hunter2", "password: [redacted]"), ('{"client_secret": "0123456789ab"}', '{"client_secret": "[redacted]"}'),
    # compound names in a query, any case; a short password; the other schemes of an Authorization header
    ("http://h/v1?apikey=K1&apiKey=K2&x=1", "http://h/v1?apikey=[redacted]&apiKey=[redacted]&x=1"),
    ("http://h/?accessToken=t&access_token=u", "http://h/?accessToken=[redacted]&access_token=[redacted]"),
    ("http://h/?authorization=Basic%20dXNlcjpw&m=1", "http://h/?authorization=[redacted]&m=1"),
    ("https://a.blob/c?SharedAccessSignature=sv%3D1", "https://a.blob/c?SharedAccessSignature=[redacted]"),
    ("login failed: password=hunter2", "login failed: password=[redacted]"),
    ("passwd: pw1abcdef secret=s", "passwd: [redacted] secret=[redacted]"),
    ("DB_PASSWORD=hunter2 PGPASSWORD=x", "DB_PASSWORD=[redacted] PGPASSWORD=x"), ('{"password": "pw"}', '{"password": "[redacted]"}'),
    ("Authorization: Basic dXNlcjpwYXNz", "Authorization: Basic [redacted]"),
    ("authorization: Token abcdefgh12", "authorization: Token [redacted]"),
    ('{"Authorization": "Basic dXNlcjpw"}', '{"Authorization": "Basic [redacted]"}'),
    ("sent basic dXNlcjpwYXNzd29yZA== upstream", "sent basic [redacted] upstream"),
    ("Endpoint=sb://n/;SharedAccessKey=abcdefgh123", "Endpoint=sb://n/;SharedAccessKey=[redacted]"),
    # prose and harmless parameters stay
    ("http://h/v1?model=m&monkey=1&keep=0.4", "http://h/v1?model=m&monkey=1&keep=0.4"),
    ("use key=value pairs; max_tokens=128 tokens", "use key=value pairs; max_tokens=128 tokens"),
    ("2506.16065v2 Qwen/tokenformer max_tokens=512", "2506.16065v2 Qwen/tokenformer max_tokens=512"),
    ("http://h/v1?max_tokens=5&tokens=3&keyword=x&key_id=7&author=Ng",
     "http://h/v1?max_tokens=5&tokens=3&keyword=x&key_id=7&author=Ng"),
    ("each token counts; a basic baseline; token 2048", "each token counts; a basic baseline; token 2048"),
    ("/etc/passwd: not JSON lines", "/etc/passwd: not JSON lines"), ("./secret: not found", "./secret: not found"),
    # a file named with a hyphen, prose after a bare "password:", a paper's words after "basic" and "token" (a
    # model's output is redacted before it is stored: its words must stay)
    ("/data/db-password: no such file or directory", "/data/db-password: no such file or directory"),
    ("cannot read /srv/keys/client-secret: permission denied", "cannot read /srv/keys/client-secret: permission denied"),
    ("Password: the field is required", "Password: the field is required"),
    ("paper 2501.00001 'Secret: sharing' not found", "paper 2501.00001 'Secret: sharing' not found"),
    ('{"reason": "Password: guessing attacks"}', '{"reason": "Password: guessing attacks"}'),
    ("against a basic ResNet-50 baseline, the basic GPT-4o-mini agent", "against a basic ResNet-50 baseline, the basic GPT-4o-mini agent"),
    ("per token FP16/BF16 cost", "per token FP16/BF16 cost"),
])
def test_redact_takes_secrets_out_of_a_url_query_and_named_passwords(text, want):
    """A key given in a URL's query (?key=, &token=, a signed URL's sig=) was printed as written by `ranker config`
    and kept in the run manifest: redact knew api_key=/access_token= only."""
    from ranker.io import redact
    assert redact(text) == want


@pytest.mark.parametrize("text,want", [
    # a password holding an "@" (httpx and urllib take the host after the authority's last "@")
    ("cannot list the models of https://lab:p@ss-word@llm.example/v1: ConnectError",
     "cannot list the models of https://lab:[redacted]@llm.example/v1: ConnectError"),
    ("https://lab:a@b@c@h:8443/v1 and user@example.org", "https://lab:[redacted]@h:8443/v1 and user@example.org"),
    # a key given to an environment variable's name, as a shell, a .env file or a server's error writes it
    ("export OPENAI_API_KEY=abcd1234efgh5678", "export OPENAI_API_KEY=[redacted]"),
    ("AZURE_OPENAI_API_KEY: 'abcd1234efgh5678'", "AZURE_OPENAI_API_KEY: '[redacted]'"),
    ("HF_TOKEN=hf_AbCdEf123456 GITHUB_TOKEN=ghp_abcdef123456", "HF_TOKEN=[redacted] GITHUB_TOKEN=[redacted]"),
    # ... and as a mapping's key, as OPENAI_API_KEY's is (an environment dumped as a dict, a YAML file)
    ('{"HF_TOKEN": "hf_AbCdEf123456"}', '{"HF_TOKEN": "[redacted]"}'),
    ("env_vars={'GITHUB_TOKEN': 'ghp_abcdef123456'} HF_TOKEN: hf_AbCdEf123456",
     "env_vars={'GITHUB_TOKEN': '[redacted]'} HF_TOKEN: [redacted]"),
    ("MAX_TOKEN: 25600000, PAD_TOKEN: '<|pad|>', EOS_TOKEN: eos", "MAX_TOKEN: 25600000, PAD_TOKEN: '<|pad|>', EOS_TOKEN: eos"),
    # and what is no key stays
    ("RANKER_MAX_TOKENS=128 MAX_TOKEN=25600000 max_tokens=512", "RANKER_MAX_TOKENS=128 MAX_TOKEN=25600000 max_tokens=512"),
    ("see https://arxiv.org/abs/2505.01234 and user@example.org", "see https://arxiv.org/abs/2505.01234 and user@example.org"),
])
def test_redact_takes_a_whole_url_password_and_a_key_under_a_variables_name(text, want):
    """Two ways past the redaction: a URL's password holding an "@" lost only its part before that "@" (the rest
    went into error lines, the store and run.json), and OPENAI_API_KEY=... (a name with a prefix: "\\b" does not
    hold between "_" and "API") was left as it was."""
    from ranker.io import redact
    assert redact(text) == want


# --------------------------------------------------------------------------- arXiv ids
@pytest.mark.parametrize("raw,want", [
    ("2506.16065", ("2506.16065", None)), ("2506.16065v2", ("2506.16065", 2)),
    ("arXiv:2506.16065", ("2506.16065", None)), (" 2506.16065 ", ("2506.16065", None)),
    ("oai:arXiv.org:2411.17700v3", ("2411.17700", 3)), ("cs/0501001", ("cs/0501001", None)),
    ("math.GT/0309136v1", ("math.GT/0309136", 1)), ("http://arxiv.org/abs/hep-th/9901001v2", ("hep-th/9901001", 2)),
    ("https://arxiv.org/abs/2506.16065v1", ("2506.16065", 1)), ("https://www.arxiv.org/pdf/2506.16065v2.pdf",
                                                                ("2506.16065", 2)),
    ("https://export.arxiv.org/abs/0704.0001", ("0704.0001", None)),
    # links as a browser's address bar holds them: a listing's context, an anchor, the HTML rendering
    ("https://arxiv.org/abs/2506.16065v2?context=cs.LG", ("2506.16065", 2)),
    ("https://arxiv.org/abs/2506.16065#S3", ("2506.16065", None)),
    ("https://arxiv.org/html/2506.16065v1", ("2506.16065", 1)), ("arxiv.org/html/2506.16065v1/#S2", ("2506.16065", 1)),
    ("https://arxiv.org/pdf/2506.16065v2?download=1", ("2506.16065", 2)),
    ("https://arxiv.org/pdf/2506.16065v2.PDF", ("2506.16065", 2)),
])
def test_arxiv_ids_in_every_form(raw, want):
    assert parse_arxiv_id(raw) == want and arxiv_id(raw) == want[0]


@pytest.mark.parametrize("raw", ["2411.177", "2411.177001", "2506.16065vEVIL", "not an id", "", None, 2506.16065,
                                 "https://example.org/abs/2506.16065", "2506.16065?x", "2506.16065#y",
                                 "https://arxiv.org/abs/2506.16065vEVIL?context=cs"])
def test_what_is_not_an_arxiv_id(raw):
    assert parse_arxiv_id(raw) is None


def test_an_answers_id_may_only_add_a_version():
    assert same_paper_id("2506.16065", "2506.16065") and same_paper_id("2506.16065v3", "2506.16065")
    assert not same_paper_id("2506.16065vEVIL", "2506.16065")
    assert not same_paper_id("2506.160651", "2506.16065") and not same_paper_id("2506.16065 v2", "2506.16065")
    assert same_paper_id("solv-int/9901001v2", "solv-int/9901001") and not same_paper_id(None, "x")


# --------------------------------------------------------------------------- retry
def test_retry_backs_off_then_gives_up_with_the_count():
    calls, heard = [], []

    def flaky():
        calls.append(time.monotonic())
        raise Retryable("HTTP 503", status=503)

    with pytest.raises(Retryable) as e:
        retry(flaky, RetryPolicy(retries=2, backoff=0.01, max_wait=1), lambda n, err, w: heard.append((n, w)))
    assert e.value.attempts == 3 and not e.value.too_long and len(calls) == 3
    assert [n for n, _ in heard] == [1, 2] and all(0 < w <= 0.04 for _, w in heard)


def test_retry_goes_on_past_a_thousand_retries_at_the_longest_wait():
    # `retries` has no upper bound (RANKER_FETCH_RETRIES=5000: keep asking a flaky mirror for days); the 1,025th
    # retry's backoff, 2.0 ** 1024, overflowed and the command ended with an OverflowError
    policy, n, waits = RetryPolicy(retries=5000, backoff=2.0, max_wait=120.0), [], []

    def flaky():
        n.append(1)
        if len(n) <= 1100:
            raise Retryable("HTTP 503", status=503)
        return "ok"

    assert retry(flaky, policy, lambda k, err, w: waits.append(w), sleep=lambda s: None) == "ok"
    assert len(waits) == 1100 and all(0.8 * 120.0 <= w <= 120.0 for w in waits[10:])
    assert 0.8 * 120.0 <= policy.wait(4999) <= 120.0 and policy.wait(4999, retry_after=5.0) >= 96.0
    assert RetryPolicy(retries=5000, backoff=0.0, max_wait=1.0).wait(4999) == 0.0


def test_retry_honours_retry_after_and_refuses_a_long_one():
    n = []

    def once_429():
        n.append(1)
        if len(n) == 1:
            raise Retryable("HTTP 429", status=429, retry_after=0.2)
        return "ok"

    t0 = time.monotonic()
    assert retry(once_429, RetryPolicy(retries=3, backoff=0.01, max_wait=5)) == "ok"
    assert time.monotonic() - t0 >= 0.19
    with pytest.raises(Retryable) as e:
        retry(lambda: (_ for _ in ()).throw(Retryable("HTTP 429", retry_after=3600)), RetryPolicy(max_wait=10))
    assert e.value.too_long and e.value.attempts == 1
    assert retry_after_seconds("2") == 2.0 and retry_after_seconds(None) is None
    assert retry_after_seconds("soon") is None and retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


def test_loopback():
    assert is_loopback_host("127.0.0.1") and is_loopback_host("127.8.0.1") and is_loopback_host("::1")
    assert is_loopback_host("localhost") and not is_loopback_host("10.0.0.1")
    assert is_loopback_url("http://127.0.0.1:8000/v1") and not is_loopback_url("https://api.openai.com/v1")


# --------------------------------------------------------------------------- naming files
def test_expand_paths(tmp_path):
    (tmp_path / "a").mkdir()
    for name in ("a/x.jsonl", "a/y.md", "z.jsonl"):
        (tmp_path / name).write_text("{}")
    keep = lambda p: p.suffix == ".jsonl"      # noqa: E731
    assert expand_paths(tmp_path / "a", keep=keep, what="jsonl") == [tmp_path / "a" / "x.jsonl"]
    assert [p.name for p in expand_paths(str(tmp_path / "*"), keep=keep, what="jsonl")] == ["x.jsonl", "z.jsonl"]
    assert expand_paths([tmp_path / "a/y.md", tmp_path / "a/y.md"], keep=keep, what="x") == [tmp_path / "a/y.md"]
    with pytest.raises(InputError) as e:
        expand_paths(tmp_path / "nope", keep=keep, what="x", key="gpt")
    assert e.value.key == "gpt" and str(e.value) == f"gpt {tmp_path / 'nope'}: no such file or directory"


def test_write_together_leaves_no_temporary_whatever_stops_it(tmp_path, monkeypatch):
    """A set of files written together: stopped while writing (Ctrl-C in the second file's chunks) the old set
    stays and no temporary is left; a rename that fails is an InputError naming the file, and the temporaries
    not yet renamed are removed; a Ctrl-C before the renames is not marked as having written the set."""
    from ranker.io import write_together
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("old a\n")
    b.write_text("old b\n")

    def stopped():
        yield "new b, part 1\n"
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt) as e:
        write_together({a: ["new a\n"], b: stopped()})
    assert not getattr(e.value, "written", False)
    assert (a.read_text(), b.read_text()) == ("old a\n", "old b\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.txt"]
    real = _refuse_renames_onto(monkeypatch, "b.txt", errno.EACCES)
    with pytest.raises(InputError, match="b.txt"):
        write_together({tmp_path / "c.txt": ["c\n"], a: ["new a\n"], b: ["new b\n"]})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.txt"]
    # the rename of b failed after c and a had theirs: both are taken back, the old set stays whole
    assert (a.read_text(), b.read_text()) == ("old a\n", "old b\n")
    monkeypatch.setattr(os, "replace", real)
    write_together({a: ["new a\n"], b: ["new b\n"]})
    assert (a.read_text(), b.read_text()) == ("new a\n", "new b\n") and a.stat().st_nlink == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.txt"]


def _refuse_renames_onto(monkeypatch, name: str, err: int):
    """os.replace failing with `err` for a target named `name` (the others renamed): the real one returned."""
    real = os.replace

    def refuse(src, dst):
        if str(dst).endswith(name):
            raise OSError(err, os.strerror(err))
        real(src, dst)

    monkeypatch.setattr(os, "replace", refuse)
    return real


def test_write_together_removes_an_earlier_sets_file_in_the_same_step(tmp_path, monkeypatch):
    """A file the new set does not make (an eval's comparison.json, on a rerun without one) is removed with the
    renames: the new set never stands beside it; a write that fails leaves it in place with the old set."""
    from ranker.io import write_together
    a, b, gone = tmp_path / "a.txt", tmp_path / "b.txt", tmp_path / "gone.json"
    a.write_text("old a\n")
    gone.write_text("old gone\n")
    real = _refuse_renames_onto(monkeypatch, "b.txt", errno.ENOSPC)
    with pytest.raises(InputError, match="b.txt"):
        write_together({a: ["new a\n"], b: ["new b\n"]}, remove=[gone])
    assert (a.read_text(), gone.read_text()) == ("old a\n", "old gone\n") and not b.exists()
    monkeypatch.setattr(os, "replace", real)
    write_together({a: ["new a\n"], b: ["new b\n"]}, remove=[gone, tmp_path / "never.json"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.txt"] and a.read_text() == "new a\n"


def test_a_byte_order_mark_is_not_text_in_any_file_read_through_read_text(tmp_path):
    """Notepad's "UTF-8 with BOM": read_text is where every user file is read (ranker.toml, the authors and
    exclusions files, a labels file), so it drops the mark there, as the compare readers, prompts and JSONL
    sources each did: the config was "not valid TOML", a labels file lost its first line, the first
    exclusion matched nothing and the first pin's name carried the mark."""
    from ranker.io import read_text
    from ranker.labels import import_labels
    from ranker.prefilter.rules import AuthorPins, Exclusions
    from ranker.records import Paper
    from ranker.settings import resolve
    from ranker.store import Store
    bom = b"\xef\xbb\xbf"
    files = {"ranker.toml": b"[prefilter]\ntop = 5\n", "authors.txt": b"Yann LeCun\n",
             "exclude.txt": b"case study\n",
             "labels.jsonl": b'{"id": "2505.09572", "label": 1, "time": "2025-05-15T09:00:00Z"}\n'}
    for name, data in files.items():
        (tmp_path / name).write_bytes(bom + data)
        assert read_text(tmp_path / name) == data.decode()
    assert resolve(tmp_path / "ranker.toml", env={}).prefilter.top == 5
    assert [p.name for p in AuthorPins.read(tmp_path / "authors.txt").pins] == ["Yann LeCun"]
    hit = Exclusions.build([], tmp_path / "exclude.txt").match(Paper(id="1", title="A case study", abstract=""))
    assert hit is not None and hit.text == "case study"
    with Store(tmp_path / "r.sqlite3") as s:
        assert import_labels(s, tmp_path / "labels.jsonl")["added"] == 1


def test_counted_says_one_in_the_singular_and_groups_thousands():
    from ranker.io import counted
    assert [counted(n, "paper") for n in (0, 1, 2, 1204)] == ["0 papers", "1 paper", "2 papers", "1,204 papers"]
    assert counted(1, "author match", "author matches") == "1 author match"
    assert counted(3, "author match", "author matches") == "3 author matches"


# --------------------------------------------------------------------------- lock_exclusive
def test_lock_exclusive_tells_once_then_waits_for_the_holder(tmp_path):
    """The one lock of a site build and a models prepare: a second holder is told once, then waits until the
    first lets go (flock locks belong to open files, so two opens in one process contend as two processes)."""
    from ranker.io import lock_exclusive
    f = tmp_path / "lock"
    f.write_text("")
    first, second = os.open(f, os.O_WRONLY), os.open(f, os.O_WRONLY)
    told, got = [], threading.Event()
    lock_exclusive(first, lambda: told.append("first"))
    t = threading.Thread(target=lambda: (lock_exclusive(second, lambda: told.append("second")), got.set()))
    t.start()
    try:
        # told once it came to the lock (however late a loaded machine starts the thread), and still waiting
        deadline = time.monotonic() + 30
        while not told and t.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not got.wait(0.2) and told == ["second"]
        os.close(first)
        first = None
        assert got.wait(10)
    finally:
        if first is not None:            # (a failure above: the waiting thread let go, not left for the exit)
            os.close(first)
        t.join(10)
        os.close(second)
    assert told == ["second"]


def test_lock_exclusive_on_a_file_system_without_locks(tmp_path, monkeypatch):
    """NFS without a lock daemon answers ENOLCK: an error for a models prepare, an unlocked build for a site."""
    import fcntl

    from ranker.io import lock_exclusive

    def no_locks(fd, how):
        raise OSError(errno.ENOLCK, "No locks available")
    monkeypatch.setattr(fcntl, "flock", no_locks)
    fd = os.open(tmp_path, os.O_RDONLY)
    try:
        with pytest.raises(OSError):
            lock_exclusive(fd, lambda: pytest.fail("nobody holds it"))
        lock_exclusive(fd, lambda: pytest.fail("nobody holds it"), without_locks=True)
    finally:
        os.close(fd)


def test_quiet_transformers_puts_the_callers_settings_back_after_the_outermost_block():
    from transformers.utils import logging as hf_logging
    from ranker.io import quiet_transformers
    before = (hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled())
    hf_logging.set_verbosity_warning()
    hf_logging.enable_progress_bar()
    try:
        with quiet_transformers():
            with quiet_transformers():
                assert hf_logging.get_verbosity() == hf_logging.ERROR
            assert hf_logging.get_verbosity() == hf_logging.ERROR and not hf_logging.is_progress_bar_enabled()
        assert hf_logging.get_verbosity() == hf_logging.WARNING and hf_logging.is_progress_bar_enabled()
        with pytest.raises(ValueError):
            with quiet_transformers():
                raise ValueError("a failed load")
        assert hf_logging.get_verbosity() == hf_logging.WARNING and hf_logging.is_progress_bar_enabled()
    finally:
        hf_logging.set_verbosity(before[0])
        (hf_logging.enable_progress_bar if before[1] else hf_logging.disable_progress_bar)()


def test_quiet_transformers_leaves_the_hosts_hub_progress_bars_as_they_were():
    """A host that had switched huggingface_hub's bars off (all, or one group's) found them all on again after
    ranker loaded or ran an embedder: the block put transformers' flag back with enable_progress_bar(), which
    enables every hub bar too."""
    import huggingface_hub.utils as hu
    from transformers.utils import logging as hf_logging
    from ranker.io import quiet_transformers
    hub_states = importlib.import_module("huggingface_hub.utils.tqdm").progress_bar_states
    before = (hf_logging._tqdm_active, dict(hub_states))
    try:
        hu.disable_progress_bars()
        with quiet_transformers():
            assert hu.are_progress_bars_disabled() and not hf_logging.is_progress_bar_enabled()
        assert hu.are_progress_bars_disabled() and hf_logging.is_progress_bar_enabled()
        hu.enable_progress_bars()
        hu.disable_progress_bars("huggingface_hub.lfs_upload")       # one group off, the rest on
        with quiet_transformers():
            assert hu.are_progress_bars_disabled("huggingface_hub.snapshot_download")
        assert hu.are_progress_bars_disabled("huggingface_hub.lfs_upload")
        assert not hu.are_progress_bars_disabled("huggingface_hub.snapshot_download")
        assert hf_logging.is_progress_bar_enabled()
    finally:
        hf_logging._tqdm_active = before[0]
        hub_states.clear()
        hub_states.update(before[1])


def _half_named_set(folder: Path, tmp_dir: Path) -> None:
    """What write_together leaves when its process is killed after its journal and the first of three renames:
    a.txt new, b.txt and c.txt still under their temporary names, b's old file under a second name."""
    import json
    folder.mkdir()
    for name in ("a.txt", "b.txt"):
        (folder / name).write_text("old\n")
    os.link(folder / "b.txt", folder / ".b.txt.0000000b.old")
    for name in ("a.txt", "b.txt", "c.txt"):
        (folder / f".{name}.1234abcd.tmp").write_text("new\n")
    os.replace(folder / ".a.txt.1234abcd.tmp", folder / "a.txt")
    (folder / ".ranker-set.0badcafe.json").write_text(json.dumps(
        {"format": 1, "rename": [[f".{n}.1234abcd.tmp", n] for n in ("a.txt", "b.txt", "c.txt")],
         "remove": [], "old": [".b.txt.0000000b.old"]}))


def test_a_set_its_killed_writer_left_half_named_is_finished_by_the_next(tmp_path):
    from ranker.io import finish_sets, write_together
    out = tmp_path / "out"
    _half_named_set(out, tmp_path)
    write_together({out / "index.txt": ["x\n"]})          # the next set written into the folder finishes it first
    assert {p.name: p.read_text() for p in out.iterdir()} == {"a.txt": "new\n", "b.txt": "new\n", "c.txt": "new\n",
                                                             "index.txt": "x\n"}
    assert finish_sets(out) == 0


def test_a_set_being_renamed_by_a_live_writer_is_left_to_it(tmp_path):
    import fcntl

    from ranker.io import finish_sets
    out = tmp_path / "out"
    _half_named_set(out, tmp_path)
    fd = os.open(out / ".ranker-set.0badcafe.json", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)                   # as the writer holds it while it renames
        assert finish_sets(out) == 0
        assert (out / ".b.txt.1234abcd.tmp").exists() and (out / "b.txt").read_text() == "old\n"
    finally:
        os.close(fd)
    assert finish_sets(out) == 1 and (out / "c.txt").read_text() == "new\n"


def test_a_fifo_or_a_link_named_as_a_set_journal_is_left_and_does_not_hang_finish_sets(tmp_path):
    """finish_sets opened each `.ranker-set.XXXXXXXX.json` read-write and read it: a FIFO with that name hung it
    for good (the read waits for a writer), and with it every set written into the folder (a day's run, the run
    index); a link was followed, and the journal it named was followed in this folder. Both are left; a killed
    writer's set beside them is finished. In a process of its own, with a timeout: the test cannot hang."""
    import json
    out = tmp_path / "out"
    _half_named_set(out, tmp_path)
    fifo, fifo_tmp = out / ".ranker-set.0000f1f0.json", out / ".ranker-set.0000f1f1.json.tmp"
    os.mkfifo(fifo)
    os.mkfifo(fifo_tmp)
    (tmp_path / "elsewhere.json").write_text(json.dumps({"format": 1, "rename": [], "remove": ["a.txt"], "old": []}))
    link = out / ".ranker-set.00001111.json"
    link.symlink_to(tmp_path / "elsewhere.json")
    done = python("import sys; from ranker.io import finish_sets; print(finish_sets(sys.argv[1]))", out)
    assert done.returncode == 0 and done.stdout == "1\n", done.stderr
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and stat.S_ISFIFO(os.lstat(fifo_tmp).st_mode) and link.is_symlink()
    assert {n: (out / n).read_text() for n in ("a.txt", "b.txt", "c.txt")} == dict.fromkeys(("a.txt", "b.txt",
                                                                                            "c.txt"), "new\n")


def test_a_manifest_under_another_s_write_lease_is_read_once_the_lease_is_let_go(tmp_path):
    """A file open elsewhere under a write lease (Samba's oplocks, an NFS server's delegations) refuses an open
    that does not wait (EAGAIN) while the lease holder is told to let go: read_regular took that as unreadable,
    and the day was left out of the index. It opens again until the lease is let go (here by this process's
    own SIGIO handler, as a holder does when told), and reads the file."""
    import fcntl
    import signal
    from ranker.io import read_regular
    f = tmp_path / "2026-01-02-run.json"
    f.write_text('{"status": "ok"}')
    fd = os.open(f, os.O_RDONLY)
    told = []

    def let_go(signum, frame):
        told.append(signum)
        fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_UNLCK)

    before = signal.signal(signal.SIGIO, let_go)
    try:
        try:
            fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_WRLCK)
        except OSError as e:                           # not the file's owner and no CAP_LEASE, a filesystem without
            pytest.skip(f"no write lease here: {e}")
        assert read_regular(f) == b'{"status": "ok"}' and told == [signal.SIGIO]
    finally:
        signal.signal(signal.SIGIO, before)
        os.close(fd)


def test_remove_leftovers_takes_only_the_named_files_temporaries(tmp_path):
    from ranker.io import remove_leftovers
    for name in (".day-run.json.0123abcd.tmp", ".day-run.json.0123abcd.old", ".other.json.0123abcd.tmp",
                 ".day-run.json.notmine.tmp", "day-run.json"):
        (tmp_path / name).write_text("x")
    assert remove_leftovers([tmp_path / "day-run.json"]) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == [".day-run.json.notmine.tmp", ".other.json.0123abcd.tmp",
                                                         "day-run.json"]


@contextmanager
def _a_dead_and_a_live_temporary_file(out: Path):
    """Beside `out`, a killed writer's temporary file and a live one's (held locked, as atomic_file holds its own,
    until the block ends): (dead, live)."""
    import fcntl
    dead, live = out.parent / f".{out.name}.0000dead.tmp", out.parent / f".{out.name}.0000beef.tmp"
    dead.write_text("a killed writer's")
    live.write_text("being written")
    fd = os.open(live, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield dead, live
    finally:
        os.close(fd)


def test_a_killed_writers_temporary_file_is_tidied_a_live_ones_is_not(tmp_path):
    from ranker.io import atomic_file
    out = tmp_path / "papers.jsonl"
    with _a_dead_and_a_live_temporary_file(out) as (dead, live):
        with atomic_file(out, tidy=True) as f:
            f.write("x\n")
        assert not dead.exists() and live.exists() and out.read_text() == "x\n"
    with atomic_file(out) as f:                          # without tidy, nothing else is looked at
        f.write("y\n")
    assert live.exists()


def test_a_fifo_named_as_a_temporary_file_is_left_and_does_not_hang_the_tidy(tmp_path):
    """The dead-only tidy opened each candidate read-only to lock it: a FIFO with a temporary file's name hung it
    for good (an open that waits for a writer), and with it the backfill holding its folder's lock, or the run of
    the day. In a process of its own, with a timeout: the test cannot hang."""
    fifo, dead = tmp_path / ".a.txt.0123abcd.tmp", tmp_path / ".a.txt.0000dead.tmp"
    os.mkfifo(fifo)
    dead.write_text("a killed writer's")
    done = python("import sys; from ranker.io import remove_leftovers; "
                  "print(remove_leftovers(sys.argv[1:], dead_only=True))", tmp_path / "a.txt", timeout=30)
    assert done.returncode == 0 and done.stdout == "1\n", done.stderr
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and not dead.exists()


def test_a_killed_writers_temporary_file_is_tidied_where_locks_are_fcntl_locks(tmp_path, monkeypatch):
    """On NFS flock is emulated with fcntl locks, and an exclusive one needs a descriptor open for writing: the
    tidy's read-only descriptor had every lock refused, and no killed writer's file was ever removed there. Here
    flock is lockf, as that emulation makes it (a live writer's lock held by another process)."""
    import fcntl
    import sys

    from ranker.io import remove_leftovers
    real = fcntl.lockf
    monkeypatch.setattr(fcntl, "flock", lambda fd, op: real(fd, op))
    dead, live = tmp_path / ".a.txt.0000dead.tmp", tmp_path / ".a.txt.0000beef.tmp"
    dead.write_text("a killed writer's")
    live.write_text("being written")
    holder = subprocess.Popen([sys.executable, "-c", "import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_WRONLY); "
                               "fcntl.lockf(fd, fcntl.LOCK_EX); print('held', flush=True); sys.stdin.read()",
                               str(live)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        assert remove_leftovers([tmp_path / "a.txt"], dead_only=True) == 1
        assert not dead.exists() and live.exists()
    finally:
        holder.communicate("", timeout=30)


def test_a_killed_writers_read_only_temporary_file_is_tidied(tmp_path):
    """A killed rewrite of a read-only file leaves a read-only temporary file (it takes the file's mode): it cannot
    be opened for writing, and is locked through a read-only descriptor instead. Root opens it anyway: the tidy
    runs as another user then (its effective id, for that call)."""
    from ranker.io import remove_leftovers
    there = Path(tempfile.mkdtemp())                 # not under tmp_path: another user must reach it
    try:
        there.chmod(0o777)
        dead = there / ".a.txt.0000dead.tmp"
        dead.write_text("a killed writer's")
        dead.chmod(0o444)
        if os.geteuid() != 0:
            assert remove_leftovers([there / "a.txt"], dead_only=True) == 1
        else:
            os.chown(dead, 65534, 65534)
            os.seteuid(65534)
            try:
                with pytest.raises(PermissionError):
                    os.open(dead, os.O_WRONLY)
                assert remove_leftovers([there / "a.txt"], dead_only=True) == 1
            finally:
                os.seteuid(0)
        assert not dead.exists()
    finally:
        shutil.rmtree(there)


@pytest.mark.parametrize("writer", ["labels export", "calibrate --out", "papers"])
def test_labels_calibrations_and_papers_tidy_a_killed_writers_temporary_file(tmp_path, writer):
    """`labels export FILE`, `calibrate --out` (Calibration.save) and write_papers left the whole temporary file
    of a writer killed before its rename beside the file for good, as `fetch`, `score` and `prefilter` no longer
    do: the next write removes it (atomic_write's tidy), and a live writer's, held locked, stays."""
    from ranker.labels import export_labels
    from ranker.prefilter.calibrate import Calibration
    from ranker.records import Paper
    from ranker.sources import write_papers
    from ranker.store import Store
    out = tmp_path / "out.jsonl"
    with _a_dead_and_a_live_temporary_file(out) as (dead, live):
        if writer == "labels export":
            with Store(tmp_path / "r.sqlite3") as s:
                s.set_label("2505.00001", 1, "2025-05-15")
                assert export_labels(s, out) == 1
        elif writer == "calibrate --out":
            Calibration(embedder="toy", dim=1).save(out)
        else:
            assert write_papers([Paper(id="2505.00001", title="T", abstract="A")], out) == 1
    assert out.is_file() and not dead.exists() and live.exists()


def _tidied_before_the_lock(monkeypatch, tidy) -> list:
    """Make `tidy(tmp)` run (another command's tidy) in atomic_file's first moment, between creating its temporary
    file `tmp` and locking it; the list returned collects each temporary file atomic_file locks."""
    import ranker.io as io
    real, locked = io._held_while_written, []

    def held_while_written(fd):
        tmp = Path(os.readlink(f"/proc/self/fd/{fd}"))
        if not locked:
            tidy(tmp)
        locked.append(tmp)
        return real(fd)

    monkeypatch.setattr(io, "_held_while_written", held_while_written)
    return locked


def test_a_file_tidied_by_another_command_before_its_writer_locked_it_is_written_under_a_new_name(tmp_path,
                                                                                                  monkeypatch):
    """Another command's tidy (`ranker fetch`, `score` or `prefilter` into the same --out, a run of the day) that
    came between atomic_file creating its temporary file and locking it found it unlocked, a killed writer's, and
    removed it: the writer wrote on into a file without a name, and its rename failed (`cannot write`)."""
    out = tmp_path / "o.jsonl"

    def other_process_tidies(tmp):
        done = python("import sys; from ranker.io import remove_leftovers; "
                      "assert remove_leftovers(sys.argv[1:], dead_only=True) == 1", out, timeout=None)
        assert done.returncode == 0, done.stderr

    locked = _tidied_before_the_lock(monkeypatch, other_process_tidies)
    atomic_write(out, ["a\n", "b\n"])
    assert out.read_text() == "a\nb\n" and len(locked) == 2 and not list(tmp_path.glob(".*.tmp"))


def test_a_file_held_by_another_commands_tidy_as_its_writer_locks_it_is_locked_all_the_same(tmp_path, monkeypatch):
    """A tidy holding the new temporary file (locked a moment, to remove it) just as its writer locks it: the
    writer took the lock's refusal for a file system without locks and wrote on unlocked, a live writer's file
    that any later tidy removes from under it."""
    import fcntl
    out = tmp_path / "o.jsonl"
    tidier = []

    def tidy_in_a_moment(tmp):
        fd = os.open(tmp, os.O_RDONLY)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)           # as remove_leftovers holds it, to remove it

        def remove():
            time.sleep(0.3)
            os.unlink(tmp)
            os.close(fd)
        tidier.append(threading.Thread(target=remove))
        tidier[0].start()

    from ranker.io import atomic_file
    _tidied_before_the_lock(monkeypatch, tidy_in_a_moment)
    with atomic_file(out) as f:
        f.write("x\n")
        tidier[0].join()                                          # that tidy done: the file written now is ...
        (tmp,) = tmp_path.glob(".o.jsonl.*.tmp")                  # ... still there, and locked
        fd = os.open(tmp, os.O_RDONLY)
        try:
            with pytest.raises(BlockingIOError):                 # held: no tidy takes it now
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)
    assert out.read_text() == "x\n" and not list(tmp_path.glob(".*.tmp"))


def test_a_sets_files_waiting_for_their_names_are_not_tidied_by_another_process(tmp_path):
    """write_together's temporary files, whole and waiting for their names (before_names: a run's record in a
    database, waiting up to 30 s on its lock), were unlocked: another process tidying the folder (a run of the day
    from another home, or another machine on a shared database) took them, and the set failed to take its names."""

    from ranker.io import write_together
    out = tmp_path / "out"
    out.mkdir()
    files = {out / "a.txt": ["new a\n"], out / "b.txt": ["new b\n"]}
    (out / "a.txt").write_text("old a\n")
    tidied = []

    def other_process_tidies() -> None:
        assert len(list(out.glob(".*.tmp"))) == 2            # both written, waiting for their names
        done = python("import sys; from ranker.io import remove_leftovers; "
                      "print(remove_leftovers(sys.argv[1:], dead_only=True))", *files, timeout=None)
        assert done.returncode == 0, done.stderr
        tidied.append(int(done.stdout))

    write_together(files, before_names=other_process_tidies)
    assert tidied == [0]
    assert {p.name: p.read_text() for p in out.iterdir()} == {"a.txt": "new a\n", "b.txt": "new b\n"}


_PUT_BACK_THEN_KILLED = r"""
import os, shutil, sys
from pathlib import Path
import ranker.io as io
out = Path(sys.argv[1])
real = io._put_back
def put_back_then_killed(done, kept):
    real(done, kept)
    os._exit(9)                                  # killed before its journal went (kill -9: nothing runs after)
io._put_back = put_back_then_killed
def b_becomes_a_folder():                        # b's rename fails: a folder took its name meanwhile
    (out / "b.txt").unlink()
    (out / "b.txt").mkdir()
    (out / "b.txt" / "x").write_text("x")
io.write_together({out / n: [f"new {n}\n"] for n in ("a.txt", "b.txt", "c.txt")}, before_names=b_becomes_a_folder)
"""


def test_a_set_killed_while_its_failed_renames_are_put_back_is_not_finished_over_the_old_files(tmp_path):
    """A rename failing midway puts the old files back; a process killed meanwhile (kill -9) left the set's
    journal, and the next set written into the folder finished the failed one over the old files: a mix."""

    from ranker.io import finish_sets
    out = tmp_path / "out"
    out.mkdir()
    for n in ("a.txt", "b.txt", "c.txt"):
        (out / n).write_text(f"old {n}\n")
    p = python(_PUT_BACK_THEN_KILLED, out, timeout=None)
    assert p.returncode == 9, p.stderr
    assert (out / "a.txt").read_text() == "old a.txt\n"          # put back before it was killed
    finish_sets(out)
    assert (out / "a.txt").read_text() == "old a.txt\n" and (out / "c.txt").read_text() == "old c.txt\n"
    assert not list(out.glob(".ranker-set.*"))


_KILLED_BEFORE_ITS_JOURNAL = r"""
import os, sys
from pathlib import Path
import ranker.io as io
out = Path(sys.argv[1])
def killed(*args):
    os._exit(9)                                  # kill -9 as the journal is begun: nothing finishes this set
io._begin_journals = killed
io.write_together({out / n: [f"new {n}\n"] for n in ("a.txt", "b.txt")})
"""


def test_a_set_killed_before_its_journal_leaves_no_second_name_of_an_old_file(tmp_path):
    """The old files' second names (hard links, `.NAME.XXXXXXXX.old`) were made before the journal that names
    them: a set killed between the two left links that nothing removes (no journal to follow, no lock to tell a
    live set's from a dead one's), a copy of every old file of the set, hidden, for good."""

    from ranker.io import finish_sets, remove_leftovers
    out = tmp_path / "out"
    out.mkdir()
    for n in ("a.txt", "b.txt"):
        (out / n).write_text(f"old {n}\n")
    p = python(_KILLED_BEFORE_ITS_JOURNAL, out, timeout=None)
    assert p.returncode == 9, p.stderr
    finish_sets(out)                                 # what the next set written there does first
    remove_leftovers([out / "a.txt", out / "b.txt"], dead_only=True)
    assert {x.name: x.read_text() for x in out.iterdir()} == {"a.txt": "old a.txt\n", "b.txt": "old b.txt\n"}
