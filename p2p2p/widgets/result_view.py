"""A query result as people want to see it: a compact table with its row count and time.

Renders as HTML in JupyterLab and Voila and as plain text anywhere else. All values are
HTML-escaped: results can come from someone else's store.
"""

from __future__ import annotations

import html
from typing import Any

import pandas as pd

from ..core.executor import ResultInfo

PREVIEW_ROWS = 10


def describe(info: ResultInfo, source: str) -> str:
    rows = f"{info.rows:,} row{'s' if info.rows != 1 else ''}"
    parts = [rows, _duration(info.seconds), source]
    if info.truncated:
        parts.append(f"TRUNCATED by {info.truncated_by} (more rows exist)")
    return " · ".join(parts)


def _duration(seconds: float) -> str:
    if seconds < 0.01:
        return f"{seconds * 1000:.1f} ms"
    return f"{seconds * 1000:.0f} ms" if seconds < 10 else f"{seconds:.1f} s"


class ResultView:
    """Display wrapper for a DataFrame plus its ``ResultInfo``."""

    def __init__(self, frame: pd.DataFrame, info: ResultInfo, source: str) -> None:
        self.frame = frame
        self.info = info
        self.source = source

    def _preview(self) -> pd.DataFrame:
        if len(self.frame) <= 2 * PREVIEW_ROWS:
            return self.frame
        return pd.concat([self.frame.head(PREVIEW_ROWS), self.frame.tail(PREVIEW_ROWS)])

    def _repr_html_(self) -> str:
        caption = html.escape(describe(self.info, self.source))
        style = "color:#b45309;font-weight:600" if self.info.truncated else "color:#555"
        table = self._preview().to_html(
            escape=True, index=False, na_rep="NULL", max_cols=30, border=0, classes="p2p2p-result"
        )
        more = ""
        hidden = len(self.frame) - len(self._preview())
        if hidden > 0:
            more = f'<div style="color:#555">… {hidden:,} more rows in the DataFrame</div>'
        return (
            f'<div class="p2p2p-result-view"><div style="{style};font-size:0.9em;margin:2px 0 4px">'
            f"{caption}</div>{table}{more}</div>"
        )

    def __repr__(self) -> str:
        with pd.option_context("display.max_rows", 2 * PREVIEW_ROWS, "display.max_columns", 30):
            body = self.frame.to_string(
                max_rows=2 * PREVIEW_ROWS, max_cols=30, index=False, na_rep="NULL"
            )
        return f"{describe(self.info, self.source)}\n{body}"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))
