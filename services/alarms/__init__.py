"""Alarms (docs/alarms.md): the model and its lifecycle, the durable store, the service the web
app calls, and the escalation webhook."""

from services.alarms.errors import AlarmError, AlarmNotFoundError, InvalidTransitionError
from services.alarms.model import RULE_KIND, SENSOR, Alarm, AlarmState, Outcome
from services.alarms.service import AlarmService
from services.alarms.store import AlarmStore, Change

__all__ = [
    "RULE_KIND",
    "SENSOR",
    "Alarm",
    "AlarmError",
    "AlarmNotFoundError",
    "AlarmService",
    "AlarmState",
    "AlarmStore",
    "Change",
    "InvalidTransitionError",
    "Outcome",
]
