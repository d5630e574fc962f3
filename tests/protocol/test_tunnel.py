"""The tunnel protocol without sockets: two Connections wired back to back."""

from __future__ import annotations

import struct

import pytest

from p2p2p.errors import LocalProtocolError, RemoteProtocolError
from p2p2p.protocol.tunnel import (
    END_STREAM,
    Connection,
    ControlReceived,
    DataReceived,
    FrameType,
    PongReceived,
    StreamEnded,
    StreamOpened,
    StreamReset,
    WindowOpened,
    encode_frame,
)


def pump(sender: Connection, receiver: Connection) -> list[object]:
    events: list[object] = []
    for frame in sender.data_to_send():
        events.extend(receiver.receive(frame))
    return events


def pair(window: int = 1000, max_payload: int = 400) -> tuple[Connection, Connection]:
    return Connection(True, window, max_payload), Connection(False, window, max_payload)


def test_request_response_round_trip() -> None:
    relay, owner = pair()
    sid = relay.open_stream({"method": "GET", "path": "/info"}, end=True)
    events = pump(relay, owner)
    assert events == [StreamOpened(sid, {"method": "GET", "path": "/info"}, True)]
    assert owner.send_data(sid, b"hello", end=True) == 5
    events = pump(owner, relay)
    assert events == [DataReceived(sid, b"hello", True), StreamEnded(sid)]
    assert relay.open_streams == [] and owner.open_streams == []


def test_flow_control_limits_what_is_in_flight() -> None:
    relay, owner = pair(window=1000, max_payload=400)
    sid = relay.open_stream({"path": "/query"}, end=True)
    pump(relay, owner)
    big = bytes(5000)
    taken = owner.send_data(sid, big)
    assert taken == 1000  # the window, in frames of at most 400 bytes
    frames = owner.data_to_send()
    assert [len(f) - 6 for f in frames] == [400, 400, 200]
    received = sum(
        len(e.data) for f in frames for e in relay.receive(f) if isinstance(e, DataReceived)
    )
    assert received == 1000
    assert owner.send_data(sid, big[taken:]) == 0  # no credit until the reader consumed
    relay.consumed(sid, 1000)
    assert pump(relay, owner) == [WindowOpened(sid)]
    assert owner.send_data(sid, big[taken:]) == 1000


def test_a_blocked_big_stream_does_not_block_a_small_one() -> None:
    relay, owner = pair()
    big = relay.open_stream({"path": "/big"}, end=True)
    small = relay.open_stream({"path": "/small"}, end=True)
    pump(relay, owner)
    owner.send_data(big, bytes(10_000))  # stalls at the window
    assert owner.send_data(small, b"42", end=True) == 2
    events = pump(owner, relay)
    assert DataReceived(small, b"42", True) in events


def test_credit_is_batched() -> None:
    relay, owner = pair(window=1000)
    sid = relay.open_stream({}, end=True)
    pump(relay, owner)
    owner.send_data(sid, bytes(100))
    pump(owner, relay)
    relay.consumed(sid, 100)
    assert relay.data_to_send() == []  # below a quarter of the window: no WINDOW frame yet
    relay.consumed(sid, 200)
    assert len(relay.data_to_send()) == 1


def test_peer_exceeding_its_window_gets_its_stream_reset() -> None:
    relay, owner = pair(window=100, max_payload=1000)
    sid = relay.open_stream({}, end=True)
    pump(relay, owner)
    cheat = encode_frame(FrameType.DATA, sid, bytes(500))
    events = relay.receive(cheat)
    assert events == [StreamReset(sid, "flow_control", "the peer exceeded its window")]
    assert b"flow_control" in relay.data_to_send()[0]


def test_reset_reaches_the_peer_and_late_data_is_ignored() -> None:
    relay, owner = pair()
    sid = relay.open_stream({}, end=True)
    pump(relay, owner)
    owner.send_data(sid, b"partial")
    late = owner.data_to_send()
    relay.reset_stream(sid, "cancelled", "client went away")
    assert pump(relay, owner) == [StreamReset(sid, "cancelled", "client went away")]
    assert relay.receive(late[0]) == []  # in flight when we reset: not an error
    with pytest.raises(KeyError):
        owner.send_data(sid, b"more")


def test_max_streams_refuses_politely() -> None:
    relay, owner = Connection(True, max_streams=10), Connection(False, max_streams=2)
    for _ in range(3):
        relay.open_stream({}, end=True)
    events = pump(relay, owner)
    assert len([e for e in events if isinstance(e, StreamOpened)]) == 2
    refusal = owner.data_to_send()
    assert len(refusal) == 1 and b"refused" in refusal[0]


