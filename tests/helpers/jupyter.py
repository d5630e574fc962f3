"""A real ``jupyter server`` (with the p2p2p extension as installed) and kernels driven
through its REST and websocket API, the way JupyterLab drives them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from websockets.sync.client import connect

from .browser import free_port


class JupyterServer:
    def __init__(self, root: Path, home: Path, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.token = uuid.uuid4().hex
        self.url = f"http://127.0.0.1:{self.port}"
        self._stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (lives with the process)
        clean = {k: v for k, v in os.environ.items() if not k.startswith("P2P2P_CONTROL")}
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jupyter_server",
                "--no-browser",
                "--allow-root",
                f"--port={self.port}",
                "--ip=127.0.0.1",
                f"--IdentityProvider.token={self.token}",
                f"--ServerApp.root_dir={root}",
            ],
            env={**clean, "P2P2P_HOME": str(home), **(env or {})},
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
            cwd=root,
        )
        self.http = httpx.Client(
            base_url=self.url, headers={"Authorization": f"token {self.token}"}, timeout=60
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"jupyter server exited: {self.log()[-3000:]}")
            try:
                if self.http.get("/api/status").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise AssertionError("jupyter server did not come up")

    def log(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read()

    def kernel(self) -> Kernel:
        answer = self.http.post("/api/kernels", json={"name": "python3"})
        answer.raise_for_status()
        return Kernel(self, answer.json()["id"])

    def stop(self, timeout: float = 30) -> None:
        self.http.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # Jupyter asks to confirm the first one
            time.sleep(0.3)
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


class KernelError(AssertionError):
    pass


class Kernel:
    def __init__(self, server: JupyterServer, kernel_id: str) -> None:
        self.server = server
        self.id = kernel_id
        self.session = uuid.uuid4().hex
        self._connect()

    def _connect(self) -> None:
        self._opened = connect(
            f"ws://127.0.0.1:{self.server.port}/api/kernels/{self.id}/channels"
            f"?session_id={self.session}",
            additional_headers={"Authorization": f"token {self.server.token}"},
            max_size=None,
            open_timeout=60,
        )
        self.ws = self._opened.__enter__()

    def _request(self, kind: str, content: dict[str, Any]) -> str:
        """Send a shell-channel request as a frontend does; returns its message id."""
        msg_id = uuid.uuid4().hex
        header = {
            "msg_id": msg_id,
            "msg_type": kind,
            "session": self.session,
            "username": "test",
            "version": "5.3",
            "date": "",
        }
        message = {"header": header, "parent_header": {}, "metadata": {}, "channel": "shell"}
        self.ws.send(json.dumps({**message, "content": content}))
        return msg_id

    def _answer(
        self, msg_id: str, timeout: float, what: str, take: Callable[[str, dict[str, Any]], bool]
    ) -> None:
        """Hand each message answering ``msg_id`` to ``take`` (which says when it saw the
        reply) until the reply and the kernel's idle have both come: the kernel flushes
        its output before it says idle, so nothing printed is missed."""
        replied = idle = False
        deadline = time.monotonic() + timeout
        while not (replied and idle):
            left = deadline - time.monotonic()
            if left <= 0:
                raise KernelError(f"no answer within {timeout} s to: {what[:200]}")
            message = json.loads(self.ws.recv(timeout=left))
            if message.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, content = message["msg_type"], message["content"]
            if kind == "status":
                idle = idle or content["execution_state"] == "idle"
            else:
                replied = take(kind, content) or replied

    def run(self, code: str, timeout: float = 120, allow_error: bool = False) -> dict[str, Any]:
        """Execute ``code``; returns ``{"stdout", "stderr", "error", "data": [bundles],
        "widgets": [state changes]}`` — the last being what a widget frontend redraws
        (each ``comm_msg`` update's ``state``, e.g. ``{"value": "<html>"}``)."""
        msg_id = self._request(
            "execute_request", {"code": code, "silent": False, "store_history": True}
        )
        out: dict[str, Any] = {"stdout": "", "stderr": "", "error": None, "data": [], "widgets": []}

        def take(kind: str, content: dict[str, Any]) -> bool:
            if kind == "stream":
                out[content["name"]] += content["text"]
            elif kind in ("execute_result", "display_data", "update_display_data"):
                out["data"].append(content["data"])
            elif kind in ("comm_open", "comm_msg"):
                state = content.get("data", {}).get("state")
                if state:
                    out["widgets"].append(state)
            elif kind == "error":
                out["error"] = f"{content['ename']}: {content['evalue']} " + "\n".join(
                    content.get("traceback", [])
                )
            return kind == "execute_reply"

        self._answer(msg_id, timeout, code, take)
        if out["error"] and not allow_error:
            raise KernelError(f"{out['error']}\nstdout: {out['stdout']}")
        return out

    def complete(
        self, code: str, cursor_pos: int | None = None, timeout: float = 30
    ) -> dict[str, Any]:
        """Tab at ``cursor_pos`` (default: the end), as a frontend asks: the reply's content
        (``matches``, ``cursor_start``, ``cursor_end``), plus ``stderr``: what the kernel
        printed meanwhile (where a failing completer's traceback would go)."""
        msg_id = self._request(
            "complete_request",
            {"code": code, "cursor_pos": len(code) if cursor_pos is None else cursor_pos},
        )
        reply: dict[str, Any] = {}
        stderr: list[str] = []

        def take(kind: str, content: dict[str, Any]) -> bool:
            if kind == "complete_reply":
                reply.update(content)
                return True
            if kind == "stream":
                stderr.append(content["text"])
            return False

        self._answer(msg_id, timeout, code[-200:], take)
        return {**reply, "stderr": "".join(stderr)}

    def value(self, expression: str) -> Any:
        """A JSON-able value computed in the kernel."""
        printed = self.run(f"import json as _j; print(_j.dumps({expression}))")["stdout"]
        return json.loads(printed.strip().splitlines()[-1])

    def restart(self) -> None:
        self.ws.close()
        answer = self.server.http.post(f"/api/kernels/{self.id}/restart")
        answer.raise_for_status()
        self._connect()
        deadline = time.monotonic() + 60
        while True:  # the restarted kernel answers once it is ready
            try:
                self.run("1", timeout=10)
                return
            except (KernelError, TimeoutError):
                if time.monotonic() > deadline:
                    raise

    def close(self) -> None:
        self.ws.close()
        try:
            self.server.http.delete(f"/api/kernels/{self.id}")
        except httpx.HTTPError:
            pass
