"""The /reports page's weight and render time, for choosing how its charts are drawn
(docs/web-app.md, "Charts").

Serves the real web app over a history written by `carehub backfill` (no broker: only the
report routes are asked), logs a manager in with Debian's Chromium, and loads the page a few
times. Prints one JSON object: the HTML's bytes (and the charts' share of them), the server's
time to answer, and the browser's time from the response to the load event.

    carehub backfill --site sites/demo.yaml --days 30 --end 2026-11-30 --db /tmp/h/hub.db
    python -m bench.report_page --db /tmp/h/hub.db --site sites/demo.yaml \
        --from 2026-11-01 --to 2026-11-29
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from app.broker import free_port
from carehub.clock import FakeClock
from carehub.settings import Settings
from carehub.site import SiteIndex, load_site
from gateway.store.sqlite import SqliteEventStore
from services.alarms.store import AlarmStore
from services.privacy.aggregates import AggregateStore, site_digest
from services.privacy.retention import RetentionJob
from services.reports.service import StoreReportSource
from services.web.app import create_app
from services.web.context import HubContext
from services.web.users import Role, UserStore

CHROMIUM = "/usr/bin/chromium"
USER, PASSWORD = "leder", "page-weight-and-render-time"


def measure(
    db: Path, site_file: Path, first: str, last: str, loads: int, shots: Path | None = None
) -> dict[str, Any]:
    """Load the page `loads` times (after one warm-up) and report the medians; with `shots`,
    save full-page screenshots at phone and desktop width there."""
    from playwright.sync_api import sync_playwright

    index = SiteIndex(load_site(site_file))
    users = UserStore(db)
    users.upsert(USER, PASSWORD, Role.MANAGER)
    events = SqliteEventStore(db)
    alarms = AlarmStore(db)
    aggregates = AggregateStore(db, index.site.site, site_digest(index))
    # the closed nights cached, as a running hub keeps them: what a manager's page costs
    end = datetime.combine(date.fromisoformat(last) + timedelta(days=2), datetime.min.time())
    RetentionJob(
        index, events, alarms, aggregates, FakeClock(end.replace(tzinfo=UTC)), timedelta(days=36500)
    ).run_once()
    settings = Settings(db=db, _env_file=None)
    ctx = HubContext(
        settings=settings,
        site=index,
        users=users,
        secret_key="bench-secret-key-" + "x" * 32,
        reports=StoreReportSource(
            index.site.site, events, alarms.raised_between, aggregates.stored_nights
        ),
    )
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(ctx), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    base = f"http://127.0.0.1:{port}"
    url = f"{base}/reports?from={first}&to={last}&lang=en"
    q = {"from": first, "to": last}
    try:
        token = httpx.post(f"{base}/api/token", data={"username": USER, "password": PASSWORD})
        auth = {"Authorization": f"Bearer {token.json()['access_token']}"}
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(f"{base}/login?next=/reports&lang=en")
            page.get_by_label("Username").fill(USER)
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Log in").click()
            page.wait_for_url(f"{base}/reports")
            server_ms, render_ms = [], []
            html = ""
            for i in range(loads + 1):
                response = page.goto(url, wait_until="load")
                assert response is not None
                html = response.text()
                nav = page.evaluate(
                    "(() => { const n = performance.getEntriesByType('navigation')[0];"
                    " return {req: n.requestStart, res: n.responseStart,"
                    " end: n.responseEnd, load: n.loadEventEnd}; })()"
                )
                if i == 0:
                    continue  # warm-up: imports, first use of a renderer
                server_ms.append(nav["res"] - nav["req"])
                render_ms.append(nav["load"] - nav["end"])
            if shots is not None:
                shots.mkdir(parents=True, exist_ok=True)
                for width in (390, 1280):
                    page.set_viewport_size({"width": width, "height": 900})
                    page.goto(url, wait_until="load")
                    page.screenshot(path=str(shots / f"reports-{width}.png"), full_page=True)
            browser.close()
        fh = httpx.get(f"{base}/api/reports/freed-hours", params=q, headers=auth, timeout=60)
        ut = httpx.get(f"{base}/api/reports/utilisation", params=q, headers=auth, timeout=60)
        chart_ms = _time_charts(fh.json(), ut.json(), loads)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        aggregates.close()
        events.close()
        alarms.close()
        users.close()
    figures = re.findall(r"<figure.*?</figure>", html, flags=re.DOTALL)
    return {
        "html_bytes": len(html.encode()),
        "chart_bytes": sum(len(f.encode()) for f in figures),
        "charts": len(figures),
        "server_ms_median": round(statistics.median(server_ms), 1),
        "chart_ms_median": chart_ms,
        "render_ms_median": round(statistics.median(render_ms), 1),
        "loads": loads,
    }


def _time_charts(fh: dict[str, Any], ut: dict[str, Any], loads: int) -> float:
    """Milliseconds to draw the page's charts from the two reports (median of `loads`)."""
    from services.web.i18n import translator
    from services.web.report_charts import report_charts

    times = []
    for _ in range(loads):
        began = time.perf_counter()
        report_charts(fh, ut, translator("en"), "en")
        times.append((time.perf_counter() - began) * 1000)
    return round(statistics.median(times), 2)


def main() -> None:
    """`python -m bench.report_page --db ... --site ... --from ... --to ...`"""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--site", type=Path, required=True)
    parser.add_argument("--from", dest="first", required=True)
    parser.add_argument("--to", dest="last", required=True)
    parser.add_argument("--loads", type=int, default=5)
    parser.add_argument("--screenshots", type=Path, help="Save full-page PNGs in this folder.")
    args = parser.parse_args()
    figures = measure(args.db, args.site, args.first, args.last, args.loads, args.screenshots)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
