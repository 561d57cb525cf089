"""The escape routes found against the old audit-hook sandbox, one test each.

Each route was a working escape before python graders ran under bubblewrap: code reached
host files, the parent's environment, root, or another project's data. Every test plants
something on the host that a successful escape would read or change and checks that the
grader saw none of it. The boundary is the kernel's (namespaces, an unprivileged uid,
seccomp, rlimits), so the tests try the attacks themselves, not a Python-level check.
"""

from __future__ import annotations

import os
import socket
import stat
import threading
import time
from pathlib import Path

import pytest

from trainer.grading import SandboxLimits, SandboxPool, run_grader
from trainer.grading import isolation as iso

SECRET = "host-secret-7f3a9c"


def python(source: str) -> dict:
    return {"type": "python", "name": "code", "source": source}


def grade(pool: SandboxPool, source: str, item: dict | None = None, scope: str | None = None):
    return run_grader(python(source), "answer", item or {}, sandbox=pool, scope=scope)


@pytest.fixture
def host_secrets(tmp_path: Path) -> dict[str, str]:
    """A world-readable secret (mount isolation must hide it), a root-only one (uid must),
    and a SQLite database like the studio's own."""
    import sqlite3

    tmp_path.chmod(0o755)
    public = tmp_path / "public.txt"
    public.write_text(SECRET)
    public.chmod(0o644)
    private = tmp_path / "private.txt"
    private.write_text(SECRET)
    private.chmod(0o600)
    database = tmp_path / "db.sqlite3"
    with sqlite3.connect(database) as db:
        db.execute("create table django_session (session_key text)")
        db.execute("insert into django_session values (?)", (SECRET,))
    database.chmod(0o644)
    return {"dir": str(tmp_path), "public": str(public), "private": str(private),
            "database": str(database)}


def leaked(result) -> bool:
    """Did anything the grader produced carry the secret, or did it claim success?"""
    text = f"{result.reward} {result.logs} {result.errors}"
    return SECRET in text or result.reward == 1.0


def test_traceback_frame_route(pool: SandboxPool, host_secrets: dict) -> None:
    """Old escape: catch the hook's PermissionError, walk the traceback to the hook's frame,
    empty its globals and closure cells. There is no hook to disarm; the file is not there."""
    source = f"""
import sys
def grade(sample, item):
    try:
        open('/etc/shadow')
    except Exception as e:
        tb = e.__traceback__
        while tb is not None:
            frame = tb.tb_frame
            for name in list(frame.f_globals):
                if name.startswith('_BLOCKED'):
                    frame.f_globals[name] = ()
            tb = tb.tb_next
    for path in ({host_secrets['public']!r}, {host_secrets['private']!r}):
        try:
            print(open(path).read())
            return 1
        except OSError as exc:
            print(type(exc).__name__)
    return 0
"""
    result = grade(pool, source)
    assert not leaked(result), result
    assert result.logs.count("FileNotFoundError") == 2


def test_dir_fd_route(pool: SandboxPool, host_secrets: dict) -> None:
    """Old escape: os.open(relative, dir_fd=fd) bypassed a path check made against the cwd."""
    relative = host_secrets["public"].lstrip("/")
    target = Path(host_secrets["dir"]) / "created-by-grader"
    source = f"""
import os
def grade(sample, item):
    root = os.open('/', os.O_RDONLY)
    try:
        fd = os.open({relative!r}, os.O_RDONLY, dir_fd=root)
        print(os.read(fd, 100).decode())
        return 1
    except OSError as exc:
        print('read', type(exc).__name__)
    try:
        os.open({str(target).lstrip('/')!r}, os.O_CREAT | os.O_WRONLY, dir_fd=root)
        return 1
    except OSError as exc:
        print('create', type(exc).__name__)
    return 0
"""
    result = grade(pool, source)
    assert not leaked(result), result
    assert not target.exists()


def test_symlink_chain_in_the_workdir(pool: SandboxPool, host_secrets: dict) -> None:
    source = f"""
import os
def grade(sample, item):
    os.symlink({host_secrets['public']!r}, 'a')
    os.symlink('a', 'b')
    os.symlink('/etc/passwd', 'c')
    print(open('c').read())
    try:
        print(open('b').read())
        return 1
    except OSError as exc:
        print(type(exc).__name__)
        return 0
"""
    result = grade(pool, source)
    assert not leaked(result), result
    assert "root:" not in result.logs and "FileNotFoundError" in result.logs


