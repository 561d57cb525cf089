"""The python sandbox against hostile code: each attack gets a flag and 0, the pool survives.

These run real worker processes. After every attack the module's pool must still grade a
normal function correctly (`assert_pool_healthy`).
"""

from __future__ import annotations

import os
import shutil
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from trainer.grading import (
    GradeResult,
    GraderValidationError,
    SandboxLimits,
    SandboxPool,
    grade_batch,
    run_grader,
    validate_grader,
)

GOOD = "def grade(sample, item):\n    return len(sample['output_text']) / 10\n"


def python(source: str) -> dict:
    return {"type": "python", "name": "code", "source": source}


def run(
    pool: SandboxPool, source: str, sample: str = "hello", item: dict | None = None
) -> GradeResult:
    return run_grader(python(source), sample, item or {"answer": "hello"}, sandbox=pool)


def assert_pool_healthy(pool: SandboxPool) -> None:
    result = run(pool, GOOD, "0123456789")
    assert result.reward == 1.0 and result.errors == {}, result.error_message


def runtime_error(result: GradeResult, fragment: str) -> None:
    assert result.reward == 0.0
    assert result.errors.get("python_grader_runtime_error") is True, result.errors
    assert fragment in str(result.errors["python_grader_runtime_error_details"])


def test_grades_with_sample_item_and_output_json(pool: SandboxPool) -> None:
    source = "def grade(sample, item):\n    return float(sample['output_json']['n'] == item['n'])\n"
    assert run(pool, source, '{"n": 3}', {"n": 3}).reward == 1.0
    assert run(pool, "def grade(sample, item):\n    return True\n").reward == 1.0


def test_workers_are_reused(pool: SandboxPool) -> None:
    before = pool.spawned
    for _ in range(20):
        assert run(pool, GOOD, "01234").reward == 0.5
    assert pool.spawned - before <= pool.size


def test_raising_code(pool: SandboxPool) -> None:
    result = run(
        pool, "def grade(sample, item):\n    raise ValueError('bad item ' + item['answer'])\n"
    )
    runtime_error(result, "ValueError: bad item hello")
    assert 'File "<grader>", line 2' in result.errors["python_grader_runtime_error_details"]
    assert_pool_healthy(pool)


def test_infinite_loop_times_out_and_worker_is_replaced(pool: SandboxPool) -> None:
    result = run(pool, "def grade(sample, item):\n    while True:\n        pass\n")
    assert result.reward == 0.0 and result.errors["python_grader_server_error"] is True
    assert result.errors["python_grader_server_error_type"] == "timeout"
    assert_pool_healthy(pool)


@pytest.mark.parametrize(
    "source",
    [
        "import os\ndef grade(sample, item):\n    return float(os.fork() >= 0)\n",
        "import subprocess\ndef grade(sample, item):\n    return float(subprocess.run(['true']).returncode == 0)\n",
        "import os\ndef grade(sample, item):\n    return float(os.system('true') == 0)\n",
        "import os\ndef grade(sample, item):\n    os.execv('/bin/sh', ['sh', '-c', 'exit 0'])\n",
        "import ctypes\ndef grade(sample, item):\n    return float(ctypes.CDLL(None).system(b'true') == 0)\n",
        "import multiprocessing\ndef grade(sample, item):\n    p = multiprocessing.Process(target=print)\n    p.start()\n    return 1\n",
    ],
    ids=["os.fork", "subprocess", "os.system", "execv", "libc-system", "multiprocessing"],
)
def test_running_a_command_fails(pool: SandboxPool, source: str) -> None:
    """No processes (RLIMIT_NPROC=0 for an unprivileged uid) and no programs to run."""
    result = run(pool, source)
    assert result.reward == 0.0, result
    assert_pool_healthy(pool)


def test_allocating_10_gb_fails_cleanly(pool: SandboxPool) -> None:
    runtime_error(
        run(pool, "def grade(sample, item):\n    block = bytearray(10 * 1024**3)\n    return 1\n"),
        "MemoryError",
    )
    assert_pool_healthy(pool)


