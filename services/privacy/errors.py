"""Errors of the privacy features, mapped to HTTP by the web app's one handler."""

from __future__ import annotations

from carehub.errors import CareHubError, NotFoundError


class PrivacyError(CareHubError):
    """Root of every error this package raises on purpose."""


class UnknownResidentError(PrivacyError, NotFoundError):
    """No resident of the site has this id (→ 404)."""
