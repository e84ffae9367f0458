"""A stand-in for a self-hosted ntfy server: it takes publishes in the documented formats (a
JSON object POSTed to the root URL, or a body POSTed/PUT to /<topic> with Title, Priority,
Tags, Click and Actions headers), records them normalised to the JSON form, and answers
/v1/health. Tests make it fail (`status`), slow (`delay_s`) or demand a token (`token`)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PRIORITY_NAMES = {"min": 1, "low": 2, "default": 3, "high": 4, "max": 5, "urgent": 5}


def _header_actions(value: str) -> list[dict[str, Any]]:
    """The Actions header: JSON, or the short `http, Label, url, method=POST; ...` form."""
    if value.lstrip().startswith("["):
        actions: list[dict[str, Any]] = json.loads(value)
        return actions
    out = []
    for part in value.split(";"):
        fields = [f.strip() for f in part.split(",")]
        action: dict[str, Any] = {"action": fields[0], "label": fields[1], "url": fields[2]}
        for extra in fields[3:]:
            key, _, val = extra.partition("=")
            if key.startswith("headers."):
                action.setdefault("headers", {})[key.removeprefix("headers.")] = val
            else:
                action[key] = val
        out.append(action)
    return out


class NtfyStandIn:
    """A local HTTP server speaking ntfy's publish API; `published` holds what it took."""

    def __init__(self, token: str | None = None) -> None:
        self.token = token
        self.status = 200
        self.delay_s = 0.0
        self.healthy = True
        self.published: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.arrived = threading.Condition(self.lock)
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: object) -> None:
                pass

            def _answer(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the publisher was killed mid-request: what arrived is recorded

            def _authorised(self) -> bool:
                if stand_in.token is None:
                    return True
                return self.headers.get("Authorization") == f"Bearer {stand_in.token}"

            def do_GET(self) -> None:
                if self.path == "/v1/health":
                    status = stand_in.status if stand_in.status >= 400 else 200
                    self._answer(status, {"healthy": stand_in.healthy})
                else:
                    self._answer(404, {"error": "not found"})

            def do_PUT(self) -> None:
                self.do_POST()

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                if stand_in.delay_s:
                    time.sleep(stand_in.delay_s)
                if not self._authorised():
                    self._answer(401, {"error": "unauthorized"})
                    return
                if stand_in.status >= 400:
                    self._answer(stand_in.status, {"error": "refused"})
                    return
                if self.path == "/":
                    message = json.loads(raw)
                else:
                    message = {"topic": self.path.strip("/"), "message": raw.decode()}
                    h = self.headers
                    if h.get("Title"):
                        message["title"] = h["Title"]
                    if h.get("Priority"):
                        p = h["Priority"]
                        message["priority"] = int(p) if p.isdigit() else PRIORITY_NAMES[p]
                    if h.get("Tags"):
                        message["tags"] = [t.strip() for t in h["Tags"].split(",")]
                    if h.get("Click"):
                        message["click"] = h["Click"]
                    if h.get("Actions"):
                        message["actions"] = _header_actions(h["Actions"])
                message["_authorization"] = self.headers.get("Authorization")
                with stand_in.arrived:
                    stand_in.published.append(message)
                    stand_in.arrived.notify_all()
                self._answer(200, {"id": str(len(stand_in.published)), "event": "message"})

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> NtfyStandIn:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def messages(self, topic: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [m for m in self.published if topic is None or m["topic"] == topic]

    def wait_for(self, n: int, timeout: float = 5.0, topic: str | None = None) -> bool:
        """Whether `n` messages (to `topic`) arrived within `timeout`."""
        deadline = time.monotonic() + timeout
        with self.arrived:
            while len([m for m in self.published if topic is None or m["topic"] == topic]) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.arrived.wait(left)
        return True
