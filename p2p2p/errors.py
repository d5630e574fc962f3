"""Every error p2p2p raises on purpose, in one place.

Each type carries a stable ``code`` (it crosses processes and networks as
``to_dict``/``from_dict`` and comes back as the same type), a message written for the
person who has to act on it, and the HTTP ``status`` a share's API answers it with. A
message is one line; what a remote party wrote arrives in ``message`` of an error that
names where it came from, never as if this machine said it.

The tree::

    P2P2PError                        error           500
    ├── QueryRefused                  refused         400  a lockdown rule; never ran
    ├── QueryFailed                   query_failed    400  DuckDB rejected the SQL
    ├── QueryTimeout                  timeout         504
    ├── ResultTooLarge                too_large       413
    ├── ResourceExhausted             resources       507
    ├── StoreBusy                     busy            503
    ├── WorkerCrashed                 worker_crashed  500
    ├── StoreUnavailable              store_unavailable 503
    │   ├── StoreMissing              store_missing
    │   ├── StoreCorrupt              store_corrupt
    │   └── StoreLocked               store_locked
    ├── BadParameters                 bad_parameters  400
    ├── BadLimits                     bad_limits      400
    ├── BadTarget                     bad_target      400  a link, alias or path
    ├── BadShareName                  bad_share_name  400
    ├── IdentityError                 identity        500  the key file
    ├── Forbidden                     forbidden       403  token missing, wrong, revoked
    │   ├── NotInvited                not_invited          identified share, key not listed
    │   ├── PullRefused               pull_refused         the owner does not allow that pull
    │   └── ExportRefused             export_refused       downloads are off for this share
    ├── BadViewers                    bad_viewers     400  a viewer entry or viewers file
    ├── NotFound                      not_found       404  no such endpoint or page
    ├── ShareOffline                  offline         404  revoked, owner away, relay down
    │   └── StreamGone                stream_gone     502  cut while answering
    ├── Tampered                      tampered        400  encryption check failed
    │   └── Truncated                 truncated       400  no authenticated end
    ├── NoteRefused                   note_refused    400
    ├── AuditError                    audit           500
    ├── RegistrationRefused           registration_refused 403
    ├── RelayRefused                  relay_refused   502  the relay said no
    ├── ShareExists                   share_exists    409
    ├── UnknownShare                  unknown_share   404
    ├── TooManySessions               too_many_sessions 429  one page, many sockets
    ├── DashboardFailed               dashboard_failed 502
    ├── DemoFailed                    demo_failed     500
    ├── ColumnTypesDiffer             column_types_differ 400  a group's stores disagree
    ├── SourcesFailed                 sources_failed  502  --strict: a store did not answer
    └── ProtocolError                 protocol        502  the tunnel's framing
        ├── RemoteProtocolError       remote_protocol      the peer broke it: drop the peer
        └── LocalProtocolError        local_protocol  503  we hit our own limit: refuse this one

As in h11, a protocol fault is ``Remote`` when the other side sent something invalid
(the only answer is to close the connection) and ``Local`` when this side was asked to
do something the protocol or its limits forbid (refuse that request; the connection is
fine).
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "AuditError",
    "BadLimits",
    "BadParameters",
    "BadShareName",
    "BadTarget",
    "BadViewers",
    "ColumnTypesDiffer",
    "DashboardFailed",
    "DemoFailed",
    "Forbidden",
    "IdentityError",
    "LocalProtocolError",
    "NotFound",
    "NotInvited",
    "NoteRefused",
    "P2P2PError",
    "ProtocolError",
    "PullRefused",
    "QueryFailed",
    "QueryRefused",
    "QueryTimeout",
    "RegistrationRefused",
    "RelayRefused",
    "RemoteProtocolError",
    "ResourceExhausted",
    "ResultTooLarge",
    "ShareExists",
    "ShareOffline",
    "SourcesFailed",
    "StoreBusy",
    "StoreCorrupt",
    "StoreLocked",
    "StoreMissing",
    "StoreUnavailable",
    "StreamGone",
    "Tampered",
    "TooManySessions",
    "Truncated",
    "UnknownShare",
    "WorkerCrashed",
]

_BY_CODE: dict[str, type[P2P2PError]] = {}
MAX_MESSAGE = 2000  # characters of another party's message that are shown


def printable(text: str, limit: int = MAX_MESSAGE) -> str:
    """Text another party wrote, safe to show on a terminal or in a notebook: control and
    format characters (escape sequences, CR/LF, bidi overrides, zero-width ones) appear
    as escapes, so no such text can move the cursor, recolour, or start a line of its
    own that looks like ours; and at most ``limit`` characters of it."""
    shown = "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text[:limit])
    if len(text) > limit:
        shown += f"… ({len(text) - limit:,} more characters)"
    return shown


def red_lines(text: str) -> list[str]:
    """An error as IPython shows ours: red, each line printable. DuckDB's own errors
    (a caret under the place in the SQL) keep their lines; text another party wrote has
    none left to keep, as ``printable`` turned its line breaks into ``\\n``."""
    return ["\n".join(f"\x1b[31m{printable(line)}\x1b[0m" for line in text.split("\n"))]


class P2P2PError(Exception):
    """Base class: the message is written for the person who has to act on it."""

    code: ClassVar[str] = "error"
    status: ClassVar[int] = 500

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.code in _BY_CODE:
            raise TypeError(f"two error types share the code {cls.code!r}")
        _BY_CODE[cls.code] = cls

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "details": self.details}

    def _render_traceback_(self) -> list[str]:
        """How IPython shows it in a notebook: the one line that says what to do, not a
        traceback through our code (``%tb`` still shows that)."""
        return red_lines(f"{type(self).__name__}: {self}")

    @staticmethod
    def from_dict(data: dict[str, Any]) -> P2P2PError:
        """The error another process or machine described, as its own type (unknown
        codes become the base type, so a newer peer never crashes an older one)."""
        cls = _BY_CODE.get(str(data.get("code")), P2P2PError)
        details = data.get("details") or {}
        if not isinstance(details, dict):
            details = {}
        # Written elsewhere (by a store's owner, even by DuckDB repeating a value of the
        # store word for word): shown only as printable text.
        message = printable(str(data.get("message", "unknown error")))
        if cls is QueryRefused:
            return QueryRefused(printable(str(details.get("rule", "unknown")), 100), message)
        try:
            return cls(message, **{str(k): v for k, v in details.items()})
        except TypeError:  # details this side's type does not take: keep the message
            return P2P2PError(message)


_BY_CODE[P2P2PError.code] = P2P2PError


# -- the store: one statement, its limits, its workers --------------------------------
class QueryRefused(P2P2PError):
    """The statement broke a lockdown rule; it never reached the database."""

    code = "refused"
    status = 400

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message, rule=rule)
        self.rule = rule

    def __str__(self) -> str:
        return f"refused [{self.rule}]: {self.message}"


class QueryFailed(P2P2PError):
    """DuckDB rejected or failed the (allowed) statement: a mistake in the SQL itself."""

    code = "query_failed"
    status = 400


class QueryTimeout(P2P2PError):
    """The statement ran past the wall-time limit and was stopped."""

    code = "timeout"
    status = 504


class ResultTooLarge(P2P2PError):
    """Not even one row fits in the result byte limit."""

    code = "too_large"
    status = 413


class ResourceExhausted(P2P2PError):
    """The query needed more memory than the share allows; the worker was reset."""

    code = "resources"
    status = 507


class StoreBusy(P2P2PError):
    """Every worker of the store is busy and none freed up in time."""

    code = "busy"
    status = 503


class WorkerCrashed(P2P2PError):
    """The sandboxed worker process died unexpectedly; it is restarted on the next query."""

    code = "worker_crashed"


class StoreUnavailable(P2P2PError):
    """The store cannot be opened at all."""

    code = "store_unavailable"
    status = 503


class StoreMissing(StoreUnavailable):
    """No such file, or not a file."""

    code = "store_missing"


class StoreCorrupt(StoreUnavailable):
    """A file that is not a readable DuckDB database."""

    code = "store_corrupt"


class StoreLocked(StoreUnavailable):
    """Another process holds the file open for writing."""

    code = "store_locked"


# -- what a caller asked for -----------------------------------------------------------
class BadParameters(P2P2PError):
    """Query parameters or request fields that cannot be used (unknown type, missing name)."""

    code = "bad_parameters"
    status = 400


class BadLimits(P2P2PError):
    """A limit that is not a positive number, or above what the share allows."""

    code = "bad_limits"
    status = 400


class BadTarget(P2P2PError):
    """A query target (``local:PATH``, a link, an alias) that cannot be understood."""

    code = "bad_target"
    status = 400


class BadShareName(P2P2PError):
    """A share name outside ``[a-z0-9][a-z0-9_-]{0,62}``."""

    code = "bad_share_name"
    status = 400


class IdentityError(P2P2PError):
    """The identity key file is missing, unreadable or too open."""

    code = "identity"


# -- a share, as a viewer reaches it ---------------------------------------------------
class Forbidden(P2P2PError):
    """The link's access token is missing, wrong or revoked."""

    code = "forbidden"
    status = 403


