"""What an alarm's rule and resolver mean, agreed between the rules that write alarms and the
reports that read them back (docs/alarms.md, docs/freed-hours.md).

The reports price each alarm by its kind and count an alarm the sensor resolved as no staff
time, so both sides must read these the same way; one definition keeps them from drifting.
"""

from __future__ import annotations

RULE_KIND: dict[str, str] = {
    "fall": "fall",
    "diaper_change": "diaper",
    "dose_missed": "medication",
    "device_fault": "technical",
    "sensor_silent": "technical",
    "battery_low": "technical",
    "bed_exit": "fall",  # fall prevention: priced as the fall response it stands in for
}
"""Alarm rule → alarm kind, which picks the response-minute default `d_k` (docs/freed-hours.md)."""

SENSOR = "sensor"
"""`resolved_by` of an alarm the sensor itself resolved (reports count those as 0 minutes)."""
