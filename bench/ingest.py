"""The highest rate the hub sustains: gateway + rules on a fresh Mosquitto and SQLite file.

The real `app.hub.Hub` runs the gateway (decode, validate, dedupe, enrich, durable store,
acknowledge after commit, publish canonical events) and the rules engine (every event, in
its own transactions) in this process; the load comes from `bench.loadgen` in another. Each
step offers a fixed rate for a while. A step passes when the broker acknowledged every
publish, the backlog (offered so far minus stored so far) never exceeded one second of
traffic, the hub caught up within `DRAIN_S` of the last publish, and afterwards the store
holds exactly the messages sent (`SELECT count(*)`) and the rules engine handled each one.
"""

from __future__ import annotations

import os
import sqlite3
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from app.hub import Hub, HubOptions
from bench.loadgen import LoadConfig
from bench.procs import BenchError, HubProcess, LoadProcess, start_broker
from bench.sampler import Sampler
from bench.sites import SiteFile
from carehub import heartbeat
from carehub.settings import Settings

DRAIN_S = 2.0
"""After the last publish, the hub must have stored and applied everything within this."""
BACKLOG_S = 1.0
"""The backlog may never exceed this many seconds of the offered rate (and 1,000 messages)."""
POLL_S = 0.1


@dataclass(slots=True)
class Step:
    """One offered rate and what became of it."""

    offered: float
    seconds: float = 0.0
    sent: int = 0
    acked: int = 0
    stored: int = 0
    rules_handled: int = 0
    max_backlog: int = 0
    drain_s: float = 0.0
    cpu_cores: float = 0.0
    """CPU time of this process (the hub, nearly all of it) per wall second of the step."""
    passed: bool = False
    why: str = ""


@dataclass(slots=True)
class IngestResult:
    """The steps, and the best rate that passed."""

    steps: list[Step] = field(default_factory=list)
    profile: dict[str, Any] | None = None

    @property
    def best(self) -> float:
        """The highest offered rate (as measured) of a step that passed; 0 if none did."""
        return max((s.sent / s.seconds for s in self.steps if s.passed), default=0.0)

    def to_json(self) -> list[dict[str, Any]]:
        """The steps as plain dicts, rounded."""
        return [
            {k: round(v, 3) if isinstance(v, float) else v for k, v in asdict(s).items()}
            for s in self.steps
        ]


