"""Signed notes: one format, one canonical byte encoding, one check (sans-I/O).

A note is a small JSON object; what is signed is its *canonical bytes*::

    b"p2p2p-note-v1\\x00" + UTF-8 JSON of every field except "sig",
                          keys sorted, no whitespace, non-ASCII kept as is

Values are strings, integers, booleans, null, and (for ``target``) nested objects of
those: no floats, so every JSON library writes the same bytes. Fields:

=========  ==================================================================
v          1
id         32 lowercase hex characters, chosen by the author
share      the share id the note is about (a note cannot be moved to another)
target     {"kind": "share"} | {"kind": "table", "table"} |
           {"kind": "column", "table", "column"} | {"kind": "row", "table", "row": {…}}
kind       note | reply | action | resolve | retract
parent     the id a reply/resolve/retract refers to, else null
body       text, at most 4,000 characters (empty for resolve/retract)
author     the author's Ed25519 public key, base64
name       the author's self-declared display name, at most 80 characters
created    milliseconds since 1970-01-01 UTC, as the author's clock says
=========  ==================================================================

``sig`` is the Ed25519 signature of the canonical bytes (base64). Anyone can check it
with the author key alone; the owner adds nothing to what is signed.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import time
from typing import Any

import nacl.exceptions
import nacl.signing

from ..errors import NoteRefused
from ..identity import Identity, b64, unb64

DOMAIN = b"p2p2p-note-v1\x00"
VERSION = 1
KINDS = ("note", "reply", "action", "resolve", "retract")
TARGET_KINDS = ("share", "table", "column", "row")
MAX_BODY = 4000
MAX_NAME = 80
MAX_TARGET_BYTES = 2000
CLOCK_SKEW_MS = 5 * 60 * 1000
_ID = re.compile(r"[0-9a-f]{32}")
FIELDS = ("v", "id", "share", "target", "kind", "parent", "body", "author", "name", "created")


def canonical(note: dict[str, Any]) -> bytes:
    """The bytes an author signs: every field but the signature, canonically encoded."""
    fields = {k: note.get(k) for k in FIELDS}
    return DOMAIN + json.dumps(
        fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def _plain(value: Any, where: str) -> Any:
    """Row values as the encoding allows them: floats become text (exact, portable)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return repr(value)
    raise NoteRefused(f"{where}: {type(value).__name__} values cannot be part of a note")


def target(
    table: str | None = None, column: str | None = None, row: dict[str, Any] | None = None
) -> dict[str, Any]:
    if row is not None:
        if not table:
            raise NoteRefused("a note on a row needs its table")
        return {
            "kind": "row",
            "table": table,
            "row": {str(k): _plain(v, f"row[{k!r}]") for k, v in row.items()},
        }
    if column is not None:
        if not table:
            raise NoteRefused("a note on a column needs its table")
        return {"kind": "column", "table": table, "column": column}
    if table is not None:
        return {"kind": "table", "table": table}
    return {"kind": "share"}


def draft(
    share_id: str,
    author_key: bytes,
    name: str,
    body: str,
    kind: str = "note",
    on: dict[str, Any] | None = None,
    parent: str | None = None,
    now_ms: int | None = None,
) -> dict[str, Any]:
    """An unsigned note (sign its ``canonical`` bytes, then set ``sig``)."""
    note = {
        "v": VERSION,
        "id": secrets.token_hex(16),
        "share": share_id,
        "target": on or {"kind": "share"},
        "kind": kind,
        "parent": parent,
        "body": body,
        "author": b64(author_key),
        "name": name,
        "created": int(time.time() * 1000) if now_ms is None else now_ms,
    }
    check_shape(note)
    return note


def sign(identity: Identity, note: dict[str, Any]) -> dict[str, Any]:
    return {**note, "sig": b64(identity.sign(canonical(note)))}


