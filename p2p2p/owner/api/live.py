"""Every dashboard page says "offline" when its share goes away, whatever it renders,
and shows its first view before its widgets connect.

The page's head gets two scripts, put there as the page passes through
(``with_live_script``), so no notebook has to include anything: ``dashboards/preview.js``
draws the preview a widget left in its output (``dashboards.preview``), with the
explorer's own page code; ``dashboards/live.js`` asks
``/.p2p2p/live`` every few seconds. Our relay answers that question itself from its
routes (``relay.forward``): an open page costs the owner's machine nothing, and the
answer comes even when the owner's machine is gone. This module answers it only when a
relay forwards it anyway (an older or foreign relay): the share passed the gate, so it is
live.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator
from pathlib import Path

from .gate import PAGE_SCRIPTS
from .http import Request, Response, json_response, script_response

__all__ = ["SCRIPTS", "serve", "with_live_script"]

_PACKAGE = Path(__file__).resolve().parents[2]
SCRIPTS = dict(
    zip(
        PAGE_SCRIPTS,
        (
            (_PACKAGE / "dashboards" / "live.js").read_bytes(),
            (_PACKAGE / "dashboards" / "preview.js").read_bytes(),
            (_PACKAGE / "widgets" / "explorer.js").read_bytes(),
        ),
        strict=True,
    )
)
_HEAD = re.compile(rb"<head(\s[^>]*)?>", re.IGNORECASE)
MAX_SEARCH = 64 << 10  # a page whose head is not in its first 64 KiB goes out unchanged


def serve(request: Request) -> Response:
    script = SCRIPTS.get(request.path)
    if script is not None:
        return script_response(script, request)
    answer = json_response(200, {"live": True})
    answer.headers["cache-control"] = "no-store"
    return answer


async def with_live_script(
    share_id: str, body: AsyncGenerator[bytes, None]
) -> AsyncGenerator[bytes, None]:
    """The page's bytes with the live script first in its head; streamed, so a page that
    renders as it computes (Voila's) still shows its first cells at once."""
    base = f"/s/{share_id}"
    # The preview is async: it runs once fetched, drawing while the rest of the page is
    # still arriving, instead of after Voila's scripts as a deferred module would.
    tag = (
        f'<script src="{base}{PAGE_SCRIPTS[0]}"></script>'
        f'<script type="module" async src="{base}{PAGE_SCRIPTS[1]}"></script>'
    ).encode()
    seen: bytes | None = b""
    try:
        async for piece in body:
            if seen is None:
                yield piece
                continue
            seen += piece
            found = _HEAD.search(seen)
            if found is not None:
                yield seen[: found.end()] + tag + seen[found.end() :]
                seen = None
            elif len(seen) > MAX_SEARCH:
                yield seen
                seen = None
        if seen:
            yield seen
    finally:
        await body.aclose()
