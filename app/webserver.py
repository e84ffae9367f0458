"""How the hub's HTTP servers are configured against slow and greedy clients
(docs/security.md, "Slow clients").

uvicorn times out idle keep-alive connections, but not a connection that sends its request
headers slowly or not at all: 1,000 such connections were each held 30 s and more. The
protocol below closes a connection whose header block is not complete within
`HEADER_TIMEOUT_S`; the header block is at most `MAX_HEADER_BYTES`; at most
`MAX_CONNECTIONS` connections and requests at once (more are answered 503). Bodies: the
webhook reads its own within a deadline (gateway/webhook.py); anything beyond this is for a
reverse proxy in front (docs/deployment.md).
"""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

HEADER_TIMEOUT_S = 10.0
KEEP_ALIVE_S = 5
MAX_HEADER_BYTES = 16 * 1024
MAX_CONNECTIONS = 500
"""Boards and phones each hold one event stream; a home has tens, not hundreds."""


class HeaderTimeoutProtocol(H11Protocol):
    """uvicorn's h11 protocol that closes a connection still without a complete request
    header block `HEADER_TIMEOUT_S` after its first byte (or after it opened)."""

    header_timeout_s = HEADER_TIMEOUT_S

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._header_timer: asyncio.TimerHandle | None = None
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.cycle is not None and not self.cycle.response_complete:
            self._disarm()  # a request is running: its headers are complete
        else:
            self._arm()  # still waiting for a complete header block

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self.header_timeout_s, self._expire)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _expire(self) -> None:
        self._header_timer = None
        if self.cycle is None or self.cycle.response_complete:
            self.transport.close()


def server_config(app: Any, host: str, port: int, **options: Any) -> uvicorn.Config:
    """A uvicorn config with the limits above (and `options` on top)."""
    settings: dict[str, Any] = {
        "http": HeaderTimeoutProtocol,
        "timeout_keep_alive": KEEP_ALIVE_S,
        "h11_max_incomplete_event_size": MAX_HEADER_BYTES,
        "limit_concurrency": MAX_CONNECTIONS,
    }
    settings.update(options)
    return uvicorn.Config(app, host=host, port=port, **settings)
