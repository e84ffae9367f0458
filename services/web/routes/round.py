"""The digital round: the JSON verdicts, the digital check, and the `/round` page
(docs/web-app.md, docs/round.md)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from services.web.context import HubContext
from services.web.deps import Ctx, PageUser, StaffUser
from services.web.i18n import translator
from services.web.pages import csrf_token, locale_for, login_redirect, page
from services.web.ports import RoundPort

router = APIRouter(tags=["round"])


class LastCheck(BaseModel):
    """The newest digital check of a resident."""

    at: str
    by: str
    result: Literal["ok", "visit_needed"]


class RoundState(BaseModel):
    """What the sensors say now."""

    presence: Literal["in_room", "absent"] | None
    movement: Literal["still", "moving"] | None
    in_bed: bool | None
    out_of_bed_since: str | None
    diaper_level: float | None
    dose: Literal["taken", "due", "missed"] | None
    active_alarms: int


class RoundSensors(BaseModel):
    """Bound devices heard from within three heartbeats, and the others."""

    online: list[str]
    offline: list[str]


class RoundPlan(BaseModel):
    """The care plan's checks tonight: planned, past by now, done digitally, one due."""

    planned: int
    past: int
    done: int
    due: bool


class RoundResident(BaseModel):
    """One resident's line of the round (ids only: names appear on the page)."""

    resident_id: str
    room: str
    ward: str | None
    verdict: Literal["ok", "look", "visit"]
    reasons: list[str]
    state: RoundState
    sensors: RoundSensors
    last_check: LastCheck | None
    plan: RoundPlan | None


class RoundPublic(BaseModel):
    """`GET /api/round`."""

    at: str
    residents: list[RoundResident]


class CheckBody(BaseModel):
    """A digital check: the worker looked through the sensors."""

    model_config = ConfigDict(extra="forbid")

    result: Literal["ok", "visit_needed"]
    note: str | None = Field(None, max_length=500)


class CheckPublic(BaseModel):
    """The recorded check."""

    resident_id: str
    last_check: LastCheck


def round_port(ctx: HubContext) -> RoundPort:
    """The round service; 503 when the hub runs the web app without one."""
    if ctx.round is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail="round not running")
    return ctx.round


@router.get("/api/round", response_model=RoundPublic)
def get_round(
    request: Request,
    ctx: Ctx,
    _user: StaffUser,
    ward: Annotated[str | None, Query()] = None,
) -> dict[str, Any]:
    """Every resident's verdict with its reasons (in the page's language), state, sensors,
    last check and the care plan's checks due; 422 for an unknown ward."""
    if ward is not None and ward not in {w.id for w in ctx.site.site.wards}:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=f"no ward {ward!r}")
    return round_port(ctx).round(ward, locale_for(request, ctx))


@router.post("/api/round/{resident_id}/check", response_model=CheckPublic)
def check(ctx: Ctx, user: StaffUser, resident_id: str, body: CheckBody) -> dict[str, Any]:
    """Record a digital check in the user's name (audited); 404 for an unknown resident."""
    return round_port(ctx).check(resident_id, user.username, body.result, body.note)


@router.get("/round", response_class=HTMLResponse, include_in_schema=False)
def round_page(request: Request, ctx: Ctx, user: PageUser) -> Response:
    """The round on a phone; its script (static/round.js) fills it from the API and the
    alarm stream."""
    if user is None:
        return login_redirect(request)
    round_data = {
        "texts": translator(locale_for(request, ctx)),
        "residents": {r.id: (r.name or r.id) for r in ctx.site.site.residents},  # names here
        "csrf": csrf_token(request),
        "wards": [{"id": w.id, "name": w.name} for w in ctx.site.site.wards],
    }
    return page(request, ctx, "round.html", user, round_data=round_data)
