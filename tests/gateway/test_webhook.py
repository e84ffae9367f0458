"""The vendor webhook: bearer auth, same pipeline, dedupe by vendor event id, 2xx after flush."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from carehub.clock import FakeClock
from carehub.site import SiteIndex
from gateway.pipeline import Ingestor, IngestResult
from gateway.store.sqlite import SqliteEventStore
from gateway.webhook import sign, webhook_router
from tests.gateway.conftest import SITE, T0
from tests.support.server import ServerThread

TOKEN = "s3cret-token-for-tests"
URL = "/api/webhooks/medcloud"


def body(event_id: str = "ev-1", **over: Any) -> dict[str, Any]:
    b: dict[str, Any] = {
        "event_id": event_id,
        "device": "med-r004",
        "occurred_at": "2026-11-22T22:01:00Z",
        "event": "DOSE_DUE",
        "dose": {"id": "night-2026-11-22", "scheduled": "2026-11-22T22:00:00Z"},
    }
    b.update(over)
    return b


AUTH = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}


@pytest.fixture
def published() -> list[IngestResult]:
    return []


@pytest.fixture
def app(test_index: SiteIndex, tmp_path: Path, published: list[IngestResult]) -> Iterator[FastAPI]:
    ingestor = Ingestor(test_index, SqliteEventStore(tmp_path / "hub.db"))
    application = FastAPI()
    application.include_router(
        webhook_router(ingestor, SecretStr(TOKEN), on_stored=published.append, clock=FakeClock(T0))
    )
    application.state.db = tmp_path / "hub.db"
    yield application
    ingestor.close()


class LiveClient:
    """A real uvicorn server around the app, spoken to with httpx (the starlette LiveClient
    warns about its httpx dependency, and a real server is what vendors call anyway)."""

    def __init__(self, app: FastAPI) -> None:
        self.server = ServerThread(app)

    def __enter__(self) -> httpx.Client:
        self.server.start()
        self.client = httpx.Client(base_url=self.server.url, timeout=5)
        return self.client

    def __exit__(self, *_exc: object) -> None:
        self.client.close()
        self.server.stop()


def stored(db: Path) -> int:
    reader = SqliteEventStore(db)
    try:
        return len(reader.query_events(SITE, T0 - timedelta(days=1), T0 + timedelta(days=1)))
    finally:
        reader.close()


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}],
    ids=["none", "wrong", "not-bearer"],
)
def test_refuses_without_the_right_token(app: FastAPI, headers: dict[str, str]) -> None:
    with LiveClient(app) as client:
        response = client.post(URL, json=body(), headers=headers)
    assert response.status_code == 401
    assert stored(app.state.db) == 0


def test_no_token_configured_refuses_everyone(test_index: SiteIndex, tmp_path: Path) -> None:
    ingestor = Ingestor(test_index, SqliteEventStore(tmp_path / "x.db"))
    application = FastAPI()
    application.include_router(webhook_router(ingestor, None))
    with LiveClient(application) as client:
        assert client.post(URL, json=body(), headers=AUTH).status_code == 401
    ingestor.close()


def test_stores_once_and_answers_duplicates_with_200(
    app: FastAPI, published: list[IngestResult]
) -> None:
    with LiveClient(app) as client:
        first = client.post(URL, json=body(), headers=AUTH)
        again = client.post(URL, content=json.dumps(body(), indent=2), headers=AUTH)
    assert first.status_code == 200
    assert first.json()["status"] == "accepted"
    (event_id,) = first.json()["event_ids"]
    assert again.status_code == 200
    assert again.json() == {"status": "duplicate", "event_ids": [], "duplicate_of": event_id}
    # 2xx means stored: a fresh reader sees it at once
    assert stored(app.state.db) == 1
    assert [r.outcome.value for r in published] == ["accepted", "duplicate"]
    (event,) = published[0].events
    assert (event.device_id, event.resident_id, event.type.value) == (
        "med-r004",
        "r-004",
        "dose_due",
    )
    assert event.received_at == T0


@pytest.mark.parametrize(
    ("content", "status", "reason"),
    [
        (b"not json at all", 400, "not_json"),
        (b"{" + b" " * 5000 + b"}", 413, "oversize"),
        (json.dumps(body(event="EXPLODE")).encode(), 422, "unknown_type"),
        (json.dumps(body(device="med-r999")).encode(), 422, "unknown_device"),
        (json.dumps(body(device="med-r001")).encode(), 422, "wrong_topic"),
        (json.dumps(body(occurred_at="2026-11-25T00:00:00Z")).encode(), 422, "future_ts"),
        (json.dumps(body(dose={"id": ""})).encode(), 422, "invalid_field"),
    ],
)
def test_bad_bodies_get_4xx_with_a_reason(
    app: FastAPI, content: bytes, status: int, reason: str
) -> None:
    with LiveClient(app) as client:
        response = client.post(URL, content=content, headers=AUTH)
    assert response.status_code == status
    assert response.json()["detail"]["reason"] == reason
    reader = SqliteEventStore(app.state.db)
    assert [d.reason for d in reader.dead_letters(5)] == [reason]
    reader.close()


def test_real_server_round_trip(app: FastAPI) -> None:
    server = ServerThread(app).start()
    try:
        with httpx.Client(base_url=server.url, timeout=5) as client:
            ok = client.post(URL, json=body("ev-real"), headers=AUTH)
            dup = client.post(URL, json=body("ev-real"), headers=AUTH)
            denied = client.post(URL, json=body("ev-x"))
    finally:
        server.stop()
    assert ok.status_code == 200
    assert dup.json()["status"] == "duplicate"
    assert denied.status_code == 401
    assert denied.headers["www-authenticate"] == "Bearer"
    assert stored(app.state.db) == 1


# --- signed calls, content type, slow bodies (docs/security.md, "Vendor webhook") ------------

SECRET = "hmac-key-for-tests-0123456789"


@pytest.fixture
def signed_app(test_index: SiteIndex, tmp_path: Path) -> Iterator[FastAPI]:
    ingestor = Ingestor(test_index, SqliteEventStore(tmp_path / "hub.db"))
    application = FastAPI()
    application.include_router(
        webhook_router(
            ingestor, SecretStr(TOKEN), clock=FakeClock(T0), secret=SECRET, body_timeout_s=1.0
        )
    )
    application.state.db = tmp_path / "hub.db"
    yield application
    ingestor.close()


def signed_headers(content: bytes, at: float, secret: str = SECRET) -> dict[str, str]:
    stamp = str(int(at))
    return {
        "Content-Type": "application/json",
        "X-CareHub-Timestamp": stamp,
        "X-CareHub-Signature": sign(secret, stamp, content),
    }


def test_signed_calls_are_accepted_and_forgeries_refused(signed_app: FastAPI) -> None:
    now = T0.timestamp()
    content = json.dumps(body("ev-signed")).encode()
    other = json.dumps(body("ev-other", event="DOSE_TAKEN")).encode()
    with LiveClient(signed_app) as client:
        assert client.post(URL, content=content, headers=signed_headers(content, now)).is_success
        # the signature of one body does not cover another (a new event_id, say)
        swapped = client.post(URL, content=other, headers=signed_headers(content, now))
        assert swapped.status_code == 401
        wrong_key = signed_headers(other, now, "not-the-secret")
        assert client.post(URL, content=other, headers=wrong_key).status_code == 401
        # the bearer token alone is not enough once a secret is set
        assert client.post(URL, content=other, headers=AUTH).status_code == 401
    assert stored(signed_app.state.db) == 1


@pytest.mark.parametrize("offset", [-301, 301, -3600 * 24])
def test_signed_calls_outside_five_minutes_are_replays(signed_app: FastAPI, offset: int) -> None:
    content = json.dumps(body("ev-late")).encode()
    with LiveClient(signed_app) as client:
        r = client.post(
            URL, content=content, headers=signed_headers(content, T0.timestamp() + offset)
        )
    assert r.status_code == 401
    assert "window" in r.text
    assert stored(signed_app.state.db) == 0


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
def test_only_json_is_taken(app: FastAPI, content_type: str | None) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    if content_type:
        headers["Content-Type"] = content_type
    with LiveClient(app) as client:
        r = client.post(URL, content=json.dumps(body()).encode(), headers=headers)
    assert r.status_code == 415
    assert stored(app.state.db) == 0


def test_a_slow_body_is_cut_off(signed_app: FastAPI) -> None:
    import socket
    import time

    server = ServerThread(signed_app).start()
    try:
        content = json.dumps(body("ev-slow")).encode()
        head = signed_headers(content, T0.timestamp())
        lines = [f"POST {URL} HTTP/1.1", "Host: x", f"Content-Length: {len(content)}"]
        lines += [f"{k}: {v}" for k, v in head.items()]
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + content[:10])
            started = time.monotonic()
            answer = sock.recv(1024)
            waited = time.monotonic() - started
        assert answer.startswith(b"HTTP/1.1 408"), answer
        assert waited < 5
    finally:
        server.stop()
    assert stored(signed_app.state.db) == 0


def test_a_huge_body_is_refused_after_its_first_4_kib(app: FastAPI) -> None:
    with LiveClient(app) as client:
        r = client.post(URL, content=b"{" + b" " * 100_000 + b"}", headers=AUTH)
    assert r.status_code == 413
