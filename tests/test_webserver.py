"""The hub's HTTP servers against slow and greedy clients (docs/security.md, "Slow clients"),
over real sockets: a header block that does not come is cut off, an oversized one refused,
connections bounded."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI

from app import webserver
from app.hub import _WebServer


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> Iterator[_WebServer]:
    monkeypatch.setattr(webserver.HeaderTimeoutProtocol, "header_timeout_s", 1.0)
    app = FastAPI()

    @app.get("/ping")
    def ping() -> dict[str, bool]:
        return {"ok": True}

    server = _WebServer(app, "127.0.0.1", 0)
    server.start()
    yield server
    server.stop()


def _closed_within(sock: socket.socket, seconds: float) -> float:
    """Seconds until the server closed the connection (recv answers b"")."""
    sock.settimeout(seconds)
    started = time.monotonic()
    while sock.recv(4096):
        pass
    return time.monotonic() - started


@pytest.mark.parametrize("sent", [b"", b"GET /ping HTTP/1.1\r\nHost: x\r\n"])
def test_a_connection_without_a_complete_header_block_is_closed(
    served: _WebServer, sent: bytes
) -> None:
    with socket.create_connection(("127.0.0.1", served.port)) as sock:
        sock.sendall(sent)
        assert _closed_within(sock, 5) < 3


def test_slowly_trickled_headers_are_cut_off(served: _WebServer) -> None:
    with socket.create_connection(("127.0.0.1", served.port)) as sock:
        started = time.monotonic()
        closed = False
        for ch in b"GET /ping HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100:
            try:
                sock.sendall(bytes([ch]))
            except OSError:
                closed = True
                break
            time.sleep(0.1)
            if time.monotonic() - started > 4:
                break
        sock.settimeout(1)
        with contextlib.suppress(TimeoutError, OSError):
            closed = closed or sock.recv(1) == b""
        assert closed
        assert time.monotonic() - started < 4


def test_normal_requests_and_keep_alive_still_work(served: _WebServer) -> None:
    with httpx.Client(base_url=served.url) as client:
        for _ in range(3):
            assert client.get("/ping").json() == {"ok": True}
            time.sleep(0.4)  # idle between requests on one connection, under the timeouts
        time.sleep(1.5)
        assert client.get("/ping").json() == {"ok": True}


def test_oversized_headers_are_refused(served: _WebServer) -> None:
    try:
        r = httpx.get(f"{served.url}/ping", headers={"X-Big": "a" * 300_000})
    except httpx.HTTPError:
        return  # closed before an answer: refused too
    assert r.status_code in (400, 431)


def test_connections_are_bounded(served: _WebServer) -> None:
    config = served._server.config
    assert config.limit_concurrency == webserver.MAX_CONNECTIONS
    assert config.timeout_keep_alive == webserver.KEEP_ALIVE_S
    assert config.h11_max_incomplete_event_size == webserver.MAX_HEADER_BYTES
