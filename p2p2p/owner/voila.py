"""Voila for one share: a loopback process whose pages and kernels sit behind the link.

Started and stopped with the share. It listens on 127.0.0.1 under the base URL
``/s/<share_id>/`` and is reached only through the share's API (token or cookie
checked first, Voila's own paths only). Its kernels get the share's link, so the
dashboard queries the store like any viewer; they do not get the control secret of a
Jupyter server, so a dashboard cannot start or stop shares.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path

import httpx

from ..client import SHARE_LINK_ENV
from ..errors import DashboardFailed
from ..store.sandbox import die_with_parent
from .voila_kernels import ALONE_ENV, MAX_KERNELS_ENV, CappedKernelManager

# The generic dashboard notebook ships with the viewer-kernel UI it runs.
GENERIC = Path(__file__).parent.parent / "dashboards" / "generic.ipynb"
START_TIMEOUT_S = 90.0
IDLE_KERNEL_S = 600  # a kernel idle this long is reclaimed even with a page connected
# A kernel no page is connected to (a tab closed without its beforeunload call, a client
# that loaded the page and never connected) goes after this long (voila_kernels).
ALONE_KERNEL_S = 20
POOL_SIZE = 1  # kernels started ahead of the next viewer
# What a browser may reach of Voila: the page, its assets, and the kernel of the page.
VOILA_PATHS = re.compile(
    r"/(|voila/(static|templates|labextensions|api/themes|files)/[^?#]*|api/kernels/[0-9a-f-]{36}(/channels)?"
    r"|voila/(query|execution)/[0-9a-f-]{36}|voila/api/shutdown/[0-9a-f-]{36})"
)
STRIPPED_ENV = ("P2P2P_CONTROL_URL", "P2P2P_CONTROL_SECRET", "JUPYTER_TOKEN", "JPY_SESSION_NAME")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class DashboardServer:
    def __init__(self, share_id: str, notebook: str | None = None, title: str = "") -> None:
        self.share_id = share_id
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._dir = Path(tempfile.mkdtemp(prefix="p2p2p-dashboard-"))
        if notebook is None:
            # The generic dashboard runs from an empty private directory: Voila serves
            # images next to the notebook, and there must be nothing else there.
            self.notebook = self._dir / "dashboard.ipynb"
            generic = json.loads(GENERIC.read_text())
            if title:  # the browser tab's title (Voila's template reads it)
                generic["metadata"]["title"] = title
            self.notebook.write_text(json.dumps(generic))
        else:
            self.notebook = Path(notebook).resolve()
            if not self.notebook.is_file() or self.notebook.suffix != ".ipynb":
                raise DashboardFailed(f"the dashboard must be a notebook file (.ipynb): {notebook}")
        self.proc: asyncio.subprocess.Process | None = None
        self.log_path = self._dir / "voila.log"

    async def start(
        self,
        link: str,
        max_viewers: int = 10,
        timeout_s: float = START_TIMEOUT_S,
        identified: bool = False,
    ) -> None:
        """Start Voila; ``link`` is the share's (its kernels query through it). At most
        ``max_viewers`` kernels exist at once, the one started ahead included.

        ``identified``: no kernel is started ahead, since a page's kernel must run the
        dashboard for the viewer who asked (the owner's ticket header reaches it as an
        environment variable); the first page takes a little longer.
        """
        env = {k: v for k, v in os.environ.items() if k not in STRIPPED_ENV}
        env[SHARE_LINK_ENV] = link
        env[MAX_KERNELS_ENV] = str(max_viewers)
        env[ALONE_ENV] = str(ALONE_KERNEL_S)
        log = open(self.log_path, "wb")  # noqa: SIM115 (lives with the process)
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "voila",
            str(self.notebook),
            "--no-browser",
            f"--port={self.port}",
            "--Voila.ip=127.0.0.1",
            f"--Voila.base_url=/s/{self.share_id}/",
            f"--preheat_kernel={not identified}",
            "--VoilaConfiguration.http_header_envs=['X-P2P2P-Viewer']",
            f"--pool_size={POOL_SIZE}",
            f"--VoilaConfiguration.multi_kernel_manager_class={CappedKernelManager.__module__}.CappedKernelManager",
            f"--MappingKernelManager.cull_idle_timeout={IDLE_KERNEL_S}",
            "--MappingKernelManager.cull_interval=60",
            "--show_tracebacks=False",
            cwd=str(self.notebook.parent),
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            preexec_fn=die_with_parent,  # a killed owner must not leave a dashboard serving
        )
        log.close()
        deadline = time.monotonic() + timeout_s
        async with httpx.AsyncClient(timeout=2, trust_env=False) as http:
            while time.monotonic() < deadline:
                if self.proc.returncode is not None:
                    raise DashboardFailed(f"the dashboard server exited: {self._log_tail()}")
                try:
                    answer = await http.get(f"{self.url}/s/{self.share_id}/voila/static/")
                    if answer.status_code < 500:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.25)
        await self.stop()
        raise DashboardFailed(f"the dashboard server did not start within {timeout_s:g} s")

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-800:]
        except OSError:
            return ""

    async def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        shutil.rmtree(self._dir, ignore_errors=True)
