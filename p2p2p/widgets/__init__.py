"""What people look at: result tables now; share status, notes and directories later."""

from .result_view import ResultView

__all__ = ["ResultView"]
