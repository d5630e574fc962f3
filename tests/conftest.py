from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from p2p2p.samples.sales import build_sample_store
from p2p2p.store.executor import Executor
from p2p2p.store.limits import Limits

from .helpers import REPO
from .helpers.browser import free_port
from .helpers.sharing import Relay


@pytest.fixture(scope="session")
def sample_store(tmp_path_factory: pytest.TempPathFactory) -> str:
    return build_sample_store(tmp_path_factory.mktemp("store") / "sample.duckdb", rows=20_000)


@pytest.fixture
def executor(sample_store: str) -> Iterator[Executor]:
    with Executor(sample_store, Limits(timeout_s=5, workers=2, memory_limit_mb=256)) as ex:
        yield ex


@pytest.fixture(scope="module")
def relay() -> Iterator[Relay]:
    """A real relay process, shared by the tests of one module."""
    process = Relay()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    """A small web app on loopback (tests/helpers/upstream_app.py) to put behind a share."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.helpers.upstream_app", str(port)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    yield f"http://127.0.0.1:{port}"
    proc.kill()
    proc.wait(10)


@pytest.fixture(autouse=True)
def p2p2p_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own config dir: no test reads or writes the real one."""
    home = tmp_path / "p2p2p-home"
    monkeypatch.setenv("P2P2P_HOME", str(home))
    return home
