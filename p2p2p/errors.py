"""Error types that callers can catch and show as one line.

Every error carries a stable ``code`` so it can cross a process or network
boundary (``to_dict``/``from_dict``) and come back as the same type.
"""

from __future__ import annotations

from typing import Any, ClassVar

_BY_CODE: dict[str, type[P2P2PError]] = {}


class P2P2PError(Exception):
    """Base class: the message is written for the person who has to act on it."""

    code: ClassVar[str] = "error"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # Every error type, wherever it is defined, comes back as itself from to_dict().
        super().__init_subclass__(**kwargs)
        _BY_CODE[cls.code] = cls

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "details": self.details}

    @staticmethod
    def from_dict(data: dict[str, Any]) -> P2P2PError:
        _BY_CODE.setdefault("error", P2P2PError)
        cls = _BY_CODE.get(str(data.get("code")), P2P2PError)
        details = data.get("details") or {}
        if not isinstance(details, dict):
            details = {}
        message = str(data.get("message", "unknown error"))
        if cls is QueryRefused:
            return QueryRefused(str(details.get("rule", "unknown")), message)
        return cls(message, **details)


class QueryRefused(P2P2PError):
    """The statement broke a lockdown rule; it never reached the database."""

    code = "refused"

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message, rule=rule)
        self.rule = rule

    def __str__(self) -> str:
        return f"refused [{self.rule}]: {self.message}"


class QueryFailed(P2P2PError):
    """DuckDB rejected or failed the (allowed) statement: a mistake in the SQL itself."""

    code = "query_failed"


class QueryTimeout(P2P2PError):
    """The statement ran past the wall-time limit and was stopped."""

    code = "timeout"


class ResultTooLarge(P2P2PError):
    """Not even one row fits in the result byte limit."""

    code = "too_large"


class ResourceExhausted(P2P2PError):
    """The query needed more memory than the share allows; the worker was reset."""

    code = "resources"


class StoreUnavailable(P2P2PError):
    """The store cannot be opened at all."""

    code = "store_unavailable"


class StoreMissing(StoreUnavailable):
    code = "store_missing"


class StoreCorrupt(StoreUnavailable):
    code = "store_corrupt"


class StoreLocked(StoreUnavailable):
    code = "store_locked"


class StoreBusy(P2P2PError):
    """Every worker of the store is busy and none freed up in time."""

    code = "busy"


class BadParameters(P2P2PError):
    """Query parameters that cannot be bound (unknown type, missing name)."""

    code = "bad_parameters"


class BadLimits(P2P2PError):
    code = "bad_limits"


class BadTarget(P2P2PError):
    """A query target (``local:PATH``, a link, an alias) that cannot be understood."""

    code = "bad_target"


class IdentityError(P2P2PError):
    """The identity key file is missing, unreadable or too open."""

    code = "identity"


class ShareOffline(P2P2PError):
    """The share is not reachable: revoked, its owner offline, or the relay down."""

    code = "offline"


class Forbidden(P2P2PError):
    """The link's access token is missing, wrong or revoked."""

    code = "forbidden"


class WorkerCrashed(P2P2PError):
    """The sandboxed worker process died unexpectedly; it is restarted on the next query."""

    code = "worker_crashed"
