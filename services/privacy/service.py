"""`PrivacyService`: what the admin routes and the staff pages call.

One object over the stores the privacy features touch, built by the hub for the web app (in
the hub's process or the api's own), so the routes need not know where anything lives.
"""

from __future__ import annotations

import logging
from typing import Any

from carehub.clock import Clock
from carehub.site import SiteIndex
from services.alarms.service import AlarmService
from services.privacy.aggregates import AggregateStore
from services.privacy.errors import UnknownResidentError
from services.privacy.export import EXPORT_ACTION, ExportSources, resident_export
from services.privacy.monitoring import MonitoringStore
from services.privacy.selftest import SelfTest, SelfTestResult

_LOGGER = logging.getLogger(__name__)


class PrivacyService:
    """Residents' monitoring switches, their data exports, and the alarm-path self-test."""

    def __init__(
        self,
        index: SiteIndex,
        monitoring: MonitoringStore,
        alarms: AlarmService,
        events: Any,
        aggregates: AggregateStore,
        clock: Clock,
        selftest: SelfTest | None = None,
    ) -> None:
        """`events` is the gateway's EventStore; without `selftest` (no broker link) the
        self-test answers 'not_published'."""
        self.index = index
        self.monitoring = monitoring
        self.alarms = alarms
        self.aggregates = aggregates
        self.clock = clock
        self.selftest = selftest
        self._sources = ExportSources(index, events, alarms, aggregates)

    def _known(self, resident_id: str) -> None:
        if resident_id not in self.index.residents:
            msg = f"no resident has id {resident_id!r}"
            raise UnknownResidentError(msg)

    def residents(self) -> list[dict[str, Any]]:
        """Every resident of the site with room, ward and monitoring state (ids, no names)."""
        states = self.monitoring.states()
        out = []
        for resident in self.index.site.residents:
            change = states.get(resident.id)
            out.append(
                {
                    "resident_id": resident.id,
                    "room": resident.room,
                    "ward": self.index.room_ward.get(resident.room),
                    "monitoring": {
                        "enabled": change is None or change.enabled,
                        "changed_at": change.to_json()["at"] if change else None,
                        "changed_by": change.actor if change else None,
                        "reason": change.reason if change else None,
                    },
                }
            )
        return out

    def monitoring_off(self) -> set[str]:
        """Ids of the residents whose monitoring is switched off now."""
        return {r for r, change in self.monitoring.states().items() if not change.enabled}

    def set_monitoring(
        self, resident_id: str, enabled: bool, reason: str | None, actor: str
    ) -> dict[str, Any]:
        """Switch a resident's alarms on or off (off needs a reason); stored and audited."""
        self._known(resident_id)
        change = self.monitoring.set(resident_id, enabled, actor, reason, self.clock.now())
        return change.to_json()

    def export(self, resident_id: str, actor: str) -> dict[str, Any]:
        """Everything held about a resident and who accessed it; the export is audited
        (before it is handed out: no data leaves without its audit row)."""
        self._known(resident_id)
        now = self.clock.now()
        document = resident_export(
            self._sources, resident_id, self.monitoring.history(resident_id), now, actor
        )
        self.alarms.record_access(actor, EXPORT_ACTION, {"resident_id": resident_id})
        return document

    def run_selftest(self, actor: str) -> SelfTestResult:
        """Send a synthetic message through the whole alarm path (≤ 10 s)."""
        if self.selftest is None:
            self.alarms.record_access(actor, "self_test", {"ok": False, "stage": "not_published"})
            return SelfTestResult(False, 0.0, stage="not_published")
        return self.selftest.run(actor)

    def close(self) -> None:
        """Close the stores this service opened."""
        self.monitoring.close()
        self.aggregates.close()
