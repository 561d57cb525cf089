"""The kernel boundary around python graders: a bubblewrap command line, a seccomp filter.

Every python grader runs in a process that the kernel confines through bubblewrap
(`bwrap`, Debian package `bubblewrap`), a maintained tool made for exactly this:

- its own mount namespace holding only: read-only system libraries (/usr/lib, /usr/lib64),
  the read-only interpreter and the packages graders may import (the virtualenv), a tiny
  /etc (a passwd line for `nobody`), a private /proc, a minimal /dev, and a private
  size-limited tmpfs as working directory (/grader, also /tmp). No project source, no
  STUDIO_DATA_DIR, no /root, no /home, no shell or other programs;
- its own pid namespace (no other process's /proc), network namespace (no interface but an
  unconnected loopback), IPC, UTS and cgroup namespaces;
- an unprivileged uid/gid: when the studio runs as root, a dedicated uid
  (`STUDIO_SANDBOX_UID`, default 65533) set by util-linux `setpriv` after bwrap has built
  the namespaces, with every capability dropped (bounding set too) and no_new_privs; when
  the studio runs as an ordinary user, bwrap's user namespace maps that user to uid 65534
  inside and further user namespaces are disabled;
- a seccomp filter (compiled with libseccomp) that refuses the calls that reach the kernel's
  attack surface or leave the namespaces: ptrace, setns, unshare, mount, bpf, keyctl,
  perf_event_open, io_uring, userfaultfd, namespace flags on clone, sockets other than
  AF_UNIX, and more (`DENIED_SYSCALLS`);
- rlimits set by the worker before any user code runs (memory, CPU seconds, file size, open
  files, no processes or threads), and the parent's wall-clock kill (`sandbox.py`).

If bubblewrap (or setpriv, or libseccomp) is missing, `sandbox_status()` says what to install
and the pool refuses python graders: there is no weaker fallback.
"""

from __future__ import annotations

import errno
import functools
import json
import os
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

SANDBOX_UID = int(os.environ.get("STUDIO_SANDBOX_UID", "65533"))
SANDBOX_GID = int(os.environ.get("STUDIO_SANDBOX_GID", str(SANDBOX_UID)))
WORKDIR = "/grader"
WORKER_PATH = "/sandbox/worker.py"
INSTALL_HINT = (
    "python graders run only inside bubblewrap: install it with "
    "`apt-get install bubblewrap` (`make run` and `make test` do this)"
)

# Refused with EPERM. Unknown names (older libseccomp) are skipped, see `_seccomp_filter`.
DENIED_SYSCALLS = (
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd",
    "setns", "unshare", "mount", "umount2", "pivot_root", "chroot", "mount_setattr",
    "fsopen", "fsmount", "fsconfig", "fspick", "move_mount", "open_tree",
    "bpf", "keyctl", "add_key", "request_key", "perf_event_open", "userfaultfd",
    "io_uring_setup", "io_uring_enter", "io_uring_register",
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
    "open_by_handle_at", "name_to_handle_at", "reboot", "swapon", "swapoff", "syslog",
    "acct", "quotactl", "iopl", "ioperm", "uselib", "lookup_dcookie", "vhangup",
    "settimeofday", "clock_settime", "clock_adjtime", "adjtimex",
    "sethostname", "setdomainname",
)
_CLONE_NAMESPACE_FLAGS = (
    0x00020000,  # CLONE_NEWNS
    0x00000080,  # CLONE_NEWTIME
    0x02000000,  # CLONE_NEWCGROUP
    0x04000000,  # CLONE_NEWUTS
    0x08000000,  # CLONE_NEWIPC
    0x10000000,  # CLONE_NEWUSER
    0x20000000,  # CLONE_NEWPID
    0x40000000,  # CLONE_NEWNET
)


class SandboxUnavailable(Exception):
    """The machine cannot confine python graders; the message says what to install."""


@dataclass(frozen=True)
class Layout:
    """Where an interpreter's files live: what the sandbox must show, read-only."""

    executable: str  # the path we run (may be a venv symlink)
    binds: tuple[str, ...]  # directories or files to bind at the same path


