"""Fixtures of the privacy tests: the real hub of the web tests, logins, and small helpers."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx

from app.broker import LocalBroker
from carehub.mqtt import Protocol
from tests.support.mqttprobe import MqttProbe
from tests.web.conftest import bearer, live_hub, server, users, web_ctx

__all__ = ["live_hub", "server", "users", "web_ctx"]  # fixtures shared with the web tests


def wait_until(check: Callable[[], Any], timeout: float = 10.0, what: str = "") -> Any:
    """Poll until `check()` answers something truthy; answers it."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        time.sleep(0.02)


def rfc3339(when: datetime) -> str:
    """UTC with a Z, as devices write it."""
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


def publish_fall(broker: LocalBroker, protocol: Protocol, device: str, seq: int) -> None:
    """A native fall uplink, now."""
    probe = MqttProbe(broker.host, broker.port, protocol=protocol)
    try:
        probe.publish(
            f"carehub/testhjem/devices/{device}/up",
            {
                "v": 1,
                "seq": seq,
                "ts": rfc3339(datetime.now(UTC)),
                "type": "fall",
                "confidence": 0.9,
            },
        )
    finally:
        probe.close()


def admin(base: str) -> dict[str, str]:
    """Bearer header of the test admin (ida)."""
    return bearer(base, "ida")


def api(base: str, method: str, path: str, user: str = "ida", **kw: Any) -> httpx.Response:
    """One API call as a test user."""
    with httpx.Client(base_url=base, timeout=30) as client:
        return client.request(method, path, headers=bearer(base, user), **kw)
