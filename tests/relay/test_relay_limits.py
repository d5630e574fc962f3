"""What one client can hold at a relay: a connection that dribbles its headers is cut."""

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
