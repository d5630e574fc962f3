"""Three relays behind one nginx that routes by share id with consistent hashing, as
docs/relay.md gives it: owners' tunnels and their viewers meet on the same relay with
no state shared between relays; one relay killed, its shares are back within the
owners' reconnect time on the others, and shares on the others never notice."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import p2p2p
from p2p2p.client import parse_link

from ..helpers.browser import free_port
from ..helpers.sharing import Relay, Share

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
if NGINX is None and os.environ.get("CI"):
    pytest.fail("CI needs nginx for this test (make test installs it)")
pytestmark = pytest.mark.skipif(NGINX is None, reason="nginx is needed (make test installs it)")

# docs/relay.md's fleet configuration, on loopback ports, with paths in a temporary dir.
FLEET_CONF = """
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 1024; }}
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
    # The share a request is for: its own origin (<id>.relay...), its path (/s/<id>/),
    # or an owner's tunnel (/tunnel?share=<id>).
    map $uri $share_in_path {{
        "~^/s/(?<sid>[a-z2-7]{{32}})(/|$)" $sid;
        default $arg_share;
    }}
    map $host $p2p2p_share {{
        "~^(?<hid>[a-z2-7]{{32}})\\." $hid;
        default $share_in_path;
    }}
    upstream relays {{
        hash $p2p2p_share consistent;
{servers}
    }}

    server {{
        listen 127.0.0.1:{port};
        client_max_body_size 1m;
        location / {{
            proxy_pass http://relays;
            proxy_http_version 1.1;
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_buffering off;
            proxy_request_buffering off;
            proxy_connect_timeout 1s;
            proxy_next_upstream error timeout;
            proxy_read_timeout 1h;
            proxy_send_timeout 1h;
        }}
    }}
}}
"""


@pytest.fixture()
def fleet(tmp_path: Path) -> Iterator[tuple[str, list[Relay]]]:
    relays = [Relay() for _ in range(3)]
    where = tmp_path / "nginx"
    where.mkdir()
    port = free_port()
    servers = "\n".join(
        f"        server 127.0.0.1:{r.port} max_fails=1 fail_timeout=2s;" for r in relays
    )
    (where / "nginx.conf").write_text(FLEET_CONF.format(dir=where, port=port, servers=servers))
    assert NGINX is not None
    proc = subprocess.Popen(
        [NGINX, "-c", str(where / "nginx.conf"), "-e", str(where / "error.log")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 15
    while True:
        assert proc.poll() is None, (where / "error.log").read_text()
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            assert time.monotonic() < deadline
            time.sleep(0.1)
    try:
        yield url, relays
    finally:
        proc.terminate()
        proc.wait(10)
        for relay in relays:
            relay.stop()


def holders(relays: list[Relay]) -> list[int]:
    counts = []
    for relay in relays:
        try:
            counts.append(int(relay.health()["shares"]))
        except httpx.HTTPError:
            counts.append(-1)
    return counts


def test_three_relays_behind_nginx_one_killed(
    fleet: tuple[str, list[Relay]], sample_store: str, tmp_path: Path
) -> None:
    url, relays = fleet
    shares = [Share(sample_store, url, tmp_path / "owner", "--name", f"site-{i}") for i in range(6)]
    try:
        stores = {s.info["name"]: p2p2p.connect(s.link) for s in shares}
        for store in stores.values():
            assert store.query("SELECT 1 AS x")["x"].tolist() == [1]
        counts = holders(relays)
        assert sum(counts) == 6, counts  # each share on exactly one relay
        victim = max(range(3), key=lambda i: counts[i])
        if counts[victim] == 6:
            pytest.skip("all six shares hashed to one relay (p ≈ 0.4%)")
        # Which shares the victim holds: ask each relay directly for each share's page.
        on_victim = {
            s.info["name"]
            for s in shares
            if httpx.get(
                f"{relays[victim].url}/s/{parse_link(s.link).share_id}/.p2p2p/owner", timeout=5
            ).status_code
            == 200
        }
        assert len(on_victim) == counts[victim]
        relays[victim].stop(signal.SIGKILL)

        # The others' shares never notice: they answer at once, every time.
        for name, store in stores.items():
            if name not in on_victim:
                assert store.query("SELECT 2 AS x")["x"].tolist() == [2], name
        # The victim's are back on the surviving relays within the reconnect time.
        started = time.monotonic()
        back: dict[str, float] = {}
        while len(back) < len(on_victim) and time.monotonic() - started < 15:
            for name in on_victim - set(back):
                try:
                    stores[name].query("SELECT 3")
                    back[name] = time.monotonic() - started
                except p2p2p.errors.ShareOffline:
                    pass
            time.sleep(0.1)
        print("back after", {k: round(v, 2) for k, v in back.items()}, "counts", counts)
        assert set(back) == on_victim, (back, on_victim)
        assert max(back.values()) < 5, back
        alive = [c for i, c in enumerate(holders(relays)) if i != victim]
        assert sum(alive) == 6, alive
    finally:
        for share in shares:
            share.stop()
