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
import shlex
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments
from IPython.display import display

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
from ..client.target import LocalTarget, resolve, resolve_any
from ..errors import BadTarget, P2P2PError, printable
from ..identity import Identity, b64, fingerprint
from ..owner import snapshots
from ..owner.commands import viewers_command
from ..owner.viewers import parse_viewer
from ..protocol.shareid import check_name, name_from_path
from ..store.arrow import to_pandas
from ..store.limits import given
from ..widgets import ResultProgress, ResultTable, SharesList, ShareStatus
from ..widgets.notes_panel import NotesPanel
from ..widgets.sources import GroupStatus, SourcesProgress, SourcesTable
from . import placeholders as template
from .owner_client import Owner, owner

IN_KERNEL_NOTE = (
    "p2p2p: this kernel was not started by a Jupyter server with the p2p2p extension "
    "(plain IPython, VS Code or a script), so shares run inside this kernel and stop "
    "when it stops."
)


def _parse(magic: Any, line: str) -> Any:
    """A magic's arguments, with quotes read as a shell reads them: IPython's own split
    keeps them (``--name "a b"`` would arrive as ``"a b"``, quotes and all)."""
    try:
        words = shlex.split(line)
    except ValueError as exc:
        raise UsageError(f"cannot read the arguments: {exc}") from None
    return magic.parser.parse_args(words)


class CellError(Exception):
    """Shown by IPython as its one-line message, without a traceback."""

    def __init__(self, error: P2P2PError, magic: str = "p2pquery") -> None:
        super().__init__(str(error))
        self.error = error
        self.magic = magic

    def _render_traceback_(self) -> list[str]:
        return [f"\x1b[31m{self.magic}: {printable(str(self))}\x1b[0m"]