def test_sockets_are_refused(pool: SandboxPool) -> None:
    source = "import socket\ndef grade(sample, item):\n    socket.socket().connect(('127.0.0.1', 9))\n    return 1\n"
    runtime_error(run(pool, source), "PermissionError")
    assert_pool_healthy(pool)


def test_host_files_are_not_in_the_sandbox(pool: SandboxPool) -> None:
    """settings.py, the project, the test process: not mounted at all (not merely refused)."""
    for path in [
        os.path.abspath("webapp/settings.py"),
        os.path.abspath("pyproject.toml"),
        f"/proc/{os.getpid()}/environ",
        "/etc/shadow",
        "/root/.bashrc",
    ]:
        source = f"def grade(sample, item):\n    return len(open({path!r}).read())\n"
        result = run(pool, source)
        assert result.reward == 0.0
        assert "FileNotFoundError" in result.errors["python_grader_runtime_error_details"], path
    assert_pool_healthy(pool)


def test_etc_passwd_is_the_sandboxs_own(pool: SandboxPool) -> None:
    source = "def grade(sample, item):\n    print(open('/etc/passwd').read())\n    return 1\n"
    result = run(pool, source)
    assert result.reward == 1.0 and "root:" not in result.logs and "nobody" in result.logs


def test_project_modules_cannot_be_imported(pool: SandboxPool) -> None:
    project = os.path.abspath(".")
    source = f"import sys\nsys.path.insert(0, {project!r})\ndef grade(sample, item):\n    import webapp.settings\n    return 1\n"
    runtime_error(run(pool, source), "ModuleNotFoundError")


def test_environment_is_scrubbed(pool: SandboxPool) -> None:
    assert os.environ[
        "DJANGO_SECRET_KEY"
    ]  # set by the conftest fixture, so there is something to leak
    result = run(pool, "import os\ndef grade(sample, item):\n    print(sorted(os.environ))\n    return len([k for k in os.environ if 'SECRET' in k or 'DJANGO' in k])\n")
    assert result.ok and result.reward == 0.0
    assert set(eval(result.logs)) <= {"PATH", "HOME", "TMPDIR", "LANG", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "PWD"}


def test_workdir_is_writable_scratch(pool: SandboxPool) -> None:
    source = "def grade(sample, item):\n    open('scratch.txt', 'w').write('abc')\n    return len(open('scratch.txt').read()) / 10\n"
    assert run(pool, source).reward == 0.3


def test_printing_megabytes_is_flagged_and_logs_are_capped(pool: SandboxPool) -> None:
    result = run(pool, "def grade(sample, item):\n    print('x' * 5_000_000)\n    return 1\n")
    assert result.reward == 0.0 and result.errors.get("truncated_observation_error") is True
    assert result.logs is not None and len(result.logs) < 20_000
    chatty = run(
        pool, "def grade(sample, item):\n    print('checking', item['answer'])\n    return 1\n"
    )
    assert chatty.reward == 1.0 and chatty.logs == "checking hello\n"
    assert_pool_healthy(pool)


@pytest.mark.parametrize(
    ("returned", "fragment"),
    [
        ("'1.0'", "got str"),
        ("None", "got NoneType"),
        ("[1] * 10**6", "got list"),
        ("float('nan')", "not a finite"),
        ("10**400", "int too large"),
    ],
)
def test_non_numbers_are_refused(pool: SandboxPool, returned: str, fragment: str) -> None:
    runtime_error(run(pool, f"def grade(sample, item):\n    return {returned}\n"), fragment)


def test_source_too_large_is_refused_before_running() -> None:
    source = GOOD + "#" * (256 * 1024)
    with pytest.raises(GraderValidationError) as info:
        validate_grader(python(source))
    assert "limit is 256 kB" in info.value.message
    result = run_grader(python(source), "x", {})
    assert result.reward == 0.0 and result.errors["python_grader_server_error"] is True