@functools.lru_cache(maxsize=8)
def interpreter_layout(python: str) -> Layout:
    """Ask the interpreter where its standard library, packages and binary are."""
    probe = (
        "import json, os, sys, sysconfig\n"
        "paths = sysconfig.get_paths()\n"
        "print(json.dumps({'real': os.path.realpath(sys.executable), 'prefix': sys.prefix,\n"
        "  'base': sys.base_prefix, 'libdir': sysconfig.get_config_var('LIBDIR') or '',\n"
        "  'dirs': [paths[k] for k in ('stdlib', 'platstdlib', 'purelib', 'platlib')]}))\n"
    )
    try:
        out = subprocess.run([python, "-I", "-c", probe], capture_output=True, text=True,
                             timeout=30, env={"PATH": "/usr/bin:/bin"}, check=True).stdout
        info = json.loads(out)
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        raise SandboxUnavailable(f"cannot run the grader interpreter {python}: {exc}") from None
    system = ("/usr/lib", "/usr/lib64", "/lib", "/lib64")
    binds: list[str] = []

    def add(path: str) -> None:
        path = os.path.realpath(path)
        if path and os.path.exists(path) and not path.startswith(system):
            binds.append(path)

    add(info["real"])
    for prefix in {info["base"], info["prefix"]}:
        real = os.path.realpath(prefix)
        if real in ("/usr", "/usr/local", "/"):
            continue  # a system prefix: bind only its Python parts, never its bin/
        add(real)
    for path in (*info["dirs"], info["libdir"]):
        add(path)
    binds.sort(key=len)
    kept = [b for i, b in enumerate(binds) if not any(b.startswith(p + "/") for p in binds[:i])]
    # Run a venv's own bin/python (Python finds pyvenv.cfg beside it); any other symlink
    # (/usr/bin/python3 -> python3.11) by its target, which is what the sandbox holds.
    inside = any(python == b or python.startswith(b + "/") for b in kept)
    return Layout(executable=python if inside else info["real"], binds=tuple(dict.fromkeys(kept)))


def running_as_root() -> bool:
    return os.geteuid() == 0


@functools.lru_cache(maxsize=1)
def _tools() -> dict[str, str]:
    bwrap = shutil.which("bwrap")
    if not bwrap:
        raise SandboxUnavailable(f"bubblewrap (bwrap) is not installed; {INSTALL_HINT}")
    tools = {"bwrap": bwrap}
    if running_as_root():
        setpriv = shutil.which("setpriv") or ("/usr/bin/setpriv" if os.path.exists("/usr/bin/setpriv") else None)
        if not setpriv:
            raise SandboxUnavailable("setpriv (Debian package util-linux) is not installed; it "
                                     "drops python graders to an unprivileged uid")
        tools["setpriv"] = setpriv
    return tools


@functools.lru_cache(maxsize=1)
def _seccomp_filter() -> bytes:
    """The compiled BPF program bwrap loads with --seccomp (libseccomp does the compiling)."""
    try:
        import pyseccomp as seccomp
    except (ImportError, OSError) as exc:  # OSError: libseccomp.so.2 missing
        raise SandboxUnavailable(f"libseccomp is not available ({exc}); install the Debian "
                                 "package libseccomp2 and the Python package pyseccomp") from None
    deny = seccomp.ERRNO(errno.EPERM)
    rules = seccomp.SyscallFilter(seccomp.ALLOW)
    for name in DENIED_SYSCALLS:
        try:
            rules.add_rule(deny, name)
        except (RuntimeError, ValueError, OSError):
            continue  # a call this kernel/libseccomp does not know cannot be made either
    for flag in _CLONE_NAMESPACE_FLAGS:
        rules.add_rule(deny, "clone", seccomp.Arg(0, seccomp.MASKED_EQ, flag, flag))
    # clone3 passes its flags in memory that seccomp cannot read: make libc fall back to clone.
    rules.add_rule(seccomp.ERRNO(errno.ENOSYS), "clone3")
    rules.add_rule(seccomp.ERRNO(errno.EACCES), "socket",
                   seccomp.Arg(0, seccomp.NE, socket.AF_UNIX))
    with tempfile.TemporaryFile() as handle:
        rules.export_bpf(handle)
        handle.seek(0)
        return handle.read()


def sandbox_status() -> dict:
    """Whether python graders can run here, and how they are confined (for the System page)."""
    try:
        tools = _tools()
        _seccomp_filter()
    except SandboxUnavailable as exc:
        return {"available": False, "message": str(exc)}
    version = subprocess.run([tools["bwrap"], "--version"], capture_output=True, text=True).stdout
    if running_as_root():
        user = f"dedicated uid {SANDBOX_UID} / gid {SANDBOX_GID} (set by setpriv), no capabilities"
    else:
        user = (f"the studio's own uid {os.geteuid()}, seen as 65534 inside a user namespace "
                "(run the workers as root to use a dedicated uid)")
    return {"available": True, "message": "ready", "tool": version.strip(), "user": user}


