"""All of this kernel's shares in one table: which are live, how busy, and their links."""

from __future__ import annotations

from typing import Any

import ipywidgets as widgets

from .share_status import badge, share_state, shorten
from .style import MUTED, TABLE_CSS, PlainTextRepr, esc, human_bytes

Status = dict[str, Any]

LINK_CHARS = 40
COLUMNS = ("name", "state", "relay", "queries", "viewers now", "bytes out", "link")


def _cells(status: Status) -> tuple[str, ...]:
    return (
        str(status.get("name", "")),
        share_state(status)[0],
        str(status.get("relay", "")),
        f"{int(status.get('queries') or 0):,}",
        f"{int(status.get('viewers_now') or 0):,}",
        human_bytes(status.get("bytes_out") or 0),
        str(status.get("link", "")),
    )


def _is_web_link(link: str) -> bool:
    # Only http(s) becomes a clickable href: anything else (javascript:, data:) stays text.
    return link.lower().startswith(("http://", "https://"))


class SharesList(PlainTextRepr, widgets.HTML):  # type: ignore[misc]
    """A table of share status dicts (the same dicts ``ShareStatus`` takes)."""

    def __init__(self, shares: list[Status]) -> None:
        self.shares = [dict(s) for s in shares]
        super().__init__(self._html())

    def update(self, shares: list[Status]) -> None:
        self.shares = [dict(s) for s in shares]
        self.value = self._html()

    def _html(self) -> str:
        if not self.shares:
            return (
                f'<div style="color:{MUTED};font-size:12px;line-height:1.6">no active shares</div>'
            )
        rows = []
        for status in self.shares:
            name, _state, relay, queries, viewers, out, link = _cells(status)
            short = esc(shorten(link, LINK_CHARS))
            shown = (
                f'<a href="{esc(link)}" title="{esc(link)}" target="_blank" rel="noopener noreferrer">{short}</a>'
                if _is_web_link(link)
                else f'<span title="{esc(link)}">{short}</span>'
            )
            rows.append(
                f"<tr><td>{esc(name)}</td><td>{badge(*share_state(status))}</td>"
                f"<td>{esc(relay)}</td>"
                f'<td style="text-align:right">{esc(queries)}</td>'
                f'<td style="text-align:right">{esc(viewers)}</td>'
                f'<td style="text-align:right">{esc(out)}</td>'
                f'<td style="font-family:var(--jp-code-font-family,monospace)">{shown}</td></tr>'
            )
        head = "".join(
            f'<th style="text-align:right">{c}</th>'
            if c in ("queries", "viewers now", "bytes out")
            else f"<th>{c}</th>"
            for c in COLUMNS
        )
        return (
            f'{TABLE_CSS}<div class="p2p2p-scroll"><table class="p2p2p-table">'
            f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
        )

    def __repr__(self) -> str:
        if not self.shares:
            return "no active shares"
        table = [COLUMNS, *(_cells(s) for s in self.shares)]
        # The link goes last and unpadded: it is long, and copied whole from the text.
        widths = [max(len(row[c]) for row in table) for c in range(len(COLUMNS) - 1)]
        numeric = {3, 4, 5}
        lines = []
        for row in table:
            cells = [
                row[c].rjust(widths[c]) if c in numeric else row[c].ljust(widths[c])
                for c in range(len(COLUMNS) - 1)
            ]
            lines.append("  ".join([*cells, row[-1]]).rstrip())
        return "\n".join(lines)
