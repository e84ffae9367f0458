"""Simulated care home: devices and residents publishing over MQTT (SPEC §2-§3)."""
