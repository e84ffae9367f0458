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
