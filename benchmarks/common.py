"""What the benchmark sections share: loopback ports, a median timer, target lines, and
the processes they start, which are always stopped whatever happens."""

from __future__ import annotations

import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def rss(pid: int) -> int:
    """Resident memory of one process, in bytes (0 once it has gone)."""
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (kernels leave the group, not the tree)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as handle:
                    todo.extend(int(child) for child in handle.read().split())
        except OSError:
            continue
    return found


def median_time(fn: Callable[[], object], rounds: int) -> float:
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def interleaved(fns: Mapping[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    """The median time of each, rounds taken in turn: load from elsewhere on the machine
    then slows every contender alike instead of whichever ran during it."""
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            started = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - started)
    return {name: statistics.median(times) for name, times in samples.items()}


@dataclass(frozen=True)
class Target:
    """One goal from the issues, and whether this run met it."""

    what: str
    measured: str
    goal: str
    met: bool

    def row(self) -> str:
        return f"| {self.what} | {self.measured} | {self.goal} | {'✓ met' if self.met else '✗ missed'} |"


@dataclass
class Section:
    title: str
    markdown: str
    targets: list[Target] = field(default_factory=list)


class Process:
    """A process a benchmark started, in a session of its own so a Ctrl+C meant for the
    benchmark reaches it only through ``stop`` (a share then revokes itself cleanly)."""

    def __init__(
        self, name: str, args: list[str], env: dict[str, str] | None = None, stdin: bool = False
    ) -> None:
        self.name = name
        # stderr goes to a file: a pipe nobody reads fills up and then blocks the process.
        self._log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (lives with the process)
        self.proc = subprocess.Popen(
            args,
            stdin=subprocess.PIPE if stdin else None,  # a "go" line, for those that wait
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def readline(self, timeout: float) -> str:
        """The next line it prints; fails, with its log, if none comes in time."""
        line: list[str] = []
        assert self.proc.stdout is not None
        stdout = self.proc.stdout
        # A reader thread, because readline() on a pipe cannot time out by itself; if it
        # is still blocked after the timeout, stopping the process ends it.
        reader = threading.Thread(target=lambda: line.append(stdout.readline()), daemon=True)
        reader.start()
        reader.join(timeout)
        if not line or not line[0]:
            raise RuntimeError(f"{self.name} printed nothing within {timeout:g} s: {self.log()}")
        return line[0]

    def log(self) -> str:
        self._log.seek(0)
        return self._log.read()[-2000:]

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM first so a share revokes itself and stops its dashboard and kernels."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                # Kernels start sessions of their own: end the whole tree, not the group.
                for pid in reversed(descendants(self.proc.pid)):
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                self.proc.wait(timeout=10)
        self._log.close()


class Processes:
    """Starts the processes of one benchmark; ``with`` stops them all, newest first, so
    shares leave before the relay they registered with."""

    def __init__(self) -> None:
        self.started: list[Process] = []

    def __enter__(self) -> Processes:
        return self

    def __exit__(self, *_exc: object) -> None:
        while self.started:
            process = self.started.pop()
            try:
                process.stop()
            except Exception as exc:  # the others must still be stopped
                print(f"could not stop {process.name}: {exc}", file=sys.stderr)

    def start(
        self, name: str, args: list[str], env: dict[str, str] | None = None, stdin: bool = False
    ) -> Process:
        process = Process(name, args, env, stdin)
        self.started.append(process)
        return process

    def stop(self, process: Process) -> None:
        self.started.remove(process)
        process.stop()

    def python(self, name: str, script: str, *args: str, stdin: bool = False) -> Process:
        """A yardstick server written inline; it prints one line once it listens (or,
        with ``stdin``, once it is ready to be told to go)."""
        process = self.start(name, [sys.executable, "-c", script, *args], stdin=stdin)
        process.readline(60)
        return process

    def relay(self, *extra: str) -> tuple[Process, str]:
        port = free_port()
        relay = self.start("relay", p2p2p("relay", "--host", LOOPBACK, "--port", str(port), *extra))
        relay.readline(60)
        return relay, f"http://{LOOPBACK}:{port}"

    def share(self, store: Path, relay_url: str, home: Path, *extra: str) -> tuple[Process, str]:
        """``p2p2p share --json``: its one line comes once the link works."""
        share = self.start(
            f"share of {store.name}",
            p2p2p("share", str(store), "--relay", relay_url, "--json", *extra),
            {"P2P2P_HOME": str(home)},
        )
        return share, str(json.loads(share.readline(120))["link"])


def p2p2p(*args: str) -> list[str]:
    return [sys.executable, "-m", "p2p2p", *args]
