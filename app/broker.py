"""Local MQTT brokers for the demo and the tests.

Production connects to the broker named by `CAREHUB_MQTT_URL`. The demo and the test suite
start their own on a free loopback port: Mosquitto when it is installed (MQTT 5, persistence,
the real thing), else amqtt, an embedded pure-Python broker that speaks MQTT 3.1.1 only and is
right for a demo on a laptop, not for production.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import pwd
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import warnings
from pathlib import Path
from typing import Protocol

from carehub.errors import CareHubError

_LOGGER = logging.getLogger(__name__)

STARTUP_TIMEOUT_S = 10.0


class BrokerError(CareHubError):
    """A local broker could not be started or stopped."""


class LocalBroker(Protocol):
    """A broker this process started and owns."""

    host: str
    port: int
    name: str

    def stop(self) -> None:
        """Stop it and release its port."""
        ...


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now, chosen below the kernel's ephemeral range.

    A port the kernel hands out for `bind(0)` comes from the range it also uses for the source
    ports of outgoing connections: between picking it and listening on it, one of the hub's own
    connections (MQTT, ntfy, …) may take it. Below that range only listeners bind."""
    low = _ephemeral_low()
    rng = random.SystemRandom()
    for _ in range(50):
        port = rng.randrange(20_000, low)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        chosen: int = sock.getsockname()[1]
        return chosen


def _ephemeral_low() -> int:
    """The first port of the kernel's ephemeral range (Linux; 32768 where it cannot be read)."""
    try:
        first = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0]
        return max(20_001, int(first))
    except (OSError, ValueError, IndexError):
        return 32_768


def reachable(host: str, port: int, timeout: float = 1.0) -> bool:
    """Whether something accepts TCP connections at host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _wait_listening(host: str, port: int, alive: object = None) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if reachable(host, port, timeout=0.2):
            return
        if isinstance(alive, subprocess.Popen) and alive.poll() is not None:
            msg = f"broker exited with status {alive.returncode} before listening on {port}"
            raise BrokerError(msg)
        time.sleep(0.02)
    msg = f"broker did not listen on {host}:{port} within {STARTUP_TIMEOUT_S:.0f} s"
    raise BrokerError(msg)


def find_mosquitto() -> str | None:
    """Path of the mosquitto binary; Debian puts it in /usr/sbin, which users may not have."""
    return shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")


class MosquittoBroker:
    """A Mosquitto process on loopback, with persistence so retained state survives restarts.

    Anonymous access is allowed: this broker is for the demo and tests on 127.0.0.1 only.
    Production brokers are configured by `carehub broker-config`.
    """

    name = "mosquitto"

    def __init__(
        self,
        port: int | None = None,
        workdir: Path | None = None,
        extra_config: str = "",
        host: str = "127.0.0.1",
    ) -> None:
        binary = find_mosquitto()
        if binary is None:
            msg = "mosquitto is not installed (Debian: apt-get install mosquitto)"
            raise BrokerError(msg)
        self._binary = binary
        self.host = host
        self.port = port or free_port(host)
        self._own_dir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="carehub-mosquitto-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.extra_config = extra_config
        self._proc: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def config_path(self) -> Path:
        """The generated mosquitto.conf."""
        return self.workdir / "mosquitto.conf"

    def start(self) -> None:
        """Start (or start again, same port and persistence file)."""
        if self._proc is not None and self._proc.poll() is None:
            return
        self.config_path.write_text(
            f"listener {self.port} {self.host}\n"
            f"user {pwd.getpwuid(os.getuid()).pw_name}\n"  # do not drop to 'mosquitto' when root
            "allow_anonymous true\n"
            "persistence true\n"
            f"persistence_location {self.workdir}/\n"
            "autosave_interval 1\n"
            "set_tcp_nodelay true\n"
            "max_queued_messages 0\n"
            "max_inflight_messages 0\n"
            "log_dest stderr\n"
            "log_type error\n"
            "log_type warning\n" + self.extra_config,
            encoding="utf-8",
        )
        log = (self.workdir / "mosquitto.log").open("ab")
        self._proc = subprocess.Popen(
            [self._binary, "-c", str(self.config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        _wait_listening(self.host, self.port, self._proc)
        _LOGGER.info("mosquitto listening on %s:%s", self.host, self.port)

    @property
    def running(self) -> bool:
        """Whether the process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def stop(self) -> None:
        """SIGTERM, as a service manager would; Mosquitto saves its state on the way out."""
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL: a crash, nothing saved since the last autosave."""
        self._signal(signal.SIGKILL)

    def _signal(self, sig: signal.Signals) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)

    def restart(self) -> None:
        """Stop and start on the same port with the same persistence file."""
        self.stop()
        self.start()

    def cleanup(self) -> None:
        """Stop and delete the working directory if this object made it."""
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)


class EmbeddedBroker:
    """amqtt in a background thread with its own event loop (MQTT 3.1.1 only)."""

    name = "embedded (amqtt)"

    def __init__(self, port: int | None = None, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = port or free_port(host)
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._broker: object | None = None
        self._thread = threading.Thread(target=self._run, name="embedded-broker", daemon=True)
        self._thread.start()
        if not self._ready.wait(STARTUP_TIMEOUT_S):
            msg = "embedded broker did not start"
            raise BrokerError(msg)
        if self._error is not None:
            msg = f"embedded broker failed to start: {self._error}"
            raise BrokerError(msg) from self._error
        # No TCP probe here: amqtt's start() returns once it listens, and a probe that sends
        # no CONNECT makes amqtt leak the socket (a ResourceWarning in every caller).
        _LOGGER.info("embedded broker listening on %s:%s", self.host, self.port)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._start())
        except Exception as err:  # noqa: BLE001 - reported to the starting thread
            self._error = err
            self._ready.set()
            return
        self._ready.set()
        self._loop.run_forever()

    async def _start(self) -> None:
        from amqtt.broker import Broker  # imported late: it is heavy and only the demo needs it

        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}
            },
        }
        broker = Broker(config)
        await broker.start()
        self._broker = broker

    def stop(self) -> None:
        """Shut the broker down and end its thread."""
        if not self._thread.is_alive():
            return
        broker = self._broker

        async def _shutdown() -> None:
            if broker is not None:
                await broker.shutdown()  # type: ignore[attr-defined]

        try:
            asyncio.run_coroutine_threadsafe(_shutdown(), self._loop).result(timeout=10)
        except Exception:
            _LOGGER.warning("embedded broker did not shut down cleanly", exc_info=True)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        if not self._thread.is_alive():
            self._loop.close()
        # amqtt leaves client transports for the garbage collector; collect them here, quietly,
        # rather than let their ResourceWarnings surface in whatever runs next.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            gc.collect()


def start_local_broker(prefer_mosquitto: bool = True) -> LocalBroker:
    """Start Mosquitto when installed (and preferred), else the embedded broker."""
    if prefer_mosquitto and find_mosquitto() is not None:
        return MosquittoBroker()
    return EmbeddedBroker()
