"""The package's shape, read from its source: pure rooms stay pure, lower rooms never
import higher ones, and every module says what it is for."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "p2p2p"
# Web frameworks, network clients and Jupyter: what the pure rooms must never need.
IMPURE = {
    "httpx",
    "IPython",
    "ipykernel",
    "ipywidgets",
    "jupyter_client",
    "jupyter_core",
    "jupyter_server",
    "tornado",
    "voila",
    "websockets",
}
PURE_ROOMS = ("store", "protocol")
# Who may import whom: a module may import its own room and any lower one.
RANK = {
    "errors": 0,
    "identity": 0,
    "paths": 0,
    "pages": 0,
    "store": 1,
    "protocol": 1,
    "aio": 2,
    "client": 2,
    "owner": 3,
    "relay": 3,
    "server_ext": 4,
    "kernel_ext": 4,
    "widgets": 4,
    "dashboards": 4,
    "samples": 4,
    "cli": 5,
    "__main__": 5,
    "__init__": 5,
}


def modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def room(path: Path) -> str:
    return path.relative_to(PACKAGE).with_suffix("").parts[0]


def imported(path: Path) -> set[str]:
    """Every absolute module name ``path`` imports, anywhere in it (lazy imports too)."""
    tree = ast.parse(path.read_text())
    package = ["p2p2p", *path.relative_to(PACKAGE).parent.parts]
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
                names.update(f"{module}.{alias.name}" for alias in node.names)
                names.add(module)
            elif node.module:
                names.add(node.module)
    return names


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_lower_rooms_never_import_higher_ones(path: Path) -> None:
    own = RANK[room(path)]
    for name in imported(path):
        parts = name.split(".")
        if parts[0] != "p2p2p" or len(parts) < 2 or parts[1] not in RANK:
            continue
        assert RANK[parts[1]] <= own, f"{path.relative_to(PACKAGE)} imports {name}"


@pytest.mark.parametrize(
    "path",
    [p for p in modules() if room(p) in PURE_ROOMS],
    ids=lambda p: str(p.relative_to(PACKAGE)),
)
def test_store_and_protocol_import_no_framework_or_network_client(path: Path) -> None:
    found = {name for name in imported(path) if name.split(".")[0] in IMPURE}
    assert not found, f"{path.relative_to(PACKAGE)} imports {sorted(found)}"


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_every_module_opens_with_what_it_is_for(path: Path) -> None:
    tree = ast.parse(path.read_text())
    if not tree.body:  # an empty __init__ of a namespace-like folder
        pytest.fail(f"{path.relative_to(PACKAGE)} is empty: say what the room holds")
    docstring = ast.get_docstring(tree)
    if path.name == "__main__.py":
        return
    assert docstring and len(docstring) > 20, f"{path.relative_to(PACKAGE)} has no docstring"


def test_every_error_has_its_own_code_and_a_status() -> None:
    import p2p2p
    from p2p2p import errors

    types = [getattr(errors, name) for name in errors.__all__]
    codes = [t.code for t in types]
    assert len(codes) == len(set(codes))
    for error in types:
        assert issubclass(error, errors.P2P2PError)
        assert 400 <= error.status <= 599
        assert getattr(p2p2p, error.__name__) is error  # the top level offers each one
    refused = errors.P2P2PError.from_dict(errors.QueryRefused("writes", "no").to_dict())
    assert isinstance(refused, errors.QueryRefused) and refused.rule == "writes"
    unknown = errors.P2P2PError.from_dict({"code": "from-a-newer-peer", "message": "hm"})
    assert type(unknown) is errors.P2P2PError and unknown.message == "hm"


def test_a_dashboard_kernel_loads_neither_duckdb_nor_pandas() -> None:
    """A dashboard's kernel (one per viewer, on the owner's machine) reads the share
    through its link: DuckDB and pandas would cost each viewer ~50 MB and half a second
    of start-up for nothing until its SQL box shows a result."""
    import subprocess
    import sys

    code = (
        "import sys, p2p2p.dashboards.view, p2p2p.widgets.explorer, p2p2p.widgets.sql_box\n"
        "from p2p2p.widgets import TableExplorer, SqlBox\n"
        "print(sorted({'duckdb', 'pandas'} & set(sys.modules)))"
    )
    found = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert found.stdout.strip() == "[]", found.stdout + found.stderr
