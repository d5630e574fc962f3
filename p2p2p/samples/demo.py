"""``p2p2p demo``: the whole product on one machine, from one command.

Builds the hospital store, starts JupyterLab (whose server extension hosts the relay and
the share), shares the store with its dashboard through the server's control endpoint,
and prints the viewer link (with a QR code) and the JupyterLab URL. Ctrl+C revokes the
share first, then stops JupyterLab.

JupyterLab runs in its own session, so the terminal's Ctrl+C reaches only this process,
which then shuts things down in order (JupyterLab would otherwise ask "Shutdown this
Jupyter server (y/[n])?" on the first SIGINT).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from io import StringIO
from pathlib import Path
from typing import Any

import httpx

from ..errors import DemoFailed
from ..store.sandbox import die_with_parent
from .hospital import build_hospital_store

STORE = "hospital.duckdb"
LINK_FILE = "hospital-link.txt"  # where the analyst tour finds the link the demo printed
DASHBOARD = "hospital-dashboard.ipynb"
TOUR = "owner-tour.ipynb"
NOTEBOOKS = ("owner-tour.ipynb", "analyst-tour.ipynb", DASHBOARD, "quickstart.ipynb")
START_TIMEOUT_S = 180.0
# JupyterLab settings for the demo only (its own settings folder, never the user's): no
# "get notified about Jupyter news?" prompt over the tour a newcomer came to read.
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": False}
}
SHARE_TIMEOUT_S = 180.0

Print = Callable[[str], None]


def notebook_source(name: str) -> Path:
    """A shipped notebook: inside the wheel, or the repository's copy (editable install)."""
    here = Path(__file__).resolve().parent.parent  # the p2p2p package
    for candidate in (here / "_notebooks" / name, here.parent / "notebooks" / name):
        if candidate.is_file():
            return candidate
    raise DemoFailed(f"the notebook {name} is missing from this installation")


def prepare(workdir: Path, reset: bool, scale: float, say: Print) -> Path:
    """The demo folder: the store (built once) and the notebooks (copied once)."""
    workdir.mkdir(parents=True, exist_ok=True)
    store = workdir / STORE
    if store.exists() and not reset:
        say(f"[1/4] hospital store: {store} (already built; --reset rebuilds it)")
    else:
        say(f"[1/4] building the hospital store {store} (deterministic, ~1,000,000 rows)")
        started = time.monotonic()
        info = build_hospital_store(
            store,
            scale=scale,
            progress=lambda table, rows: say(f"      {table:<15} {rows:>9,} rows"),
        )
        say(f"      {info.total_rows:,} rows in {time.monotonic() - started:.1f} s")
    for name in NOTEBOOKS:
        target = workdir / name
        if reset or not target.exists():
            shutil.copyfile(notebook_source(name), target)
    say(f"[2/4] notebooks: {', '.join(NOTEBOOKS)} in {workdir}")
    settings = workdir / "lab-settings"
    settings.mkdir(exist_ok=True)
    (settings / "overrides.json").write_text(json.dumps(LAB_SETTINGS, indent=2) + "\n")
    return store


def runtime_dir() -> Path:
    from jupyter_core.paths import jupyter_runtime_dir

    return Path(jupyter_runtime_dir())


