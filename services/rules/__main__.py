"""`python -m services.rules --site FILE`: the rules service alone, until SIGTERM or SIGINT.

`carehub run rules` is the way to run it in production; this entry exists so tests (and a
developer) can run the service as its own process, kill it and start it again.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from carehub.errors import ConfigError
from carehub.settings import Settings
from carehub.site import SiteIndex, load_site
from services.rules.service import RulesService

_LOGGER = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> int:
    """Run until told to stop; 0 on a clean stop, 2 on bad configuration."""
    parser = argparse.ArgumentParser(prog="python -m services.rules", description=__doc__)
    parser.add_argument("--site", type=Path, help="site file (default CAREHUB_SITE_FILE)")
    parser.add_argument("--db", type=Path, help="SQLite file (default CAREHUB_DB)")
    parser.add_argument("--mqtt-url", help="broker URL (default CAREHUB_MQTT_URL)")
    parser.add_argument("--prefix", help="topic prefix (default CAREHUB_MQTT_PREFIX)")
    parser.add_argument("--protocol", choices=["5", "3.1.1"], default="5")
    parser.add_argument("--client-id", help="MQTT client id (default carehub-rules-{site})")
    parser.add_argument("--tick", type=float, default=0.5, help="seconds between timer checks")
    args = parser.parse_args(argv)

    try:
        overrides = {
            k: v
            for k, v in {
                "site_file": args.site,
                "db": args.db,
                "mqtt_url": args.mqtt_url,
                "mqtt_prefix": args.prefix,
            }.items()
            if v is not None
        }
        settings = Settings(**overrides)
        logging.basicConfig(
            level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
        if settings.site_file is None:
            msg = "no site file: pass --site FILE or set CAREHUB_SITE_FILE"
            raise ConfigError(msg)
        index = SiteIndex(load_site(settings.site_file))
        service = RulesService.from_settings(
            settings, index, protocol=args.protocol, client_id=args.client_id, tick_s=args.tick
        )
    except ConfigError as err:
        print(err, file=sys.stderr)
        return 2

    done = threading.Event()

    def _stop(_sig: int, _frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    service.start()
    if service.wait_ready(30):
        print("ready", flush=True)  # the line tests and scripts wait for
    else:
        _LOGGER.warning("not connected to the broker yet; still trying")
    done.wait()
    service.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
