"""``%p2pplot``: charts of a store's data whose numbers are computed in the store.

    %p2pplot histogram --table sales --column amount [--bins 30] [--where "year = {year}"]
    %p2pplot bar --table sales --column region [--top 20]
    %p2pplot box --table sales --column amount [--by region] [--top 20]
    %p2pplot line --table sales --x month [--y amount] [--agg sum|avg|count|min|max]

Each chart is one aggregate statement (plus a ``LIMIT 0`` look at the table's columns),
so only bins, counts or five-number summaries travel, never the rows. A share caps
results at its ``max_rows``, so raw rows would arrive slow or cut off. The statements
call only functions on the share lockdown's allow list (``store/function_list.py``):
``min``, ``max``, ``count``, ``sum``, ``avg``, ``floor``, ``least``, ``isfinite``,
``any_value`` and ``quantile_cont``, with casts, ``CASE``, ``FILTER`` and a window
``count(*) OVER ()``.

Names are quoted with ``quote_name``: ``--table`` takes ``name`` or ``schema.name``, a
part in double quotes taken as written (``'"odd.name"'``), and ``--column``, ``--by``,
``--x`` and ``--y`` take one column name each, never an expression. ``--where`` is SQL of
the caller's own, its ``{name}`` placeholders bound as parameters.

The magic returns the matplotlib Axes; ``ax.p2p2p_data`` holds the aggregated DataFrame
(its ``attrs`` hold the SQL and where it ran).
"""

from __future__ import annotations

import argparse
import math
import shlex
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, NoReturn

import pandas as pd
import pyarrow as pa
from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_magic, magics_class, no_var_expand

from ..client import LocalStore, RemoteStore, StoreGroup
from ..client.combine import combine_arrow
from ..errors import BadParameters, BadTarget, P2P2PError
from ..store.arrow import to_pandas
from ..store.policy import quote_name
from . import placeholders as template
from .magics import CellError, P2PMagics

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["AGGREGATES", "KINDS", "PARSER", "PlotMagics", "parse", "relation_sql"]

KINDS = ("histogram", "bar", "box", "line")
AGGREGATES = ("sum", "avg", "count", "min", "max")
# The empty bins are filled in here, so --bins sizes this process's frame, not the answer.
MAX_BINS = 10_000
SHOWN_COLUMNS = 20

Run = Callable[[str, Mapping[str, Any]], pa.Table]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # IPython shows a UsageError as one line; argparse would exit the kernel.
        raise UsageError(f"{self.prog}: {message}")


PARSER = _Parser(prog="%p2pplot", add_help=False)
PARSER.add_argument("kind", choices=KINDS, help="the chart")
PARSER.add_argument(
    "--table",
    "-t",
    required=True,
    help="a table or view of the store (name or schema.name), or a DataFrame variable of "
    "this notebook (_ for the last result) when no --target is given",
)
PARSER.add_argument("--column", "-c", help="histogram, bar, box: the column")
PARSER.add_argument("--x", help="line: the column along the x axis (one point per value)")
PARSER.add_argument("--y", help="line: the column aggregated per x value")
PARSER.add_argument("--agg", choices=AGGREGATES, default="sum", help="line: how y is aggregated")
PARSER.add_argument("--by", help="box: one box per value of this column")
PARSER.add_argument("--bins", type=int, default=30, help="histogram: number of equal-width bins")
PARSER.add_argument(
    "--top", type=int, default=20, help="bar, box --by: the N most frequent values or groups"
)
PARSER.add_argument(
    "--where", metavar="SQL", help='only rows where SQL holds ("year = {year}" binds year)'
)
PARSER.add_argument(
    "--target", metavar="T", help="a share link, an alias or local:PATH; default: the last one used"
)


def parse(line: str) -> argparse.Namespace:
    """The magic's arguments, with quotes read as a shell reads them (as the other magics do)."""
    try:
        words = shlex.split(line)
    except ValueError as exc:
        raise UsageError(f"%p2pplot: cannot read the arguments: {exc}") from None
    return PARSER.parse_args(words)


