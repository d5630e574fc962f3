"""The tour notebooks as the demo runs them: in a real Jupyter server whose p2p2p extension
hosts the share (nbval runs them in plain kernels, where shares live in the kernel)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from p2p2p.samples.hospital import build_hospital_store

from ..helpers import NOTEBOOKS
from ..helpers.jupyter import JupyterServer, Kernel

pytestmark = pytest.mark.timeout(600)


def code_cells(name: str) -> list[tuple[str, bool]]:
    """(source, expected to raise) for each code cell of a notebook, in order."""
    notebook = json.loads((NOTEBOOKS / name).read_text())
    return [
        ("".join(cell["source"]), "raises-exception" in cell.get("metadata", {}).get("tags", []))
        for cell in notebook["cells"]
        if cell["cell_type"] == "code"
    ]


def run_cells(kernel: Kernel, cells: list[tuple[str, bool]]) -> list[dict[str, object]]:
    results = []
    for source, raises in cells:
        result = kernel.run(source, timeout=180, allow_error=raises)
        if raises:
            assert result["error"], f"expected this cell to be refused:\n{source}"
        results.append(result)
    return results


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterServer]:
    root = tmp_path_factory.mktemp("demo")
    build_hospital_store(root / "hospital.duckdb", scale=0.05)
    for name in ("owner-tour.ipynb", "analyst-tour.ipynb", "hospital-dashboard.ipynb"):
        shutil.copy(NOTEBOOKS / name, root / name)
    process = JupyterServer(root, tmp_path_factory.mktemp("home"))
    yield process
    process.stop()


def test_owner_and_analyst_tours_with_the_server_hosting_the_share(
    server: JupyterServer, tmp_path: Path
) -> None:
    owner_cells = code_cells("owner-tour.ipynb")
    unshare_at = next(i for i, (src, _) in enumerate(owner_cells) if src.startswith("%unshare"))
    owner = server.kernel()
    analyst = server.kernel()
    try:
        shown = run_cells(owner, owner_cells[:unshare_at])
        everything = "".join(str(r["stdout"]) + str(r["data"]) for r in shown)
        # Hosted by the server extension, not by the kernel, and live with its dashboard.
        assert "shares run inside this kernel" not in everything
        assert "share hospital · live" in everything
        assert owner.value("shared.status['dashboard']") is True
        link = owner.value("shared.status['link']")

        # The analyst, in another kernel, gets the link the way the demo hands it over.
        (Path(server.proc.args[-1].split("=", 1)[1]) / "hospital-link.txt").write_text(link)
        run_cells(analyst, code_cells("analyst-tour.ipynb"))
        assert analyst.value("len(trend)") == 4  # one row per year, each its own query

        # The analyst's note reached the owner: the owner's panel lists it, verified.
        panel = owner.run("%p2p notes hospital")["data"]
        text = "".join(str(bundle.get("text/plain", "")) for bundle in panel)
        assert "is the supplier mix the same across sites" in text and "verified" in text

        # Revoke: the analyst's next query fails as offline.
        run_cells(owner, owner_cells[unshare_at:])
        refused = analyst.run(
            "%%p2pquery hospital\nSELECT count(*) FROM cases", allow_error=True, timeout=60
        )
        assert refused["error"] and "offline" in str(refused["error"])
    finally:
        owner.close()
        analyst.close()
