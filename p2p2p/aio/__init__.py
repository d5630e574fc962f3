"""The asyncio layer: what the relay, the owner and the server extension run on.

* ``aio.tunnel``: the one asyncio connection over the sans-I/O tunnel protocol, used
  by both ends (relay and owner).
* ``aio.web``: starting a tornado server, and its request log lines.
* here: background tasks that are not lost, uvloop where available, and an event loop
  on a thread for sync callers (a kernel).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["LoopThread", "run", "spawn"]

T = TypeVar("T")

_background: set[asyncio.Task[Any]] = set()


def spawn(coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
    """Run ``coro`` in the background, keeping a reference until it is done (the event
    loop itself holds tasks only weakly)."""
    task = asyncio.ensure_future(coro)
    _background.add(task)
    task.add_done_callback(_background.discard)
    return task


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` on uvloop where it is installed (the relay and ``p2p2p share`` are
    their own processes; inside Jupyter the server's loop is used as it is)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


class LoopThread:
    """An event loop on a daemon thread, for async services used from sync code (a
    kernel runs its own loop, so ``asyncio.run`` cannot be called there)."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def call(self, coro: Coroutine[Any, Any, T], timeout_s: float | None = None) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout_s)
