"""A dashboard's first view, drawn from the page itself before its widgets connect.

Voila sends a page with every cell's outputs in it, but a widget draws only once the
page has loaded Voila's scripts and opened a websocket to its kernel: two to three
seconds in which a viewer sees a spinner. A widget that knows what it would draw puts a
copy of that in its output as one more MIME type (``MIME``), which Voila's own renderer
ignores; ``preview.js``, which the owner adds to every dashboard page
(``owner.api.live``), draws it at once with the widget's own page code, inert and marked
"connecting", and takes it away when the live widget has drawn.

The copy is what the page's kernel would send the same viewer over the websocket a
moment later, so it shows nothing new; it is only added in a share's dashboard kernel
(a notebook of the owner's or an analyst's, saved, keeps no rows it did not show).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from ..client import SHARE_LINK_ENV

__all__ = ["MIME", "enabled", "with_preview"]

MIME = "application/vnd.p2p2p.preview+json"

Bundle = dict[str, Any] | tuple[dict[str, Any], dict[str, Any]] | None


def enabled() -> bool:
    """Whether this kernel renders a share's dashboard page (the only place a preview is
    drawn)."""
    return bool(os.environ.get(SHARE_LINK_ENV))


def with_preview(bundle: Bundle, parts: Sequence[Mapping[str, Any]]) -> Bundle:
    """``bundle`` (a widget's ``_repr_mimebundle_``: data, or data and metadata) with the
    preview's ``parts`` in it: ``{"kind": "html", "html": ...}`` or ``{"kind": "explorer",
    "state": ...}``, drawn in order."""
    if bundle is None or not parts or not enabled():
        return bundle
    data, metadata = bundle if isinstance(bundle, tuple) else (bundle, None)
    data = {**data, MIME: {"parts": [dict(p) for p in parts]}}
    return data if metadata is None else (data, metadata)
