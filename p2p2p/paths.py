"""Where p2p2p keeps its files: ``P2P2P_HOME`` if set, else the XDG directories."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path
from typing import Any


def config_dir() -> Path:
    """Identity key and settings (private: created with mode 0700)."""
    home = os.environ.get("P2P2P_HOME")
    if home:
        return Path(home).expanduser() / "config"
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "p2p2p"


def data_dir() -> Path:
    """Audit logs and notes (private: created with mode 0700)."""
    home = os.environ.get("P2P2P_HOME")
    if home:
        return Path(home).expanduser() / "data"
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "share"
    )
    return Path(base) / "p2p2p"


def private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) if needed, owner-only."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)
    return path


def write_private_json(path: Path, record: Any) -> None:
    """Replace ``path`` with ``record`` as JSON readable by this user only.

    Owner-only from the first byte (no chmod after the fact), and never half written:
    a crash leaves the old file.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(record, handle, indent=1, sort_keys=True)
    os.replace(tmp, path)


# -- relays built into an owner's process ---------------------------------------------
# A relay that runs inside a Jupyter server (or `p2p2p share`) dies with it, and a client
# on this machine then meets "connection refused". The record lets that client say which
# kind of process it was instead. It holds a URL, a pid and a kind from a fixed list, so
# whatever a record file says, only our own words are shown.
PROCESS_KINDS = {
    "jupyter": "the Jupyter server",
    "share": "`p2p2p share`",
    "python": "a Python process",
}
MAX_RECORD = 4096


def runtime_dir() -> Path | None:
    """This user's own folder for files that matter while processes run, or None when
    the place is not safely ours (a symlink, another user's, open to others)."""
    base = os.environ.get("XDG_RUNTIME_DIR")
    if base and os.path.isdir(base):
        path = Path(base) / "p2p2p"
    else:
        import tempfile

        path = Path(tempfile.gettempdir()) / f"p2p2p-{os.getuid()}"
    try:
        path.mkdir(mode=0o700, exist_ok=True)
        info = os.lstat(path)
    except OSError:
        return None
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        return None  # someone else made it, or made it a link: do not use it
    return path


def _relay_record(url: str) -> Path | None:
    folder = runtime_dir()
    digest = hashlib.sha256(url.rstrip("/").encode()).hexdigest()[:24]
    return None if folder is None else folder / f"embedded-relay-{digest}.json"


def record_embedded_relay(url: str, kind: str) -> None:
    """Note that this process runs a relay at ``url`` (best effort: never fails)."""
    path = _relay_record(url)
    if path is None:
        return
    try:
        write_private_json(path, {"url": url.rstrip("/"), "pid": os.getpid(), "kind": kind})
    except OSError:
        pass


def _read_record(path: Path) -> dict[str, Any] | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if (
            not stat.S_ISREG(info.st_mode)
            or info.st_uid != os.getuid()
            or info.st_size > MAX_RECORD
        ):
            return None
        record = json.loads(os.read(fd, MAX_RECORD))
        return record if isinstance(record, dict) else None
    except (OSError, ValueError):
        return None
    finally:
        os.close(fd)


def embedded_relay_gone(url: str) -> str | None:
    """What to tell someone who cannot reach ``url``, if a process of this user ran a
    relay there; None when nothing here knows the address."""
    path = _relay_record(url)
    record = None if path is None else _read_record(path)
    if record is None or record.get("url") != url.rstrip("/"):
        return None
    pid, kind = record.get("pid"), PROCESS_KINDS.get(str(record.get("kind")))
    if not isinstance(pid, int) or kind is None:
        return None
    try:
        os.kill(pid, 0)
        running = True
    except ProcessLookupError:
        running = False
    except (PermissionError, OverflowError, ValueError):
        return None
    if running:
        return f"it is the relay built into {kind} (pid {pid}), which runs but does not answer"
    return (
        f"it was the relay built into {kind} (pid {pid}), which has stopped; the share's "
        "link stopped with it: ask the owner for a new link"
    )
