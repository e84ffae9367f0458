"""`carehub` as real subprocesses, as a service manager runs them: start, SIGTERM, kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

CAREHUB = [str(Path(sys.executable).parent / "carehub")]


class Proc:
    """A `carehub` subprocess whose output is kept for failure messages."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.args = args
        self.env = env
        self.log = log
        self.p = self._spawn()

    def _spawn(self) -> subprocess.Popen[bytes]:
        with self.log.open("ab") as out:
            return subprocess.Popen(
                [*CAREHUB, *self.args], env=self.env, stdout=out, stderr=subprocess.STDOUT
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    @property
    def alive(self) -> bool:
        return self.p.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        if self.p.poll() is None:
            self.p.send_signal(sig)
        return self.p.wait(timeout)

    def kill9(self) -> None:
        self.stop(signal.SIGKILL)

    def restart(self) -> None:
        if self.alive:
            self.stop()
        self.p = self._spawn()


def carehub_env(**values: str) -> dict[str, str]:
    """This process's environment without any CAREHUB_* of the developer's, plus `values`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAREHUB_")}
    env.update(values)
    return env
