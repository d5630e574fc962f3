"""A relay behind nginx terminating TLS, as docs/relay.md tells operators to run it.

Checks the documented nginx settings end to end with a certificate from a throwaway CA:
the owner's tunnel (websockets) and the client (httpx) both trust it through
SSL_CERT_FILE, a query crosses it end to end encrypted, a browser's first request gets
the cookie with ``Secure`` (from ``X-Forwarded-Proto``), and a WebSocket session to a
share's web app passes nginx's upgrade and the relay's same-origin check.

Skipped where nginx or openssl is not installed (``apt-get install nginx``).
"""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect

from p2p2p.client import parse_link

from ..helpers.browser import free_port
from ..helpers.sharing import Relay, Share, cli, origin_of, share_origin_request

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
OPENSSL = shutil.which("openssl")
if (NGINX is None or OPENSSL is None) and os.environ.get("CI"):
    pytest.fail("CI needs nginx and openssl for this test (make test installs them)")
pytestmark = pytest.mark.skipif(
    NGINX is None or OPENSSL is None,
    reason="nginx and openssl are needed (make test installs them)",
)

# The server block of docs/relay.md, on a loopback port, with paths in a temporary dir.
NGINX_CONF = """
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 256; }}
http {{
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    access_log off;

    map $http_upgrade $connection_upgrade {{
        default upgrade;
        ''      close;
    }}

    server {{
        listen 127.0.0.1:{port} ssl;
        server_name localhost;
        ssl_certificate     {dir}/relay.pem;
        ssl_certificate_key {dir}/relay.key;

        client_max_body_size 1m;
        client_body_buffer_size 1m;

        location / {{
            proxy_pass http://127.0.0.1:{relay_port};
            proxy_http_version 1.1;
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_buffering off;
            proxy_read_timeout 1h;
            proxy_send_timeout 1h;
        }}
    }}
}}
"""


def _openssl(*args: str) -> None:
    assert OPENSSL is not None
    subprocess.run([OPENSSL, *args], check=True, capture_output=True, timeout=30)


def make_certificates(where: Path) -> Path:
    """A CA and a certificate for 127.0.0.1 signed by it; returns the CA's file."""
    ca_key, ca = where / "ca.key", where / "ca.pem"
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-subj", "/CN=p2p2p test CA", "-keyout", str(ca_key), "-out", str(ca),
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip
    _openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
        "-keyout", str(where / "relay.key"), "-out", str(where / "relay.csr"),
    )  # fmt: skip
    (where / "ext.cnf").write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
        "extendedKeyUsage=serverAuth\n"
    )
    _openssl(
        "x509", "-req", "-in", str(where / "relay.csr"), "-CA", str(ca),
        "-CAkey", str(ca_key), "-CAcreateserial", "-days", "2",
        "-extfile", str(where / "ext.cnf"), "-out", str(where / "relay.pem"),
    )  # fmt: skip
    return ca


@pytest.fixture(scope="module")
def front(relay: Relay, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """nginx terminating TLS in front of the module's relay: (https URL, CA file)."""
    where = tmp_path_factory.mktemp("nginx")
    ca = make_certificates(where)
    port = free_port()
    conf = where / "nginx.conf"
    conf.write_text(NGINX_CONF.format(dir=where, port=port, relay_port=relay.port))
    assert NGINX is not None
    proc = subprocess.Popen(
        [NGINX, "-c", str(conf), "-e", str(where / "error.log")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"https://127.0.0.1:{port}"
    trust = ssl.create_default_context(cafile=str(ca))
    deadline = time.monotonic() + 15
    while True:
        assert proc.poll() is None, (where / "error.log").read_text()
        try:
            if httpx.get(f"{url}/healthz", verify=trust, timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    yield url, ca
    proc.terminate()
    proc.wait(10)


def test_sharing_and_querying_through_tls_in_front_of_the_relay(
    front: tuple[str, Path],
    relay: Relay,
    upstream: str,
    sample_store: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, ca = front
    # Both the owner's tunnel (websockets, OpenSSL's default paths) and the client
    # (httpx, certifi unless told otherwise) take the CA from SSL_CERT_FILE.
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))
    owner = Share(sample_store, url, tmp_path / "owner", "--upstream", upstream)
    try:
        assert owner.link.startswith(f"{url}/s/")
        result = cli(tmp_path / "analyst", "query", owner.link, "SELECT count(*) AS n FROM sales")
        assert result.returncode == 0, result.stderr
        assert "20000" in result.stdout

        trust = ssl.create_default_context(cafile=str(ca))
        link = parse_link(owner.link)
        # A browser's first request goes on to the share's own origin (https, as nginx
        # said), where the token becomes a cookie, Secure behind TLS.
        page = {"Accept": "text/html"}
        first = httpx.get(owner.link, headers=page, verify=trust)
        assert first.status_code == 303 and "set-cookie" not in first.headers
        port = url.rsplit(":", 1)[1]
        own = f"https://{link.share_id}.localhost:{port}"
        assert first.headers["location"] == f"{own}/s/{link.share_id}/?t={link.token}"
        there, host = share_origin_request(first.headers["location"])
        traded = httpx.get(there, headers={**page, **host}, verify=trust)
        assert traded.status_code == 303 and traded.headers["location"] == f"/s/{link.share_id}/"
        cookie = traded.headers["set-cookie"]
        assert "HttpOnly" in cookie and cookie.endswith("; Secure")
        # The same request straight to the relay (plain HTTP): no Secure flag.
        direct, host = share_origin_request(
            f"{origin_of(link.share_id, relay.url)}/s/{link.share_id}/?t={link.token}"
        )
        plain = httpx.get(direct, headers={**page, **host})
        assert plain.status_code == 303 and "Secure" not in plain.headers["set-cookie"]

        # A page's WebSocket through nginx: upgrade headers and Host pass, so the relay's
        # same-origin check and the owner's cookie check both accept it.
        with connect(
            f"wss://127.0.0.1:{url.rsplit(':', 1)[1]}/s/{link.share_id}/echo",
            ssl=trust,
            origin=url,  # type: ignore[arg-type]
            additional_headers={"Cookie": f"p2p2p_t={link.token}"},
        ) as ws:
            assert ws.recv(timeout=10) == "hello"
            ws.send("through nginx")
            assert ws.recv(timeout=10) == "through nginx"
    finally:
        owner.stop()
