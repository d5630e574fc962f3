"""p2p2p: share a DuckDB file read-only with one link; query it without moving the data.

The public API, all importable from here::

    import p2p2p
    store = p2p2p.connect(link)                  # a share link, an alias or local:PATH
    store.query("SELECT ...", {"year": 2024})    # pandas; query_arrow for a pyarrow Table
    sites = p2p2p.connect_many({"brig": link1, "sion": link2})  # one question, every store
    p2p2p.combine("SELECT ... FROM a JOIN b USING (k)", a=frame, b=other)  # here, locally
    p2p2p.current_share(fallback="store.duckdb") # inside a share's dashboard
    with p2p2p.Executor("store.duckdb", p2p2p.Limits(timeout_s=5)) as ex: ...

and every error type (``p2p2p.QueryRefused``, ``p2p2p.ShareOffline``, …; the tree is
in ``p2p2p.errors``). Names load on first use, so ``import p2p2p`` stays cheap for the
store's worker processes and the command line.

The package, one room per noun: ``store`` (the enforcement boundary), ``protocol``
(wire formats, sans-I/O), ``aio`` (the asyncio layer), ``client``, ``owner`` (and its
``owner.api``), ``relay``, ``server_ext``, ``kernel_ext``, ``widgets``, ``dashboards``,
``samples``; ``errors``, ``identity``, ``paths`` and ``pages`` at the top.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import *  # noqa: F403  (every error type is part of the public API)
from .errors import __all__ as _errors

if TYPE_CHECKING:
    from .client import LocalStore, RemoteStore, StoreGroup, connect, connect_many, current_share
    from .client.combine import combine
    from .samples.sales import build_sample_store
    from .store.executor import Executor, ResultInfo
    from .store.limits import Limits

__version__ = "0.1.0"

_LAZY = {
    "connect": "client",
    "connect_many": "client",
    "combine": "client.combine",
    "StoreGroup": "client",
    "current_share": "client",
    "LocalStore": "client",
    "RemoteStore": "client",
    "Executor": "store.executor",
    "ResultInfo": "store.executor",
    "Limits": "store.limits",
    "build_sample_store": "samples.sales",
}

__all__ = [
    "Executor",
    "Limits",
    "LocalStore",
    "RemoteStore",
    "ResultInfo",
    "StoreGroup",
    "__version__",
    "build_sample_store",
    "combine",
    "connect",
    "connect_many",
    "current_share",
    "load_ipython_extension",
    *_errors,
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'p2p2p' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


def load_ipython_extension(shell: Any) -> None:
    """``%load_ext p2p2p``: registers ``%%p2pquery``, ``%share`` and the rest."""
    from .kernel_ext import load_ipython_extension as load

    load(shell)


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    """Enabled by the installed jupyter-config file: shares live in the Jupyter server."""
    from .server_ext import P2P2PExtension

    return [{"module": "p2p2p.server_ext", "app": P2P2PExtension}]
