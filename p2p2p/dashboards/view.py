"""The generic viewer dashboard: what a stakeholder sees when they open a share's link.

It runs in a Voila kernel on the owner's machine and reads the store only through
``p2p2p.current_share()``, i.e. through the share's link, the owner's share API and the
executor, like any other client: same token check, lockdown, limits and audit.

It is made of the building blocks an owner's own dashboard can use too: the table
explorer (``widgets.TableExplorer``: filters, facets, sort, pages, export, the view in
the address), the SQL box, the live/offline line and the notes panel. They render in
Voila (and in JupyterLab for the owner's preview) without a front-end build, and reflow
to a phone's width.
"""

from __future__ import annotations

import html

import ipywidgets as widgets

from ..client import RemoteStore, current_share
from ..errors import P2P2PError, ShareOffline
from ..identity import fingerprint
from ..widgets.explorer import TableExplorer
from ..widgets.notes_panel import BrowserSigner, NotesPanel
from ..widgets.result_table import ResultTable

SQL_ROW_LIMIT = 10_000


class Dashboard(widgets.VBox):  # type: ignore[misc]
    """Header, the table explorer, a read-only SQL box and the notes panel."""

    def __init__(
        self,
        store: RemoteStore | None = None,
        live_notes: bool = True,
    ):
        self.store = store or current_share()
        self.status = widgets.HTML()
        self.sql = widgets.Textarea(
            placeholder="SELECT * FROM …  (read-only; the owner's limits apply)",
            layout=widgets.Layout(width="100%", height="5.5em"),
        )
        self.run_button = widgets.Button(description="Run", button_style="primary")
        self.run_button.on_click(lambda _b: self.run_sql())
        self.sql_result = widgets.VBox()
        info = self.about = self.store.info()
        self.relations = list(self.store.schema().get("relations", []))
        self.notes = NotesPanel(
            self.store,
            [str(r.get("name")) for r in self.relations],
            signer=BrowserSigner(),
            live=live_notes,
        )
        owner = fingerprint(self.store.owner_key)
        title = str(info.get("title") or info.get("name", "share"))
        self.header = widgets.HTML(
            f'<div class="p2p2p-dash-title" style="font-size:1.35em;font-weight:600">{html.escape(title)}</div>'
            f'<div style="color:#59636e;font-size:.9em">Shared read-only from the owner\'s machine · '
            f"owner key <code>{html.escape(owner)}</code></div>"
        )
        sql_box = widgets.VBox(
            [
                widgets.HTML("<b>Ask your own question</b>"),
                self.sql,
                self.run_button,
                self.sql_result,
            ],
            layout=widgets.Layout(margin="12px 0"),
        )
        self.explorer = self._explorer()
        super().__init__(
            [self.header, self.status, self.explorer, sql_box, self.notes],
            layout=widgets.Layout(max_width="1600px", width="100%", padding="4px"),
        )
        self.add_class("p2p2p-dashboard")
        self._set_live(True)

    # -- live / offline ---------------------------------------------------------------
    # The page itself says when the share goes away (owner.api.live puts a script in every
    # dashboard page); this badge and the Run button follow what the kernel saw last.
    def _set_live(self, live: bool) -> None:
        self.live = live
        if live:
            self.status.value = (
                '<span class="p2p2p-live-badge" style="background:#1a7f37;color:#fff;'
                'border-radius:1em;padding:0 .6em">live</span>'
            )
            return
        self.status.value = (
            '<div class="p2p2p-offline" style="background:#fff8c5;border:1px solid #d4a72c;'
            'padding:8px;border-radius:6px"><b>This share is offline.</b> The owner stopped '
            "sharing it (or their machine is not connected). What you see below is no longer "
            "updated.</div>"
        )
        self.run_button.disabled = True

    def close(self) -> None:
        self.notes.close()
        super().close()

    # -- tables -------------------------------------------------------------------
    def _explorer(self) -> widgets.Widget:
        if not self.relations:
            return widgets.HTML("<i>This store has no tables.</i>")
        return TableExplorer(
            self.store,
            self.relations,
            exports=bool(self.about.get("exports", True)),
            on_sql=self.show_sql,
            on_annotate=self.notes.annotate_row,
        )

    # -- viewer SQL ---------------------------------------------------------------
    def show_sql(self, sql: str) -> None:
        """A view opened as SQL (or an address's SQL): in the box, and run."""
        self.sql.value = sql
        self.run_sql()

    def run_sql(self) -> None:
        sql = self.sql.value.strip()
        if not sql:
            return
        self.run_button.disabled = True
        self.sql_result.children = [widgets.HTML("<i>running…</i>")]
        try:
            frame = self.store.query(sql, max_rows=SQL_ROW_LIMIT)
            shown: widgets.Widget = ResultTable(frame, self.store.last_info, "your query")
        except ShareOffline:
            self._set_live(False)
            shown = widgets.HTML("<b>The share went offline.</b>")
        except P2P2PError as exc:
            # The owner's reason (e.g. the lockdown rule), never a traceback.
            shown = widgets.HTML(
                f'<div class="p2p2p-sql-error" style="color:#b42318">Not run: '
                f"{html.escape(exc.message)}</div>"
            )
        finally:
            self.run_button.disabled = not self.live
        self.sql_result.children = [shown]
        if isinstance(self.explorer, TableExplorer):
            self.explorer.sql = sql  # kept in the page's address with the view
