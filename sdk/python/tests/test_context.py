"""Ambient request context reaches events; each thread and each asyncio task keeps its own."""

import asyncio
import threading

from auditum import AsyncAuditClient, AuditClient, current_context, request_context
from auditum.asgi import RequestContextMiddleware
from conftest import query_all


def by_id(url, tenant):
    return {stored.event.id: stored.event for stored in query_all(url, tenant)}


def test_threads_keep_their_own_context_and_explicit_arguments_win(server):
    client = AuditClient(server.url, tenant_id="ctx-threads", spool_dir=None)
    barrier = threading.Barrier(4)
    logged = {}

    def request(number):
        with request_context(request_id=f"req-{number}", source_ip=f"10.0.0.{number}", actor={"id": f"user-{number}"}):
            ids = []
            for step in range(20):
                if step == 10:
                    barrier.wait()  # all four requests are inside their contexts at once
                ids.append(client.log(action="page.viewed"))
            with request_context(session_id=f"session-{number}"):  # nested: adds to the outer one
                ids.append(client.log(action="page.viewed", context={"request_id": "explicit"}, actor="someone-else"))
            logged[number] = ids

    threads = [threading.Thread(target=request, args=(number,)) for number in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert current_context() == {}
    assert client.close(timeout=30)
    events = by_id(server.url, "ctx-threads")
    for number, ids in logged.items():
        for event_id in ids[:-1]:
            event = events[event_id]
            assert (event.context.request_id, event.context.source_ip, event.actor.id) == (f"req-{number}", f"10.0.0.{number}", f"user-{number}")
        last = events[ids[-1]]
        assert (last.context.request_id, last.context.session_id, last.context.source_ip, last.actor.id) == (
            "explicit", f"session-{number}", f"10.0.0.{number}", "someone-else")


def test_asyncio_tasks_keep_their_own_context(server):
    async def scenario():
        async with AsyncAuditClient(server.url, tenant_id="ctx-tasks", spool_dir=None, service="shop") as client:
            async def request(number):
                with request_context(request_id=f"task-{number}", actor={"id": f"user-{number}", "type": "user"}):
                    ids = []
                    for _ in range(10):
                        ids.append(await client.log(action="cart.updated"))
                        await asyncio.sleep(0)  # let the other tasks interleave
                    return number, ids

            results = await asyncio.gather(*(request(number) for number in range(5)))
            assert await client.flush(timeout=30)
            return results

    results = asyncio.run(scenario())
    events = by_id(server.url, "ctx-tasks")
    for number, ids in results:
        for event_id in ids:
            event = events[event_id]
            assert (event.context.request_id, event.actor.id, event.context.service) == (f"task-{number}", f"user-{number}", "shop")


def test_the_asgi_middleware_sets_the_request_context():
    seen = []

    async def app(scope, receive, send):
        seen.append(dict(current_context()))

    middleware = RequestContextMiddleware(app)
    scope = {"type": "http", "client": ("192.0.2.7", 5555),
             "headers": [(b"x-request-id", b"req-77"), (b"user-agent", b"curl/8"), (b"traceparent", b"00-abc-def-01")]}
    asyncio.run(middleware(scope, None, None))
    asyncio.run(middleware({"type": "http", "client": None, "headers": []}, None, None))
    assert seen[0] == {"request_id": "req-77", "source_ip": "192.0.2.7", "user_agent": "curl/8", "correlation_id": "00-abc-def-01"}
    assert seen[1]["request_id"] and len(seen[1]["request_id"]) == 36  # a fresh id when the caller sent none
    assert current_context() == {}
