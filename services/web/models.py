"""The bodies the API takes and answers, as pydantic models (they are its OpenAPI schemas)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from services.alarms.model import Outcome


class Token(BaseModel):
    """OAuth2 password-flow answer."""

    access_token: str
    token_type: str = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret


class ResolveBody(BaseModel):
    """What staff say when they close an alarm."""

    outcome: Outcome
    note: str | None = Field(None, max_length=2000)


class MonitoringBody(BaseModel):
    """Switch a resident's alarms on or off; switching off needs a reason."""

    enabled: bool
    reason: str | None = Field(
        None, max_length=500, description="Why (required to switch off). No names."
    )
