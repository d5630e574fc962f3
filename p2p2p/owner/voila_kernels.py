"""The kernel manager inside a share's Voila process: at most ``P2P2P_MAX_KERNELS``.

Every dashboard page load starts a kernel (130-230 MB each), whether or not the page
ever opens its websocket, so the bound has to sit where kernels are made, not where
sessions are counted: a client that never connects, or one that opens many websockets,
cannot get past it. Starts in flight count too, so a burst of page loads cannot all
pass the check before the first kernel exists. Past the cap a start is refused with 503,
which the share's API shows as its "busy" page (``owner.api.dashboard``). The kernel
started ahead for the next viewer counts too: when its refill is refused, the next page
load is busy, and the pool is filled again as soon as a kernel goes.

A kernel that no page is connected to (a client that loaded the page and never opened
its websocket, a tab closed without its ``beforeunload`` call) is shut down after
``P2P2P_ALONE_KERNEL_S`` seconds without running a cell (a page still loading runs them).
Jupyter's own culling cannot do this: it waits for a
kernel to be idle, and a dashboard's kernel keeps itself busy (its notes panel and live
check run in the background) whether anyone is watching or not.

Loaded by Voila (``--VoilaConfiguration.multi_kernel_manager_class``), so it imports
jupyter_server, which the owner's own process never needs to.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager
from tornado.web import HTTPError

__all__ = ["ALONE_ENV", "MAX_KERNELS_ENV", "CappedKernelManager"]

MAX_KERNELS_ENV = "P2P2P_MAX_KERNELS"
ALONE_ENV = "P2P2P_ALONE_KERNEL_S"
LOOK_EVERY_S = 2.0
BUSY_REASON = "p2p2p-busy"  # the reason phrase the share's API recognises


class CappedKernelManager(AsyncMappingKernelManager):
    """``AsyncMappingKernelManager`` that refuses to start a kernel past the cap."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)  # type: ignore[no-untyped-call]
        self.max_kernels = max(1, int(os.environ.get(MAX_KERNELS_ENV, "10")))
        self.starting = 0
        self.closing = False
        self.alone_s = float(os.environ.get(ALONE_ENV, "20"))
        self._alone_since: dict[str, float] = {}
        self._looking: asyncio.Task[None] | None = None

    async def start_kernel(self, *args: Any, **kwargs: Any) -> str:  # type: ignore[override]
        if len(self.list_kernel_ids()) + self.starting >= self.max_kernels:
            raise HTTPError(503, reason=BUSY_REASON)
        self.starting += 1
        try:
            kernel_id: str = await super().start_kernel(*args, **kwargs)
        finally:
            self.starting -= 1
        if self._looking is None:
            self._looking = asyncio.ensure_future(self._shut_down_kernels_left_alone())
        return kernel_id

    async def _shut_down_kernels_left_alone(self) -> None:
        while not self.closing:
            await asyncio.sleep(LOOK_EVERY_S)
            now = time.monotonic()
            waiting = self._pooled()
            running = list(self.list_kernel_ids())
            # Kernels shut down otherwise (a closed tab) leave no entry behind.
            self._alone_since = {k: t for k, t in self._alone_since.items() if k in running}
            for kernel_id in running:
                kernel = self._kernels.get(kernel_id)
                rendering = getattr(kernel, "execution_state", "") == "busy"  # a page loading
                watched = self._kernel_connections.get(kernel_id, 0) > 0
                if kernel_id in waiting or watched or rendering:
                    self._alone_since.pop(kernel_id, None)
                    continue
                since = self._alone_since.setdefault(kernel_id, now)
                if now - since < self.alone_s:
                    continue
                self._alone_since.pop(kernel_id, None)
                self.log.info("shutting down kernel %s: no page connected to it", kernel_id)
                try:
                    await self.shutdown_kernel(kernel_id)
                except Exception as exc:  # one kernel's trouble must not stop the watch
                    self.log.warning("could not shut down kernel %s: %s", kernel_id, exc)

    def _pooled(self) -> set[str]:
        """Kernels started ahead, waiting for a viewer: alone by design."""
        ids = set()
        for pool in getattr(self, "_pools", {}).values():
            for task in pool:
                if task.done() and not _failed(task):
                    ids.add(str(task.result().get("kernel_id")))
        return ids

    async def shutdown_kernel(self, kernel_id: str, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        await super().shutdown_kernel(kernel_id, *args, **kwargs)  # type: ignore[no-untyped-call]
        if not self.closing:
            self._refill()

    async def shutdown_all(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        self.closing = True  # Voila is stopping: start nothing more
        await super().shutdown_all(*args, **kwargs)

    def _refill(self) -> None:
        """Room again: a pool whose refill the cap refused starts its kernel now (Voila
        itself refills only when a page takes the pooled kernel)."""
        pools: dict[str, list[Any]] = getattr(self, "_pools", {})
        for name, pool in pools.items():
            pool[:] = [t for t in pool if not _failed(t)]
            if not pool:
                self.fill_if_needed(delay=0, notebook_name=name)  # type: ignore[attr-defined]


def _failed(task: Any) -> bool:
    return bool(task.done() and (task.cancelled() or task.exception() is not None))
