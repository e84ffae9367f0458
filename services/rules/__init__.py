"""The rules engine and its MQTT service (docs/alarms.md): canonical events in, alarms out."""

from services.rules.engine import EngineConfig, RulesEngine, event_time
from services.rules.service import RulesConfig, RulesService

__all__ = ["EngineConfig", "RulesConfig", "RulesEngine", "RulesService", "event_time"]
