"""The Jupyter server extension: shares live in the server process.

Enabled by the jupyter-config file that ``pip install`` puts in place. On start it runs
an ``OwnerService`` on the server's event loop and a control endpoint on a loopback port
of its own, and puts that URL and a fresh secret into the environment every kernel of
this server inherits; ``%share`` in those kernels uses it. So a share survives kernel
restarts, and stopping the server revokes every share.

The same URL and secret are written, readable by this user only, to
``p2p2p-control-<server pid>.json`` in Jupyter's runtime directory, beside the server's
own ``jpserver-<pid>.json`` (which holds its token the same way): that is how
``p2p2p demo`` asks the server it started to share the demo store.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from jupyter_server.extension.application import ExtensionApp

from ..aio.web import listen
from ..identity import Identity
from ..owner.service import OwnerService
from ..paths import write_private_json
from .control import SECRET_ENV, URL_ENV, make_control_app


class P2P2PExtension(ExtensionApp):
    name = "p2p2p"
    load_other_extensions = True

    service: OwnerService | None = None
    control: Any = None
    control_file: Path | None = None

    def initialize_settings(self) -> None:
        identity, created = Identity.load_or_create()
        if created:
            self.log.info("p2p2p: created this machine's owner key %s", identity.fingerprint)
        self.service = OwnerService(identity)
        secret = secrets.token_urlsafe(32)
        self.control, port = listen(make_control_app(self.service, secret), "127.0.0.1", 0)
        # Kernels this server starts inherit the environment: that is how they find us.
        os.environ[URL_ENV] = f"http://127.0.0.1:{port}"
        os.environ[SECRET_ENV] = secret
        assert self.serverapp is not None  # set by jupyter_server before this is called
        self.control_file = control_file(self.serverapp.runtime_dir, os.getpid())
        write_private_json(self.control_file, {"url": os.environ[URL_ENV], "secret": secret})
        self.log.info("p2p2p: %%share in this server's kernels is hosted here")

    async def stop_extension(self) -> None:
        if self.control is not None:
            self.control.stop()
        if self.control_file is not None:
            self.control_file.unlink(missing_ok=True)
        if self.service is not None:
            await self.service.close()


def control_file(runtime_dir: str | os.PathLike[str], pid: int) -> Path:
    return Path(runtime_dir) / f"p2p2p-control-{pid}.json"
