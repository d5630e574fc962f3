"""A query result as an interactive table: caption, a page of rows, paging and sorting.

Built from core ipywidgets only (HTML, Button, Dropdown, ToggleButtons), so it renders in
JupyterLab and Voila without a front-end extension, and its ``text/plain`` is a readable
table for terminals and notebook regression tests. Every value shown is HTML-escaped:
results can come from someone else's store.

Also home to the small pieces the other p2p2p widgets share (byte units, the plain-text
repr, the table style), so that they look and read the same.
"""

from __future__ import annotations

import html
import time
from collections.abc import Hashable
from typing import Any

import ipywidgets as widgets
import numpy as np
import pandas as pd

from ..store.executor import ResultInfo

PREVIEW_ROWS = 10
# Past this a cell is an essay, not a value; the DataFrame keeps the whole of it. Text is
# cut sooner: one long value there widens every line of the table.
CELL_CHARS = 200
TEXT_CELL_CHARS = 50
AMBER = "#b45309"
MUTED = "var(--jp-ui-font-color2, #616161)"

# One style block shared by every p2p2p table. An HTML widget's value goes in through
# innerHTML, so the rules are global: they only match p2p2p-* classes, and every copy is
# identical, so many widgets on a page do not fight. JupyterLab's own table styles only
# apply to rendered-HTML outputs, not to widgets, hence styles of our own; the --jp-*
# variables make them follow the light or dark theme (in Voila too).
TABLE_CSS = (
    "<style>"
    ".p2p2p-table{border-collapse:collapse;font-size:12px;line-height:1.45;"
    "font-variant-numeric:tabular-nums;color:var(--jp-ui-font-color1,#212121)}"
    ".p2p2p-table th,.p2p2p-table td{padding:2px 10px;text-align:left;white-space:nowrap;"
    "border-bottom:1px solid var(--jp-border-color2,#e0e0e0);max-width:32em;"
    "overflow:hidden;text-overflow:ellipsis;vertical-align:top}"
    ".p2p2p-table thead th{border-bottom:1px solid var(--jp-border-color1,#bdbdbd);"
    "vertical-align:bottom;font-weight:600}"
    ".p2p2p-table tbody tr:nth-child(even){background:var(--jp-layout-color2,#f5f5f5)}"
    ".p2p2p-dtype{display:block;font-weight:normal;font-size:10px;"
    "color:var(--jp-ui-font-color2,#757575)}"
    ".p2p2p-scroll{overflow-x:auto;max-width:100%}"
    "</style>"
)


def human_bytes(n: int | float) -> str:
    """``9.4 MB``: decimal units, as file managers and network tools show them."""
    value = float(n)
    if abs(value) < 1000:
        return f"{int(value)} B"
    for unit in ("kB", "MB", "GB", "TB"):
        value /= 1000
        if abs(value) < 1000:
            return f"{value:.1f} {unit}"
    return f"{value / 1000:.1f} PB"


def esc(value: object) -> str:
    """Text (of anything) made safe for an HTML element body or a quoted attribute."""
    return html.escape(str(value), quote=True)


class PlainTextRepr:
    """Makes a widget's ``text/plain`` its ``__repr__``, in full.

    ipywidgets puts ``repr(widget)`` cut to 110 characters into ``text/plain``; p2p2p's
    widgets instead give a useful text rendering, which is what a terminal, nbconvert
    and the notebook regression tests see.
    """

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        bundle: dict[str, Any] = {}
        parent = getattr(super(), "_repr_mimebundle_", None)
        if parent is not None:
            try:
                bundle = dict(parent(**kwargs) or {})
            except Exception:
                # A closed widget has no model to point at; its text still helps.
                bundle = {}
        bundle["text/plain"] = repr(self)
        return bundle

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))


def dtype_hint(column: pd.Series) -> str:
    """The short type shown under a column header."""
    dtype = column.dtype
    if isinstance(dtype, pd.StringDtype):
        return "string"
    if pd.api.types.is_object_dtype(dtype):
        # DuckDB hands over DECIMAL, DATE, BLOB and nullable BOOLEAN as Python objects;
        # "object" would say nothing about them.
        kind = pd.api.types.infer_dtype(column, skipna=True)
        return _OBJECT_KINDS.get(kind, "object")
    return str(dtype)


