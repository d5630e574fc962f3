"""A view of one table as a viewer explores it: filters, sort, page; and the SQL for it.

Pure: no widgets, no sockets. A view comes from the browser (a click, or the page's
address), so everything in it is checked against the table's own columns before any SQL
is made; values are always bound parameters, names are always quoted. The statements go
through the share's one enforcement point like any other query (lockdown, limits,
audit): this module only saves the viewer from writing them.

The address form follows Datasette's, which many analysts know: ``?_table=sales&region=
north&amount__gt=100&_sort_desc=amount&_page=2``.
"""

from __future__ import annotations

import dataclasses
import decimal
import itertools
import re
import urllib.parse
from collections.abc import Iterable, Mapping
from typing import Any

from ..errors import BadParameters
from ..store.policy import quote_name

PAGE_SIZES = (25, 50, 100)
PAGE_SIZE = 50
MAX_FILTERS = 8
MAX_VALUE = 200  # characters of a filter value
MAX_PAGE = 20_000  # deep enough for any table a person pages through; offset stays bounded
FACET_VALUES = 10  # a facet lists this many values, most frequent first
FACET_COLUMNS = 4  # facets suggested per table
MAX_SQL = 20_000  # characters of the SQL box kept in the address

# Operators as the address spells them (Datasette's suffixes) and as a person reads them.
OPERATORS: dict[str, str] = {
    "exact": "=",
    "not": "≠",
    "lt": "<",
    "gt": ">",
    "lte": "≤",
    "gte": "≥",
    "contains": "contains",
    "isnull": "is null",
    "notnull": "is not null",
}
_COMPARE = {"exact": "=", "not": "<>", "lt": "<", "gt": ">", "lte": "<=", "gte": ">="}
_UNARY = {"isnull": "IS NULL", "notnull": "IS NOT NULL"}

_INTEGERS = {
    "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
    "UINTEGER", "UBIGINT", "UHUGEINT", "INT", "INT1", "INT2", "INT4", "INT8", "LONG", "SHORT",
}  # fmt: skip
_FLOATS = {"FLOAT", "REAL", "DOUBLE", "FLOAT4", "FLOAT8"}
_TEXTS = {"VARCHAR", "TEXT", "STRING", "CHAR", "BPCHAR", "UUID", "ENUM"}
# Casts named here, never taken from the schema's text: a type a store reports is not
# pasted into SQL.
_TEMPORAL_CASTS = {
    "date": "DATE",
    "time": "TIME",
    "timestamp": "TIMESTAMP",
    "timestamptz": "TIMESTAMPTZ",
}


def kind_of(sql_type: str) -> str:
    """The family of a DuckDB type name, as formatting and filtering need it: ``int``,
    ``decimal``, ``float``, ``bool``, ``date``, ``time``, ``timestamp``, ``timestamptz``,
    ``text`` or ``other`` (lists, structs, blobs, …)."""
    name = sql_type.strip().upper()
    base = re.split(r"[(\s]", name, maxsplit=1)[0]
    if name.endswith("]") or base in ("STRUCT", "MAP", "UNION", "LIST", "ARRAY"):
        return "other"
    if base in _INTEGERS:
        return "int"
    if base in ("DECIMAL", "NUMERIC"):
        return "decimal"
    if base in _FLOATS:
        return "float"
    if base in ("BOOLEAN", "BOOL", "LOGICAL"):
        return "bool"
    if base == "DATE":
        return "date"
    if base in ("TIME", "TIMETZ"):
        return "time"
    if base in ("TIMESTAMPTZ",) or "WITH TIME ZONE" in name:
        return "timestamptz"
    if base.startswith("TIMESTAMP") or base == "DATETIME":
        return "timestamp"
    if base in _TEXTS:
        return "text"
    return "other"


