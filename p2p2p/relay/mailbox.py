"""The relay's queue of sealed notes for owners who are away: in memory only, capped.

What it holds it cannot read (``protocol.mailbox``). It is bounded so that nobody can
make a relay hold much: per share, per sender address, in all, and in time. A restart
of the relay loses the queue; senders are told so when they queue.
"""

from __future__ import annotations

import dataclasses
import secrets
import time
from collections import OrderedDict

from ..errors import NoteRefused
from ..protocol.mailbox import TTL_S, retracts

__all__ = ["Mailbox", "Queued"]

PER_SHARE = 200  # queued notes for one share
PER_SHARE_BYTES = 1 << 20
PER_SENDER = 10  # queued notes from one client address for one share
TOTAL = 20_000  # queued notes on this relay in all
OWNERS_KEPT = 100_000  # shares whose owner key the relay remembers (for sealing)


@dataclasses.dataclass(frozen=True)
class Queued:
    id: str
    sealed: bytes
    sender: str
    tag: str  # retract_tag of the sender's secret
    queued: float  # time.time()


class Mailbox:
    def __init__(self, ttl_s: float = TTL_S) -> None:
        self.ttl_s = ttl_s
        self.queues: dict[str, OrderedDict[str, Queued]] = {}
        self.owners: OrderedDict[str, tuple[bytes, str]] = OrderedDict()  # id -> key, name
        self.total = 0

    # -- who a share belongs to --------------------------------------------------
    def seen(self, share_id: str, owner_key: bytes, name: str) -> None:
        self.owners.pop(share_id, None)
        self.owners[share_id] = (owner_key, name)
        while len(self.owners) > OWNERS_KEPT:
            self.owners.popitem(last=False)

    def owner_of(self, share_id: str) -> tuple[bytes, str] | None:
        return self.owners.get(share_id)

    # -- senders -----------------------------------------------------------------
    def post(self, share_id: str, sender: str, sealed: bytes, tag: str) -> Queued:
        now = time.time()
        self.expire(now)
        if share_id not in self.owners:
            raise NoteRefused("this relay has not carried that share since it started")
        queue = self.queues.setdefault(share_id, OrderedDict())
        if (
            len(queue) >= PER_SHARE
            or sum(len(q.sealed) for q in queue.values()) + len(sealed) > PER_SHARE_BYTES
        ):
            raise NoteRefused(f"this share already has {len(queue)} notes waiting at the relay")
        if sum(1 for q in queue.values() if q.sender == sender) >= PER_SENDER:
            raise NoteRefused(f"at most {PER_SENDER} notes from you may wait for this share")
        if self.total >= TOTAL:
            raise NoteRefused("this relay holds as many waiting notes as it takes")
        item = Queued(secrets.token_hex(16), sealed, sender, tag, now)
        queue[item.id] = item
        self.total += 1
        return item

    def retract(self, share_id: str, item_id: str, secret: str) -> bool:
        queue = self.queues.get(share_id)
        item = queue.get(item_id) if queue is not None else None
        if item is None or not retracts(secret, item.tag):
            return False
        self._drop(share_id, [item_id])
        return True

    # -- the owner ---------------------------------------------------------------
    def pending(self, share_id: str, limit: int) -> list[Queued]:
        self.expire(time.time())
        return list((self.queues.get(share_id) or {}).values())[:limit]

    def delivered(self, share_id: str, ids: list[str]) -> None:
        self._drop(share_id, ids)

    def expire(self, now: float) -> None:
        cutoff = now - self.ttl_s
        for share_id, queue in list(self.queues.items()):
            old = [i for i, q in queue.items() if q.queued < cutoff]
            self._drop(share_id, old)

    def _drop(self, share_id: str, ids: list[str]) -> None:
        queue = self.queues.get(share_id)
        if queue is None:
            return
        for item_id in ids:
            if queue.pop(item_id, None) is not None:
                self.total -= 1
        if not queue:
            del self.queues[share_id]
