"""IPython magics, loaded by ``%load_ext p2p2p``.

``%%p2pquery`` (query a link, an alias or a local file), ``%share`` / ``%unshare`` /
``%shares`` (through the server extension's control endpoint, ``owner_client``) and
``%p2p`` (aliases, notes). ``placeholders`` turns ``{name}`` in a cell into bound
parameters.
"""

from __future__ import annotations

from typing import Any


def load_ipython_extension(shell: Any) -> None:
    from .completion import MATCHER_ID, QueryCompleter
    from .magics import P2PMagics

    magics = P2PMagics(shell)
    shell.register_magics(magics)
    completer = QueryCompleter(magics)
    matchers = getattr(getattr(shell, "Completer", None), "custom_matchers", None)
    if matchers is not None:
        # Loaded again (%reload_ext): the new magics' completer replaces the old one's,
        # which would otherwise answer too, from stores and snippets no cell uses.
        matchers[:] = [m for m in matchers if getattr(m, "matcher_identifier", None) != MATCHER_ID]
        matchers.append(completer.matcher)
    magics.completer = completer
    from .plot import PlotMagics

    shell.register_magics(PlotMagics(shell))
