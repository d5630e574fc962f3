"""A query result as an interactive table: caption, a page of rows, paging and sorting.

Built from core ipywidgets only (HTML, Button, Dropdown, ToggleButtons), so it renders in
JupyterLab and Voila without a front-end extension, and its ``text/plain`` is a readable
table for terminals and notebook regression tests. Every value shown is HTML-escaped:
results can come from someone else's store.

Also home to the small pieces the other p2p2p widgets share (byte units, the plain-text
repr, the table style), so that they look and read the same.
"""

from __future__ import annotations

import functools
import re
import threading
import time
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from typing import Any

import ipywidgets as widgets
import numpy as np
import pandas as pd

from ..store.executor import ResultInfo
from .style import AMBER, MUTED, TABLE_CSS, PlainTextRepr, esc, human_bytes

PREVIEW_ROWS = 10
# Past this a cell is an essay, not a value; the DataFrame keeps the whole of it. Text is
# cut sooner: one long value there widens every line of the table.
CELL_CHARS = 200
TEXT_CELL_CHARS = 50
# A value of many lines (EXPLAIN's plan, a log) is shown as lines, and whole up to this.
MULTILINE_CHARS = 20_000
# Rows in a result's text/html: what a saved notebook shows without the widget.
STATIC_ROWS = 10
# Up to this many rows, a result with a value of several lines reads as records in text.
MULTILINE_ROWS = 3


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


Scales = dict[int, int]


def _shown(frame: pd.DataFrame, *, for_text: bool, scales: Scales) -> pd.DataFrame:
    """A few rows as the text each cell shows (``column_text``), same columns and order."""
    # Positional from here on: column names and index labels may repeat.
    frame = frame.reset_index(drop=True)
    shown = pd.DataFrame(
        dict(enumerate(_texts(frame, for_text, scales))),
        index=frame.index,
        dtype=object,
    )
    shown.columns = frame.columns
    return shown


def _texts(frame: pd.DataFrame, for_text: bool, scales: Scales) -> list[list[str]]:
    return [
        column_text(frame.iloc[:, i], for_text=for_text, scale=scales.get(i))
        for i in range(frame.shape[1])
    ]


def column_text(column: pd.Series, *, for_text: bool, scale: int | None = None) -> list[str]:
    """Each value of a column as it is shown, NULL for every kind of missing value.

    Numbers are never rounded into something else: DECIMAL and integers print exactly;
    floats at one number of decimals per column, the fewest that show every value as it
    would print alone (15 significant digits, 7 for FLOAT), so ``123456789.123456`` is not
    ``1.234568e+08`` and ``0.1 + 0.2`` is ``0.3``. Dates at midnight show as dates.
    """
    dtype = column.dtype
    values = column.tolist()
    if pd.api.types.is_float_dtype(dtype):
        return _floats(values, 7 if dtype == np.float32 else 15, scale)
    if pd.api.types.is_datetime64_any_dtype(dtype):
        stamps = [None if _is_na(v) else pd.Timestamp(v) for v in values]
        dates = getattr(dtype, "tz", None) is None and all(
            t is None or t == t.normalize() for t in stamps
        )
        return [
            "NULL" if t is None else t.strftime("%Y-%m-%d") if dates else str(t) for t in stamps
        ]
    return [_cell(v, for_text) for v in values]


def _floats(values: list[Any], digits: int, scale: int | None) -> list[str]:
    texts = [None if _is_na(v) else f"{v:.{digits}g}" for v in values]
    finite = [t for t in texts if t is not None and t not in ("inf", "-inf", "nan")]
    if any("e" in t for t in finite):
        # Too large or too small for a column of fixed decimals: each as it prints.
        return ["NULL" if t is None else t for t in texts]
    decimals = max((len(t.partition(".")[2]) for t in finite), default=0)
    if scale is not None:
        decimals = max(decimals, scale)
    return [
        "NULL" if t is None else t if t not in finite else f"{v:.{decimals}f}"
        for t, v in zip(texts, values, strict=True)
    ]


