"""A stand-in for a browser vendor's push service (RFC 8030), with the browser's side of a
subscription: `subscribe()` makes a key pair and auth secret as a browser does and answers
the `PushSubscription` JSON; a push POSTed to its endpoint is checked as a push service
checks it (the VAPID `Authorization` header: an ES256 JWT verified with the key it names,
`aud` this service's origin, `exp` within 24 h, a `sub`; `TTL`; `Urgency`;
`Content-Encoding: aes128gcm`) and then decrypted with the subscription's private key, as
the browser would, so a test can assert the JSON the service worker gets. It answers 201, or
what a test told it (`gone`: 410 for one subscription, `status` for all)."""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import http_ece
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

URGENCIES = frozenset({"very-low", "low", "normal", "high"})


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64u(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Push:
    """One push the service took: its headers, VAPID claims and decrypted payload."""

    token: str
    ttl: int
    urgency: str | None
    claims: dict[str, Any]
    vapid_key: str
    payload: dict[str, Any]


class PushServiceStandIn:
    """A local push service; `pushes` holds what it took, `rejected` why it refused."""

    def __init__(self) -> None:
        self.status = 201
        self.gone: set[str] = set()
        self.pushes: list[Push] = []
        self.rejected: list[str] = []
        self._keys: dict[str, tuple[ec.EllipticCurvePrivateKey, bytes]] = {}
        self.lock = threading.Lock()
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                status = stand_in._take(self.path, dict(self.headers.items()), body)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> PushServiceStandIn:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def subscribe(self) -> dict[str, Any]:
        """A browser's new subscription: endpoint, p256dh (its public key) and auth."""
        token = b64u(os.urandom(12))
        key = ec.generate_private_key(ec.SECP256R1())
        auth = os.urandom(16)
        self._keys[token] = (key, auth)
        public = key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return {
            "endpoint": f"{self.url}/push/{token}",
            "keys": {"p256dh": b64u(public), "auth": b64u(auth)},
        }

    def received(self, timeout: float = 5.0, count: int = 1) -> list[Push]:
        """The pushes taken so far, waiting up to `timeout` for `count`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.pushes) >= count:
                    return list(self.pushes)
            time.sleep(0.02)
        with self.lock:
            return list(self.pushes)

    # --- what a push service checks ----------------------------------------------------

    def _refuse(self, status: int, why: str) -> int:
        with self.lock:
            self.rejected.append(why)
        return status

    def _take(self, path: str, headers: dict[str, str], body: bytes) -> int:
        h = {k.lower(): v for k, v in headers.items()}
        token = path.removeprefix("/push/")
        if token not in self._keys:
            return self._refuse(404, f"no subscription {token}")
        try:
            claims, vapid_key = self._vapid(h.get("authorization", ""))
        except (ValueError, InvalidSignature) as err:
            return self._refuse(401, f"VAPID: {err or type(err).__name__}")
        ttl = h.get("ttl", "")
        if not ttl.isdigit():
            return self._refuse(400, "TTL header missing")
        urgency = h.get("urgency")
        if urgency is not None and urgency not in URGENCIES:
            return self._refuse(400, f"bad Urgency {urgency}")
        if h.get("content-encoding") != "aes128gcm":
            return self._refuse(415, "not aes128gcm")
        if token in self.gone:
            return 410
        key, auth = self._keys[token]
        try:
            plain = http_ece.decrypt(body, private_key=key, auth_secret=auth, version="aes128gcm")
        except Exception as err:  # noqa: BLE001 - any failure to decrypt is a refusal
            return self._refuse(400, f"cannot decrypt: {err}")
        with self.lock:
            self.pushes.append(
                Push(token, int(ttl), urgency, claims, vapid_key, json.loads(plain.decode()))
            )
        return self.status

    def _vapid(self, authorization: str) -> tuple[dict[str, Any], str]:
        """RFC 8292: `vapid t=<JWT>, k=<public key>`; the JWT's signature, aud, exp, sub."""
        scheme, _, rest = authorization.partition(" ")
        if scheme.lower() != "vapid":
            msg = f"scheme {scheme!r}"
            raise ValueError(msg)
        params = dict(p.strip().split("=", 1) for p in rest.split(","))
        jwt, k = params["t"], params["k"]
        head, claims_b64, sig_b64 = jwt.split(".")
        if json.loads(unb64u(head)).get("alg") != "ES256":
            msg = "alg is not ES256"
            raise ValueError(msg)
        sig = unb64u(sig_b64)
        public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64u(k))
        der = encode_dss_signature(int.from_bytes(sig[:32]), int.from_bytes(sig[32:]))
        public.verify(der, f"{head}.{claims_b64}".encode(), ec.ECDSA(hashes.SHA256()))
        claims: dict[str, Any] = json.loads(unb64u(claims_b64))
        if claims.get("aud") != self.url:
            msg = f"aud {claims.get('aud')!r} is not {self.url}"
            raise ValueError(msg)
        if not time.time() < int(claims.get("exp", 0)) <= time.time() + 24 * 3600:
            msg = "exp not within 24 h"
            raise ValueError(msg)
        if not str(claims.get("sub", "")).startswith(("mailto:", "https://")):
            msg = "sub is not mailto: or https:"
            raise ValueError(msg)
        return claims, k