def relation_sql(text: str) -> str:
    """``sales``, ``hr.staff`` or ``"odd.name"`` as a quoted SQL relation name.

    ``quote_name`` quotes one identifier whole, dots included, so a schema-qualified name
    is split at its dots first; a part in double quotes is one name as written (``""``
    for a quote inside it), for a table whose own name holds a dot.
    """
    parts: list[str] = []
    i, n = 0, len(text)
    while True:
        if text[i : i + 1] == '"':
            part, i = _quoted_part(text, i)
        else:
            end = text.find(".", i)
            end = n if end < 0 else end
            part, i = text[i:end].strip(), end
            if not part:
                raise BadParameters(f"--table {text!r} has an empty name part")
        parts.append(part)
        if i >= n:
            break
        if text[i] != ".":
            raise BadParameters(f"--table {text!r}: expected a dot after {part!r}")
        i += 1
    if len(parts) > 3:
        raise BadParameters(f"--table {text!r} has more than database.schema.table")
    return ".".join(quote_name(p) for p in parts)


def _quoted_part(text: str, start: int) -> tuple[str, int]:
    i, out = start + 1, []
    while i < len(text):
        if text[i] == '"':
            if text[i + 1 : i + 2] == '"':
                out.append('"')
                i += 2
                continue
            if not out:
                break
            return "".join(out), i + 1
        out.append(text[i])
        i += 1
    raise BadParameters(f"--table {text!r}: a quoted name without its closing quote or empty")


class Source:
    """Where a chart's statements run: a store, or this kernel's DuckDB over a frame."""

    def __init__(self, label: str, relation: str, run: Run) -> None:
        self.label = label
        self.relation = relation  # quoted SQL, ready for FROM
        self.run = run
        self._columns: dict[str, pa.DataType] | None = None

    def columns(self) -> dict[str, pa.DataType]:
        if self._columns is None:
            # LIMIT 0: the names and exact types, with the store's own error for an
            # unknown table, and not a row of data.
            table = self.run(f"SELECT * FROM {self.relation} LIMIT 0", {})
            self._columns = {field.name: field.type for field in table.schema}
        return self._columns

    def column(self, name: str, option: str, numeric: bool = False) -> str:
        """The column as the table spells it, quoted; a clear error when it is not there."""
        columns = self.columns()
        found = name if name in columns else None
        if found is None:
            # DuckDB matches identifiers case-insensitively, quoted or not.
            folded = [c for c in columns if c.lower() == name.lower()]
            found = folded[0] if len(folded) == 1 else None
        if found is None:
            shown = ", ".join(list(columns)[:SHOWN_COLUMNS])
            more = (
                f" and {len(columns) - SHOWN_COLUMNS} more" if len(columns) > SHOWN_COLUMNS else ""
            )
            raise BadParameters(
                f"{option} {name!r}: {self.label} has no such column (its columns: {shown}{more})"
            )
        kind = columns[found]
        if numeric and not (
            pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind)
        ):
            raise BadParameters(
                f"{option} {found!r} is {kind}, not a number: this chart needs a numeric "
                "column (for counts of its values use %p2pplot bar)"
            )
        return quote_name(found)


