"""The read-only SQL box of a dashboard: a viewer's own question, run under the share's
lockdown and limits, answered with a table or with the owner's reason for refusing it.

One line in an owner's own dashboard notebook::

    from p2p2p.widgets import SqlBox
    SqlBox(p2p2p.current_share())
"""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

import ipywidgets as widgets

from ..errors import P2P2PError, ShareOffline

ROW_LIMIT = 10_000  # rows a viewer's own query shows, whatever the owner's cap


class SqlBox(widgets.VBox):  # type: ignore[misc]
    def __init__(
        self,
        store: Any,
        on_offline: Callable[[], None] | None = None,
        on_run: Callable[[str], None] | None = None,
        row_limit: int = ROW_LIMIT,
    ) -> None:
        self.store = store
        self.on_offline = on_offline
        self.on_run = on_run  # told each query run (the explorer keeps it in the address)
        self.row_limit = row_limit
        self.live = True
        self.text = widgets.Textarea(
            placeholder="SELECT * FROM …  (read-only; the owner's limits apply)",
            layout=widgets.Layout(width="auto", height="5.5em"),
        )
        self.run_button = widgets.Button(description="Run", button_style="primary")
        self.run_button.on_click(lambda _b: self.run())
        self.result = widgets.VBox()
        super().__init__(
            [widgets.HTML("<b>Ask your own question</b>"), self.text, self.run_button, self.result],
            layout=widgets.Layout(margin="12px 0"),
        )
        self.add_class("p2p2p-sql-box")

    def show(self, sql: str) -> None:
        """``sql`` in the box, and run (a view opened as SQL, an address's SQL)."""
        self.text.value = sql
        self.run()

    def offline(self) -> None:
        self.live = False
        self.run_button.disabled = True

    def run(self) -> None:
        sql = self.text.value.strip()
        if not sql:
            return
        self.run_button.disabled = True
        self.result.children = [widgets.HTML("<i>running…</i>")]
        try:
            from .result_table import ResultTable  # and pandas: only once a query is run

            frame = self.store.query(sql, max_rows=self.row_limit)
            shown: widgets.Widget = ResultTable(frame, self.store.last_info, "your query")
        except ShareOffline:
            self.offline()
            if self.on_offline is not None:
                self.on_offline()
            shown = widgets.HTML("<b>The share went offline.</b>")
        except P2P2PError as exc:
            # The owner's reason (e.g. the lockdown rule), never a traceback.
            shown = widgets.HTML(
                f'<div class="p2p2p-sql-error" style="color:#b42318">Not run: '
                f"{html.escape(exc.message)}</div>"
            )
        finally:
            self.run_button.disabled = not self.live
        self.result.children = [shown]
        if self.on_run is not None:
            self.on_run(sql)
