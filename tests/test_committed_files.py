"""What is committed reads true on any machine: notebooks without outputs, and no notebook
or doc naming a path or a port that exists only where it was written."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from .helpers import REPO

# The ports the docs name on purpose: the embedded relay's and JupyterLab's defaults, and
# the TLS example in docs/relay.md. Any other loopback port was some run's free port.
DOCUMENTED_PORTS = {"8765", "8888", "8443"}
LOOPBACK_PORT = re.compile(r"(?:127\.0\.0\.1|localhost|\[::1\]):(\d+)")


def committed(*patterns: str) -> list[Path]:
    names = subprocess.run(
        ["git", "ls-files", "-z", *patterns],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    return [REPO / name.decode() for name in names if name]


def machine_paths() -> list[str]:
    """Absolute paths that belong to this machine: the checkout, the home, the temp dir."""
    home = str(Path.home())
    paths = [str(REPO), f"{tempfile.gettempdir()}/pytest-of-", f"{sys.prefix}/"]
    return paths + ([home + "/"] if home not in ("/", "/root") else ["/root/"])


@pytest.fixture(scope="module")
def in_git() -> None:
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout")


def test_committed_notebooks_carry_no_outputs(in_git: None) -> None:
    notebooks = committed("*.ipynb")
    assert notebooks, "no notebooks found"
    for path in notebooks:
        notebook = json.loads(path.read_text())
        for number, cell in enumerate(notebook["cells"], 1):
            if cell["cell_type"] != "code":
                continue
            where = f"{path.relative_to(REPO)} cell {number}"
            assert not cell.get("outputs"), f"{where} has outputs: run `make strip`"
            assert cell.get("execution_count") is None, f"{where} has a count: `make strip`"
        assert "widgets" not in notebook.get("metadata", {}), f"{path.name}: widget state"


def test_committed_notebooks_are_as_the_git_filter_writes_them(in_git: None) -> None:
    """`make test` sets up nbstripout as git's filter for notebooks: a notebook committed
    in any other form would show as changed after every test run."""
    notebooks = [str(p) for p in committed("*.ipynb")]
    done = subprocess.run(
        [sys.executable, "-m", "nbstripout", "--verify", *notebooks],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, f"run `make strip`: {done.stdout}{done.stderr}"


def test_no_notebook_or_doc_names_a_path_or_port_of_this_machine(in_git: None) -> None:
    files = committed("*.md", "*.ipynb", "*.txt", "*.toml", "*.json")
    assert len(files) > 5
    found = []
    for path in files:
        text = path.read_text(errors="replace")
        for machine_path in machine_paths():
            if machine_path in text:
                found.append(f"{path.relative_to(REPO)} names {machine_path}")
        for port in LOOPBACK_PORT.findall(text):
            if port not in DOCUMENTED_PORTS:
                found.append(f"{path.relative_to(REPO)} names the loopback port {port}")
    assert not found, "\n".join(found)


def test_the_check_itself_sees_a_leaked_path_and_port() -> None:
    """The two patterns above, on text like the stale outputs they exist to catch."""
    leaked = f"store: {REPO}/notebooks/hospital.duckdb via http://127.0.0.1:36049/s/x"
    assert any(p in leaked for p in machine_paths())
    assert LOOPBACK_PORT.findall(leaked) == ["36049"]
    assert not set(LOOPBACK_PORT.findall("http://127.0.0.1:8765/s/x")) - DOCUMENTED_PORTS
