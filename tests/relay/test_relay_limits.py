"""What one client can hold at a relay: connections, streams, and time to send headers."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import httpx

from ..helpers.sharing import Relay, Share


def test_a_client_that_dribbles_its_headers_is_cut_off() -> None:
    relay = Relay(None, 1.0, "--header-timeout", "2")
    try:
        slow = [socket.create_connection(("127.0.0.1", relay.port), timeout=10) for _ in range(20)]
        started = time.monotonic()
        for sock in slow:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        # Meanwhile the relay serves everyone else.
        assert httpx.get(f"{relay.url}/healthz", timeout=5).json()["ok"]
        closed = 0
        for sock in slow:
            try:
                for _ in range(10):  # one more byte a second, as a slowloris client does
                    sock.sendall(b"x")
                    sock.settimeout(1)
                    try:
                        if sock.recv(1) == b"":
                            closed += 1
                            break
                    except TimeoutError:
                        continue
            except (BrokenPipeError, ConnectionResetError):
                closed += 1
            finally:
                sock.close()
        assert closed == len(slow)
        assert time.monotonic() - started < 15
    finally:
        relay.stop()


def test_one_share_takes_at_most_its_part_of_the_owners_tunnel(
    relay: Relay, upstream: str, sample_store: str, tmp_path: Path
) -> None:
    """An owner's tunnel carries 256 streams for all its shares; requests that each hold
    one (long-polls, slow pages) can take no more than a share's part of them."""
    from p2p2p.client import parse_link
    from p2p2p.relay.forward import STREAMS_PER_SHARE

    owner = Share(sample_store, relay.url, tmp_path / "owner", "--upstream", upstream)
    try:
        link = parse_link(owner.link)
        auth = {"Authorization": f"Bearer {link.token}"}

        async def crowd() -> list[int]:
            limits = httpx.Limits(max_connections=STREAMS_PER_SHARE + 40)
            async with httpx.AsyncClient(timeout=60, limits=limits) as http:

                async def hold() -> int:
                    answer = await http.get(f"{link.share_url}/slow", params={"s": 4}, headers=auth)
                    return answer.status_code

                return list(await asyncio.gather(*[hold() for _ in range(STREAMS_PER_SHARE + 30)]))

        statuses = asyncio.run(crowd())
        assert statuses.count(200) == STREAMS_PER_SHARE, sorted(set(statuses))
        assert statuses.count(503) == 30
        # The owner's tunnel is fine afterwards.
        after = httpx.get(f"{link.share_url}/api/info", headers=auth, timeout=10)
        assert after.status_code == 200
    finally:
        owner.stop()


def _hold_streams(url: str, token: str, forwarded: list[str]) -> list[int]:
    """One slow request per entry, all at once, each claiming that X-Forwarded-For."""

    async def crowd() -> list[int]:
        limits = httpx.Limits(max_connections=len(forwarded) + 5)
        async with httpx.AsyncClient(timeout=60, limits=limits) as http:

            async def hold(address: str) -> int:
                headers = {"Authorization": f"Bearer {token}", "X-Forwarded-For": address}
                answer = await http.get(f"{url}/slow", params={"s": 3}, headers=headers)
                return answer.status_code

            return list(await asyncio.gather(*[hold(a) for a in forwarded]))

    return asyncio.run(crowd())


def test_behind_a_proxy_each_forwarded_client_gets_its_own_stream_limit(
    upstream: str, sample_store: str, tmp_path: Path
) -> None:
    from p2p2p.client import parse_link
    from p2p2p.relay.forward import STREAMS_PER_CLIENT

    relay = Relay(None, 1.0, "--proxy", "127.0.0.1")
    owner = Share(sample_store, relay.url, tmp_path / "owner", "--upstream", upstream)
    try:
        link = parse_link(owner.link)
        greedy, other = "198.51.100.7", "198.51.100.8"
        statuses = _hold_streams(
            link.share_url, link.token, [greedy] * (STREAMS_PER_CLIENT + 8) + [other] * 5
        )
        mine, theirs = statuses[: STREAMS_PER_CLIENT + 8], statuses[STREAMS_PER_CLIENT + 8 :]
        assert mine.count(200) == STREAMS_PER_CLIENT and mine.count(503) == 8, sorted(mine)
        assert theirs == [200] * 5
    finally:
        owner.stop()
        relay.stop()


def test_a_direct_client_cannot_choose_its_address_or_hold_every_socket(
    upstream: str, sample_store: str, tmp_path: Path
) -> None:
    from p2p2p.client import parse_link
    from p2p2p.relay.forward import STREAMS_PER_CLIENT

    # No proxy in front: loopback clients are limited like any other address.
    relay = Relay(None, 1.0, "--proxy", "none", "--max-connections-per-client", "50")
    owner = Share(sample_store, relay.url, tmp_path / "owner", "--upstream", upstream)
    try:
        link = parse_link(owner.link)
        # A forwarded address a client sends itself is not believed: all of these are one
        # client, 127.0.0.1.
        spoofed = [f"203.0.113.{i}" for i in range(STREAMS_PER_CLIENT + 8)]
        statuses = _hold_streams(link.share_url, link.token, spoofed)
        assert statuses.count(200) == STREAMS_PER_CLIENT and statuses.count(503) == 8

        # Sockets: the owner's tunnel holds one; 49 more idle ones fill this address.
        idle = [socket.create_connection(("127.0.0.1", relay.port), timeout=5) for _ in range(49)]
        try:
            time.sleep(0.3)
            extra = socket.create_connection(("127.0.0.1", relay.port), timeout=5)
            extra.settimeout(5)
            answer = extra.recv(4096)
            extra.close()
            assert answer.startswith(b"HTTP/1.1 503") and b"too many connections" in answer
            # Another address is served meanwhile.
            other = socket.create_connection(
                ("127.0.0.1", relay.port), timeout=5, source_address=("127.0.0.2", 0)
            )
            other.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            assert other.recv(4096).startswith(b"HTTP/1.1 200")
            other.close()
        finally:
            for sock in idle:
                sock.close()
        # Closed sockets are given back: the address is served again.
        deadline = time.monotonic() + 10
        while httpx.get(f"{relay.url}/healthz", timeout=5).status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        # And the share still answers through its tunnel.
        auth = {"Authorization": f"Bearer {link.token}"}
        assert httpx.get(f"{link.share_url}/api/info", headers=auth, timeout=10).status_code == 200
    finally:
        owner.stop()
        relay.stop()
