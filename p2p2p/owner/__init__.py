"""The owner's side of sharing: everything that runs on the machine holding the data.

* ``service``: ``OwnerService``, the whole owner as one object (shares, their tunnels,
  an embedded relay, dashboards). ``p2p2p share`` runs it in its own process, the
  Jupyter server extension on the server's loop, a plain kernel on a thread.
* ``shares``: which stores are shared, under which ids, token hashes and limits.
* ``api/``: the share's HTTP API, behind one gate (token, cookie, allowed paths).
* ``tunnel``: the outbound tunnel to a relay, reconnecting by itself.
* ``voila``: the Voila process of a share; ``upstream``: forwarding to it.
* ``audit``: the hash-chained log of every query. ``notes``: the notes a share keeps.
* ``snapshots``: serving a copy of a store the owner's notebook still writes to.
"""
