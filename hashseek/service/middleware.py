"""ASGI middleware that answers in JSON: bugs (500), the request body limit (413) and the loopback host check."""
from __future__ import annotations

import logging

from fastapi import HTTPException
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hashseek.service.errors import bug_response

log = logging.getLogger(__name__)


class StartedSend:
    """A ``send`` that remembers whether the response has started: after that no other answer can be sent."""

    def __init__(self, send: Send):
        self.send = send
        self.started = False

    async def __call__(self, message: Message) -> None:
        self.started = self.started or message["type"] == "http.response.start"
        await self.send(message)


class BugsAnswered:
    """A bug (an exception no handler takes) is logged with its traceback and answered with the JSON 500
    here, and the connection stays usable. Left to Starlette's error middleware, it would be re-raised after
    the answer, and uvicorn would then close the connection, sometimes before the client had read the 500."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        tracked = StartedSend(send)
        try:
            await self.app(scope, receive, tracked)
        except HTTPException:   # raised outside the app's handlers (the body limit): answered further out
            raise
        except Exception as err:
            if tracked.started:
                raise
            log.error("bug while answering %s %s", scope["method"], scope["path"], exc_info=err)
            await bug_response()(scope, receive, send)


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int):
        super().__init__(413, f"the request body is larger than this server's limit of {limit:,} bytes "
                              "(hashseek serve --max-upload-mb)")


class BodyLimit:
    """Refuse a request whose body passes ``max_bytes``: at once when its Content-Length says so, else while
    the body streams in (chunked uploads). Raised inside the app, the error reaches the JSON handler of HTTP
    errors; raised anywhere else, it is answered here."""

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = Headers(scope=scope).get("content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            return await _answer(BodyTooLarge(self.max_bytes), scope, receive, send)
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        tracked = StartedSend(send)
        try:
            await self.app(scope, limited, tracked)
        except BodyTooLarge as err:
            if tracked.started:
                raise
            await _answer(err, scope, receive, send)


class AllowedHosts:
    """Answer only requests whose Host is one of ``hosts`` (a page of another site whose name resolves to
    127.0.0.1, DNS rebinding, gets 400)."""

    def __init__(self, app: ASGIApp, hosts: list[str]):
        self.app = app
        self.hosts = set(hosts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        host = _hostname(Headers(scope=scope).get("host", ""))
        if host not in self.hosts:
            detail = f"this server answers only to {', '.join(sorted(self.hosts))}, not to the host {host!r}"
            return await JSONResponse({"detail": detail}, 400)(scope, receive, send)
        await self.app(scope, receive, send)


def _hostname(host: str) -> str:
    """``host`` without its port; IPv6 literals keep their brackets."""
    if host.startswith("["):
        return host[: host.find("]") + 1]
    return host.rsplit(":", 1)[0]


async def _answer(err: HTTPException, scope: Scope, receive: Receive, send: Send) -> None:
    await JSONResponse({"detail": err.detail}, err.status_code)(scope, receive, send)
