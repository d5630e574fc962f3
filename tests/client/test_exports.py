"""Downloads of a view (the dashboard's CSV/JSON/Parquet buttons) through a real relay
and owner: on the owner's audit log as exports, and refused when the owner said
``--no-export`` while ordinary queries go on."""

from __future__ import annotations

from pathlib import Path

import pytest

import p2p2p
from p2p2p.errors import ExportRefused

from ..helpers.sharing import Relay, Share, cli

SQL = "SELECT region, count(*) AS n FROM sales GROUP BY ALL ORDER BY region"


def test_an_export_is_on_the_record_as_one(relay: Relay, sample_store: str, tmp_path: Path) -> None:
    share = Share(sample_store, relay.url, tmp_path, "--name", "open")
    try:
        store = p2p2p.connect(share.link)
        assert store.info()["exports"] is True
        table = store.export_arrow(SQL, max_rows=10)
        assert table.column("region").to_pylist() == ["east", "north", "south", "west"]
        store.query_arrow("SELECT 1 AS plain")
        shown = cli(tmp_path, "audit", "show", "open").stdout.splitlines()
        exported = [line for line in shown if "GROUP BY ALL" in line]
        assert exported and all(" export " in f" {line} " for line in exported), shown
        assert not any(" export " in line for line in shown if "plain" in line)
        store.close()
    finally:
        share.stop()


def test_no_export_refuses_downloads_and_keeps_queries(
    relay: Relay, sample_store: str, tmp_path: Path
) -> None:
    share = Share(sample_store, relay.url, tmp_path, "--name", "closed", "--no-export")
    try:
        store = p2p2p.connect(share.link)
        assert store.info()["exports"] is False
        with pytest.raises(ExportRefused, match="turned downloads off"):
            store.export_arrow(SQL)
        assert store.query_arrow(SQL).num_rows == 4  # what the dashboard shows still works
        shown = cli(tmp_path, "audit", "show", "closed").stdout
        assert "export_refused" in shown
        store.close()
    finally:
        share.stop()
