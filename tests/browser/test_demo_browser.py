"""`p2p2p demo` as a newcomer meets it: JupyterLab in a real browser, the notebook run."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from ..helpers import NOTEBOOKS, SCREENSHOTS, rows_of
from ..helpers.browser import browser_page, free_port
from ..helpers.sharing import descendants

NOTEBOOK = NOTEBOOKS / "quickstart.ipynb"


def wait_for_lab(port: int, process: subprocess.Popen[bytes], seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, "the demo exited before JupyterLab answered"
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"JupyterLab did not answer on port {port} within {seconds} s")


class Lines:
    """A process's output, read as it comes (a pipe nobody reads would block it)."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self.lines: list[str] = []
        assert process.stdout is not None
        stream = process.stdout
        self._reader = threading.Thread(
            target=lambda: self.lines.extend(line.decode(errors="replace") for line in stream),
            daemon=True,
        )
        self._reader.start()

    def wait_for(self, pattern: str, seconds: float = 180) -> re.Match[str]:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for line in list(self.lines):
                found = re.search(pattern, line)
                if found:
                    return found
            time.sleep(0.2)
        raise AssertionError(f"no {pattern!r} in the demo's output:\n{''.join(self.lines)}")


def start_demo(
    tmp_path: Path, workdir: Path, port: int, token: str, user_settings: Path
) -> subprocess.Popen[bytes]:
    """`p2p2p demo`, with JupyterLab's app object exposed so the test can drive its own
    commands instead of guessing at keystrokes."""
    config_dir = tmp_path / "jupyter-config"
    config_dir.mkdir(exist_ok=True)
    (config_dir / "jupyter_server_config.json").write_text(
        json.dumps({"LabApp": {"expose_app_in_browser": True}})
    )
    return subprocess.Popen(
        [sys.executable, "-m", "p2p2p", "demo", "--dir", str(workdir), "--port", str(port)],
        env={
            **os.environ,
            "JUPYTER_TOKEN": token,
            "JUPYTERLAB_SETTINGS_DIR": str(user_settings),
            "JUPYTER_CONFIG_DIR": str(config_dir),
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def cases_in_2025(workdir: Path) -> int:
    """The demo dashboard's headline for the year it opens on (its figures follow the
    year and site a viewer picks)."""
    sql = "SELECT count(*) FROM cases WHERE year(admitted) = 2025"
    return int(rows_of(workdir / "hospital.duckdb", sql)[0][0])


def test_demo_notebook_runs_in_jupyterlab(tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    workdir.mkdir()
    # Start from the notebook without its stored outputs, so what we see was computed now.
    notebook = json.loads(NOTEBOOK.read_text())
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
    (workdir / "quickstart.ipynb").write_text(json.dumps(notebook))
    # Render every cell (JupyterLab 4 windows long notebooks); the demo skips the news prompt.
    settings = tmp_path / "lab-settings" / "@jupyterlab"
    (settings / "notebook-extension").mkdir(parents=True)
    (settings / "notebook-extension" / "tracker.jupyterlab-settings").write_text(
        '{"windowingMode": "none"}'
    )
    port = free_port()
    token = "p2p2p-test-token"
    process = start_demo(tmp_path, workdir, port, token, tmp_path / "lab-settings")
    output = Lines(process)
    try:
        wait_for_lab(port, process)
        # The demo prints the viewer link once the share and its dashboard are up.
        link = output.wait_for(r"(http://127\.0\.0\.1:\d+/s/[a-z0-9]+/\?t=\S+)").group(1)
        output.wait_for(rf"http://127\.0\.0\.1:{port}/lab/tree/owner-tour\.ipynb\?token={token}")
        assert (workdir / "hospital.duckdb").is_file()
        assert (workdir / "hospital-link.txt").read_text().strip() == link
        with browser_page(390, 844) as page:
            page.goto(link, wait_until="domcontentloaded", timeout=120_000)
            page.get_by_text("top materials by spend, All sites 2025").wait_for(timeout=120_000)
            assert f"{cases_in_2025(workdir):,}" in page.locator("body").inner_text()
        with browser_page(1280, 1000) as page:
            page.goto(f"http://127.0.0.1:{port}/lab/tree/quickstart.ipynb?token={token}")
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
            # Wait for the kernel, then Run > Run All Cells through the command palette.
            page.wait_for_function("window.jupyterapp !== undefined", timeout=60_000)
            # JupyterLab may ask which kernel to start; the notebook's own (Python 3) is preselected.
            deadline = time.monotonic() + 120
            while not page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").count():
                assert time.monotonic() < deadline, "the kernel did not start"
                select = page.locator(".jp-Dialog button", has_text="Select")
                if select.count():
                    select.first.click()
                page.wait_for_timeout(500)
            # Right after start-up JupyterLab can drop a run request while the kernel
            # connection settles; ask again (bounded) until the first cell has run.
            for _attempt in range(4):
                page.wait_for_timeout(2000)
                page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
                try:
                    page.get_by_text("4 rows ·").first.wait_for(timeout=30_000)
                    break
                except Exception:
                    continue
            try:
                page.get_by_text("4 rows ·").first.wait_for(timeout=120_000)
            except Exception:
                page.screenshot(path=str(tmp_path / "failure.png"))
                raise
            page.get_by_text("table-function-not-allowed").first.wait_for(timeout=60_000)
            page.get_by_text("TRUNCATED by max_rows").first.wait_for(timeout=60_000)
            page.get_by_text("read-only-kind").first.wait_for(timeout=60_000)
            result = page.locator(".p2p2p-result-table").first
            assert "north" in result.inner_text() and "643464.74" in result.inner_text()
            result.scroll_into_view_if_needed()
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / "quickstart-jupyterlab.png"), full_page=False)
            # %share: hosted by the server extension (no in-kernel note), live, and the
            # remote query through its link answered.
            status = page.locator(".p2p2p-share-status").first
            status.get_by_text("live").first.wait_for(timeout=60_000)
            text = status.inner_text()
            assert "this machine" in text and "embedded" in text, text
            assert "/s/" in status.locator("input").first.input_value()
            page.get_by_text("5111").first.wait_for(timeout=60_000)
            # The remote query reached the owner: the widget's live audit tail shows it.
            status.get_by_text("count(*) AS sales").first.wait_for(timeout=30_000)
            assert not page.get_by_text("shares run inside this kernel").count()
            status.scroll_into_view_if_needed()
            page.wait_for_timeout(1500)  # the live counters refresh once a second
            page.screenshot(path=str(SCREENSHOTS / "share-widget-jupyterlab.png"), full_page=False)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            raise AssertionError("the demo did not stop on Ctrl+C within 60 s") from None
    assert process.returncode == 0, "".join(output.lines)
    output.wait_for(r"revoked: hospital", seconds=5)
    # Revoked and stopped: nothing answers at the link any more.
    try:
        answer = httpx.get(link, timeout=5)
        assert answer.status_code >= 400, answer.status_code
    except httpx.ConnectError:
        pass
    assert not (workdir / "hospital-link.txt").exists()


@pytest.mark.parametrize("stop_with", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "term"])
def test_the_demo_stops_even_as_a_background_job(tmp_path: Path, stop_with: int) -> None:
    # A shell starts a background job with SIGINT ignored (and nohup ignores more);
    # Python keeps that unless told otherwise.
    port = free_port()
    command = ["demo", "--dir", str(tmp_path / "demo"), "--port", str(port), "--scale", "0.02"]

    def ignore_signals() -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)

    process = subprocess.Popen(
        [sys.executable, "-m", "p2p2p", *command],
        env={**os.environ, "JUPYTER_TOKEN": "t", "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "s")},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        preexec_fn=ignore_signals,
    )
    output = Lines(process)
    try:
        output.wait_for(r"Ctrl\+C revokes the link")
        below = descendants(process.pid)
        assert below, "the demo started nothing"
        process.send_signal(stop_with)
        assert process.wait(timeout=60) == 0, "".join(output.lines)
    finally:
        if process.poll() is None:
            process.kill()
    output.wait_for(r"revoked: hospital", seconds=5)
    deadline = time.monotonic() + 15
    while [pid for pid in below if Path(f"/proc/{pid}").exists()]:
        assert time.monotonic() < deadline, f"left running: {below}"
        time.sleep(0.2)


# -- the quick start as docs/quickstart.md gives it ----------------------------------------
NOTEBOOK_STATE = """() => {
  const panel = window.jupyterapp.shell.currentWidget;
  if (!panel || !panel.model || !panel.sessionContext) return null;
  const cells = [];
  for (let i = 0; i < panel.model.cells.length; i++) cells.push(panel.model.cells.get(i).toJSON());
  const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
  return {path: panel.context.path, kernel: kernel ? kernel.status : null, cells};
}"""


def lab_run_all(page: Any, name: str, seconds: float = 300) -> list[dict[str, Any]]:
    """Open a notebook in JupyterLab, Run All from its command, and wait until every code
    cell ran; returns the cells as saved (nbformat), outputs included."""
    page.evaluate(f"window.jupyterapp.commands.execute('docmanager:open', {{path: {name!r}}})")
    deadline = time.monotonic() + 120
    while True:  # bounded: the notebook opens and its kernel starts
        state = page.evaluate(NOTEBOOK_STATE)
        if state and state["path"] == name and state["kernel"] == "idle":
            break
        assert time.monotonic() < deadline, f"{name}: no idle kernel ({state and state['kernel']})"
        select = page.locator(".jp-Dialog button", has_text="Select")
        if select.count():
            select.first.click()
        page.wait_for_timeout(500)
    code = [c for c in state["cells"] if c["cell_type"] == "code"]
    deadline = time.monotonic() + seconds
    for _attempt in range(4):  # right after start-up a run request can be dropped: ask again
        page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
        page.wait_for_timeout(3000)
        state = page.evaluate(NOTEBOOK_STATE)
        if any(c["cell_type"] == "code" and c.get("execution_count") for c in state["cells"]):
            break
    while True:
        state = page.evaluate(NOTEBOOK_STATE)
        code = [c for c in state["cells"] if c["cell_type"] == "code"]
        for cell in code:
            tagged = "raises-exception" in cell.get("metadata", {}).get("tags", [])
            for output in cell.get("outputs", []):
                if output["output_type"] == "error" and not tagged:
                    raise AssertionError(
                        f"{name}: a cell failed:\n{''.join(cell['source'])}\n{output}"
                    )
        if all(c.get("execution_count") for c in code) and state["kernel"] == "idle":
            return code
        assert time.monotonic() < deadline, f"{name}: Run All did not finish in {seconds} s"
        page.wait_for_timeout(1000)


def shown_errors(cells: list[dict[str, Any]]) -> list[str]:
    """What a newcomer sees in red: error outputs and anything written to stderr."""
    seen = []
    for cell in cells:
        for output in cell.get("outputs", []):
            if output["output_type"] == "error":
                seen.append("\n".join(output.get("traceback", [])))
            elif output["output_type"] == "stream" and output.get("name") == "stderr":
                seen.append(str(output.get("text", "")))
    return seen


def test_the_quickstart_as_written(tmp_path: Path) -> None:
    """`make demo`, the owner tour Run All, the analyst tour Run All, the link on a phone,
    Ctrl+C: no traceback, no stray output, the dashboard says offline, nothing left."""
    workdir = tmp_path / "demo"
    port = free_port()
    token = "p2p2p-quickstart"
    # A newcomer's JupyterLab settings: none (the demo brings its own).
    process = start_demo(tmp_path, workdir, port, token, tmp_path / "user-settings")
    output = Lines(process)
    started: list[int] = []
    try:
        link = output.wait_for(r"(http://127\.0\.0\.1:\d+/s/[a-z0-9]+/\?t=\S+)").group(1)
        lab = output.wait_for(rf"(http://127\.0\.0\.1:{port}/lab/tree/owner-tour\.ipynb\S+)").group(
            1
        )
        with browser_page(1280, 1000) as page:
            page.goto(lab)
            page.wait_for_function("window.jupyterapp !== undefined", timeout=120_000)
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
            owner = lab_run_all(page, "owner-tour.ipynb")
            analyst = lab_run_all(page, "analyst-tour.ipynb")
            # JupyterLab did not ask about Jupyter news over the tour.
            assert not page.get_by_text("official Jupyter news").count()
        for name, cells in (("owner", owner), ("analyst", analyst)):
            for seen in shown_errors(cells):
                # Only the tagged, intended refusals: one line each, no traceback.
                assert "Traceback" not in seen and len(seen.strip().splitlines()) == 1, (name, seen)
        started = descendants(process.pid)
        with browser_page(390, 844) as phone:
            phone.goto(link, wait_until="domcontentloaded", timeout=120_000)
            phone.get_by_text("top materials by spend, All sites 2025").wait_for(timeout=120_000)
            body = phone.locator("body").inner_text()
            assert f"{cases_in_2025(workdir):,}" in body, body[:500]
            # The analyst tour's signed note is on the dashboard's panel.
            phone.get_by_text("Was there a price change with one supplier?").first.wait_for(
                timeout=30_000
            )
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            phone.screenshot(path=str(SCREENSHOTS / "hospital-dashboard-phone.png"), full_page=True)
            process.send_signal(signal.SIGINT)  # Ctrl+C
            phone.locator(".p2p2p-offline").wait_for(timeout=20_000)
            assert "This share is offline" in phone.locator(".p2p2p-offline").inner_text()
            phone.screenshot(path=str(tmp_path / "offline.png"))
        assert process.wait(timeout=60) == 0, "".join(output.lines)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
    output.wait_for(r"revoked: hospital", seconds=5)
    deadline = time.monotonic() + 15
    while [pid for pid in started if Path(f"/proc/{pid}").exists()]:
        assert time.monotonic() < deadline, f"left running: {started}"
        time.sleep(0.2)
