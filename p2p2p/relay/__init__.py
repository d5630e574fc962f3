"""The relay: a stateless pipe between share links and owners' outbound tunnels.

Owners dial in (``tunnels``), prove their share ids, and answer requests for
``/s/<share id>/…`` that the relay forwards through their tunnel (``forward``). The
relay keeps only an in-memory routing table (``routes``), so it stores nothing and can
restart at any time; ``directory`` lists the shares owners chose to list. ``app``
assembles it, standalone (``p2p2p relay``) or embedded in an owner's service.

Memory is bounded per stream by the tunnel's flow control: the owner may have at most
one window of response bytes in flight per request, and the relay returns credit only
after the client's connection has taken the bytes.
"""

from .app import make_app, serve
from .routes import Relay, RelayConfig

__all__ = ["Relay", "RelayConfig", "make_app", "serve"]
