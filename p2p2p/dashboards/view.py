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
from typing import Any

import ipywidgets as widgets

from ..client import RemoteStore, current_share
from ..identity import fingerprint
from ..widgets.explorer import TableExplorer
from ..widgets.notes_panel import BrowserSigner, NotesPanel
from ..widgets.sql_box import SqlBox
from . import preview


class Dashboard(widgets.VBox):  # type: ignore[misc]
    """Header, the table explorer, a read-only SQL box and the notes panel."""

    def __init__(
        self,
        store: RemoteStore | None = None,
        live_notes: bool = True,
    ):
        self.store = store or current_share()
        self.status = widgets.HTML()
        self.sql_box = SqlBox(
            self.store, on_offline=lambda: self._set_live(False), on_run=self._ran
        )
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
        self.explorer = self._explorer()
        super().__init__(
            [self.header, self.status, self.explorer, self.sql_box, self.notes],
            layout=widgets.Layout(max_width="1600px", width="100%", padding="4px"),
        )
        self.add_class("p2p2p-dashboard")
        self._set_live(True)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        """The widget, and the header and first table for the page to draw before it
        connects (``dashboards.preview``)."""
        parts: list[dict[str, Any]] = [{"kind": "html", "html": self.header.value}]
        if isinstance(self.explorer, TableExplorer):
            parts.append(self.explorer.preview())
        return preview.with_preview(super()._repr_mimebundle_(**kwargs), parts)

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
        self.sql_box.offline()

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
    # The box's parts, as the dashboard's own (older callers and tests use these names).
    @property
    def sql(self) -> widgets.Textarea:
        return self.sql_box.text

    @property
    def run_button(self) -> widgets.Button:
        return self.sql_box.run_button

    @property
    def sql_result(self) -> widgets.VBox:
        return self.sql_box.result

    def show_sql(self, sql: str) -> None:
        self.sql_box.show(sql)

    def run_sql(self) -> None:
        self.sql_box.run()

    def _ran(self, sql: str) -> None:
        if isinstance(self.explorer, TableExplorer):
            self.explorer.sql = sql  # kept in the page's address with the view
