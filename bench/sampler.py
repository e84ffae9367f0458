"""A small sampling profiler for the threads of this process (py-spy is not installed here).

Every `interval` seconds it looks at every thread's stack (`sys._current_frames`) and counts,
per thread name, the innermost frame ("self") and every function on the stack ("total").
Sampling costs one GIL acquisition per interval, so the hub runs nearly as it would without.
"""

from __future__ import annotations

import sys
import threading
from collections import Counter
from typing import Any

from bench.procs import REPO


def _where(code: Any, line: int | None) -> str:
    """`file:line`, or `file:first-line function` for line -1; a frame between two
    instructions has no line (None in Python 3.11): its function then."""
    if line is None:
        line = -1
    name = code.co_filename
    root = str(REPO) + "/"
    if name.startswith(root):
        name = name[len(root) :]
    elif "site-packages/" in name:
        name = name.split("site-packages/", 1)[1]
    else:
        name = name.rsplit("/", 2)[-1] if "/" in name else name
    return f"{name}:{code.co_firstlineno} {code.co_name}" if line < 0 else f"{name}:{line}"


class Sampler:
    """Start, stop (again and again), then `report()`."""

    def __init__(self, interval: float = 0.002) -> None:
        self.interval = interval
        self.samples: Counter[str] = Counter()
        self.self_time: dict[str, Counter[str]] = {}
        self.total_time: dict[str, Counter[str]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Begin sampling in a background thread."""
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="bench-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Pause sampling."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._thread = None

    def _run(self) -> None:
        me = threading.get_ident()
        while not self._stop.wait(self.interval):
            names = {t.ident: t.name for t in threading.enumerate()}
            for ident, frame in sys._current_frames().items():
                if ident == me:
                    continue
                thread = names.get(ident, "?")
                thread = thread.split("-")[0] if thread.startswith("Thread-") else thread
                self.samples[thread] += 1
                self.self_time.setdefault(thread, Counter())[
                    _where(frame.f_code, frame.f_lineno)
                ] += 1
                seen: set[str] = set()
                f: Any = frame
                while f is not None:
                    key = _where(f.f_code, -1)
                    if key not in seen:
                        seen.add(key)
                        self.total_time.setdefault(thread, Counter())[key] += 1
                    f = f.f_back

    def report(self, top: int = 12) -> dict[str, Any]:
        """Per thread: samples, and the top lines (self) and functions (total) by share."""
        out: dict[str, Any] = {}
        for thread, n in self.samples.most_common():
            if n < 10:
                continue
            out[thread] = {
                "samples": n,
                "self": {k: round(v / n, 3) for k, v in self.self_time[thread].most_common(top)},
                "total": {k: round(v / n, 3) for k, v in self.total_time[thread].most_common(top)},
            }
        return out
