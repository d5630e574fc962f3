"""How ``%share`` reaches the owner service: the server extension's control endpoint, or,
without one (plain IPython, VS Code, a script), the same service inside this kernel."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

import httpx

from ..aio import LoopThread
from ..errors import P2P2PError
from ..identity import Identity
from ..owner.service import OwnerService
from ..server_ext.control import SECRET_ENV, URL_ENV

T = TypeVar("T")
CALL_TIMEOUT_S = 120.0  # sharing starts workers and waits for the relay's confirmation


class Owner(Protocol):
    hosted_by_server: bool

    def share(self, **fields: Any) -> dict[str, Any]: ...
    def unshare(self, name: str | None) -> list[str]: ...
    def shares(self) -> list[dict[str, Any]]: ...
    def status(self, name: str) -> dict[str, Any] | None: ...


class ControlClient:
    """The server extension, over its loopback control endpoint."""

    hosted_by_server = True

    def __init__(self, url: str, secret: str) -> None:
        self.http = httpx.Client(
            base_url=url,
            headers={"Authorization": f"Bearer {secret}"},
            timeout=CALL_TIMEOUT_S,
            trust_env=False,  # never send the secret through a configured proxy
        )

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        try:
            response = self.http.request(method, path, json=body)
        except httpx.TransportError as exc:
            raise P2P2PError(
                f"the Jupyter server that started this kernel does not answer ({exc}); "
                "restart the kernel from a running JupyterLab"
            ) from None
        payload = response.json()
        if response.status_code >= 400:
            raise P2P2PError.from_dict(payload)
        return payload

    def share(self, **fields: Any) -> dict[str, Any]:
        return dict(self._call("POST", "/shares", fields))

    def unshare(self, name: str | None) -> list[str]:
        return list(self._call("DELETE", f"/shares/{name or '*'}")["stopped"])

    def shares(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/shares")["shares"])

    def status(self, name: str) -> dict[str, Any] | None:
        try:
            return dict(self._call("GET", f"/shares/{name}"))
        except P2P2PError as exc:
            if exc.code == "unknown_share":
                return None
            raise


class InKernelOwner:
    """The owner service on a private loop thread of this kernel: shares end with it."""

    hosted_by_server = False

    def __init__(self) -> None:
        self._loop = LoopThread("p2p2p-owner")
        identity, _ = Identity.load_or_create()
        self.service: OwnerService = self._loop.call(self._make(identity))

    @staticmethod
    async def _make(identity: Identity) -> OwnerService:
        return OwnerService(identity)  # created on the loop that will run it

    def share(self, **fields: Any) -> dict[str, Any]:
        return self._loop.call(self.service.share(**fields), CALL_TIMEOUT_S)

    def unshare(self, name: str | None) -> list[str]:
        return self._loop.call(self.service.unshare(name), CALL_TIMEOUT_S)

    def shares(self) -> list[dict[str, Any]]:
        return self._loop.call(self._now(self.service.shares))

    def status(self, name: str) -> dict[str, Any] | None:
        return self._loop.call(self._now(lambda: self.service.find_status(name)))

    @staticmethod
    async def _now(fn: Callable[[], T]) -> T:
        return fn()  # read on the service's own loop, never across threads

    def close(self) -> None:
        self._loop.call(self.service.close(), CALL_TIMEOUT_S)


_in_kernel: InKernelOwner | None = None


def owner() -> Owner:
    """The server extension when this kernel was started by one, else the in-kernel host."""
    global _in_kernel
    url, secret = os.environ.get(URL_ENV), os.environ.get(SECRET_ENV)
    if url and secret:
        return ControlClient(url, secret)
    if _in_kernel is None:
        _in_kernel = InKernelOwner()
    return _in_kernel
