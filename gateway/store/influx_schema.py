"""InfluxDB 2 layout of the gateway's data; docs/storage.md describes the same, and Grafana
dashboards are checked against these names, so rename nothing without migrating both.
"""

from __future__ import annotations

# --- canonical events: one point per event, time = device time `ts` (µs) ----------------------
EVENT_MEASUREMENT = "carehub_event"
EVENT_TAGS = ("site", "device_id", "kind", "type", "resident_id", "room")
"""Tags; `resident_id` and `room` are omitted from the point when the event has none."""
EVENT_FIELD_EVENT_ID = "event_id"
EVENT_FIELD_RECEIVED_AT = "received_at_us"
"""Gateway time, Unix microseconds (int)."""
EVENT_FIELD_SEQ = "seq"
EVENT_FIELD_DATA = "data_json"
"""The whole `data` object as JSON, so nothing is lost to the flattening below."""
EVENT_FIELD_DEDUPE_KEY = "dedupe_key"
EVENT_FIELD_DIGEST = "digest"
EVENT_NUMERIC_FIELDS = ("confidence", "level", "battery", "rssi")
"""`data` entries also written as float fields under their own names, for dashboards."""
EVENT_STRING_FIELDS = ("dose_id", "due", "code", "state")
"""`data` entries also written as string fields under their own names."""

# --- device state: a point per change; the latest per device is the state -------------------
DEVICE_STATE_MEASUREMENT = "carehub_device_state"
DEVICE_STATE_TAGS = ("site", "device_id", "kind")
DEVICE_STATE_FIELDS = (
    "last_seen_us",
    "battery",
    "rssi",
    "online",
    "status_source",
    "status_at_us",
)

# --- seq bookkeeping per device (dedupe and gap counters survive restarts) ------------------
DEVICE_SEQ_MEASUREMENT = "carehub_device_seq"
DEVICE_SEQ_TAGS = ("device_id",)
DEVICE_SEQ_FIELDS = (
    "last_seq",
    "gaps",
    "resets",
    "last_digest",
    "last_received_at_us",
    "codec_state",
)

# --- dead letters: time = received_at -------------------------------------------------------
DEAD_LETTER_MEASUREMENT = "carehub_dead_letter"
DEAD_LETTER_TAGS = ("site", "reason")
DEAD_LETTER_FIELDS = ("topic", "device_id", "detail", "payload", "encoding", "truncated")

MEASUREMENTS = (
    EVENT_MEASUREMENT,
    DEVICE_STATE_MEASUREMENT,
    DEVICE_SEQ_MEASUREMENT,
    DEAD_LETTER_MEASUREMENT,
)

# --- written by the services (services/timeseries/), for the Grafana dashboards -------------
# Alarms live in SQLite and freed hours are computed on demand; Grafana reads InfluxDB only,
# so the services copy what the dashboards need here. Pseudonymous ids only: staff user
# names (`acknowledged_by`, `resolved_by`) and resident names are never written.

# alarm changes: one point per change of an alarm (docs/alarms.md), time = the change's time (µs)
ALARM_CHANGE_MEASUREMENT = "carehub_alarm_change"
ALARM_CHANGE_TAGS = (
    "site",
    "rule",
    "kind",
    "priority",
    "state",
    "change",
    "reason",
    "outcome",
    "resident_id",
    "room",
    "device_id",
)
"""`change` is the envelope's `new`/`update`/`end`, `state` the alarm's state after it;
`outcome`, `resident_id`, `room` and `device_id` are omitted when null."""
ALARM_CHANGE_FIELD_ALARM_ID = "alarm_id"
ALARM_CHANGE_FIELD_CHANGE_ID = "change_id"
"""The change log's sequence number (int), when the point came from a change envelope."""
ALARM_CHANGE_FIELD_COUNT = "count"
ALARM_CHANGE_FIELD_ACTIVE = "active"
"""Whether the alarm still needs someone after this change (bool)."""
ALARM_CHANGE_FIELD_ACKNOWLEDGE_S = "acknowledge_s"
"""Raised → acknowledged, seconds (float); only once acknowledged."""
ALARM_CHANGE_FIELD_RESPONSE_S = "response_s"
"""Acknowledged → resolved, seconds (float); only once both happened."""
ALARM_CHANGE_FIELD_OPEN_S = "open_s"
"""Raised → resolved, seconds (float); only once resolved."""
ALARM_CHANGE_FIELDS = (
    ALARM_CHANGE_FIELD_ALARM_ID,
    ALARM_CHANGE_FIELD_CHANGE_ID,
    ALARM_CHANGE_FIELD_COUNT,
    ALARM_CHANGE_FIELD_ACTIVE,
    ALARM_CHANGE_FIELD_ACKNOWLEDGE_S,
    ALARM_CHANGE_FIELD_RESPONSE_S,
    ALARM_CHANGE_FIELD_OPEN_S,
)

