"""Webhook routes for vendors whose cloud forwards device events over HTTP.

Each body goes through the same `Ingestor` as MQTT traffic, on a pseudo-topic
`{prefix}/{site}/webhooks/{vendor}`, so it is validated, deduplicated (by the vendor's event
id) and stored the same way. The answer is 2xx only after the store flush: a vendor that gets
a 2xx may forget the event.

Authentication (docs/security.md, "Vendor webhook"): with `CAREHUB_WEBHOOK_SECRET` every call
is signed, an HMAC-SHA256 over the timestamp and the body (`X-CareHub-Timestamp: <unix
seconds>`, `X-CareHub-Signature: sha256=<hex of HMAC(secret, "<timestamp>." + body)>`), and
a timestamp more than 5 minutes away from the hub's clock is refused, so a captured call
cannot be replayed later or with another body. Without a secret, the bearer token
`CAREHUB_WEBHOOK_TOKEN` is the option for vendors that cannot sign. Bodies must be
`application/json` (else 415), at most 4 KiB (413), and arrive within 10 s (408).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import SecretStr

from carehub.clock import Clock, SystemClock
from gateway.codecs import MAX_PAYLOAD_BYTES, Reason, registry
from gateway.pipeline import STORE_ERRORS, Ingestor, IngestResult

_LOGGER = logging.getLogger(__name__)

_bearer = HTTPBearer(auto_error=False)

REPLAY_WINDOW_S = 300.0
"""A signed call older (or newer) than this is refused."""

BODY_TIMEOUT_S = 10.0
"""A body that trickles in slower than this is cut off (408): a slow client holds nothing."""

TIMESTAMP_HEADER = "X-CareHub-Timestamp"
SIGNATURE_HEADER = "X-CareHub-Signature"


def sign(secret: str | bytes, timestamp: str, body: bytes) -> str:
    """The `X-CareHub-Signature` value for a body sent at `timestamp` (unix seconds)."""
    key = secret.encode() if isinstance(secret, str) else secret
    digest = hmac.new(key, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


_STATUS_FOR_REASON = {
    Reason.NOT_JSON.value: status.HTTP_400_BAD_REQUEST,
    Reason.OVERSIZE.value: status.HTTP_413_CONTENT_TOO_LARGE,
}


def _plain(value: SecretStr | str | None) -> bytes | None:
    text = value.get_secret_value() if isinstance(value, SecretStr) else value
    return text.encode() if text else None


def webhook_router(
    ingestor: Ingestor,
    token: SecretStr | str | None,
    on_stored: Callable[[IngestResult], None] | None = None,
    clock: Clock | None = None,
    *,
    secret: SecretStr | str | None = None,
    body_timeout_s: float = BODY_TIMEOUT_S,
) -> APIRouter:
    """Routes `POST /api/webhooks/{vendor}` for every codec that declares a webhook.

    `on_stored` gets each result after the flush, e.g. `GatewayService.publish_result`, so
    webhook events reach MQTT subscribers like any other. With a `secret` every call must be
    signed (the token is then not accepted); else the bearer `token`; with neither, every
    call is 401.
    """
    expected = _plain(token)
    key = _plain(secret)
    the_clock: Clock = clock or SystemClock()
    router = APIRouter(prefix="/api/webhooks", tags=["webhooks"])

    def _refuse(detail: str) -> HTTPException:
        scheme = "HMAC-SHA256" if key is not None else "Bearer"
        return HTTPException(
            status.HTTP_401_UNAUTHORIZED, detail=detail, headers={"WWW-Authenticate": scheme}
        )

    def authorised(
        request: Request,
        creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> None:
        """Before the body is read: the bearer token (constant time), or a signed call's
        timestamp within the replay window."""
        if key is not None:
            stamp = request.headers.get(TIMESTAMP_HEADER, "")
            if not request.headers.get(SIGNATURE_HEADER) or not stamp.isdigit():
                raise _refuse(f"sign the call: {TIMESTAMP_HEADER} and {SIGNATURE_HEADER}")
            if abs(the_clock.now().timestamp() - int(stamp[:12])) > REPLAY_WINDOW_S:
                raise _refuse("timestamp outside the 5-minute window")
            return
        given = creds.credentials.encode() if creds is not None else b""
        if expected is None or not hmac.compare_digest(given, expected):
            raise _refuse("missing or wrong bearer token")

    def signed(request: Request, body: bytes) -> None:
        """After the body is read: its signature, compared in constant time."""
        if key is None:
            return
        stamp = request.headers.get(TIMESTAMP_HEADER, "")
        given = request.headers.get(SIGNATURE_HEADER, "")
        if not hmac.compare_digest(given.encode(), sign(key, stamp, body).encode()):
            raise _refuse("wrong signature")

    async def read_body(request: Request) -> bytes:
        """At most a little over MAX_PAYLOAD_BYTES (the pipeline dead-letters it as
        `oversize`, 413), within `body_timeout_s`."""
        body = b""

        async def gather() -> None:
            nonlocal body
            async for chunk in request.stream():
                body += chunk
                if len(body) > MAX_PAYLOAD_BYTES:
                    break  # enough to know it is too big; do not buffer the rest

        try:
            await asyncio.wait_for(gather(), body_timeout_s)
        except TimeoutError as err:
            raise HTTPException(
                status.HTTP_408_REQUEST_TIMEOUT, detail="the body came too slowly"
            ) from err
        return body

    def handle(vendor: str, body: bytes) -> IngestResult:
        result = ingestor.ingest(ingestor.topics.webhook_topic(vendor), body, the_clock.now())
        ingestor.flush()
        if on_stored is not None:
            try:
                on_stored(result)
            except Exception:
                _LOGGER.exception("publishing a webhook result failed")
        return result

    def make_route(vendor: str) -> None:
        async def receive(request: Request) -> dict[str, Any]:
            media = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if media != "application/json":
                raise HTTPException(
                    status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, detail="send application/json"
                )
            body = await read_body(request)
            signed(request, body)
            try:
                result = await run_in_threadpool(handle, vendor, body)
            except STORE_ERRORS as err:  # not stored: the vendor's cloud must send it again
                raise HTTPException(
                    status.HTTP_503_SERVICE_UNAVAILABLE,
                    detail="the hub cannot store right now; send it again",
                    headers={"Retry-After": "30"},
                ) from err
            if result.rejected:
                code = _STATUS_FOR_REASON.get(
                    result.reason or "", status.HTTP_422_UNPROCESSABLE_CONTENT
                )
                raise HTTPException(code, detail={"reason": result.reason, "detail": result.detail})
            return {
                "status": result.outcome.value,
                "event_ids": [e.event_id for e in result.events],
                "duplicate_of": result.duplicate_of,
            }

        router.add_api_route(
            f"/{vendor}",
            receive,
            methods=["POST"],
            dependencies=[Depends(authorised)],
            summary=f"Events from the {vendor} vendor cloud",
            description="Answers 2xx only once the event is stored; duplicates answer 200 too.",
        )

    for codec in registry().values():
        if codec.webhook:
            make_route(codec.webhook)
    return router
