"""A python-grader worker. `sandbox.py` starts it inside bubblewrap; it is never imported.

By the time this file runs, the kernel already confines it (see sandbox.py): its own mount,
pid, network, IPC and UTS namespaces, an unprivileged uid with no capabilities and
no_new_privs, a seccomp filter, a read-only view of the interpreter and nothing else but a
small private tmpfs as working directory. What this script adds are the rlimits that must be
set after the interpreter has started (RLIMIT_NPROC=0 would stop the exec that starts it)
and the protocol. Nothing here is a security check: user code can undo anything done at the
Python level, and that is fine, because nothing at the Python level is relied upon.

Protocol: 4-byte big-endian length + UTF-8 JSON, both ways, on private copies of fds 0/1
(fds 0-2 then point at /dev/null so stray prints and `os.write(1, ...)` cannot corrupt it).
  parent -> {"id", "hash", "source"?, "sample", "item"}
  worker -> {"id", "ok": true, "reward", "logs", "truncated", "cpu_s", "leftovers"}
          | {"id", "ok": false, "kind": "runtime" | "compile", "error", "logs", ...}
The first frame the worker sends is {"ready": true, "isolation": {...}}.
"""

from __future__ import annotations

import io
import json
import linecache
import math
import numbers
import os
import resource
import signal
import struct
import sys
import traceback

_HEADER = struct.Struct(">I")
MAX_REQUEST_BYTES = 64 * 1024 * 1024


def main() -> None:
    config = json.loads(sys.argv[1])
    # Take the protocol pipes private before any user code can print.
    proto_in, proto_out = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)

    # Preload what graders commonly use (cheap, and it keeps the first grade fast).
    for name in ("math", "json", "re", "statistics", "collections", "itertools", "functools",
                 "string", "difflib"):
        __import__(name)

    _set_limits(config)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # oversize writes raise instead of killing us
    isolation = {
        "uid": os.getuid(),
        "gid": os.getgid(),
        "pid": os.getpid(),  # 2 in a private pid namespace (bubblewrap's init is 1)
        "no_new_privs": _status_field("NoNewPrivs") == "1",
        "seccomp": _status_field("Seccomp") == "2",
        "capabilities": _status_field("CapEff"),
    }
    _serve(proto_in, proto_out, config, isolation)


def _status_field(name: str) -> str:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(name + ":"):
                return line.split(":", 1)[1].strip()
    return ""


def _set_limits(config: dict) -> None:
    mb = 1024 * 1024
    limits = {
        resource.RLIMIT_AS: config["memory_mb"] * mb,
        resource.RLIMIT_CPU: config["cpu_lifetime_s"],
        resource.RLIMIT_FSIZE: config["file_size_mb"] * mb,
        resource.RLIMIT_CORE: 0,
        resource.RLIMIT_NPROC: 0,  # no processes, no threads (the uid is not root)
        resource.RLIMIT_NOFILE: config["max_open_files"],
    }
    for kind, value in limits.items():
        hard = value + 5 if kind == resource.RLIMIT_CPU else value
        resource.setrlimit(kind, (value, hard))  # failing here must stop the worker


def _leftovers() -> dict[str, int]:
    """Threads of this process and other processes in the namespace, after a call."""
    threads = len(os.listdir("/proc/self/task"))
    me = os.getpid()
    others = [p for p in os.listdir("/proc") if p.isdigit() and int(p) not in (1, me)]
    return {"threads": threads - 1, "processes": len(others)}


class CappedWriter(io.TextIOBase):
    """stdout/stderr replacement that keeps the first `cap` characters and counts the rest."""

    def __init__(self, cap: int):
        self.cap = cap
        self.parts: list[str] = []
        self.size = 0
        self.dropped = 0

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError("write() argument must be str")
        room = self.cap - self.size
        if room > 0:
            self.parts.append(text[:room])
            self.size += min(room, len(text))
        self.dropped += max(0, len(text) - max(room, 0))
        return len(text)

    def value(self) -> str:
        text = "".join(self.parts)
        return text + (f"\n... [{self.dropped} more characters cut]" if self.dropped else "")