# freed hours: one point per night and scope (docs/freed-hours.md), time = the night's local start
FREED_HOURS_MEASUREMENT = "carehub_freed_hours"
FREED_HOURS_TAGS = ("site", "scope", "ward")
"""`scope` is `site` (the whole home, no `ward` tag) or `ward` (one ward, `ward` = its id)."""
FREED_HOURS_SCOPES = ("site", "ward")
FREED_HOURS_FIELD_TOTAL = "freed_hours_total"
FREED_HOURS_FIELD_NIGHT_HOURS = "night_hours"
"""Length of the night, hours (8 or 10 on daylight-saving nights)."""
FREED_HOURS_FIELD_RESIDENT_NIGHTS = "resident_nights"
FREED_HOURS_FIELD_COVERAGE = "coverage_mean"
FREED_HOURS_FIELD_ENTRIES_AVOIDED = "room_entries_avoided"
FREED_HOURS_FIELDS = (
    FREED_HOURS_FIELD_TOTAL,
    FREED_HOURS_FIELD_NIGHT_HOURS,
    FREED_HOURS_FIELD_RESIDENT_NIGHTS,
    FREED_HOURS_FIELD_COVERAGE,
    FREED_HOURS_FIELD_ENTRIES_AVOIDED,
)

SERVICE_MEASUREMENTS = (ALARM_CHANGE_MEASUREMENT, FREED_HOURS_MEASUREMENT)
ALL_MEASUREMENTS = MEASUREMENTS + SERVICE_MEASUREMENTS
"""Every measurement in the bucket; what the dashboards may query."""

EVENT_FIELDS = (
    EVENT_FIELD_EVENT_ID,
    EVENT_FIELD_RECEIVED_AT,
    EVENT_FIELD_SEQ,
    EVENT_FIELD_DATA,
    EVENT_FIELD_DEDUPE_KEY,
    EVENT_FIELD_DIGEST,
    *EVENT_NUMERIC_FIELDS,
    *EVENT_STRING_FIELDS,
)
TAGS_BY_MEASUREMENT: dict[str, tuple[str, ...]] = {
    EVENT_MEASUREMENT: EVENT_TAGS,
    DEVICE_STATE_MEASUREMENT: DEVICE_STATE_TAGS,
    DEVICE_SEQ_MEASUREMENT: DEVICE_SEQ_TAGS,
    DEAD_LETTER_MEASUREMENT: DEAD_LETTER_TAGS,
    ALARM_CHANGE_MEASUREMENT: ALARM_CHANGE_TAGS,
    FREED_HOURS_MEASUREMENT: FREED_HOURS_TAGS,
}
FIELDS_BY_MEASUREMENT: dict[str, tuple[str, ...]] = {
    EVENT_MEASUREMENT: EVENT_FIELDS,
    DEVICE_STATE_MEASUREMENT: DEVICE_STATE_FIELDS,
    DEVICE_SEQ_MEASUREMENT: DEVICE_SEQ_FIELDS,
    DEAD_LETTER_MEASUREMENT: DEAD_LETTER_FIELDS,
    ALARM_CHANGE_MEASUREMENT: ALARM_CHANGE_FIELDS,
    FREED_HOURS_MEASUREMENT: FREED_HOURS_FIELDS,
}
"""Every measurement's tags and fields: what dashboards and their tests check queries against."""
