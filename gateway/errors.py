"""The gateway's exceptions, under CareHub's root so callers can catch them in one place."""

from __future__ import annotations

from carehub.errors import CareHubError


class GatewayError(CareHubError):
    """Base of every error the gateway raises on purpose."""


class StoreUnavailableError(GatewayError):
    """The store cannot take writes right now; nothing accepted is lost, retry the flush."""
