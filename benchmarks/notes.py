"""A notes flood: 1,000 notes, each signed by a fresh key, against the owner and an open
panel. What it costs the owner to turn them away, and what an open notes panel spends
per new note once it already shows a thousand.

In process on purpose: the cost measured is the owner's checks and the panel's widgets,
not the network (which every other section covers).
"""

from __future__ import annotations

import resource
import statistics
import tempfile
import time
from pathlib import Path

from p2p2p.errors import NoteRefused
from p2p2p.owner.notes import NotesStore
from p2p2p.protocol.notes import prove_work
from tests.helpers.notes import NotesFeed, signed_by_a_fresh_key

from .common import Section, Target

SHARE = "c" * 32
FLOOD = 1_000
PANEL_NOTES = 1_000
NEW_NOTES = 50
PER_NOTE_TARGET_S = 0.05  # a panel stays responsive: well under a frame budget of work


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(rounds: int, quick: bool) -> Section:
    del rounds
    import ipywidgets.widgets.widget as registry

    from p2p2p.widgets.notes_panel import NotesPanel

    flood = 200 if quick else FLOOD
    drafts = [
        signed_by_a_fresh_key(SHARE, f"flood {i}") for i in range(flood)
    ]  # signing is the sender's cost
    with tempfile.TemporaryDirectory(prefix="p2p2p-bench-notes-") as tmp:
        store = NotesStore(Path(tmp) / "notes.sqlite", SHARE)
        kept = refused = 0
        cpu = time.process_time()
        for i, note in enumerate(drafts):
            try:
                store.add(note, sender=f"session-{i}")
                kept += 1
            except NoteRefused:
                refused += 1
        owner_cpu = time.process_time() - cpu
        # The same flood paying the proof of work a new key's note needs: what it costs
        # the sender per note as the price rises, and the owner per note it checks.
        paid = 12 if quick else 30
        sender_cpu: list[float] = []
        paid_owner = 0.0
        prices: list[int] = []
        for i in range(paid):
            note = signed_by_a_fresh_key(SHARE, f"paid {i}")
            prices.append(store.work_needed())
            cpu = time.process_time()
            work = prove_work(note, prices[-1])
            sender_cpu.append(time.process_time() - cpu)
            cpu = time.process_time()
            try:
                store.add(note, sender=f"paid-{i}", work=work)
            except NoteRefused:
                pass
            paid_owner += time.process_time() - cpu

    feed = NotesFeed(SHARE)
    feed.add(200 if quick else PANEL_NOTES)
    widgets_before = len(registry._instances)
    cpu = time.process_time()
    panel = NotesPanel(feed, live=False)
    first_render = time.process_time() - cpu
    shown = len(registry._instances) - widgets_before
    rss_before = peak_rss_mib()
    per_note: list[float] = []
    try:
        for _ in range(NEW_NOTES):
            feed.add(1)
            cpu = time.process_time()
            panel.refresh()
            per_note.append(time.process_time() - cpu)
        grown = len(registry._instances) - widgets_before - shown
    finally:
        panel.close()
    median = statistics.median(per_note)
    lines = [
        f"* **owner**: {flood:,} notes, each from a fresh key and a fresh viewer session, "
        f"without the proof of work a new key's note needs: {kept} kept, {refused:,} refused "
        f"in {owner_cpu:.2f} s of CPU ({owner_cpu / flood * 1000:.3f} ms a note: one hash, no "
        "signature check).",
        f"* **a flood that pays**: {paid} notes from fresh keys with the work done; the price "
        f"rose from {prices[0]} to {prices[-1]} bits, costing the sender "
        f"{statistics.median(sender_cpu) * 1000:.0f} ms of CPU per note (median; the last "
        f"{sender_cpu[-1] * 1000:.0f} ms) in Python, against {paid_owner / paid * 1000:.2f} ms "
        "per note for the owner (a browser takes ~0.4 s at the base price of 14 bits).",
        f"* **an open panel** over {len(feed.notes) - NEW_NOTES:,} notes: first render "
        f"{first_render:.2f} s of CPU and {shown:,} widgets (the newest 200 threads; the rest "
        f"counted); then {NEW_NOTES} new notes one at a time: {median * 1000:.1f} ms of CPU per "
        f"note (median, max {max(per_note) * 1000:.1f} ms), {grown:+d} widgets in all, peak "
        f"RSS {peak_rss_mib() - rss_before:+.0f} MiB.",
    ]
    targets = [
        Target(
            "notes flood from fresh keys, kept per minute",
            f"{kept} of {flood:,}",
            "bounded (the share's limit)",
            kept <= 60,
        ),
        Target(
            "open notes panel, CPU per new note",
            f"{median * 1000:.1f} ms, {grown:+d} widgets",
            f"≤ {PER_NOTE_TARGET_S * 1000:.0f} ms, widgets constant",
            median <= PER_NOTE_TARGET_S and abs(grown) <= 5,
        ),
    ]
    return Section("Notes: a flood from fresh keys", "\n".join(lines), targets)
