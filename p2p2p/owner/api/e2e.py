"""``POST /.p2p2p/e2e``: a program's request, end-to-end encrypted to the owner's key.

The relay carries the bytes and can read none of them: the access token, the
operation (``query``, ``pull``, ``schema``, ``info``, ``notes``, ``post_note``), the SQL and the
result all travel inside ``protocol.envelope``. The answer is one sealed stream: an
``{"ok"}`` header, the Arrow IPC pieces, and an end marker carrying the result's facts,
so a cut or a reorder on the way is detected by the client.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any

from ...errors import BadParameters, ExportRefused, Forbidden, P2P2PError, Tampered
from ...protocol import envelope
from ...store.executor import encode_params
from ..pulls import pull_statement
from ..shares import Share, ShareManager
from .about import info, schema
from .access import ANONYMOUS, Caller, caller_for, enroll
from .http import NO_STORE, Request, Response, error_response
from .notes import notes_op
from .results import audit, start, until_revoked

__all__ = ["SEAL_PIECE", "e2e"]

SEAL_PIECE = 1 << 20
LIMITS = ("timeout_s", "max_rows", "max_bytes", "compression")


async def e2e(manager: ShareManager, share: Share, request: Request) -> Response:
    public, secret = manager.identity.box_keys
    body = request.body
    try:
        session = envelope.OwnerSession(
            public, secret, share.share_id, body[: envelope.REQUEST_PREFIX_BYTES]
        )
        chunks = session.request.feed(body[envelope.REQUEST_PREFIX_BYTES :])
        session.request.close()
        message = json.loads(b"".join(chunks))
        if not isinstance(message, dict):
            raise ValueError
    except Tampered as exc:
        return error_response(exc)
    except ValueError:
        return error_response(Tampered("the encrypted request is not valid"))
    return Response(
        200,
        {"content-type": "application/octet-stream", **NO_STORE},
        _answer(share, session, message),
    )


async def _answer(
    share: Share, session: envelope.OwnerSession, message: dict[str, Any]
) -> AsyncGenerator[bytes | bytearray, None]:
    seal = session.response.seal
    out = bytearray(session.response.header)  # leaves with the first answer piece

    def last_piece(answer: dict[str, Any]) -> bytes:
        """What is still pending plus the final, end-marked JSON answer."""
        return bytes(out + seal(json.dumps(answer).encode(), final=True))

    viewer = message.get("session")
    # A dashboard viewer's session id is chosen by the client and checked by nobody: it
    # is logged as a claim next to the (verified) client, never as who asked.
    claimed = viewer[:16] if isinstance(viewer, str) and viewer else None
    caller = Caller(ANONYMOUS)
    channel = "e2e"
    try:
        # An invite link carries no token: the invite is the way in, once.
        enrolling = message.get("op") == "enroll"
        if not enrolling and not share.token_ok(message.get("token")):
            raise Forbidden("the link's access token is wrong or revoked")
        client = envelope.verify_claim(
            message.get("client"), share.share_id, session.client_public_key
        )
        if enrolling:
            yield last_piece({"ok": True, **await enroll(share, client, message.get("invite"))})
            return
        caller = caller_for(share, client, message.get("ticket"))
        op = message.get("op")
        if op in ("notes", "post_note"):
            sender = viewer if isinstance(viewer, str) and viewer else None
            trusted = caller.viewer is not None
            answer = await notes_op(share, op, message, sender, trusted)
            yield last_piece({"ok": True, **answer})
            return
        if op == "info":
            yield last_piece({"ok": True, "info": info(share)})
            return
        if op == "schema":
            yield last_piece({"ok": True, "schema": await schema(share, caller.tables)})
            return
        if op == "pull":
            # One page of a table the owner allows copying (owner.pulls): the statement
            # is built on this side, from names checked against the store.
            channel = "pull"
            try:
                sql, page_params = await asyncio.to_thread(
                    pull_statement, share, caller.tables, message
                )
            except P2P2PError as exc:  # a refused pull is on the record too
                asked = f"pull {str(message.get('table', ''))[:200]!r}"
                audit(share, asked, caller, channel, exc.code, None, claimed)
                raise
            params, style = encode_params(page_params)
        elif op in ("query", "export"):
            if op == "export":
                # A download of what a viewer sees: on the record as one.
                channel = "export"
                if not share.exports:
                    refused = ExportRefused("the owner turned downloads off for this share")
                    asked = str(message.get("sql", ""))[:2000]
                    audit(share, asked, caller, channel, refused.code, None, claimed)
                    raise refused
            sql = str(message.get("sql", ""))
            params = base64.b64decode(message.get("params") or "")
            style = message.get("style")
        else:
            raise BadParameters(f"unknown operation {op!r}")
        limits = {k: message.get(k) for k in LIMITS if message.get(k) is not None}
        result = await start(
            share, sql, params, style, caller, channel, claimed_session=claimed, **limits
        )
    except P2P2PError as exc:
        yield last_piece({"ok": False, "error": exc.to_dict()})
        return
    out += seal(json.dumps({"ok": True}).encode())
    stream = result.stream
    outcome = "cancelled"  # unless it ends below: the client went away mid-result
    try:
        async with aclosing(until_revoked(result, share, caller)) as pieces:
            async for ready, last in pieces:
                for chunk in ready:
                    share.bytes_out += len(chunk)
                    view = memoryview(chunk)
                    # A record batch can be tens of MiB; sealed pieces stay small so
                    # neither side buffers a whole batch twice and tunnel frames stay
                    # near their size.
                    for begin in range(0, len(view), SEAL_PIECE):
                        out += seal(bytes(view[begin : begin + SEAL_PIECE]))
                        if len(out) >= SEAL_PIECE:
                            # Handed on as it is (a fresh buffer takes its place), not
                            # copied: a result's bytes are copied enough on their way.
                            yield out
                            out = bytearray()
                if not last:  # at the end, the END marker below joins the last data
                    yield out
                    out = bytearray()
        outcome = "ok"
        # vars, not dataclasses.asdict: its fields are plain values, and asdict's deep
        # copy of them took 10 us per query.
        yield last_piece({"ok": True, "end": dict(vars(stream.info))})
    except P2P2PError as exc:
        outcome = exc.code
        yield last_piece({"ok": False, "error": exc.to_dict()})
    finally:
        audit(share, sql, caller, channel, outcome, stream.info, claimed)