_OBJECT_KINDS = {
    "string": "string",
    "bytes": "bytes",
    "boolean": "bool",
    "integer": "int",
    "floating": "float",
    "decimal": "decimal",
    "date": "date",
    "time": "time",
    "datetime": "datetime",
    "timedelta": "timedelta",
}


def _shown(frame: pd.DataFrame, *, for_text: bool) -> pd.DataFrame:
    """A copy of a few rows ready for display: NULL for every kind of missing value.

    ``na_rep`` alone misses ``pd.NA`` in nullable columns and ``None`` in object columns.
    """
    # Positional from here on: column names and index labels may repeat.
    frame = frame.reset_index(drop=True)
    out: dict[int, pd.Series] = {}
    for pos in range(frame.shape[1]):
        col = frame.iloc[:, pos]
        dtype = col.dtype
        if isinstance(dtype, pd.api.extensions.ExtensionDtype) and pd.api.types.is_float_dtype(
            dtype
        ):
            # Stay a float column so every value gets the same number of decimals.
            col = pd.Series(col.to_numpy(dtype="float64", na_value=np.nan), index=col.index)
        elif not (
            pd.api.types.is_float_dtype(dtype)
            or pd.api.types.is_datetime64_any_dtype(dtype)
            or pd.api.types.is_timedelta64_dtype(dtype)
        ):
            col = col.astype(object).map(lambda v: _cell(v, for_text))
        out[pos] = col
    shown = pd.DataFrame(out, index=frame.index)
    shown.columns = frame.columns
    return shown


def _cell(value: Any, for_text: bool) -> Any:
    if _is_na(value):
        return "NULL"
    if isinstance(value, str):
        limit = TEXT_CELL_CHARS if for_text else CELL_CHARS
        if len(value) > limit:
            value = value[: limit - 1] + "…"
        if for_text:
            # One row per line, or the text table falls apart.
            value = value.replace("\r", "\\r").replace("\n", "\\n").replace("\t", "\\t")
    return value


