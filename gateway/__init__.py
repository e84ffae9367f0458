"""Gateway: device messages in, trustworthy canonical events out (SPEC §2-§4)."""
