"""Many streams over one websocket: the relay ↔ owner tunnel protocol (sans-I/O).

Each websocket binary message carries exactly one frame::

    type (1 byte) | flags (1) | stream id (4, big endian) | payload

Streams carry one proxied HTTP request/response or one WebSocket session. Flow control
is per stream and credit based, as in HTTP/2: a sender may have at most the peer's
window of unacknowledged bytes in flight on a stream, and the receiver returns credit
(WINDOW frames) as its application consumes data. So one huge result can neither starve
small requests on the same tunnel nor pile up in either side's memory.

``Connection`` does no I/O: feed it received messages (``receive``), ask it to send
(``open_stream``, ``send_data``, ``end_stream``, ``reset_stream``, ``ping``, ``control``),
and transmit what ``data_to_send`` returns. What the peer sent against the protocol raises
``RemoteProtocolError`` (the only answer is to close the websocket); asking this side to
go past its own limits raises ``LocalProtocolError`` (refuse that one request).
"""

from __future__ import annotations

import dataclasses
import enum
import json
import struct
from collections.abc import Mapping
from typing import Any

from ..errors import LocalProtocolError, RemoteProtocolError

HEADER = struct.Struct(">BBI")
DEFAULT_WINDOW = 4 << 20  # bytes in flight per stream
DEFAULT_MAX_PAYLOAD = 1 << 20  # bytes per DATA frame
DEFAULT_MAX_STREAMS = 256
MAX_JSON = 64 << 10  # OPEN/RESET/CONTROL payloads
# A proxied request's body, enforced by both ends: far below one window, so a request
# never waits for credit.
MAX_REQUEST_BODY = 1 << 20


class FrameType(enum.IntEnum):
    OPEN = 1  # JSON: the request head; may carry END_STREAM
    DATA = 2
    WINDOW = 3  # 4-byte credit increment
    RESET = 4  # JSON: {"code", "reason"}; abandons the stream in both directions
    PING = 5
    PONG = 6
    CONTROL = 7  # stream 0, JSON: registration, heartbeats, goodbye


END_STREAM = 0x1


@dataclasses.dataclass(frozen=True)
class StreamOpened:
    stream_id: int
    head: dict[str, Any]
    ended: bool


@dataclasses.dataclass(frozen=True)
class DataReceived:
    stream_id: int
    data: bytes
    ended: bool


@dataclasses.dataclass(frozen=True)
class StreamEnded:
    """The peer will send nothing more on this stream (it may still be reading)."""

    stream_id: int


@dataclasses.dataclass(frozen=True)
class StreamReset:
    stream_id: int
    code: str
    reason: str


@dataclasses.dataclass(frozen=True)
class WindowOpened:
    """The peer returned credit: ``send_data`` on this stream may accept more."""

    stream_id: int


@dataclasses.dataclass(frozen=True)
class PongReceived:
    payload: bytes


@dataclasses.dataclass(frozen=True)
class ControlReceived:
    message: dict[str, Any]


Event = (
    StreamOpened
    | DataReceived
    | StreamEnded
    | StreamReset
    | WindowOpened
    | PongReceived
    | ControlReceived
)


@dataclasses.dataclass
class _Stream:
    send_window: int
    recv_window: int  # credit we have granted and not yet seen used
    unacked: int = 0  # consumed by our application, not yet returned as credit
    local_ended: bool = False
    remote_ended: bool = False


def encode_frame(kind: FrameType, stream_id: int, payload: bytes = b"", flags: int = 0) -> bytes:
    return HEADER.pack(kind, flags, stream_id) + payload


def _json(payload: bytes, what: str) -> dict[str, Any]:
    if len(payload) > MAX_JSON:
        raise RemoteProtocolError(f"{what} payload of {len(payload)} bytes exceeds {MAX_JSON}")
    try:
        value = json.loads(payload)
    except ValueError:
        raise RemoteProtocolError(f"{what} payload is not JSON") from None
    if not isinstance(value, dict):
        raise RemoteProtocolError(f"{what} payload must be a JSON object")
    return value


def _dump(obj: dict[str, Any]) -> bytes:
    data = json.dumps(obj, separators=(",", ":")).encode()
    if len(data) > MAX_JSON:
        raise ValueError(f"message of {len(data)} bytes exceeds {MAX_JSON}")
    return data


