"""Runs untrusted `grade(sample, item)` code in pooled, reused, kernel-confined workers.

The boundary is the operating system's, built by bubblewrap (see `isolation.py`): private
mount/pid/network namespaces, an unprivileged uid without capabilities, seccomp, rlimits.
This module manages the processes: start, reuse, time out, kill.

- Workers are bound to one scope (a project, a training run) and one grader source: a
  worker only ever runs the code it first compiled, for the scope it was started for, so
  state one call leaves behind (module globals, files in its tmpfs) never reaches another
  project or another grader version.
- A worker whose call leaves threads or other processes behind is killed, not reused.
- A call that overruns its wall-clock budget gets its worker killed (bubblewrap's
  --die-with-parent takes the whole namespace down with it) and replaced.
A pool of warm workers per source makes a trivial grade a pipe round-trip (~0.1 ms)
instead of a sandbox start (~50-100 ms).
"""

from __future__ import annotations

import atexit
import fcntl
import hashlib
import json
import os
import secrets
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .isolation import SandboxUnavailable, build_command, scrubbed_env

MAX_SOURCE_BYTES = 256 * 1024
MAX_REPLY_BYTES = 1024 * 1024
_HEADER = struct.Struct(">I")
_WORKER_SCRIPT = Path(__file__).with_name("_sandbox_worker.py")


@dataclass(frozen=True)
class SandboxLimits:
    """Per-pool limits. OpenAI allows 2 minutes and 2 GB; we default tighter for training."""

    timeout_s: float = 10.0  # wall clock for one grade (first call includes compiling)
    memory_mb: int = 512  # RLIMIT_AS
    cpu_lifetime_s: int = 600  # RLIMIT_CPU over a worker's life; retired at half of it
    file_size_mb: int = 64  # RLIMIT_FSIZE
    workdir_mb: int = 64  # size of the private tmpfs (working directory and /tmp)
    max_open_files: int = 64  # RLIMIT_NOFILE
    output_cap: int = 16 * 1024  # characters of stdout/stderr kept per grade (the rest is cut)
    max_output_chars: int = 1024 * 1024  # printing more than this fails the grade
    max_tasks_per_worker: int = 10_000  # recycle to bound slow leaks
    startup_timeout_s: float = 30.0


@dataclass
class SandboxReply:
    """Outcome of one call. `kind` on failure: runtime, compile, timeout, server, too_large,
    output (printed more than `max_output_chars`), unavailable (no sandbox on this machine)."""

    ok: bool
    reward: float | None = None
    kind: str | None = None
    error: str | None = None
    logs: str = ""
    truncated: bool = False


class SandboxError(Exception):
    """The worker broke the protocol, died, or did not answer in time."""

    def __init__(self, kind: str, message: str):
        self.kind = kind
        super().__init__(message)


@dataclass(eq=False)
class _Worker:
    process: subprocess.Popen[bytes]
    isolation: dict[str, Any]
    key: str | None = None
    tasks: int = 0
    cpu_s: float = 0.0
    busy: bool = False
    dead: bool = False
    started: float = field(default_factory=time.monotonic)


