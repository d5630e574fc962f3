"""Explore any table of a store: filter, facet, sort over the whole table, page, export,
and open the view as SQL. One widget, so an owner's own dashboard gets it in one line::

    from p2p2p.widgets import TableExplorer
    TableExplorer(p2p2p.current_share())

The page side (``explorer.js``) draws and asks; this side checks what it is asked
(``dashboards.explore``: names against the schema, values bound, pages and filters
bounded) and queries through the store like any client, so the share's lockdown, limits
and audit apply to every click. A viewer's page can send anything to this widget (Voila
runs widget callbacks for the public): nothing it sends is trusted.
"""

from __future__ import annotations

import io
import json
import re
import time
import urllib.parse
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import anywidget
import pyarrow as pa
import traitlets

from ..dashboards import explore, preview
from ..errors import BadParameters, P2P2PError, ShareOffline
from ..store.arrow import cell_texts, kind_of_type

EXPORT_ROWS = 100_000  # rows in one export, unless the owner's own cap is lower
EXPORT_PIECE = 512 * 1024  # bytes per message to the page
EXPORT_FORMATS = ("csv", "json", "parquet")
# A page may ask for exports far faster than anyone downloads them; each one costs the
# owner a query and its bytes, so one page gets a few a minute.
EXPORTS_PER_MINUTE = 6
FACT_CACHE = 32  # views' counts and facets kept per page
KEY_COLUMNS = 3  # a row a note is about is named by its first columns
_NUMBER = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")
# What the page needs to draw the first view (explorer.js reads no other trait).
PREVIEW_TRAITS = (
    "tables", "view", "data", "facets", "error", "exports", "export_rows", "page_sizes",
    "annotate",
)  # fmt: skip
MIME = {"csv": "text/csv", "json": "application/json", "parquet": "application/vnd.apache.parquet"}