def test_syntax_error_and_missing_grade() -> None:
    with pytest.raises(GraderValidationError) as info:
        validate_grader(python("def grade(sample, item)\n    return 1\n"))
    assert info.value.param == "source" and "line 1" in info.value.message
    result = run_grader(python("def grade(sample, item)\n    return 1\n"), "x", {})
    assert result.reward == 0.0 and result.errors["python_grader_runtime_error"] is True
    with pytest.raises(GraderValidationError):
        validate_grader(python("def score(sample, item):\n    return 1\n"))


def test_top_level_error_is_a_runtime_error(pool: SandboxPool) -> None:
    runtime_error(
        run(pool, "import no_such_module\ndef grade(sample, item):\n    return 1\n"),
        "ModuleNotFoundError",
    )
    assert_pool_healthy(pool)


def test_thread_safe_batch_and_parallel_callers(pool: SandboxPool) -> None:
    samples = ["x" * i for i in range(1, 11)]
    results = grade_batch(python(GOOD), samples, [{}] * len(samples), sandbox=pool)
    assert [r.reward for r in results] == [len(s) / 10 for s in samples]
    other = "def grade(sample, item):\n    return 0.25\n"
    with ThreadPoolExecutor(4) as executor:
        rewards = list(
            executor.map(lambda i: run(pool, GOOD if i % 2 else other, "0" * 5).reward, range(16))
        )
    assert rewards == [0.25 if i % 2 == 0 else 0.5 for i in range(16)]


def test_shutdown_kills_workers_and_refuses_work() -> None:
    sandbox = SandboxPool(1, SandboxLimits(timeout_s=5))
    assert run(sandbox, GOOD).reward == 0.5
    [pid] = sandbox.worker_pids()
    inside = _descendants(pid)
    assert inside, "bwrap should hold the worker's processes"
    sandbox.shutdown()
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in [pid, *inside]) and time.monotonic() < deadline:
        time.sleep(0.05)  # the namespace's processes die with bwrap (--die-with-parent)
    assert not any(_alive(p) for p in [pid, *inside])
    result = run(sandbox, GOOD)
    assert result.errors["python_grader_server_error"] is True
    assert threading.active_count() < 50


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        for task in os.listdir(f"/proc/{current}/task"):
            with open(f"/proc/{current}/task/{task}/children") as handle:
                kids = [int(k) for k in handle.read().split()]
            found += kids
            todo += kids
    return found


@pytest.mark.skipif(not shutil.which("python3", path="/usr/bin"), reason="needs /usr/bin/python3")
def test_a_system_interpreter_works_too() -> None:
    """The sandbox binds whatever interpreter it is given (here Debian's, under /usr)."""
    with SandboxPool(1, SandboxLimits(timeout_s=5), python="/usr/bin/python3") as sandbox:
        source = "import os, sys\ndef grade(sample, item):\n    print(os.getuid())\n    return 1\n"
        result = run(sandbox, source)
        assert result.reward == 1.0 and result.logs.strip() == ("65533" if os.geteuid() == 0 else "65534"), result


def test_interpreter_is_the_current_one_by_default(pool: SandboxPool) -> None:
    assert pool.python == sys.executable
    assert_pool_healthy(pool)
    isolation = pool.isolation()
    assert isolation["uid"] not in (0, None) and isolation["gid"] != 0
    assert isolation["pid"] == 2  # a private pid namespace
    assert isolation["no_new_privs"] is True and isolation["seccomp"] is True
    assert isolation["capabilities"] == "0000000000000000"


def test_worker_that_died_while_idle_is_replaced(pool: SandboxPool) -> None:
    assert_pool_healthy(pool)
    for pid in pool.worker_pids():
        os.kill(pid, 9)  # our own worker: simulates the OOM killer
    assert_pool_healthy(pool)
