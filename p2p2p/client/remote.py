"""A share reached through its link: end-to-end encrypted requests to its owner.

Before sending anything, ``RemoteStore`` asks the relay for the owner's key and checks it
against the self-certifying share id, so a relay cannot stand in for the owner. Every
request is then sealed to that key (``protocol.envelope``) with the access token inside;
the relay sees sizes and timing only. Requests are signed with the user's identity when
one exists (``p2p2p keys``), so the owner's audit log names the analyst. Notes are read
and posted through the same channel, and every note's signature is checked here.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Generator, Iterator
from contextlib import AbstractContextManager, closing, contextmanager
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from ..errors import (
    Forbidden,
    IdentityError,
    NoteRefused,
    NotFound,
    NotInvited,
    P2P2PError,
    ResultTooLarge,
    ShareOffline,
    Tampered,
    Truncated,
)
from ..identity import FILENAME, Identity, box_public_key, fingerprint, unb64
from ..paths import config_dir, embedded_relay_gone
from ..protocol import envelope, notes
from ..protocol.shareid import matches
from ..protocol.tunnel import OWNER_PATH
from ..store.arrow import open_ipc_stream, to_pandas
from ..store.executor import Params, ResultInfo, encode_params
from ..store.limits import given
from .results import Progress, collect

if TYPE_CHECKING:  # pandas is loaded when a frame is asked for, not to read a share
    import pandas as pd
from .target import Link
from .transport import Address, Answer, RelayHttp, Unreachable

__all__ = ["RemoteStore", "display_name", "existing_identity", "notes_frame"]


class RemoteStore:
    """A share reached through its link."""

    def __init__(
        self,
        link: Link,
        timeout_s: float = 60.0,
        compression: str | None = "zstd",
        identity: Identity | str | None = "auto",
        session: str | None = None,
        ticket: str | None = None,
    ) -> None:
        self.link = link
        self.ticket = ticket  # a dashboard kernel's: it queries for one signed-in viewer
        self.session = session  # names one viewer's session in the owner's audit log
        # Requests are signed with the user's identity when one exists (``p2p2p keys``),
        # so the owner's audit log names the analyst; otherwise they are anonymous.
        self.identity = existing_identity() if identity == "auto" else identity
        # Whether this user's own key may be created to sign a note (never for a
        # dashboard's kernel, which runs as the owner: viewers sign in their browser).
        self.may_create_identity = identity == "auto"
        # With other relays to go to, one that does not take the connection within
        # FAILOVER_S is passed over (a relay that is down refuses at once).
        connect_s = min(timeout_s, FAILOVER_S) if link.also else timeout_s
        self.http = RelayHttp(timeout_s, connect_s)
        self._e2e_urls: dict[str, Address] = {}  # parsed once per relay: every query uses one
        self.relay = link.base  # the relay in use: the first that answered
        self.last_info = ResultInfo()
        # zstd (docs/benchmarks.md, "The query path"): on loopback it is as fast as lz4
        # (both beat none: every byte crosses three processes and is sealed and opened),
        # and on a real line its tighter packing makes it much faster.
        self.compression = compression
        info = self._owner_info()
        self.owner_key = unb64(str(info["owner"]))
        self.name = str(info["name"])
        if not matches(link.share_id, self.owner_key, self.name):
            raise Tampered(
                "the relay presented an owner key that does not match the share id: refusing to send anything"
            )
        self._box_key = box_public_key(self.owner_key)
        self.enrolled: dict[str, Any] | None = None
        self.work_bits = notes.WORK_BASE_BITS  # the share's price for a new key's note
        if link.invite:
            self._redeem(link.invite)

    def _redeem(self, code: str) -> None:
        """Enroll this user's key with a one-time invite; the answer holds the link's token."""
        if self.identity is None and self.may_create_identity:
            self.identity, _ = Identity.load_or_create()
        if not isinstance(self.identity, Identity):
            raise NotInvited("an invite is redeemed with your key: connect with your identity")
        answer = self._single({"op": "enroll", "invite": code})
        self.enrolled = {k: answer.get(k) for k in ("viewer", "tables", "expires")}
        self.link = self.link.with_token(str(answer["token"]))

    def _share_url(self, relay: str) -> str:
        return f"{relay}/s/{self.link.share_id}"

    def _in_order(self) -> list[str]:
        """The link's relays, the one in use first."""
        return [self.relay] + [r for r in self.link.relays if r != self.relay]

    def _owner_info(self) -> dict[str, Any]:
        """The share's public facts, from the first of the link's relays that has it."""
        failed: ShareOffline | None = None
        for relay in self._in_order():
            try:
                answer = self.http.get(f"{self._share_url(relay)}{OWNER_PATH}")
            except Unreachable as exc:
                failed = ShareOffline(_unreachable(relay, exc))
                continue
            if answer.status != 200:
                error = _http_error(answer)
                if isinstance(error, ShareOffline):
                    failed = error
                    continue
                raise error
            self.relay = relay
            return dict(answer.json())
        assert failed is not None
        raise failed

    def _call(self, message: dict[str, Any]) -> Generator[tuple[bytes, bool], None, None]:
        """One sealed request and its answer's pieces. A relay that is down, or that
        does not have the share now (its owner tunnel went away), is passed over for the
        link's next one; nothing reached the owner through it, so asking again is safe.
        An answer cut once it has begun is not retried: the caller gets the error."""
        relays = self._in_order()
        for i, relay in enumerate(relays):
            last = i == len(relays) - 1
            try:
                yield from self._call_via(relay, message)
                self.relay = relay
                return
            except _PassOver as exc:
                if last:
                    raise exc.error from None

    def _call_via(
        self, relay: str, message: dict[str, Any]
    ) -> Generator[tuple[bytes, bool], None, None]:
        session = envelope.ClientSession(self._box_key, self.link.share_id)
        claim = None
        if isinstance(self.identity, Identity):
            claim = envelope.client_claim(self.identity, self.link.share_id, session)
        payload = json.dumps(
            {
                **message,
                "token": self.link.token,
                "client": claim,
                "session": self.session,
                **({"ticket": self.ticket} if self.ticket else {}),
            }
        ).encode()
        body = session.request_prefix() + session.request.seal(payload, final=True)
        address = self._e2e_urls.get(relay)
        if address is None:
            address = self._e2e_urls[relay] = Address(f"{self._share_url(relay)}/.p2p2p/e2e")
        try:
            with self.http.request("POST", address, body) as response:
                if response.status != 200:
                    response.read()
                    error = _http_error(response)
                    if isinstance(error, ShareOffline):
                        raise _PassOver(error)
                    raise error
                header = b""
                opener: envelope.Opener | None = None
                for raw in response.iter_raw():
                    if opener is None:
                        header += raw
                        if len(header) < envelope.HEADER_BYTES:
                            continue
                        opener = session.response_opener(header[: envelope.HEADER_BYTES])
                        raw = header[envelope.HEADER_BYTES :]
                    chunks = opener.feed(raw)
                    for i, chunk in enumerate(chunks):
                        yield chunk, opener.finished and i == len(chunks) - 1
                if opener is None:
                    raise Truncated("the owner's answer ended before it began")
                opener.close()
        except Unreachable as exc:
            if exc.connecting:
                raise _PassOver(ShareOffline(_unreachable(relay, exc))) from None
            raise ShareOffline(f"the share went offline while answering ({exc})") from None

    def _single(self, message: dict[str, Any]) -> dict[str, Any]:
        with closing(self._call(message)) as chunks:
            answers = [json.loads(chunk) for chunk, _final in chunks]
        if len(answers) != 1:
            raise Truncated(f"expected one answer, got {len(answers)}")
        answer: dict[str, Any] = answers[0]
        if not answer.get("ok"):
            raise P2P2PError.from_dict(answer.get("error") or {})
        return answer

    def info(self) -> dict[str, Any]:
        return dict(self._single({"op": "info"})["info"])

    def schema(self) -> dict[str, Any]:
        return dict(self._single({"op": "schema"})["schema"])

    def query_arrow(
        self, sql: str, params: Params = None, progress: Progress | None = None, **limits: Any
    ) -> pa.Table:
        return self._ask_arrow("query", sql, params, progress, **limits)

    def export_arrow(self, sql: str, params: Params = None, **limits: Any) -> pa.Table:
        """A query whose rows the caller will save as a file (a dashboard's download
        button): the owner logs it as an export, and refuses it if downloads are off."""
        return self._ask_arrow("export", sql, params, None, **limits)

    def _ask_arrow(
        self, op: str, sql: str, params: Params, progress: Progress | None, **limits: Any
    ) -> pa.Table:
        return self._arrow_answer(self._query_message(op, sql, params, limits), progress)

    def _query_message(
        self, op: str, sql: str, params: Params, limits: dict[str, Any]
    ) -> dict[str, Any]:
        param_bytes, style = encode_params(params)
        return {
            "op": op,
            "sql": sql,
            "params": base64.b64encode(param_bytes).decode(),
            "style": style,
            "compression": self.compression,
            **given(**limits),
        }

    def pull_page(
        self,
        table: str,
        cursor: str | None = None,
        after: Any = None,
        inclusive: bool = False,
        limit: int | None = None,
        progress: Progress | None = None,
    ) -> pa.Table:
        """One page of a table the owner allows pulling (``p2p2p pull``): rows whose
        cursor (``rowid`` by default) is past ``after``, in cursor order, with the cursor
        value first as ``_p2p2p_cursor``."""
        message = {
            "op": "pull",
            "table": table,
            "cursor": cursor,
            "after": after,
            "inclusive": inclusive,
            "limit": limit,
            "compression": self.compression,
        }
        return self._arrow_answer(message, progress)

    def query_batches(
        self, sql: str, params: Params = None, **limits: Any
    ) -> AbstractContextManager[pa.RecordBatchReader]:
        """The answer as a ``pyarrow.RecordBatchReader``, batch by batch as it arrives:
        this process holds only the batch in hand, so an answer larger than memory can be
        written to a file or folded as it streams. Leaving the ``with`` block early stops
        the query on the owner's machine; ``last_info`` is set once the end is read."""
        return self._arrow_stream(self._query_message("query", sql, params, limits))

    @contextmanager
    def _arrow_stream(self, message: dict[str, Any]) -> Iterator[pa.RecordBatchReader]:
        # The generator holds an HTTP response open: it is closed here, on every path,
        # never left to the garbage collector (which may finalise it inside httpcore's
        # pool lock, held by this very thread for the next request: a deadlock).
        with closing(self._call(message)) as chunks:
            first, final = next(chunks)
            head = json.loads(first)
            if not head.get("ok") or final:
                for _rest in chunks:  # the answer is complete: the connection can be reused
                    pass
                raise P2P2PError.from_dict(head.get("error") or {})

            def next_ipc_chunk() -> bytes | None:
                # Decrypted pieces of the Arrow stream go straight into pyarrow's reader, so
                # record batches are decoded while later ones are still on the wire.
                for chunk, last in chunks:
                    if not last:
                        return chunk
                    end = json.loads(chunk)
                    if not end.get("ok"):
                        raise P2P2PError.from_dict(end.get("error") or {})
                    self.last_info = ResultInfo(**end["end"])
                    return None
                raise Truncated("the result ended without its end marker")

            ipc = open_ipc_stream(next_ipc_chunk)

            def batches() -> Iterator[pa.RecordBatch]:
                yield from ipc
                while next_ipc_chunk() is not None:  # up to the end marker after Arrow's end
                    pass
                # Reading the HTTP response to its very end returns the connection to the
                # pool; an abandoned one would be closed, and the next query would pay a
                # new connect.
                for _extra in chunks:
                    raise Tampered("data after the end marker")

            yield pa.RecordBatchReader.from_batches(ipc.schema, batches())

    def _arrow_answer(self, message: dict[str, Any], progress: Progress | None) -> pa.Table:
        with self._arrow_stream(message) as reader:
            asked = message.get("max_bytes")
            return collect(
                reader.schema, iter(reader), progress, asked if isinstance(asked, int) else None
            )

    def query(self, sql: str, params: Params = None, **limits: Any) -> pd.DataFrame:
        return to_pandas(self.query_arrow(sql, params, **limits))

    # -- notes -------------------------------------------------------------------
    def notes_since(self, after: int = 0, wait_s: float = 0.0) -> tuple[list[dict[str, Any]], int]:
        """Notes newer than sequence number ``after`` (waiting up to ``wait_s`` for one)
        and the newest sequence number."""
        answer = self._single({"op": "notes", "after": int(after), "wait_s": wait_s})
        if isinstance(answer.get("work_bits"), int):
            self.work_bits = max(0, min(int(answer["work_bits"]), notes.WORK_MAX_BITS))
        return list(answer.get("notes", [])), int(answer.get("seq", after))

    def notes(self) -> pd.DataFrame:
        """The share's notes, newest first, each signature checked here (not trusted)."""
        return notes_frame(self.notes_since(0)[0])

    def post_note(
        self,
        text: str,
        on: str | None = None,
        column: str | None = None,
        row: dict[str, Any] | None = None,
        kind: str = "note",
        parent: str | None = None,
        name: str | None = None,
        identity: Identity | None = None,
        key_holder: str | None = None,
    ) -> dict[str, Any]:
        """Sign a note with your identity (``p2p2p keys``) and send it to the owner.

        Your first note creates your key if you have none: a note is signed by someone.
        """
        signer = identity or (self.identity if isinstance(self.identity, Identity) else None)
        if signer is None and self.may_create_identity:
            signer, _created = Identity.load_or_create()
            self.identity = signer
        if signer is None:
            raise IdentityError("notes are signed: create your key first with `p2p2p keys`")
        note = notes.sign(
            signer,
            notes.draft(
                self.link.share_id,
                signer.public_key,
                name or display_name(),
                text,
                kind=kind,
                on=notes.target(on, column, row),
                parent=parent,
            ),
        )
        return self.send_note(note, key_holder)

    def send_note(
        self, note: dict[str, Any], key_holder: str | None = None, work: str | None = None
    ) -> dict[str, Any]:
        """Send a note someone already signed (a browser, for one); returns it as kept.

        A note from a key the owner has not seen carries a proof of work: ``work`` if
        the signer did it (a browser), else it is done here, at the share's current price,
        and once more if the owner asks for more (a flood raised it meanwhile).
        """
        message: dict[str, Any] = {"op": "post_note", "note": note}
        if key_holder:
            message["key_holder"] = key_holder
        message["work"] = work or notes.prove_work(note, self.work_bits)
        try:
            return dict(self._single(message)["note"])
        except NoteRefused as exc:
            wanted = exc.details.get("work_bits")
            if not isinstance(wanted, int) or not 0 < wanted <= notes.WORK_MAX_BITS:
                raise
            self.work_bits = wanted
            message["work"] = notes.prove_work(note, wanted)
            return dict(self._single(message)["note"])

    def close(self) -> None:
        self.http.close()


