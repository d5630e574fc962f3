"""The tour notebooks as the demo runs them: in a real Jupyter server whose p2p2p extension
hosts the shares (nbval runs them in plain kernels, where shares live in the kernel).

The demo's own share (``hospital``, its link in ``hospital-link.txt``) is made first, as
``p2p2p demo`` makes it; the tours then run in the documented order, in the other order
and twice in a row, and none of them may stop what it did not start."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from p2p2p.samples.hospital import build_hospital_store

from ..helpers import NOTEBOOKS
from ..helpers.jupyter import JupyterServer, Kernel

pytestmark = pytest.mark.timeout(900)


def code_cells(name: str) -> list[tuple[str, bool]]:
    """(source, expected to raise) for each code cell of a notebook, in order."""
    notebook = json.loads((NOTEBOOKS / name).read_text())
    return [
        ("".join(cell["source"]), "raises-exception" in cell.get("metadata", {}).get("tags", []))
        for cell in notebook["cells"]
        if cell["cell_type"] == "code"
    ]


def run_all(kernel: Kernel, name: str) -> list[dict[str, object]]:
    """Run All, as JupyterLab does: a cell tagged to raise must raise, and show only the
    one line that says why; any other error fails."""
    results = []
    for source, raises in code_cells(name):
        result = kernel.run(source, timeout=180, allow_error=raises)
        if raises:
            error = str(result["error"])
            assert result["error"], f"expected this cell to be refused:\n{source}"
            assert "Traceback" not in error and 'File "' not in error, error
            assert len(error.splitlines()) <= 2, error
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


@pytest.fixture(scope="module")
def demo_link(server: JupyterServer) -> Iterator[str]:
    """The demo's share, made the way `p2p2p demo` makes it, and its link file."""
    demo = server.kernel()
    demo.run("%load_ext p2p2p")
    demo.run("shared = %share hospital.duckdb --dashboard hospital-dashboard.ipynb", timeout=180)
    link = str(demo.value("shared.status['link']"))
    root = Path(server.proc.args[-1].split("=", 1)[1])
    (root / "hospital-link.txt").write_text(link + "\n")
    yield link
    demo.close()


def still_live(link: str) -> bool:
    import p2p2p

    return int(p2p2p.connect(link).query("SELECT count(*) AS n FROM sites")["n"][0]) == 4


def test_the_tours_in_any_order_and_twice_never_stop_the_demos_share(
    server: JupyterServer, demo_link: str
) -> None:
    for order in (("owner", "analyst"), ("analyst", "owner")):
        for who in order:
            kernel = server.kernel()
            try:
                shown = run_all(kernel, f"{who}-tour.ipynb")
            finally:
                kernel.close()
            everything = "".join(str(r["stdout"]) + str(r["data"]) for r in shown)
            assert "shares run inside this kernel" not in everything
            assert still_live(demo_link), f"the {who} tour stopped the demo's share"
            if who == "owner":
                # Its own share came and went; the demo's is listed as live at the end.
                assert "share hospital-tour · live" in everything
                assert "hospital" in str(shown[-1]["data"]) + str(shown[-1]["stdout"])
    # The analyst's notes reached the demo's share, verified.
    owner = server.kernel()
    try:
        owner.run("%load_ext p2p2p")
        panel = owner.run("%p2p notes hospital")["data"]
        text = "".join(str(bundle.get("text/plain", "")) for bundle in panel)
        assert "verified" in text and "Osterfeld" in text, text[:2000]
    finally:
        owner.close()


def test_a_revoked_link_says_so_rather_than_blaming_the_relay(
    server: JupyterServer, demo_link: str
) -> None:
    kernel = server.kernel()
    try:
        kernel.run("%load_ext p2p2p")
        made = kernel.run("gone = %share hospital.duckdb --name gone --no-dashboard")
        assert not made["error"]
        link = str(kernel.value("gone.status['link']"))
        kernel.run("%unshare gone")
        answer = kernel.run(f"%%p2pquery {link}\nSELECT 1", allow_error=True)
        assert "offline or has been revoked" in str(answer["error"]), answer
        assert "cannot reach the relay" not in str(answer["error"])
        base = link.split("/s/")[0]
        assert httpx.get(f"{base}/healthz", timeout=5).json()["ok"]  # the relay is up
    finally:
        kernel.close()
