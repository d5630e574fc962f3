"""What people look at: result tables, the progress of a large result, share status, and
the table explorer dashboards are built from."""

from .explorer import TableExplorer
from .result_table import ResultProgress, ResultTable
from .share_status import ShareStatus
from .shares_list import SharesList
from .sql_box import SqlBox

__all__ = ["ResultProgress", "ResultTable", "ShareStatus", "SharesList", "SqlBox", "TableExplorer"]
