"""HTTP from a client to its relays: the two requests ``RemoteStore`` makes, on httpcore.

httpx is httpcore with a general-purpose client around it: URL and header merging,
cookies, auth and redirect flows, event hooks, a response model. A share's client needs
none of it (it sends one kind of POST and one GET, to addresses it built itself), and on
this project's benchmark machine that layer cost about a quarter of a millisecond of CPU
per request, more than the encryption of a small query (docs/performance.md). So the
requests go to httpcore directly, which still gives what matters: TLS with httpx's own
trust settings (the same SSL context, so ``SSL_CERT_FILE`` and friends still apply),
connections kept and reused across threads, timeouts, and HTTP proxies named by the
environment (``HTTPS_PROXY``, ``HTTP_PROXY``, ``ALL_PROXY``, ``NO_PROXY``).
"""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import unquote, urlsplit

import httpcore
import httpx

__all__ = ["Address", "Answer", "RelayHttp", "Unreachable"]

_AGENT = (b"User-Agent", b"p2p2p")


class Unreachable(Exception):
    """No answer came. ``connecting``: the connection was never made, so nothing was
    sent through this relay and asking another one is safe."""

    def __init__(self, message: str, connecting: bool) -> None:
        super().__init__(message)
        self.connecting = connecting


class Answer:
    """A relay's answer: its status, and its body as it arrives."""

    def __init__(self, response: httpcore.Response, host: str) -> None:
        self.status = response.status
        self.host = host  # which relay said it (errors outside the encryption name it)
        self._response = response
        self._body: bytes | None = None

    def iter_raw(self) -> Iterator[bytes]:
        with _mapped():
            yield from self._response.iter_stream()

    def read(self) -> bytes:
        if self._body is None:
            self._body = b"".join(self.iter_raw())
        return self._body

    @property
    def text(self) -> str:
        return self.read().decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.read())


# httpx's own pool limits. An idle connection is dropped after 5 s, well before a relay
# closes one it has not heard from (20 s by default): reusing a connection at the moment
# the relay closes it would fail a request that nothing else had gone wrong with.
_POOL: dict[str, Any] = {
    "max_connections": 100,
    "max_keepalive_connections": 20,
    "keepalive_expiry": 5.0,
}

_CONNECTING = (httpcore.ConnectError, httpcore.ConnectTimeout)
_FAILED = (
    httpcore.NetworkError,
    httpcore.TimeoutException,
    httpcore.ProtocolError,
    httpcore.ProxyError,
    httpcore.UnsupportedProtocol,
)


@contextmanager
def _mapped() -> Iterator[None]:
    try:
        yield
    except _CONNECTING as exc:
        raise Unreachable(str(exc) or type(exc).__name__, connecting=True) from None
    except _FAILED as exc:
        raise Unreachable(str(exc) or type(exc).__name__, connecting=False) from None


class RelayHttp:
    """Connections to relays, shared by the threads of one ``RemoteStore``."""

    def __init__(self, timeout_s: float, connect_s: float) -> None:
        # No read timeout: a big query may take minutes before its first byte, and the
        # owner's own limits bound it; connect and write are bounded.
        self._timeouts = {"connect": connect_s, "read": None, "write": timeout_s, "pool": timeout_s}
        self._ssl = httpx.create_ssl_context()
        # One pool per way out (direct, or through a proxy), and which one each relay
        # takes, decided once as httpx decides it once per client.
        self._pools: dict[str | None, httpcore.ConnectionPool | httpcore.HTTPProxy] = {}
        self._routes: dict[tuple[bytes, bytes], httpcore.ConnectionPool | httpcore.HTTPProxy] = {}
        self._proxied: dict[object, str] = {}  # a proxy's pool: its address, without a login
        self._lock = threading.Lock()

    def _pool(self, url: httpcore.URL) -> httpcore.ConnectionPool | httpcore.HTTPProxy:
        key = (url.scheme, url.host)
        pool = self._routes.get(key)
        if pool is not None:
            return pool
        proxy = _proxy_for(url.scheme.decode(), url.host.decode())
        with self._lock:
            pool = self._pools.get(proxy)
            if pool is None:
                if proxy is None:
                    pool = httpcore.ConnectionPool(ssl_context=self._ssl, **_POOL)
                else:
                    # httpcore ignores a login in the proxy's URL: it goes as proxy_auth.
                    parts = urlsplit(proxy)
                    login = (unquote(parts.username or ""), unquote(parts.password or ""))
                    bare = parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()
                    pool = httpcore.HTTPProxy(
                        proxy_url=bare,
                        proxy_auth=login if parts.username is not None else None,
                        ssl_context=self._ssl,
                        **_POOL,
                    )
                    self._proxied[pool] = bare
                self._pools[proxy] = pool
            self._routes[key] = pool
            return pool

    @contextmanager
    def request(self, method: str, address: str | Address, body: bytes = b"") -> Iterator[Answer]:
        """One request; the answer's body is read inside the ``with`` (leaving it early
        closes the connection rather than reuse a half-read one)."""
        to = address if isinstance(address, Address) else Address(address)
        headers = [to.host_header, _AGENT]
        if method == "POST":
            headers.append((b"Content-Length", str(len(body)).encode()))
        request = httpcore.Request(
            method.encode(),
            to.url,
            headers=headers,
            content=[body] if body else None,
            extensions={"timeout": self._timeouts},
        )
        pool = self._pool(to.url)
        try:
            with _mapped():
                response = pool.handle_request(request)
        except Unreachable as exc:
            proxy = self._proxied.get(pool)
            if proxy is None or not exc.connecting:
                raise
            raise Unreachable(f"through the proxy {proxy}: {exc}", connecting=True) from None
        try:
            yield Answer(response, to.host)
        finally:
            response.close()

    def get(self, url: str) -> Answer:
        with self.request("GET", url) as answer:
            answer.read()
            return answer

    def close(self) -> None:
        with self._lock:
            pools = list(self._pools.values())
            self._pools, self._routes, self._proxied = {}, {}, {}
        for pool in pools:
            pool.close()


class Address:
    """A URL parsed once, for requests sent to it again and again."""

    def __init__(self, text: str) -> None:
        parts = urlsplit(text)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) address: {text!r}")
        self.url = httpcore.URL(text)
        self.host = parts.hostname
        self.host_header = (b"Host", parts.netloc.rpartition("@")[2].encode("idna"))


def _proxy_for(scheme: str, host: str) -> str | None:
    """The proxy the environment names for this address, as httpx would pick it."""
    proxies = urllib.request.getproxies()
    proxy = proxies.get(scheme) or proxies.get("all")
    if not proxy or urllib.request.proxy_bypass(host):
        return None
    if "://" not in proxy:
        proxy = f"http://{proxy}"
    if urlsplit(proxy).scheme not in ("http", "https"):
        raise Unreachable(
            f"the proxy {proxy} is not an HTTP proxy (only HTTP proxies are supported)",
            connecting=True,
        )
    return proxy
