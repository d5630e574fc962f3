"""The wire formats, sans-I/O: bytes and dicts in, bytes and events out, no sockets.

* ``tunnel``: many HTTP requests and WebSocket sessions over one websocket between a
  relay and an owner, with per-stream credit (and how a response head and WebSocket
  messages ride on a stream).
* ``envelope``: end-to-end encryption between a program and a share's owner.
* ``registration``: an owner proving to a relay that it may serve its share ids.
* ``shareid``: self-certifying share ids (hash of the owner key and the share name).
* ``notes``: the signed note format, its canonical bytes and its check.
* ``pulls``: the page a subscriber asks an owner for (``--allow-pull``).

The asyncio layer around ``tunnel`` is ``p2p2p.aio.tunnel``. Nothing here imports
Jupyter, tornado, websockets or httpx.
"""
