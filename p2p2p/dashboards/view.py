"""The generic viewer dashboard: what a stakeholder sees when they open a share's link.

It runs in a Voila kernel on the owner's machine and reads the store only through
``p2p2p.current_share()``, i.e. through the share's link, the owner's share API and the
executor, like any other client: same token check, lockdown, limits and audit.

Everything on it is a core ipywidget, so it renders in Voila (and in JupyterLab for the
owner's preview) without a front-end build, and it reflows to a phone's width.
"""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as widgets
import pandas as pd

from ..client import RemoteStore, current_share
from ..errors import P2P2PError, ShareOffline
from ..identity import fingerprint
from ..store.policy import quote_name
from ..widgets.notes_panel import BrowserSigner, NotesPanel
from ..widgets.result_table import ResultTable

HEADLINE_ROWS = 5
CHART_BARS = 8
SQL_ROW_LIMIT = 10_000
SUMMARY_COLUMNS = 4
NUMERIC_TYPES = {
    "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
    "UINTEGER", "UBIGINT", "FLOAT", "REAL", "DOUBLE", "DECIMAL",
}  # fmt: skip


KEY_COLUMNS = 3  # a row is named by its first columns


def _plain(value: Any) -> Any:
    """A cell as a note can carry it: text, whole numbers, booleans, null."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if hasattr(value, "item"):
        value = value.item()  # numpy scalars
    if isinstance(value, bool | int | str):
        return value
    return str(value)


def _number(value: Any) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "NULL"
    number = float(value)
    if number.is_integer():
        # Separators help large counts but make years read oddly ("2,024").
        return f"{number:,.0f}" if abs(number) >= 10_000 else f"{number:.0f}"
    return f"{number:,.2f}"


def bar_chart(labels: list[str], values: list[float], title: str) -> str:
    """A small horizontal bar chart as inline SVG (no plotting library, no scripts)."""
    if not values:
        return ""
    top = max(max(values), 1e-12)
    row, label_w, bar_w = 22, 110, 180
    bars = []
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        y = i * row
        width = max(1.0, bar_w * value / top)
        bars.append(
            f'<text x="{label_w - 6}" y="{y + 15}" text-anchor="end">{html.escape(label[:18])}</text>'
            f'<rect x="{label_w}" y="{y + 4}" width="{width:.1f}" height="14" rx="2" fill="#4c78a8"/>'
            f'<text x="{label_w + width + 4:.1f}" y="{y + 15}">{value:,.0f}</text>'
        )
    height = row * len(values)
    return (
        f'<div class="p2p2p-chart"><div style="font-weight:600;margin:4px 0">{html.escape(title)}</div>'
        f'<svg viewBox="0 0 {label_w + bar_w + 70} {height}" style="width:100%;max-width:440px;height:auto" '
        f'role="img" aria-label="{html.escape(title)}" font-size="12" font-family="sans-serif">'
        f"{''.join(bars)}</svg></div>"
    )


class Dashboard(widgets.VBox):  # type: ignore[misc]
    """Header, tables with headline views, a read-only SQL box and the notes panel."""

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
        self.tables = widgets.VBox()
        info = self.store.info()
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
        super().__init__(
            [self.header, self.status, self.tables, sql_box, self.notes],
            layout=widgets.Layout(max_width="1100px", padding="4px"),
        )
        self.add_class("p2p2p-dashboard")
        self._set_live(True)
        self._load_tables()

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
    def _load_tables(self) -> None:
        sections = [self._table_section(r) for r in self.relations]
        self.tables.children = sections or [widgets.HTML("<i>This store has no tables.</i>")]

    def _table_section(self, relation: dict[str, Any]) -> widgets.Widget:
        name = str(relation.get("name", ""))
        rows = relation.get("rows")
        columns = list(relation.get("columns", []))
        count = "" if rows is None else f" · {int(rows):,} rows"
        heading = widgets.HTML(
            f'<div class="p2p2p-table-name" style="font-weight:600;font-size:1.1em;margin-top:10px">'
            f"{html.escape(name)}<span style='color:#59636e;font-weight:400'>{count}</span></div>"
            f'<div style="color:#59636e;font-size:.85em">'
            + html.escape(", ".join(f"{c.get('name')} {c.get('type')}" for c in columns))
            + "</div>"
        )
        parts: list[widgets.Widget] = [heading]
        try:
            first = self.store.query(f"SELECT * FROM {quote_name(name)} LIMIT {HEADLINE_ROWS}")
            parts.append(ResultTable(first, self.store.last_info, f"first rows of {name}", 5))
            if len(first):
                parts.append(self._annotate_control(name, first))
            summary = self._summary(name, columns)
            if summary:
                parts.append(widgets.HTML(summary))
            chart = self._chart(name, columns)
            if chart:
                parts.append(widgets.HTML(chart))
        except P2P2PError as exc:
            parts.append(
                widgets.HTML(f'<div style="color:#b42318">{html.escape(exc.message)}</div>')
            )
        return widgets.VBox(parts, layout=widgets.Layout(margin="0 0 8px"))

    def _annotate_control(self, table: str, frame: pd.DataFrame) -> widgets.Widget:
        """Pick one of the rows shown and make it the subject of the next note."""
        keys = list(frame.columns[:KEY_COLUMNS])
        rows = [{str(k): _plain(frame.iloc[i][k]) for k in keys} for i in range(len(frame))]
        choice = widgets.Dropdown(
            options=[
                (", ".join(f"{k}={v}" for k, v in row.items())[:60], i)
                for i, row in enumerate(rows)
            ],
            layout=widgets.Layout(width="auto", max_width="22em"),
        )
        button = widgets.Button(
            description="Annotate this row", layout=widgets.Layout(width="auto")
        )
        button.on_click(lambda _b: self.notes.annotate_row(table, rows[int(choice.value)]))
        return widgets.HBox([choice, button], layout=widgets.Layout(flex_flow="row wrap"))

    def _summary(self, name: str, columns: list[dict[str, Any]]) -> str:
        """Minimum, average and maximum of the first few numeric columns, in one query."""
        numeric = [
            str(c.get("name"))
            for c in columns
            if str(c.get("type", "")).upper().split("(")[0] in NUMERIC_TYPES
        ][:SUMMARY_COLUMNS]
        if not numeric:
            return ""
        parts = ", ".join(
            f"min({quote_name(c)}), avg({quote_name(c)})::DOUBLE, max({quote_name(c)})"
            for c in numeric
        )
        row = self.store.query(f"SELECT {parts} FROM {quote_name(name)}").iloc[0].tolist()
        lines = [
            f"<b>{html.escape(c)}</b> min {_number(row[3 * i])} · avg {_number(row[3 * i + 1])}"
            f" · max {_number(row[3 * i + 2])}"
            for i, c in enumerate(numeric)
        ]
        return (
            '<div class="p2p2p-summary" style="font-size:.9em;margin:4px 0">'
            + "<br>".join(lines)
            + "</div>"
        )

    def _chart(self, name: str, columns: list[dict[str, Any]]) -> str:
        """Counts of the first text column with few distinct values, if there is one."""
        for column in columns:
            if str(column.get("type", "")).upper() not in ("VARCHAR", "TEXT", "STRING"):
                continue
            col = quote_name(str(column.get("name")))
            top = self.store.query(
                f"SELECT {col} AS k, count(*) AS n FROM {quote_name(name)} GROUP BY 1 "
                f"ORDER BY n DESC, k LIMIT {CHART_BARS + 1}"
            )
            # Worth a chart: a few groups, and not one row each (an id-like column).
            if 1 < len(top) <= CHART_BARS and int(top["n"].max()) > 1:
                labels = ["NULL" if pd.isna(k) else str(k) for k in top["k"]]
                return bar_chart(
                    labels, [float(n) for n in top["n"]], f"rows by {column.get('name')}"
                )
        return ""

    # -- viewer SQL ---------------------------------------------------------------
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
