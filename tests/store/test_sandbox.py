"""What the worker's OS confinement actually stops, checked in a throwaway process."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from p2p2p.store.sandbox import landlock_abi


def run_confined(body: str, tmp_path: Path) -> str:
    script = textwrap.dedent(
        """
        import os, socket, sys
        from p2p2p.store import sandbox
        applied = sandbox.limit_resources(2048) + sandbox.landlock(sandbox.python_paths())
        def attempt(label, fn):
            try:
                fn()
                print(label, "ALLOWED")
            except OSError as exc:
                print(label, "blocked", type(exc).__name__)
        """
    ) + textwrap.dedent(body)
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_no_file_writes(tmp_path: Path) -> None:
    out = run_confined(
        f"attempt('write', lambda: open({str(tmp_path / 'x.txt')!r}, 'w').write('data'))", tmp_path
    )
    assert "write blocked" in out
    assert not (tmp_path / "x.txt").exists() or (tmp_path / "x.txt").stat().st_size == 0


@pytest.mark.skipif(landlock_abi() < 1, reason="this kernel has no Landlock")
def test_no_reading_outside_python(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("owner's private file")
    out = run_confined(
        f"""
        attempt('secret', lambda: open({str(secret)!r}).read())
        attempt('passwd', lambda: open('/etc/passwd').read())
        attempt('environ', lambda: open('/proc/1/environ', 'rb').read())
        attempt('stdlib', lambda: open(os.__file__).read())
        """,
        tmp_path,
    )
    assert "secret blocked" in out and "passwd blocked" in out and "environ blocked" in out
    assert "stdlib ALLOWED" in out  # the interpreter itself stays readable


@pytest.mark.skipif(landlock_abi() < 4, reason="this kernel's Landlock cannot restrict TCP")
def test_no_network(tmp_path: Path) -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    try:
        out = run_confined(
            f"""
            def connect():
                s = socket.socket()
                s.settimeout(5)
                s.connect(("127.0.0.1", {port}))
            attempt('connect', connect)
            """,
            tmp_path,
        )
    finally:
        server.close()
    assert "connect blocked" in out