class Connection:
    """One side of a tunnel. The relay is the ``initiator`` (odd stream ids)."""

    def __init__(
        self,
        initiator: bool,
        window: int = DEFAULT_WINDOW,
        max_payload: int = DEFAULT_MAX_PAYLOAD,
        max_streams: int = DEFAULT_MAX_STREAMS,
    ) -> None:
        self.initiator = initiator
        self.window = window
        self.max_payload = max_payload
        self.max_streams = max_streams
        self._next_id = 1 if initiator else 2
        self._streams: dict[int, _Stream] = {}
        self._out: list[bytes] = []
        self._peer_max_id = 0  # ids only grow, so an id at or below this is an old stream

    # -- outgoing ----------------------------------------------------------------
    def data_to_send(self) -> list[bytes]:
        out, self._out = self._out, []
        return out

    def open_stream(self, head: dict[str, Any], end: bool = False) -> int:
        if len(self._streams) >= self.max_streams:
            raise LocalProtocolError(f"too many open streams ({self.max_streams})")
        stream_id = self._next_id
        self._next_id += 2
        self._streams[stream_id] = _Stream(self.window, self.window, local_ended=end)
        self._out.append(
            encode_frame(FrameType.OPEN, stream_id, _dump(head), END_STREAM if end else 0)
        )
        return stream_id

    def send_data(self, stream_id: int, data: bytes | memoryview, end: bool = False) -> int:
        """Queue as much of ``data`` as the stream's credit allows; returns bytes taken.

        ``end`` takes effect only if all of ``data`` was taken. Send the rest after a
        ``WindowOpened`` event for this stream.
        """
        stream = self._streams.get(stream_id)
        if stream is None:
            raise KeyError(f"stream {stream_id} is not open")
        if stream.local_ended:
            raise ValueError(f"stream {stream_id} was already ended")
        view = memoryview(data)
        taken = 0
        while taken < len(view) and stream.send_window > 0:
            size = min(len(view) - taken, stream.send_window, self.max_payload)
            last = end and taken + size == len(view)
            chunk = bytes(view[taken : taken + size])
            self._out.append(
                encode_frame(FrameType.DATA, stream_id, chunk, END_STREAM if last else 0)
            )
            stream.send_window -= size
            taken += size
        if end and taken == len(view):
            if not view:
                self._out.append(encode_frame(FrameType.DATA, stream_id, b"", END_STREAM))
            stream.local_ended = True
            self._maybe_forget(stream_id)
        return taken

    def end_stream(self, stream_id: int) -> None:
        self.send_data(stream_id, b"", end=True)

    def send_window(self, stream_id: int) -> int:
        stream = self._streams.get(stream_id)
        return stream.send_window if stream else 0

    def reset_stream(self, stream_id: int, code: str, reason: str = "") -> None:
        self._streams.pop(stream_id, None)
        self._out.append(
            encode_frame(FrameType.RESET, stream_id, _dump({"code": code, "reason": reason[:500]}))
        )

    def consumed(self, stream_id: int, amount: int) -> None:
        """The application has processed ``amount`` received bytes: return credit."""
        stream = self._streams.get(stream_id)
        if stream is None or stream.remote_ended:
            return
        stream.unacked += amount
        # Batch credit so a stream of small frames does not cause a WINDOW per frame.
        if stream.unacked >= self.window // 4:
            self._out.append(
                encode_frame(FrameType.WINDOW, stream_id, struct.pack(">I", stream.unacked))
            )
            stream.recv_window += stream.unacked
            stream.unacked = 0

    def ping(self, payload: bytes = b"") -> None:
        self._out.append(encode_frame(FrameType.PING, 0, payload[:64]))

    def control(self, message: dict[str, Any]) -> None:
        self._out.append(encode_frame(FrameType.CONTROL, 0, _dump(message)))

    @property
    def open_streams(self) -> list[int]:
        return sorted(self._streams)

    # -- incoming ----------------------------------------------------------------
    def receive(self, message: bytes) -> list[Event]:
        if len(message) < HEADER.size:
            raise RemoteProtocolError(f"frame of {len(message)} bytes is shorter than its header")
        kind_byte, flags, stream_id = HEADER.unpack_from(message)
        payload = message[HEADER.size :]
        try:
            kind = FrameType(kind_byte)
        except ValueError:
            raise RemoteProtocolError(f"unknown frame type {kind_byte}") from None
        if kind in (FrameType.PING, FrameType.PONG, FrameType.CONTROL):
            if stream_id != 0:
                raise RemoteProtocolError(f"{kind.name} frames belong on stream 0")
            if kind is FrameType.PING:
                self._out.append(encode_frame(FrameType.PONG, 0, payload[:64]))
                return []
            if kind is FrameType.PONG:
                return [PongReceived(payload)]
            return [ControlReceived(_json(payload, "CONTROL"))]
        if stream_id == 0:
            raise RemoteProtocolError(f"{kind.name} frames need a stream id")
        if kind is FrameType.OPEN:
            return self._on_open(stream_id, flags, payload)
        if kind is FrameType.DATA:
            return self._on_data(stream_id, flags, payload)
        if kind is FrameType.WINDOW:
            return self._on_window(stream_id, payload)
        return self._on_reset(stream_id, payload)

    def _on_open(self, stream_id: int, flags: int, payload: bytes) -> list[Event]:
        if (stream_id % 2 == 1) == self.initiator:
            raise RemoteProtocolError(f"the peer may not open stream {stream_id} (wrong parity)")
        if stream_id <= self._peer_max_id:
            raise RemoteProtocolError(f"stream {stream_id} was opened twice or out of order")
        self._peer_max_id = stream_id
        head = _json(payload, "OPEN")
        if len(self._streams) >= self.max_streams:
            self.reset_stream(stream_id, "refused", f"more than {self.max_streams} streams at once")
            return []
        ended = bool(flags & END_STREAM)
        self._streams[stream_id] = _Stream(self.window, self.window, remote_ended=ended)
        return [StreamOpened(stream_id, head, ended)]

    def _on_data(self, stream_id: int, flags: int, payload: bytes) -> list[Event]:
        if len(payload) > self.max_payload:
            raise RemoteProtocolError(
                f"DATA frame of {len(payload)} bytes exceeds {self.max_payload}"
            )
        stream = self._streams.get(stream_id)
        if stream is None:
            if self._was_opened(stream_id):
                return []  # in flight when the stream was reset or finished
            raise RemoteProtocolError(f"DATA on stream {stream_id}, which was never opened")
        if stream.remote_ended:
            self.reset_stream(stream_id, "protocol", "data after the end of the stream")
            return [
                StreamReset(stream_id, "protocol", "the peer sent data after ending the stream")
            ]
        if len(payload) > stream.recv_window:
            # The peer ignored our credit: it would make us buffer without bound.
            self.reset_stream(stream_id, "flow_control", "more data than the window allows")
            return [StreamReset(stream_id, "flow_control", "the peer exceeded its window")]
        stream.recv_window -= len(payload)
        ended = bool(flags & END_STREAM)
        events: list[Event] = []
        if payload or not ended:
            events.append(DataReceived(stream_id, payload, ended))
        if ended:
            stream.remote_ended = True
            events.append(StreamEnded(stream_id))
            self._maybe_forget(stream_id)
        return events

    def _on_window(self, stream_id: int, payload: bytes) -> list[Event]:
        if len(payload) != 4:
            raise RemoteProtocolError("WINDOW frames carry a 4-byte increment")
        (increment,) = struct.unpack(">I", payload)
        stream = self._streams.get(stream_id)
        if stream is None:
            return []
        if increment == 0 or stream.send_window + increment > 1 << 31:
            raise RemoteProtocolError(f"bad WINDOW increment {increment} on stream {stream_id}")
        stream.send_window += increment
        return [WindowOpened(stream_id)]

    def _on_reset(self, stream_id: int, payload: bytes) -> list[Event]:
        body = _json(payload, "RESET")
        known = self._streams.pop(stream_id, None) is not None
        if not known:
            return []
        return [
            StreamReset(
                stream_id, str(body.get("code", "reset"))[:64], str(body.get("reason", ""))[:500]
            )
        ]

    # -- bookkeeping ------------------------------------------------------------
    def _maybe_forget(self, stream_id: int) -> None:
        stream = self._streams.get(stream_id)
        if stream is not None and stream.local_ended and stream.remote_ended:
            del self._streams[stream_id]

    def _was_opened(self, stream_id: int) -> bool:
        if (stream_id % 2 == 1) == self.initiator:
            return stream_id < self._next_id
        return stream_id <= self._peer_max_id


