"""IPython magics: ``%%p2pquery`` (local stores now; shares once the relay exists)."""

from __future__ import annotations

from typing import Any


def load_ipython_extension(shell: Any) -> None:
    from .magics import P2PMagics

    shell.register_magics(P2PMagics(shell))
