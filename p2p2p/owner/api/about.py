"""What a share says about itself: ``/`` (the landing page), ``/api/info``, ``/api/schema``."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from ... import pages
from ..shares import Share
from .http import Response, html_response, json_response

__all__ = ["info", "info_response", "landing", "schema", "schema_response"]


def info(share: Share) -> dict[str, Any]:
    return {
        "name": share.name,
        "share_id": share.share_id,
        "title": share.title,
        "allow_pull": sorted(share.allow_pull),
        "exports": share.exports,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(share.started)),
        "queries": share.queries,
    }


async def schema(share: Share, tables: tuple[str, ...] | None = None) -> dict[str, Any]:
    """The store's tables (only ``tables``, for a viewer granted some)."""
    return await asyncio.to_thread(share.executor.schema, tables)


async def landing(
    share: Share, owner_fingerprint: str, tables: tuple[str, ...] | None = None
) -> Response:
    page = pages.landing(info(share), owner_fingerprint, await schema(share, tables))
    return html_response(200, page)


def info_response(share: Share) -> Response:
    return json_response(200, info(share))


async def schema_response(share: Share) -> Response:
    return json_response(200, await schema(share))