def test_opening_past_our_own_limit_is_a_local_fault_not_the_peers() -> None:
    relay = Connection(True, max_streams=2)
    relay.open_stream({}, end=True)
    relay.open_stream({}, end=True)
    with pytest.raises(LocalProtocolError, match="too many open streams") as caught:
        relay.open_stream({}, end=True)
    assert not isinstance(caught.value, RemoteProtocolError)  # the tunnel itself is fine
    assert caught.value.status == 503


def test_ping_control_and_pong() -> None:
    relay, owner = pair()
    relay.ping(b"t1")
    assert pump(relay, owner) == []
    assert pump(owner, relay) == [PongReceived(b"t1")]
    owner.control({"type": "heartbeat", "shares": 2})
    assert pump(owner, relay) == [ControlReceived({"type": "heartbeat", "shares": 2})]


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (b"\x02\x00", "shorter than its header"),
        (encode_frame(FrameType.DATA, 0, b"x"), "need a stream id"),
        (bytes([99, 0, 0, 0, 0, 1]), "unknown frame type"),
        (encode_frame(FrameType.OPEN, 2, b"{}"), "wrong parity"),
        (encode_frame(FrameType.OPEN, 1, b"not json"), "not JSON"),
        (encode_frame(FrameType.OPEN, 1, b"[1]"), "JSON object"),
        (encode_frame(FrameType.OPEN, 1, b"{}" + b" " * (70 << 10)), "exceeds"),
        (encode_frame(FrameType.DATA, 7, b"x"), "never opened"),
        (encode_frame(FrameType.PING, 3, b""), "stream 0"),
        (encode_frame(FrameType.WINDOW, 1, b"\x00"), "4-byte"),
    ],
)
def test_malformed_frames_are_protocol_errors(frame: bytes, message: str) -> None:
    owner = Connection(False)
    with pytest.raises(RemoteProtocolError, match=message):
        owner.receive(frame)


def test_reopening_a_stream_id_is_an_error() -> None:
    owner = Connection(False)
    owner.receive(encode_frame(FrameType.OPEN, 3, b"{}", END_STREAM))
    with pytest.raises(RemoteProtocolError, match="twice"):
        owner.receive(encode_frame(FrameType.OPEN, 1, b"{}"))


def test_oversized_data_frame_is_an_error() -> None:
    relay, owner = pair(max_payload=100)
    sid = relay.open_stream({})
    pump(relay, owner)
    with pytest.raises(RemoteProtocolError, match="exceeds"):
        owner.receive(encode_frame(FrameType.DATA, sid, bytes(101)))


def test_data_after_end_resets() -> None:
    relay, owner = pair()
    sid = relay.open_stream({}, end=True)
    pump(relay, owner)
    events = owner.receive(encode_frame(FrameType.DATA, sid, b"x"))
    assert isinstance(events[0], StreamReset) and events[0].code == "protocol"


def test_bad_window_increment() -> None:
    relay, owner = pair()
    sid = relay.open_stream({}, end=True)
    pump(relay, owner)
    with pytest.raises(RemoteProtocolError, match="WINDOW"):
        relay.receive(encode_frame(FrameType.WINDOW, sid, struct.pack(">I", 0)))


def test_websocket_messages_survive_any_split() -> None:
    from p2p2p.protocol.tunnel import WsMessageParser, encode_ws_message

    messages: list[bytes | str] = ["héllo", b"\x00\x01binary", "", b"", "x" * 70_000]
    wire = b"".join(encode_ws_message(m) for m in messages)
    for piece in (1, 3, 7, 4096, len(wire)):
        parser = WsMessageParser()
        got: list[bytes | str] = []
        for start in range(0, len(wire), piece):
            got += parser.feed(wire[start : start + piece])
        assert got == messages and parser.pending == 0


def test_websocket_framing_refuses_what_would_hurt() -> None:
    from p2p2p.protocol.tunnel import WsMessageParser, encode_ws_message

    with pytest.raises(RemoteProtocolError, match="exceeds"):
        WsMessageParser(max_message=10).feed(encode_ws_message(b"x" * 11))
    with pytest.raises(RemoteProtocolError, match="kind"):
        WsMessageParser().feed(b"\x09\x00\x00\x00\x00")
    with pytest.raises(RemoteProtocolError, match="UTF-8"):
        WsMessageParser().feed(b"\x01\x00\x00\x00\x01\xff")
