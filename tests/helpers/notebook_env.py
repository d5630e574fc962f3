"""The live world the notebooks in notebooks/ run against when nbval runs them.

A real relay, the hospital store shared by a real ``p2p2p share`` process under an owner
identity of its own (the analyst tour connects to it through ``hospital-link.txt``, the
file ``p2p2p demo`` writes), and the notebooks' kernels on a second, separate identity
(``P2P2P_HOME``) that points at the same relay (``P2P2P_RELAY``) for the owner tour's
``%share``, and signs notes with a fixed name (``P2P2P_NAME``). Nothing touches the
user's own p2p2p config.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from p2p2p.samples.demo import LINK_FILE, STORE
from p2p2p.samples.hospital import build_hospital_store

from . import NOTEBOOKS
from .sharing import Relay, Share


@contextmanager
def notebook_environment() -> Iterator[str]:
    """Yields the link of the live hospital share; restores the environment after."""
    store = NOTEBOOKS / STORE
    if not store.exists():
        build_hospital_store(store)
    saved = {k: os.environ.get(k) for k in ("P2P2P_HOME", "P2P2P_RELAY", "P2P2P_NAME")}
    with tempfile.TemporaryDirectory(prefix="p2p2p-notebooks-") as tmp, ExitStack() as stack:
        relay = Relay()
        stack.callback(relay.stop)
        share = Share(str(store), relay.url, Path(tmp) / "owner", "--name", "hospital")
        stack.callback(share.stop)
        link_file = NOTEBOOKS / LINK_FILE
        link_file.write_text(share.link + "\n")
        stack.callback(link_file.unlink, missing_ok=True)
        os.environ["P2P2P_HOME"] = str(Path(tmp) / "reader")
        os.environ["P2P2P_RELAY"] = relay.url
        os.environ["P2P2P_NAME"] = "Dana (analyst)"  # notes are signed with a name; not the login's
        try:
            yield share.link
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