def test_fchdir_route(pool: SandboxPool, host_secrets: dict) -> None:
    source = f"""
import os
def grade(sample, item):
    os.fchdir(os.open('/', os.O_RDONLY))
    print(sorted(os.listdir('.')))
    try:
        print(open({host_secrets['public'].lstrip('/')!r}).read())
        return 1
    except OSError as exc:
        print(type(exc).__name__)
        return 0
"""
    result = grade(pool, source)
    assert not leaked(result), result
    for host_only in ("home", "var", "srv", "boot"):
        assert f"'{host_only}'" not in result.logs


def test_parent_environment_is_unreachable(pool: SandboxPool, monkeypatch) -> None:
    """Old escape: read /proc/<ppid>/environ for SECRET_KEY and DATABASE_URL."""
    monkeypatch.setenv("SECRET_KEY", SECRET)
    source = f"""
import os
def grade(sample, item):
    found = 0
    for pid in {{os.getppid(), 1, {os.getpid()}, {os.getppid()}}}:
        try:
            data = open(f'/proc/{{pid}}/environ', 'rb').read()
            found += {SECRET!r}.encode() in data
            print(pid, 'read', len(data))
        except OSError as exc:
            print(pid, type(exc).__name__)
    print(sorted(p for p in os.listdir('/proc') if p.isdigit()))
    return float(found > 0)
"""
    result = grade(pool, source)
    assert result.reward == 0.0 and SECRET not in result.logs, result
    assert "['1', '2']" in result.logs  # a private pid namespace: bwrap's init and us


def test_database_file_by_absolute_path(pool: SandboxPool, host_secrets: dict) -> None:
    source = f"""
import sqlite3
def grade(sample, item):
    try:
        db = sqlite3.connect('file:{host_secrets['database']}?mode=ro', uri=True)
        print(db.execute('select * from django_session').fetchall())
        return 1
    except sqlite3.Error as exc:
        print(type(exc).__name__, exc)
        return 0
"""
    result = grade(pool, source)
    assert not leaked(result), result


def test_writing_outside_the_workdir(pool: SandboxPool, host_secrets: dict) -> None:
    target = Path(host_secrets["dir"]) / "planted"
    site = Path(os.__file__).parent / "planted_by_grader.py"
    source = f"""
def grade(sample, item):
    wrote = 0
    for path in ({str(target)!r}, {str(site)!r}, '/usr/lib/planted', '/planted', '/etc/planted'):
        try:
            open(path, 'w').write('x')
            wrote += 1
            print(path, 'WRITTEN')
        except OSError as exc:
            print(path, type(exc).__name__)
    return float(wrote > 0)
"""
    result = grade(pool, source)
    assert result.reward == 0.0 and "WRITTEN" not in result.logs, result
    assert not target.exists() and not site.exists()


def test_workdir_is_a_small_private_tmpfs(pool: SandboxPool) -> None:
    """Scratch space is bounded (64 MB by default): filling it fails instead of the host."""
    source = """
def grade(sample, item):
    block = b'x' * (8 * 1024 * 1024)
    written = 0
    try:
        for i in range(20):
            with open(f'/tmp/f{i}', 'wb') as handle:
                handle.write(block)
            written += 8
    except OSError as exc:
        print(type(exc).__name__, exc.errno)
    print('written', written)
    return 0
"""
    result = grade(pool, source)
    written = int(result.logs.split("written ")[1].split()[0])
    assert 0 < written < 160 and "OSError 28" in result.logs, result  # ENOSPC


@pytest.mark.parametrize("call", ["unshare", "setns"])
def test_setns_and_unshare_are_refused(pool: SandboxPool, call: str) -> None:
    """Old escape: setns into the parent's network namespace. Seccomp says no."""
    source = f"""
import ctypes, os
def grade(sample, item):
    libc = ctypes.CDLL(None, use_errno=True)
    if {call!r} == 'unshare':
        rc = libc.unshare(0x10000000 | 0x40000000)  # CLONE_NEWUSER | CLONE_NEWNET
    else:
        rc = libc.setns(os.open('/proc/self/ns/net', os.O_RDONLY), 0)
    print(rc, ctypes.get_errno())
    return float(rc == 0)
"""
    result = grade(pool, source)
    assert result.reward == 0.0 and result.logs.strip() == "-1 1", result  # EPERM