def display_name() -> str:
    """The name notes are signed with: ``$P2P2P_NAME``, else the login name."""
    import getpass

    return os.environ.get("P2P2P_NAME") or getpass.getuser()


def notes_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Notes as a table, newest first, with a ``verified`` column computed here."""
    import pandas as pd

    records = []
    for note in rows:
        retracted = bool(note.get("retracted_by"))
        on = note.get("target") or {}
        records.append(
            {
                "created": pd.to_datetime(int(note.get("created", 0)), unit="ms", utc=True),
                "name": note.get("name", ""),
                "author": fingerprint(unb64(str(note.get("author", "")))),
                "kind": note.get("kind"),
                "on": notes.describe_target(on),
                "body": "" if retracted else note.get("body", ""),
                "verified": notes.signature_state(note) != "forged",
                "retracted": retracted,
                "id": note.get("id"),
                "parent": note.get("parent"),
            }
        )
    frame = pd.DataFrame.from_records(
        records,
        columns=[
            "created", "name", "author", "kind", "on", "body",
            "verified", "retracted", "id", "parent",
        ],
    )  # fmt: skip
    return frame.sort_values("created", ascending=False, kind="stable").reset_index(drop=True)


def existing_identity() -> Identity | None:
    """The user's identity if one was created; never creates one behind their back."""
    path = config_dir() / FILENAME
    return Identity.load(path) if path.exists() else None


