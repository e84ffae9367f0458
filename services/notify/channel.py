"""The one small interface every notification channel implements (docs/notifications.md).

A channel turns a `Notice` into whatever its transport speaks (an HTTP publish, an ESPA data
block, an encrypted push) and says, by returning or raising, whether the transport took it.
Taking it is not a person acknowledging: the ladder keeps going until someone acknowledges on
CareHub (a phone's acknowledge link, the board or the API). Adding a channel is one module
with a class that satisfies `Channel`, and one test file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from carehub.errors import CareHubError


class Step(StrEnum):
    """Which rung of the ladder a notice belongs to."""

    FIRST = "first"
    """At once, to the phones of the alarm's ward."""
    REMINDER = "reminder"
    """Again, while nobody has acknowledged."""
    ESCALATED = "escalated"
    """To every phone."""
    FALLBACK = "fallback"
    """To the fallback phones (the shift leader)."""
    TAKEN = "taken"
    """Someone acknowledged: the others may stand down."""
    TECHNICAL = "technical"
    """A technical alarm about CareHub itself (a channel failing, no reachable phone)."""


class Urgency(StrEnum):
    """The alarm's priority, as channels map it (ntfy 5/4/3, Web Push Urgency, ESPA priority)."""

    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


@dataclass(frozen=True, slots=True)
class Target:
    """Where one phone is reached on one channel: its id and name, and the channel's address
    for it (an ntfy topic, an ESPA call address, a Web Push subscription as JSON)."""

    phone_id: str
    phone_name: str
    address: str


@dataclass(frozen=True, slots=True)
class Notice:
    """What one phone is told. Text carries room, rule and priority, never a resident's name
    (a phone's lock screen is not the board); links carry no long-lived credential."""

    alarm_id: str
    step: Step
    urgency: Urgency
    title: str
    body: str
    click_url: str | None = None
    """Opens the board on the alarm."""
    ack_url: str | None = None
    """A signed, single-use acknowledge link bound to this alarm and this phone; None for
    notices that need no answer (taken, technical)."""
    tags: tuple[str, ...] = field(default=())


class ChannelError(CareHubError):
    """The transport did not take a notice (refused, timed out, link down, subscription gone).

    `gone` means the address will never work again (a Web Push 404/410): drop it rather than
    retry."""

    def __init__(self, message: str, *, gone: bool = False) -> None:
        super().__init__(message)
        self.gone = gone


class Channel(Protocol):
    """A notification channel: ntfy, ESPA 4.4.4, Web Push, or a new one."""

    name: str
    """`ntfy`, `espa`, `webpush`: the key of delivery records and metrics."""

    def send(self, target: Target, notice: Notice) -> None:
        """Deliver one notice to one phone; raise `ChannelError` when the transport did not
        take it. Blocking, bounded by the channel's own timeouts."""
        ...

    def check(self) -> None:
        """Check the link without bothering anyone (a server reachable, an ESPA link
        answering); raise `ChannelError` when it is down."""
        ...

    def close(self) -> None:
        """Release connections and ports."""
        ...
