"""The notebook magics.

* ``%%p2pquery [TARGET] [--out NAME] [--limit N] [--timeout S]`` runs the cell's SQL on a
  local store (through the same sandboxed executor that serves shares, so an owner sees
  exactly what a viewer would), a share link, or an alias. ``{name}`` binds the Python
  variable ``name`` as a parameter.
* ``%share PATH``, ``%unshare [NAME|--all]``, ``%shares``: the owner's side, hosted by the
  Jupyter server extension when this kernel has one, else by this kernel.
* ``%p2p connect LINK as ALIAS``, ``%p2p aliases``, ``%p2p forget ALIAS``.
"""

from __future__ import annotations

import os
import re
import shlex
from contextlib import nullcontext
from typing import Any

import pyarrow as pa
from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, line_magic, magics_class, no_var_expand
from IPython.core.magic_arguments import argument, magic_arguments
from IPython.display import display
from traitlets import Dict, Enum, Int, TraitError, observe, validate

from ..client import (
    LocalStore,
    RemoteStore,
    StoreGroup,
    aliases,
    open_target,
    parse_link,
)
from ..client.combine import HERE, combine_arrow, frames_named_in
from ..client.federation import FanOutInfo
from ..client.local import OwnLimits
from ..client.queued import queue_note, retract_queued
from ..client.target import LOCAL_PREFIX, LinkTarget, LocalTarget, is_link, resolve, resolve_any
from ..errors import BadTarget, P2P2PError, QueryFailed, ShareOffline, red_lines
from ..identity import Identity, b64, fingerprint
from ..owner import snapshots
from ..owner.commands import viewers_command
from ..owner.viewers import parse_viewer
from ..protocol.shareid import check_name, name_from_path
from ..store.arrow import to_pandas
from ..store.executor import ResultInfo
from ..store.limits import given
from ..widgets import ResultProgress, ResultTable, SharesList, ShareStatus
from ..widgets.notes_panel import NotesPanel
from ..widgets.snippet_list import SnippetList
from ..widgets.sources import GroupStatus, SourcesProgress, SourcesTable
from . import placeholders as template
from . import snippets
from .owner_client import Owner, owner

IN_KERNEL_NOTE = (
    "p2p2p: this kernel was not started by a Jupyter server with the p2p2p extension "
    "(plain IPython, VS Code or a script), so shares run inside this kernel and stop "
    "when it stops."
)


VIEWER_KEY = "\0as-viewer"  # the same file opened as a viewer is a store of its own
ASSIGN = "<<"


def _words(line: str) -> list[str]:
    """A magic's arguments, with quotes read as a shell reads them: IPython's own split
    keeps them (``--name "a b"`` would arrive as ``"a b"``, quotes and all)."""
    try:
        return shlex.split(line)
    except ValueError as exc:
        raise UsageError(f"cannot read the arguments: {exc}") from None


def _parse(magic: Any, line: str) -> Any:
    return magic.parser.parse_args(_words(line))


def _parse_words(magic: Any, words: list[str]) -> tuple[Any, str | None]:
    """The arguments, and the variable named by JupySQL's ``NAME <<`` (or ``--out``)."""
    assigned: str | None = None
    rest: list[str] = []
    i = 0
    while i < len(words):
        word = words[i]
        if word.endswith(ASSIGN) and word != ASSIGN:  # "df<<"
            word, words = ASSIGN, [*words[:i], word[: -len(ASSIGN)], ASSIGN, *words[i + 1 :]]
            continue
        if word == ASSIGN:
            if not rest or assigned is not None:
                raise UsageError("<< needs one variable name before it: %%p2pquery df <<")
            assigned = rest.pop()
        else:
            rest.append(word)
        i += 1
    args = magic.parser.parse_args(rest)
    if assigned is not None and args.out is not None and assigned != args.out:
        raise UsageError(f"two names for the result: {assigned} << and --out {args.out}")
    return args, assigned or args.out