FAILOVER_S = 2.0  # a relay that does not take the connection in this time is passed over


class _PassOver(Exception):
    """This relay cannot carry the request now; the next one may."""

    def __init__(self, error: ShareOffline) -> None:
        super().__init__(error.message)
        self.error = error


def _unreachable(relay: str, exc: Unreachable) -> str:
    """Why nothing answers at the relay, as far as this machine knows."""
    known = embedded_relay_gone(relay) if exc.connecting else None
    return f"cannot reach the relay at {relay}: " + (known or str(exc))


def _http_error(response: Answer) -> P2P2PError:
    """An answer outside the encryption: anyone on the way (the relay, a proxy in front
    of it) could have written it, so its words are shown as theirs, never as the owner's,
    and a code it names can only pick among the errors of reaching a share."""
    try:
        body = response.json()
        code, message = str(body.get("error", "error")), str(body.get("message", response.text))
    except (ValueError, AttributeError):
        code, message = "error", response.text or f"HTTP {response.status}"
    words = "".join(c if c.isprintable() else " " for c in message)[:200].strip()
    said = f"{words} (HTTP {response.status} from {response.host}, outside the encryption)"
    if code == "offline" or response.status in (404, 502, 503):
        return ShareOffline(said)
    cls = UNSIGNED_CODES.get(code, P2P2PError)
    return cls(said)


# What an unauthenticated answer may claim: errors of reaching a share. Anything about
# the query itself only ever arrives inside the owner's encrypted answer.
UNSIGNED_CODES: dict[str, type[P2P2PError]] = {
    "forbidden": Forbidden,
    "too_large": ResultTooLarge,
    "not_found": NotFound,
}
