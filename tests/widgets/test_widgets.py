"""The widgets as a person meets them: what is on screen, what text a terminal shows."""

from __future__ import annotations

import copy
import json
import threading
import time
from collections.abc import Callable, Iterator
from html.parser import HTMLParser
from typing import Any

import ipywidgets as widgets
import numpy as np
import pandas as pd
import pytest

from p2p2p.store.executor import ResultInfo
from p2p2p.widgets import ResultProgress, ResultTable, SharesList, ShareStatus

HOSTILE = "<img src=x onerror=alert(1)>"
LINK = "http://127.0.0.1:8765/s/0123456789abcdef0123456789abcdef/?t=secret-token"


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def html_values(widget: widgets.Widget) -> Iterator[str]:
    """Every HTML string a widget and its children put on screen."""
    if isinstance(widget, widgets.HTML):
        yield widget.value
    for child in getattr(widget, "children", ()):
        yield from html_values(child)


class Elements(HTMLParser):
    """Start tags with their (already unescaped) attributes, as a browser would see them."""

    def __init__(self, markup: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.feed(markup)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def assert_no_markup_injected(widget: widgets.Widget) -> None:
    for markup in html_values(widget):
        assert HOSTILE not in markup
        assert "img" not in [tag for tag, _ in Elements(markup).tags]


def status(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "sales",
        "share_id": "0123456789abcdef0123456789abcdef",
        "link": LINK,
        "path": "/data/stores/sales.duckdb",
        "size_bytes": 1_234_567,
        "snapshot": None,
        "relay": "http://127.0.0.1:8765",
        "relay_embedded": True,
        "relay_state": "connected",
        "listed": False,
        "title": "",
        "started": "2026-11-24T16:39:58Z",
        "viewers_now": 2,
        "queries": 12,
        "bytes_out": 123_456,
        "recent_audit": [
            {
                "time": f"2026-11-24T16:41:0{i}.123+00:00",
                "client": f"client-{i}",
                "channel": "e2e",
                "outcome": "ok" if i % 2 == 0 else "error",
                "rows": i,
                "statement": f"SELECT {i} AS n",
            }
            for i in range(7)
        ],
        "active": True,
    }
    base.update(changes)
    return base


def table(frame: pd.DataFrame, **info: Any) -> ResultTable:
    return ResultTable(frame, ResultInfo(rows=len(frame), seconds=0.0123, **info), "sales")


# --- ResultTable -------------------------------------------------------------------------


def test_paging_moves_the_visible_rows_and_stops_at_the_ends() -> None:
    t = table(pd.DataFrame({"id": range(45)}))
    assert t.visible_frame()["id"].tolist() == list(range(20))
    assert t.page_label.value == "rows 1–20 of 45"
    assert t.prev_button.disabled and not t.next_button.disabled

    t.next_button.click()
    assert t.visible_frame()["id"].tolist() == list(range(20, 40))
    assert t.page_label.value == "rows 21–40 of 45"
    assert "<td>20</td>" in t.table_html.value and "<td>19</td>" not in t.table_html.value
    assert not t.prev_button.disabled and not t.next_button.disabled

    t.next_button.click()
    assert t.visible_frame()["id"].tolist() == list(range(40, 45))
    assert t.page_label.value == "rows 41–45 of 45"
    assert t.next_button.disabled and not t.prev_button.disabled
    t.next_button.click()  # a click on a disabled-looking end changes nothing
    assert t.page == 2

    t.prev_button.click()
    t.prev_button.click()
    assert t.page == 0 and t.prev_button.disabled


def test_sorting_orders_the_whole_frame_with_nulls_last_then_shows_page_one() -> None:
    rng = np.random.default_rng(7)
    values = rng.permutation(100).astype(float)
    values[[3, 50, 97]] = np.nan
    frame = pd.DataFrame({"id": range(100), "v": values})
    t = table(frame)
    t.next_button.click()

    t.sort_column.value = 1  # the "v" column, as a person picks it in the dropdown
    assert t.page == 0
    assert t.visible_frame()["v"].tolist() == sorted(v for v in values if v == v)[:20]
    assert "v ▲" in t.table_html.value

    t.sort_order.value = False
    assert (
        t.visible_frame()["v"].tolist() == sorted((v for v in values if v == v), reverse=True)[:20]
    )
    t.show_page(t.page_count - 1)
    assert t.visible_frame()["v"].isna().tolist()[-3:] == [True, True, True]
    assert t.visible_frame()["id"].tolist()[-3:] == [3, 50, 97]  # stable among the NULLs

    t.sort_by(None)
    assert t.visible_frame()["id"].tolist() == list(range(20))
    assert t.frame is frame  # the DataFrame itself is never reordered


def test_sorting_is_stable_and_copes_with_mixed_objects() -> None:
    frame = pd.DataFrame({"k": [2, 1, 2, 1, None], "o": [[1], "a", 3, {"x": 1}, None]})
    t = table(frame)
    t.sort_by("k", ascending=False)
    assert t.view.index.tolist() == [0, 2, 1, 3, 4]
    t.sort_by("o")
    assert t.view.index.tolist()[-1] == 4


def test_caption_shows_rows_time_and_truncation() -> None:
    info = ResultInfo(rows=1234, seconds=0.0123, truncated=True, truncated_by="max_rows")
    t = ResultTable(pd.DataFrame({"a": range(3)}), info, "sales")
    assert "1,234 rows · 12 ms · sales" in t.caption.value
    assert "TRUNCATED by max_rows (more rows exist)" in t.caption.value
    assert "#b45309" in t.caption.value  # amber
    assert info.describe("sales") == repr(t).splitlines()[0]

    plain = table(pd.DataFrame({"a": [1]}))
    assert "1 row · 12 ms · sales" in plain.caption.value
    assert "TRUNCATED" not in plain.caption.value and "#b45309" not in plain.caption.value


def test_each_column_header_carries_its_dtype() -> None:
    frame = pd.DataFrame(
        {
            "i": [1, 2],
            "f": [1.5, None],
            "s": pd.array(["a", None], dtype="string"),
            "t": pd.Series(["2024-01-01", None], dtype="datetime64[us]"),
            "b": [True, False],
            "nb": [True, None],
        }
    )
    value = table(frame).table_html.value
    for hint in ("int64", "float64", "string", "datetime64[us]", "bool"):
        assert f'<span class="p2p2p-dtype">{hint}</span>' in value
    assert value.count("NULL") == 4  # NaN, <NA>, NaT and None alike


def test_result_table_escapes_cells_column_names_and_source() -> None:
    frame = pd.DataFrame({HOSTILE: [HOSTILE, "ok"], "n": [1, 2]})
    t = ResultTable(frame, ResultInfo(rows=2), HOSTILE)
    assert_no_markup_injected(t)
    assert "&lt;img src=x onerror=alert(1)&gt;" in t.table_html.value
    assert HOSTILE in repr(t)  # text stays text


def test_result_table_text_repr_is_readable_and_deterministic() -> None:
    frame = pd.DataFrame({"id": range(1000), "name": ["x"] * 999 + [None]})
    t1, t2 = table(frame), table(frame)
    text = repr(t1)
    assert text == repr(t2)
    lines = text.splitlines()
    assert lines[0] == "1,000 rows · 12 ms · sales"
    assert lines[1].split() == ["id", "name"]
    assert lines[2].split() == ["0", "x"] and lines[-1].split() == ["999", "NULL"]
    assert "… 980 more rows …" in text and len(lines) == 2 + 20 + 1
    # The notebook's text/plain is the whole of it, not ipywidgets' 110-character cut.
    assert t1._repr_mimebundle_()["text/plain"] == text


def test_result_progress_reports_rows_bytes_and_source() -> None:
    p = ResultProgress(HOSTILE, min_interval_s=0)
    assert repr(p) == f"waiting for the first rows from {HOSTILE}…"
    p.update(120_000, 9_400_000)
    assert repr(p) == f"receiving… 120,000 rows · 9.4 MB from {HOSTILE}"
    assert "receiving… 120,000 rows · 9.4 MB from &lt;img" in p.label.value
    assert_no_markup_injected(p)


# --- ShareStatus --------------------------------------------------------------------------


def test_share_status_shows_link_qr_location_relay_and_counters() -> None:
    snap = {"source": "/data/live.duckdb", "taken": "2026-11-24T16:40:00Z"}
    w = ShareStatus(status(snapshot=snap))
    header, body = w.header.value, w.details.value
    assert "sales" in header and ">live<" in header
    assert f'value="{LINK.replace("&", "&amp;")}"' in body and "readonly" in body
    assert "<svg" in w.qr.value and 'width="140"' in w.qr.value
    assert "this machine · /data/stores/sales.duckdb · 1.2 MB" in body
    assert "snapshot of /data/live.duckdb taken 2026-11-24T16:40:00Z" in body
    assert "http://127.0.0.1:8765 (embedded, on this machine)" in body
    for number, label in (
        ("2", "viewers now"),
        ("12", "queries served"),
        ("123.5 kB", "bytes out"),
    ):
        assert f">{number}</div>" in body and label in body


def test_share_status_lists_recent_queries_newest_first() -> None:
    long_sql = "SELECT " + ", ".join(f"column_{i}" for i in range(40)) + " FROM t"
    audit = status()["recent_audit"]
    audit[6]["statement"] = long_sql
    w = ShareStatus(status(recent_audit=audit))
    rows = w.audit.value.split("<tr>")[2:]
    assert len(rows) == 7
    assert ">16:41:06<" in rows[0] and ">16:41:00<" in rows[-1]
    assert ">client-6<" in rows[0] and ">error<" in rows[1] and ">ok<" in rows[0]
    shown = long_sql[:79] + "…"
    assert f">{shown}<" in rows[0] and f'title="{long_sql}"' in rows[0]

    text = repr(w).splitlines()
    recent = text[text.index("  recent queries, newest first:") + 1 :]
    assert len(recent) == 5
    assert recent[0].split()[:4] == ["16:41:06", "client-6", "ok", "6"]
    assert recent[0].endswith(shown)
    assert recent[4].split()[:2] == ["16:41:02", "client-2"]


@pytest.mark.parametrize(
    ("changes", "badge"),
    [
        ({}, "live"),
        ({"relay_state": "reconnecting"}, "reconnecting…"),
        ({"relay_state": "connecting"}, "connecting…"),
        ({"relay_state": "refused"}, "refused"),
        ({"active": False}, "stopped"),
    ],
)
def test_share_status_badge_follows_the_relay_state(changes: dict[str, Any], badge: str) -> None:
    w = ShareStatus(status(**changes))
    assert f">{badge}</span>" in w.header.value
    assert repr(w).splitlines()[0] == f"share sales · {badge}"


def test_share_status_text_repr_is_readable_and_deterministic() -> None:
    text = repr(ShareStatus(status()))
    assert text == repr(ShareStatus(status()))
    assert text.splitlines()[:5] == [
        "share sales · live",
        f"  link      {LINK}",
        "  data      this machine · /data/stores/sales.duckdb · 1.2 MB",
        "  relay     http://127.0.0.1:8765 (embedded, on this machine)",
        "  activity  2 viewers now · 12 queries served · 123.5 kB out",
    ]
    assert ShareStatus(status())._repr_mimebundle_()["text/plain"] == text
    assert "no queries yet" in repr(ShareStatus(status(recent_audit=[])))


def test_share_status_escapes_names_clients_statements_and_the_link() -> None:
    hostile_link = 'http://h/s/x/?t="><img src=x onerror=alert(1)>'
    entry = {
        "time": HOSTILE,
        "client": HOSTILE,
        "channel": HOSTILE,
        "outcome": HOSTILE,
        "rows": 1,
        "statement": f"SELECT '{HOSTILE}'",
    }
    w = ShareStatus(
        status(
            name=HOSTILE,
            title=HOSTILE,
            path=HOSTILE,
            relay=HOSTILE,
            link=hostile_link,
            snapshot={"source": HOSTILE, "taken": HOSTILE},
            recent_audit=[entry],
        ),
        stop=lambda: None,
    )
    assert_no_markup_injected(w)
    # The link survives intact where it is used: as the field's text, and as a JavaScript
    # string for the Copy button once the browser has decoded the attribute.
    tags = dict(Elements(w.details.value).tags)
    assert tags["input"]["value"] == hostile_link
    assert json.dumps(hostile_link) in (tags["button"]["onclick"] or "")


def test_stop_calls_back_once_and_disables_the_controls() -> None:
    calls: list[int] = []
    w = ShareStatus(status(), stop=lambda: calls.append(1))
    assert not w.stop_button.disabled
    assert ("button", "disabled") not in _button_flags(w)
    w.stop_button.click()
    w.stop_button.click()
    assert calls == [1]
    assert w.stop_button.disabled
    assert ("button", "disabled") in _button_flags(w)
    assert ">stopped</span>" in w.header.value
    assert repr(w).startswith("share sales · stopped")
    w.update(status())  # a stale status from before the stop does not revive the card
    assert ">stopped</span>" in w.header.value and w.stop_button.disabled


def _button_flags(w: ShareStatus) -> list[tuple[str, str]]:
    return [
        (tag, name)
        for tag, attrs in Elements(w.details.value).tags
        for name in attrs
        if tag == "button"
    ]


def test_a_failed_stop_says_why_and_can_be_retried() -> None:
    attempts: list[int] = []

    def stop() -> None:
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("relay unreachable")

    w = ShareStatus(status(), stop=stop)
    w.stop_button.click()
    assert "could not stop: RuntimeError: relay unreachable" in w.message.value
    assert not w.stop_button.disabled
    w.stop_button.click()
    assert attempts == [1, 1] and w.stop_button.disabled and w.message.value == ""


class Source:
    """A refresh callback whose answer the test changes, counting its calls."""

    def __init__(self) -> None:
        self.current: dict[str, Any] | None = status()
        self.error: Exception | None = None
        self.calls = 0
        self.lock = threading.Lock()

    def __call__(self) -> dict[str, Any] | None:
        with self.lock:
            self.calls += 1
            if self.error is not None:
                raise self.error
            return copy.deepcopy(self.current)


def test_refresh_picks_up_changes_and_ends_when_refresh_returns_none() -> None:
    source = Source()
    w = ShareStatus(status(), refresh=source, interval_s=0.02)
    assert w.updating
    with source.lock:
        assert source.current is not None
        source.current["queries"] = 99
    assert wait_for(lambda: ">99</div>" in w.details.value)
    assert "99 queries served" in repr(w)
    with source.lock:
        source.current = None
    assert wait_for(lambda: not w.updating)
    calls = source.calls
    time.sleep(0.1)
    assert source.calls == calls  # ended, not spinning
    w.close()


def test_refresh_ends_on_close_on_stop_on_error_and_when_the_share_stops() -> None:
    closed = ShareStatus(status(), refresh=Source(), interval_s=0.02)
    closed.close()
    assert wait_for(lambda: not closed.updating)

    stopped = ShareStatus(status(), refresh=Source(), stop=lambda: None, interval_s=0.02)
    stopped.stop_button.click()
    assert wait_for(lambda: not stopped.updating)
    assert ">stopped</span>" in stopped.header.value

    failing = Source()
    failing.error = ConnectionError("owner went away")
    errored = ShareStatus(status(), refresh=failing, interval_s=0.02)
    assert wait_for(lambda: not errored.updating)
    assert "live updates ended: ConnectionError: owner went away" in errored.message.value

    ending = Source()
    assert ending.current is not None
    ending.current["active"] = False
    ended = ShareStatus(status(), refresh=ending, interval_s=0.02)
    assert wait_for(lambda: not ended.updating)
    assert ">stopped</span>" in ended.header.value and ending.calls == 1


# --- SharesList ---------------------------------------------------------------------------


def test_shares_list_when_empty() -> None:
    w = SharesList([])
    assert "no active shares" in w.value
    assert repr(w) == "no active shares"


def test_shares_list_shows_each_share_with_a_shortened_link() -> None:
    shares = [
        status(),
        status(name="inventory", relay_state="reconnecting", queries=1234, viewers_now=0),
    ]
    w = SharesList(shares)
    assert ">sales<" in w.value and ">inventory<" in w.value
    assert ">live</span>" in w.value and ">reconnecting…</span>" in w.value
    links = [attrs for tag, attrs in Elements(w.value).tags if tag == "a"]
    assert [a["title"] for a in links] == [LINK, LINK]
    assert f">{LINK[:39]}…</a>" in w.value

    text = repr(w)
    assert text == repr(SharesList(shares))
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["name", "state", "relay"]
    assert lines[2].split()[:6] == [
        "inventory",
        "reconnecting…",
        "http://127.0.0.1:8765",
        "1,234",
        "0",
        "123.5",
    ]
    # Columns line up: each link starts at the same place on every line.
    starts = {lines[0].index("link")} | {line.index(LINK) for line in lines[1:]}
    assert len(starts) == 1
    assert lines[1].endswith(LINK)


def test_shares_list_escapes_names_and_refuses_script_links() -> None:
    w = SharesList([status(name=HOSTILE, relay=HOSTILE, link="javascript:alert(1)")])
    assert_no_markup_injected(w)
    assert "href" not in w.value
