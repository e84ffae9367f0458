"""Hand canonical events to the rules engine as the gateway does: rows in the hand-over log."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from carehub import handover
from carehub.events import CanonicalEvent


def hand_over(db: Path, *events: CanonicalEvent) -> None:
    """Commit hand-over rows for `events` in one transaction of a connection of our own."""
    conn = sqlite3.connect(db, isolation_level=None, timeout=30)
    try:

        def sql(statement: str, args: Sequence[Any]) -> list[tuple[Any, ...]]:
            return conn.execute(statement, args).fetchall()

        handover.create(sql)
        conn.execute("BEGIN IMMEDIATE")
        handover.append(sql, events, datetime.now(UTC))
        conn.execute("COMMIT")
    finally:
        conn.close()
