"""The notes endpoint: list a share's signed notes (long-polling for new ones) or keep one.

Reached through ``e2e`` (operations ``notes`` and ``post_note``), so a note and who sent
it travel encrypted. A waiting reader costs an ``asyncio.Event``, never a thread: open
notes panels must not tie up the threads that start queries.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ...errors import BadParameters
from ...protocol import notes
from ..shares import Share

__all__ = ["NOTES_WAIT_MAX_S", "notes_op"]

NOTES_WAIT_MAX_S = 25.0


async def notes_op(
    share: Share,
    op: str,
    message: dict[str, Any],
    sender: str | None = None,
    trusted: bool = False,
) -> dict[str, Any]:
    """List the share's notes (optionally waiting for a newer one) or keep a signed note.

    ``trusted``: the sender is a listed viewer, whose notes need no proof of work."""
    store = share.notes
    if store is None:
        raise BadParameters("this share keeps no notes")
    if op == "post_note":
        note = message.get("note")
        if not isinstance(note, dict):
            raise BadParameters("post_note needs the signed note")
        via = notes.key_holder(message.get("key_holder"))  # a known code or nothing
        kept = await asyncio.to_thread(
            store.add, note, None, via, sender, message.get("work"), trusted
        )
        changed, share.notes_changed = share.notes_changed, None
        if changed is not None:
            changed.set()  # every waiting panel answers now
        return {"note": kept}
    after = message.get("after", 0)
    wait_s = message.get("wait_s", 0)
    if not isinstance(after, int) or not isinstance(wait_s, int | float):
        raise BadParameters("notes takes whole numbers: after, wait_s")
    wait_s = max(0.0, min(float(wait_s), NOTES_WAIT_MAX_S))
    if store.seq <= after and wait_s > 0:
        if share.notes_changed is None:
            share.notes_changed = asyncio.Event()
        try:
            await asyncio.wait_for(share.notes_changed.wait(), wait_s)
        except TimeoutError:
            pass
    return {
        "notes": await asyncio.to_thread(store.since, after),
        "seq": store.seq,
        "work_bits": store.work_needed(),
    }
