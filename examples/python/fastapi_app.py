"""A FastAPI service that audits with auditum: the middleware sets the request context once per
request, and every client.log() inside the request carries its request id, IP and user agent.

    pip install ./sdk/python fastapi uvicorn
    AUDITUM_URL=http://127.0.0.1:50051 uvicorn fastapi_app:app --app-dir examples/python

Then `curl -X POST -H 'x-request-id: r-1' localhost:8000/users/u-99/role -d '{"role":"admin"}'`.
"""

import os
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request

from auditum import AuditClient, recommended_spool_dir, request_context
from auditum.asgi import RequestContextMiddleware

client = AuditClient(
    os.environ.get("AUDITUM_URL", "http://127.0.0.1:50051"),
    api_key=os.environ.get("AUDITUM_API_KEY"),
    tenant_id="acme",
    service="user-admin",
    spool_dir=os.environ.get("AUDITUM_SPOOL_DIR") or recommended_spool_dir("user-admin"),
)


@asynccontextmanager
async def lifespan(app: FastAPI):
    yield
    client.close(timeout=10)  # whatever is not delivered by then stays in the spool for next start


app = FastAPI(lifespan=lifespan)
app.add_middleware(RequestContextMiddleware)


@app.middleware("http")
async def authenticated_user(request: Request, call_next):
    # Your authentication decides the actor; every log() in this request then uses it.
    with request_context(actor={"id": request.headers.get("x-user", "anonymous"), "type": "user"}):
        return await call_next(request)


@app.post("/users/{user_id}/role")
async def change_role(user_id: str, body: dict):
    old = {"role": "viewer"}  # read from your database
    # One line, returns at once: spooled, delivered in the background, never lost.
    client.log(action="user.role.updated", target={"type": "user", "id": user_id}, before=old, after=body)
    return {"ok": True}
