"""Mosquitto on the config `carehub broker-config` generates: its logins and ACL, persistence
with autosave every 30 s, 1,000 messages in flight and 100,000 queued per client.

Only what a test needs is added: the listener bound to loopback and one login of its own,
`observer`, that may read everything (an extra login, so it throws no part off the broker).
"""

from __future__ import annotations

import json
import secrets
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from app.broker import find_mosquitto, free_port, reachable
from app.brokerconfig import BrokerFiles, mosquitto_hash, write_broker_config
from carehub.site import Site

OBSERVER = "observer"


class ProductionBroker:
    """The generated broker, started, SIGTERMed, killed and started again on one port."""

    def __init__(self, site: Site, out: Path) -> None:
        self.host = "127.0.0.1"
        self.port = free_port()
        self.files: BrokerFiles = write_broker_config(site, out, port=self.port, host=self.host)
        conf = self.files.config.read_text()
        self.files.config.write_text(
            conf.replace(f"listener {self.port}\n", f"listener {self.port} {self.host}\n")
        )
        self.observer_password = secrets.token_urlsafe(16)
        with self.files.passwd.open("a") as out_:
            out_.write(f"{OBSERVER}:{mosquitto_hash(self.observer_password)}\n")
        with self.files.acl.open("a") as out_:
            out_.write(f"\nuser {OBSERVER}\ntopic read #\n")
        self.log = out / "mosquitto.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self.start()

    def setting(self, name: str) -> str:
        """A setting of the generated mosquitto.conf (the tests report what they ran on)."""
        for line in self.files.config.read_text().splitlines():
            if line.startswith(f"{name} "):
                return line.split(" ", 1)[1]
        return ""

    @property
    def creds(self) -> dict[str, str]:
        return dict(json.loads(self.files.credentials.read_text()))

    def hub_env(self) -> dict[str, str]:
        """hub.env as `set -a; . hub.env` would export it."""
        lines = self.files.hub_env.read_text().splitlines()
        return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))

    def part_url(self, part: str) -> str:
        return f"mqtt://carehub-{part}:{self.creds[f'carehub-{part}']}@{self.host}:{self.port}"

    def start(self) -> None:
        binary = find_mosquitto()
        assert binary is not None
        with self.log.open("ab") as out:
            self._proc = subprocess.Popen(
                [binary, "-c", str(self.files.config)], stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 20
        while not reachable(self.host, self.port, 0.2):
            assert self._proc.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, "mosquitto did not start"
            time.sleep(0.05)

    def save(self) -> None:
        """Make Mosquitto write its persistence file now (SIGUSR1), as autosave would."""
        assert self._proc is not None
        assert self._proc.poll() is None
        db = self.files.config.parent / "data" / "mosquitto.db"
        before = db.stat().st_mtime_ns if db.exists() else 0
        self._proc.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + 10
        while not (db.exists() and db.stat().st_mtime_ns != before):
            assert time.monotonic() < deadline, "mosquitto did not save on SIGUSR1"
            time.sleep(0.05)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(sig)
            proc.wait(30)

    def client(self, user: str, password: str | None = None) -> paho.Client:
        """A connected MQTT 5 client logged in as `user` (its client id, as forced anyway)."""
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=user, protocol=paho.MQTTv5)
        client.username_pw_set(user, password or self.creds[user])
        client.max_inflight_messages_set(1000)
        client.max_queued_messages_set(0)
        up = threading.Event()
        client.on_connect = lambda *_a: up.set()
        client.connect(self.host, self.port)
        client.loop_start()
        assert up.wait(10), f"{user} could not connect"
        return client

    def observer(self, topic: str) -> tuple[paho.Client, list[tuple[float, Any]]]:
        """The test's own login reading `topic`: (client, [(monotonic time, JSON payload)])."""
        seen: list[tuple[float, Any]] = []
        client = self.client(OBSERVER, self.observer_password)
        subscribed = threading.Event()

        def on_message(_c: paho.Client, _u: Any, msg: paho.MQTTMessage) -> None:
            if msg.payload:
                seen.append((time.monotonic(), json.loads(msg.payload)))

        client.on_message = on_message
        client.on_subscribe = lambda *_a: subscribed.set()
        client.subscribe(topic, 1)
        assert subscribed.wait(10)
        return client, seen


def close(client: paho.Client) -> None:
    client.disconnect()
    client.loop_stop()