class NotInvited(Forbidden):
    """The share is open to invited viewers only, and this caller's key is not one."""

    code = "not_invited"


class PullRefused(Forbidden):
    """A pull of a table the owner did not allow (``--allow-pull``)."""

    code = "pull_refused"


class ExportRefused(Forbidden):
    """A download of a view from a share whose owner turned exports off (``--no-export``)."""

    code = "export_refused"


class BadViewers(P2P2PError):
    """A viewer entry (name, key, tables, expiry) or a share's viewers file is wrong."""

    code = "bad_viewers"
    status = 400


class NotFound(P2P2PError):
    """No such endpoint or page on this share."""

    code = "not_found"
    status = 404


class ShareOffline(P2P2PError):
    """The share is not reachable: revoked, its owner offline, or the relay down."""

    code = "offline"
    status = 404


class StreamGone(ShareOffline):
    """The owner reset the stream or its tunnel closed while a request was open."""

    code = "stream_gone"
    status = 502


class Tampered(P2P2PError):
    """Encrypted data failed authentication: changed, reordered or cut on the way."""

    code = "tampered"
    status = 400


class Truncated(Tampered):
    """The encrypted stream ended without its authenticated end marker."""

    code = "truncated"


class NoteRefused(P2P2PError):
    """A note that is malformed, badly signed, too large, or over the rate limit."""

    code = "note_refused"
    status = 400


