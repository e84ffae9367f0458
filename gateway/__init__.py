"""Gateway: device messages in, trustworthy canonical events out (docs/mqtt.md, docs/devices.md)."""
