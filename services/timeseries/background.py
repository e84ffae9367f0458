"""The thread the alarm-change writer and the nightly job each run on: a step run when woken
or on an interval, backing off while InfluxDB is away, so neither holds up its caller."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from influxdb_client.rest import ApiException
from urllib3.exceptions import HTTPError

from services.timeseries.writer import TimeseriesUnavailableError

_LOGGER = logging.getLogger(__name__)

BACKGROUND_RETRY_S = 15.0
"""How long a background writer waits after a failed flush before it tries again."""


class Background:
    """A thread that runs `step` when woken or every `interval_s`, backing off on failure."""

    def __init__(self, name: str, step: Callable[[], object], interval_s: float | None) -> None:
        self._step = step
        self._interval_s = interval_s
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.failing = False

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self._step()
            except (TimeseriesUnavailableError, ApiException, HTTPError, OSError) as err:
                if not self.failing:
                    _LOGGER.warning(
                        "%s: InfluxDB unavailable (%s); retrying", self._thread.name, err
                    )
                self.failing = True
                self._stopping.wait(BACKGROUND_RETRY_S)
                continue
            except Exception:
                _LOGGER.exception("%s failed; retrying", self._thread.name)
                self._stopping.wait(BACKGROUND_RETRY_S)
                continue
            if self.failing:
                _LOGGER.info("%s: InfluxDB is back", self._thread.name)
            self.failing = False
            self._wake.wait(self._interval_s)
            self._wake.clear()