def check_shape(note: dict[str, Any]) -> None:
    """Field by field: what a note may contain, with a message naming the problem."""
    if not isinstance(note, dict):
        raise NoteRefused("a note is a JSON object")
    if note.get("v") != VERSION:
        raise NoteRefused(f"unknown note version {note.get('v')!r}")
    if not isinstance(note.get("id"), str) or not _ID.fullmatch(note["id"]):
        raise NoteRefused("a note id is 32 lowercase hex characters")
    if note.get("kind") not in KINDS:
        raise NoteRefused(f"a note's kind is one of {', '.join(KINDS)}")
    parent = note.get("parent")
    if note["kind"] in ("reply", "resolve", "retract"):
        if not isinstance(parent, str) or not _ID.fullmatch(parent):
            raise NoteRefused(f"a {note['kind']} names the note it refers to (parent)")
    elif parent is not None:
        raise NoteRefused(f"a {note['kind']} has no parent")
    body = note.get("body")
    if not isinstance(body, str) or len(body) > MAX_BODY:
        raise NoteRefused(f"a note's text is at most {MAX_BODY:,} characters")
    if note["kind"] in ("note", "reply", "action") and not body.strip():
        raise NoteRefused("the note is empty")
    name = note.get("name")
    if not isinstance(name, str) or len(name) > MAX_NAME:
        raise NoteRefused(f"a display name is at most {MAX_NAME} characters")
    if not isinstance(note.get("created"), int) or isinstance(note.get("created"), bool):
        raise NoteRefused("created is whole milliseconds since 1970")
    on = note.get("target")
    if not isinstance(on, dict) or on.get("kind") not in TARGET_KINDS:
        raise NoteRefused(f"a note's target is one of {', '.join(TARGET_KINDS)}")
    try:
        size = len(json.dumps(on, allow_nan=False))
    except (TypeError, ValueError):
        raise NoteRefused("the note's target holds values a note cannot carry") from None
    if size > MAX_TARGET_BYTES:
        raise NoteRefused(f"the note's target is larger than {MAX_TARGET_BYTES} bytes")
    try:
        if len(unb64(str(note.get("author")))) != 32:
            raise ValueError
    except ValueError:
        raise NoteRefused("the author key must be a 32-byte Ed25519 key, base64") from None


def verify(note: dict[str, Any]) -> None:
    """The signature matches the author key over the canonical bytes, or ``NoteRefused``."""
    check_shape(note)
    try:
        nacl.signing.VerifyKey(unb64(str(note["author"]))).verify(
            canonical(note), unb64(str(note.get("sig", "")))
        )
    except (nacl.exceptions.BadSignatureError, ValueError, TypeError):
        raise NoteRefused(
            "the note's signature does not match its author key (changed on the way, or forged)"
        ) from None


def signature_state(note: dict[str, Any]) -> str:
    """How a reader should take a note: ``verified``, ``retracted`` (its author withdrew it,
    so its body, and with it the signature, is gone) or ``forged``."""
    try:
        verify(note)
        return "verified"
    except NoteRefused:
        return "retracted" if note.get("retracted_by") else "forged"


def admit(note: dict[str, Any], share_id: str, now_ms: int, max_age_ms: int | None = None) -> None:
    """The owner's checks before storing: signature, this share, and a sane clock (a
    note that waited for the owner at a relay may be as old as ``max_age_ms``)."""
    verify(note)
    if note["share"] != share_id:
        raise NoteRefused("this note was written for another share")
    if note["created"] > now_ms + CLOCK_SKEW_MS:
        raise NoteRefused("the note claims to be written in the future (check the clock)")
    if note["created"] < now_ms - CLOCK_SKEW_MS - (max_age_ms or 0):
        raise NoteRefused("the note is too old to be accepted (replayed, or a wrong clock)")


def describe_target(on: dict[str, Any]) -> str:
    """A target as people read it: ``sales``, ``sales.amount``, ``sales row sale_id=17``."""
    kind = on.get("kind")
    if kind == "table":
        return str(on.get("table"))
    if kind == "column":
        return f"{on.get('table')}.{on.get('column')}"
    if kind == "row":
        keys = ", ".join(f"{k}={v}" for k, v in dict(on.get("row") or {}).items())
        return f"{on.get('table')} row {keys}"
    return "the share"


