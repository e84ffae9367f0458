"""Run the benchmarks and gather one JSON object of figures (issue 9).

Every figure comes from the same run on the same machine; each throughput is also given as
a ratio to the ceiling measured first in that run (`broker_limit_msgs_per_s`). A benchmark
that fails leaves its keys null and says why under `errors`; the others still run.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_LOGGER = logging.getLogger(__name__)

BENCHMARKS = ("broker", "ingest", "latency", "phone", "reports", "rss")
BACKGROUND_RATE = float(os.environ.get("CAREHUB_BENCH_BACKGROUND_RATE", "2000"))
"""msg/s of background traffic in the latency and phone benchmarks: 2,000 as issue #17 sets
it; set lower to see the path's own latency where a slower machine's hub would be at capacity
(docs/performance.md). The figures give the rate achieved (`background_msgs_per_s`)."""
TARGETS = {
    # issue #17's targets (docs/performance.md); fall → phone p99 ≤ 1 s is issue #16's
    "ingest_ratio": (">=", 0.5),
    "fall_to_alarm_ms.p99": ("<=", 25.0),
    "fall_to_screen_ms.p99": ("<=", 50.0),
    "fall_to_phone_ms.p99": ("<=", 50.0),
    "fall_to_alarm_ms.max": ("<=", 1000.0),
    "fall_to_screen_ms.max": ("<=", 1000.0),
    "fall_to_phone_ms.max": ("<=", 1000.0),
    "report_s.demo.freed_hours": ("<=", 1.0),
    "report_s.demo.utilisation": ("<=", 1.0),
    "report_s.residents_500.freed_hours": ("<=", 1.0),
    "report_s.residents_500.utilisation": ("<=", 1.0),
    "report_s.residents_500.cold.freed_hours": ("<=", 15.0),
    "report_s.residents_500.cold.utilisation": ("<=", 15.0),
    "peak_rss_mb": ("<=", 150.0),
}


@dataclass(frozen=True, slots=True)
class Plan:
    """How big each benchmark is: `--quick` (under a minute on 2 cores) or the full run."""

    quick: bool
    broker_messages: int
    broker_repeats: int
    ingest_fractions: tuple[float, ...]
    ingest_seconds: float
    ingest_refine: int
    ingest_split: bool
    site_residents: int
    falls: int
    seed_days: int
    demo_blocks: int
    large_blocks: int
    rss_devices: int

    @classmethod
    def of(cls, quick: bool) -> Plan:
        """The quick or the full plan."""
        if quick:
            return cls(
                quick=True,
                broker_messages=20_000,
                broker_repeats=1,
                ingest_fractions=(0.1, 0.2, 0.3),
                ingest_seconds=2.0,
                ingest_refine=0,
                ingest_split=False,
                site_residents=1_000,
                falls=20,
                seed_days=1,
                demo_blocks=3,
                large_blocks=1,
                rss_devices=1_000,
            )
        return cls(
            quick=False,
            broker_messages=60_000,
            broker_repeats=3,
            ingest_fractions=(0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0),
            ingest_seconds=8.0,
            ingest_refine=2,
            ingest_split=True,
            site_residents=1_000,
            falls=200,
            seed_days=5,
            demo_blocks=73,  # 365 days
            large_blocks=3,  # 15 days; scaled to a year (see docs/performance.md)
            rss_devices=10_000,
        )


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
    }


def _get(figures: dict[str, Any], dotted: str) -> Any:
    value: Any = figures
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def check_targets(figures: dict[str, Any]) -> dict[str, Any]:
    """Each target with the figure reached and whether it is met (None: not measured)."""
    out: dict[str, Any] = {}
    for key, (op, limit) in TARGETS.items():
        value = _get(figures, key)
        met = None if value is None else value >= limit if op == ">=" else value <= limit
        out[key] = {"target": f"{op} {limit}", "value": value, "met": met}
    return out


def _ratio(value: float | None, ceiling: float | None) -> float | None:
    if value is None or not ceiling:
        return None
    return round(value / ceiling, 3)


@dataclass
class Runner:
    """Runs the chosen benchmarks in order and fills `figures`."""

    plan: Plan
    only: tuple[str, ...] = BENCHMARKS
    profile_dir: Path | None = None
    keep: bool = False
    progress: Callable[[str], None] = lambda _msg: None
    figures: dict[str, Any] = field(default_factory=dict)

    def run(self) -> dict[str, Any]:
        """Every benchmark; the figures as one JSON-ready dict."""
        began = time.monotonic()
        workdir = Path(tempfile.mkdtemp(prefix="carehub-bench-"))
        f = self.figures
        f.update(
            {
                "quick": self.plan.quick,
                "machine": machine(),
                "broker_limit_msgs_per_s": None,
                "ingest_msgs_per_s": None,
                "ingest_ratio": None,
                "fall_to_alarm_ms": {"p50": None, "p99": None, "max": None},
                "fall_to_screen_ms": {"p50": None, "p99": None, "max": None},
                "fall_to_phone_ms": {"p50": None, "p99": None, "max": None},
                "background_msgs_per_s": None,
                "background_ratio": None,
                "report_s": {
                    "demo": {"freed_hours": None, "utilisation": None},
                    "residents_500": {"freed_hours": None, "utilisation": None},
                },
                "backfill_days_per_s": None,
                "peak_rss_mb": None,
                "errors": {},
            }
        )
        try:
            self._step("broker", workdir, self._broker)  # always: it is every ratio's ceiling
            for name, fn in (
                ("ingest", self._ingest),
                ("latency", self._latency),
                ("phone", self._phone),
                ("reports", self._reports),
                ("rss", self._rss),
            ):
                if name in self.only:
                    self._step(name, workdir, fn)
        finally:
            if self.keep:
                self.progress(f"kept {workdir}")
            else:
                shutil.rmtree(workdir, ignore_errors=True)
        f["machine"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
        f["targets"] = check_targets(f)
        f["seconds"] = round(time.monotonic() - began, 1)
        return f

    def _step(self, name: str, workdir: Path, fn: Callable[[Path], None]) -> None:
        self.progress(f"{name} ...")
        began = time.monotonic()
        folder = workdir / name
        folder.mkdir()
        try:
            fn(folder)
        except Exception as err:
            _LOGGER.debug("benchmark %s failed", name, exc_info=True)
            self.figures["errors"][name] = f"{type(err).__name__}: {err}"
            if os.environ.get("CAREHUB_BENCH_TRACEBACK"):
                traceback.print_exc()
        self.progress(f"{name} done in {time.monotonic() - began:.1f} s")

    # --- the benchmarks -------------------------------------------------------------------

    def _broker(self, folder: Path) -> None:
        from bench import broker_limit

        limit = broker_limit.measure(folder, self.plan.broker_messages, self.plan.broker_repeats)
        self.figures["broker_limit_msgs_per_s"] = round(limit.best, 1)
        self.figures["broker_limit_runs"] = [round(r, 1) for r in limit.runs]

    def _site(self, folder: Path) -> Any:
        from bench.sites import native_site

        return native_site(folder, self.plan.site_residents)

    def _ingest(self, folder: Path) -> None:
        from bench import ingest

        ceiling = self.figures["broker_limit_msgs_per_s"]
        if not ceiling:
            msg = "no broker limit to step from"
            raise RuntimeError(msg)
        result = ingest.measure(
            folder,
            self._site(folder),
            ceiling,
            list(self.plan.ingest_fractions),
            self.plan.ingest_seconds,
            refine=self.plan.ingest_refine,
            profile=self.profile_dir is not None,
        )
        self.figures["ingest_msgs_per_s"] = round(result.best, 1)
        self.figures["ingest_ratio"] = _ratio(result.best, ceiling)
        self.figures["ingest_steps"] = result.to_json()
        if self.plan.ingest_split:
            # The same, with gateway and rules in two processes (`carehub run gateway` and
            # `carehub run rules`, the three-container layout): each has a GIL of its own.
            self.progress("ingest: split layout ...")
            split_dir = folder / "split"
            split_dir.mkdir()
            split = ingest.measure(
                split_dir,
                self._site(split_dir),
                ceiling,
                list(self.plan.ingest_fractions),
                self.plan.ingest_seconds,
                refine=self.plan.ingest_refine,
                layout="split",
            )
            self.figures["ingest_split"] = {
                "msgs_per_s": round(split.best, 1),
                "ratio": _ratio(split.best, ceiling),
                "steps": split.to_json(),
            }
        if result.profile is not None and self.profile_dir is not None:
            from bench.hotspots import profile_pipeline

            (self.profile_dir / "ingest-threads.json").write_text(
                json.dumps(result.profile, indent=1)
            )
            self.figures["profile"] = profile_pipeline(
                folder, self._site(folder), 20_000, self.profile_dir
            )

    def _latency(self, folder: Path) -> None:
        from bench import latency

        result = latency.measure(folder, self._site(folder), self.plan.falls, BACKGROUND_RATE)
        f = self.figures
        f["fall_to_alarm_ms"] = latency.percentiles(result.to_alarm)
        f["fall_to_screen_ms"] = latency.percentiles(result.to_screen)
        f["fall_samples"] = {
            "falls": self.plan.falls,
            "lost_alarm": result.lost_alarm,
            "lost_screen": result.lost_screen,
        }
        rate = float(result.background.get("rate", 0.0))
        f["background_msgs_per_s"] = round(rate, 1)
        f["background_ratio"] = _ratio(rate, f["broker_limit_msgs_per_s"])

    def _phone(self, folder: Path) -> None:
        from bench import latency, phone

        result = phone.measure(folder, self.plan.site_residents, self.plan.falls, BACKGROUND_RATE)
        f = self.figures
        f["fall_to_phone_ms"] = latency.percentiles(result.to_phone)
        f["phone_samples"] = {"falls": self.plan.falls, "lost": result.lost}
        rate = float(result.background.get("rate", 0.0))
        f["phone_background_msgs_per_s"] = round(rate, 1)

    def _reports(self, folder: Path) -> None:
        from bench import history, reports
        from bench.sites import demo_copies, demo_site

        plan = self.plan
        demo = demo_site()
        seed_db = folder / "seed.db"
        seeded = history.seed(demo, seed_db, plan.seed_days)
        self.figures["backfill_days_per_s"] = round(seeded.days_per_s, 3)
        self.figures["backfill"] = {
            "days": plan.seed_days,
            "messages": seeded.emissions,
            "seconds": round(seeded.seconds, 2),
        }
        profile = self.profile_dir
        out: dict[str, Any] = {}
        # the 500-resident home: events for `large_blocks` periods, a year of alarms, and
        # its cached nights copied back over the year (a year of its events is ~120 M rows)
        extend = -(-plan.demo_blocks // plan.large_blocks)
        for key, site, blocks, copies, times in (
            ("demo", demo, plan.demo_blocks, 0, 1),
            ("residents_500", demo_copies(folder, 500), plan.large_blocks, 21, extend),
        ):
            self.progress(f"reports: {key} history ...")
            hist = history.replicate(
                seed_db,
                plan.seed_days,
                site,
                folder / f"{key}.db",
                blocks,
                copies,
                alarm_blocks=blocks * times,
            )
            self.progress(f"reports: {key}: {hist.events} events in {hist.seconds:.1f} s; timing")
            measured = reports.time_reports(
                site, hist, profile / key if profile else None, extend=times
            )
            scale = reports.DAYS_PER_YEAR / measured["nights"]
            warm_scale = reports.DAYS_PER_YEAR / measured["warm_nights"]
            cold = measured["cold"]
            out[key] = {
                "freed_hours": round(measured["freed_hours"] * warm_scale, 3),
                "utilisation": round(measured["utilisation"] * warm_scale, 3),
                "warm_nights": measured["warm_nights"],
                "cold": {k: round(v * scale, 3) for k, v in cold.items()},
                "cache_s": round(measured["cache_s"] * scale, 3),
                "nights": measured["nights"],
                "events": measured["events"],
                "alarms": measured["alarms"],
                "scaled_to_year": warm_scale > 1.01,
                "cold_scaled_to_year": scale > 1.01,
                "measured": {
                    "freed_hours": measured["freed_hours"],
                    "utilisation": measured["utilisation"],
                    "cold": cold,
                    "cache_s": measured["cache_s"],
                },
            }
            (folder / f"{key}.db").unlink(missing_ok=True)
            for extra in ("-wal", "-shm"):
                (folder / f"{key}.db{extra}").unlink(missing_ok=True)
            self.figures["report_s"] = {**self.figures["report_s"], key: out[key]}

    def _rss(self, folder: Path) -> None:
        from bench import rss
        from bench.sites import native_site

        site = native_site(folder, -(-self.plan.rss_devices // 3))
        result = rss.measure(folder, site)
        self.figures["peak_rss_mb"] = result.peak_rss_mb
        self.figures["peak_rss"] = {
            "devices": result.devices,
            "rss_mb": result.rss_mb,
            "idle_rss_mb": result.idle_rss_mb,
            "connect_s": result.connect_s,
        }


def main(argv: list[str] | None = None) -> int:
    """`python -m bench [--quick] [--only ...] [--profile DIR] [--out FILE]`."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes: under a minute")
    parser.add_argument(
        "--only", default=",".join(BENCHMARKS), help=f"comma list of {', '.join(BENCHMARKS)}"
    )
    parser.add_argument("--profile", type=Path, help="write profiles into this folder")
    parser.add_argument("--out", type=Path, help="also write the JSON to this file")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args(argv)
    return run_cli(args.quick, args.only, args.profile, args.out, args.keep)


def run_cli(
    quick: bool, only: str, profile: Path | None, out: Path | None, keep: bool = False
) -> int:
    """Shared by `python -m bench` and `carehub bench`: figures to stdout, progress to
    stderr; exit 1 when a benchmark could not run, 2 on bad usage."""
    chosen = tuple(p.strip() for p in only.split(",") if p.strip())
    unknown = [p for p in chosen if p not in BENCHMARKS]
    if unknown or not chosen:
        sys.stderr.write(f"error: --only {only!r}: choose from {', '.join(BENCHMARKS)}\n")
        return 2
    if profile is not None:
        profile.mkdir(parents=True, exist_ok=True)

    def progress(msg: str) -> None:
        sys.stderr.write(f"bench: {msg}\n")
        sys.stderr.flush()

    runner = Runner(Plan.of(quick), chosen, profile, keep, progress)
    figures = runner.run()
    text = json.dumps(figures, indent=2)
    sys.stdout.write(text + "\n")
    if out is not None:
        out.write_text(text + "\n", encoding="utf-8")
    return 1 if figures["errors"] else 0
