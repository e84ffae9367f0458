"""Prometheus-style counters of the gateway, as a flat dict the web app's /metrics renders."""

from __future__ import annotations

import threading


class Counters:
    """Monotonic counters keyed `name{label="value"}`; safe to bump from any thread."""

    def __init__(self) -> None:
        self._values: dict[str, float] = {}
        self._lock = threading.Lock()

    def inc(self, name: str, by: float = 1, **labels: str) -> None:
        """Add `by` to a counter, creating it at zero first."""
        if labels:
            inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
            name = f"{name}{{{inner}}}"
        with self._lock:
            self._values[name] = self._values.get(name, 0.0) + by

    def get(self, name: str, **labels: str) -> float:
        """One counter's value (0 when never bumped)."""
        if labels:
            inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
            name = f"{name}{{{inner}}}"
        with self._lock:
            return self._values.get(name, 0.0)

    def snapshot(self) -> dict[str, float]:
        """A copy of every counter."""
        with self._lock:
            return dict(self._values)