def export_line(note: dict[str, Any]) -> str:
    """One line of an export: the signed fields, the signature, and ``retracted_by``."""
    keep = {k: note.get(k) for k in (*FIELDS, "sig")}
    if note.get("retracted_by"):
        keep["retracted_by"] = note["retracted_by"]
    return json.dumps(keep, sort_keys=True, ensure_ascii=False)


def verify_export(lines: list[str]) -> int:
    """Check every note of an export without trusting whoever made it; returns how many.

    A retracted note has lost its body, so its own signature cannot match any more: it
    counts only if the export holds its author's signed retraction of it.
    """
    parsed: list[dict[str, Any]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            note = json.loads(line)
        except ValueError:
            raise NoteRefused(f"line {number}: not JSON") from None
        if not isinstance(note, dict):
            raise NoteRefused(f"line {number}: not a note")
        parsed.append({**note, "_line": number})
    by_id = {n.get("id"): n for n in parsed}
    for note in parsed:
        number = note.pop("_line")
        try:
            if note.get("retracted_by"):
                retraction = by_id.get(note["retracted_by"])
                if (
                    retraction is None
                    or retraction.get("kind") != "retract"
                    or retraction.get("parent") != note.get("id")
                    or retraction.get("author") != note.get("author")
                ):
                    raise NoteRefused("retracted, but its author's retraction is not in the export")
                check_shape({**note, "body": "(retracted)"})  # its body is gone on purpose
            else:
                verify(note)
        except NoteRefused as exc:
            raise NoteRefused(f"line {number}: {exc.message}") from None
    return len(parsed)


# How a note came to be signed, when not by its author's own long-lived key. A client
# names one of these; the owner keeps only these words, never free text, so nobody can
# write a remark that readers would take for the owner's.
KEY_HOLDERS = {"visit": "a key the dashboard held for this visit"}


def key_holder(claim: object) -> str | None:
    """The code of a known key holder a client claimed, or None."""
    if not isinstance(claim, str):
        return None
    for code, words in KEY_HOLDERS.items():
        if claim in (code, words):
            return code
    return None


# -- proof of work -------------------------------------------------------------------
# A first note from a key the owner has never seen carries a small proof of work: a
# nonce that gives the note's work digest ``bits`` leading zero bits. Fresh keys cost
# nothing to make; this makes each note from one cost its sender some CPU (2**bits
# SHA-256 on average), and none of the owner's (one SHA-256 to check).
WORK_DOMAIN = b"p2p2p-work-v1\x00"
WORK_BASE_BITS = 14  # ~16,000 hashes: a few hundred ms in a browser, ~20 ms in Python
WORK_MAX_BITS = 24


def work_prefix(note: dict[str, Any]) -> bytes:
    """What the work is done over: this share, this note id, this author."""
    return (
        WORK_DOMAIN
        + f"{note.get('share')}\x00{note.get('id')}\x00{note.get('author')}\x00".encode()
    )


def work_bits(note: dict[str, Any], nonce: object) -> int:
    """Leading zero bits of the note's work digest for ``nonce`` (0 for a bad nonce)."""
    if not isinstance(nonce, str) or not nonce.isdigit() or len(nonce) > 20:
        return 0
    digest = int.from_bytes(hashlib.sha256(work_prefix(note) + nonce.encode()).digest(), "big")
    return 256 - digest.bit_length()


def prove_work(note: dict[str, Any], bits: int) -> str:
    """A nonce giving ``note`` at least ``bits`` bits of work (the sender's CPU)."""
    prefix = hashlib.sha256(work_prefix(note))
    limit = 1 << (256 - bits)
    for n in range(1 << (bits + 8)):  # bounded: 256 times the expected tries
        attempt = prefix.copy()
        attempt.update(str(n).encode())
        if int.from_bytes(attempt.digest(), "big") < limit:
            return str(n)
    raise NoteRefused(f"no proof of work of {bits} bits found (this should not happen)")
