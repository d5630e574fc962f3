"""The Jupyter server extension: shares live in the server process.

Enabled by the jupyter-config file that ``pip install`` puts in place. On start it runs
an ``OwnerService`` on the server's event loop and a control endpoint on a loopback port
of its own, and puts that URL and a fresh secret into the environment every kernel of
this server inherits; ``%share`` in those kernels uses it. So a share survives kernel
restarts, and stopping the server revokes every share.
"""

from __future__ import annotations

import os
import secrets
from typing import Any

from jupyter_server.extension.application import ExtensionApp

from ..core.identity import Identity
from ..owner.service import OwnerService
from ..relay.app import listen
from .control import SECRET_ENV, URL_ENV, make_control_app


class P2P2PExtension(ExtensionApp):
    name = "p2p2p"
    load_other_extensions = True

    service: OwnerService | None = None
    control: Any = None

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
        self.log.info("p2p2p: %%share in this server's kernels is hosted here")

    async def stop_extension(self) -> None:
        if self.control is not None:
            self.control.stop()
        if self.service is not None:
            await self.service.close()
