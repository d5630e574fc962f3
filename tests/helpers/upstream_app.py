"""A stand-in for a share's dashboard server: a tiny tornado app on loopback.

``python -m tests.helpers.upstream_app PORT`` prints "ready" once listening. It records what
reached it (cookies, origins, authorization) at /s/<id>/seen, so tests can check what
the owner let through.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import tornado.web
import tornado.websocket

SEEN: list[dict[str, Any]] = []


def record(handler: tornado.web.RequestHandler, kind: str) -> None:
    SEEN.append(
        {
            "kind": kind,
            "path": handler.request.path,
            "cookie": handler.request.headers.get("Cookie", ""),
            "origin": handler.request.headers.get("Origin", ""),
            "authorization": handler.request.headers.get("Authorization", ""),
        }
    )


class Page(tornado.web.RequestHandler):
    def get(self) -> None:
        record(self, "page")
        self.set_cookie("first", "1")
        self.set_cookie("second", "2")
        self.finish("<!doctype html><title>dash</title><p id=hello>upstream page</p>")


class Seen(tornado.web.RequestHandler):
    def get(self) -> None:
        self.finish(json.dumps(SEEN))


class Slow(tornado.web.RequestHandler):
    """Answers after ``?s=`` seconds (at most 30): a request that holds a stream open."""

    async def get(self) -> None:
        await asyncio.sleep(min(30.0, float(self.get_argument("s", "5"))))
        self.finish("slow")


class Echo(tornado.websocket.WebSocketHandler):
    def open(self, *args: Any) -> None:
        record(self, "websocket")
        self.write_message("hello")

    def on_message(self, message: str | bytes) -> None:
        self.write_message(message, binary=isinstance(message, bytes))


async def main(port: int) -> None:
    app = tornado.web.Application(
        [
            (r"/s/[a-z2-7]+/page", Page),
            (r"/s/[a-z2-7]+/seen", Seen),
            (r"/s/[a-z2-7]+/echo", Echo),
            (r"/s/[a-z2-7]+/slow", Slow),
        ],
        websocket_max_message_size=16 << 20,
    )
    app.listen(port, address="127.0.0.1")
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
