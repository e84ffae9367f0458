"""Webhook routes for vendors whose cloud forwards device events over HTTP.

Each body goes through the same `Ingestor` as MQTT traffic, on a pseudo-topic
`{prefix}/{site}/webhooks/{vendor}`, so it is validated, deduplicated (by the vendor's event
id) and stored the same way. The answer is 2xx only after the store flush: a vendor that gets
a 2xx may forget the event.
"""

from __future__ import annotations

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

_STATUS_FOR_REASON = {
    Reason.NOT_JSON.value: status.HTTP_400_BAD_REQUEST,
    Reason.OVERSIZE.value: status.HTTP_413_CONTENT_TOO_LARGE,
}


def webhook_router(
    ingestor: Ingestor,
    token: SecretStr | str | None,
    on_stored: Callable[[IngestResult], None] | None = None,
    clock: Clock | None = None,
) -> APIRouter:
    """Routes `POST /api/webhooks/{vendor}` for every codec that declares a webhook.

    `on_stored` gets each result after the flush, e.g. `GatewayService.publish_result`, so
    webhook events reach MQTT subscribers like any other. Without a token every call is 401.
    """
    secret = token.get_secret_value() if isinstance(token, SecretStr) else token
    expected = secret.encode() if secret else None
    the_clock: Clock = clock or SystemClock()
    router = APIRouter(prefix="/api/webhooks", tags=["webhooks"])

    def authorised(
        creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> None:
        """Bearer token, compared in constant time."""
        given = creds.credentials.encode() if creds is not None else b""
        if expected is None or not hmac.compare_digest(given, expected):
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                detail="missing or wrong bearer token",
                headers={"WWW-Authenticate": "Bearer"},
            )

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
            body = b""
            async for chunk in request.stream():
                body += chunk
                if len(body) > MAX_PAYLOAD_BYTES:
                    break  # enough to know it is too big; do not buffer the rest
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
