"""The owner's access commands: ``p2p2p viewers …`` and ``p2p2p audit show``.

They work on the files in the owner's data directory, so they act on a share whether or
not it is running: a running share reads its viewers file again within
``viewers.REFRESH_S``, so ``viewers remove`` cuts that viewer's answers in flight.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import time
from collections.abc import Sequence
from typing import Any

from ..errors import BadViewers, P2P2PError
from ..identity import Identity
from ..paths import data_dir
from ..protocol.shareid import check_name, share_id
from .audit import asked_by
from .viewers import (
    Invite,
    Viewer,
    ViewerList,
    check_key,
    check_tables,
    check_viewer_name,
    parse_duration,
    viewers_path,
)

__all__ = [
    "add_parsers",
    "apply_expiry",
    "audit_rows",
    "key_as_value",
    "own_share_id",
    "viewers_command",
]


def own_share_id(name: str) -> str:
    """The id of this user's share ``name``: its files in the data directory bear it."""
    identity, _ = Identity.load_or_create()
    return share_id(identity.public_key, check_name(name))


def _viewer_list(share: str) -> tuple[str, ViewerList]:
    sid = own_share_id(share)
    return sid, ViewerList(viewers_path(data_dir(), sid))


def _when(stamp: float | None) -> str:
    if stamp is None:
        return "never"
    return datetime.datetime.fromtimestamp(stamp, datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")


def apply_expiry(viewers: list[Viewer], expiries: list[str], now: float) -> list[Viewer]:
    """``--viewer-expires NAME=DURATION`` applied to the ``--viewer`` entries it names."""
    by_name = {v.name: v for v in viewers}
    for text in expiries:
        name, sep, duration = text.partition("=")
        if not sep:
            raise BadViewers(
                f"--viewer-expires needs NAME=DURATION (like auditor=7d), got {text!r}"
            )
        if name not in by_name:
            raise BadViewers(f"--viewer-expires {name}: no --viewer named {name!r} was given")
        by_name[name] = dataclasses.replace(by_name[name], expires=now + parse_duration(duration))
    return list(by_name.values())


def _cmd_add(args: argparse.Namespace) -> int:
    _sid, viewers = _viewer_list(args.share)
    was_identified = viewers.identified
    now = time.time()
    viewer = Viewer(
        name=check_viewer_name(args.name),
        key=check_key(args.key, f"{args.name}: "),
        tables=check_tables(args.tables) if args.tables else None,
        expires=now + parse_duration(args.expires) if args.expires else None,
        added=now,
    )
    viewers.add([viewer])
    reach = ", ".join(viewer.tables) if viewer.tables is not None else "every table"
    until = f"until {_when(viewer.expires)}" if viewer.expires else "with no end date"
    print(f"{viewer.name} (key {viewer.fingerprint}) may read {reach} of {args.share!r}, {until}.")
    if not was_identified:
        print(
            f"{args.share!r} is now open to listed viewers only: the link alone no longer "
            "opens it (a running share takes this within a moment)."
        )
    return 0


def _cmd_remove(args: argparse.Namespace) -> int:
    _sid, viewers = _viewer_list(args.share)
    viewer = viewers.remove(args.name)
    print(
        f"{viewer.name} (key {viewer.fingerprint}) removed from {args.share!r}; a running "
        "share cuts their answers in flight within a moment."
    )
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    _sid, viewers = _viewer_list(args.share)
    listing = viewers.listing()
    if args.json:
        print(json.dumps({"identified": viewers.identified, "viewers": listing}))
        return 0
    mode = "identified: listed viewers only" if viewers.identified else "stealth: the link opens it"
    print(f"{args.share}  ({mode})")
    if not listing:
        print("  no viewers listed")
        return 0
    rows = [
        (
            v["name"],
            v["fingerprint"],
            ", ".join(v["tables"]) if v["tables"] is not None else "every table",
            ("expired " if v["expired"] else "") + _when(v["expires"]),
            v.get("via") or "listed by you",
        )
        for v in listing
    ]
    _print_table(("viewer", "key", "may read", "until", "how"), rows)
    return 0


def _cmd_invite(args: argparse.Namespace) -> int:
    _sid, viewers = _viewer_list(args.share)
    if not viewers.url:
        raise BadViewers(
            f"share {args.share!r} has not run on this machine yet: start it once, then invite "
            "(the invite link names its relay)"
        )
    now = time.time()
    invite = Invite(
        name=check_viewer_name(args.name),
        valid_until=now + parse_duration(args.expires),
        tables=check_tables(args.tables) if args.tables else None,
        access_s=parse_duration(args.access) if args.access else None,
    )
    was_identified = viewers.identified
    code = viewers.invite(invite)
    link = f"{viewers.url}?i={code}"
    if args.json:
        print(json.dumps({"invite": link, "name": invite.name, "valid_until": invite.valid_until}))
        return 0
    reach = ", ".join(invite.tables) if invite.tables is not None else "every table"
    print(f"One-time invite for {invite.name!r} to read {reach} of {args.share!r}:\n  {link}")
    print(
        f"It works once, until {_when(invite.valid_until)}, for whoever opens it first: send "
        "it to them only. They run p2p2p.connect(invite) (or %p2p connect INVITE as ALIAS), "
        "which lists their key and gives them the share's link."
    )
    if not was_identified:
        print(f"{args.share!r} is now open to listed viewers only.")
    return 0


def _cmd_mode(args: argparse.Namespace) -> int:
    _sid, viewers = _viewer_list(args.share)
    viewers.require_key(args.mode == "identified")
    what = "listed viewers only" if viewers.identified else "anyone with the link"
    print(f"{args.share!r} is now open to {what}.")
    return 0


def audit_rows(entries: list[dict[str, Any]], viewer: str | None = None) -> list[tuple[str, ...]]:
    """The audit log as table rows: time, who, channel, outcome, rows, statement."""
    rows: list[tuple[str, ...]] = []
    for entry in entries:
        if viewer is not None and entry.get("viewer") != viewer:
            continue
        statement = " ".join(str(entry.get("statement", "")).split())
        rows.append(
            (
                str(entry.get("time", ""))[:19].replace("T", " "),
                asked_by(entry),
                str(entry.get("channel", "")),
                str(entry.get("outcome", "")),
                str(entry.get("rows", "")),
                statement[:60] + ("…" if len(statement) > 60 else ""),
            )
        )
    return rows


def _cmd_audit_show(args: argparse.Namespace) -> int:
    path = data_dir() / "audit" / f"{own_share_id(args.share)}.jsonl"
    if not path.is_file():
        raise P2P2PError(f"no audit log for a share named {args.share!r} on this machine")
    entries = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    rows = audit_rows(entries, args.viewer)[-args.last :]
    if not rows:
        print("no entries" + (f" for viewer {args.viewer!r}" if args.viewer else ""))
        return 0
    _print_table(("time (UTC)", "who", "via", "outcome", "rows", "statement"), rows)
    return 0


def _print_table(head: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> None:
    widths = [max(len(head[i]), *(len(r[i]) for r in rows)) for i in range(len(head))]
    print("  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)).rstrip())
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def add_parsers(sub: Any, audit_sub: Any) -> None:
    """Register ``viewers`` under the CLI's subcommands and ``show`` under ``audit``."""
    viewers = sub.add_parser("viewers", help="who may see a share (identified mode)")
    actions = viewers.add_subparsers(dest="viewers_command", metavar="ACTION", required=True)
    add = actions.add_parser(
        "add", help="let a key read the share (puts it in identified mode); works while it runs"
    )
    add.add_argument("share", help="the share's name")
    add.add_argument("name", help="what to call this viewer (in the audit log too)")
    add.add_argument("key", help="their public key, as `p2p2p keys` prints it")
    add.add_argument("--tables", metavar="T,...", help="only these tables/views (default: all)")
    add.add_argument("--expires", metavar="DURATION", help="access ends after this (7d, 36h, …)")
    add.set_defaults(func=_cmd_add)
    remove = actions.add_parser("remove", help="take a viewer out; cuts their answers in flight")
    remove.add_argument("share")
    remove.add_argument("name")
    remove.set_defaults(func=_cmd_remove)
    listing = actions.add_parser("list", help="the share's viewers and its mode")
    listing.add_argument("share")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=_cmd_list)
    invite = actions.add_parser(
        "invite", help="a one-time invite link that lists whoever redeems it as this viewer"
    )
    invite.add_argument("share")
    invite.add_argument("name", help="the viewer's name once enrolled")
    invite.add_argument("--tables", metavar="T,...", help="only these tables/views (default: all)")
    invite.add_argument(
        "--expires", default="2d", metavar="DURATION", help="the invite works this long (2d)"
    )
    invite.add_argument(
        "--access", metavar="DURATION", help="the viewer's access then lasts this long (no end)"
    )
    invite.add_argument("--json", action="store_true")
    invite.set_defaults(func=_cmd_invite)
    mode = actions.add_parser("mode", help="identified (listed keys only) or stealth (the link)")
    mode.add_argument("share")
    mode.add_argument("mode", choices=["identified", "stealth"])
    mode.set_defaults(func=_cmd_mode)

    show = audit_sub.add_parser("show", help="a share's audit log as a readable table")
    show.add_argument("share", help="the share's name")
    show.add_argument("--viewer", help="only this viewer's entries")
    show.add_argument("--last", type=int, default=50, metavar="N", help="newest N (default 50)")
    show.set_defaults(func=_cmd_audit_show)


def key_as_value(argv: list[str]) -> list[str]:
    """``viewers add SHARE NAME KEY …`` with KEY moved behind ``--``: a base64url key may
    start with ``-``, which argparse would read as an option."""
    if argv[:2] != ["viewers", "add"]:
        return argv
    # A key is 43 characters; no option of ours is that long.
    keys = [i for i, word in enumerate(argv) if i >= 4 and word.startswith("-") and len(word) == 43]
    if len(keys) != 1:
        return argv
    return [*argv[: keys[0]], *argv[keys[0] + 1 :], "--", argv[keys[0]]]


def viewers_command(argv: list[str]) -> int:
    """``p2p2p viewers ARGV`` run in this process (``%p2p viewers`` in a notebook)."""
    parser = argparse.ArgumentParser(prog="%p2p", exit_on_error=False)
    sub = parser.add_subparsers(dest="command", metavar="viewers", required=True)
    add_parsers(sub, argparse.ArgumentParser().add_subparsers())
    try:
        args = parser.parse_args(key_as_value(["viewers", *argv]))
    except (argparse.ArgumentError, SystemExit):
        raise BadViewers(
            "usage: %p2p viewers add SHARE NAME KEY [--tables T,...] [--expires 7d] | "
            "invite SHARE NAME [--tables T,...] [--expires 2d] | remove SHARE NAME | "
            "list SHARE | mode SHARE identified|stealth"
        ) from None
    return int(args.func(args))
