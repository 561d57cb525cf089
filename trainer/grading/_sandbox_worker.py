"""A python-grader worker process. Run only by `sandbox.py`, as `python -I -B <this file> <config>`.

It imports nothing from the project (only the standard library), so it sees none of the
app's code or settings. Setup order matters and is commented below: each step needs the
privileges that a later step gives up.

Protocol: 4-byte big-endian length + UTF-8 JSON, both ways, on private copies of fds 0/1
(fds 0-2 then point at /dev/null so stray prints and `os.write(1, ...)` cannot corrupt it).
  parent -> {"id", "hash", "source"?, "sample", "item"}
  worker -> {"id", "ok": true, "reward", "logs", "truncated", "cpu_s"}
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
import stat
import struct
import sys
import traceback

CLONE_NEWNET = 0x40000000
_HEADER = struct.Struct(">I")
MAX_REQUEST_BYTES = 64 * 1024 * 1024


def main() -> None:
    config = json.loads(sys.argv[1])
    # 1. Take the protocol pipes private before any user code can print.
    proto_in, proto_out = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)
    isolation: dict[str, object] = {}

    # 2. Cut the network while we may still (needs CAP_SYS_ADMIN, i.e. root).
    isolation["network_namespace"] = (
        _unshare_network() if config.get("isolate_network", True) else False
    )

    # 3. Preload what we patch below and what graders commonly use, while we can read it.
    import _posixsubprocess  # noqa: F401 - loaded now so its fork_exec can be disabled

    for name in (
        "math",
        "json",
        "re",
        "statistics",
        "collections",
        "itertools",
        "functools",
        "string",
        "difflib",
    ):
        __import__(name)

    # 4. Work in the throwaway directory; become an unprivileged user if the interpreter
    #    stays readable for it (it is not when Python lives under a private home).
    workdir = config["workdir"]
    os.chdir(workdir)
    isolation["user"] = _drop_privileges(config, workdir)

    # 5. Resource limits (after the drop: RLIMIT_NPROC=0 binds only non-root users).
    _set_limits(config)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # oversize writes raise instead of killing us

    # 6. Last: the audit hook. From here on only the rules in `_guard` apply.
    _disable_process_spawning()
    _install_guard(workdir, _readable_roots(config), (proto_in, proto_out))
    isolation["audit_hook"] = True
    os.environ.clear()

    _serve(proto_in, proto_out, config, isolation)


def _unshare_network() -> bool:
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.unshare(CLONE_NEWNET) == 0
    except Exception:
        return False


def _accessible_to_others(path: str) -> bool:
    """Whether a user with no special rights can reach `path` (o+x on each parent, o+r on it)."""
    path = os.path.realpath(path)
    try:
        if not os.stat(path).st_mode & stat.S_IROTH:
            return False
        parent = os.path.dirname(path)
        while True:
            if not os.stat(parent).st_mode & stat.S_IXOTH:
                return False
            if parent == os.path.dirname(parent):
                return True
            parent = os.path.dirname(parent)
    except OSError:
        return False


def _drop_privileges(config: dict, workdir: str) -> str:
    if os.getuid() != 0 or not config.get("drop_privileges", True):
        return (
            f"uid {os.getuid()} (not root, nothing to drop)"
            if os.getuid()
            else "root (drop disabled)"
        )
    needed = [sys.executable, os.path.dirname(os.__file__), *_site_dirs()]
    blocked = [p for p in needed if not _accessible_to_others(p)]
    if blocked:
        return f"root (kept: {blocked[0]} is not readable by other users)"
    uid, gid = int(config.get("uid", 65534)), int(config.get("gid", 65534))
    os.chown(workdir, uid, gid)
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)
    return f"uid {uid}"


def _site_dirs() -> list[str]:
    return [
        p for p in sys.path if p.endswith(("site-packages", "dist-packages")) and os.path.isdir(p)
    ]


def _set_limits(config: dict) -> None:
    mb = 1024 * 1024
    limits = {
        resource.RLIMIT_AS: config["memory_mb"] * mb,
        resource.RLIMIT_CPU: config["cpu_lifetime_s"],
        resource.RLIMIT_FSIZE: config["file_size_mb"] * mb,
        resource.RLIMIT_CORE: 0,
        resource.RLIMIT_NPROC: 0,
        resource.RLIMIT_NOFILE: config["max_open_files"],
    }
    for kind, value in limits.items():
        try:
            hard = value + 5 if kind == resource.RLIMIT_CPU else value
            resource.setrlimit(kind, (value, hard))
        except (ValueError, OSError):
            pass


def _disable_process_spawning() -> None:
    """`_posixsubprocess.fork_exec` raises no audit event, so disarm it directly."""
    import _posixsubprocess

    def fork_exec(*args: object, **kwargs: object) -> None:
        raise PermissionError("starting processes is not allowed in a python grader")

    _posixsubprocess.fork_exec = fork_exec


def _readable_roots(config: dict) -> tuple[str, ...]:
    roots = {os.path.dirname(os.__file__), *_site_dirs(), *config.get("extra_read_roots", [])}
    return tuple(sorted({os.path.realpath(r) + os.sep for r in roots}))


_BLOCKED_EVENTS = (
    "socket.",
    "subprocess.",
    "os.system",
    "os.exec",
    "os.fork",
    "os.forkpty",
    "os.posix_spawn",
    "os.spawn",
    "os.kill",
    "os.killpg",
    "signal.pthread_kill",
    "ctypes.",
    "sys.addaudithook",
    "resource.setrlimit",
    "resource.prlimit",
    "gc.get_objects",
    "gc.get_referrers",
    "pty.",
    "os.chroot",
    "os.setns",
    "webbrowser.",
    "urllib.",
    "http.",
    "ftplib.",
    "smtplib.",
    "telnetlib.",
)
_WRITE_EVENTS = (
    "os.remove",
    "os.rename",
    "os.rmdir",
    "os.mkdir",
    "os.truncate",
    "os.chmod",
    "os.chown",
    "os.utime",
    "os.link",
    "os.symlink",
    "os.chdir",
    "shutil.",
)
_LIST_EVENTS = ("os.listdir", "os.scandir", "glob.glob", "os.walk")
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


def _install_guard(workdir: str, read_roots: tuple[str, ...], private_fds: tuple[int, ...]) -> None:
    """The audit hook: no processes, sockets, ctypes; files only in the workdir (read-only stdlib)."""
    workroot = os.path.realpath(workdir) + os.sep
    realpath, fsdecode, startswith = os.path.realpath, os.fsdecode, str.startswith

    def allowed(path: object, write: bool) -> bool:
        if isinstance(path, int):
            return path not in private_fds  # tempfile reopens its own fds; ours stay private
        try:
            full = realpath(fsdecode(path)) + os.sep
        except (TypeError, ValueError):
            return False
        if startswith(full, workroot):
            return True
        return not write and startswith(full, read_roots)

    def guard(event: str, args: tuple) -> None:
        if event == "open":
            path, mode, flags = (tuple(args) + (None, None))[:3]
            write = bool(mode and any(c in str(mode) for c in "wax+")) or bool(
                (flags or 0) & _WRITE_FLAGS
            )
            if not allowed(path, write):
                raise PermissionError(f"python graders may not open {path!r}")
        elif event.startswith(_BLOCKED_EVENTS):
            raise PermissionError(f"python graders may not use {event}")
        elif event.startswith(_WRITE_EVENTS):
            for path in args[:2]:
                if isinstance(path, str | bytes | os.PathLike) and not allowed(path, True):
                    raise PermissionError(f"python graders may not change {path!r}")
        elif event.startswith(_LIST_EVENTS):
            path = args[0] if args else "."
            if isinstance(path, str | bytes | os.PathLike) and not allowed(path, False):
                raise PermissionError(f"python graders may not list {path!r}")
        elif event == "sqlite3.connect":
            database = args[0] if args else ":memory:"
            if database not in (":memory:", b":memory:", "") and not allowed(database, True):
                raise PermissionError(f"python graders may not open {database!r}")

    sys.addaudithook(guard)


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
        try:
            _send(proto_out, reply)
        except (TypeError, ValueError):
            _send(
                proto_out,
                {
                    "id": reply["id"],
                    "ok": False,
                    "kind": "runtime",
                    "error": "reply not serialisable",
                },
            )


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
