"""A share's client behind an HTTP proxy, and when nothing answers: real sockets on loopback.

``RelayHttp`` (p2p2p/client/transport.py) sends a ``RemoteStore``'s requests on httpcore
and picks its proxy from the environment as httpx would. The proxy here is a small
forwarding one started by the test; the relay and the share are real processes (started
before any proxy variable is set, so they never go through it).
"""

from __future__ import annotations

import base64
import io
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from p2p2p.client import RemoteStore, parse_link
from p2p2p.client.transport import RelayHttp, Unreachable
from p2p2p.errors import ShareOffline

from ..helpers.browser import free_port
from ..helpers.sharing import Relay, Share

PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "REQUEST_METHOD")
IO_TIMEOUT_S = 10.0  # every socket of the proxy gives up after this
MAX_LINES = 100  # header lines in one message
MAX_REQUESTS = 200  # requests on one connection to the proxy
MAX_CONNECTIONS = 64  # connections the proxy accepts in its life
MAX_LIFE_S = 120.0  # and for how long
HOP_BY_HOP = {b"connection", b"keep-alive", b"proxy-connection", b"proxy-authorization", b"te"}


@dataclass
class Seen:
    method: str
    target: str
    headers: dict[str, str] = field(default_factory=dict)


class ForwardingProxy:
    """An HTTP forwarding proxy: absolute-form requests (``POST http://host:port/path
    HTTP/1.1``), each sent to its target on a new connection marked ``Connection: close``
    and its answer relayed back as it arrives. The connection from the client is kept
    alive when the answer's length is known (Content-Length or chunked), else closed."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.2)
        self.port = int(self.server.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self.requests: list[Seen] = []
        self.connections = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._accepting = threading.Thread(target=self._accept, daemon=True)
        self._accepting.start()

    def seen(self) -> list[Seen]:
        with self._lock:
            return list(self.requests)

    def close(self) -> None:
        self._stop.set()
        self._accepting.join(5)
        self.server.close()

    def _accept(self) -> None:
        deadline = time.monotonic() + MAX_LIFE_S
        while not self._stop.is_set() and time.monotonic() < deadline:
            if self.connections >= MAX_CONNECTIONS:
                return
            try:
                client, _ = self.server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.connections += 1
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        client.settimeout(IO_TIMEOUT_S)
        reader = client.makefile("rb")
        try:
            for _ in range(MAX_REQUESTS):
                if not self._forward_one(reader, client):
                    return
        except OSError:
            pass
        finally:
            reader.close()
            client.close()

    def _forward_one(self, reader: io.BufferedReader, client: socket.socket) -> bool:
        """One request and its answer; whether the client's connection stays open."""
        line = reader.readline(65537)
        if not line:
            return False  # the client closed its idle connection
        method, target, version = line.decode("latin-1").rstrip("\r\n").split(" ")
        headers = read_headers(reader)
        names = {name.lower(): value for name, value in headers}
        with self._lock:
            self.requests.append(
                Seen(method, target, {k.decode(): v.decode("latin-1") for k, v in names.items()})
            )
        body = reader.read(int(names.get(b"content-length", b"0")))
        scheme, _, rest = target.partition("://")
        hostport, slash, path = rest.partition("/")
        host, _, port = hostport.rpartition(":")
        if scheme != "http" or not host:
            client.sendall(canned(400, b"only absolute-form http:// targets"))
            return False
        try:
            upstream = socket.create_connection((host, int(port or 80)), timeout=IO_TIMEOUT_S)
        except OSError:
            client.sendall(canned(502, b"the proxy cannot connect to the target"))
            return False
        with upstream, upstream.makefile("rb") as answer:
            head = [f"{method} {slash}{path} {version}\r\n".encode()]
            head += [n + b": " + v + b"\r\n" for n, v in headers if n.lower() not in HOP_BY_HOP]
            upstream.sendall(b"".join(head) + b"Connection: close\r\n\r\n" + body)
            status = answer.readline(65537)
            if not status:
                client.sendall(canned(502, b"the target closed without answering"))
                return False
            got = read_headers(answer)
            kept = [(n, v) for n, v in got if n.lower() not in HOP_BY_HOP]
            framing = {n.lower(): v.lower() for n, v in got}
            length = framing.get(b"content-length")
            chunked = b"chunked" in framing.get(b"transfer-encoding", b"")
            keep_alive = length is not None or chunked
            out = [status] + [n + b": " + v + b"\r\n" for n, v in kept]
            if not keep_alive:
                out.append(b"Connection: close\r\n")
            client.sendall(b"".join(out) + b"\r\n")
            left = int(length) if length is not None else None
            deadline = time.monotonic() + MAX_LIFE_S
            while (left is None or left > 0) and time.monotonic() < deadline:
                # The target closes after its answer (Connection: close), so reading to its
                # end relays a chunked answer whole, framing and all.
                data = answer.read1(65536 if left is None else min(left, 65536))
                if not data:
                    break
                client.sendall(data)
                if left is not None:
                    left -= len(data)
            return keep_alive