# -- HTTP over a stream ---------------------------------------------------------------
# A proxied request is an OPEN frame whose head is ``{"method", "path", "query",
# "headers", "share_id"}`` followed by the request body as DATA. Two of the headers are
# the relay's own words, never the client's: which origin the request came on, and the
# share's own origin a browser should use instead (see p2p2p.relay.origins). The
# response body starts with its own head: 4-byte length + JSON ``{"status",
# "headers"}``, then the body bytes.


ORIGIN_HEADER = "x-p2p2p-origin"  # "share": the share's own origin; "relay": the relay's
SHARE_ORIGIN_HEADER = "x-p2p2p-share-origin"  # e.g. http://<share id>.localhost:8765
# Paths under /s/<share id>/ a relay answers itself from its routes (the owner answers
# LIVE_PATH too, for relays that forward it): whose key the share is, and is it live.
OWNER_PATH = "/.p2p2p/owner"
LIVE_PATH = "/.p2p2p/live"


def encode_response_head(status: int, headers: Mapping[str, Any]) -> bytes:
    head = _dump({"status": status, "headers": dict(headers)})
    return struct.pack(">I", len(head)) + head


class ResponseHeadParser:
    """Splits the first bytes of a response stream into its head and the body after it."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self.head: dict[str, Any] | None = None

    def feed(self, data: bytes) -> bytes:
        """Returns body bytes that followed the head (once the head is complete)."""
        if self.head is not None:
            return data
        self._buf += data
        if len(self._buf) < 4:
            return b""
        (length,) = struct.unpack_from(">I", self._buf)
        if length > MAX_JSON:
            raise RemoteProtocolError(f"response head of {length} bytes exceeds {MAX_JSON}")
        if len(self._buf) < 4 + length:
            return b""
        head = _json(bytes(self._buf[4 : 4 + length]), "response head")
        status = head.get("status")
        if not isinstance(status, int) or not 100 <= status <= 599:
            raise RemoteProtocolError(f"response head has no valid status ({status!r})")
        if not isinstance(head.get("headers", {}), dict):
            raise RemoteProtocolError("response head headers must be an object")
        self.head = head
        rest = bytes(self._buf[4 + length :])
        self._buf = bytearray()
        return rest


# -- WebSocket sessions over a stream ------------------------------------------------
# A stream whose OPEN head has ``"websocket": true`` carries one WebSocket session. The
# owner answers with a response head: 101 accepts (its headers may name the chosen
# subprotocol), anything else refuses and ends the stream. After 101, DATA in each
# direction is a sequence of messages: kind (1 byte: 1 text, 2 binary) | length (4, big
# endian) | payload. Ending the stream closes the session; RESET aborts it.

WS_TEXT = 1
WS_BINARY = 2
WS_HEADER = struct.Struct(">BI")
DEFAULT_MAX_WS_MESSAGE = 16 << 20


def encode_ws_message(payload: bytes | str) -> bytes:
    if isinstance(payload, str):
        return WS_HEADER.pack(WS_TEXT, len(payload.encode())) + payload.encode()
    return WS_HEADER.pack(WS_BINARY, len(payload)) + payload


class WsMessageParser:
    """Splits a session's DATA bytes back into whole messages (str for text)."""

    def __init__(self, max_message: int = DEFAULT_MAX_WS_MESSAGE) -> None:
        self._buf = bytearray()
        self._max = max_message

    def feed(self, data: bytes) -> list[bytes | str]:
        self._buf += data
        messages: list[bytes | str] = []
        while len(self._buf) >= WS_HEADER.size:
            kind, length = WS_HEADER.unpack_from(self._buf)
            if kind not in (WS_TEXT, WS_BINARY):
                raise RemoteProtocolError(f"unknown websocket message kind {kind}")
            if length > self._max:
                raise RemoteProtocolError(
                    f"websocket message of {length} bytes exceeds {self._max}"
                )
            end = WS_HEADER.size + length
            if len(self._buf) < end:
                break
            payload = bytes(self._buf[WS_HEADER.size : end])
            del self._buf[:end]
            if kind == WS_TEXT:
                try:
                    messages.append(payload.decode())
                except UnicodeDecodeError:
                    raise RemoteProtocolError("a text websocket message is not UTF-8") from None
            else:
                messages.append(payload)
        return messages

    @property
    def pending(self) -> int:
        return len(self._buf)