@dataclasses.dataclass(frozen=True)
class Column:
    name: str
    type: str
    comment: str = ""  # the owner's COMMENT ON COLUMN: a label, maybe a format

    @property
    def kind(self) -> str:
        return kind_of(self.type)

    @property
    def label(self) -> str:
        return presentation(self.comment)[0] or self.name

    @property
    def format(self) -> str:
        return presentation(self.comment)[1] if self.kind in ("int", "decimal", "float") else ""


MAX_LABEL = 60
_FORMAT = re.compile(r"^(?P<label>.*?)\s*\[(?P<format>[A-Z]{3}|%)\]\s*$", re.DOTALL)


def presentation(comment: str) -> tuple[str, str]:
    """A label and a number format from an owner's comment: ``Spend [EUR]`` is the label
    "Spend" shown as euros, ``Share of visits [%]`` a percentage (the values already are),
    ``Case number`` only a label. A comment too long for a header is a description, not a
    label: the column keeps its name."""
    text = " ".join(comment.split())
    fmt = ""
    found = _FORMAT.match(text)
    if found:
        text = found.group("label")
        fmt = "percent" if found.group("format") == "%" else f"currency:{found.group('format')}"
    return (text if len(text) <= MAX_LABEL else ""), fmt


@dataclasses.dataclass(frozen=True)
class Filter:
    column: str
    op: str  # a key of OPERATORS
    value: str = ""

    def describe(self) -> str:
        if self.op in _UNARY:
            return f"{self.column} {OPERATORS[self.op]}"
        return f"{self.column} {OPERATORS[self.op]} {self.value}"


@dataclasses.dataclass(frozen=True)
class View:
    """What a viewer is looking at; every field already checked against the table."""

    table: str
    filters: tuple[Filter, ...] = ()
    sort: str | None = None
    descending: bool = False
    page: int = 0  # from 0
    page_size: int = PAGE_SIZE

    @property
    def offset(self) -> int:
        return self.page * self.page_size

    def with_(self, **changes: Any) -> View:
        return dataclasses.replace(self, **changes)

    def query_pairs(self) -> list[tuple[str, str]]:
        """The view as address parameters (Datasette's form); no token, ever."""
        pairs = [("_table", self.table)]
        for f in self.filters:
            key = f.column if f.op == "exact" else f"{f.column}__{f.op}"
            pairs.append((key, "1" if f.op in _UNARY else f.value))
        if self.sort is not None:
            pairs.append(("_sort_desc" if self.descending else "_sort", self.sort))
        if self.page:
            pairs.append(("_page", str(self.page + 1)))
        if self.page_size != PAGE_SIZE:
            pairs.append(("_size", str(self.page_size)))
        return pairs

    def to_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "filters": [dataclasses.asdict(f) for f in self.filters],
            "sort": self.sort,
            "descending": self.descending,
            "page": self.page,
            "page_size": self.page_size,
            "query": urllib.parse.urlencode(self.query_pairs()),
        }


