"""Simulated care home: devices and residents publishing over MQTT (docs/mqtt.md,
docs/devices.md)."""
