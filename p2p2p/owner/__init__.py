"""The owner's side of sharing: shares, their API, and the outbound tunnel to a relay.

Host-agnostic: ``p2p2p share`` runs it in its own process; the Jupyter server extension
will run the same objects inside the server.
"""