# -- the owner's side ------------------------------------------------------------------
class AuditError(P2P2PError):
    """The audit log cannot be written or its chain does not verify."""

    code = "audit"


class ShareExists(P2P2PError):
    """A share of that name is already active."""

    code = "share_exists"
    status = 409


class UnknownShare(P2P2PError):
    """No active share of that name or id."""

    code = "unknown_share"
    status = 404


class TooManySessions(P2P2PError):
    """A dashboard page already has as many live connections as one page needs."""

    code = "too_many_sessions"
    status = 429


class DashboardFailed(P2P2PError):
    """The share's Voila process did not start or is not a notebook."""

    code = "dashboard_failed"
    status = 502


class DemoFailed(P2P2PError):
    """``p2p2p demo`` could not prepare or start what it shows."""

    code = "demo_failed"


# -- owner and relay -------------------------------------------------------------------
# -- many stores as one (client.federation) ---------------------------------------------
class ColumnTypesDiffer(P2P2PError):
    """Two stores of a group answered a column with types that do not combine."""

    code = "column_types_differ"
    status = 400


class SourcesFailed(P2P2PError):
    """A strict fan-out: at least one store of the group gave no answer."""

    code = "sources_failed"
    status = 502


class RegistrationRefused(P2P2PError):
    """The relay's check of an owner's signed share list failed (said by the relay)."""

    code = "registration_refused"
    status = 403


class RelayRefused(P2P2PError):
    """The relay refused this owner's registration: retrying would not help. The
    message is the relay's own words."""

    code = "relay_refused"
    status = 502


class ProtocolError(P2P2PError):
    """The tunnel's framing was broken (see the two kinds below)."""

    code = "protocol"
    status = 502


class RemoteProtocolError(ProtocolError):
    """The peer sent something the protocol forbids: close the whole connection."""

    code = "remote_protocol"


class LocalProtocolError(ProtocolError):
    """This side hit a protocol limit (say, too many open streams): refuse the one
    request; the connection and the peer are fine."""

    code = "local_protocol"
    status = 503