class Table:
    """One table's columns, and the statements for views of it."""

    def __init__(
        self, name: str, columns: Iterable[Column], rows: int | None = None, comment: str = ""
    ) -> None:
        self.name = name
        self.columns = list(columns)
        self.rows = rows
        self.label = presentation(comment)[0] or name
        self._by_name = {c.name: c for c in self.columns}

    @classmethod
    def from_relation(cls, relation: Mapping[str, Any]) -> Table:
        """From one entry of a store's ``schema()["relations"]``."""
        columns = [
            Column(str(c.get("name", "")), str(c.get("type", "")), str(c.get("comment") or ""))
            for c in relation.get("columns", [])
        ]
        rows = relation.get("rows")
        return cls(
            str(relation.get("name", "")),
            columns,
            int(rows) if rows is not None else None,
            str(relation.get("comment") or ""),
        )

    def column(self, name: str) -> Column:
        try:
            return self._by_name[name]
        except KeyError:
            raise BadParameters(f"{self.name} has no column {name!r}") from None

    # -- views from what the browser sent -------------------------------------------
    def view(
        self,
        filters: Iterable[Mapping[str, Any]] = (),
        sort: str | None = None,
        descending: bool = False,
        page: int = 0,
        page_size: int = PAGE_SIZE,
    ) -> View:
        """A checked view: unknown columns or operators, bad values, too many filters
        and out-of-range pages are refused with a message naming what was wrong."""
        filters = list(itertools.islice(filters, MAX_FILTERS + 1))  # before any work on them
        if len(filters) > MAX_FILTERS:
            raise BadParameters(f"at most {MAX_FILTERS} filters at once")
        checked = tuple(self._filter(f) for f in filters)
        if sort is not None:
            sort = self.column(str(sort)).name
        if page_size not in PAGE_SIZES:
            raise BadParameters(f"rows per page are one of {', '.join(map(str, PAGE_SIZES))}")
        if not isinstance(page, int) or not 0 <= page < MAX_PAGE:
            raise BadParameters(f"pages go from 1 to {MAX_PAGE:,}")
        return View(self.name, checked, sort, bool(descending), page, page_size)

    def _filter(self, given: Mapping[str, Any]) -> Filter:
        column = self.column(str(given.get("column", "")))
        op = str(given.get("op", "exact"))
        if op not in OPERATORS:
            raise BadParameters(f"unknown filter {op!r}: one of {', '.join(OPERATORS)}")
        value = "" if op in _UNARY else str(given.get("value", ""))
        if len(value) > MAX_VALUE:
            raise BadParameters(f"a filter value is at most {MAX_VALUE} characters")
        if op in _COMPARE and column.kind == "other":
            raise BadParameters(f"{column.name} can be filtered by contains or is null only")
        if op in _COMPARE:
            _bound(column, value)  # refuse "abc" for a number now, not as a SQL error
        return Filter(column.name, op, value)

    # -- statements -----------------------------------------------------------------
    def where(self, view: View, skip: str | None = None) -> tuple[str, dict[str, Any]]:
        """The WHERE clause of a view (without the filters on ``skip``, for its facet)."""
        parts: list[str] = []
        params: dict[str, Any] = {}
        for f in view.filters:
            if f.column == skip:
                continue
            column = self.column(f.column)
            name = quote_name(column.name)
            if f.op in _UNARY:
                parts.append(f"{name} {_UNARY[f.op]}")
                continue
            key = f"p{len(params)}"
            if f.op == "contains":
                parts.append(f"contains(lower(CAST({name} AS VARCHAR)), lower(${key}))")
                params[key] = f.value
                continue
            value = _bound(column, f.value)
            placeholder = f"${key}"
            if column.kind in _TEMPORAL_CASTS:
                placeholder = f"CAST(${key} AS {_TEMPORAL_CASTS[column.kind]})"
            parts.append(f"{name} {_COMPARE[f.op]} {placeholder}")
            params[key] = value
        return (" WHERE " + " AND ".join(parts)) if parts else "", params

    def select(self, view: View, paged: bool = True) -> tuple[str, dict[str, Any]]:
        where, params = self.where(view)
        sql = f"SELECT * FROM {quote_name(self.name)}{where}"
        if view.sort is not None:
            order = "DESC" if view.descending else "ASC"
            # Then every column, in order: rows that tie on the sort column keep one
            # order, so paging through them shows each row once.
            rest = "".join(f", {quote_name(c.name)}" for c in self.columns if c.name != view.sort)
            sql += f" ORDER BY {quote_name(view.sort)} {order} NULLS LAST{rest}"
        if paged:
            # One row more than a page says whether there is a next one.
            sql += f" LIMIT {view.page_size + 1} OFFSET {view.offset}"
        return sql, params

    def count(self, view: View) -> tuple[str, dict[str, Any]]:
        where, params = self.where(view)
        return f"SELECT count(*) AS n FROM {quote_name(self.name)}{where}", params

    def facet(self, view: View, column: str) -> tuple[str, dict[str, Any]]:
        """The most frequent values of ``column`` among the view's rows (its own filter
        left out, so the other values stay one click away)."""
        name = quote_name(self.column(column).name)
        where, params = self.where(view, skip=column)
        sql = (
            f"SELECT {name} AS value, count(*) AS n FROM {quote_name(self.name)}{where} "
            f"GROUP BY 1 ORDER BY n DESC, value NULLS LAST LIMIT {FACET_VALUES + 1}"
        )
        return sql, params

    def facet_columns(self) -> list[str]:
        """Columns that may be worth a facet: text and booleans first, then whole numbers
        (a year, a month, a grade: kept only if they have few values), never ids."""
        usable = [c for c in self.columns if not _id_like(c.name)]
        picked = [c.name for c in usable if c.kind in ("text", "bool")]
        picked += [c.name for c in usable if c.kind == "int"]
        return picked[:FACET_COLUMNS]

    def as_sql(self, view: View) -> str:
        """The view as SQL a person can read, edit and run in the SQL box: the values
        written in as literals (the box runs the viewer's own SQL under the lockdown)."""
        sql, params = self.select(view, paged=False)
        # One pass over our own statement: a value that reads "$p1" is never scanned again.
        sql = re.sub(r"\$(p[0-9]+)\b", lambda found: _literal(params[found.group(1)]), sql)
        return sql + f" LIMIT {view.page_size}" + (f" OFFSET {view.offset}" if view.page else "")