def read_headers(reader: io.BufferedReader) -> list[tuple[bytes, bytes]]:
    headers: list[tuple[bytes, bytes]] = []
    for _ in range(MAX_LINES):
        line = reader.readline(65537)
        if line in (b"\r\n", b"\n", b""):
            return headers
        name, _, value = line.partition(b":")
        headers.append((name.strip(), value.strip()))
    raise OSError("too many header lines")


def canned(status: int, text: bytes) -> bytes:
    return (
        f"HTTP/1.1 {status} Proxy\r\nContent-Type: text/plain\r\n"
        f"Content-Length: {len(text)}\r\nConnection: close\r\n\r\n"
    ).encode() + text


@pytest.fixture
def proxy() -> Iterator[ForwardingProxy]:
    server = ForwardingProxy()
    yield server
    server.close()


@pytest.fixture
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No proxy variable of this machine's, in either case, reaches the test."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    return monkeypatch


def asks_42(link: str) -> None:
    store = RemoteStore(parse_link(link))
    try:
        assert store.query_arrow("SELECT 42 AS x")["x"].to_pylist() == [42]
        assert store.query_arrow("SELECT 43 AS x")["x"].to_pylist() == [43]
    finally:
        store.close()


@pytest.mark.parametrize(
    ("variable", "form"),
    [("HTTP_PROXY", "url"), ("http_proxy", "host:port"), ("ALL_PROXY", "url")],
)
def test_a_share_is_reached_through_the_proxy_the_environment_names(
    shared: Share,
    relay: Relay,
    proxy: ForwardingProxy,
    no_proxy_env: pytest.MonkeyPatch,
    variable: str,
    form: str,
) -> None:
    no_proxy_env.setenv(variable, proxy.url if form == "url" else f"127.0.0.1:{proxy.port}")
    asks_42(shared.link)
    seen = proxy.seen()
    share = f"{relay.url}/s/{parse_link(shared.link).share_id}"
    assert [(s.method, s.target) for s in seen] == [
        ("GET", f"{share}/.p2p2p/owner"),
        ("POST", f"{share}/.p2p2p/e2e"),
        ("POST", f"{share}/.p2p2p/e2e"),
    ]
    assert all(s.headers["host"] == f"127.0.0.1:{relay.port}" for s in seen)
    assert proxy.connections == 1  # the connection to the proxy was kept and reused


@pytest.mark.parametrize(
    ("variable", "bypass"),
    [("HTTP_PROXY", "127.0.0.1"), ("http_proxy", "localhost,127.0.0.1"), ("HTTPS_PROXY", None)],
)
def test_a_bypassed_or_other_scheme_proxy_is_not_used(
    shared: Share,
    proxy: ForwardingProxy,
    no_proxy_env: pytest.MonkeyPatch,
    variable: str,
    bypass: str | None,
) -> None:
    no_proxy_env.setenv(variable, proxy.url)
    if bypass is not None:
        no_proxy_env.setenv("NO_PROXY" if variable.isupper() else "no_proxy", bypass)
    asks_42(shared.link)  # an https:// proxy is not one for an http:// relay
    assert proxy.seen() == [] and proxy.connections == 0


