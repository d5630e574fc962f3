"""Every dashboard page says "offline" when its share goes away, whatever it renders.

The page's head gets one script, ``dashboards/live.js``, put there as the page passes
through (``with_live_script``), so no notebook has to include anything. The script asks
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

from .gate import LIVE_PATHS
from .http import Request, Response, json_response, script_response

__all__ = ["SCRIPT", "serve", "with_live_script"]

SCRIPT = (Path(__file__).resolve().parents[2] / "dashboards" / "live.js").read_bytes()
_HEAD = re.compile(rb"<head(\s[^>]*)?>", re.IGNORECASE)
MAX_SEARCH = 64 << 10  # a page whose head is not in its first 64 KiB goes out unchanged


def serve(request: Request) -> Response:
    if request.path == LIVE_PATHS[0]:
        return script_response(SCRIPT, request)
    answer = json_response(200, {"live": True})
    answer.headers["cache-control"] = "no-store"
    return answer


async def with_live_script(
    share_id: str, body: AsyncGenerator[bytes, None]
) -> AsyncGenerator[bytes, None]:
    """The page's bytes with the live script first in its head; streamed, so a page that
    renders as it computes (Voila's) still shows its first cells at once."""
    tag = f'<script src="/s/{share_id}{LIVE_PATHS[0]}"></script>'.encode()
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
