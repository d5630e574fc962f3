"""p2p2p: share a DuckDB file read-only with one link."""
