"""How p2p2p's widgets look and read: the colours and table styles they share, escaping
for their HTML, byte counts for people, and full text reprs. Light on purpose (no pandas):
every widget imports it, a dashboard kernel included."""

from __future__ import annotations

import html
from typing import Any

__all__ = ["AMBER", "MUTED", "TABLE_CSS", "PlainTextRepr", "esc", "human_bytes"]

AMBER = "#b45309"
MUTED = "var(--jp-ui-font-color2, #616161)"

# One style block shared by every p2p2p table. An HTML widget's value goes in through
# innerHTML, so the rules are global: they only match p2p2p-* classes, and every copy is
# identical, so many widgets on a page do not fight. JupyterLab's own table styles only
# apply to rendered-HTML outputs, not to widgets, hence styles of our own; the --jp-*
# variables make them follow the light or dark theme (in Voila too).
TABLE_CSS = (
    "<style>"
    ".p2p2p-table{border-collapse:collapse;font-size:12px;line-height:1.45;"
    "font-variant-numeric:tabular-nums;color:var(--jp-ui-font-color1,#212121)}"
    ".p2p2p-table th,.p2p2p-table td{padding:2px 10px;text-align:left;white-space:nowrap;"
    "border-bottom:1px solid var(--jp-border-color2,#e0e0e0);max-width:32em;"
    "overflow:hidden;text-overflow:ellipsis;vertical-align:top}"
    ".p2p2p-table thead th{border-bottom:1px solid var(--jp-border-color1,#bdbdbd);"
    "vertical-align:bottom;font-weight:600}"
    ".p2p2p-table tbody tr:nth-child(even){background:var(--jp-layout-color2,#f5f5f5)}"
    ".p2p2p-dtype{display:block;font-weight:normal;font-size:10px;"
    "color:var(--jp-ui-font-color2,#757575)}"
    ".p2p2p-scroll{overflow-x:auto;max-width:100%}"
    ".p2p2p-table td.p2p2p-pre{white-space:pre;max-width:none;"
    "font-family:var(--jp-code-font-family,monospace)}"
    "</style>"
)


def human_bytes(n: int | float) -> str:
    """``9.4 MB``: decimal units, as file managers and network tools show them."""
    value = float(n)
    if abs(value) < 1000:
        return f"{int(value)} B"
    for unit in ("kB", "MB", "GB", "TB"):
        value /= 1000
        if abs(value) < 1000:
            return f"{value:.1f} {unit}"
    return f"{value / 1000:.1f} PB"


def esc(value: object) -> str:
    """Text (of anything) made safe for an HTML element body or a quoted attribute."""
    return html.escape(str(value), quote=True)


class PlainTextRepr:
    """Makes a widget's ``text/plain`` its ``__repr__``, in full.

    ipywidgets puts ``repr(widget)`` cut to 110 characters into ``text/plain``; p2p2p's
    widgets instead give a useful text rendering, which is what a terminal, nbconvert
    and the notebook regression tests see.
    """

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        bundle: dict[str, Any] = {}
        parent = getattr(super(), "_repr_mimebundle_", None)
        if parent is not None:
            try:
                bundle = dict(parent(**kwargs) or {})
            except Exception:
                # A closed widget has no model to point at; its text still helps.
                bundle = {}
        bundle["text/plain"] = repr(self)
        return bundle

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))
