"""QR codes of share links, as inline SVG for an HTML widget.

SVG rather than a PNG image: it stays sharp at any zoom, needs no image library, and
inlines into an ``ipywidgets.HTML`` value, so it renders in JupyterLab and Voila alike.
"""

from __future__ import annotations

import functools
import html

import segno

QR_PX = 140


@functools.lru_cache(maxsize=64)
def qr_svg(data: str, size_px: int = QR_PX) -> str:
    """An SVG QR code of ``data``, ``size_px`` square; empty if it cannot be encoded.

    Cached: a status widget re-renders every second with the same link.
    """
    if not data:
        return ""
    try:
        # Level M survives a smudged or partly glared phone screen; forcing a regular QR
        # code (not micro) because phone cameras do not all read micro QR.
        code = segno.make(data, error="m", micro=False)
    except segno.DataOverflowError:
        return ""
    # A white background of its own: in a dark theme a transparent code would be black
    # on near-black and unreadable for a camera.
    svg = code.svg_inline(omitsize=True, light="#fff", dark="#000", svgclass=None, lineclass=None)
    label = html.escape(f"QR code of {data}", quote=True)
    return svg.replace(
        "<svg ",
        f'<svg width="{size_px}" height="{size_px}" role="img" aria-label="{label}" '
        'shape-rendering="crispEdges" ',
        1,
    )