class IngestBench:
    """Gateway + rules over a fresh broker and database, stepped through rates.

    Layout "one-process": the real `Hub` with parts gateway and rules in this process (the
    `carehub run all` arrangement, without the web app). Layout "split": `carehub run gateway`
    and `carehub run rules` as two processes sharing the SQLite file (the three-container
    arrangement), progress read from the store itself.
    """

    def __init__(
        self, workdir: Path, site: SiteFile, profile: bool = False, layout: str = "one-process"
    ) -> None:
        self.workdir = workdir
        self.site = site
        self.layout = layout
        self.broker = start_broker(workdir / "mosquitto")
        self.db = workdir / "ingest.db"
        self.hub: Hub | None = None
        self.procs: list[HubProcess] = []
        try:
            if layout == "split":
                self._start_split()
            else:
                self._start_in_process()
        except BaseException:
            self._stop_parts()
            self.broker.cleanup()
            raise
        self.devices = [(d.id, d.kind.value) for d in site.site.devices]
        self.seq = 1
        self.sampler = Sampler() if profile and layout != "split" else None
        self._count = sqlite3.connect(self.db, check_same_thread=False)

    def _start_in_process(self) -> None:
        settings = Settings(
            _env_file=None,
            db=self.db,
            mqtt_url=f"mqtt://{self.broker.host}:{self.broker.port}",
        )
        self.hub = Hub(settings, self.site.site, ("gateway", "rules"), options=HubOptions("5"))
        self.hub.start()
        if not self.hub.wait_ready(20):
            msg = "the hub did not connect and subscribe within 20 s"
            raise BenchError(msg)

    def _start_split(self) -> None:
        for part in ("gateway", "rules"):
            log = self.workdir / f"{part}.log"
            self.procs.append(HubProcess(part, self.site.path, self.db, self.broker, log))
        beats = heartbeat.heartbeat_dir(self.db)
        deadline = time.monotonic() + 60
        while any(heartbeat.read(beats, p) != "ok" for p in ("gateway", "rules")):
            for proc in self.procs:
                if proc.proc.poll() is not None:
                    msg = f"carehub run exited early:\n{proc.output()}"
                    raise BenchError(msg)
            if time.monotonic() > deadline:
                msg = "gateway and rules processes did not become healthy within 60 s"
                raise BenchError(msg)
            time.sleep(0.2)

    def _stop_parts(self) -> None:
        if self.hub is not None:
            self.hub.stop()
        for proc in self.procs:
            proc.stop()

    def _max_rowid(self, table: str) -> int:
        row = self._count.execute(f"SELECT coalesce(max(rowid), 0) FROM {table}").fetchone()
        return int(row[0])

    def _accepted(self) -> int:
        if self.hub is None:
            return self._max_rowid("events")  # rows are only ever added here
        assert self.hub.gateway is not None, "the ingest bench runs a gateway"
        metrics = self.hub.gateway.metrics()
        return int(metrics.get("carehub_gateway_messages_accepted_total", 0))

    def _handled(self) -> int:
        if self.hub is None:
            return self._max_rowid("alarm_seen_events")  # one row per event applied
        assert self.hub.rules is not None, "the ingest bench runs the rules engine"
        return int(self.hub.rules.handled)

    def _cpu_s(self) -> float:
        if self.hub is not None:
            return time.process_time()
        total = 0.0
        for proc in self.procs:
            fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return total

    def stored(self) -> int:
        """Events in the store, by SQL."""
        row = self._count.execute("SELECT count(*) FROM events").fetchone()
        return int(row[0])

    def step(self, rate: float, seconds: float) -> Step:
        """Offer `rate` msg/s for `seconds`; judge as the module docstring says."""
        result = Step(offered=rate)
        base_stored, base_accepted, base_handled = self.stored(), self._accepted(), self._handled()
        config = LoadConfig(
            host=self.broker.host,
            port=self.broker.port,
            site=self.site.site.site,
            devices=self.devices,
            rate=rate,
            duration=seconds,
            seq_start=self.seq,
        )
        load = LoadProcess(config)
        cpu_began, wall_began = self._cpu_s(), time.monotonic()
        if self.sampler is not None:
            self.sampler.start()
        began: float | None = None
        try:
            while load.proc.poll() is None:
                time.sleep(POLL_S)
                accepted = self._accepted() - base_accepted
                if began is None:
                    if accepted == 0:
                        continue  # the generator is still starting
                    began = time.monotonic()
                offered = rate * (time.monotonic() - began)
                result.max_backlog = max(result.max_backlog, int(offered - accepted))
            summary = load.result()
        finally:
            load.kill()
            if self.sampler is not None:
                self.sampler.stop()
        ended = time.monotonic()
        result.cpu_cores = (self._cpu_s() - cpu_began) / (ended - wall_began)
        result.seconds = float(summary["seconds"])
        result.sent = int(summary["sent"])
        result.acked = int(summary["acked"])
        self.seq = int(summary["seq_end"])
        deadline = ended + DRAIN_S + 3.0  # wait a little longer than allowed, to report it
        while time.monotonic() < deadline:
            if (
                self._accepted() - base_accepted >= result.sent
                and self._handled() - base_handled >= result.sent
            ):
                break
            time.sleep(0.02)
        result.drain_s = time.monotonic() - ended
        time.sleep(0.1)  # the commit that acknowledged the last batch is visible to readers now
        result.stored = self.stored() - base_stored
        result.rules_handled = self._handled() - base_handled
        result.passed, result.why = self._judge(result, rate)
        return result

    @staticmethod
    def _judge(s: Step, rate: float) -> tuple[bool, str]:
        limit = max(1000, int(rate * BACKLOG_S))
        if s.acked != s.sent:
            return False, f"broker acknowledged {s.acked} of {s.sent}"
        if s.stored != s.sent:
            return False, f"stored {s.stored} of {s.sent}"
        if s.rules_handled < s.sent:
            return False, f"rules handled {s.rules_handled} of {s.sent}"
        if s.drain_s > DRAIN_S:
            return False, f"needed {s.drain_s:.1f} s after the last publish to catch up"
        if s.max_backlog > limit:
            return False, f"backlog reached {s.max_backlog} (> {limit})"
        if s.sent < 0.95 * rate * s.seconds:
            return False, f"the generator offered only {s.sent / s.seconds:.0f}/s"
        return True, ""

    def close(self) -> None:
        """Stop the hub and the broker."""
        self._stop_parts()
        self._count.close()
        self.broker.cleanup()


def measure(
    workdir: Path,
    site: SiteFile,
    ceiling: float,
    fractions: list[float],
    seconds: float,
    refine: int = 2,
    profile: bool = False,
    layout: str = "one-process",
) -> IngestResult:
    """Step through `fractions` of the ceiling until a step fails, then bisect `refine`
    times between the last rate that passed and the first that failed."""
    bench = IngestBench(workdir, site, profile, layout)
    out = IngestResult()
    try:
        bench.step(min(1000.0, ceiling * 0.05), 1.0)  # warm-up: connections, caches, tables
        passed, failed = 0.0, 0.0
        for fraction in fractions:
            step = bench.step(ceiling * fraction, seconds)
            out.steps.append(step)
            if not step.passed:
                failed = ceiling * fraction
                break
            passed = ceiling * fraction
        for _ in range(refine if passed and failed else 0):
            mid = (passed + failed) / 2
            step = bench.step(mid, seconds)
            out.steps.append(step)
            passed, failed = (mid, failed) if step.passed else (passed, mid)
        if bench.sampler is not None:
            out.profile = bench.sampler.report()
    finally:
        bench.close()
    return out