def _is_na(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        # Lists and arrays: pd.isna answers element-wise, and a list is a value.
        return False


def _sorted_positions(column: pd.Series, ascending: bool) -> np.ndarray[Any, Any]:
    values = column.reset_index(drop=True)
    try:
        ordered = values.sort_values(kind="stable", ascending=ascending, na_position="last")
    except (TypeError, ValueError):
        # Mixed types (lists, structs, ints among strings) have no order of their own;
        # their text does.
        as_text = values.astype(object).map(lambda v: None if _is_na(v) else str(v))
        ordered = as_text.sort_values(kind="stable", ascending=ascending, na_position="last")
    return ordered.index.to_numpy()


class ResultTable(PlainTextRepr, widgets.VBox):  # type: ignore[misc]
    """A DataFrame plus its ``ResultInfo``, shown a page at a time.

    ``frame`` is the result as received; sorting changes only what is shown (``view``).
    """

    def __init__(
        self, frame: pd.DataFrame, info: ResultInfo, source: str, page_size: int = 20
    ) -> None:
        if page_size < 1:
            raise ValueError(f"page_size must be at least 1, not {page_size}")
        self.frame = frame
        self.info = info
        self.source = source
        self.page_size = page_size
        self.view = frame
        self.page = 0
        self._sort: tuple[int, bool] | None = None
        self._hints = [dtype_hint(frame.iloc[:, i]) for i in range(frame.shape[1])]
        self._syncing = False

        self.caption = widgets.HTML(self._caption_html())
        self.table_html = widgets.HTML()
        self.prev_button = widgets.Button(
            description="◀", tooltip="previous page", layout=widgets.Layout(width="36px")
        )
        self.next_button = widgets.Button(
            description="▶", tooltip="next page", layout=widgets.Layout(width="36px")
        )
        self.page_label = widgets.Label()
        self.sort_column = widgets.Dropdown(
            options=[("(as received)", -1)]
            + [(str(name), i) for i, name in enumerate(frame.columns)],
            value=-1,
            description="sort by",
            layout=widgets.Layout(width="auto", max_width="260px"),
            style={"description_width": "initial"},
        )
        self.sort_order = widgets.ToggleButtons(
            options=[("▲ asc", True), ("▼ desc", False)],
            value=True,
            tooltips=["ascending", "descending"],
            style={"button_width": "76px"},
        )
        self.prev_button.on_click(lambda _b: self.show_page(self.page - 1))
        self.next_button.on_click(lambda _b: self.show_page(self.page + 1))
        self.sort_column.observe(self._on_sort_change, names="value")
        self.sort_order.observe(self._on_sort_change, names="value")

        pager = widgets.HBox(
            [self.prev_button, self.page_label, self.next_button],
            layout=widgets.Layout(align_items="center", margin="0 16px 0 0"),
        )
        sorter = widgets.HBox([self.sort_column, self.sort_order])
        controls = widgets.HBox(
            [pager, sorter], layout=widgets.Layout(align_items="center", flex_flow="row wrap")
        )
        # A single page needs no pager, and one row no sorting: less to look at.
        if len(frame) <= page_size:
            pager.layout.display = "none"
        if len(frame) < 2:
            controls.layout.display = "none"
        super().__init__([self.caption, self.table_html, controls])
        self.add_class("p2p2p-result-table")  # a stable handle for pages and tests
        self._render()

    @property
    def page_count(self) -> int:
        return max(1, -(-len(self.view) // self.page_size))

    def visible_frame(self) -> pd.DataFrame:
        """The rows of the page on screen, in the order shown."""
        start = self.page * self.page_size
        return self.view.iloc[start : start + self.page_size]

    def show_page(self, page: int) -> None:
        self.page = min(max(page, 0), self.page_count - 1)
        self._render()

    def sort_by(self, column: Hashable | None, ascending: bool = True) -> None:
        """Sort the whole result by a column (first of that name); None restores the order."""
        position = -1
        if column is not None:
            matches = [i for i, name in enumerate(self.frame.columns) if name == column]
            if not matches:
                raise KeyError(column)
            position = matches[0]
        self._syncing = True
        try:
            self.sort_column.value = position
            self.sort_order.value = ascending
        finally:
            self._syncing = False
        self._apply_sort(position, ascending)

    def _on_sort_change(self, _change: dict[str, Any]) -> None:
        if not self._syncing:
            self._apply_sort(int(self.sort_column.value), bool(self.sort_order.value))

    def _apply_sort(self, position: int, ascending: bool) -> None:
        wanted = None if position < 0 else (position, ascending)
        if wanted != self._sort:
            self._sort = wanted
            if wanted is None:
                self.view = self.frame
            else:
                order = _sorted_positions(self.frame.iloc[:, position], ascending)
                self.view = self.frame.iloc[order]
        self.show_page(0)

    def _caption_html(self) -> str:
        style = f"color:{AMBER};font-weight:600" if self.info.truncated else f"color:{MUTED}"
        return (
            f'<div style="{style};font-size:12px;line-height:1.5;margin:2px 0">'
            f"{esc(self.info.describe(self.source))}</div>"
        )

    def _render(self) -> None:
        total = len(self.view)
        start = self.page * self.page_size
        end = min(start + self.page_size, total)
        self.page_label.value = f"rows {start + 1:,}–{end:,} of {total:,}" if total else "no rows"
        self.prev_button.disabled = self.page <= 0
        self.next_button.disabled = end >= total
        self.table_html.value = self._table_html(self.visible_frame())

    def _table_html(self, page: pd.DataFrame) -> str:
        heads = []
        right = []
        for i, name in enumerate(self.frame.columns):
            arrow = ""
            if self._sort is not None and self._sort[0] == i:
                arrow = " ▲" if self._sort[1] else " ▼"
            heads.append(
                f'<th title="{esc(name)}">{esc(name)}{arrow}'
                f'<span class="p2p2p-dtype">{esc(self._hints[i])}</span></th>'
            )
            dtype = self.frame.dtypes.iloc[i]
            if pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype):
                right.append(i + 1)
        body = "<tbody></tbody>"
        if len(page) and self.frame.shape[1]:
            rendered = _shown(page, for_text=False).to_html(
                escape=True, index=False, header=False, na_rep="NULL", border=0
            )
            # Only the rows: the header is ours (with dtype hints). Values are escaped,
            # so the first <tbody> and the last </tbody> are pandas' own.
            body = rendered[rendered.index("<tbody>") : rendered.rindex("</tbody>") + 8]
        # Numbers line up on the right. The class name spells out which columns, so two
        # tables with different columns never share a rule.
        align = ""
        if right:
            cls = "p2p2p-r" + "-".join(map(str, right))
            cells = ",".join(f".{cls} td:nth-child({n}),.{cls} th:nth-child({n})" for n in right)
            align = f"<style>{cells}{{text-align:right}}</style>"
        else:
            cls = "p2p2p-r"
        return (
            f'{TABLE_CSS}{align}<div class="p2p2p-scroll"><table class="p2p2p-table {cls}">'
            f"<thead><tr>{''.join(heads)}</tr></thead>{body}</table></div>"
        )

    def __repr__(self) -> str:
        caption = self.info.describe(self.source)
        view = self.view
        if view.shape[1] == 0:
            return f"{caption}\n(no columns)"
        if len(view) == 0:
            return f"{caption}\n(no rows; columns: {', '.join(str(c) for c in view.columns)})"
        hidden = len(view) - 2 * PREVIEW_ROWS
        if hidden > 0:
            preview = pd.concat([view.head(PREVIEW_ROWS), view.tail(PREVIEW_ROWS)])
        else:
            preview = view
        with pd.option_context("display.max_columns", 30):
            text = _shown(preview, for_text=True).to_string(index=False, na_rep="NULL", max_cols=30)
        if hidden > 0:
            lines = text.split("\n")
            lines.insert(1 + PREVIEW_ROWS, f"… {hidden:,} more rows …")
            text = "\n".join(lines)
        return f"{caption}\n{text}"


class ResultProgress(PlainTextRepr, widgets.HBox):  # type: ignore[misc]
    """Shown while a large result streams in: rows and bytes so far, from where.

    ``update`` may be called from any thread and as often as batches arrive: the screen is
    redrawn at most every ``min_interval_s``, while ``repr`` always has the latest numbers.
    """

    def __init__(self, source: str, min_interval_s: float = 0.1) -> None:
        self.source = source
        self.rows = 0
        self.nbytes = 0
        self.started = False
        self._min_interval_s = min_interval_s
        self._last_draw: float | None = None
        self.label = widgets.HTML(self._html())
        super().__init__([self.label])

    def update(self, rows: int, nbytes: int) -> None:
        self.rows, self.nbytes, self.started = rows, nbytes, True
        now = time.monotonic()
        if self._last_draw is None or now - self._last_draw >= self._min_interval_s:
            self._last_draw = now
            self.label.value = self._html()

    def _line(self) -> str:
        if not self.started:
            return f"waiting for the first rows from {self.source}…"
        return (
            f"receiving… {self.rows:,} row{'s' if self.rows != 1 else ''}"
            f" · {human_bytes(self.nbytes)} from {self.source}"
        )

    def _html(self) -> str:
        # A CSS-only spinner: something visibly moves while numbers may pause.
        spinner = (
            "<style>@keyframes p2p2p-spin{to{transform:rotate(360deg)}}</style>"
            '<span style="display:inline-block;width:10px;height:10px;margin-right:6px;'
            "border:2px solid var(--jp-border-color2,#ccc);border-top-color:#2563eb;"
            'border-radius:50%;animation:p2p2p-spin 0.9s linear infinite"></span>'
        )
        return (
            f'<div style="font-size:12px;line-height:1.6;color:{MUTED}">'
            f"{spinner}{esc(self._line())}</div>"
        )

    def __repr__(self) -> str:
        return self._line()