@magics_class
class P2PMagics(Magics):
    def __init__(self, shell: Any) -> None:
        super().__init__(shell)
        self.stores: dict[str, LocalStore | RemoteStore | StoreGroup] = {}
        self.labels: dict[str, str] = {}
        self.last_target: str | None = None
        self._owner: Owner | None = None

    @property
    def _shell(self) -> Any:
        assert self.shell is not None, "the magics are not attached to a shell"
        return self.shell

    # -- querying ------------------------------------------------------------------
    def store(self, text: str) -> str:
        """Open (once per kernel) the store a target names; returns its key."""
        target = resolve_any(text)
        if target.key not in self.stores:
            self.stores[target.key] = open_target(target)
        self.labels[target.key] = str(target)
        return target.key

    @magic_arguments()
    @argument(
        "target",
        nargs="?",
        help="a share link, an alias, local:PATH or a path to a .duckdb file; default: the last one used",
    )
    @argument("--out", "-o", metavar="NAME", help="also store the DataFrame in this variable")
    @argument(
        "--limit", "-l", type=int, metavar="N", help="return at most N rows (marked truncated)"
    )
    @argument("--timeout", type=float, metavar="S", help="stop the query after S seconds")
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
    @cell_magic
    def p2pquery(self, line: str, cell: str) -> None:
        """Run the cell's SQL on a DuckDB store through p2p2p's locked-down executor.

        The result is shown as a paged table with its row count and time; ``_`` (and
        ``--out NAME``) hold the pandas DataFrame. Errors are one line, naming the rule.
        """
        args = _parse(self.p2pquery, line)
        progress: ResultProgress | None = None
        if args.target == HERE:
            return self._here(cell, args.out)
        try:
            if args.target:
                key = self.store(args.target)
            elif self.last_target is not None:
                key = self.last_target
            else:
                raise BadTarget(
                    "no store given yet: start the cell with %%p2pquery <link, alias or local:PATH>"
                )
            if args.out is not None and not str(args.out).isidentifier():
                raise BadTarget(f"--out needs a variable name, got {args.out!r}")
            sql, params = template.bind(cell, self._shell.user_ns)
            store = self.stores[key]
            handle: Any = None

            def show_progress(rows: int, nbytes: int) -> None:
                # Shown only once a result takes a while: quick ones never flash a bar.
                nonlocal progress, handle
                if progress is None:
                    progress = ResultProgress(self.labels[key])
                    progress.update(rows, nbytes)
                    handle = display(progress, display_id=True)
                else:
                    progress.update(rows, nbytes)

            limits = {"max_rows": args.limit, "timeout_s": args.timeout}
            if isinstance(store, StoreGroup):
                # Many stores at once: a line per store from the start, since they
                # answer at their own pace.
                lines = SourcesProgress(list(store.members))
                handle = display(lines, display_id=True)
                table = store.query_arrow(
                    sql,
                    params or None,
                    strict=args.strict,
                    source_progress=lines.update,
                    **limits,
                )
            else:
                table = store.query_arrow(sql, params or None, progress=show_progress, **limits)
            info = store.last_info
        except P2P2PError as exc:
            raise CellError(exc) from None
        finally:
            if progress is not None:
                progress.close()
        self.last_target = key
        if args.combine:
            # The common fan-out case in one cell: each store aggregates, this kernel
            # re-aggregates what came back (sum of sums, count of counts).
            try:
                table, combined = combine_arrow(args.combine, None, _=table)
            except P2P2PError as exc:
                raise CellError(exc) from None
            if isinstance(info, FanOutInfo):
                combined = FanOutInfo(
                    rows=combined.rows, bytes=combined.bytes, sources=info.sources,
                    seconds=info.seconds + combined.seconds,
                    truncated=info.truncated, truncated_by=info.truncated_by,
                )  # fmt: skip
            info = combined
        frame = to_pandas(table)
        result = ResultTable(frame, info, self.labels[key])
        if handle is not None:
            handle.update(result)
        else:
            display(result)
        if isinstance(info, FanOutInfo):
            frame.attrs["sources"] = [s.to_dict() for s in info.sources]
            display(SourcesTable(info))
        if args.out:
            self._shell.user_ns[args.out] = frame
        # Like a returned value, but without showing the DataFrame a second time.
        self._shell.displayhook.update_user_ns(frame)

    def _here(self, cell: str, out: str | None) -> None:
        """``%%p2pquery here``: this kernel's own DuckDB, over the DataFrames the SQL
        names (``_``, ``--out`` results, your own) and your own files."""
        try:
            if out is not None and not str(out).isidentifier():
                raise BadTarget(f"--out needs a variable name, got {out!r}")
            sql, params = template.bind(cell, self._shell.user_ns)
            frames = frames_named_in(sql, self._shell.user_ns)
            table, info = combine_arrow(sql, params or None, **frames)
        except P2P2PError as exc:
            raise CellError(exc) from None
        frame = to_pandas(table)
        display(ResultTable(frame, info, "here (this kernel's DuckDB)"))
        if out:
            self._shell.user_ns[out] = frame
        self._shell.displayhook.update_user_ns(frame)

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
        help="the relay to route it (default: $P2P2P_RELAY, the config file, or one on this machine)",
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
        ``%p2p note TARGET [--on TABLE] [--column C] TEXT`` · ``%p2p notes [NAME]``"""
        words = shlex.split(line)
        try:
            if words[:1] == ["note"] and len(words) >= 3:
                return self._note(words[1:])
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
            elif len(words) == 2 and words[0] == "forget":
                if not aliases.forget(words[1]):
                    raise BadTarget(f"no alias {words[1]!r}")
                self.stores.pop(words[1], None)
                self.stores.pop(f"group:{words[1]}", None)
                print(f"forgot {words[1]}")
            else:
                raise BadTarget(
                    "usage: %p2p connect LINK as ALIAS | %p2p group NAME [STORE…] | "
                    "%p2p aliases | %p2p forget ALIAS | "
                    '%p2p note TARGET [--on TABLE] [--column C] "text" | %p2p notes [NAME] | '
                    "%p2p viewers add|remove|list|mode SHARE ..."
                )
        except P2P2PError as exc:
            raise CellError(exc, "p2p") from None

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
        store = self.stores[self.store(target)]
        if not isinstance(store, RemoteStore):
            raise BadTarget("notes go to shares: give a link or an alias, not a local file")
        kept = store.post_note(" ".join(rest), on=on, column=column)
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
