"""The SQL snippets this kernel keeps (``%p2p snippets``): each name and its SQL."""

from __future__ import annotations

from collections.abc import Mapping

import ipywidgets as widgets

from .style import MUTED, TABLE_CSS, PlainTextRepr, esc


class SnippetList(PlainTextRepr, widgets.HTML):  # type: ignore[misc]
    def __init__(self, snippets: Mapping[str, str]) -> None:
        self.snippets = dict(snippets)
        super().__init__(self._html())

    def _html(self) -> str:
        if not self.snippets:
            return (
                f'<div style="color:{MUTED};font-size:12px;line-height:1.6">no snippets yet: '
                "%%p2pquery --save NAME keeps a cell's SQL under NAME</div>"
            )
        rows = "".join(
            f"<tr><td><b>{esc(name)}</b></td>"
            f'<td style="white-space:pre-wrap;font-family:var(--jp-code-font-family,monospace)">'
            f"{esc(sql)}</td></tr>"
            for name, sql in sorted(self.snippets.items())
        )
        return (
            f'{TABLE_CSS}<table class="p2p2p-table"><thead><tr><th>snippet</th><th>SQL '
            f'<span class="p2p2p-dtype">a cell that names it gets it as a CTE</span></th>'
            f"</tr></thead><tbody>{rows}</tbody></table>"
        )

    def __repr__(self) -> str:
        if not self.snippets:
            return "no snippets yet: %%p2pquery --save NAME keeps a cell's SQL under NAME"
        width = max(len(name) for name in self.snippets)
        lines = []
        for name, sql in sorted(self.snippets.items()):
            body = sql.splitlines() or [""]
            lines.append(f"{name:<{width}}  {body[0]}")
            lines += [f"{'':<{width}}  {more}" for more in body[1:]]
        return "\n".join(lines)
