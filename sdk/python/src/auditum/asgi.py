"""ASGI middleware (FastAPI, Starlette, Django's ASGI app, ...) that sets the request context.

    app.add_middleware(RequestContextMiddleware)                 # FastAPI / Starlette
    application = RequestContextMiddleware(get_asgi_application())  # Django (asgi.py)

Every client.log() made while the request is handled carries its request id (the caller's
`x-request-id`, or a new UUIDv7), correlation id (`x-correlation-id` or W3C `traceparent`),
source IP and user agent. Pure ASGI, so the context reaches the endpoint's task.
"""

from __future__ import annotations

from typing import Any

from .context import request_context
from .ids import new_id


class RequestContextMiddleware:
    def __init__(self, app: Any, trust_forwarded_for: bool = False) -> None:
        """trust_forwarded_for: take the source IP from X-Forwarded-For (only behind a proxy you run)."""
        self.app = app
        self.trust_forwarded_for = trust_forwarded_for

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope.get("type") not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope.get("headers") or []}
        client = scope.get("client")
        source_ip = client[0] if client else None
        if self.trust_forwarded_for and headers.get("x-forwarded-for"):
            source_ip = headers["x-forwarded-for"].split(",")[0].strip()
        with request_context(
            request_id=headers.get("x-request-id") or new_id(),
            correlation_id=headers.get("x-correlation-id") or headers.get("traceparent"),
            source_ip=source_ip,
            user_agent=headers.get("user-agent"),
        ):
            await self.app(scope, receive, send)
