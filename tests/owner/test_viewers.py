"""A share's viewers list on its own: parsing, the file, refreshing, expiry (no sockets)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from p2p2p.errors import BadViewers
from p2p2p.identity import Identity
from p2p2p.owner.viewers import REFRESH_S, Viewer, ViewerList, parse_duration, parse_viewer

KEY = Identity.generate().public_key_b64
OTHER = Identity.generate().public_key_b64


def test_viewer_entries_parse_or_say_what_is_wrong() -> None:
    cfo = parse_viewer(f"cfo={KEY}")
    assert cfo.name == "cfo" and cfo.tables is None and cfo.expires is None
    consultant = parse_viewer(f"consultant={KEY}:costs_by_department, hr.staff")
    assert consultant.tables == ("costs_by_department", "hr.staff")
    for text, words in (
        ("cfo", "NAME=KEY"),
        ("c f o=" + KEY, "name"),
        ("cfo=abc", "not a public key"),
        (f"cfo={KEY}:costs;drop", "not a table name"),
    ):
        with pytest.raises(BadViewers, match=words):
            parse_viewer(text)


def test_durations() -> None:
    assert parse_duration("7d") == 7 * 86400
    assert parse_duration("1d12h") == 36 * 3600
    assert parse_duration("90m") == 5400
    for bad in ("", "7", "soon", "0d", "-1d"):
        with pytest.raises(BadViewers, match="duration"):
            parse_duration(bad)


def test_the_file_is_private_and_outlives_the_list(tmp_path: Path) -> None:
    path = tmp_path / "viewers.json"
    viewers = ViewerList(path)
    assert not viewers.identified and not viewers.viewers  # no file: stealth mode
    viewers.add([parse_viewer(f"cfo={KEY}")])
    assert path.stat().st_mode & 0o777 == 0o600
    again = ViewerList(path)
    assert again.identified and list(again.viewers) == ["cfo"]
    with pytest.raises(BadViewers, match="already listed as 'cfo'"):
        again.add([parse_viewer(f"auditor={KEY}")])


def test_a_change_on_disk_is_seen_within_the_refresh_interval(tmp_path: Path) -> None:
    path = tmp_path / "viewers.json"
    running = ViewerList(path)
    ViewerList(path).add([parse_viewer(f"cfo={KEY}")])  # another process: `viewers add`
    time.sleep(REFRESH_S)
    assert running.refresh() and running.identified
    assert running.lookup(parse_viewer(f"x={KEY}").key) is not None
    ViewerList(path).remove("cfo")
    time.sleep(REFRESH_S)
    running.refresh()
    assert running.lookup(parse_viewer(f"x={KEY}").key) is None


def test_a_file_made_wrong_closes_the_share_instead_of_serving_an_old_list(tmp_path: Path) -> None:
    path = tmp_path / "viewers.json"
    ViewerList(path).add([parse_viewer(f"cfo={KEY}")])
    data = json.loads(path.read_text())
    data["viewers"].append({"name": "x", "key": "nope"})
    path.write_text(json.dumps(data))
    with pytest.raises(BadViewers, match=rf"{path}.*'x'.*not a public key"):
        ViewerList(path)
    running_path = tmp_path / "running.json"
    running = ViewerList(running_path)
    running.add([parse_viewer(f"cfo={KEY}")])
    running_path.write_text("{ not json")
    time.sleep(REFRESH_S)
    running.refresh()
    assert running.identified and not running.viewers


def test_an_expired_viewer_is_not_found(tmp_path: Path) -> None:
    viewers = ViewerList(tmp_path / "viewers.json")
    soon = Viewer("auditor", parse_viewer(f"a={OTHER}").key, None, expires=time.time() + 60)
    viewers.add([soon])
    assert viewers.lookup(soon.key) is not None
    assert viewers.lookup(soon.key, now=time.time() + 61) is None
    assert viewers.listing(now=time.time() + 61)[0]["expired"] is True
