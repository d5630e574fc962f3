"""The SQL cell magic.

``%%p2pquery [TARGET] [--out NAME] [--limit N] [--timeout S]`` runs the cell through the
same sandboxed executor that serves shares, so an owner sees exactly what a viewer would.
``{name}`` in the SQL binds the Python variable ``name`` as a parameter.
"""

from __future__ import annotations

from typing import Any

from IPython.core.magic import Magics, cell_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from IPython.display import display

from ..core import template
from ..core.client import LocalStore, RemoteStore, parse_link
from ..core.dataframe import to_pandas
from ..core.errors import BadTarget, P2P2PError
from ..core.target import is_link, parse_target
from ..widgets.result_view import ResultView


class CellError(Exception):
    """Shown by IPython as its one-line message, without a traceback."""

    def __init__(self, error: P2P2PError) -> None:
        super().__init__(str(error))
        self.error = error

    def _render_traceback_(self) -> list[str]:
        return [f"\x1b[31mp2pquery: {self}\x1b[0m"]


@magics_class
class P2PMagics(Magics):
    def __init__(self, shell: Any) -> None:
        super().__init__(shell)
        self.stores: dict[str, LocalStore | RemoteStore] = {}
        self.labels: dict[str, str] = {}
        self.last_target: str | None = None

    @property
    def _shell(self) -> Any:
        assert self.shell is not None, "the magics are not attached to a shell"
        return self.shell

    def store(self, text: str) -> str:
        """Open (once per kernel) the store a target names; returns its key."""
        if is_link(text):
            link = parse_link(text)
            key, label = text, link.display
            if key not in self.stores:
                self.stores[key] = RemoteStore(link)
        else:
            target = parse_target(text)
            key, label = target.path, str(target)
            if key not in self.stores:
                self.stores[key] = LocalStore(target.path)
        self.labels[key] = label
        return key

    @magic_arguments()
    @argument(
        "target",
        nargs="?",
        help="a share link, local:PATH or a path to a .duckdb file; default: the last one used",
    )
    @argument("--out", "-o", metavar="NAME", help="also store the DataFrame in this variable")
    @argument(
        "--limit", "-l", type=int, metavar="N", help="return at most N rows (marked truncated)"
    )
    @argument("--timeout", type=float, metavar="S", help="stop the query after S seconds")
    @cell_magic
    def p2pquery(self, line: str, cell: str) -> None:
        """Run the cell's SQL on a DuckDB store through p2p2p's locked-down executor.

        The result is shown as a compact table with its row count and time; ``_`` (and
        ``--out NAME``) hold the pandas DataFrame. Errors are one line, naming the rule.
        """
        args = parse_argstring(self.p2pquery, line)
        try:
            if args.target:
                key = self.store(args.target)
            elif self.last_target is not None:
                key = self.last_target
            else:
                raise BadTarget(
                    "no store given yet: start the cell with %%p2pquery <link or local:PATH>"
                )
            if args.out is not None and not str(args.out).isidentifier():
                raise BadTarget(f"--out needs a variable name, got {args.out!r}")
            sql, params = template.bind(cell, self._shell.user_ns)
            store = self.stores[key]
            table = store.query_arrow(
                sql, params or None, max_rows=args.limit, timeout_s=args.timeout
            )
            info = store.last_info
        except P2P2PError as exc:
            raise CellError(exc) from None
        self.last_target = key
        frame = to_pandas(table)
        display(ResultView(frame, info, self.labels[key]))
        if args.out:
            self._shell.user_ns[args.out] = frame
        # Like a returned value, but without showing the DataFrame a second time.
        self._shell.displayhook.update_user_ns(frame)

    def close(self) -> None:
        for store in self.stores.values():
            store.close()
        self.stores.clear()
