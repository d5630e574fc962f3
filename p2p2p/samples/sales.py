"""A small, deterministic sample store for the quick start, docs and tests."""

from __future__ import annotations

import os
from collections.abc import Callable

import duckdb

SAMPLE_SQL = """
CREATE TABLE regions AS
SELECT * FROM (VALUES
    ('north', 'Nordheim', 'Ines Varga'),
    ('south', 'Suderburg', 'Tomas Lind'),
    ('east', 'Osterfeld', 'Mara Okafor'),
    ('west', 'Westerby', 'Jon Brandt')
) AS t(region, city, manager);

CREATE TABLE products AS
SELECT * FROM (VALUES
    (1, 'gloves', 'consumable', 4.20::DECIMAL(10, 2)),
    (2, 'syringes', 'consumable', 0.35::DECIMAL(10, 2)),
    (3, 'infusion pump', 'device', 1890.00::DECIMAL(10, 2)),
    (4, 'stent', 'implant', 740.50::DECIMAL(10, 2)),
    (5, 'bandage', 'consumable', 1.15::DECIMAL(10, 2)),
    (6, 'monitor', 'device', 3250.00::DECIMAL(10, 2))
) AS t(product_id, product, category, unit_price);

-- Deterministic pseudo-random rows: hash() of the row number, no RNG state.
CREATE TABLE sales AS
SELECT
    i AS sale_id,
    ['north', 'south', 'east', 'west'][1 + (hash(i * 7) % 4)::INTEGER] AS region,
    2021 + (hash(i * 11) % 4)::INTEGER AS year,
    1 + (hash(i * 13) % 12)::INTEGER AS month,
    1 + (hash(i * 17) % 6)::INTEGER AS product_id,
    1 + (hash(i * 19) % 40)::INTEGER AS units,
    round(((hash(i * 23) % 100000) / 100.0 + 5)::DECIMAL(12, 2), 2)::DECIMAL(12, 2) AS amount
FROM range(1, {rows} + 1) AS t(i);

CREATE VIEW yearly AS
SELECT region, year, sum(amount) AS total, count(*) AS sales
FROM sales GROUP BY ALL;
"""


def build_sample_store(path: str | os.PathLike[str], rows: int = 20_000) -> str:
    """Create (or replace) the sample store at ``path``; returns its absolute path."""
    return build_atomically(path, lambda con: con.execute(SAMPLE_SQL.format(rows=int(rows))))


def build_atomically(
    path: str | os.PathLike[str], fill: Callable[[duckdb.DuckDBPyConnection], object]
) -> str:
    """Build a store beside ``path`` and move it into place only once complete.

    So a reader (or a share) of an existing store never sees half a rebuild, and an
    interrupted build leaves the old file as it was.
    """
    target = os.path.abspath(os.fspath(path))
    tmp = target + ".building"
    for leftover in (tmp, tmp + ".wal"):
        if os.path.exists(leftover):
            os.remove(leftover)
    con = duckdb.connect(tmp)
    try:
        fill(con)
        con.execute("CHECKPOINT")
    finally:
        con.close()
    os.replace(tmp, target)
    return target
