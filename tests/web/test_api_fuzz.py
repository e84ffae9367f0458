"""Schemathesis against the OpenAPI document of a real hub: generated requests for every
operation, as an admin (so they reach the deepest code), must never crash the server (5xx)."""

from __future__ import annotations

import time

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from app.hub import Hub
from tests.support.server import ServerThread
from tests.web.conftest import bearer

pytestmark = pytest.mark.broker
EXAMPLES_PER_OPERATION = 40


def test_no_operation_answers_a_server_error(live_hub: tuple[Hub, ServerThread]) -> None:
    _, server = live_hub
    deadline = time.monotonic() + 10  # /healthz is 503 until the parts' first heartbeats say ok
    while httpx.get(f"{server.url}/healthz").status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.2)
    headers = bearer(server.url, "ida")
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json", headers=headers)
    tried = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path.endswith("/stream"):
            continue  # an endless event stream; covered by the board tests

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: schemathesis.Case) -> None:
            response = case.call(base_url=server.url, headers=headers, timeout=10)
            assert response.status_code < 500, (
                case.method,
                case.formatted_path,
                response.text[:300],
            )

        check()
        tried.append(f"{operation.method.upper()} {operation.path}")
    assert "GET /api/alarms" in tried
    assert "POST /api/alarms/{alarm_id}/resolve" in tried
    assert len(tried) >= 8, tried
