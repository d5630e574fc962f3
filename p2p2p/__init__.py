"""p2p2p: share a DuckDB file read-only with one link; query it without moving the data."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def load_ipython_extension(shell: Any) -> None:
    """``%load_ext p2p2p``: registers ``%%p2pquery``."""
    from .kernel_ext import load_ipython_extension as load

    load(shell)


def connect(target: str) -> Any:
    """A store to query: ``local:PATH`` or a share link (``http(s)://relay/s/<id>/?t=…``).

    ``store.query(sql, params)`` returns pandas, ``store.query_arrow`` a pyarrow Table,
    ``store.schema()`` the tables and columns.
    """
    from .client import connect as _connect

    return _connect(target)


def build_sample_store(path: str, rows: int = 20_000) -> str:
    """Create the small sample store used by the quick start (deterministic)."""
    from .samples.sales import build_sample_store as build

    return build(path, rows)


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    """Enabled by the installed jupyter-config file: shares live in the Jupyter server."""
    from .server_ext import P2P2PExtension

    return [{"module": "p2p2p.server_ext", "app": P2P2PExtension}]


def current_share(fallback: str | None = None) -> Any:
    """Inside a share's dashboard (Voila): the share, queried like any viewer would.

    Elsewhere, ``fallback`` (a store path, link or alias) instead, so a dashboard
    notebook can be written and tested in JupyterLab against the local file.
    """
    from .client import current_share as _current

    return _current(fallback)
