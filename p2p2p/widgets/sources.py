"""A group of stores at a glance: which are online (``GroupStatus``), and which answered a
fan-out (a line per store while rows arrive, then a table).

Shown under a fan-out's result (``%%p2pquery GROUP``): each store with its rows and time,
or what it said instead of answering. An error message there came from that store's
owner or relay, so it is shown as theirs, after the store's name, never as ours.
"""

from __future__ import annotations

import threading
import time

import ipywidgets as widgets

from ..client.federation import FanOutInfo, StoreGroup
from ..errors import printable
from .share_status import ago
from .style import MUTED, PlainTextRepr, esc, human_bytes

__all__ = ["GroupStatus", "SourcesProgress", "SourcesTable"]

RED = "#b42318"
GREEN = "#1a7f37"


def _rows(count: int) -> str:
    return f"{count:,} row{'' if count == 1 else 's'}"


class SourcesProgress(PlainTextRepr, widgets.HTML):  # type: ignore[misc]
    """One line per store while the fan-out runs; ``update`` may come from any thread."""

    def __init__(self, names: list[str], min_interval_s: float = 0.15) -> None:
        self.states: dict[str, tuple[int, int, str]] = {n: (0, 0, "waiting") for n in names}
        self._lock = threading.Lock()
        self._min_interval_s = min_interval_s
        self._last = 0.0
        super().__init__(self._html())

    def update(self, name: str, rows: int, nbytes: int, state: str) -> None:
        with self._lock:
            self.states[name] = (rows, nbytes, state)
        now = time.monotonic()
        if state in ("done", "failed") or now - self._last >= self._min_interval_s:
            self._last = now
            self.value = self._html()

    def _lines(self) -> list[tuple[str, str]]:
        with self._lock:
            states = dict(self.states)
        lines = []
        for name, (rows, nbytes, state) in states.items():
            if state == "waiting":
                text = "waiting"
            elif state == "failed":
                text = "no answer"
            else:
                text = f"{_rows(rows)} · {human_bytes(nbytes)}" + (
                    " · done" if state == "done" else "…"
                )
            lines.append((name, text))
        return lines

    def _html(self) -> str:
        rows = "".join(
            f"<div><b>{esc(name)}</b> · {esc(text)}</div>" for name, text in self._lines()
        )
        return (
            f'<div class="p2p2p-sources-progress" style="font-size:12px;color:{MUTED}">{rows}</div>'
        )

    def __repr__(self) -> str:
        return "\n".join(f"{name}: {text}" for name, text in self._lines())


class SourcesTable(PlainTextRepr, widgets.HTML):  # type: ignore[misc]
    """Each store's outcome once the fan-out is over."""

    def __init__(self, info: FanOutInfo) -> None:
        self.info = info
        super().__init__(self._html())
        self.add_class("p2p2p-sources")

    def _html(self) -> str:
        cells = []
        for source in self.info.sources:
            if source.ok:
                status = f'<span style="color:{GREEN}">answered</span>'
                detail = f"{_rows(source.rows)} · {source.seconds * 1000:,.0f} ms"
            else:
                status = f'<span style="color:{RED}">no rows</span>'
                detail = f"{esc(source.error)}: {esc(source.message)}"
            cells.append(
                f'<tr><td style="padding:1px 10px 1px 0"><b>{esc(source.name)}</b></td>'
                f'<td style="padding:1px 10px 1px 0">{status}</td><td>{detail}</td></tr>'
            )
        answered = len(self.info.answered)
        head = f"{answered} of {len(self.info.sources)} stores answered"
        return (
            f'<div style="font-size:12px;margin-top:4px"><div style="color:{MUTED}">{head}</div>'
            f"<table>{''.join(cells)}</table></div>"
        )

    def __repr__(self) -> str:
        lines = [f"{len(self.info.answered)} of {len(self.info.sources)} stores answered"]
        for source in self.info.sources:
            if source.ok:
                lines.append(f"  {source.name}: {_rows(source.rows)}")
            else:
                said = printable(f"{source.error}: {source.message}")
                lines.append(f"  {source.name}: no rows ({said})")
        return "\n".join(lines)


def _seen(row: dict[str, object]) -> str:
    """When a store was last seen online, for the states where that means something."""
    if row.get("state") not in ("online", "offline"):
        return ""
    when = row.get("last_seen")
    if not isinstance(when, int | float) or not when:
        return "never seen here"
    return ago(max(0.0, time.time() - when))


STATE_COLOURS = {"online": GREEN, "local": MUTED, "offline": RED, "missing": RED}


class GroupStatus(PlainTextRepr, widgets.VBox):  # type: ignore[misc]
    """A group's stores: online or not, when last seen, and a click to each dashboard.

    Whether a share is online is asked of its relay (which answers from its routes), so
    looking at this costs the owners nothing. Refresh asks again."""

    def __init__(self, group: StoreGroup) -> None:
        self.group = group
        self.rows: list[dict[str, object]] = []
        self.table = widgets.HTML()
        self.refresh_button = widgets.Button(description="Refresh", icon="refresh")
        self.refresh_button.on_click(lambda _b: self.refresh())
        super().__init__([self.table, self.refresh_button])
        self.add_class("p2p2p-group-status")
        self.refresh()

    def refresh(self) -> None:
        self.rows = self.group.status()
        self.table.value = self._html()

    def _html(self) -> str:
        cells = []
        for row in self.rows:
            state = str(row.get("state"))
            colour = STATE_COLOURS.get(state, MUTED)
            link = str(row.get("link") or "")
            name = esc(row.get("name"))
            # A link carries its token, like the share widget's: it opens the dashboard.
            shown = (
                f'<a href="{esc(link)}" target="_blank" rel="noopener noreferrer">{name}</a>'
                if link.startswith(("http://", "https://"))
                else name
            )
            seen = _seen(row)
            cells.append(
                f'<tr><td style="padding:2px 12px 2px 0"><b>{shown}</b></td>'
                f'<td style="padding:2px 12px 2px 0;color:{colour}">{esc(state)}</td>'
                f'<td style="padding:2px 12px 2px 0;color:{MUTED}">{esc(seen)}</td>'
                f'<td style="color:{MUTED}">{esc(row.get("detail") or row.get("relay") or "")}</td></tr>'
            )
        online = sum(1 for r in self.rows if r.get("state") in ("online", "local"))
        return (
            f'<div style="font-size:13px"><div style="color:{MUTED}">group {esc(self.group.name)}: '
            f"{online} of {len(self.rows)} stores reachable · click a store for its dashboard</div>"
            f"<table>{''.join(cells)}</table></div>"
        )

    def __repr__(self) -> str:
        lines = [f"group {self.group.name}"]
        for row in self.rows:
            seen = _seen(row)
            lines.append(f"  {row.get('name')}: {row.get('state')} {seen}".rstrip())
        return "\n".join(lines)