def where_sql(where: str | None, namespace: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """``AND (<where>)``, its ``{name}`` placeholders bound; ``""`` without one."""
    if not where:
        return "", {}
    sql, params = template.bind(where, namespace)
    # On lines of their own: a trailing -- comment in it cannot swallow the rest.
    return f"AND (\n{sql}\n)", params


def histogram_sql(source: Source, column: str, bins: int, where: str) -> str:
    x = source.column(column, "--column", numeric=True)
    return f"""WITH p2p_values AS (
    SELECT CAST({x} AS DOUBLE) AS x FROM {source.relation} WHERE {x} IS NOT NULL {where}
), p2p_range AS (
    SELECT min(x) AS lo, max(x) AS hi FROM p2p_values WHERE isfinite(x)
)
SELECT least(CAST(floor(CASE WHEN hi > lo THEN (x - lo) * {bins} / (hi - lo) ELSE 0 END)
             AS BIGINT), {bins - 1}) AS bin,
       count(*) AS n, any_value(lo) AS lo, any_value(hi) AS hi
FROM p2p_values, p2p_range WHERE isfinite(x) GROUP BY bin ORDER BY bin"""


def bar_sql(source: Source, column: str, top: int, where: str) -> str:
    value = source.column(column, "--column")
    # The window runs after GROUP BY and before LIMIT: how many values there were in all.
    return f"""SELECT {value} AS value, count(*) AS n, count(*) OVER () AS p2p_values
FROM {source.relation} WHERE TRUE {where}
GROUP BY 1 ORDER BY n DESC, value NULLS LAST LIMIT {top}"""


def box_sql(source: Source, column: str, by: str | None, top: int, where: str) -> str:
    x = source.column(column, "--column", numeric=True)
    group = source.column(by, "--by") if by else "NULL"
    fence_lo = "s.q1 - 1.5 * (s.q3 - s.q1)"
    fence_hi = "s.q3 + 1.5 * (s.q3 - s.q1)"
    # Tukey's whiskers need a second look at the values once the quartiles are known:
    # the join brings each group's quartiles to its values, still inside the store.
    return f"""WITH p2p_values AS (
    SELECT {group} AS grp, CAST({x} AS DOUBLE) AS x
    FROM {source.relation} WHERE {x} IS NOT NULL {where}
), p2p_stats AS (
    SELECT grp, count(*) AS n, min(x) AS lo, max(x) AS hi, quantile_cont(x, 0.25) AS q1,
           quantile_cont(x, 0.5) AS med, quantile_cont(x, 0.75) AS q3,
           count(*) OVER () AS p2p_groups
    FROM p2p_values GROUP BY grp ORDER BY n DESC, grp NULLS LAST LIMIT {top}
)
SELECT s.grp, s.n, s.q1, s.med, s.q3, s.lo, s.hi, s.p2p_groups,
       min(v.x) FILTER (WHERE v.x >= {fence_lo}) AS whislo,
       max(v.x) FILTER (WHERE v.x <= {fence_hi}) AS whishi,
       count(*) FILTER (WHERE v.x < {fence_lo} OR v.x > {fence_hi}) AS outliers
FROM p2p_stats AS s JOIN p2p_values AS v ON v.grp IS NOT DISTINCT FROM s.grp
GROUP BY ALL ORDER BY s.grp NULLS LAST"""


def line_sql(source: Source, x: str, y: str | None, agg: str, where: str) -> str:
    x_sql = source.column(x, "--x")
    if y is None:
        if agg != "count":
            raise BadParameters(f"--agg {agg} needs --y COLUMN (only count works without one)")
        value = "count(*)"
    else:
        # min and max order any type; sum and avg need numbers.
        y_sql = source.column(y, "--y", numeric=agg in ("sum", "avg"))
        value = f"{agg}({y_sql})"
    return f"""SELECT {x_sql} AS x, {value} AS y
FROM {source.relation} WHERE {x_sql} IS NOT NULL {where}
GROUP BY 1 ORDER BY 1"""


def histogram_frame(answer: pd.DataFrame, bins: int) -> pd.DataFrame:
    """Every bin, the empty ones too, with its edges (the store sends non-empty bins)."""
    if answer.empty:
        return pd.DataFrame({"bin_start": [], "bin_end": [], "count": []})
    lo, hi = float(answer["lo"].iloc[0]), float(answer["hi"].iloc[0])
    if hi <= lo:  # one value only: one bar, a unit wide, around it
        return pd.DataFrame(
            {"bin_start": [lo - 0.5], "bin_end": [lo + 0.5], "count": [int(answer["n"].sum())]}
        )
    counts = [0] * bins
    for index, n in zip(answer["bin"], answer["n"], strict=True):
        counts[int(index)] = int(n)
    edges = [lo + (hi - lo) * i / bins for i in range(bins + 1)]
    edges[-1] = hi
    return pd.DataFrame({"bin_start": edges[:-1], "bin_end": edges[1:], "count": counts})


def box_frame(answer: pd.DataFrame) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "group": answer["grp"],
            "n": answer["n"].astype("int64"),
            # Clamped as matplotlib's own boxplot_stats does: a whisker never inside the box.
            "whislo": [min(w, q) for w, q in zip(answer["whislo"], answer["q1"], strict=True)],
            "q1": answer["q1"],
            "med": answer["med"],
            "q3": answer["q3"],
            "whishi": [max(w, q) for w, q in zip(answer["whishi"], answer["q3"], strict=True)],
            "min": answer["lo"],
            "max": answer["hi"],
            "outliers": answer["outliers"].astype("int64"),
        }
    )
    return frame.reset_index(drop=True)