def wait_for_files(process: subprocess.Popen[bytes], paths: list[Path], log: Path) -> list[Any]:
    """The JSON in ``paths`` once all exist, or a DemoFailed naming why JupyterLab is not up."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text(errors="replace").splitlines()[-15:]
            raise DemoFailed(
                "JupyterLab exited while starting; the end of its log "
                f"({log}):\n  " + "\n  ".join(tail)
            )
        try:
            return [json.loads(p.read_text()) for p in paths]
        except (OSError, ValueError):
            time.sleep(0.25)  # not written yet (or half written)
    raise DemoFailed(f"JupyterLab did not start within {START_TIMEOUT_S:.0f} s; see {log}")


def terminal_qr(link: str) -> str:
    import segno

    out = StringIO()
    segno.make(link, error="l").terminal(out=out, compact=True, border=2)
    return out.getvalue()


def stop(process: subprocess.Popen[bytes], control: dict[str, str] | None, say: Print) -> None:
    """Revoke first (the link must die even if JupyterLab hangs), then stop JupyterLab."""
    if control is not None and process.poll() is None:
        try:
            answer = httpx.delete(
                control["url"] + "/shares/*",
                headers={"Authorization": f"Bearer {control['secret']}"},
                timeout=15,
            )
            stopped = answer.json().get("stopped", [])
            say(f"revoked: {', '.join(stopped) or 'nothing was shared'}")
        except (httpx.HTTPError, ValueError) as exc:
            say(f"could not revoke through JupyterLab ({exc}); stopping it revokes the share")
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    say("JupyterLab stopped. Nothing of the store is reachable any more.")


def run(
    workdir: Path,
    host: str = "127.0.0.1",
    port: int = 8888,
    reset: bool = False,
    lab: bool = True,
    scale: float = 1.0,
    say: Print = print,
) -> int:
    workdir = workdir.resolve()
    store = prepare(workdir, reset, scale, say)
    if not lab:
        say("[3/4] skipped JupyterLab and the share (--no-lab)")
        return 0
    token = os.environ.get("JUPYTER_TOKEN") or secrets.token_urlsafe(24)
    log = workdir / "jupyterlab.log"
    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        f"--ServerApp.root_dir={workdir}",
        f"--ServerApp.ip={host}",
        f"--ServerApp.port={port}",
        f"--LabApp.app_settings_dir={workdir / 'lab-settings'}",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")
    say(f"[3/4] starting JupyterLab (it hosts the relay and the share; log: {log})")
    with open(log, "ab") as log_handle:
        process = subprocess.Popen(
            command,
            cwd=workdir,
            env={**os.environ, "JUPYTER_TOKEN": token},
            stdin=subprocess.DEVNULL,
            stdout=log_handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent,  # the demo killed outright still revokes
        )
    control: dict[str, str] | None = None
    # SIGTERM (a service manager, `kill`) stops the demo as cleanly as Ctrl+C does.
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    # Ctrl+C stops it however it was started: a shell's background job starts a process
    # with SIGINT ignored, and Python keeps that unless told otherwise.
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        files = runtime_dir()
        server, control = wait_for_files(
            process,
            [files / f"jpserver-{process.pid}.json", files / f"p2p2p-control-{process.pid}.json"],
            log,
        )
        assert control is not None
        say(f"[4/4] sharing {STORE} with its dashboard (starting Voila takes a few seconds)")
        answer = httpx.post(
            control["url"] + "/shares",
            headers={"Authorization": f"Bearer {control['secret']}"},
            json={"path": str(store), "dashboard": str(workdir / DASHBOARD)},
            timeout=SHARE_TIMEOUT_S,
        )
        status = answer.json()
        if answer.status_code != 201:
            raise DemoFailed(f"sharing the store failed: {status.get('message', status)}")
        link = status["link"]
        (workdir / LINK_FILE).write_text(link + "\n")
        lab_url = f"{server['url'].rstrip('/')}/lab/tree/{TOUR}?token={token}"
        say("")
        say("Viewer link: open it in any browser (the dashboard, no login), or scan it:")
        say(f"  {link}")
        say(terminal_qr(link))
        say("JupyterLab, on the owner's tour (analyst-tour.ipynb is beside it):")
        say(f"  {lab_url}")
        say("")
        say("Ctrl+C revokes the link and stops everything.")
        process.wait()
        say(f"JupyterLab exited by itself (code {process.returncode}); see {log}")
        return 1
    except KeyboardInterrupt:
        say("\nstopping…")
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)
        stop(process, control, say)
        (workdir / LINK_FILE).unlink(missing_ok=True)