@dataclass
class Launch:
    """A ready-to-run command and the file descriptors it reads its setup from."""

    argv: list[str]
    pass_fds: tuple[int, ...]

    def close(self) -> None:
        for fd in self.pass_fds:
            try:
                os.close(fd)
            except OSError:
                pass


def _data_fd(data: bytes) -> int:
    """A pipe's read end already holding `data` (bwrap reads setup files from fds)."""
    read, write = os.pipe()
    try:
        if len(data) > 60_000:  # over a pipe's buffer: a temp file instead
            handle = tempfile.TemporaryFile()
            handle.write(data)
            handle.seek(0)
            os.close(read)
            read = os.dup(handle.fileno())
            handle.close()
        else:
            os.write(write, data)
    finally:
        os.close(write)
    return read


def _parents(path: str) -> list[str]:
    """bwrap makes missing parent directories 0700; declare them 0755 so the uid can walk."""
    parts = Path(path).parts[1:-1]
    args: list[str] = []
    for i in range(len(parts)):
        args += ["--perms", "0755", "--dir", "/" + "/".join(parts[: i + 1])]
    return args


def build_command(python: str, worker_source: bytes, worker_args: list[str], *,
                  workdir_mb: int) -> Launch:
    """The bwrap command that starts `python -I -B <worker> <args>` fully confined."""
    tools = _tools()
    seccomp_bpf = _seccomp_filter()
    layout = interpreter_layout(python)
    fds: list[int] = []

    def fd_for(data: bytes) -> str:
        fds.append(_data_fd(data))
        return str(fds[-1])

    argv = [tools["bwrap"], "--die-with-parent", "--new-session", "--hostname", "grader"]
    if running_as_root():
        # No user namespace: bwrap builds the others as root, then setpriv drops to the
        # dedicated uid (a user namespace would map the sandbox's uid back to root).
        argv += ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts",
                 "--unshare-cgroup-try", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID",
                 "--cap-add", "CAP_SETPCAP"]
        uid, gid = SANDBOX_UID, SANDBOX_GID
    else:
        argv += ["--unshare-all", "--unshare-user", "--disable-userns", "--uid", "65534",
                 "--gid", "65534"]
        uid, gid = 65534, 65534
    for top in ("/usr", "/etc", "/sandbox"):
        argv += ["--perms", "0755", "--dir", top]
    for lib in ("/usr/lib", "/usr/lib64", "/lib", "/lib64"):
        if os.path.islink(lib):
            argv += ["--symlink", os.readlink(lib), lib]
        elif os.path.isdir(lib):
            argv += ["--ro-bind", lib, lib]
    for path in layout.binds:
        argv += [*_parents(path), "--ro-bind", path, path]
    if os.path.exists("/etc/ld.so.cache"):
        argv += ["--ro-bind", "/etc/ld.so.cache", "/etc/ld.so.cache"]
    passwd = f"nobody:x:{uid}:{gid}:python grader:{WORKDIR}:/nonexistent\n".encode()
    group = f"nogroup:x:{gid}:\n".encode()
    argv += ["--perms", "0444", "--ro-bind-data", fd_for(passwd), "/etc/passwd",
             "--perms", "0444", "--ro-bind-data", fd_for(group), "/etc/group",
             "--proc", "/proc", "--dev", "/dev",
             "--size", str(workdir_mb * 1024 * 1024), "--perms", "01777", "--tmpfs", WORKDIR,
             "--symlink", WORKDIR, "/tmp", "--chdir", WORKDIR,
             "--seccomp", fd_for(seccomp_bpf),
             "--perms", "0444", "--ro-bind-data", fd_for(worker_source), WORKER_PATH]
    if running_as_root():
        argv += ["--ro-bind", tools["setpriv"], "/sandbox/setpriv", "--",
                 "/sandbox/setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups",
                 "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"]
    else:
        argv += ["--"]
    argv += [layout.executable, "-I", "-B", WORKER_PATH, *worker_args]
    return Launch(argv=argv, pass_fds=tuple(fds))


def scrubbed_env() -> dict[str, str]:
    """Nothing from our environment: no DJANGO_*, SECRET_*, DATABASE_URL, API keys."""
    return {
        "PATH": "/nonexistent",  # there are no programs to run in the sandbox
        "HOME": WORKDIR,
        "TMPDIR": WORKDIR,
        "LANG": "C.UTF-8",
        # One thread per math library: threads are refused (RLIMIT_NPROC) anyway.
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }
