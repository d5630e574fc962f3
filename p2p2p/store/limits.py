"""Resource limits for a store: what one query, and one worker, may use."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from ..errors import BadLimits

MIB = 1 << 20
RESIDENT_SLACK_MB = 256


@dataclasses.dataclass(frozen=True)
class Limits:
    """Limits a share owner sets; callers may tighten the per-query ones, never loosen them.

    Per query: ``timeout_s``, ``max_rows``, ``max_bytes``, ``max_sql_chars``.
    Per worker process: ``memory_limit_mb`` (DuckDB's own accounting), ``threads``,
    ``address_space_mb`` (the OS cap that also stops allocations DuckDB does not track),
    ``workers`` (how many queries may run at once).
    """

    timeout_s: float = 30.0
    max_rows: int = 1_000_000
    max_bytes: int = 256 * MIB
    max_sql_chars: int = 100_000
    memory_limit_mb: int = 1024
    threads: int = 2
    address_space_mb: int = 0  # 0: memory_limit_mb + room for Python, Arrow and stacks
    workers: int = 2

    QUERY_FIELDS = ("timeout_s", "max_rows", "max_bytes", "max_sql_chars")

    def __post_init__(self) -> None:
        checks: list[tuple[str, float, float]] = [
            ("timeout_s", 0.05, 24 * 3600),
            ("max_rows", 1, 10**12),
            ("max_bytes", 1024, 1 << 40),
            ("max_sql_chars", 1, 10_000_000),
            ("memory_limit_mb", 16, 1 << 22),
            ("threads", 1, 256),
            ("workers", 1, 64),
        ]
        for name, low, high in checks:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise BadLimits(f"limit {name} must be a number, got {value!r}")
            if not low <= value <= high:
                raise BadLimits(
                    f"limit {name}={value!r} is outside the allowed range {low}..{high}"
                )
        if self.address_space_mb and self.address_space_mb < self.memory_limit_mb + 512:
            raise BadLimits(
                f"limit address_space_mb={self.address_space_mb} must be at least "
                f"memory_limit_mb + 512 ({self.memory_limit_mb + 512}): the worker "
                "needs room for Python and Arrow besides DuckDB's own memory"
            )

    @property
    def resident_soft_mb(self) -> int:
        """Resident memory past which the worker interrupts the query.

        The slack over ``memory_limit_mb`` is for what lives outside DuckDB's buffer
        manager: an idle worker (Python, DuckDB, pyarrow, an open store) is ~115 MB
        resident, and a result batch in Arrow form on its way out.
        """
        return self.memory_limit_mb + RESIDENT_SLACK_MB

    @property
    def resident_hard_mb(self) -> int:
        """Resident memory past which the worker stops itself (an uninterruptible call)."""
        return self.memory_limit_mb + 2 * RESIDENT_SLACK_MB

    @property
    def effective_address_space_mb(self) -> int:
        # Measured: a worker with DuckDB, pyarrow and an open store maps ~1.1 GiB
        # of address space before any query runs.
        return self.address_space_mb or self.memory_limit_mb + 2048 + 64 * self.threads

    def tightened(self, **requested: Any) -> Limits:
        """Per-query limits a caller asks for, clamped so they never exceed the owner's."""
        changes: dict[str, Any] = {}
        for name, value in requested.items():
            if value is None:
                continue
            if name not in self.QUERY_FIELDS:
                raise BadLimits(
                    f"limit {name} cannot be set per query (allowed: {', '.join(self.QUERY_FIELDS)})"
                )
            current = getattr(self, name)
            tighter = min(type(current)(value), current)
            if tighter != current:
                changes[name] = tighter
        # Most queries ask for nothing tighter: these limits as they are (they are frozen).
        return dataclasses.replace(self, **changes) if changes else self

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Limits:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise BadLimits(
                f"unknown limit(s): {', '.join(unknown)} (known: {', '.join(sorted(known))})"
            )
        return cls(**dict(data))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def given(**values: Any) -> dict[str, Any]:
    """The limits someone actually set: ``None`` means "the default", so it is left out."""
    return {name: value for name, value in values.items() if value is not None}
