"""The ``p2p2p`` command."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import __version__
from .errors import BadTarget, P2P2PError, printable


def _cmd_keys(args: argparse.Namespace) -> int:
    from .identity import Identity

    identity, created = Identity.load_or_create()
    if args.json:
        print(
            json.dumps(
                {
                    "public_key": identity.public_key_b64,
                    "fingerprint": identity.fingerprint,
                    "path": str(identity.path),
                    "created": created,
                }
            )
        )
        return 0
    print(("Created a new identity" if created else "Your identity") + f" ({identity.path})")
    print(f"  public key   {identity.public_key_b64}")
    print(f"  fingerprint  {identity.fingerprint}")
    return 0


def _names(text: str | None) -> list[str]:
    """``a,b , c`` as ``["a", "b", "c"]``."""
    return [name.strip() for name in (text or "").split(",") if name.strip()]


def _parse_param(text: str) -> tuple[str, Any]:
    name, sep, raw = text.partition("=")
    if not sep or not name.isidentifier():
        raise P2P2PError(f"--param needs NAME=VALUE, got {text!r}")
    try:
        value: Any = json.loads(raw)  # 2022 -> int, "x" -> str, [1,2] -> list
    except ValueError:
        value = raw  # bare text is a string
    return name, value


def _cmd_query(args: argparse.Namespace) -> int:
    from .client import StoreGroup, connect, connect_many, display_target
    from .store.arrow import to_pandas

    params = dict(_parse_param(p) for p in args.param) or None
    several = len(args.targets) > 1
    if several:
        store: Any = connect_many(args.targets)
    else:
        store = connect(args.targets[0], as_viewer=args.as_viewer)
    extra = {"strict": args.strict} if isinstance(store, StoreGroup) else {}
    try:
        table = store.query_arrow(
            args.sql, params, max_rows=args.limit, timeout_s=args.timeout, **extra
        )
        info = store.last_info
    finally:
        store.close()
    frame = to_pandas(table)
    if args.format == "csv":
        frame.to_csv(sys.stdout, index=False)
    elif args.format == "json":
        sys.stdout.write(frame.to_json(orient="records", date_format="iso", default_handler=str))
        sys.stdout.write("\n")
    else:
        print(frame.to_string(index=False, max_rows=args.show_rows))
    # The status line goes to stderr so csv/json output stays clean for pipes.
    shown = f"{len(args.targets)} stores" if several else display_target(args.targets[0])
    print(info.describe(shown), file=sys.stderr)
    for source in getattr(info, "failed", []):  # a group: who gave no rows, and why
        print(
            f"  no rows from {source.name}; it said: {printable(str(source.message))}",
            file=sys.stderr,
        )
    return 0


def _table_columns(specs: list[str], flag: str) -> dict[str, str]:
    """``--cursor cases.admitted`` (repeatable) as ``{"cases": "admitted"}``."""
    out = {}
    for spec in specs:
        table, dot, column = spec.partition(".")
        if not dot or not table or not column:
            raise BadTarget(f"{flag} takes TABLE.COLUMN, got {spec!r}")
        out[table] = column
    return out


def _cmd_pull(args: argparse.Namespace) -> int:
    import time

    from .client import RemoteStore, connect
    from .client.pull import pull
    from .errors import ShareOffline
    from .owner.viewers import parse_duration

    store = connect(args.target)
    if not isinstance(store, RemoteStore):
        store.close()
        raise BadTarget("a pull copies from a share: give its link or alias, not a local file")
    every = parse_duration(args.every) if args.every else None
    cursors = _table_columns(args.cursor, "--cursor")
    keys = _table_columns(args.key, "--key")
    backoff = 5.0
    full = args.full
    try:
        while True:
            try:
                reports = pull(
                    store,
                    args.into,
                    _names(args.tables) or None,
                    cursors,
                    keys,
                    full=full,
                    progress=lambda t, n: print(f"  {t}: {n:,} rows…", file=sys.stderr),
                )
            except ShareOffline as exc:
                if every is None:
                    raise
                print(
                    f"the share is offline ({exc}); trying again in {backoff:.0f} s",
                    file=sys.stderr,
                )
                time.sleep(backoff)
                backoff = min(backoff * 2, 600.0)
                continue
            backoff = 5.0
            full = False  # --full starts over once; later rounds bring the copy up to date
            for report in reports:
                print(
                    f"{report.table}: {report.rows:,} new rows in {report.seconds:.1f} s "
                    f"(by {report.cursor}, now at {report.last!r}) into {args.into}"
                )
            if every is None:
                return 0
            time.sleep(every)
    finally:
        store.close()


def _cmd_relay(args: argparse.Namespace) -> int:
    import logging

    from .aio import run
    from .relay import RelayConfig, serve
    from .relay.clients import parse_proxies

    try:
        proxies = parse_proxies(args.proxy or [])
    except ValueError as exc:
        print(f"p2p2p relay: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s relay %(message)s")
    config = RelayConfig(
        heartbeat_s=args.heartbeat,
        share_origins=args.share_origins,
        header_timeout_s=args.header_timeout,
        proxies=proxies,
        connections_per_client=args.max_connections_per_client,
        queue_ttl_s=args.queue_ttl,
    )

    def ready(server: Any, port: int) -> None:
        host = f"[{args.host}]" if ":" in args.host else args.host
        print(
            f"p2p2p relay on http://{host}:{port}  (stores nothing; Ctrl+C stops it)",
            flush=True,
        )

    try:
        run(serve(args.host, args.port, config, ready, access_log=args.access_log))
    except KeyboardInterrupt:
        pass
    return 0


def _cmd_share(args: argparse.Namespace) -> int:
    import asyncio

    from .aio import run
    from .identity import Identity
    from .owner.commands import apply_expiry
    from .owner.service import OwnerService
    from .owner.viewers import parse_duration, parse_viewer
    from .store.limits import given

    identity, _ = Identity.load_or_create()
    now = time.time()
    invited = apply_expiry([parse_viewer(v, now) for v in args.viewer], args.viewer_expires, now)
    limits = given(
        timeout_s=args.timeout,
        max_rows=args.max_rows,
        max_bytes=args.max_bytes,
        memory_limit_mb=args.memory_mb,
        workers=args.workers,
    )

    async def main() -> int:
        service = OwnerService(identity)
        relays = ", ".join(args.relay)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        sharing = asyncio.ensure_future(
            service.share(
                args.path,
                name=args.name,
                listed=args.listed,
                relay=args.relay,
                limits=limits,
                upstream=args.upstream or "",
                dashboard=args.dashboard or False,
                max_viewers=args.max_viewers,
                viewers=[v.to_dict() for v in invited],
                require_key=args.require_key,
                allow_pull=args.allow_pull,
                exports=not args.no_export,
                keep_link=args.keep_link,
                rotate_link=args.rotate_link,
                standby=args.standby,
                browser_session_s=parse_duration(args.browser_session)
                if args.browser_session
                else None,
            )
        )
        stopper = asyncio.ensure_future(stop.wait())
        # Something to look at while an unreachable relay is retried (and, for whoever
        # drives this process, the sign that Ctrl+C is handled from here on).
        print(f"p2p2p: sharing {args.path} through {relays}…", file=sys.stderr, flush=True)
        # Ctrl+C must work while the relay is still unreachable, too.
        await asyncio.wait([sharing, stopper], return_when=asyncio.FIRST_COMPLETED)
        if not sharing.done():
            sharing.cancel()
            await service.close()
            print(
                f"p2p2p: stopped before the relay at {relays} accepted the share"
                if len(args.relay) == 1
                else f"p2p2p: stopped before any relay ({relays}) accepted the share",
                file=sys.stderr,
            )
            return 1
        try:
            status = sharing.result()
        except BaseException:
            await service.close()
            raise
        record = {
            "link": status["link"],
            "share_id": status["share_id"],
            "owner": identity.public_key_b64,
            "name": status["name"],
            "state": status["relay_state"],
        }
        if args.json:
            print(json.dumps(record), flush=True)
        elif status["relay_state"] == "standby":
            print(
                f"Standing by for {status['name']!r}: another process with this key serves "
                f"it now; this one takes over when it stops. Link:\n  {status['link']}",
                flush=True,
            )
        else:
            print(
                f"Sharing {status['path']} as {status['name']!r} (read-only). Link:\n  "
                f"{status['link']}",
                flush=True,
            )
            print("Ctrl+C revokes it.", flush=True)
        await stopper
        # Revoke: the relay forgets the share at once; the dashboard stops with it.
        await service.close()
        return 0

    return run(main())


def _cmd_notes_export(args: argparse.Namespace) -> int:
    from .owner.commands import own_share_id
    from .owner.notes import NotesStore
    from .paths import data_dir
    from .protocol.notes import export_line

    sid = own_share_id(args.name)
    path = data_dir() / "notes" / f"{sid}.sqlite"
    if not path.is_file():
        raise P2P2PError(f"no notes for a share named {args.name!r} on this machine")
    store = NotesStore(path, sid)
    try:
        for note in store.since(0):
            sys.stdout.write(export_line(note) + "\n")
    finally:
        store.close()
    return 0


def _cmd_notes_verify(args: argparse.Namespace) -> int:
    from .protocol.notes import verify_export

    with open(args.file, encoding="utf-8") as handle:
        count = verify_export(handle.read().splitlines())
    print(f"ok: {count} notes, every signature checked against its author's key")
    return 0


def _cmd_audit_verify(args: argparse.Namespace) -> int:
    from .owner.audit import verify

    report = verify(args.file)
    print(f"ok: {report.entries} entries, chain intact; head {report.head}")
    return 0


def _cmd_sample(args: argparse.Namespace) -> int:
    if args.hospital:
        from .samples.hospital import build_hospital_store

        info = build_hospital_store(
            args.path or "hospital.duckdb",
            scale=args.scale,
            progress=lambda table, rows: print(f"{table:<15} {rows:>9,} rows", file=sys.stderr),
        )
        print(info.path)
        return 0
    from .samples.sales import build_sample_store

    print(build_sample_store(args.path or "sample.duckdb", rows=args.rows))
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from .samples.demo import run

    return run(
        Path(args.dir),
        host=args.host,
        port=args.port,
        reset=args.reset,
        lab=not args.no_lab,
        scale=args.scale,
    )


def _scale_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--scale", type=float, default=1.0, help="hospital cases × this (default 1.0)"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="p2p2p",
        description="Share a DuckDB file read-only with one link; query it without moving the data.",
    )
    parser.add_argument("--version", action="version", version=f"p2p2p {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    keys = sub.add_parser("keys", help="create (once) and show your identity key")
    keys.add_argument("--json", action="store_true", help="print as one JSON object")
    keys.set_defaults(func=_cmd_keys)

    query = sub.add_parser("query", help="run one read-only SQL statement on a store")
    query.add_argument(
        "targets",
        nargs="+",
        metavar="target",
        help="local:PATH, a path to a .duckdb file, a share link, an alias or a group; "
        "several: the statement runs on all of them at once (a _source column says which)",
    )
    query.add_argument(
        "sql",
        help="the SQL: on a share one SELECT/WITH/DESCRIBE/SHOW/SUMMARIZE/EXPLAIN statement; "
        "on a file here anything DuckDB runs on a read-only database",
    )
    query.add_argument(
        "--as-viewer",
        action="store_true",
        help="a file here: run as a viewer of a share of it would (the share's lockdown "
        "and limits) instead of with your own trust",
    )
    query.add_argument(
        "--strict",
        action="store_true",
        help="with several stores: fail unless every one of them answers",
    )
    query.add_argument("--format", choices=("table", "csv", "json"), default="table")
    query.add_argument(
        "--param",
        "-p",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="bind $NAME (VALUE is JSON if it parses, else text); repeatable",
    )
    query.add_argument(
        "--limit", type=int, metavar="N", help="return at most N rows (marked truncated)"
    )
    query.add_argument("--timeout", type=float, metavar="S", help="stop the query after S seconds")
    query.add_argument(
        "--show-rows",
        type=int,
        default=60,
        metavar="N",
        help="rows printed in table format (default 60)",
    )
    query.set_defaults(func=_cmd_query)

    relay = sub.add_parser("relay", help="run a relay (stateless; anyone can run one)")
    relay.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default loopback)"
    )
    relay.add_argument("--port", type=int, default=8765)
    relay.add_argument(
        "--heartbeat", type=float, default=5.0, metavar="S", help="seconds between owner heartbeats"
    )
    relay.add_argument(
        "--access-log",
        action="store_true",
        help="a log line per request: status, method, path (it names the share id), client "
        "address, time taken; never the query string, which can hold a link's token; off by "
        "default",
    )
    relay.add_argument(
        "--header-timeout",
        type=float,
        default=20.0,
        metavar="S",
        help="seconds a connection may take to send a request's headers, or sit idle between requests (default 20)",
    )
    relay.add_argument(
        "--proxy",
        action="append",
        metavar="ADDR",
        help="address or network of a reverse proxy / load balancer in front of this relay: its X-Forwarded-For names the client, and it is not limited per client (repeatable; default: loopback; 'none' for no proxy)",
    )
    relay.add_argument(
        "--max-connections-per-client",
        type=int,
        default=64,
        metavar="N",
        help="open connections one client address may hold (default 64; 0: no limit; proxies are not limited)",
    )
    relay.add_argument(
        "--share-origins",
        action="store_true",
        help="give each share's pages its own browser origin, <share id>.<this host>: needs a wildcard DNS name and certificate (loopback relays always do this, with *.localhost)",
    )
    relay.add_argument(
        "--queue-ttl",
        type=float,
        default=7 * 24 * 3600.0,
        metavar="S",
        help="how long a sealed note for an offline share waits in memory for its owner "
        "(default 7 days; a restart of the relay loses them)",
    )
    relay.set_defaults(func=_cmd_relay)

    share = sub.add_parser(
        "share", help="share a DuckDB file read-only through a relay until Ctrl+C"
    )
    share.add_argument("path")
    share.add_argument(
        "--relay",
        required=True,
        action="append",
        metavar="URL",
        help="e.g. http://127.0.0.1:8765; again for more relays: the owner stays on all of "
        "them, the link names them all and clients go to the next when one stops answering",
    )
    share.add_argument("--name", help="share name (default: from the file name)")
    share.add_argument(
        "--listed", action="store_true", help="show the share on the relay's directory page"
    )
    share.add_argument("--json", action="store_true", help="print the link as one JSON line")
    share.add_argument(
        "--dashboard",
        nargs="?",
        const=True,
        metavar="NOTEBOOK",
        help="serve a Voila dashboard at the link: the generic one, or this notebook",
    )
    share.add_argument(
        "--max-viewers", type=int, metavar="N", help="dashboard viewers at once (default 10)"
    )
    share.add_argument(
        "--upstream",
        metavar="URL",
        help="a web app on this machine (http://127.0.0.1:PORT, serving under /s/<id>/) that "
        "answers every other path of the share, WebSockets included: a dashboard",
    )
    share.add_argument(
        "--timeout", type=float, metavar="S", help="per-query time limit (default 30)"
    )
    share.add_argument(
        "--max-rows", type=int, metavar="N", help="rows per result (default 1,000,000)"
    )
    share.add_argument(
        "--max-bytes", type=int, metavar="B", help="bytes per result (default 256 MiB)"
    )
    share.add_argument(
        "--memory-mb", type=int, metavar="MB", help="DuckDB memory per worker (default 1024)"
    )
    share.add_argument("--workers", type=int, metavar="N", help="queries at once (default 2)")
    share.add_argument(
        "--viewer",
        action="append",
        default=[],
        metavar="NAME=KEY[:T,...]",
        help="a viewer who may read the share (only tables T, if given); any --viewer puts "
        "the share in identified mode: only listed keys get in (repeatable)",
    )
    share.add_argument(
        "--viewer-expires",
        action="append",
        default=[],
        metavar="NAME=DURATION",
        help="that --viewer's access ends after DURATION (7d, 36h, 90m)",
    )
    share.add_argument(
        "--browser-session",
        metavar="DURATION",
        help="how long a browser stays signed in to an identified share (default 8h)",
    )
    share.add_argument(
        "--require-key",
        action="store_true",
        help="identified mode: only listed viewers' signed requests are answered; add "
        "viewers while it runs with `p2p2p viewers add`",
    )
    share.add_argument(
        "--allow-pull",
        metavar="T,...",
        help="tables subscribers may copy and keep up to date with `p2p2p pull` "
        "(default: none; data stays home)",
    )
    share.add_argument(
        "--no-export",
        action="store_true",
        help="no CSV/JSON/Parquet download buttons on the dashboard, and the share refuses "
        "export requests (viewers still see the rows the dashboard shows)",
    )
    share.add_argument(
        "--keep-link",
        action="store_true",
        help="the same link as the last start with --keep-link (kept as a number and a "
        "hash in the data directory; the token itself is derived from your key)",
    )
    share.add_argument(
        "--rotate-link",
        action="store_true",
        help="a new lasting link now: the old one (and every browser signed in with it) "
        "stops working; later --keep-link starts keep the new one",
    )
    share.add_argument(
        "--standby",
        action="store_true",
        help="a second machine with the same key (and a copy of the store): wait while "
        "another process serves this share and take over when it stops",
    )
    share.set_defaults(func=_cmd_share)

    audit = sub.add_parser("audit", help="work with a share's audit log")
    audit_sub = audit.add_subparsers(dest="audit_command", metavar="ACTION", required=True)
    audit_verify = audit_sub.add_parser("verify", help="check the hash chain of an audit log")
    audit_verify.add_argument("file")
    audit_verify.set_defaults(func=_cmd_audit_verify)
    from .owner.commands import add_parsers as add_access_parsers

    add_access_parsers(sub, audit_sub)

    notes = sub.add_parser("notes", help="a share's signed notes")
    notes_sub = notes.add_subparsers(dest="notes_command", metavar="ACTION", required=True)
    notes_export = notes_sub.add_parser(
        "export", help="write a share's notes, with their signatures, as JSON lines"
    )
    notes_export.add_argument("name", help="the share's name")
    notes_export.add_argument("--format", choices=["jsonl"], default="jsonl")
    notes_export.set_defaults(func=_cmd_notes_export)
    notes_verify = notes_sub.add_parser(
        "verify", help="check every signature of an export (no trust in the owner needed)"
    )
    notes_verify.add_argument("file")
    notes_verify.set_defaults(func=_cmd_notes_verify)

    pulling = sub.add_parser(
        "pull",
        help="copy tables a share's owner allows copying into a DuckDB file, and keep it up to date",
    )
    pulling.add_argument("target", help="the share's link or alias")
    pulling.add_argument("--into", required=True, metavar="FILE", help="the DuckDB file to write")
    pulling.add_argument("--tables", metavar="T,...", help="only these (default: all allowed)")
    pulling.add_argument(
        "--cursor",
        action="append",
        default=[],
        metavar="TABLE.COLUMN",
        help="pull TABLE in the order of COLUMN, later only rows past it (default: rowid, "
        "for tables that only grow); repeatable",
    )
    pulling.add_argument(
        "--key",
        action="append",
        default=[],
        metavar="TABLE.COLUMN",
        help="rows with a key already copied replace the old copy; repeatable",
    )
    pulling.add_argument("--full", action="store_true", help="start the tables over")
    pulling.add_argument(
        "--every", metavar="DURATION", help="keep pulling, e.g. every 10m (Ctrl+C stops)"
    )
    pulling.set_defaults(func=_cmd_pull)

    sample = sub.add_parser("sample", help="create a sample store (small sales, or hospital)")
    sample.add_argument("path", nargs="?", help="default sample.duckdb (hospital.duckdb)")
    sample.add_argument("--rows", type=int, default=20_000, help="sales rows (default 20,000)")
    sample.add_argument(
        "--hospital",
        action="store_true",
        help="the demo's synthetic hospital store (~1,000,000 rows in six tables)",
    )
    _scale_option(sample)
    sample.set_defaults(func=_cmd_sample)

    demo = sub.add_parser(
        "demo",
        help="hospital store + relay + share with its dashboard + JupyterLab on the tours",
    )
    demo.add_argument("--dir", default="demo", help="working folder (default ./demo)")
    demo.add_argument("--host", default="127.0.0.1", help="JupyterLab's address (loopback)")
    demo.add_argument("--port", type=int, default=8888, help="JupyterLab's port (default 8888)")
    demo.add_argument(
        "--reset",
        action="store_true",
        help="rebuild the store and replace the notebooks with fresh copies",
    )
    _scale_option(demo)
    demo.add_argument(
        "--no-lab",
        action="store_true",
        help="prepare the folder (store, notebooks) but start nothing",
    )
    demo.set_defaults(func=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from .owner.commands import key_as_value

    parser = build_parser()
    args = parser.parse_args(key_as_value(list(sys.argv[1:] if argv is None else argv)))
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args))
    except P2P2PError as exc:
        print(f"p2p2p: {printable(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