def test_a_relay_where_nothing_listens_is_named_in_the_error(
    no_proxy_env: pytest.MonkeyPatch,
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(ShareOffline) as info:
        RemoteStore(parse_link(f"{dead}/s/{'a' * 32}/?t=x"))
    assert f"cannot reach the relay at {dead}" in info.value.message
    assert time.monotonic() - started < 5  # refused at once, not after a timeout
    http = RelayHttp(timeout_s=5, connect_s=5)
    try:
        with pytest.raises(Unreachable) as refused:
            http.get(f"{dead}/healthz")
        assert refused.value.connecting is True  # nothing was sent: another relay is safe
    finally:
        http.close()


def test_a_proxy_where_nothing_listens_is_a_failed_connect(
    relay: Relay, no_proxy_env: pytest.MonkeyPatch
) -> None:
    port = free_port()
    no_proxy_env.setenv("HTTP_PROXY", f"http://someone:secret@127.0.0.1:{port}")
    http = RelayHttp(timeout_s=5, connect_s=5)
    try:
        with pytest.raises(Unreachable) as info:
            http.get(f"{relay.url}/healthz")
        assert info.value.connecting is True
        # The error names the proxy it could not reach, never the login in its address.
        assert f"through the proxy http://127.0.0.1:{port}" in str(info.value)
        assert "secret" not in str(info.value)
    finally:
        http.close()


def test_a_relay_that_hangs_up_without_answering_is_not_a_failed_connect(
    no_proxy_env: pytest.MonkeyPatch,
) -> None:
    """The request may have been sent: the error says so (asking again is not known safe)."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(IO_TIMEOUT_S)
    port = server.getsockname()[1]

    def hang_up() -> None:
        try:
            conn, _ = server.accept()
            conn.recv(65536)
            conn.close()
        except OSError:
            pass

    thread = threading.Thread(target=hang_up, daemon=True)
    thread.start()
    http = RelayHttp(timeout_s=5, connect_s=5)
    try:
        with pytest.raises(Unreachable) as info:
            http.get(f"http://127.0.0.1:{port}/healthz")
        assert info.value.connecting is False
    finally:
        http.close()
        thread.join(5)
        server.close()


def test_a_socks_proxy_is_refused_with_words_that_say_so(
    relay: Relay, no_proxy_env: pytest.MonkeyPatch
) -> None:
    no_proxy_env.setenv("ALL_PROXY", "socks5://127.0.0.1:1")
    with pytest.raises(ShareOffline) as info:
        RemoteStore(parse_link(f"{relay.url}/s/{'a' * 32}/?t=x"))
    assert info.value.message == (
        f"cannot reach the relay at {relay.url}: the proxy socks5://127.0.0.1:1 is not "
        "an HTTP proxy (only HTTP proxies are supported)"
    )
    http = RelayHttp(timeout_s=5, connect_s=5)
    try:
        with pytest.raises(Unreachable, match="only HTTP proxies are supported") as direct:
            http.get(f"{relay.url}/healthz")
        assert direct.value.connecting is True  # nothing was sent anywhere
    finally:
        http.close()


def test_a_proxy_with_credentials_in_its_url_gets_them(
    shared: Share, proxy: ForwardingProxy, no_proxy_env: pytest.MonkeyPatch
) -> None:
    no_proxy_env.setenv("HTTP_PROXY", f"http://analyst:s3cret@127.0.0.1:{proxy.port}")
    asks_42(shared.link)
    expected = "Basic " + base64.b64encode(b"analyst:s3cret").decode()
    assert [s.headers.get("proxy-authorization") for s in proxy.seen()] == [expected] * 3
