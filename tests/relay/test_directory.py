"""The relay's directory lines, in-process: a few per owner key, a few per address."""

from __future__ import annotations

import dataclasses
import time

from p2p2p.identity import fingerprint
from p2p2p.protocol.registration import ShareAd
from p2p2p.relay.clients import parse_proxies
from p2p2p.relay.directory import LISTED_PER_ADDRESS, LISTED_PER_OWNER, listed_shares
from p2p2p.relay.routes import Relay, RelayConfig


@dataclasses.dataclass(eq=False)
class FakeTunnel:
    owner_key: bytes
    client: str
    last_seen: float = dataclasses.field(default_factory=time.monotonic)


def relay_with(tunnels: list[tuple[FakeTunnel, int]], proxies: str = "none") -> Relay:
    relay = Relay(RelayConfig(proxies=parse_proxies([proxies])))
    for tunnel, count in tunnels:
        for i in range(count):
            ad = ShareAd(f"{tunnel.owner_key.hex()}{i:04d}", f"copy-{i}", True, "official copy")
            relay.routes[ad.share_id] = (tunnel, ad)  # type: ignore[assignment]
    return relay


def test_one_key_gets_a_few_lines() -> None:
    relay = relay_with([(FakeTunnel(b"\x01" * 32, "198.51.100.1"), 20)])
    lines = listed_shares(relay)
    assert len(lines) == LISTED_PER_OWNER
    assert {line["owner_key"] for line in lines} == {fingerprint(b"\x01" * 32)}


def test_many_fresh_keys_from_one_address_get_a_few_lines_in_all() -> None:
    spam = [(FakeTunnel(bytes([k]) * 32, "198.51.100.1"), 3) for k in range(1, 11)]
    honest = (FakeTunnel(b"\xee" * 32, "198.51.100.2"), 2)
    lines = listed_shares(relay_with([*spam, honest]))
    from_spammer = [line for line in lines if not line["share_id"].startswith("ee")]
    assert len(from_spammer) == LISTED_PER_ADDRESS
    assert sum(line["share_id"].startswith("ee") for line in lines) == 2


def test_a_proxy_without_forwarded_addresses_is_not_one_client() -> None:
    # Behind a local proxy that says nothing, every owner comes from loopback: only the
    # per-key limit can apply there.
    owners = [(FakeTunnel(bytes([k]) * 32, "127.0.0.1"), 3) for k in range(1, 5)]
    assert len(listed_shares(relay_with(owners, proxies="loopback"))) == 4 * LISTED_PER_OWNER


def test_a_listed_share_that_went_away_shows_as_offline_with_when_last_seen() -> None:
    from p2p2p.relay.routes import GONE_KEPT

    tunnel = FakeTunnel(b"\x02" * 32, "198.51.100.3")
    relay = relay_with([(tunnel, 2)])
    gone_id = sorted(relay.routes)[0]
    relay.unregister(tunnel, {gone_id})  # type: ignore[arg-type]
    lines = {line["share_id"]: line for line in listed_shares(relay)}
    assert lines[gone_id]["online"] is False and lines[gone_id]["last_seen"].endswith("Z")
    assert sum(line["online"] for line in lines.values()) == 1
    # Back again: one line, online. And what the relay keeps of gone shares is bounded.
    back = FakeTunnel(b"\x02" * 32, "198.51.100.3")
    back.shares = [ShareAd(gone_id, "copy-0", True, "")]  # type: ignore[attr-defined]
    relay.register(back)  # type: ignore[arg-type]
    assert gone_id not in relay.gone
    for i in range(GONE_KEPT + 50):
        ad = ShareAd(f"{i:032d}", "x", True, "")
        relay.routes[ad.share_id] = (tunnel, ad)  # type: ignore[assignment]
        relay.unregister(tunnel, {ad.share_id})  # type: ignore[arg-type]
    assert len(relay.gone) == GONE_KEPT