def source_hash(source: str, scope: str | None = None) -> str:
    """The key a worker is bound to: the grader's source within one scope."""
    digest = hashlib.sha256((scope or "").encode("utf-8", "surrogatepass") + b"\0")
    digest.update(source.encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


class SandboxPool:
    """A thread-safe pool of sandbox workers. Use `run(source, sample, item, scope=...)`."""

    def __init__(
        self,
        size: int | None = None,
        limits: SandboxLimits | None = None,
        *,
        python: str | None = None,
    ):
        # One worker per core, capped: each may use `memory_mb`, and grading is rarely the
        # only thing a server does.
        self.size = max(1, size or min(os.cpu_count() or 2, 8))
        self.limits = limits or SandboxLimits()
        self.python = python or sys.executable
        self._workers: list[_Worker] = []
        self._spawning = 0
        self._closed = False
        self._cond = threading.Condition()
        self._last_isolation: dict[str, Any] = {}
        self.spawned = 0  # workers started over the pool's life (tests and benchmarks read it)

    # -- public -------------------------------------------------------------------------

    def run(
        self,
        source: str,
        sample: dict[str, Any],
        item: dict[str, Any],
        *,
        scope: str | None = None,
        timeout_s: float | None = None,
    ) -> SandboxReply:
        """Run `grade(sample, item)` from `source` in a worker of `scope`; never raises for
        user faults. Callers pass one scope per project (or training run): workers never
        serve two scopes."""
        if len(source.encode("utf-8", "surrogatepass")) > MAX_SOURCE_BYTES:
            return SandboxReply(
                False, kind="too_large", error=f"source is over {MAX_SOURCE_BYTES // 1024} kB"
            )
        key = source_hash(source, scope)
        try:
            request = json.dumps({"hash": key, "sample": sample, "item": item})
        except (TypeError, ValueError) as exc:
            return SandboxReply(False, kind="server", error=f"sample or item is not JSON: {exc}")
        for attempt in range(2):
            worker = self._acquire(key)
            if isinstance(worker, SandboxReply):
                return worker
            warm = worker.tasks > 0
            try:
                reply = self._call(worker, source, request, timeout_s or self.limits.timeout_s)
            finally:
                self._release(worker)
            # A warm worker that vanished (killed while idle) says nothing about this code:
            # try once more on a fresh one. A fresh worker dying is this code's doing.
            if reply.kind != "server" or not warm or attempt:
                return reply
        return reply

    def shutdown(self) -> None:
        """Kill every worker. The pool refuses work afterwards."""
        with self._cond:
            self._closed = True
            workers, self._workers = self._workers, []
            self._cond.notify_all()
        for worker in workers:
            self._kill(worker)

    def isolation(self) -> dict[str, Any]:
        """What the last started worker saw of its confinement (uid, seccomp, pid, ...)."""
        with self._cond:
            return dict(self._last_isolation)

    def worker_pids(self) -> list[int]:
        """The bubblewrap processes (each holds one worker's namespaces)."""
        with self._cond:
            return [w.process.pid for w in self._workers]

    def __enter__(self) -> SandboxPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    # -- worker lifecycle -----------------------------------------------------------------

    def _acquire(self, key: str) -> _Worker | SandboxReply:
        """A worker bound to `key`, binding a free one or replacing an idle stranger."""
        with self._cond:
            while True:
                if self._closed:
                    return SandboxReply(False, kind="server", error="the sandbox pool is shut down")
                for gone in [
                    w for w in self._workers if not w.busy and w.process.poll() is not None
                ]:
                    self._workers.remove(gone)  # died while idle (e.g. the OOM killer): replace
                    threading.Thread(target=self._kill, args=(gone,), daemon=True).start()
                idle = [w for w in self._workers if not w.busy]
                mine = next((w for w in idle if w.key == key), None)
                unbound = next((w for w in idle if w.key is None), None)
                chosen = mine or unbound
                if chosen is not None:
                    chosen.busy, chosen.key = True, key
                    return chosen
                if len(self._workers) + self._spawning < self.size:
                    self._spawning += 1
                    break
                has_own = any(w.key == key for w in self._workers)
                stranger = next((w for w in idle if w.key != key), None)
                if stranger is not None and not has_own:
                    self._workers.remove(stranger)
                    self._spawning += 1
                    threading.Thread(target=self._kill, args=(stranger,), daemon=True).start()
                    break
                self._cond.wait()
        try:
            worker = self._spawn()
        except (SandboxError, SandboxUnavailable) as exc:
            with self._cond:
                self._spawning -= 1
                self._cond.notify_all()
            kind = "unavailable" if isinstance(exc, SandboxUnavailable) else "server"
            return SandboxReply(False, kind=kind, error=str(exc))
        with self._cond:
            self._spawning -= 1
            worker.busy, worker.key = True, key
            if self._closed:
                self._kill(worker)
                return SandboxReply(False, kind="server", error="the sandbox pool is shut down")
            self._workers.append(worker)
            self._last_isolation = dict(worker.isolation)
        return worker

    def _release(self, worker: _Worker) -> None:
        limits = self.limits
        retire = (
            worker.dead
            or worker.tasks >= limits.max_tasks_per_worker
            or worker.cpu_s > limits.cpu_lifetime_s / 2
        )
        with self._cond:
            worker.busy = False
            if retire and worker in self._workers:
                self._workers.remove(worker)
            self._cond.notify_all()
        if retire:
            self._kill(worker)

    def _spawn(self) -> _Worker:
        limits = self.limits
        config = {
            "memory_mb": limits.memory_mb,
            "cpu_lifetime_s": limits.cpu_lifetime_s,
            "file_size_mb": limits.file_size_mb,
            "max_open_files": limits.max_open_files,
            "output_cap": limits.output_cap,
        }
        launch = build_command(self.python, _WORKER_SCRIPT.read_bytes(), [json.dumps(config)],
                               workdir_mb=limits.workdir_mb)
        try:
            process = subprocess.Popen(
                launch.argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,  # bwrap's own complaints, read if the start fails
                env=scrubbed_env(),
                pass_fds=launch.pass_fds,
                bufsize=0,
                start_new_session=True,  # a Ctrl-C in the terminal is for us, not them
            )
        except OSError as exc:
            raise SandboxError("server", f"could not start a sandbox worker: {exc}") from None
        finally:
            launch.close()
        worker = _Worker(process, {})
        self.spawned += 1
        try:
            hello = self._read(worker, time.monotonic() + limits.startup_timeout_s)
        except SandboxError as exc:
            detail = _stderr_tail(process)
            self._kill(worker)
            raise SandboxError(
                "server", f"sandbox worker failed to start: {exc}{': ' + detail if detail else ''}"
            ) from None
        worker.isolation = hello.get("isolation", {})
        if not worker.isolation.get("uid") or not worker.isolation.get("seccomp"):
            self._kill(worker)  # never run user code in a worker that is not confined
            raise SandboxError("server", f"sandbox worker is not confined: {worker.isolation}")
        return worker

    def _kill(self, worker: _Worker) -> None:
        worker.dead = True
        process = worker.process
        if process.poll() is None:
            try:
                process.kill()  # bwrap; --die-with-parent takes the namespace with it
            except OSError:
                pass
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        for stream in (process.stdin, process.stdout, process.stderr):
            try:
                if stream:
                    stream.close()
            except OSError:
                pass

    # -- one request ----------------------------------------------------------------------

    def _call(self, worker: _Worker, source: str, request: str, timeout_s: float) -> SandboxReply:
        nonce = secrets.token_hex(8)
        # Splice the id (and the source on first use) into the pre-serialised request.
        extra = f'"id": "{nonce}", '
        if worker.tasks == 0:
            extra += f'"source": {json.dumps(source)}, '
        payload = ("{" + extra + request[1:]).encode()
        deadline = time.monotonic() + timeout_s
        try:
            self._write(worker, payload)
            reply = self._read(worker, deadline)
        except SandboxError as exc:
            self._kill(worker)
            if exc.kind == "timeout":
                return SandboxReply(
                    False, kind="timeout", error=f"grade() did not finish within {timeout_s:g}s"
                )
            return SandboxReply(False, kind="server", error=str(exc))
        if reply.get("id") != nonce:
            self._kill(worker)
            return SandboxReply(False, kind="server", error="the worker answered out of turn")
        worker.tasks += 1
        worker.cpu_s = float(reply.get("cpu_s") or 0.0)
        leftovers = reply.get("leftovers") or {}
        if not isinstance(leftovers, dict) or any(leftovers.values()):
            worker.dead = True  # threads or processes outlived the call: never reuse
        logs = reply.get("logs") or ""
        printed = int(reply.get("output_chars") or 0)
        if printed > self.limits.max_output_chars:
            return SandboxReply(
                False,
                kind="output",
                logs=logs,
                truncated=True,
                error=f"grade() printed {printed:,} characters; the limit is {self.limits.max_output_chars:,}",
            )
        if reply.get("ok"):
            return SandboxReply(
                True,
                reward=float(reply["reward"]),
                logs=logs,
                truncated=bool(reply.get("truncated")),
            )
        if reply.get("kind") == "compile":
            worker.tasks = 0  # nothing is cached, so send the source again next time
        return SandboxReply(
            False,
            kind=str(reply.get("kind") or "runtime"),
            error=str(reply.get("error")),
            logs=logs,
            truncated=bool(reply.get("truncated")),
        )

    @staticmethod
    def _write(worker: _Worker, payload: bytes) -> None:
        stdin = worker.process.stdin
        assert stdin is not None
        try:
            stdin.write(_HEADER.pack(len(payload)) + payload)
        except (BrokenPipeError, OSError, ValueError) as exc:
            raise SandboxError(
                "server", f"the worker is gone ({_exit_reason(worker)}): {exc}"
            ) from None

    @staticmethod
    def _read(worker: _Worker, deadline: float) -> dict[str, Any]:
        stdout = worker.process.stdout
        assert stdout is not None
        fd = stdout.fileno()

        def read_exact(size: int) -> bytes:
            chunks, remaining = [], size
            while remaining:
                wait = deadline - time.monotonic()
                if wait <= 0 or not select.select([fd], [], [], wait)[0]:
                    raise SandboxError("timeout", "no answer in time")
                chunk = os.read(fd, min(remaining, 1 << 20))
                if not chunk:
                    raise SandboxError("server", f"the worker died ({_exit_reason(worker)})")
                chunks.append(chunk)
                remaining -= len(chunk)
            return b"".join(chunks)

        (size,) = _HEADER.unpack(read_exact(_HEADER.size))
        if size > MAX_REPLY_BYTES:
            raise SandboxError("server", f"the worker sent {size} bytes; refused")
        try:
            message = json.loads(read_exact(size))
        except ValueError:
            raise SandboxError("server", "the worker sent garbage") from None
        if not isinstance(message, dict):
            raise SandboxError("server", "the worker sent garbage")
        return message


def _stderr_tail(process: subprocess.Popen[bytes], limit: int = 2000) -> str:
    """What bwrap or the interpreter printed before dying (without ever blocking)."""
    stream = process.stderr
    if stream is None:
        return ""
    try:
        fcntl.fcntl(stream.fileno(), fcntl.F_SETFL, os.O_NONBLOCK)
        data = stream.read(limit) or b""
    except (OSError, ValueError):
        return ""
    return data.decode("utf-8", "replace").strip()


def _exit_reason(worker: _Worker) -> str:
    try:
        code = worker.process.wait(timeout=1)
    except subprocess.TimeoutExpired:
        return "still running"
    if code < 0:
        name = (
            signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
        )
        hint = {
            "SIGXCPU": ": CPU limit",
            "SIGKILL": ": killed (memory or CPU limit?)",
            "SIGSEGV": ": crashed",
        }
        return f"signal {name}{hint.get(name, '')}"
    return f"exit code {code}"


_default_pool: SandboxPool | None = None
_default_lock = threading.Lock()


def default_pool() -> SandboxPool:
    """The process-wide pool, created on first use and shut down at exit."""
    global _default_pool
    with _default_lock:
        if _default_pool is None or _default_pool._closed:
            _default_pool = SandboxPool()
            atexit.register(_default_pool.shutdown)
        return _default_pool


def set_default_pool(pool: SandboxPool | None) -> None:
    """Replace the process-wide pool (the old one is shut down)."""
    global _default_pool
    with _default_lock:
        old, _default_pool = _default_pool, pool
    if old is not None and old is not pool:
        old.shutdown()
