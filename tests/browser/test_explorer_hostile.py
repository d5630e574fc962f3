"""The table explorer attacked by a viewer holding a valid link, against real processes.

A real relay, real owners (one stealth share, one identified share with a viewer granted
one table and downloads off), Voila and Chromium. The viewer's weapon is the kernel
websocket its own page opened: Voila runs widget callbacks for anyone with the link and
lets the page write any widget message, so this module opens a websocket of its own to
the page's kernel (the page's cookies, the share's origin, Jupyter's v1 protocol) and
sends the explorer what no button would: custom ``{"do": …}`` messages with hostile
fields, ``update`` messages for every synced trait, floods. What counts is what the
owner's machine does: its audit log (what reached the store), what comes back to the
page, and how big its processes grow.
"""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from ..helpers.browser import chromium
from ..helpers.sharing import Relay, Share, cli, descendants

pytestmark = pytest.mark.timeout(600)

V1 = "v1.kernel.websocket.jupyter.org"
SECRET = "hunter2"
HOSTILE_HTML = "<img src=x onerror=\"document.title='pwned'\">"
WEIRD = 'we"ird; col'  # a column name that needs its quotes doubled


# -- the store --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = str(tmp_path_factory.mktemp("hostile-store") / "clinic.duckdb")
    con = duckdb.connect(path)
    con.execute(
        f"""CREATE TABLE people AS SELECT
            i::INTEGER AS person_id,
            CASE WHEN i = 7 THEN '{SECRET} fan' ELSE 'name ' || i END AS name,
            DATE '2020-01-01' + i::INTEGER AS joined,
            i / 7.0 AS score,
            ['a', 'b', 'c'][1 + i % 3] AS team,
            'w' AS "{WEIRD.replace('"', '""')}"
        FROM range(300) t(i)"""
    )
    con.execute(f"CREATE TABLE secrets AS SELECT '{SECRET}' AS code")
    con.execute("CREATE TABLE big AS SELECT i, 'row ' || i AS t FROM range(150000) t(i)")
    con.close()
    return path