def test_socket_to_the_host_loopback(pool: SandboxPool) -> None:
    """The web server listens on 127.0.0.1; the sandbox's network has nothing in it."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(1.5)
    port = server.getsockname()[1]
    source = f"""
import socket
def grade(sample, item):
    try:
        socket.create_connection(('127.0.0.1', {port}), timeout=1).sendall(b'GET / HTTP/1.0\\r\\n\\r\\n')
        return 1
    except OSError as exc:
        print('connect', type(exc).__name__)
    for family in (socket.AF_INET, socket.AF_INET6, socket.AF_NETLINK):
        try:
            socket.socket(family)
            return 1
        except OSError as exc:
            print(family, type(exc).__name__)
    s = socket.socket(socket.AF_UNIX)
    print('unix ok')
    return 0
"""
    result = grade(pool, source)
    connected = True
    try:
        server.accept()
    except TimeoutError:
        connected = False
    finally:
        server.close()
    assert result.reward == 0.0 and "unix ok" in result.logs, result
    assert not connected, f"the grader reached 127.0.0.1:{port}"


def test_ptrace_and_process_memory_are_refused(pool: SandboxPool) -> None:
    source = """
import ctypes
def grade(sample, item):
    libc = ctypes.CDLL(None, use_errno=True)
    rc = libc.ptrace(16, 1, 0, 0)  # PTRACE_ATTACH to bwrap's init
    print(rc, ctypes.get_errno())
    return float(rc == 0)
"""
    result = grade(pool, source)
    assert result.reward == 0.0 and result.logs.strip() == "-1 1", result


def _sandbox_cpu_seconds() -> float:
    """CPU time of every process running as the sandbox uid on this machine."""
    uid = iso.SANDBOX_UID if os.geteuid() == 0 else os.geteuid()
    total = 0.0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.stat(f"/proc/{pid}").st_uid != uid:
                continue
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            continue
    return total


@pytest.mark.skipif(os.geteuid() != 0, reason="measures processes of the dedicated uid")
def test_a_thread_left_spinning(pool: SandboxPool) -> None:
    """Old escape: a thread started by grade() kept the worker at 100% CPU afterwards."""
    source = """
import threading, _thread
def spin():
    while True:
        pass
def grade(sample, item):
    started = 0
    for start in (lambda: threading.Thread(target=spin, daemon=True).start(),
                  lambda: _thread.start_new_thread(spin, ())):
        try:
            start()
            started += 1
        except RuntimeError as exc:
            print(exc)
    return float(started > 0)
"""
    result = grade(pool, source)
    assert result.reward == 0.0 and result.logs.count("can't start new thread") == 2, result
    before = _sandbox_cpu_seconds()
    time.sleep(1.0)
    assert _sandbox_cpu_seconds() - before < 0.3


def test_module_state_never_crosses_scopes(pool: SandboxPool) -> None:
    """Old leak: identical source from two projects shared one warm worker and its globals."""
    source = """
SEEN = []
def grade(sample, item):
    if 'secret' in item:
        SEEN.append(item['secret'])
    print(SEEN)
    return len(SEEN) / 10
"""
    first = grade(pool, source, {"secret": SECRET}, scope="project:1")
    again = grade(pool, source, {"secret": SECRET}, scope="project:1")
    other = grade(pool, source, {}, scope="project:2")
    assert (first.reward, again.reward) == (0.1, 0.2)  # warm reuse within one scope
    assert other.reward == 0.0 and SECRET not in other.logs, other


def test_missing_bubblewrap_refuses_python_graders(monkeypatch) -> None:
    """No silent fallback: without bwrap, python graders fail with what to install."""
    monkeypatch.setenv("PATH", "/nonexistent")
    iso._tools.cache_clear()
    try:
        assert iso.sandbox_status()["available"] is False
        with SandboxPool(1, SandboxLimits(timeout_s=5)) as sandbox:
            result = grade(sandbox, "def grade(sample, item):\n    return 1\n")
        assert result.reward == 0.0 and result.errors["python_grader_server_error"] is True
        assert "apt-get install bubblewrap" in result.error_message
        assert sandbox.spawned == 0
    finally:
        monkeypatch.undo()
        iso._tools.cache_clear()
    assert iso.sandbox_status()["available"] is True


def test_interpreter_files_stay_readable_only(pool: SandboxPool) -> None:
    """The virtualenv and the interpreter are mounted read-only."""
    source = f"""