def _cell(value: Any, for_text: bool) -> str:
    if _is_na(value):
        return "NULL"
    if not isinstance(value, str):
        return str(value)
    multiline = "\n" in value
    limit = TEXT_CELL_CHARS if for_text else MULTILINE_CHARS if multiline else CELL_CHARS
    if len(value) > limit:
        value = value[: limit - 1] + "…"
    if for_text:
        # One row per line, or the text table falls apart.
        value = value.replace("\r", "\\r").replace("\n", "\\n").replace("\t", "\\t")
    return str(value)


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


def _is_numeric(column: pd.Series, hint: str) -> bool:
    dtype = column.dtype
    numeric = pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)
    return numeric or hint in ("decimal", "int", "float")


_NUMBER_TEXT = re.compile(r"(-?)(\d+)(\.\d+)?")


def grouped(text: str) -> str:
    """``1870125.50`` as ``1,870,125.50``; anything not a plain number as it is."""
    found = _NUMBER_TEXT.fullmatch(text)
    if not found:
        return text
    sign, whole, fraction = found.groups()
    return f"{sign}{int(whole):,}{fraction or ''}"


def _rows_html(
    page: pd.DataFrame,
    scales: Scales,
    lines_attr: str = 'class="p2p2p-pre"',
    group: frozenset[int] = frozenset(),
) -> str:
    """The rows of a page as ``<tr>``s, every value escaped; a value of several lines keeps
    its lines (and its spacing, which is what EXPLAIN's drawing needs); the columns in
    ``group`` with their digits grouped."""
    if not page.shape[1]:
        return ""
    columns = _texts(page, False, scales)
    for i in group:
        columns[i] = [grouped(text) for text in columns[i]]
    rows = []
    for cells in zip(*columns, strict=True):
        rows.append(
            "<tr>"
            + "".join(
                f"<td {lines_attr}>{esc(c)}</td>" if "\n" in c else f"<td>{esc(c)}</td>"
                for c in cells
            )
            + "</tr>"
        )
    return "".join(rows)


def _has_lines(frame: pd.DataFrame) -> bool:
    return any(
        isinstance(value, str) and "\n" in value
        for i in range(frame.shape[1])
        if pd.api.types.is_object_dtype(frame.dtypes.iloc[i])
        or isinstance(frame.dtypes.iloc[i], pd.StringDtype)
        for value in frame.iloc[:, i]
    )


def _records(frame: pd.DataFrame, scales: Scales) -> list[str]:
    """A few rows as ``column: value`` lines, a value of several lines below its name: an
    EXPLAIN plan read as a plan, not as one line of ``\\n``."""
    lines: list[str] = []
    columns = _texts(frame, False, scales)
    for row, cells in enumerate(zip(*columns, strict=True)):
        if row:
            lines.append("")
        for name, cell in zip(frame.columns, cells, strict=True):
            if "\n" in cell:
                lines.extend([f"{name}:", *cell.splitlines()])
            else:
                lines.append(f"{name}: {cell}")
    return lines


class _Pager:
    """◀ rows 21–40 of 45 ▶"""

    def __init__(self) -> None:
        self.prev = widgets.Button(
            description="◀", tooltip="previous page", layout=widgets.Layout(width="36px")
        )
        self.next = widgets.Button(
            description="▶", tooltip="next page", layout=widgets.Layout(width="36px")
        )
        self.label = widgets.Label()
        self.box = widgets.HBox(
            [self.prev, self.label, self.next],
            layout=widgets.Layout(align_items="center", margin="0 16px 0 0"),
        )

    def show(self, page: int, page_size: int, total: int) -> None:
        start = page * page_size
        end = min(start + page_size, total)
        self.label.value = f"rows {start + 1:,}–{end:,} of {total:,}" if total else "no rows"
        self.prev.disabled = page <= 0
        self.next.disabled = end >= total