def _read_exact(fd: int, size: int) -> bytes:
    chunks, remaining = [], size
    while remaining:
        chunk = os.read(fd, min(remaining, 1 << 20))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _send(fd: int, message: dict) -> None:
    data = json.dumps(message).encode()
    view = memoryview(_HEADER.pack(len(data)) + data)
    while view:
        view = view[os.write(fd, view) :]


def _format_error(exc: BaseException, limit: int = 4000) -> str:
    """The traceback as the grader's author should see it: their frames only, tail kept."""
    summary = traceback.TracebackException.from_exception(exc)
    summary.stack = traceback.StackSummary.from_list(
        [f for f in summary.stack if f.filename != __file__]
    )
    return "".join(summary.format())[-limit:]


def _serve(proto_in: int, proto_out: int, config: dict, isolation: dict) -> None:
    functions: dict[str, object] = {}
    cap = int(config["output_cap"])
    real_stdout, real_stderr = sys.stdout, sys.stderr
    _send(proto_out, {"ready": True, "isolation": isolation})
    while True:
        try:
            (size,) = _HEADER.unpack(_read_exact(proto_in, _HEADER.size))
            if size > MAX_REQUEST_BYTES:
                return
            request = json.loads(_read_exact(proto_in, size))
        except EOFError:
            return
        reply: dict = {"id": request.get("id")}
        writer = CappedWriter(cap)
        sys.stdout = sys.stderr = writer
        try:
            grade = functions.get(request["hash"])
            if grade is None:
                grade = _compile(request.get("source"), reply)
                if grade is not None:
                    functions[request["hash"]] = grade
            if grade is not None:
                _call(grade, request, reply)
        except BaseException as exc:  # SystemExit, KeyboardInterrupt from user code too
            reply.update(ok=False, kind="runtime", error=_format_error(exc))
        finally:
            sys.stdout, sys.stderr = real_stdout, real_stderr
        reply["logs"] = writer.value()
        reply["truncated"] = writer.dropped > 0
        reply["output_chars"] = writer.size + writer.dropped
        usage = resource.getrusage(resource.RUSAGE_SELF)
        reply["cpu_s"] = usage.ru_utime + usage.ru_stime
        reply["leftovers"] = _leftovers()
        try:
            _send(proto_out, reply)
        except (TypeError, ValueError):
            _send(proto_out, {"id": reply["id"], "ok": False, "kind": "runtime",
                              "error": "reply not serialisable", "leftovers": reply["leftovers"]})


def _compile(source: object, reply: dict) -> object:
    if not isinstance(source, str):
        reply.update(ok=False, kind="server", error="worker has no source for this grader")
        return None
    namespace: dict = {"__name__": "grader", "__builtins__": __builtins__}
    filename = "<grader>"
    # Register the source so tracebacks can quote the user's own lines.
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    try:
        exec(compile(source, filename, "exec"), namespace)
    except BaseException as exc:
        reply.update(ok=False, kind="compile", error=_format_error(exc))
        return None
    grade = namespace.get("grade")
    if not callable(grade):
        reply.update(
            ok=False, kind="compile", error="the source must define a function grade(sample, item)"
        )
        return None
    return grade


def _call(grade: object, request: dict, reply: dict) -> None:
    value = grade(request["sample"], request["item"])  # type: ignore[operator]
    # Refuse anything that is not plainly a number; never try to serialise what came back.
    if isinstance(value, str | bytes | complex) or not (
        isinstance(value, numbers.Real) or hasattr(type(value), "__float__")
    ):
        reply.update(
            ok=False,
            kind="runtime",
            error=f"grade() must return a number, got {type(value).__name__}",
        )
        return
    number = float(value)
    if not math.isfinite(number):
        reply.update(
            ok=False, kind="runtime", error=f"grade() returned {number}, not a finite number"
        )
        return
    reply.update(ok=True, reward=number)


if __name__ == "__main__":
    main()
