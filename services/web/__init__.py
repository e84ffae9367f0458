"""The staff web app and JSON API (SPEC §7)."""
