"""Named failpoints: places in production code where a fault test can make the process die.

A crash "somewhere between commit and publish" is only tested if the test can put it exactly
there. Code marks such a place with `hit("gateway.after_commit")`; a test arms it through the
environment of the process it starts, read once at import:

    CAREHUB_FAILPOINTS="gateway.after_commit=crash;rules.before_commit=sleep(500)"

Actions: `crash` (SIGKILL to ourselves at once: no cleanup, no flush, as a power cut or the
OOM killer would), `raise` (a `FailpointError`, for in-process tests), `sleep(ms)` and `off`.
An unarmed build pays one falsy-dict check per point. The points and what each proves are
listed in docs/handover.md.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import time

_LOGGER = logging.getLogger(__name__)

ENV = "CAREHUB_FAILPOINTS"

POINTS = (
    "gateway.after_commit",
    "gateway.after_publish",
    "rules.before_commit",
    "rules.after_commit",
)
"""Every point the production code has (docs/handover.md says what each window is)."""

_ACTION = re.compile(r"^(crash|raise|off|sleep\((\d+)\))$")


class FailpointError(RuntimeError):
    """What an armed `raise` point throws."""


def parse(spec: str) -> dict[str, str]:
    """`name=action;name=action` → {name: action}; a typo is an error, not a silent no-op."""
    armed: dict[str, str] = {}
    for part in spec.replace(",", ";").split(";"):
        if not part.strip():
            continue
        name, _, action = part.partition("=")
        name, action = name.strip(), action.strip() or "crash"
        if name not in POINTS or not _ACTION.match(action):
            msg = f"{ENV}: {part.strip()!r} is not point=action (points: {', '.join(POINTS)})"
            raise ValueError(msg)
        if action != "off":
            armed[name] = action
    return armed


_armed: dict[str, str] = parse(os.environ.get(ENV, ""))


def hit(name: str) -> None:
    """Pass the point `name`: nothing unless a test armed it."""
    if not _armed:
        return
    action = _armed.get(name)
    if action is None:
        return
    _LOGGER.warning("failpoint %s: %s", name, action)
    if action == "crash":
        os.kill(os.getpid(), signal.SIGKILL)
    elif action == "raise":
        raise FailpointError(name)
    else:
        match = _ACTION.match(action)
        if match and match.group(2):
            time.sleep(int(match.group(2)) / 1000)


def arm(name: str, action: str = "raise") -> None:
    """Arm a point in this process (in-process tests); `off` disarms it."""
    armed = parse(f"{name}={action}")
    _armed.pop(name, None)
    _armed.update(armed)


def disarm_all() -> None:
    """Forget every armed point."""
    _armed.clear()


def armed() -> dict[str, str]:
    """The points armed now, for logs and tests."""
    return dict(_armed)
