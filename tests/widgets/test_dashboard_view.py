"""The generic dashboard's widgets, on a real store, without a browser."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pytest

from p2p2p.client import LocalStore, current_share
from p2p2p.dashboards.view import Dashboard
from p2p2p.errors import BadTarget, ShareOffline

HOSTILE = "<img src=x onerror=alert(1)>"


class StoreLikeALink:
    """A local store with the few extras a share link gives the dashboard."""

    def __init__(self, path: str) -> None:
        self.local = LocalStore(path, as_viewer=True)
        self.owner_key = bytes(32)
        self.online = True
        self.link = type("Link", (), {"share_id": "a" * 32})()
        self.sent: list[tuple[dict[str, Any], str | None]] = []
        self.asked: list[str] = []

    def notes_since(self, after: int = 0, wait_s: float = 0) -> tuple[list[Any], int]:
        return [], 0

    def send_note(
        self, note: dict[str, Any], key_holder: str | None = None, work: str | None = None
    ) -> dict[str, Any]:
        self.sent.append((note, key_holder))
        return note

    @property
    def last_info(self) -> Any:
        return self.local.last_info

    def info(self) -> dict[str, Any]:
        if not self.online:
            raise ShareOffline("the owner stopped sharing")
        return {"name": HOSTILE, "title": ""}

    def schema(self) -> dict[str, Any]:
        return self.local.schema()

    def query(self, sql: str, params: Any = None, **limits: Any) -> Any:
        if not self.online:
            raise ShareOffline("the owner stopped sharing")
        return self.local.query(sql, params, **limits)

    def export_arrow(self, sql: str, params: Any = None, **limits: Any) -> Any:
        return self.query_arrow(sql, params, **limits)

    def query_arrow(self, sql: str, params: Any = None, **limits: Any) -> Any:
        if not self.online:
            raise ShareOffline("the owner stopped sharing")
        self.asked.append(sql)
        return self.local.query_arrow(sql, params, **limits)


@pytest.fixture()
def hostile_store(tmp_path: Path) -> str:
    path = str(tmp_path / "odd.duckdb")
    con = duckdb.connect(path)
    con.execute(
        f'CREATE TABLE "{HOSTILE}" AS SELECT i, \'{HOSTILE}\' AS "{HOSTILE}", '
        "['a', 'b', 'b', 'c'][1 + i % 4] AS grp FROM range(40) t(i)"
    )
    con.close()
    return path


def all_html(widget: Any) -> str:
    parts = [str(getattr(widget, "value", ""))]
    for child in getattr(widget, "children", ()):
        parts.append(all_html(child))
    return "\n".join(parts)


def test_names_and_values_from_the_store_travel_as_data(hostile_store: str) -> None:
    store = StoreLikeALink(hostile_store)
    board = Dashboard(store, live_notes=False)  # type: ignore[arg-type]
    try:
        page = all_html(board)  # what the kernel renders as HTML itself: escaped
        assert HOSTILE not in page and "&lt;img src=x" in page
        explorer = board.explorer
        # Names and values go to the page as data, which draws them as text.
        assert [t["name"] for t in explorer.tables] == [HOSTILE]
        assert explorer.data["columns"][1]["name"] == HOSTILE
        assert explorer.data["rows"][0] == ["0", HOSTILE, "a"] and explorer.data["total"] == 40
        assert [f["column"] for f in explorer.facets] == ["grp"]  # a few groups: a facet
        assert {v["value"]: v["n"] for v in explorer.facets[0]["values"]} == {
            "a": 10, "b": 20, "c": 10,
        }  # fmt: skip
    finally:
        board.close()


def test_the_sql_box_shows_results_and_the_owners_reason(hostile_store: str) -> None:
    store = StoreLikeALink(hostile_store)
    board = Dashboard(store, live_notes=False)  # type: ignore[arg-type]
    try:
        board.sql.value = "SELECT count(*) AS n FROM range(7)"
        board.run_sql()
        assert "7" in all_html(board.sql_result)
        board.sql.value = "SELECT * FROM read_csv('/etc/passwd')"
        board.run_sql()
        shown = all_html(board.sql_result)
        assert "Not run" in shown and "root:" not in shown
        store.online = False
        board.sql.value = "SELECT 1"
        board.run_sql()
        assert "offline" in board.status.value and board.run_button.disabled
    finally:
        board.close()


def test_the_page_cannot_set_the_explorers_state(hostile_store: str) -> None:
    """Voila passes a page's widget updates to the kernel: a viewer could send one for
    the export cap, the formats offered, or the rows a note names."""
    from p2p2p.widgets.explorer import EXPORT_ROWS, TableExplorer

    store = StoreLikeALink(hostile_store)
    explorer = TableExplorer(store, exports=False, on_annotate=lambda t, r: None)
    rows = list(explorer.data["rows"])
    explorer.set_state(
        {"export_rows": 10**9, "exports": ["csv"], "data": {"rows": [["forged"]]}, "view": {}}
    )
    assert explorer.export_rows == EXPORT_ROWS and explorer.exports == []
    assert explorer.data["rows"] == rows and explorer.view["table"] == HOSTILE
    explorer._asked(None, {"do": "export", "format": "xml"}, [])
    assert "export as one of" in explorer.error
    explorer._asked(None, {"do": "view", "view": {**explorer.view, "filters": [{}] * 10_000}}, [])
    assert "at most 8 filters" in explorer.error
    explorer.close()


def test_an_export_is_the_whole_view_up_to_the_cap(hostile_store: str) -> None:
    import csv
    import io

    from p2p2p.widgets.explorer import TableExplorer

    store = StoreLikeALink(hostile_store)
    explorer = TableExplorer(store)
    sent: list[tuple[dict[str, Any], list[bytes]]] = []
    explorer.send = lambda content, buffers=None: sent.append((content, list(buffers or [])))
    view = {**explorer.view, "filters": [{"column": "grp", "op": "exact", "value": "b"}]}
    explorer._asked(None, {"do": "view", "view": {**view, "sort": "i", "descending": True}}, [])
    body = explorer.export("csv")
    rows = list(csv.reader(io.StringIO(body.decode())))
    # Every page of the view, in its order: the 20 "b" rows, highest i first.
    assert [int(r[0]) for r in rows[1:]] == sorted(
        (i for i in range(40) if i % 4 in (1, 2)), reverse=True
    )
    assert b"".join(b for _, buffers in sent for b in buffers) == body
    assert sent[-1][0]["name"] == "img_src_x_onerror_alert_1.csv"  # a safe file name
    assert "Exported 20 rows" in explorer.notice
    assert any("GROUP BY" not in sql and "ORDER BY" in sql for sql in store.asked)
    # Past the cap: the first rows only, and the page says so.
    explorer.export_rows = 5
    rows = list(csv.reader(io.StringIO(explorer.export("csv").decode())))
    assert len(rows) == 1 + 5 and "the cap was reached" in explorer.notice
    explorer.close()


def test_a_page_gets_a_few_exports_a_minute(hostile_store: str) -> None:
    from p2p2p.widgets import explorer as module

    store = StoreLikeALink(hostile_store)
    explorer = module.TableExplorer(store)
    explorer.send = lambda content, buffers=None: None
    for _ in range(module.EXPORTS_PER_MINUTE):
        explorer._asked(None, {"do": "export", "format": "csv"}, [])
    assert explorer.error == ""
    asked = len(store.asked)
    explorer._asked(None, {"do": "export", "format": "csv"}, [])
    assert "exports a minute" in explorer.error and "try again in" in explorer.error
    assert len(store.asked) == asked  # refused before the owner was asked
    explorer._exported = [t - 61 for t in explorer._exported]  # a minute on
    explorer._asked(None, {"do": "export", "format": "csv"}, [])
    assert "Exported" in explorer.notice and explorer.error == ""
    explorer.close()


def test_current_share_outside_a_dashboard_says_where_it_works(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("P2P2P_SHARE_LINK", raising=False)
    with pytest.raises(BadTarget, match="inside a share's dashboard"):
        current_share()


def test_annotate_this_row_and_the_fallback_without_browser_signing(hostile_store: str) -> None:
    from p2p2p.protocol import notes

    store = StoreLikeALink(hostile_store)
    board = Dashboard(store, live_notes=False)  # type: ignore[arg-type]
    try:
        board.explorer._asked(None, {"do": "annotate", "row": 3}, [])  # the ✎ of row 4
        assert "row i=3" in board.notes.message.value
        board.notes.signer.error = "Ed25519 is not supported"  # a browser without it
        board.notes.name.value = "Auditor"
        board.notes.post("this row looks wrong")
        note, via = store.sent[-1]
        notes.verify(note)  # signed, by the key the dashboard held for this visit
        assert via == "visit"  # a code the owner knows, never free text
        assert "dashboard held" in notes.KEY_HOLDERS[via]
        assert note["target"]["kind"] == "row" and note["target"]["row"]["i"] == 3
        assert note["name"] == "Auditor"
    finally:
        board.close()


def test_a_dashboard_page_carries_its_first_view_for_the_page_to_draw_at_once(
    hostile_store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """dashboards.preview: the header and the explorer's first page ride in the output,
    but only in a share's dashboard kernel (a saved notebook keeps no extra copy)."""
    from p2p2p.client import SHARE_LINK_ENV
    from p2p2p.dashboards.preview import MIME

    store = StoreLikeALink(hostile_store)
    board = Dashboard(store, live_notes=False)  # type: ignore[arg-type]
    try:
        monkeypatch.delenv(SHARE_LINK_ENV, raising=False)
        assert MIME not in board._repr_mimebundle_()
        monkeypatch.setenv(SHARE_LINK_ENV, "http://127.0.0.1:1/s/x#t")
        bundle = board._repr_mimebundle_()
        assert "application/vnd.jupyter.widget-view+json" in bundle  # still the live widget
        header, explorer = bundle[MIME]["parts"]
        assert header == {"kind": "html", "html": board.header.value}
        state = explorer["state"]
        assert explorer["kind"] == "explorer"
        assert state["data"]["rows"] == board.explorer.data["rows"]
        assert state["view"] == board.explorer.view and state["facets"] == board.explorer.facets
        # The explorer on its own (an owner's dashboard shows it in a cell) carries it too.
        data, _metadata = board.explorer._repr_mimebundle_()
        assert data[MIME]["parts"] == [explorer]
    finally:
        board.close()
