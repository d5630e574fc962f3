"""IPython magics, loaded by ``%load_ext p2p2p``.

``%%p2pquery`` (query a link, an alias or a local file), ``%share`` / ``%unshare`` /
``%shares`` (through the server extension's control endpoint, ``owner_client``) and
``%p2p`` (aliases, notes). ``placeholders`` turns ``{name}`` in a cell into bound
parameters.
"""

from __future__ import annotations

from typing import Any


def load_ipython_extension(shell: Any) -> None:
    from .magics import P2PMagics

    shell.register_magics(P2PMagics(shell))
    from .plot import PlotMagics

    shell.register_magics(PlotMagics(shell))