class TableExplorer(anywidget.AnyWidget):
    """Every table of ``store``, one at a time, as a viewer explores it."""

    _esm = Path(__file__).with_name("explorer.js").read_text()
    tables = traitlets.List(traitlets.Dict()).tag(sync=True)
    view = traitlets.Dict().tag(sync=True)
    data = traitlets.Dict().tag(sync=True)
    facets = traitlets.List(traitlets.Dict()).tag(sync=True)
    error = traitlets.Unicode("").tag(sync=True)
    notice = traitlets.Unicode("").tag(sync=True)
    busy = traitlets.Bool(False).tag(sync=True)
    exports = traitlets.List(traitlets.Unicode()).tag(sync=True)
    export_rows = traitlets.Int(EXPORT_ROWS).tag(sync=True)
    page_sizes = traitlets.List(traitlets.Int(), list(explore.PAGE_SIZES)).tag(sync=True)
    sql = traitlets.Unicode("").tag(sync=True)  # the SQL box's query, kept in the address
    annotate = traitlets.Bool(False).tag(sync=True)  # a ✎ per row, when notes are wired

    def __init__(
        self,
        store: Any,
        relations: list[Mapping[str, Any]] | None = None,
        labels: Mapping[str, str] | None = None,
        exports: bool = True,
        on_sql: Callable[[str], None] | None = None,
        on_annotate: Callable[[str, dict[str, Any]], None] | None = None,
        table: str | None = None,
    ) -> None:
        super().__init__()
        self.store = store
        if relations is None:
            relations = list(store.schema().get("relations", []))
        self._tables = {
            t.name: t for t in (explore.Table.from_relation(r) for r in relations) if t.name
        }
        # Labels the caller gives win over the owner's comments in the store.
        self.labels = {
            **{t.name: t.label for t in self._tables.values()},
            **{f"{t.name}.{c.name}": c.label for t in self._tables.values() for c in t.columns},
            **dict(labels or {}),
        }
        self.on_sql = on_sql
        self.on_annotate = on_annotate
        self.annotate = on_annotate is not None
        # Facets and counts change with the filters only: paging and sorting reuse them.
        self._facts: dict[tuple[Any, ...], tuple[int | None, list[dict[str, Any]]]] = {}
        self.tables = [
            {"name": t.name, "rows": t.rows, "label": self.labels.get(t.name, t.name)}
            for t in self._tables.values()
        ]
        self.exports = list(EXPORT_FORMATS) if exports else []
        self._exported: list[float] = []  # when the last exports were made (monotonic)
        self.on_msg(self._asked)
        first = table if table in self._tables else _largest(self._tables)
        if first is not None:
            self.show(self._tables[first].view())

    def set_state(self, sync_data: dict[str, Any]) -> None:
        """Nothing here is the page's to set. ipywidgets lets a page write any synced
        trait (the export cap, the formats offered, the rows a note names): everything a
        viewer wants arrives as a request this side checks (``_asked``) instead."""
        return

    def __repr__(self) -> str:
        """For a notebook without widgets (and a saved one): what the view is."""
        total = self.data.get("total")
        rows = "" if total is None else f" · {total:,} row{'s' if total != 1 else ''}"
        where = urllib.parse.unquote_plus(str(self.view.get("query", "")))
        return f"table explorer · {self.view.get('table', 'no tables')}{rows} · ?{where}"

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return preview.with_preview(super()._repr_mimebundle_(**kwargs), [self.preview()])

    def preview(self) -> dict[str, Any]:
        """What the page draws before it connects (``dashboards.preview``): the state the
        live widget starts from, for the same page code to draw."""
        state = {name: getattr(self, name) for name in PREVIEW_TRAITS}
        return {"kind": "explorer", "state": state}

    # -- what the page asks --------------------------------------------------------
    def _asked(self, _widget: Any, content: Any, _buffers: Any) -> None:
        if not isinstance(content, dict):
            return
        action = content.get("do")
        try:
            if action == "view":
                self.show(self._checked(content.get("view")))
            elif action == "address":
                self.restore(str(content.get("query", ""))[: explore.MAX_SQL * 2])
            elif action == "sql":
                self.open_as_sql()
            elif action == "export":
                self.export(str(content.get("format", "")))
            elif action == "annotate":
                self._annotate(content.get("row"))
        except P2P2PError as exc:
            self.error = exc.message

    def _checked(self, asked: Any) -> explore.View:
        if not isinstance(asked, dict):
            raise BadParameters("a view is a set of fields")
        name = str(asked.get("table", ""))
        if name not in self._tables:
            raise BadParameters(f"this share has no table {name!r}")
        table = self._tables[name]
        if name != self.view.get("table"):
            return table.view()  # another table: its own first page, nothing carried over
        filters = asked.get("filters") or []
        if isinstance(filters, list) and len(filters) > explore.MAX_FILTERS:
            raise BadParameters(f"at most {explore.MAX_FILTERS} filters at once")
        if not isinstance(filters, list) or not all(isinstance(f, dict) for f in filters):
            raise BadParameters("filters are a list of {column, op, value}")
        sort = asked.get("sort")
        page, size = asked.get("page", 0), asked.get("page_size", explore.PAGE_SIZE)
        if not isinstance(page, int) or not isinstance(size, int):
            raise BadParameters("page and page_size are whole numbers")
        return table.view(
            filters, None if sort is None else str(sort), bool(asked.get("descending")), page, size
        )

    def restore(self, query: str) -> None:
        """The view the page's address describes (a bookmark, a sent link)."""
        default = str(self.view.get("table") or next(iter(self._tables), ""))
        try:
            view, sql = explore.view_from_query(self._tables, query, default)
        except P2P2PError as exc:
            self.error = (
                f"This address's view could not be opened ({exc.message}); showing {default}."
            )
            return
        self.show(view)
        if sql and self.on_sql is not None:
            self.sql = sql
            self.on_sql(sql)

    # -- showing -------------------------------------------------------------------
    def show(self, view: explore.View) -> None:
        """Query the page of ``view``, then its row count and facets, and show them."""
        table = self._tables[view.table]
        self.error = self.notice = ""
        self.busy = True
        try:
            sql, params = table.select(view)
            page = self.store.query_arrow(sql, params or None, max_rows=view.page_size + 1)
            self.view = view.to_dict()
            self.data = self._page(table, page, view)
            key = (view.table, view.filters)
            if key not in self._facts:
                if len(self._facts) >= FACT_CACHE:
                    self._facts.pop(next(iter(self._facts)))
                self._facts[key] = (self._count(table, view), self._facets(table, view))
            total, self.facets = self._facts[key]
            self.data = {**self.data, "total": total}
        except ShareOffline as exc:
            self.error = exc.message
        except P2P2PError as exc:
            self.error = f"Not shown: {exc.message}"
        finally:
            self.busy = False

    def _page(self, table: explore.Table, page: pa.Table, view: explore.View) -> dict[str, Any]:
        more = page.num_rows > view.page_size
        page = page.slice(0, view.page_size)
        formats = {c.name: c.format for c in table.columns}
        columns = [
            {
                "name": field.name,
                "label": self.labels.get(f"{table.name}.{field.name}", field.name),
                "kind": kind_of_type(field.type),
                "format": formats.get(field.name, ""),
            }
            for field in page.schema
        ]
        texts = [cell_texts(page.column(i)) for i in range(page.num_columns)]
        rows = [list(row) for row in zip(*texts, strict=True)] if texts else []
        return {"columns": columns, "rows": rows, "more": more, "total": None}

    def _count(self, table: explore.Table, view: explore.View) -> int | None:
        if not view.filters and table.rows is not None:
            return table.rows
        sql, params = table.count(view)
        answer = self.store.query_arrow(sql, params or None)
        return int(answer.column(0)[0].as_py()) if answer.num_rows else None

    def _facets(self, table: explore.Table, view: explore.View) -> list[dict[str, Any]]:
        shown = []
        for column in table.facet_columns():
            sql, params = table.facet(view, column)
            counts = self.store.query_arrow(sql, params or None)
            values = cell_texts(counts.column(0))
            ns = counts.column(1).to_pylist()
            more = len(values) > explore.FACET_VALUES
            # A facet helps when it splits the rows into a few groups, not one each.
            filtered = any(f.column == column for f in view.filters)
            if not values or (not filtered and (len(values) == 1 or max(ns) <= 1)):
                continue
            if more and table.column(column).kind == "int":
                continue  # a number with many values is a measure, not a category
            items = [
                {"value": v, "n": int(n)}
                for v, n in zip(values[: explore.FACET_VALUES], ns, strict=False)
            ]
            label = self.labels.get(f"{table.name}.{column}", column)
            shown.append({"column": column, "label": label, "values": items, "more": more})
        return shown

    def _annotate(self, index: Any) -> None:
        """A ✎ clicked: the row as this side sent it (never as the page says it is),
        named by its first columns, becomes the subject of the next note."""
        rows = self.data.get("rows") or []
        if self.on_annotate is None or not isinstance(index, int) or not 0 <= index < len(rows):
            return
        columns = self.data["columns"][:KEY_COLUMNS]
        row = {
            c["name"]: _key_value(text, c["kind"])
            for c, text in zip(columns, rows[index], strict=False)
        }
        self.on_annotate(str(self.view["table"]), row)

    # -- SQL and export ------------------------------------------------------------
    def current(self) -> tuple[explore.Table, explore.View]:
        table = self._tables[str(self.view["table"])]
        return table, self._checked(self.view)

    def open_as_sql(self) -> str:
        table, view = self.current()
        text = table.as_sql(view)
        self.sql = text
        if self.on_sql is not None:
            self.on_sql(text)
        return text

    def export(self, fmt: str) -> bytes:
        """The current view (all its pages, up to the cap) as a file, sent to the page
        in pieces; the owner's audit log records it as an export."""
        if fmt not in EXPORT_FORMATS or (self.exports and fmt not in self.exports):
            raise BadParameters(f"export as one of {', '.join(self.exports or EXPORT_FORMATS)}")
        now = time.monotonic()
        self._exported = [t for t in self._exported if now - t < 60]
        if len(self._exported) >= EXPORTS_PER_MINUTE:
            wait = 60 - (now - self._exported[0])
            raise BadParameters(
                f"at most {EXPORTS_PER_MINUTE} exports a minute from one page: "
                f"try again in {max(1, round(wait))} s"
            )
        self._exported.append(now)
        self.error = ""
        # Downloads off: the owner is still asked, so its refusal is on its audit log.
        table, view = self.current()
        sql, params = table.select(view, paged=False)
        result = self.store.export_arrow(sql, params or None, max_rows=self.export_rows)
        body = encode(result, fmt)
        info = getattr(self.store, "last_info", None)
        rows = f"{result.num_rows:,} row{'s' if result.num_rows != 1 else ''}"
        cut = " (the first ones: the cap was reached)" if getattr(info, "truncated", False) else ""
        # A table's name may hold anything; a file name on the viewer's disk may not.
        name = f"{re.sub(r'[^A-Za-z0-9_-]+', '_', table.name).strip('_') or 'export'}.{fmt}"
        file_id = uuid.uuid4().hex
        parts = max(1, -(-len(body) // EXPORT_PIECE))
        for part in range(parts):
            piece = body[part * EXPORT_PIECE : (part + 1) * EXPORT_PIECE]
            self.send(
                {"do": "file", "id": file_id, "part": part, "parts": parts, "name": name,
                 "mime": MIME[fmt]},
                [piece],
            )  # fmt: skip
        self.notice = f"Exported {rows} as {name}{cut}."
        return body


def _largest(tables: Mapping[str, explore.Table]) -> str | None:
    """The table a dashboard opens on: the one with the most rows (usually the facts the
    others describe), else the first."""
    if not tables:
        return None
    return max(tables.values(), key=lambda t: -1 if t.rows is None else t.rows).name


def _key_value(text: str | None, kind: str) -> Any:
    """A cell as a note's row key holds it: whole numbers as numbers (``case_id=1``, not
    ``1.0``), true/false, text; anything else as its exact text."""
    if text is None:
        return None
    if kind == "int":
        return int(text)
    if kind == "bool":
        return text == "true"
    return text


def encode(table: pa.Table, fmt: str) -> bytes:
    """A result as a file: values exact (decimals digit for digit, dates as dates)."""
    if fmt == "parquet":
        import pyarrow.parquet

        sink = io.BytesIO()
        pyarrow.parquet.write_table(table, sink)
        return sink.getvalue()
    if fmt == "csv":
        import pyarrow.csv

        sink = io.BytesIO()
        pyarrow.csv.write_csv(table, sink)
        return sink.getvalue()
    # Written by hand: json's floats would round a DECIMAL(38, 10); its exact text is a
    # valid JSON number as it is.
    kinds = [kind_of_type(f.type) for f in table.schema]
    names = [json.dumps(name, ensure_ascii=False) for name in table.column_names]
    texts = [cell_texts(table.column(i)) for i in range(table.num_columns)]
    records = [
        "{"
        + ",".join(f"{n}:{_json_value(t, k)}" for n, t, k in zip(names, row, kinds, strict=True))
        + "}"
        for row in zip(*texts, strict=True)
    ]
    return ("[\n" + ",\n".join(records) + "\n]\n").encode()


def _json_value(text: str | None, kind: str) -> str:
    if text is None:
        return "null"
    if kind in ("bool", "int"):
        return text
    if kind in ("decimal", "float"):
        if not _NUMBER.fullmatch(text):
            return "null"  # nan and infinities have no JSON form
        return text
    if kind == "other":
        try:
            json.loads(text)
            return text
        except ValueError:
            pass
    return json.dumps(text, ensure_ascii=False)