def _split_line(line: str, parser: Any) -> tuple[list[str], str]:
    """``%p2pquery [options] [NAME <<] [TARGET] SQL``: the words before the SQL, and the
    SQL as written (quotes and all: it is SQL, not shell words)."""
    takes_value = {
        option: action.nargs != 0 for action in parser._actions for option in action.option_strings
    }
    tokens = list(re.finditer(r"\S+", line))
    words: list[str] = []
    target_seen = False
    k = 0
    while k < len(tokens):
        word = tokens[k].group()
        if word == ASSIGN or word.endswith(ASSIGN):
            words.append(word)
        elif k + 1 < len(tokens) and tokens[k + 1].group() == ASSIGN:
            words += [word, ASSIGN]
            k += 1
        elif re.match(r"--?[A-Za-z]", word):
            option = word.split("=", 1)[0]
            if option not in takes_value:
                raise UsageError(f"unknown option {option} (%p2pquery? lists them)")
            words.append(word)
            if takes_value[option] and "=" not in word and k + 1 < len(tokens):
                k += 1
                words.append(tokens[k].group())
        elif not target_seen and _names_a_target(word):
            words.append(word)
            target_seen = True
        else:
            break
        k += 1
    sql = line[tokens[k].start() :] if k < len(tokens) else ""
    if not sql.strip():
        raise UsageError("no SQL: %p2pquery [TARGET] SELECT …  (or %%p2pquery for a cell)")
    return words, sql


def _names_a_target(word: str) -> bool:
    """Whether the first word of a one-line query is where it goes, not its SQL."""
    if word == HERE or is_link(word) or word.startswith(LOCAL_PREFIX):
        return True
    if word.lower().endswith((".duckdb", ".ddb", ".db")):
        return True
    try:
        return aliases.resolve(word) is not None or aliases.group(word) is not None
    except P2P2PError:
        return False


def _polars(table: pa.Table) -> Any:
    try:
        import polars
    except ImportError:
        raise P2P2PError(
            "polars is not installed here: pip install polars (or p2p2p[polars]), or "
            "%config P2PMagics.output = 'pandas'"
        ) from None
    return polars.from_arrow(table)


def _with_placeholder_hint(error: QueryFailed, params: dict[str, Any]) -> QueryFailed:
    """A parser error in a cell with placeholders: most likely one stands where SQL wants
    a name, which a bound value can never be."""
    text = error.message
    if params and ("Parser Error" in text or "syntax error" in text):
        names = ", ".join("{" + name + "}" for name in params)
        return QueryFailed(
            f"{text}\n(hint: {names} became bound values, as numbers, text or dates are; a "
            "table or column name cannot be bound: write it in the SQL)"
        )
    return error


class CellError(Exception):
    """Shown by IPython as its one-line message, without a traceback."""

    def __init__(self, error: P2P2PError, magic: str = "p2pquery") -> None:
        super().__init__(str(error))
        self.error = error
        self.magic = magic

    def _render_traceback_(self) -> list[str]:
        return red_lines(f"{self.magic}: {self}")


