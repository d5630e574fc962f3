"""What the tests share: real processes on loopback (``sharing``, ``jupyter``,
``upstream_app``), Chromium (``browser``), the notebooks' live world (``notebook_env``)."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"
SCREENSHOTS = REPO / "docs" / "screenshots"
