"""Operations endpoints: liveness, readiness per dependency, Prometheus metrics."""

from __future__ import annotations

import pytest

from core.runtime import Runtime
from core.settings import Settings
from tests.conftest import client_for
from tests.factories import JWT_SECRET, Backend, TenantCtx, create_ticket, expect


async def test_healthz(backend: Backend) -> None:
    assert expect(await backend.client.get("/healthz"), 200) == {"status": "ok"}


async def test_readyz_reports_the_database(backend: Backend) -> None:
    body = expect(await backend.client.get("/readyz"), 200)
    assert body["status"] == "ready"
    assert body["checks"] == {"database": {"status": "up"}}
    assert body["mode"] == ("embedded" if backend.name == "sqlite" else "production")


async def test_readyz_is_503_when_a_dependency_is_down(tmp_path) -> None:
    # Nothing listens on port 1: both probes fail fast and the answer says which.
    settings = Settings(
        data_dir=tmp_path,
        jwt_secret=JWT_SECRET,
        database_url="postgresql+asyncpg://nobody:nothing@127.0.0.1:1/none",
        redis_url="redis://127.0.0.1:1/0",
    )
    runtime = Runtime.build(settings)
    try:
        async with client_for(runtime) as client:
            response = await client.get("/readyz")
        body = expect(response, 503)
    finally:
        await runtime.close()
    assert body["status"] == "not_ready"
    assert body["checks"]["database"]["status"] == "down"
    assert body["checks"]["redis"]["status"] == "down"
    assert body["checks"]["database"]["error"]


async def test_metrics_count_requests_by_route_template(tenant: TenantCtx) -> None:
    ticket = await create_ticket(tenant)
    expect(
        await tenant.client.get(f"/v1/tickets/{ticket['id']}", headers=tenant.viewer.headers), 200
    )
    response = await tenant.client.get("/metrics")
    expect_text = response.text
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert "relaydesk_http_requests_total" in expect_text
    assert "relaydesk_http_request_seconds_bucket" in expect_text
    # Labelled by the template, not the concrete id, so cardinality stays bounded.
    assert 'route="/v1/tickets/{ticket_id}"' in expect_text
    assert ticket["id"] not in expect_text


async def test_request_id_is_echoed_or_generated(backend: Backend) -> None:
    response = await backend.client.get("/healthz", headers={"X-Request-ID": "req-42"})
    assert response.headers["x-request-id"] == "req-42"
    generated = (await backend.client.get("/healthz")).headers["x-request-id"]
    assert len(generated) == 32


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics"])
async def test_operations_endpoints_need_no_credentials(backend: Backend, path: str) -> None:
    assert (await backend.client.get(path)).status_code == 200
