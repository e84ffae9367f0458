"""The ladder: which phone is told what, and when (docs/notifications.md, "The ladder").

It follows the alarm change log rather than keeping timers of its own, because the alarm
lifecycle already has them: a `raised` change tells the ward's phones at once (FIRST), each
`reminder` change tells again the phones told so far (REMINDER), an `escalated` change tells
every phone (ESCALATED). Only the fallback, which the lifecycle lacks, has a due time of its
own (`notify_fallback`): at `fallback_minutes` after raising, the fallback phones (FALLBACK).
The first acknowledgement anywhere (a phone's link, the board, the API) is one change in the
log; it ends the ladder and tells the phones that were told who took it (TAKEN).

This module only decides; `service.Notifier` records each decision in the outbox and sends.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from carehub.site import Priority, Site, SiteIndex
from services.notify.channel import Notice, Step, Urgency

NOTIFY_RULES = frozenset({"notify_failing", "notify_unreachable"})
"""Technical alarms about notification itself: never sent where they say it fails."""

ALERT_STEPS = frozenset({Step.FIRST, Step.REMINDER, Step.ESCALATED, Step.FALLBACK, Step.TECHNICAL})
"""Steps that ask someone to come (and carry an acknowledge link)."""

_RULE_NAMES: dict[str, dict[str, str]] = {
    "fall": {"da": "Fald", "en": "Fall"},
    "diaper_change": {"da": "Ble skal skiftes", "en": "Diaper needs changing"},
    "dose_missed": {"da": "Medicin ikke taget", "en": "Dose missed"},
    "device_fault": {"da": "Fejl på dispenser", "en": "Dispenser fault"},
    "sensor_silent": {"da": "Sensor svarer ikke", "en": "Sensor silent"},
    "battery_low": {"da": "Lavt batteri", "en": "Battery low"},
    "self_test": {"da": "Selvtest", "en": "Self-test"},
    "notify_failing": {"da": "Besked-kanal fejler", "en": "Notification channel failing"},
    "notify_unreachable": {
        "da": "Ingen telefon når afdelingen",
        "en": "No phone reaches the ward",
    },
}
_TEXT: dict[str, dict[str, str]] = {
    "room": {"da": "stue", "en": "room"},
    "high": {"da": "Høj prioritet", "en": "High priority"},
    "medium": {"da": "Middel prioritet", "en": "Medium priority"},
    "low": {"da": "Lav prioritet", "en": "Low priority"},
    "reminder": {"da": "Stadig ikke taget", "en": "Still not taken"},
    "escalated": {"da": "Eskaleret: ingen har taget den", "en": "Escalated: nobody has taken it"},
    "fallback": {
        "da": "Ingen har taget den i {minutes} min",
        "en": "Nobody has taken it for {minutes} min",
    },
    "taken": {"da": "Taget af {who}", "en": "Taken by {who}"},
    "ended": {"da": "Afsluttet af {who}", "en": "Closed by {who}"},
    "taken_title": {"da": "Taget: {title}", "en": "Taken: {title}"},
    "ack": {"da": "Jeg tager den", "en": "I'm on it"},
    "sensor": {"da": "sensoren", "en": "the sensor"},
}
_TAGS = {
    Urgency.HIGH: ("rotating_light",),
    Urgency.MEDIUM: ("warning",),
    Urgency.LOW: ("information_source",),
}


class PhoneLike(Protocol):
    """What the ladder needs of a phone: the site file's phones and the browsers subscribed
    to Web Push (`services.notify.subscriptions.PushPhone`) alike."""

    @property
    def id(self) -> str:
        """Unique among phones."""
        ...

    @property
    def name(self) -> str:
        """Shown in "taken by" and in the audit log."""
        ...

    @property
    def wards(self) -> Sequence[str]:
        """The wards it hears at once."""
        ...


@dataclass(frozen=True, slots=True)
class Send:
    """One decision: tell this phone this, on every channel that reaches it."""

    alarm_id: str
    phone_id: str
    step: Step
    alarm: dict[str, Any]


class Ladder:
    """Decides the sends of each alarm change, and the fallback's due time."""

    def __init__(
        self, site: Site, dynamic: Callable[[], Sequence[PhoneLike]] | None = None
    ) -> None:
        self.site = site
        self.index = SiteIndex(site)
        self._static: dict[str, PhoneLike] = {p.id: p for p in site.phones}
        self._dynamic = dynamic
        """Phones that come and go (Web Push subscriptions), read at each decision."""
        self.locale = site.locale
        self.ward_names = {w.id: w.name for w in site.wards}

    # --- who -------------------------------------------------------------------------------

    @property
    def phones(self) -> dict[str, PhoneLike]:
        """Every phone now: the site file's, then the subscribed browsers."""
        if self._dynamic is None:
            return self._static
        out = dict(self._static)
        for phone in self._dynamic():
            out.setdefault(phone.id, phone)
        return out

    def ward_of(self, alarm: dict[str, Any]) -> str | None:
        """The alarm's ward, through its room (None: an alarm about the hub, no room)."""
        room = alarm.get("room")
        return None if room is None else self.index.room_ward.get(str(room))

    def ward_phones(self, alarm: dict[str, Any]) -> list[str]:
        """Phones of the alarm's ward; every phone for an alarm with no ward."""
        ward = self.ward_of(alarm)
        if ward is None:
            return list(self.phones)
        return [p.id for p in self.phones.values() if ward in p.wards]

    def all_phones(self) -> list[str]:
        """Every phone (escalation)."""
        return list(self.phones)

    def fallback_phones(self) -> list[str]:
        """The fallback phones (the shift leader)."""
        return [p for p in self.site.escalation.fallback_phones if p in self._static]

    # --- what ------------------------------------------------------------------------------

    def plan(self, change: dict[str, Any], told: list[str]) -> list[Send]:
        """The sends one change envelope calls for; `told` are the phones this alarm was sent
        to so far, in order (reminders and `taken` go to them)."""
        alarm: dict[str, Any] = change["alarm"]
        alarm_id = str(alarm["alarm_id"])
        reason = change["reason"]
        if reason == "raised":
            step = Step.TECHNICAL if alarm["rule"] in NOTIFY_RULES else Step.FIRST
            return [Send(alarm_id, p, step, alarm) for p in self.ward_phones(alarm)]
        if reason == "reminder" and alarm["state"] in ("raised", "escalated"):
            phones = told or self.ward_phones(alarm)
            return [Send(alarm_id, p, Step.REMINDER, alarm) for p in phones]
        if reason == "escalated":
            return [Send(alarm_id, p, Step.ESCALATED, alarm) for p in self.all_phones()]
        if reason == "acknowledged" or (
            change["type"] == "end" and alarm.get("acknowledged_at") is None
        ):
            return [Send(alarm_id, p, Step.TAKEN, alarm) for p in told]
        return []

    def fallback(self, alarm: dict[str, Any], told: list[str]) -> list[Send]:
        """The fallback's sends, when its time comes and nobody has acknowledged."""
        del told  # the fallback phones are told even if they heard before: it is a new rung
        if alarm["state"] not in ("raised", "escalated"):
            return []
        return [Send(alarm["alarm_id"], p, Step.FALLBACK, alarm) for p in self.fallback_phones()]

    # --- how it reads ----------------------------------------------------------------------

    def _t(self, key: str, **args: Any) -> str:
        return _TEXT[key][self.locale].format(**args)

    def title(self, alarm: dict[str, Any]) -> str:
        """Rule and room: never a resident's name (a lock screen is not the board)."""
        rule = str(alarm["rule"])
        name = _RULE_NAMES.get(rule, {}).get(self.locale, rule)
        if alarm.get("room"):
            return f"{name} – {self._t('room')} {alarm['room']}"
        if alarm.get("device_id"):
            return f"{name} – {alarm['device_id']}"
        return name

    def notice(
        self,
        send: Send,
        *,
        click_url: str | None,
        ack_url: str | None,
    ) -> Notice:
        """The text one phone gets for one send."""
        alarm = send.alarm
        urgency = Urgency(Priority(alarm["priority"]).value)
        title = self.title(alarm)
        ward = self.ward_of(alarm)
        lines = [self._t(urgency.value)]
        if ward is not None:
            lines[0] += f" · {self.ward_names.get(ward, ward)}"
        if send.step is Step.TAKEN:
            who = alarm.get("acknowledged_by") or alarm.get("resolved_by") or "?"
            if who == "sensor":
                who = self._t("sensor")
            key = "taken" if alarm.get("acknowledged_by") else "ended"
            return Notice(
                alarm_id=send.alarm_id,
                step=Step.TAKEN,
                urgency=Urgency.LOW,
                title=self._t("taken_title", title=title),
                body=self._t(key, who=who),
                click_url=click_url,
                tags=("white_check_mark",),
            )
        if send.step is Step.REMINDER:
            lines.append(self._t("reminder"))
        elif send.step is Step.ESCALATED:
            lines.append(self._t("escalated"))
        elif send.step is Step.FALLBACK:
            minutes = self.site.escalation.fallback_minutes or 0
            lines.append(self._t("fallback", minutes=f"{minutes:g}"))
        return Notice(
            alarm_id=send.alarm_id,
            step=send.step,
            urgency=urgency,
            title=title,
            body="\n".join(lines),
            click_url=click_url,
            ack_url=ack_url,
            tags=_TAGS[urgency],
        )

    def ack_label(self) -> str:
        """The acknowledge button's label."""
        return self._t("ack")