@magics_class
class P2PMagics(Magics):
    """The magics, with their settings as traitlets: ``%config P2PMagics.displaylimit = 20``
    (or ``c.P2PMagics.…`` in an IPython profile)."""

    displaylimit = Int(
        10, help="rows a result shows at once (its page, and its static copy for saved notebooks)"
    ).tag(config=True)
    autolimit = Int(
        0, help="fetch at most this many rows unless a cell says --limit (0: no such cap)"
    ).tag(config=True)
    output = Enum(
        ["pandas", "polars", "arrow"],
        "pandas",
        help="what _ and --out/<< hold: a pandas DataFrame, a polars DataFrame or an Arrow table",
    ).tag(config=True)
    local_limits = Dict(
        help="limits of your own queries on local: files (timeout_s, max_rows, max_bytes, "
        'memory_limit like "8GB", threads); none by default: the file is yours'
    ).tag(config=True)

    def __init__(self, shell: Any) -> None:
        super().__init__(shell)
        self.stores: dict[str, LocalStore | RemoteStore | StoreGroup] = {}
        self.labels: dict[str, str] = {}
        self.snippets: dict[str, str] = {}
        # Table and column names for Tab (completion.QueryCompleter), set on loading.
        self.completer: Any = None
        self.last_target: str | None = None
        self._owner: Owner | None = None
        if shell is not None:
            # DuckDB lets a file be open read-only or for writing in one process, never
            # both: our read-only connections close after each cell, so the notebook's
            # next `duckdb.connect(path)` for writing is not refused because of us.
            shell.events.register("post_run_cell", self._release_local)

    @validate("local_limits")
    def _check_local_limits(self, proposal: Any) -> Any:
        try:
            OwnLimits.from_mapping(proposal["value"])
        except P2P2PError as exc:
            raise TraitError(str(exc)) from None
        return proposal["value"]

    @observe("local_limits")
    def _apply_local_limits(self, change: Any) -> None:
        for store in self.stores.values():
            if isinstance(store, LocalStore):
                store.set_limits(change["new"])

    @validate("displaylimit", "autolimit")
    def _check_counts(self, proposal: Any) -> Any:
        if proposal["value"] < 0:
            raise TraitError(f"{proposal['trait'].name} must be 0 or more, not {proposal['value']}")
        return proposal["value"]

    def _release_local(self, *_args: Any) -> None:
        for store in self.stores.values():
            if isinstance(store, LocalStore):
                store.release()

    @property
    def _shell(self) -> Any:
        assert self.shell is not None, "the magics are not attached to a shell"
        return self.shell

    # -- querying ------------------------------------------------------------------
    def store(self, text: str, as_viewer: bool = False) -> str:
        """Open (once per kernel) the store a target names; returns its key."""
        target = resolve_any(text)
        key = target.key
        if isinstance(target, LocalTarget):
            key = target.key + (VIEWER_KEY if as_viewer else "")
            if key not in self.stores:
                self.stores[key] = self._local(target.path, as_viewer)
            self.labels[key] = str(target) + (" (as a viewer)" if as_viewer else "")
            return key
        if as_viewer:
            raise BadTarget(
                "--as-viewer is for files here: a share's link already reads it as its viewers do"
            )
        if key not in self.stores:
            self.stores[key] = open_target(target)
        self.labels[key] = str(target)
        return key

    def _local(self, path: str, as_viewer: bool) -> LocalStore:
        if as_viewer:
            return LocalStore(path, as_viewer=True)
        namespace = self._shell.user_ns
        return LocalStore(
            path, limits=self.local_limits, writer=lambda: snapshots.writer_in(namespace, path)
        )

    @magic_arguments()
    @argument(
        "target",
        nargs="?",
        help="a share link, an alias, a group, local:PATH, a path to a .duckdb file, or "
        "`here` (this kernel's DuckDB over your DataFrames); default: the last one used",
    )
    @argument(
        "--out", "-o", metavar="NAME", help="also store the result in this variable (or NAME <<)"
    )
    @argument(
        "--limit", "-l", type=int, metavar="N", help="return at most N rows (marked truncated)"
    )
    @argument("--timeout", type=float, metavar="S", help="stop the query after S seconds")
    @argument(
        "--as-viewer",
        action="store_true",
        help="a file here: run as a viewer of a share of it would (its lockdown and limits) "
        "instead of with your own trust",
    )
    @argument(
        "--save",
        metavar="NAME",
        help="keep the cell's SQL as snippet NAME: later cells that name it get it as a CTE",
    )
    @argument(
        "--with",
        dest="with_",
        action="append",
        default=[],
        metavar="NAME",
        help="put snippet NAME in front as a CTE (named snippets are found without it)",
    )
    @argument("--no-execute", action="store_true", help="with --save: save only, do not run")
    @argument("--polars", action="store_true", help="give a polars DataFrame this time")
    @argument(
        "--strict",
        action="store_true",
        help="a group of stores: fail unless every store answers (default: say which did not)",
    )
    @argument(
        "--combine",
        metavar="SQL",
        help="then run SQL here, in this kernel's DuckDB, over the answer as the table _ "
        '(e.g. "SELECT k, sum(n) AS n FROM _ GROUP BY k": re-aggregate a group\'s answers)',
    )
    # IPython would paste {name} and $name of the line into it as text before the magic
    # sees it: SQL must get them as placeholders, bound as values (_words expands the
    # target and the options instead, where a Python variable is a convenience).
    @no_var_expand
    @line_cell_magic
    def p2pquery(self, line: str, cell: str | None = None) -> Any:
        """Run SQL on a DuckDB store: a file here (with your own trust), a share, a group.

        ``%%p2pquery [NAME <<] [TARGET] [options]`` runs the cell; ``%p2pquery [TARGET] SQL``
        runs one line and returns the result (``df = %p2pquery SELECT …``). The cell shows
        a paged table with its row count and time; ``_`` (and ``--out NAME`` or
        ``NAME <<``) hold the result. ``{name}`` binds the Python variable ``name``.
        Errors are one line, naming the rule.
        """
        if cell is None:
            words, sql = _split_line(line, self.p2pquery.parser)
            args, out = _parse_words(self.p2pquery, self._expand(words))
            return self._query(args, out, sql, show=False)
        args, out = _parse_words(self.p2pquery, self._expand(_words(line)))
        self._query(args, out, cell, show=True)
        return None

    def _expand(self, words: list[str]) -> list[str]:
        """``%%p2pquery {link}`` or ``$link``: Python variables in the target and options,
        as IPython expands any magic's line; never in ``--combine``'s SQL, whose
        placeholders are bound as values like the cell's."""
        out: list[str] = []
        for i, word in enumerate(words):
            sql_value = (i > 0 and words[i - 1] == "--combine") or word.startswith("--combine=")
            if not sql_value and ("{" in word or "$" in word):
                word = self._shell.var_expand(word)
            out.append(word)
        return out

    def _query(self, args: Any, out: str | None, sql: str, show: bool) -> Any:
        try:
            if out is not None and not str(out).isidentifier():
                raise BadTarget(f"--out (or NAME <<) needs a variable name, got {out!r}")
            if args.save is not None:
                self._save_snippet(args.save, sql)
                if args.no_execute:
                    if show:
                        print(f"saved snippet {args.save} (not run): later cells may use it")
                    return None
            elif args.no_execute:
                raise BadTarget("--no-execute goes with --save NAME: there is nothing else to do")
            sql = snippets.expand(sql, self.snippets, args.with_)
            if args.target == HERE:
                return self._here(sql, out, show, args.polars)
            return self._run(args, out, sql, show)
        except P2P2PError as exc:
            raise CellError(exc) from None

    def _run(self, args: Any, out: str | None, sql: str, show: bool) -> Any:
        progress: ResultProgress | None = None
        placeholder: Any = None  # the progress line the result will take the place of
        if args.target:
            key = self.store(args.target, as_viewer=args.as_viewer)
        elif self.last_target is not None:
            if args.as_viewer:
                raise BadTarget(
                    "--as-viewer needs the file named: %%p2pquery local:PATH --as-viewer"
                )
            key = self.last_target
        else:
            raise BadTarget(
                "no store given yet: start the cell with %%p2pquery <link, alias or local:PATH>"
            )
        bound, params = template.bind(sql, self._shell.user_ns)
        store = self.stores[key]
        handle: Any = None

        def show_progress(rows: int, nbytes: int) -> None:
            if progress is not None:
                progress.update(rows, nbytes)

        limits = {"max_rows": args.limit or self.autolimit or None, "timeout_s": args.timeout}
        try:
            if isinstance(store, StoreGroup):
                # Many stores at once: a line per store from the start, since they
                # answer at their own pace.
                lines = SourcesProgress(list(store.members))
                if show:
                    placeholder = lines
                    handle = display(lines, display_id=True)
                table = store.query_arrow(
                    bound,
                    params or None,
                    strict=args.strict,
                    source_progress=lines.update,
                    **limits,
                )
            else:
                how_far = store.query_progress if isinstance(store, LocalStore) else None
                if show:
                    # Hidden until the query takes a while (then the time so far, and
                    # DuckDB's estimate of how far), so quick ones never flash a line.
                    progress = placeholder = ResultProgress(self.labels[key], hidden=True)
                    handle = display(progress, display_id=True)
                with progress.ticking(how_far) if progress is not None else nullcontext():
                    table = store.query_arrow(
                        bound, params or None, progress=show_progress, **limits
                    )
        except QueryFailed as exc:
            raise _with_placeholder_hint(exc, params) from None
        finally:
            if handle is not None:
                # Empty the slot before closing the line's widget: JupyterLab hides an
                # output whose widget closes and would draw the result into that hidden
                # box if it came as the same kind of output. After a failure the slot
                # stays empty (the error below says what happened), never "waiting…".
                handle.update({"text/plain": ""}, raw=True)
            if placeholder is not None:
                placeholder.close()
        info = store.last_info
        self.last_target = key
        if args.combine:
            # The common fan-out case in one cell: each store aggregates, this kernel
            # re-aggregates what came back (sum of sums, count of counts).
            combine_sql, combine_params = template.bind(args.combine, self._shell.user_ns)
            table, combined = combine_arrow(combine_sql, combine_params or None, _=table)
            if isinstance(info, FanOutInfo):
                combined = FanOutInfo(
                    rows=combined.rows, bytes=combined.bytes, sources=info.sources,
                    seconds=info.seconds + combined.seconds,
                    truncated=info.truncated, truncated_by=info.truncated_by,
                )  # fmt: skip
            info = combined
        label = self.labels[key]
        if isinstance(store, LocalStore) and store.writer_used:
            label += f" (through `{store.writer_used}`, which has it open for writing)"
        return self._deliver(table, info, label, out, show, args.polars, handle)

    def _deliver(
        self,
        table: pa.Table,
        info: ResultInfo,
        label: str,
        out: str | None,
        show: bool,
        polars: bool,
        handle: Any = None,
    ) -> Any:
        """Show the result and hand it over as the configured kind of frame."""
        frame = to_pandas(table)
        if isinstance(info, FanOutInfo):
            frame.attrs["sources"] = [s.to_dict() for s in info.sources]
        result: Any = frame
        kind = "polars" if polars else self.output
        if kind == "polars":
            result = _polars(table)
        elif kind == "arrow":
            result = table
        if not show:
            if out:
                self._shell.user_ns[out] = result
            return result
        shown = ResultTable(frame, info, label, page_size=max(1, self.displaylimit))
        if handle is not None:
            handle.update(shown)
        else:
            display(shown)
        if isinstance(info, FanOutInfo):
            display(SourcesTable(info))
        if out:
            self._shell.user_ns[out] = result
        # Like a returned value, but without showing the result a second time.
        self._shell.displayhook.update_user_ns(result)
        return None

    def _here(self, sql: str, out: str | None, show: bool, polars: bool) -> Any:
        """``%%p2pquery here``: this kernel's own DuckDB, over the DataFrames the SQL
        names (``_``, ``--out`` results, your own) and your own files."""
        bound, params = template.bind(sql, self._shell.user_ns)
        frames = frames_named_in(bound, self._shell.user_ns)
        table, info = combine_arrow(bound, params or None, **frames)
        return self._deliver(table, info, "here (this kernel's DuckDB)", out, show, polars)

    def _save_snippet(self, name: str, sql: str) -> None:
        if not name.isidentifier():
            raise BadTarget(f"--save needs a snippet name like recent_cases, got {name!r}")
        self.snippets[name] = snippets.normalise(sql)

    # -- sharing -------------------------------------------------------------------
    def owner(self) -> Owner:
        if self._owner is None:
            self._owner = owner()
            if not self._owner.hosted_by_server:
                print(IN_KERNEL_NOTE)
        return self._owner

    @magic_arguments()
    @argument("path", help="the DuckDB file to share (read-only)")
    @argument("--name", help="the share's name (default: from the file name)")
    @argument(
        "--relay",
        metavar="URL",
        action="append",
        help="the relay to route it (default: $P2P2P_RELAY, the config file, or one on this "
        "machine); again for more relays, which the link names too",
    )
    @argument(
        "--host",
        metavar="ADDR",
        help="address for the relay on this machine, e.g. 0.0.0.0 for the LAN (default loopback)",
    )
    @argument("--listed", action="store_true", help="show it on the relay's directory page")
    @argument("--title", default="", help="a title for viewers")
    @argument(
        "--refresh",
        action="store_true",
        help="serve the file anew under the same link (after changing it)",
    )
    @argument("--timeout", type=float, metavar="S", help="longest time one query may run")
    @argument("--max-rows", type=int, metavar="N", help="most rows one result may have")
    @argument("--max-bytes", type=int, metavar="B", help="largest result in bytes")
    @argument(
        "--dashboard",
        metavar="NOTEBOOK",
        help="your own dashboard notebook for viewers (default: the generic one)",
    )
    @argument("--no-dashboard", action="store_true", help="no dashboard: programs only")
    @argument("--max-viewers", type=int, metavar="N", help="dashboard viewers at once (default 10)")
    @argument(
        "--viewer",
        action="append",
        default=[],
        metavar="NAME=KEY[:T,...]",
        help="a viewer who may read it (only tables T, if given): identified mode (repeatable)",
    )
    @argument(
        "--require-key",
        action="store_true",
        help="identified mode: only listed viewers' keys get in (add them with %%p2p viewers add)",
    )
    @argument(
        "--allow-pull",
        metavar="T,...",
        help="tables subscribers may copy with `p2p2p pull` (default: none; data stays home)",
    )
    @argument(
        "--no-export",
        action="store_true",
        help="no download buttons on the dashboard; export requests are refused",
    )
    @argument(
        "--keep-link",
        action="store_true",
        help="the same link as the last time it was shared with --keep-link",
    )
    @argument(
        "--rotate-link",
        action="store_true",
        help="a new lasting link now; the old one stops working (a live share restarts)",
    )
    @argument(
        "--standby",
        action="store_true",
        help="wait while another process with your key serves it; take over when it stops",
    )
    @line_magic
    def share(self, line: str) -> Any:
        """Share a DuckDB file read-only through a relay; shows the link and live status."""
        args = _parse(self.share, line)
        path = os.path.abspath(os.path.expanduser(args.path))
        limits = given(timeout_s=args.timeout, max_rows=args.max_rows, max_bytes=args.max_bytes)
        fields: dict[str, Any] = {
            "path": path,
            "name": args.name,
            "listed": args.listed,
            "title": args.title,
            "relay": args.relay,
            "host": args.host,
            "limits": limits,
            "refresh": args.refresh,
            "dashboard": False
            if args.no_dashboard
            else (os.path.abspath(os.path.expanduser(args.dashboard)) if args.dashboard else True),
            "max_viewers": args.max_viewers,
            "require_key": args.require_key,
            "allow_pull": args.allow_pull,
            "exports": not args.no_export,
            "keep_link": args.keep_link,
            "rotate_link": args.rotate_link,
            "standby": args.standby,
        }
        copy: str | None = None
        try:
            fields["viewers"] = [parse_viewer(v).to_dict() for v in args.viewer]
            service = self.owner()
            writer = snapshots.writer_in(self._shell.user_ns, path)
            if writer is not None:
                _variable, connection, database = writer
                name = check_name(args.name or name_from_path(path))
                copy, taken = snapshots.take(connection, database, name)
                fields.update(path=copy, name=name, snapshot={"source": path, "taken": taken})
            status = service.share(**fields)
        except P2P2PError as exc:
            if copy is not None:
                snapshots.remove_snapshot(copy)
            raise CellError(exc, "share") from None
        if status.get("reused"):
            print(
                f"{os.path.basename(path)} is already shared as {status['name']!r} (same link); "
                f"`%share {shlex.quote(args.path)} --refresh` serves the file anew"
            )
        elif writer is not None:
            print(
                f"{os.path.basename(path)} is open for writing in this notebook "
                f"(`{writer[0]}`), so viewers see a snapshot taken {status['snapshot']['taken']}. "
                f"After changing the data, run `%share {shlex.quote(args.path)} --refresh` "
                "to serve it anew under the same link."
            )
        name = status["name"]

        def stop() -> None:
            service.unshare(name)

        return ShareStatus(status, refresh=lambda: service.status(name), stop=stop)

    @magic_arguments()
    @argument("name", nargs="?", help="the share to stop (optional when only one is active)")
    @argument("--all", action="store_true", help="stop every share")
    @line_magic
    def unshare(self, line: str) -> None:
        """Stop sharing: the link stops working at once."""
        args = _parse(self.unshare, line)
        try:
            service = self.owner()
            name = args.name
            if name is None and not args.all:
                active = [s["name"] for s in service.shares()]
                if len(active) != 1:
                    raise P2P2PError(
                        "name the share to stop, or use --all "
                        f"(active: {', '.join(active) or 'none'})"
                    )
                name = active[0]
            stopped = service.unshare(None if args.all else name)
        except P2P2PError as exc:
            raise CellError(exc, "unshare") from None
        print(f"stopped: {', '.join(stopped)}" if stopped else "no active shares")

    @line_magic
    def shares(self, line: str) -> Any:
        """The active shares of this server (or of this kernel)."""
        try:
            return SharesList(self.owner().shares())
        except P2P2PError as exc:
            raise CellError(exc, "shares") from None

    # -- aliases -------------------------------------------------------------------
    @line_magic
    def p2p(self, line: str) -> Any:
        """``%p2p connect LINK as ALIAS`` · ``%p2p group NAME STORE…`` (``%p2p group NAME``:
        which of its stores are online) · ``%p2p aliases`` ·
        ``%p2p forget ALIAS`` ·
        ``%p2p note TARGET [--on TABLE] [--column C] TEXT`` · ``%p2p notes [NAME]`` ·
        ``%p2p unqueue ID`` (a note left at a relay while its owner was away)"""
        words = shlex.split(line)
        try:
            if words[:1] == ["note"] and len(words) >= 3:
                return self._note(words[1:])
            if words[:1] == ["unqueue"] and len(words) == 2:
                retract_queued(words[1])
                print(f"note {words[1]} taken back: it no longer waits at the relay")
                return None
            if words[:1] == ["notes"] and len(words) <= 2:
                return self._owner_notes(words[1] if len(words) == 2 else None)
            if words[:1] == ["viewers"]:
                # The same commands as `p2p2p viewers …`, on the same files: a running
                # share, wherever it is hosted, takes the change within a moment.
                viewers_command(words[1:])
                return None
            if len(words) == 4 and words[0] == "connect" and words[2] == "as":
                self._connect(words[1], words[3])
            elif len(words) >= 3 and words[0] == "group":
                self._group(words[1], words[2:])
            elif len(words) == 2 and words[0] == "group":
                group = self.stores[self.store(words[1])]
                if not isinstance(group, StoreGroup):
                    raise BadTarget(
                        f"{words[1]!r} is not a group: %p2p group NAME STORE… makes one"
                    )
                return GroupStatus(group)
            elif words == ["aliases"]:
                self._show_aliases()
            elif words == ["snippets"]:
                return SnippetList(self.snippets)
            elif len(words) == 3 and words[:2] == ["snippets", "forget"]:
                if self.snippets.pop(words[2], None) is None:
                    raise BadTarget(f"no snippet {words[2]!r} (%p2p snippets lists them)")
                print(f"forgot snippet {words[2]}")
            elif words[:1] == ["refresh"] and len(words) <= 2:
                self._refresh(words[1] if len(words) == 2 else None)
            elif len(words) == 2 and words[0] == "forget":
                if not aliases.forget(words[1]):
                    raise BadTarget(f"no alias {words[1]!r}")
                self.stores.pop(words[1], None)
                self.stores.pop(f"group:{words[1]}", None)
                print(f"forgot {words[1]}")
            else:
                raise BadTarget(
                    "usage: %p2p connect LINK as ALIAS | %p2p group NAME [STORE…] | "
                    "%p2p aliases | %p2p forget ALIAS | %p2p snippets [forget NAME] | "
                    "%p2p refresh [TARGET] | "
                    '%p2p note TARGET [--on TABLE] [--column C] "text" | %p2p notes [NAME] | '
                    "%p2p viewers add|remove|list|mode SHARE ..."
                )
        except P2P2PError as exc:
            raise CellError(exc, "p2p") from None

    def _refresh(self, text: str | None) -> None:
        """Forget what is known of a target's tables (completion), or of every target's."""
        key = None if text is None else self.store(text)
        if self.completer is not None:
            self.completer.forget(key)
        for name, store in self.stores.items():
            if key in (None, name) and isinstance(store, LocalStore):
                store.release()
        print(
            f"refreshed {self.labels.get(key, text) if key else 'every store'}: table and column names are read anew"
        )

    def _note(self, words: list[str]) -> None:
        target, rest = words[0], words[1:]
        on = column = None
        while len(rest) >= 2 and rest[0] in ("--on", "--column"):
            if rest[0] == "--on":
                on = rest[1]
            else:
                column = rest[1]
            rest = rest[2:]
        if not rest:
            raise BadTarget('the note needs its text: %p2p note TARGET [--on TABLE] "text"')
        text = " ".join(rest)
        try:
            store = self.stores[self.store(target)]
            if not isinstance(store, RemoteStore):
                raise BadTarget("notes go to shares: give a link or an alias, not a local file")
            kept = store.post_note(text, on=on, column=column)
        except ShareOffline:
            found = resolve(target)
            if not isinstance(found, LinkTarget):
                raise
            waiting = queue_note(found.link, text, on=on, column=column)
            print(
                f"the owner is away: note {waiting['note']['id'][:8]} is sealed to the owner's "
                f"key and waits at {waiting['relay']} until they are back (in the relay's "
                f"memory, for up to 7 days; a restart of the relay loses it). "
                f"%p2p unqueue {waiting['id']} takes it back."
            )
            return
        print(f"note {kept['id'][:8]} signed and kept by the owner (#{kept.get('seq')})")

    def _owner_notes(self, name: str | None) -> Any:
        """The owner's live notes panel for one of their shares."""
        service = self.owner()
        active = service.shares()
        if name is None:
            if len(active) != 1:
                raise P2P2PError(
                    f"name the share (active: {', '.join(s['name'] for s in active) or 'none'})"
                )
            name = active[0]["name"]
        status = service.status(name)
        if status is None:
            raise P2P2PError(f"no active share named {name!r}")
        store = RemoteStore(parse_link(status["link"]))
        tables = [str(r.get("name")) for r in store.schema().get("relations", [])]
        identity, _ = Identity.load_or_create()
        return NotesPanel(store, tables, identity=identity)

    def _connect(self, text: str, alias: str) -> None:
        aliases.check_alias(alias)
        link = parse_link(text)
        store = RemoteStore(link)  # checks the owner key the relay shows against the id
        if not link.invite:
            store.info()  # and the token, with the owner: a wrong one is refused now
        # An invite link is used up: the alias keeps the share's own link it was traded for.
        kept = store.link.full if link.invite else text.strip()
        aliases.save(
            alias, kept, share_id=link.share_id, name=store.name, owner=b64(store.owner_key)
        )
        if store.enrolled is not None:
            tables = store.enrolled.get("tables")
            print(
                f"invite accepted: you are viewer {store.enrolled['viewer']!r} of "
                f"{store.name!r}, reading {', '.join(tables) if tables else 'every table'}"
            )
        self.stores.pop(alias, None)
        self.stores[alias] = store
        self.labels[alias] = alias
        print(
            f"{alias} → {link.display} (share {store.name!r}, owner key "
            f"{fingerprint(store.owner_key)}, checked against the share id; the owner "
            "accepted the link's token)"
        )

    def _group(self, name: str, members: list[str]) -> None:
        """Save a named set of stores; ``%%p2pquery NAME`` then asks all of them."""
        for member in members:
            target = resolve(member)  # a group inside a group is refused here
            if isinstance(target, LocalTarget) and not os.path.exists(target.path):
                raise BadTarget(
                    f"{member!r} is neither an alias (%p2p connect LINK as {member}), a link, "
                    "nor a store file here"
                )
        aliases.save_group(name, members)
        self.stores.pop(f"group:{name}", None)
        print(f"{name} → {', '.join(members)} (%%p2pquery {name} asks them all at once)")

    def _show_aliases(self) -> None:
        saved = aliases.load()
        if not saved:
            print("no aliases yet: %p2p connect LINK as ALIAS")
            return
        width = max(len(a) for a in saved)
        for alias, entry in sorted(saved.items()):
            if "group" in entry:
                print(f"{alias:<{width}}  group: {', '.join(entry['group'])}")
                continue
            shown = parse_link(str(entry["link"])).display
            print(f"{alias:<{width}}  {shown}  ({entry.get('name', '?')})")

    def close(self) -> None:
        for store in self.stores.values():
            store.close()
        self.stores.clear()