import os
def grade(sample, item):
    print(os.access({os.__file__!r}, os.W_OK), os.statvfs({os.path.dirname(os.__file__)!r}).f_flag & 1)
    return 0
"""
    result = grade(pool, source)
    assert result.logs.strip() == f"False {os.ST_RDONLY & 1}" or result.logs.strip() == "False 1"
    assert stat.S_IMODE(os.stat(os.__file__).st_mode)  # untouched on the host


def test_concurrent_scopes_do_not_block_each_other(pool: SandboxPool) -> None:
    results: dict[str, float] = {}

    def work(scope: str) -> None:
        results[scope] = grade(pool, "def grade(sample, item):\n    return 0.5\n", scope=scope).reward

    threads = [threading.Thread(target=work, args=(f"project:{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert results == {f"project:{i}": 0.5 for i in range(4)}


@pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists("/usr/bin/python3"),
                    reason="needs root to start a non-root studio, and /usr/bin/python3")
def test_a_studio_that_is_not_root_confines_graders_too() -> None:
    """Workers running as an ordinary user: bwrap's user namespace, same boundary."""
    import shutil as sh
    import subprocess
    import tempfile

    import pyseccomp

    from trainer.grading import sandbox

    tmp_path = Path(tempfile.mkdtemp(prefix="nonroot-studio-", dir="/tmp"))  # pytest's is 0700
    try:
        _run_as_ordinary_user(tmp_path, sandbox, pyseccomp, sh, subprocess)
    finally:
        sh.rmtree(tmp_path, ignore_errors=True)


def _run_as_ordinary_user(tmp_path: Path, sandbox, pyseccomp, sh, subprocess) -> None:
    package = tmp_path / "sbx"
    package.mkdir()
    for module in (sandbox.__file__, iso.__file__, sandbox._WORKER_SCRIPT):
        sh.copy(module, package)
    (package / "__init__.py").write_text("")
    sh.copy(pyseccomp.__file__, tmp_path)
    script = tmp_path / "run.py"
    script.write_text(
        "import json, sys\n"
        f"sys.path.insert(0, {str(tmp_path)!r})\n"
        "from sbx.sandbox import SandboxPool, SandboxLimits\n"
        "source = ('import ctypes, os\\ndef grade(s, i):\\n'\n"
        "          '    return ctypes.CDLL(None).unshare(0x10000000)\\n')\n"
        "def host_uids(pid):\n"
        "    kids = open(f'/proc/{pid}/task/{pid}/children').read().split()\n"
        "    own = [l.split()[1] for l in open(f'/proc/{pid}/status') if l.startswith('Uid:')]\n"
        "    return own + [u for k in kids for u in host_uids(int(k))]\n"
        "with SandboxPool(1, SandboxLimits(timeout_s=10), python='/usr/bin/python3') as pool:\n"
        "    reply = pool.run(source, {}, {})\n"
        "    print(json.dumps({'reward': reply.reward, 'error': reply.error,\n"
        "                      'uids': host_uids(pool.worker_pids()[0]), 'isolation': pool.isolation()}))\n"
    )
    for path in [tmp_path, *tmp_path.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    done = subprocess.run(["/usr/bin/python3", str(script)], user=65532, group=65532, extra_groups=[],
                          capture_output=True, text=True, cwd="/", timeout=60, env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    out = __import__("json").loads(done.stdout.strip().splitlines()[-1])
    if out["error"] and "namespace" in out["error"]:
        pytest.skip(f"unprivileged user namespaces are off here: {out['error']}")
    assert out["reward"] == -1.0, out  # unshare(CLONE_NEWUSER) refused: --disable-userns + seccomp
    assert set(out["uids"]) == {"65532"}, out  # on the host every process is the studio's uid
    isolation = out["isolation"]
    assert isolation["uid"] == 65534 and isolation["pid"] == 2 and isolation["seccomp"] is True
    assert isolation["capabilities"] == "0000000000000000"
