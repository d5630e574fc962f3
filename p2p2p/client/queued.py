"""A note for a share whose owner is away: sealed here, held by a relay, delivered
when the owner is back (``protocol.mailbox``, ``relay.mailbox``).

::

    from p2p2p.client.queued import queue_note, retract_queued
    waiting = queue_note(link, "Q3 looks odd", on="sales")
    retract_queued(waiting["id"])        # before the owner is back: gone from the relay

The secret that retracts a queued note stays in this user's data directory, so only
whoever queued it can take it back.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx

from ..errors import BadTarget, IdentityError, NoteRefused, ShareOffline, Tampered
from ..identity import Identity, unb64
from ..paths import data_dir, private_dir, write_private_json
from ..protocol import mailbox, notes
from ..protocol.shareid import matches
from .remote import display_name, existing_identity
from .target import Link, parse_link

__all__ = ["queue_note", "retract_queued"]

TIMEOUT_S = 10.0
RETRACT_HEADER = "X-P2P2P-Retract"


def queue_note(
    link: Link | str,
    text: str,
    on: str | None = None,
    column: str | None = None,
    row: dict[str, Any] | None = None,
    kind: str = "note",
    parent: str | None = None,
    name: str | None = None,
    identity: Identity | None = None,
) -> dict[str, Any]:
    """Sign ``text`` as a note and leave it, sealed to the owner's key, at the first of
    the link's relays that carried the share. Returns ``{id, relay, expires, note}``.
    ``ShareOffline`` if no relay can hold it (none knows the share, or the share is
    online after all: then send it with ``RemoteStore.post_note``)."""
    link = parse_link(link) if isinstance(link, str) else link
    signer = identity or existing_identity()
    if signer is None:
        signer, _created = Identity.load_or_create()
    if not isinstance(signer, Identity):
        raise IdentityError("notes are signed: create your key first with `p2p2p keys`")
    reasons = []
    with httpx.Client(timeout=TIMEOUT_S, trust_env=False) as http:
        for relay in link.relays:
            base = f"{relay}/s/{link.share_id}/.p2p2p/queue"
            try:
                answer = http.get(base)
            except httpx.TransportError as exc:
                reasons.append(f"{relay}: {exc}")
                continue
            if answer.status_code != 200:
                reasons.append(f"{relay}: HTTP {answer.status_code}")
                continue
            facts = answer.json()
            owner_key, share_name = unb64(str(facts["owner"])), str(facts["name"])
            if not matches(link.share_id, owner_key, share_name):
                raise Tampered(
                    f"the relay at {relay} named an owner key that does not match the share id"
                )
            if facts.get("online"):
                raise ShareOffline("the share is online now: send the note to its owner directly")
            note = notes.sign(
                signer,
                notes.draft(
                    link.share_id, signer.public_key, name or display_name(), text,
                    kind=kind, on=notes.target(on, column, row), parent=parent,
                ),
            )  # fmt: skip
            work = notes.prove_work(note, notes.WORK_BASE_BITS)
            sealed = mailbox.seal(owner_key, note, work)
            secret = mailbox.retract_secret()
            posted = http.post(
                base,
                json={
                    "sealed": base64.b64encode(sealed).decode(),
                    "tag": mailbox.retract_tag(secret),
                },
            )
            if posted.status_code != 200:
                words = _words(posted)
                if posted.status_code == 429:
                    raise NoteRefused(f"{words} (the relay at {relay})")
                reasons.append(f"{relay}: {words}")
                continue
            item = str(posted.json()["id"])
            record = {
                "share_id": link.share_id,
                "relay": relay,
                "secret": secret,
                "note": note["id"],
            }
            write_private_json(_records() / f"{item}.json", record)
            return {
                "id": item,
                "relay": relay,
                "expires": posted.json().get("expires"),
                "note": note,
            }
    raise ShareOffline(
        "no relay of this link can hold a note for the share (" + "; ".join(reasons) + ")"
    )


def retract_queued(item_id: str) -> None:
    """Take back a note queued from this machine, before its owner is back."""
    path = _records() / f"{item_id}.json"
    if not item_id.isalnum() or not path.is_file():
        raise BadTarget(f"no note {item_id!r} was queued from here")
    record = json.loads(path.read_text())
    url = f"{record['relay']}/s/{record['share_id']}/.p2p2p/queue/{item_id}"
    try:
        answer = httpx.delete(
            url, headers={RETRACT_HEADER: record["secret"]}, timeout=TIMEOUT_S, trust_env=False
        )
    except httpx.TransportError as exc:
        raise ShareOffline(f"cannot reach the relay at {record['relay']}: {exc}") from None
    if answer.status_code == 404:
        path.unlink(missing_ok=True)
        raise NoteRefused(
            "that note no longer waits at the relay: it was delivered (retract it as any "
            "note of yours), it expired, or the relay restarted"
        )
    if answer.status_code != 200:
        raise NoteRefused(f"{_words(answer)} (the relay at {record['relay']})")
    path.unlink(missing_ok=True)


def _records() -> Any:
    return private_dir(data_dir() / "queued")


def _words(answer: httpx.Response) -> str:
    """The relay's words, printable and short: it is not the owner speaking."""
    try:
        text = str(answer.json().get("message", answer.text))
    except ValueError:
        text = answer.text
    return (
        "".join(c if c.isprintable() else " " for c in text)[:200] or f"HTTP {answer.status_code}"
    )
