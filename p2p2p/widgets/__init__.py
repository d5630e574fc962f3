"""What people look at: result tables, the progress of a large result, share status, and
the building blocks of dashboards (table explorer, SQL box, notes panel).

Each is loaded when first asked for: a dashboard's kernel that shows an explorer need not
load pandas for the result tables it may never draw.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .explorer import TableExplorer
    from .result_table import ResultProgress, ResultTable
    from .share_status import ShareStatus
    from .shares_list import SharesList
    from .sql_box import SqlBox

_WHERE = {
    "ResultProgress": "result_table",
    "ResultTable": "result_table",
    "ShareStatus": "share_status",
    "SharesList": "shares_list",
    "SqlBox": "sql_box",
    "TableExplorer": "explorer",
}
__all__ = ["ResultProgress", "ResultTable", "ShareStatus", "SharesList", "SqlBox", "TableExplorer"]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
