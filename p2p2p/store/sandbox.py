"""OS-level confinement for the store worker process (Linux).

DuckDB says its own settings are defense in depth, not a sandbox, so the worker that
runs untrusted SQL also confines itself:

* resource limits: address space (stops allocations DuckDB does not account for),
  no file writes at all (``RLIMIT_FSIZE=0``), no core dumps, few file descriptors;
* ``no_new_privs`` and not dumpable;
* Landlock (Linux >= 5.13), after the store is open: no filesystem access except
  reading the Python installation, no TCP connect/bind (ABI >= 4), no signals or abstract
  sockets to processes outside the sandbox (ABI >= 6).

Every step reports what it achieved; the worker tells the executor, and ``p2p2p
doctor``-style callers can show it. Nothing here raises if the kernel lacks a feature:
the DuckDB lockdown still holds, and the report says what is missing.
"""

from __future__ import annotations

import ctypes
import os
import resource
import signal
import sys
import sysconfig
from collections.abc import Iterable

_PR_SET_PDEATHSIG = 1
_PR_SET_DUMPABLE = 4
_PR_SET_NO_NEW_PRIVS = 38

_SYS_LANDLOCK_CREATE_RULESET = 444
_SYS_LANDLOCK_ADD_RULE = 445
_SYS_LANDLOCK_RESTRICT_SELF = 446
_LANDLOCK_CREATE_RULESET_VERSION = 1
_LANDLOCK_RULE_PATH_BENEATH = 1

_FS_EXECUTE = 1 << 0
_FS_READ_FILE = 1 << 2
_FS_READ_DIR = 1 << 3
# Filesystem rights known to each Landlock ABI version (1: 13 rights, 2: +REFER,
# 3: +TRUNCATE, 5: +IOCTL_DEV).
_FS_ALL_BY_ABI = {1: (1 << 13) - 1, 2: (1 << 14) - 1, 3: (1 << 15) - 1, 4: (1 << 15) - 1}
_FS_ALL_LATEST = (1 << 16) - 1
_NET_BIND_TCP = 1 << 0
_NET_CONNECT_TCP = 1 << 1
_SCOPE_ABSTRACT_UNIX_SOCKET = 1 << 0
_SCOPE_SIGNAL = 1 << 1


class _RulesetAttr(ctypes.Structure):
    _fields_ = [
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    ]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def limit_resources(address_space_mb: int, max_open_files: int = 256) -> list[str]:
    """Apply rlimits and process flags; returns what took effect."""
    done: list[str] = []
    # A write past RLIMIT_FSIZE must fail with EFBIG, not kill the worker with SIGXFSZ.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    sys.dont_write_bytecode = True
    wanted = [
        (resource.RLIMIT_CORE, 0, "no core dumps"),
        (resource.RLIMIT_FSIZE, 0, "no file writes"),
        (resource.RLIMIT_NOFILE, max_open_files, f"at most {max_open_files} open files"),
        (resource.RLIMIT_AS, address_space_mb << 20, f"address space {address_space_mb} MiB"),
    ]
    for which, value, label in wanted:
        try:
            resource.setrlimit(which, (value, value))
            done.append(label)
        except (ValueError, OSError):
            pass
    if sys.platform.startswith("linux"):
        libc = _libc()
        if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0:
            done.append("no new privileges")
        if libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0) == 0:
            done.append("not dumpable")
    return done


def die_with_parent() -> None:
    """``preexec_fn`` for helper servers: SIGTERM them when their parent goes away.

    However the parent ends (Ctrl+C, a crash, SIGKILL, a kernel shut down), a dashboard
    server or a demo's JupyterLab must not outlive it and keep serving. Linux only;
    elsewhere the parent's own shutdown path stops them.
    """
    if sys.platform.startswith("linux"):
        _libc().prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def landlock_abi() -> int:
    """The kernel's Landlock ABI version, or 0 where Landlock is missing or disabled."""
    if not sys.platform.startswith("linux"):
        return 0
    libc = _libc()
    libc.syscall.restype = ctypes.c_long
    abi = libc.syscall(
        _SYS_LANDLOCK_CREATE_RULESET, None, ctypes.c_size_t(0), _LANDLOCK_CREATE_RULESET_VERSION
    )
    return max(0, int(abi))


def landlock(readable: Iterable[str]) -> list[str]:
    """Confine this process: read-only access beneath ``readable``, nothing else.

    Irreversible for the process and all its children. Returns what took effect
    (empty when Landlock is unavailable).
    """
    abi = landlock_abi()
    if abi < 1:
        return []
    libc = _libc()
    libc.syscall.restype = ctypes.c_long
    attr = _RulesetAttr()
    attr.handled_access_fs = _FS_ALL_BY_ABI.get(abi, _FS_ALL_LATEST)
    size = ctypes.sizeof(ctypes.c_uint64)
    done = ["landlock filesystem"]
    if abi >= 4:
        attr.handled_access_net = _NET_BIND_TCP | _NET_CONNECT_TCP
        size = 2 * ctypes.sizeof(ctypes.c_uint64)
        done.append("landlock no TCP")
    if abi >= 6:
        attr.scoped = _SCOPE_ABSTRACT_UNIX_SOCKET | _SCOPE_SIGNAL
        size = ctypes.sizeof(_RulesetAttr)
        done.append("landlock scoped signals and sockets")
    ruleset = libc.syscall(
        _SYS_LANDLOCK_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), 0
    )
    if ruleset < 0:
        return []
    try:
        for path in sorted(set(readable)):
            try:
                fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            except OSError:
                continue
            try:
                rule = _PathBeneathAttr()
                is_dir = os.path.isdir(path)
                rule.allowed_access = _FS_READ_FILE | _FS_EXECUTE | (_FS_READ_DIR if is_dir else 0)
                rule.parent_fd = fd
                libc.syscall(
                    _SYS_LANDLOCK_ADD_RULE,
                    ruleset,
                    _LANDLOCK_RULE_PATH_BENEATH,
                    ctypes.byref(rule),
                    0,
                )
            finally:
                os.close(fd)
        if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            return []
        if libc.syscall(_SYS_LANDLOCK_RESTRICT_SELF, ruleset, 0) != 0:
            return []
    finally:
        os.close(ruleset)
    return [f"{item} (abi {abi})" if i == 0 else item for i, item in enumerate(done)]


def python_paths() -> list[str]:
    """Where the interpreter, its packages, p2p2p itself and time zone data live:
    readable, never secret.

    Not every ``sys.path`` entry: an editable install or the working directory can be a
    folder that also holds data.
    """
    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix}
    paths.update(
        v
        for k, v in sysconfig.get_paths().items()
        if k in ("stdlib", "platstdlib", "purelib", "platlib")
    )
    paths.add(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    # Time zone rules, for TIMESTAMP WITH TIME ZONE parameters and results.
    paths.add("/usr/share/zoneinfo")
    return sorted(p for p in paths if os.path.isdir(p))