class _Sorter:
    """sort by [column] ▲ asc / ▼ desc"""

    def __init__(self, columns: list[Hashable]) -> None:
        self.column = widgets.Dropdown(
            options=[("(as received)", -1)] + [(str(name), i) for i, name in enumerate(columns)],
            value=-1,
            description="sort by",
            layout=widgets.Layout(width="auto", max_width="260px"),
            style={"description_width": "initial"},
        )
        self.order = widgets.ToggleButtons(
            options=[("▲ asc", True), ("▼ desc", False)],
            value=True,
            tooltips=["ascending", "descending"],
            style={"button_width": "76px"},
        )
        self.box = widgets.HBox([self.column, self.order])


class ResultTable(PlainTextRepr, widgets.VBox):  # type: ignore[misc]
    """A DataFrame plus its ``ResultInfo``, shown a page at a time.

    ``frame`` is the result as received; sorting changes only what is shown (``view``).
    """

    def __init__(
        self,
        frame: pd.DataFrame,
        info: ResultInfo,
        source: str,
        page_size: int = 20,
        types: bool = True,
        group_digits: bool = False,
    ) -> None:
        """``types=False`` leaves out the type under each header and ``group_digits``
        writes numbers as ``1,870,125``: for people reading figures, not writing code."""
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
        # Decimals that arrived as floats show at their own scale: 12.50, not 12.5.
        self._scales: Scales = dict(frame.attrs.get("decimal_scales", {}))
        self._numeric = [
            _is_numeric(frame.iloc[:, i], self._hints[i]) for i in range(frame.shape[1])
        ]
        self._types = types
        self._group = frozenset(
            i for i, numeric in enumerate(self._numeric) if numeric and group_digits
        )
        self._syncing = False

        self.caption = widgets.HTML(self._caption_html())
        self.table_html = widgets.HTML()
        # A single page needs no pager, and one row no sorting: less to look at, and a
        # small result costs a handful of widget models instead of thirty (each one a
        # message to the frontend). The controls are made when first needed.
        bars = []
        if len(frame) > page_size:
            bars.append(self._pager.box)
        if len(frame) >= 2:
            bars.append(self._sorter.box)
        children = [self.caption, self.table_html]
        if bars:
            layout = widgets.Layout(align_items="center", flex_flow="row wrap")
            children.append(widgets.HBox(bars, layout=layout))
        super().__init__(children)
        self.add_class("p2p2p-result-table")  # a stable handle for pages and tests
        self._render()

    @functools.cached_property
    def _pager(self) -> _Pager:
        pager = _Pager()
        pager.prev.on_click(lambda _b: self.show_page(self.page - 1))
        pager.next.on_click(lambda _b: self.show_page(self.page + 1))
        pager.show(self.page, self.page_size, len(self.view))
        return pager

    @functools.cached_property
    def _sorter(self) -> _Sorter:
        sorter = _Sorter(list(self.frame.columns))
        sorter.column.observe(self._on_sort_change, names="value")
        sorter.order.observe(self._on_sort_change, names="value")
        return sorter

    @property
    def prev_button(self) -> widgets.Button:
        return self._pager.prev

    @property
    def next_button(self) -> widgets.Button:
        return self._pager.next

    @property
    def page_label(self) -> widgets.Label:
        return self._pager.label

    @property
    def sort_column(self) -> widgets.Dropdown:
        return self._sorter.column

    @property
    def sort_order(self) -> widgets.ToggleButtons:
        return self._sorter.order

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
        if "_pager" in self.__dict__:
            self._pager.show(self.page, self.page_size, len(self.view))
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
                + (f'<span class="p2p2p-dtype">{esc(self._hints[i])}</span>' if self._types else "")
                + "</th>"
            )
            if self._numeric[i]:
                right.append(i + 1)
        body = f"<tbody>{_rows_html(page, self._scales, group=self._group)}</tbody>"
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

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        bundle = super()._repr_mimebundle_(**kwargs)
        bundle["text/html"] = self.static_html()
        return bundle

    def static_html(self, rows: int = STATIC_ROWS) -> str:
        """What a saved notebook shows where widgets do not run (GitHub, nbviewer,
        nbconvert, a notebook reopened without its kernel): the caption line and the
        first rows as a plain table, styled by the page it lands on; a few kB however
        large the result."""
        view = self.view
        heads = "".join(f"<th>{esc(name)}</th>" for name in view.columns)
        body = _rows_html(
            view.head(rows),
            self._scales,
            'style="white-space:pre;text-align:left;font-family:monospace"',
        )
        more = ""
        if len(view) > rows:
            more = (
                f'<div style="color:{MUTED};font-size:12px">'
                f"… {len(view) - rows:,} more row{'s' if len(view) - rows != 1 else ''}</div>"
            )
        table = ""
        if view.shape[1]:
            table = (
                f'<table class="dataframe p2p2p-static"><thead><tr>{heads}</tr></thead>'
                f"<tbody>{body}</tbody></table>"
            )
        return f"{self._caption_html()}{table}{more}"

    def __repr__(self) -> str:
        caption = self.info.describe(self.source)
        view = self.view
        if view.shape[1] == 0:
            return f"{caption}\n(no columns)"
        if len(view) == 0:
            return f"{caption}\n(no rows; columns: {', '.join(str(c) for c in view.columns)})"
        if len(view) <= MULTILINE_ROWS and _has_lines(view):
            return "\n".join([caption, *_records(view, self._scales)])
        hidden = len(view) - 2 * PREVIEW_ROWS
        if hidden > 0:
            preview = pd.concat([view.head(PREVIEW_ROWS), view.tail(PREVIEW_ROWS)])
        else:
            preview = view
        with pd.option_context("display.max_columns", 30):
            text = _shown(preview, for_text=True, scales=self._scales).to_string(
                index=False, na_rep="NULL", max_cols=30
            )
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

    def __init__(self, source: str, min_interval_s: float = 0.1, hidden: bool = False) -> None:
        self.source = source
        self.rows = 0
        self.nbytes = 0
        self.started = False
        self.elapsed_s: float | None = None
        self.percent: float | None = None
        self._min_interval_s = min_interval_s
        self._last_draw: float | None = None
        self.label = widgets.HTML(self._html())
        super().__init__([self.label])
        if hidden:
            self.layout.display = "none"

    def update(self, rows: int, nbytes: int) -> None:
        self.rows, self.nbytes, self.started = rows, nbytes, True
        now = time.monotonic()
        if self._last_draw is None or now - self._last_draw >= self._min_interval_s:
            self._last_draw = now
            self.label.value = self._html()
            self.layout.display = None

    def tick(self, elapsed_s: float, percent: float | None = None) -> None:
        """Before the first rows: how long the store has been at it, and how far when
        DuckDB can tell."""
        self.elapsed_s, self.percent = elapsed_s, percent
        self.label.value = self._html()
        self.layout.display = None

    @contextmanager
    def ticking(
        self,
        how_far: Callable[[], float | None] | None = None,
        after_s: float = 0.5,
        every_s: float = 0.5,
    ) -> Iterator[None]:
        """While the block runs: from ``after_s`` on, until the first rows arrive, the line
        shows the time so far (a query that computes for a minute before its first row is
        not a frozen cell); quick queries never show it."""
        stop = threading.Event()
        began = time.monotonic()

        def run() -> None:
            if stop.wait(after_s):
                return
            while not self.started:
                try:
                    percent = how_far() if how_far is not None else None
                except Exception:
                    percent = None
                self.tick(time.monotonic() - began, percent)
                if stop.wait(every_s):
                    return

        thread = threading.Thread(target=run, name="p2p2p-progress", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=2)

    def _line(self) -> str:
        if not self.started:
            if self.elapsed_s is None:
                return f"waiting for the first rows from {self.source}…"
            how_far = f" · {self.percent:.0f}% done" if self.percent is not None else ""
            return f"running… {self.elapsed_s:.1f} s{how_far} · no rows yet from {self.source}"
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
