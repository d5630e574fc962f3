"""A result's DataFrame holds the store's values exactly: no float for DECIMAL or HUGEINT,
no float for an integer column with NULLs, DATE as datetime64 so ``.dt`` works."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import duckdb
import pandas as pd
import pyarrow as pa

from p2p2p.store.arrow import to_pandas

SQL = """
SELECT * FROM (VALUES
  (1::BIGINT, 1::BIGINT, 123456789.123456::DECIMAL(18,6), 170141183460469231731687303715884105727::HUGEINT,
   DATE '2024-02-29', TIMESTAMPTZ '2024-01-01 12:00:00+00', true, 'a'),
  (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL)
) t(id, maybe, amount, huge, day, stamp, flag, name)
"""


def frame() -> pd.DataFrame:
    return to_pandas(duckdb.sql(SQL).to_arrow_table())


def test_decimals_and_hugeints_stay_exact() -> None:
    df = frame()
    # 15 digits: a float that prints back as exactly the stored decimal, and computes.
    assert df["amount"].dtype == "float64"
    assert repr(float(df["amount"][0])) == "123456789.123456" and pd.isna(df["amount"][1])
    assert float(df["amount"][0] * 2) == 246913578.246912
    # Past what a float holds: Decimal, every digit kept.
    assert df["huge"][0] == Decimal("170141183460469231731687303715884105727")


def test_every_decimal_of_up_to_15_digits_survives() -> None:
    import random

    rng = random.Random(7)
    values = [Decimal(rng.randrange(-(10**15) + 1, 10**15)).scaleb(-2) for _ in range(20_000)]
    table = pa.table({"x": pa.array(values, pa.decimal128(38, 2))})
    shown = to_pandas(table)["x"]
    # (pyarrow's own cast would miss some of them: it is not correctly rounded.)
    assert [Decimal(repr(x)).quantize(Decimal("0.01")) for x in shown] == values
    assert to_pandas(table).attrs["decimal_scales"] == {0: 2}  # a display shows 12.50
    whole = to_pandas(duckdb.sql("SELECT round(sum(x)) AS s FROM range(10) t(x)").to_arrow_table())
    assert whole["s"].dtype == "int64" and whole["s"][0] == 45


def test_integers_with_nulls_stay_integers() -> None:
    df = frame()
    assert df["id"].dtype == "int64"
    assert df["maybe"].dtype == pd.Int64Dtype()
    assert df["maybe"][0] == 1 and df["maybe"][1] is pd.NA
    assert df["flag"].dtype == pd.BooleanDtype()


def test_dates_are_datetimes_and_zones_kept() -> None:
    df = frame()
    assert pd.api.types.is_datetime64_dtype(df["day"])
    assert df["day"].dt.day[0] == 29
    assert pd.isna(df["day"][1])
    assert df["stamp"].dt.tz is not None
    assert df["stamp"][0] == pd.Timestamp(dt.datetime(2024, 1, 1, 12, tzinfo=dt.UTC))


def test_repeated_names_keep_their_places() -> None:
    table = duckdb.sql("SELECT 1 AS x, NULL::INT AS x, 'b' AS y").to_arrow_table()
    df = to_pandas(table)
    assert list(df.columns) == ["x", "x", "y"]
    assert df.iloc[0, 0] == 1 and df.iloc[:, 1].dtype == pd.Int32Dtype()
