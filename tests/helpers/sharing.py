"""Real relay and share processes on loopback, for the sharing tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from .browser import free_port


def cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """One ``p2p2p`` command run to its end with ``home`` as its P2P2P_HOME."""
    return subprocess.run(
        [sys.executable, "-m", "p2p2p", *args],
        env={**os.environ, "P2P2P_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=60,
    )


class Process:
    def __init__(self, args: list[str], env: dict[str, str] | None = None) -> None:
        self.args = args
        # stderr goes to a file: a pipe nobody reads fills up and then blocks the process.
        self._stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (lives with the process)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "p2p2p", *args],
            env={**os.environ, **(env or {})},
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )

    def stop(self, sig: int = signal.SIGINT, timeout: float = 15) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)

    def stderr(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read()


class Relay(Process):
    def __init__(self, port: int | None = None, heartbeat: float = 1.0, *extra: str) -> None:
        self.port = port or free_port()
        super().__init__(["relay", "--port", str(self.port), "--heartbeat", str(heartbeat), *extra])
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, "the relay exited at start"
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise AssertionError("the relay did not come up")

    def health(self) -> dict[str, Any]:
        return dict(httpx.get(f"{self.url}/healthz", timeout=5).json())


class Share(Process):
    def __init__(self, store: str, relay_url: str, home: Path, *extra: str) -> None:
        super().__init__(
            ["share", store, "--relay", relay_url, "--json", *extra], env={"P2P2P_HOME": str(home)}
        )
        self.home = home
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # blocks until the share is reachable (or exits)
        if not line:
            self.stop()
            raise AssertionError(f"p2p2p share printed nothing: {self.stderr()}")
        self.info = json.loads(line)
        self.link: str = self.info["link"]


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children, their children, …), from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parents[int(entry.name)] = int(stat.rpartition(")")[2].split()[1])
    found: list[int] = []
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        children = [child for child, ppid in parents.items() if ppid == parent]
        found.extend(children)
        frontier.extend(children)
    return found


def kernels_below(pid: int) -> list[int]:
    """The Jupyter kernels among ``pid``'s descendants (a dashboard's viewers)."""
    kernels = []
    for child in descendants(pid):
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        if b"ipykernel_launcher" in cmdline:
            kernels.append(child)
    return kernels


def share_origin_request(url: str) -> tuple[str, dict[str, str]]:
    """``http://<id>.localhost:PORT/…`` as Python can send it: to 127.0.0.1 with that
    Host header (Chromium resolves ``*.localhost`` by itself; Python's resolver does not)."""
    parts = httpx.URL(url)
    port = f":{parts.port}" if parts.port else ""
    direct = str(parts.copy_with(host="127.0.0.1"))
    return direct, {"Host": f"{parts.host}{port}"}


def origin_of(share_id: str, relay_url: str) -> str:
    """The share's own browser origin on a loopback relay."""
    parts = httpx.URL(relay_url)
    return f"{parts.scheme}://{share_id}.localhost:{parts.port}"