def _id_like(name: str) -> bool:
    lowered = name.lower()
    return lowered == "id" or lowered.endswith(("_id", " id", "uuid"))


def _bound(column: Column, value: str) -> Any:
    """The filter value as the parameter DuckDB compares with the column."""
    kind = column.kind
    text = value.strip()
    if kind == "int":
        try:
            return int(text.replace(",", "").replace("_", ""))
        except ValueError:
            raise BadParameters(f"{column.name} needs a whole number, not {value!r}") from None
    if kind in ("decimal", "float"):
        try:
            number = decimal.Decimal(text.replace(",", ""))
        except decimal.InvalidOperation:
            raise BadParameters(f"{column.name} needs a number, not {value!r}") from None
        if not number.is_finite():
            raise BadParameters(f"{column.name} needs a finite number, not {value!r}")
        return number if kind == "decimal" else float(number)
    if kind == "bool":
        lowered = text.lower()
        if lowered in ("true", "yes", "1", "t"):
            return True
        if lowered in ("false", "no", "0", "f"):
            return False
        raise BadParameters(f"{column.name} is true or false, not {value!r}")
    if kind in _TEMPORAL_CASTS:
        if not re.fullmatch(r"[0-9:.+\- T]{1,40}", text):
            raise BadParameters(f"{column.name} needs a date or time like 2024-03-31")
        return text
    return value


def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | decimal.Decimal):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


def view_from_query(tables: Mapping[str, Table], query: str, default: str) -> tuple[View, str]:
    """The view an address describes (``?_table=…&col__op=…``) and its SQL box text.

    Anything the address gets wrong raises ``BadParameters`` naming it; the caller shows
    that and the default view, so a mangled bookmark still opens the dashboard.
    """
    pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
    fields = dict(pairs)
    name = fields.get("_table") or default
    if name not in tables:
        raise BadParameters(f"this share has no table {name!r}")
    table = tables[name]
    filters = []
    for key, value in pairs:
        if key.startswith("_") or key == "t":
            continue
        column, _, op = key.rpartition("__")
        if not column or op not in OPERATORS:
            column, op = key, "exact"
        filters.append({"column": column, "op": op, "value": value})
    sort, descending = fields.get("_sort"), False
    if fields.get("_sort_desc"):
        sort, descending = fields["_sort_desc"], True
    try:
        page = int(fields.get("_page", "1")) - 1
        size = int(fields.get("_size", str(PAGE_SIZE)))
    except ValueError:
        raise BadParameters("_page and _size are whole numbers") from None
    view = table.view(filters, sort or None, descending, page, size)
    return view, fields.get("_sql", "")[:MAX_SQL]