def local(store: str, sql: str) -> list[tuple[Any, ...]]:
    con = duckdb.connect(store, read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


# -- a kernel websocket of the viewer's own -----------------------------------------------
def _v1(channel: str, parts: list[bytes]) -> bytes:
    name = channel.encode()
    offsets = [8 * (1 + 1 + len(parts) + 1)]
    offsets.append(offsets[-1] + len(name))
    for part in parts:
        offsets.append(offsets[-1] + len(part))
    head = len(offsets).to_bytes(8, "little") + b"".join(o.to_bytes(8, "little") for o in offsets)
    return head + name + b"".join(parts)


def _from_v1(frame: bytes) -> tuple[dict[str, Any], list[bytes]]:
    count = int.from_bytes(frame[:8], "little")
    offsets = [int.from_bytes(frame[8 * (i + 1) : 8 * (i + 2)], "little") for i in range(count)]
    parts = [frame[offsets[i] : offsets[i + 1]] for i in range(1, count - 1)]
    header, parent, _metadata, content = (json.loads(p) for p in parts[:4])
    channel = frame[offsets[0] : offsets[1]].decode()
    return {"header": header, "parent": parent, "content": content, "channel": channel}, parts[4:]


class Kernel:
    """The page's kernel, through a websocket this test opens with the page's cookies:
    everything a script in the page could send, with none of the page's own checks."""

    def __init__(self, ws_url: str, cookies: list[dict[str, Any]], origin: str) -> None:
        import websocket

        parts = urllib.parse.urlsplit(ws_url)
        direct = f"ws://127.0.0.1:{parts.port}{parts.path}?session_id={uuid.uuid4()}"
        self.ws = websocket.create_connection(
            direct,
            timeout=30,
            host=parts.netloc,
            origin=origin,
            subprotocols=[V1],
            cookie="; ".join(f"{c['name']}={c['value']}" for c in cookies),
        )
        self.session = uuid.uuid4().hex
        self.states: dict[str, dict[str, Any]] = {}
        self.files: list[tuple[dict[str, Any], list[bytes]]] = []
        self.comm = ""
        self.comm = self._find_explorer()

    @property
    def state(self) -> dict[str, Any]:
        return self.states[self.comm]

    def send(self, msg_type: str, content: dict[str, Any], channel: str = "shell") -> str:
        msg_id = uuid.uuid4().hex
        header = {
            "msg_id": msg_id,
            "msg_type": msg_type,
            "session": self.session,
            "username": "mallory",
            "version": "5.3",
            "date": "2025-01-01T00:00:00Z",
        }
        parts = [json.dumps(x).encode() for x in (header, {}, {}, content)]
        self.ws.send_binary(_v1(channel, parts))
        return msg_id

    def read(self, timeout: float) -> dict[str, Any]:
        self.ws.settimeout(max(timeout, 0.01))
        while True:
            opcode, frame = self.ws.recv_data()
            if opcode == 8:
                raise ConnectionError("the kernel websocket was closed")
            if opcode == 2:
                break
        msg, buffers = _from_v1(frame)
        content = msg["content"]
        if msg["header"].get("msg_type") == "comm_msg":
            data = content.get("data", {})
            if data.get("method") == "update":
                self.states.setdefault(content["comm_id"], {}).update(data.get("state", {}))
            elif data.get("method") == "custom" and content["comm_id"] == self.comm:
                self.files.append((data.get("content", {}), buffers))
        return msg

    def call(self, msg_type: str, content: dict[str, Any], timeout: float = 60) -> list[Any]:
        """Send, then read until the kernel is idle again after this very message."""
        msg_id = self.send(msg_type, content)
        deadline = time.monotonic() + timeout
        seen = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no answer to {msg_type} within {timeout} s")
            msg = self.read(left)
            seen.append(msg)
            if (
                msg["header"].get("msg_type") == "status"
                and msg["parent"].get("msg_id") == msg_id
                and msg["content"].get("execution_state") == "idle"
            ):
                return seen

    def comm_msg(self, data: dict[str, Any], timeout: float = 60) -> None:
        self.call("comm_msg", {"comm_id": self.comm, "data": data}, timeout)

    def ask(self, content: Any, timeout: float = 60) -> dict[str, Any]:
        """A custom message to the explorer, as its page's ``model.send`` would."""
        self.comm_msg({"method": "custom", "content": content}, timeout)
        return self.state

    def address(self, query: str) -> dict[str, Any]:
        return self.ask({"do": "address", "query": query})

    def view(self, **fields: Any) -> dict[str, Any]:
        return self.ask({"do": "view", "view": {"table": "people", **fields}})

    def refresh(self) -> dict[str, Any]:
        """The explorer's state as the kernel holds it (``request_state``)."""
        self.comm_msg({"method": "request_state"})
        return self.state

    def _find_explorer(self) -> str:
        msg_id = self.send("comm_info_request", {"target_name": "jupyter.widget"})
        deadline = time.monotonic() + 60
        while True:
            msg = self.read(deadline - time.monotonic())
            reply = msg["header"].get("msg_type") == "comm_info_reply"
            if reply and msg["parent"].get("msg_id") == msg_id:
                break
        for comm in msg["content"]["comms"]:
            self.call("comm_msg", {"comm_id": comm, "data": {"method": "request_state"}})
        for comm, state in self.states.items():
            if state.get("_anywidget_id") == "p2p2p.widgets.explorer.TableExplorer":
                return comm
        raise AssertionError("no table explorer among the page's widgets")

    def close(self) -> None:
        self.ws.close()


# -- the owner's side ---------------------------------------------------------------------
def audit_log(home: Path) -> list[dict[str, Any]]:
    """The owner's audit log, every line (what reached the store, refused or not)."""
    found = [p for p in home.rglob("*.jsonl") if p.parent.name == "audit"]
    if not found:
        return []
    return [json.loads(line) for line in found[0].read_text().splitlines() if line.strip()]


def new_lines(home: Path, since: int, settle: float = 0.6) -> list[dict[str, Any]]:
    time.sleep(settle)  # a line is written as the answer ends: let the last one land
    return audit_log(home)[since:]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for {pid}")


def process_of(share: Share, marker: bytes) -> int:
    for pid in descendants(share.proc.pid):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if marker in cmdline:
            return pid
    raise AssertionError(f"no process {marker!r} below the share")


def kernel_id(ws_url: str) -> str:
    return ws_url.split("/api/kernels/")[1].split("/")[0]


class Viewer:
    def __init__(self, share: Share, page: Any, context: Any, ws_url: str) -> None:
        self.share = share
        self.page = page
        self.context = context
        self.ws_url = ws_url
        self.origin = page.evaluate("location.origin")
        self.kernel = Kernel(ws_url, context.cookies(), self.origin)

    def socket(self) -> Kernel:
        """One more websocket to the same kernel (a page can open as many as it likes)."""
        return Kernel(self.ws_url, self.context.cookies(), self.origin)


def _opened(context: Any, url: str) -> tuple[Any, str]:
    page = context.new_page()
    sockets: list[str] = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    page.goto(url, wait_until="domcontentloaded", timeout=120_000)
    page.locator(".p2p2p-x-table tbody tr").first.wait_for(timeout=120_000)
    channels = [u for u in sockets if "/channels" in u]
    assert channels, sockets
    return page, channels[0]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as chrome:
        yield chrome


@pytest.fixture(scope="module")
def open_share(
    relay: Relay, store: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Share]:
    process = Share(
        store, relay.url, tmp_path_factory.mktemp("owner-open"), "--dashboard", "--name", "clinic"
    )
    yield process
    process.stop()


@pytest.fixture(scope="module")
def mallory(open_share: Share, browser: Any) -> Iterator[Viewer]:
    """A viewer of the stealth share, with the page open and a socket of their own."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=False)
    page, ws_url = _opened(context, open_share.link)
    viewer = Viewer(open_share, page, context, ws_url)
    yield viewer
    viewer.kernel.close()
    context.close()


@pytest.fixture(scope="module")
def vault(relay: Relay, store: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Share]:
    """An identified share, downloads off."""
    home = tmp_path_factory.mktemp("owner-vault")
    process = Share(
        store, relay.url, home, "--dashboard", "--name", "vault", "--require-key", "--no-export"
    )
    yield process
    process.stop()


@pytest.fixture(scope="module")
def auditor(vault: Share, browser: Any) -> Iterator[Viewer]:
    """A listed viewer of the vault, granted the table ``people`` only."""
    made = cli(vault.home, "viewers", "invite", "vault", "auditor", "--tables", "people", "--json")
    assert made.returncode == 0, made.stderr
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=False)
    page, ws_url = _opened(context, json.loads(made.stdout)["invite"])
    viewer = Viewer(vault, page, context, ws_url)
    yield viewer
    viewer.kernel.close()
    context.close()


# -- 1. SQL injection ---------------------------------------------------------------------
REFUSED_VIEWS: list[tuple[dict[str, Any], str]] = [
    ({"filters": [{"column": 'name" = "name" OR "1', "value": "x"}]}, "people has no column"),
    ({"filters": [{"column": "nаme", "value": "x"}]}, "people has no column 'nаme'"),  # Cyrillic а
    ({"filters": [{"column": "name", "op": "= $p0 OR 1=1 --", "value": "x"}]}, "unknown filter"),
    ({"filters": [{"column": "person_id", "value": "1 OR 1=1"}]}, "person_id needs a whole number"),
    (
        {"filters": [{"column": "person_id", "op": "gt", "value": "1; DROP TABLE people"}]},
        "person_id needs a whole number, not '1; DROP TABLE people'",
    ),
    (
        {"filters": [{"column": "joined", "op": "lt", "value": "2020-01-01' OR '1'='1"}]},
        "joined needs a date or time",
    ),
    ({"filters": [{"column": "score", "op": "gt", "value": "nan"}]}, "score needs a finite number"),
    ({"sort": "person_id; DROP TABLE people"}, "people has no column"),
    ({"sort": "person_id DESC, (SELECT code FROM secrets)"}, "people has no column"),
    ({"filters": [{"column": "name", "value": "x" * 201}]}, "at most 200 characters"),
    ({"filters": "name=1 OR 1=1"}, "filters are a list of {column, op, value}"),
    ({"page_size": "50; DROP TABLE people"}, "page and page_size are whole numbers"),
]
REFUSED_TABLES = [
    "people; SELECT * FROM secrets",
    "people WHERE 1=0 UNION SELECT code, 1, 1, 1, 1, 1 FROM secrets",
    '"people"',
    HOSTILE_HTML,
]
REFUSED_ADDRESSES: list[tuple[str, str]] = [
    ("_table=people&name%22%20OR%20%221=x", "people has no column"),
    ("_table=people&person_id=1%20OR%201%3D1", "person_id needs a whole number"),
    ("_table=people&_sort=person_id%3BDROP%20TABLE%20people", "people has no column"),
    ("_table=people&name__%3D%20%24p0%20OR%201%3D1=x", "people has no column"),
    ("_table=people%3B%20SELECT%201", "this share has no table"),
]
# Hostile text as values: bound parameters, so each is only text to compare with.
BOUND_VALUES: list[dict[str, Any]] = [
    {"column": "name", "op": "exact", "value": "x' OR '1'='1"},
    {"column": "name", "op": "contains", "value": "'; DROP TABLE people; --"},
    {"column": "name", "op": "contains", "value": "$p0"},
    {"column": "name", "op": "contains", "value": "%"},
    {"column": "name", "op": "exact", "value": "name 1\x00' OR 1=1 --"},
    {"column": "name", "op": "exact", "value": "ｎａｍｅ １"},  # full-width lookalikes
    {"column": "team", "op": "exact", "value": "a' OR team <> 'a"},
    {"column": "name", "op": "contains", "value": "\u202e)--"},
]


def test_sql_injection_through_every_field_runs_nothing_the_view_did_not_mean(
    mallory: Viewer,
) -> None:
    kernel, home = mallory.kernel, mallory.share.home
    kernel.ask({"do": "view", "view": {"table": "people"}})
    assert kernel.state["view"]["table"] == "people"
    before = len(audit_log(home))

    # Refused: each names what was wrong, and none reaches the store.
    for fields, said in REFUSED_VIEWS:
        state = kernel.view(**fields)
        assert said in state["error"], (fields, state["error"])
    for table in REFUSED_TABLES:
        state = kernel.ask({"do": "view", "view": {"table": table}})
        assert state["error"] == f"this share has no table {table!r}", state["error"]
    for query, said in REFUSED_ADDRESSES:
        state = kernel.address(query)
        assert state["error"].startswith("This address's view could not be opened ("), query
        assert said in state["error"] and state["error"].endswith("showing people."), query
    reached = new_lines(home, before)
    assert reached == [], [line["statement"] for line in reached]
    # The page shows the refusals as text: the hostile table name never became markup.
    kernel.ask({"do": "view", "view": {"table": HOSTILE_HTML}})
    mallory.page.get_by_role("alert").filter(has_text="this share has no table").wait_for(
        timeout=30_000
    )
    assert mallory.page.locator(".p2p2p-x img").count() == 0
    assert mallory.page.title() != "pwned"

    # Accepted: hostile values are bound, so they match nothing (no name holds them) and
    # never become SQL text.
    for hostile in BOUND_VALUES:
        before = len(audit_log(home))
        state = kernel.view(filters=[hostile])
        assert state["error"] == "", (hostile, state["error"])
        assert state["data"]["rows"] == [] and state["data"]["total"] == 0, hostile
        lines = new_lines(home, before)
        assert lines, "a view that was shown must be on the owner's record"
        for line in lines:
            statement = line["statement"]
            if not re.fullmatch(r"\$p[0-9]+", hostile["value"]):  # else it is the placeholder
                assert hostile["value"] not in statement, statement
            assert len(duckdb.extract_statements(statement)) == 1, statement
            assert re.search(r'FROM "people"', statement) and "secrets" not in statement
            assert line["outcome"] == "ok", line
    # A name that needs its quotes doubled works as a filter and a sort; a real value
    # still filters (the control: the same path finds what is there).
    before = len(audit_log(home))
    state = kernel.view(filters=[{"column": WEIRD, "value": "w"}], sort=WEIRD, descending=True)
    assert state["error"] == "" and state["data"]["total"] == 300
    assert any('"we""ird; col" = $p0' in line["statement"] for line in new_lines(home, before))
    state = kernel.view(filters=[{"column": "name", "value": "name 5"}])
    assert state["data"]["total"] == 1 and state["data"]["rows"][0][1] == "name 5"


def test_open_as_sql_is_the_view_whatever_its_values_say(mallory: Viewer, store: str) -> None:
    """The "Open as SQL" button writes the view's values into the statement as literals, then runs
    it in the SQL box. A value holding the text ``$p1`` is rewritten by the next
    parameter's substitution, which turns the second value into SQL: the box then runs a
    statement of the viewer's making, here one reading another table, while the view it
    claims to be shows no rows."""
    kernel, home = mallory.kernel, mallory.share.home
    smuggled = "||(SELECT string_agg(code) FROM secrets)||"
    state = kernel.view(
        filters=[
            {"column": "name", "op": "contains", "value": "$p1"},
            {"column": "team", "op": "not", "value": smuggled},
        ]
    )
    assert state["error"] == "" and state["data"]["total"] == 0  # the view: no rows
    before = len(audit_log(home))
    kernel.ask({"do": "sql"})
    text = kernel.state["sql"]
    assert len(duckdb.extract_statements(text)) == 1, text
    ran = [line for line in new_lines(home, before) if line["statement"] == text]
    assert ran and ran[0]["outcome"] == "ok", "the SQL box ran the view's statement"
    # What the box ran must be the view: the same rows (none), no other table.
    assert local(store, text) == [], f"Open as SQL ran something else: {text}"
    # The smuggled text is one quoted value, not SQL: no table but the view's is read.
    assert f"'{smuggled}'" in text and "secrets" not in outside_literals(text), text


def test_tables_and_files_the_share_does_not_hold(mallory: Viewer) -> None:
    kernel, home = mallory.kernel, mallory.share.home
    kernel.ask({"do": "view", "view": {"table": "people"}})
    before = len(audit_log(home))
    for table in (
        "read_csv('/etc/passwd')",
        "/etc/passwd",
        "'/etc/passwd'",
        "duckdb_settings()",
        "duckdb_settings",
        "information_schema.tables",
        "pg_catalog.pg_settings",
        "main.people",
        "system.main.people",
        "nosuch",
    ):
        state = kernel.ask({"do": "view", "view": {"table": table}})
        assert state["error"] == f"this share has no table {table!r}", state["error"]
        state = kernel.address(urllib.parse.urlencode({"_table": table}))
        assert f"this share has no table {table!r}" in state["error"], state["error"]
    for column in ("/etc/passwd", "read_text('/etc/passwd')", "getenv('HOME')", "*"):
        state = kernel.view(filters=[{"column": column, "op": "notnull"}])
        assert state["error"] == f"people has no column {column!r}", state["error"]
        state = kernel.view(sort=column)
        assert state["error"] == f"people has no column {column!r}", state["error"]
    reached = new_lines(home, before)
    assert reached == [], [line["statement"] for line in reached]
    assert "root:" not in json.dumps(kernel.state)


# -- 2. a viewer granted one table ----------------------------------------------------------
def test_a_limited_viewer_reaches_only_its_granted_table(auditor: Viewer) -> None:
    kernel, home, page = auditor.kernel, auditor.share.home, auditor.page
    names = page.locator(".p2p2p-table-name").all_inner_texts()
    assert len(names) == 1 and names[0].startswith("people"), names
    assert [t["name"] for t in kernel.refresh()["tables"]] == ["people"]
    before = len(audit_log(home))
    for table in ("secrets", "big", "main.secrets"):
        state = kernel.ask({"do": "view", "view": {"table": table}})
        assert state["error"] == f"this share has no table {table!r}", state["error"]
        state = kernel.address(f"_table={table}")
        assert state["error"].endswith(f"(this share has no table {table!r}); showing people.")
    state = kernel.view(filters=[{"column": "code", "value": SECRET}])
    assert state["error"] == "people has no column 'code'"
    # The page claims the other table is there and is the view: the kernel keeps its own.
    kernel.comm_msg(
        {
            "method": "update",
            "state": {"tables": [{"name": "secrets", "rows": 1}], "view": {"table": "secrets"}},
            "buffer_paths": [],
        }
    )
    kernel.ask({"do": "sql"})
    assert kernel.state["sql"].startswith('SELECT * FROM "people"'), kernel.state["sql"]
    # The SQL box from the address, and "Open as SQL" turned into a reader of secrets:
    # the owner refuses both by the grant.
    kernel.address("_table=people&_sql=" + urllib.parse.quote("SELECT code FROM secrets"))
    page.get_by_text("Not run:").first.wait_for(timeout=30_000)  # the owner's refusal, shown
    kernel.view(
        filters=[
            {"column": "name", "op": "contains", "value": "$p1"},
            {"column": "team", "op": "not", "value": "||(SELECT string_agg(code) FROM secrets)||"},
        ]
    )
    kernel.ask({"do": "sql"})
    lines = new_lines(home, before)
    # Statements that read the table (its name outside a quoted value).
    reading = [line for line in lines if "secrets" in outside_literals(line["statement"])]
    assert reading, "the SQL box's queries are on the owner's record"
    for line in reading:
        assert line["outcome"] == "refused:table-not-granted", line
        assert line["viewer"] == "auditor"
    assert not any(line["outcome"] == "ok" and line in reading for line in lines)
    # The secret's value (not the granted row that happens to hold its text) is nowhere.
    assert re.search(f"{SECRET}(?! fan)", page.content()) is None
    assert re.search(f"{SECRET}(?! fan)", json.dumps(kernel.state)) is None


def outside_literals(sql: str) -> str:
    """``sql`` with every quoted string value emptied: what is left is SQL itself."""
    return re.sub(r"'(?:[^']|'')*'", "''", sql)


# -- 4. exports ---------------------------------------------------------------------------
def test_downloads_off_means_no_file_whatever_the_page_sends(auditor: Viewer) -> None:
    kernel = auditor.kernel
    kernel.ask({"do": "view", "view": {"table": "people"}})
    assert kernel.refresh()["exports"] == []
    assert auditor.page.locator(".p2p2p-x-export").count() == 0
    kernel.comm_msg({"method": "update", "state": {"exports": ["csv", "json"]}, "buffer_paths": []})
    for fmt in ("csv", "json", "parquet"):
        state = kernel.ask({"do": "export", "format": fmt})
        # The kernel's words or the owner's ("… turned downloads off for this share").
        assert "off for this share" in state["error"], state["error"]
    assert kernel.files == []


def test_a_refused_export_is_on_the_owners_audit_log(auditor: Viewer) -> None:
    """docs/dashboards.md: ``--no-export`` "makes the owner refuse export requests, each
    refusal on the audit log". The explorer refuses in the kernel, before the owner hears
    of it: an owner reading ``p2p2p audit show`` never learns a viewer tried."""
    kernel, home = auditor.kernel, auditor.share.home
    kernel.ask({"do": "view", "view": {"table": "people"}})
    before = len(audit_log(home))
    state = kernel.ask({"do": "export", "format": "csv"})
    assert state["error"] and kernel.files == []
    lines = new_lines(home, before)
    shown = cli(home, "audit", "show", "vault", "--last", "20")
    assert shown.returncode == 0, shown.stderr
    assert any(line.get("outcome") == "export_refused" for line in lines), lines
    assert "export_refused" in shown.stdout, shown.stdout


def _file(kernel: Kernel) -> bytes:
    parts = sorted(kernel.files, key=lambda f: f[0]["part"])
    assert parts and parts[-1][0]["parts"] == len(parts), [p[0] for p in parts]
    return b"".join(b"".join(buffers) for _, buffers in parts)


def test_no_synced_trait_of_the_explorer_is_the_pages_to_set(mallory: Viewer) -> None:
    """ipywidgets applies a page's ``update`` to any synced trait; the explorer ignores
    them all. Tried: the export cap, the formats offered, the tables and the view, the
    rows shown, the page sizes, the SQL, the ✎, messages, its code and layout."""
    kernel, home = mallory.kernel, mallory.share.home
    kernel.ask({"do": "view", "view": {"table": "big"}})
    before = dict(kernel.refresh())
    forged = {
        "export_rows": 10**9,
        "exports": ["csv", "json", "parquet", "xml", "../../etc/passwd"],
        "tables": [{"name": "secrets", "rows": 1, "label": "secrets"}],
        "view": {"table": "secrets", "filters": [], "page": 0, "page_size": 50},
        "data": {"columns": [{"name": "x", "kind": "text"}], "rows": [["forged"]]},
        "facets": [{"column": "x", "values": [{"value": "forged", "n": 1}]}],
        "page_sizes": [1_000_000],
        "sql": "SELECT code FROM secrets",
        "annotate": not before["annotate"],
        "error": "forged",
        "notice": "forged",
        "busy": True,
        "_esm": "export default { render({ el }) { el.textContent = 'forged'; } }",
        "_anywidget_id": "forged",
        "_dom_classes": ["forged"],
        "layout": "IPY_MODEL_forged",
        "tooltip": "forged",
        "tabbable": True,
    }
    assert set(forged) >= set(before) - {
        "_model_module", "_model_module_version", "_model_name", "_view_count",
        "_view_module", "_view_module_version", "_view_name",
    }  # fmt: skip
    kernel.comm_msg({"method": "update", "state": forged, "buffer_paths": []})
    after = kernel.refresh()
    changed = {k for k in before if after.get(k) != before[k]}
    assert changed == set(), changed
    # And what each would have let it do: the cap holds, the formats are the owner's,
    # the page sizes are the explorer's.
    state = kernel.ask({"do": "view", "view": {"table": "big", "page_size": 1_000_000}})
    assert state["error"] == "rows per page are one of 25, 50, 100"
    state = kernel.ask({"do": "export", "format": "xml"})
    assert state["error"] == "export as one of csv, json, parquet"
    assert kernel.files == []
    count = len(audit_log(home))
    state = kernel.ask({"do": "export", "format": "csv"}, timeout=120)
    assert state["notice"] == (
        "Exported 100,000 rows as big.csv (the first ones: the cap was reached)."
    ), state["notice"]
    body = _file(kernel)
    kernel.files.clear()
    assert body.count(b"\n") == 100_001  # the header and the cap, not the table's 150,000
    exports = [line for line in new_lines(home, count) if line["channel"] == "export"]
    assert [(e["rows"], e["truncated"]) for e in exports] == [(100_000, True)]


def test_an_export_format_the_share_does_not_offer(mallory: Viewer) -> None:
    kernel, home = mallory.kernel, mallory.share.home
    kernel.ask({"do": "view", "view": {"table": "people"}})
    before = len(audit_log(home))
    for fmt in ("xml", "", "CSV", "csv\x00", "../csv", None, ["csv"], {"format": "csv"}):
        state = kernel.ask({"do": "export", "format": fmt})
        assert state["error"] == "export as one of csv, json, parquet", (fmt, state["error"])
    assert kernel.files == []
    assert [line for line in new_lines(home, before) if line["channel"] == "export"] == []


# -- 5. annotate --------------------------------------------------------------------------
def test_annotate_names_only_a_row_the_kernel_showed(mallory: Viewer) -> None:
    kernel, page = mallory.kernel, mallory.page
    kernel.view(sort="person_id")
    for row in (10**6, 50, -1, "0", 0.0, 1.5, None, [0], {"row": 0}, 10**400):
        kernel.ask({"do": "annotate", "row": row})
    assert kernel.state["error"] == ""
    page.wait_for_timeout(500)
    assert page.get_by_text("Your next note is on").count() == 0
    # The page's own idea of the rows (a forged ``data``) changes nothing: row 0 is the
    # row the kernel sent.
    kernel.comm_msg(
        {
            "method": "update",
            "state": {"data": {"columns": [{"name": "code", "kind": "text"}], "rows": [["x"]]}},
            "buffer_paths": [],
        }
    )
    kernel.ask({"do": "annotate", "row": 0})
    said = page.get_by_text("Your next note is on")
    said.wait_for(timeout=30_000)
    assert "people row person_id=0, name=name 0" in said.inner_text()


# -- 3. exhaustion ------------------------------------------------------------------------
def test_out_of_range_and_oversized_requests_are_refused_at_once(mallory: Viewer) -> None:
    kernel, home = mallory.kernel, mallory.share.home
    kernel.ask({"do": "view", "view": {"table": "people"}})
    before = len(audit_log(home))
    asks: list[tuple[dict[str, Any], str]] = [
        ({"page": 10**6}, "pages go from 1 to 20,000"),
        ({"page": 10**400}, "pages go from 1 to 20,000"),
        ({"page": -1}, "pages go from 1 to 20,000"),
        ({"page": 20_000}, "pages go from 1 to 20,000"),
        ({"page": 1.5}, "page and page_size are whole numbers"),
        ({"page_size": 1000}, "rows per page are one of 25, 50, 100"),
        ({"page_size": 0}, "rows per page are one of 25, 50, 100"),
        ({"page_size": 10**9}, "rows per page are one of 25, 50, 100"),
        ({"filters": [{"column": "name", "value": "x"}] * 5000}, "at most 8 filters at once"),
        ({"filters": list(range(5000))}, "at most 8 filters at once"),
        ({"filters": [{"column": "name", "value": "x" * 500_000}]}, "at most 200 characters"),
    ]
    for fields, said in asks:
        started = time.monotonic()
        state = kernel.view(**fields)
        assert said in state["error"], (str(fields)[:80], state["error"])
        assert time.monotonic() - started < 5, str(fields)[:80]
    for query, said in (
        ("_table=people&name=" + "x" * 1_000_000, "at most 200 characters"),
        ("_table=people&" + "name=x&" * 100_000, "at most 8 filters at once"),
        ("_table=people&_page=1" + "0" * 5000, "_page and _size are whole numbers"),
        ("_table=people&_page=999999", "pages go from 1 to 20,000"),
        ("_table=people&_size=1000000", "rows per page are one of 25, 50, 100"),
    ):
        started = time.monotonic()
        state = kernel.address(query)
        assert said in state["error"], (query[:60], state["error"])
        assert time.monotonic() - started < 5, query[:60]
    reached = new_lines(home, before)
    assert reached == [], [line["statement"][:200] for line in reached]
    state = kernel.view(page=5)
    assert state["error"] == "" and state["data"]["rows"][0][0] == "250"


class Bystander(threading.Thread):
    """Another viewer of the share, querying it while the attack runs."""

    def __init__(self, link: str) -> None:
        super().__init__(daemon=True)
        import p2p2p

        self.store = p2p2p.connect(link)
        self.store.query("SELECT 1")  # connected before the flood starts
        self.times: list[float] = []
        self.errors: list[str] = []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            started = time.monotonic()
            try:
                self.store.query("SELECT count(*) AS n FROM people")
                self.times.append(time.monotonic() - started)
            except Exception as exc:  # reported by the test
                self.errors.append(repr(exc))
            self.done.wait(0.3)

    def stop(self) -> None:
        self.done.set()
        self.join(60)


def test_a_flood_of_views_leaves_the_share_answering_others(mallory: Viewer) -> None:
    kernel, share = mallory.kernel, mallory.share
    kernel.ask({"do": "view", "view": {"table": "big"}})
    pid = process_of(share, f"kernel-{kernel_id(mallory.ws_url)}".encode())
    grown_from = rss_mb(pid)
    other = Bystander(share.link)
    other.start()
    try:
        last = ""
        for i in range(200):  # a burst: nothing read until all are sent
            last = kernel.send(
                "comm_msg",
                {
                    "comm_id": kernel.comm,
                    "data": {
                        "method": "custom",
                        "content": {
                            "do": "view",
                            "view": {
                                "table": "big",
                                "filters": [{"column": "t", "op": "contains", "value": str(i)}],
                                "page": i % 50,
                            },
                        },
                    },
                },
            )
        peak = grown_from
        deadline = time.monotonic() + 150
        while True:
            assert time.monotonic() < deadline, "the kernel did not get through the flood"
            msg = kernel.read(deadline - time.monotonic())
            peak = max(peak, rss_mb(pid))
            if msg["parent"].get("msg_id") == last and msg["content"].get("execution_state") == (
                "idle"
            ):
                break
    finally:
        other.stop()
    assert other.errors == [], other.errors[:3]
    assert other.times and max(other.times) < 5, sorted(other.times)[-5:]
    assert peak - grown_from < 150, (grown_from, peak)  # facts cached: 32 views at most
    assert kernel.state["data"]["total"] is not None and kernel.state["error"] == ""


def test_a_flood_of_exports_does_not_pile_up_on_the_owners_machine(mallory: Viewer) -> None:
    """200 exports of 100,000 rows asked in one burst, from a socket that never reads.

    Each export is ~1.7 MB sent to every websocket open on the kernel. Before the bounds,
    3 such sockets grew the share's Voila process by more than 1 GB in 20 s (its write
    buffers have no bound and the owner read them only as fast as the viewer did). Now a
    kernel takes two sockets (the page's and ours here), the owner reads Voila as fast as
    it writes and closes a socket more than 24 MiB behind, and a page gets a few exports
    a minute."""
    kernel, share = mallory.kernel, mallory.share
    kernel.ask({"do": "view", "view": {"table": "big"}})
    voila = process_of(share, b"-m\x00voila\x00")
    owner = share.proc.pid
    for _ in range(3):  # the page and ``kernel`` hold the two a kernel takes
        with pytest.raises(Exception, match="429"):
            mallory.socket()
    other = Bystander(share.link)
    other.start()
    start, owner_start = rss_mb(voila), rss_mb(owner)
    peak, owner_peak = start, owner_start
    try:
        for _ in range(200):
            kernel.send(
                "comm_msg",
                {
                    "comm_id": kernel.comm,
                    "data": {"method": "custom", "content": {"do": "export", "format": "csv"}},
                },
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and peak - start < 400:
            time.sleep(0.5)
            peak = max(peak, rss_mb(voila))
            owner_peak = max(owner_peak, rss_mb(owner))
    finally:
        other.stop()
    assert other.errors == [], other.errors[:3]
    assert other.times and max(other.times) < 10, sorted(other.times)[-5:]
    assert peak - start < 400, (
        f"the share's Voila process grew from {start:.0f} MB to {peak:.0f} MB holding "
        "exports for a socket that does not read"
    )
    assert owner_peak - owner_start < 200, (owner_start, owner_peak)
    # The page was told why most of the burst was not made.
    mallory.page.get_by_text("exports a minute").first.wait_for(timeout=10_000)
