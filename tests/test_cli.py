"""The p2p2p command, run as a user would: a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def p2p2p(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "p2p2p", *args], capture_output=True, text=True, timeout=120, cwd=cwd
    )


def test_help_lists_commands() -> None:
    result = p2p2p("--help")
    assert result.returncode == 0
    for command in ("keys", "query", "sample", "demo"):
        assert command in result.stdout


def test_query_formats(sample_store: str) -> None:
    sql = "SELECT region, count(*) AS n FROM sales WHERE year = $y GROUP BY 1 ORDER BY 1"
    as_json = p2p2p("query", f"local:{sample_store}", sql, "--param", "y=2022", "--format", "json")
    assert as_json.returncode == 0, as_json.stderr
    rows = json.loads(as_json.stdout)
    assert [r["region"] for r in rows] == ["east", "north", "south", "west"]
    assert "4 rows" in as_json.stderr
    as_csv = p2p2p("query", sample_store, sql, "-p", "y=2022", "--format", "csv")
    lines = as_csv.stdout.strip().splitlines()
    assert lines[0] == "region,n" and len(lines) == 5
    assert lines[1] == f"east,{rows[0]['n']}"
    table = p2p2p("query", sample_store, sql, "-p", "y=2022")
    assert "north" in table.stdout and "region" in table.stdout


def test_refused_query_exits_2_with_the_rule(sample_store: str, tmp_path: Path) -> None:
    stolen = tmp_path / "stolen.csv"
    result = p2p2p("query", sample_store, f"COPY sales TO '{stolen}'", "--as-viewer")
    assert result.returncode == 2
    assert "read-only-kind" in result.stderr and "Traceback" not in result.stderr
    assert not stolen.exists()


def test_your_own_file_runs_with_your_trust(sample_store: str, tmp_path: Path) -> None:
    """Without --as-viewer a file here is the caller's own: DuckDB as it is, with no
    share limits (the 1,000,000-row cap of a share does not apply) and own files readable."""
    own = tmp_path / "mine.csv"
    own.write_text("k,v\na,1\nb,2\n")
    read = p2p2p("query", sample_store, f"SELECT sum(v) AS s FROM read_csv('{own}')")
    assert read.returncode == 0, read.stderr
    assert read.stdout.split() == ["s", "3"]
    many = p2p2p(
        "query", sample_store, "SELECT count(*) AS n FROM range(1500000)", "--format", "csv"
    )
    assert many.stdout.split() == ["n", "1500000"]
    rows = p2p2p("query", sample_store, "SELECT * FROM range(1200000)", "--format", "csv")
    assert len(rows.stdout.splitlines()) == 1_200_001 and "TRUNCATED" not in rows.stderr


def test_limit_marks_truncation(sample_store: str) -> None:
    result = p2p2p("query", sample_store, "FROM sales", "--limit", "3", "--format", "csv")
    assert result.returncode == 0
    assert len(result.stdout.strip().splitlines()) == 4
    assert "TRUNCATED" in result.stderr


def test_sample_and_demo_without_lab(tmp_path: Path) -> None:
    built = p2p2p("sample", str(tmp_path / "s.duckdb"), "--rows", "100")
    assert built.returncode == 0 and Path(built.stdout.strip()).is_file()
    demo = p2p2p("demo", "--dir", str(tmp_path / "demo"), "--no-lab", "--scale", "0.02")
    assert demo.returncode == 0, demo.stderr
    assert "case_materials" in demo.stdout and "[1/4]" in demo.stdout  # progress, per table
    for name in (
        "hospital.duckdb",
        "owner-tour.ipynb",
        "analyst-tour.ipynb",
        "hospital-dashboard.ipynb",
        "quickstart.ipynb",
    ):
        assert (tmp_path / "demo" / name).is_file(), name
    # A second run keeps the store and the notebooks (the user's edits) as they are.
    (tmp_path / "demo" / "owner-tour.ipynb").write_text("edited")
    again = p2p2p("demo", "--dir", str(tmp_path / "demo"), "--no-lab", "--scale", "0.02")
    assert "already built" in again.stdout
    assert (tmp_path / "demo" / "owner-tour.ipynb").read_text() == "edited"


def test_the_hospital_store_is_the_same_on_every_build(tmp_path: Path) -> None:
    import duckdb

    digests = []
    for attempt in ("a", "b"):
        built = p2p2p(
            "sample", "--hospital", str(tmp_path / f"{attempt}.duckdb"), "--scale", "0.02"
        )
        assert built.returncode == 0, built.stderr
        con = duckdb.connect(built.stdout.strip(), read_only=True)
        digests.append(
            [
                con.sql(f"SELECT count(*), sum(hash(t::VARCHAR)) FROM {table} t").fetchall()[0]
                for table in ("sites", "departments", "materials", "cases", "case_materials")
            ]
        )
        con.close()
    assert digests[0] == digests[1]
    assert digests[0][3][0] == 3200  # cases at scale 0.02


def test_bad_target_is_explained() -> None:
    result = p2p2p("query", "https://relay.example/s/abc", "SELECT 1")
    assert result.returncode == 2 and "relay" in result.stderr


def test_a_relay_on_port_0_says_the_port_it_got() -> None:
    import re

    import httpx

    relay = subprocess.Popen(
        [sys.executable, "-m", "p2p2p", "relay", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert relay.stdout is not None
        line = relay.stdout.readline()
        found = re.search(r"http://127\.0\.0\.1:(\d+)", line)
        assert found and found.group(1) != "0", line
        assert httpx.get(f"{found.group(0)}/healthz", timeout=5).json()["ok"]
    finally:
        relay.terminate()
        relay.wait(timeout=10)


def test_access_log_is_described_as_it_logs() -> None:
    """--help, the reference and the relay guide say the same of --access-log, and that
    is what the relay writes: status, method, path, client address, time."""
    fields = "status, method, path (it names the share id), client address, time taken"
    shown = " ".join(p2p2p("relay", "--help").stdout.split())
    assert fields in shown and "never the query string" in shown
    docs = Path(__file__).resolve().parents[1] / "docs"
    for page in ("reference.md", "relay.md"):
        row = next(
            line for line in (docs / page).read_text().splitlines() if "| `--access-log` |" in line
        )
        assert fields in row and "never the query string" in row, page
    import logging
    from types import SimpleNamespace

    from p2p2p.aio.web import log, log_every_request

    request = SimpleNamespace(
        method="GET", path="/s/abc/", uri="/s/abc/?t=secret-token", remote_ip="127.0.0.9",
        request_time=lambda: 0.0042,
    )  # fmt: skip
    handler = SimpleNamespace(request=request, get_status=lambda: 200)
    records: list[str] = []
    catcher = logging.Handler()
    catcher.emit = lambda record: records.append(record.getMessage())  # type: ignore[method-assign]
    log.addHandler(catcher)
    previous = log.level
    log.setLevel(logging.INFO)
    try:
        log_every_request(handler)  # type: ignore[arg-type]
    finally:
        log.removeHandler(catcher)
        log.setLevel(previous)
    assert len(records) == 1
    status, method, path, client, taken, unit = records[0].split()
    assert (status, method, path, client, unit) == ("200", "GET", "/s/abc/", "127.0.0.9", "ms")
    assert "secret-token" not in records[0] and float(taken) >= 0
