"""Where a query goes: ``local:PATH`` or a bare path to a DuckDB file.

Share links and aliases join this list with the relay.
"""

from __future__ import annotations

import dataclasses
import os

from ..errors import BadTarget

LOCAL_PREFIX = "local:"


@dataclasses.dataclass(frozen=True)
class LocalTarget:
    path: str  # absolute
    label: str = ""  # as the user wrote it, for display

    def __str__(self) -> str:
        return self.label or f"{LOCAL_PREFIX}{self.path}"


def is_link(text: str) -> bool:
    """Whether a target names a share by its link rather than a file here."""
    return text.strip().startswith(("http://", "https://"))


def parse_target(text: str, cwd: str | None = None) -> LocalTarget:
    text = text.strip()
    if not text:
        raise BadTarget("no store given: use local:PATH or a path to a .duckdb file")
    if is_link(text):
        raise BadTarget(f"{text!r} is a share link, not a local store: use p2p2p.connect(link)")
    path = text.removeprefix(LOCAL_PREFIX)
    if not path:
        raise BadTarget("local: needs a path, e.g. local:sales.duckdb")
    path = os.path.abspath(os.path.join(cwd or os.getcwd(), os.path.expanduser(path)))
    return LocalTarget(path, label=text if text.startswith(LOCAL_PREFIX) else LOCAL_PREFIX + text)