def _label(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "NULL"
    return str(value)


@magics_class
class PlotMagics(Magics):
    """``%p2pplot``; the stores are ``P2PMagics``' own, opened once per kernel."""

    @property
    def _shell(self) -> Any:
        assert self.shell is not None, "the magics are not attached to a shell"
        return self.shell

    def _queries(self) -> P2PMagics:
        magics = self._shell.magics_manager.registry["P2PMagics"]
        assert isinstance(magics, P2PMagics)
        return magics

    # IPython would paste {name} into the line as text before the magic sees it; --where
    # must get it as a placeholder, bound as a value.
    @no_var_expand
    @line_magic
    def p2pplot(self, line: str) -> Axes:
        """Draw a chart whose numbers the store computes: only the aggregate travels.

        Returns the matplotlib Axes; ``ax.p2p2p_data`` is the aggregated DataFrame.
        """
        args = parse(line)
        try:
            source, done = self._source(args)
            sql, params = self._sql(args, source)
            answer = to_pandas(source.run(sql, params))
        except P2P2PError as exc:
            raise CellError(exc, "p2pplot") from None
        done()
        return self._draw(args, source, sql, answer)

    def _source(self, args: Any) -> tuple[Source, Callable[[], None]]:
        """Where to run, and what to do once it ran (remember the target)."""
        namespace = self._shell.user_ns
        value = namespace.get(args.table)
        if args.target is None and isinstance(value, pd.DataFrame | pa.Table):
            name = str(args.table)
            frames = {name: value}

            def run_here(sql: str, params: Mapping[str, Any]) -> pa.Table:
                return combine_arrow(sql, dict(params) or None, **frames)[0]

            return Source(f"{name} (a DataFrame here)", quote_name(name), run_here), lambda: None
        if args.table == "_":
            raise BadParameters(
                f"--table _ is the last result, but _ is {type(value).__name__}, not a "
                "DataFrame: run a %%p2pquery first, or name a table of a store"
            )
        magics = self._queries()
        key = magics.store(args.target) if args.target else magics.last_target
        if key is None:
            raise BadTarget(
                "no store given yet: add --target <link, alias or local:PATH>, or run a "
                "%%p2pquery first"
            )
        store = magics.stores[key]
        if isinstance(store, StoreGroup):
            raise BadTarget(
                f"{magics.labels.get(key, key)!r} is a group: %p2pplot draws one store's "
                "data (--target one of its stores)"
            )
        label = f"{args.table} in {magics.labels.get(key, key)}"

        def run_in_store(sql: str, params: Mapping[str, Any]) -> pa.Table:
            return self._run_in(store, label, sql, params)

        def remember() -> None:
            magics.last_target = key

        return Source(label, relation_sql(args.table), run_in_store), remember

    @staticmethod
    def _run_in(
        store: LocalStore | RemoteStore, label: str, sql: str, params: Mapping[str, Any]
    ) -> pa.Table:
        table = store.query_arrow(sql, dict(params) or None)
        info = store.last_info
        if info.truncated:
            # An aggregate the store's limits still cut (a line over a column with more
            # values than max_rows): drawn, but not silently.
            print(
                f"p2pplot: only {info.rows:,} rows of the aggregate arrived from {label} "
                f"(cut by {info.truncated_by}): the chart is incomplete"
            )
        return table

    def _sql(self, args: Any, source: Source) -> tuple[str, dict[str, Any]]:
        where, params = where_sql(args.where, self._shell.user_ns)
        if args.kind == "line":
            if not args.x:
                raise BadParameters("line needs --x COLUMN (and --y COLUMN unless --agg count)")
            return line_sql(source, args.x, args.y, args.agg, where), params
        if not args.column:
            raise BadParameters(f"{args.kind} needs --column COLUMN")
        if args.kind == "histogram":
            if not 1 <= args.bins <= MAX_BINS:
                raise BadParameters(f"--bins must be between 1 and {MAX_BINS:,}, got {args.bins}")
            return histogram_sql(source, args.column, args.bins, where), params
        if args.top < 1:
            raise BadParameters(f"--top must be at least 1, got {args.top}")
        if args.kind == "bar":
            return bar_sql(source, args.column, args.top, where), params
        return box_sql(source, args.column, args.by, args.top, where), params

    def _draw(self, args: Any, source: Source, sql: str, answer: pd.DataFrame) -> Axes:
        # Imported here: loading the extension should not cost matplotlib's import.
        import matplotlib.pyplot as plt

        _figure, ax = plt.subplots()
        note = ""
        if args.kind == "histogram":
            data = histogram_frame(answer, args.bins)
            ax.bar(
                data["bin_start"],
                data["count"],
                width=data["bin_end"] - data["bin_start"],
                align="edge",
                edgecolor="white",
            )
            ax.set_xlabel(args.column)
            ax.set_ylabel("count")
            title = f"{args.column} from {args.table}"
        elif args.kind == "bar":
            data = pd.DataFrame({"value": answer["value"], "count": answer["n"].astype("int64")})
            labels = [_label(v) for v in data["value"]]
            ax.bar(range(len(labels)), data["count"])
            ax.set_xticks(range(len(labels)), labels, rotation=45 if len(labels) > 6 else 0)
            ax.set_xlabel(args.column)
            ax.set_ylabel("count")
            title = f"{args.column} from {args.table}"
            total = int(answer["p2p_values"].iloc[0]) if len(answer) else 0
            if total > len(data):
                note = f"the {len(data)} most frequent of {total:,} values"
        elif args.kind == "box":
            data = box_frame(answer)
            # Column by column: a row of the frame would turn integer groups into floats.
            names = ("med", "q1", "q3", "whislo", "whishi")
            stats = [
                {
                    "label": _label(group) if args.by else args.column,
                    **dict(zip(names, numbers, strict=True)),
                    "fliers": [],
                }
                for group, *numbers in zip(data["group"], *(data[n] for n in names), strict=True)
            ]
            if stats:  # bxp cannot place zero boxes
                ax.bxp(stats, showfliers=False)
            ax.set_ylabel(args.column)
            if args.by:
                ax.set_xlabel(args.by)
            title = f"{args.column} from {args.table}" + (f" by {args.by}" if args.by else "")
            groups = int(answer["p2p_groups"].iloc[0]) if len(answer) else 0
            if groups > len(data):
                note = f"the {len(data)} largest of {groups:,} groups"
            outliers = int(data["outliers"].sum())
            if outliers:
                note = "; ".join(filter(None, [note, f"{outliers:,} outliers not drawn"]))
        else:
            data = pd.DataFrame({"x": answer["x"], "y": answer["y"]})
            ax.plot(data["x"], data["y"], marker="o" if len(data) <= 50 else None)
            ax.set_xlabel(args.x)
            ax.set_ylabel(f"{args.agg}({args.y or '*'})")
            title = f"{args.agg}({args.y or '*'}) by {args.x} from {args.table}"
        ax.set_title(title)
        if data.empty:
            note = "no rows"
        if note:
            # In the axis label, where a long title cannot run over it.
            shown = ax.get_xlabel()
            ax.set_xlabel(f"{shown} ({note})" if shown else note)
        data.attrs.update(source=source.label, sql=sql, kind=args.kind)
        ax.p2p2p_data = data  # type: ignore[attr-defined]
        return ax


# What %p2pplot? shows: the options as argparse lists them, as magic_arguments would.
PlotMagics.p2pplot.__doc__ = f"{PlotMagics.p2pplot.__doc__}\n{PARSER.format_help()}"
