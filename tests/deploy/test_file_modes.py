"""Files with health data and password hashes are the hub user's alone (docs/security.md,
"Files"): the database, its -wal and -shm, backups, under a 0700 folder, whatever the umask
of whoever started the process."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.broker import LocalBroker
from app.hub import Hub, HubOptions
from carehub.mqtt import Protocol
from carehub.settings import Settings
from carehub.site import Site
from tests.deploy.test_backup import SCRIPT, _live_db
from tests.support.mqttprobe import unique_client_prefix

ROOT = Path(__file__).resolve().parents[2]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def loose_umask() -> Iterator[None]:
    """As a service manager or a shell commonly leaves it: files 0644, folders 0755."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def db_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.name.startswith("carehub.db"))


def test_the_cli_creates_the_database_0600_in_a_0700_folder(
    tmp_path: Path, loose_umask: None
) -> None:
    db = tmp_path / "state" / "carehub.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAREHUB_")}
    r = subprocess.run(
        [sys.executable, "-m", "app", "user", "add", "sofie"],
        input="a-long-enough-passphrase\n",
        capture_output=True,
        text=True,
        env={**env, "CAREHUB_DB": str(db)},
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    assert mode(db.parent) == 0o700
    files = db_files(db.parent)
    assert db in files
    assert {p.name: mode(p) for p in files} == {p.name: 0o600 for p in files}


@pytest.mark.broker
def test_a_running_hub_keeps_every_database_file_0600(
    tmp_path: Path,
    loose_umask: None,
    broker: LocalBroker,
    mqtt_protocol: Protocol,
    test_site: Site,
) -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        db=tmp_path / "var" / "carehub.db",
        mqtt_url=f"mqtt://{broker.host}:{broker.port}",
        secret_key="s" * 40,
    )
    hub = Hub(
        settings,
        test_site,
        ("gateway", "rules", "api"),
        options=HubOptions(protocol=mqtt_protocol, client_id_prefix=unique_client_prefix()),
    )
    with hub:
        assert hub.wait_ready()
        files = db_files(settings.db.parent)
        assert {p.name for p in files} >= {"carehub.db", "carehub.db-wal", "carehub.db-shm"}
        assert {p.name: mode(p) for p in files} == {p.name: 0o600 for p in files}
    assert mode(settings.db.parent) == 0o700


def test_backups_are_0600_even_over_a_wider_file(tmp_path: Path, loose_umask: None) -> None:
    db = tmp_path / "carehub.db"
    writer = _live_db(db)
    target = tmp_path / "backup.db"
    target.write_bytes(b"")
    target.chmod(0o644)
    r = subprocess.run(
        [sys.executable, str(SCRIPT), "backup", str(db), str(target)],
        capture_output=True,
        check=False,
        timeout=60,
    )
    writer.close()
    assert r.returncode == 0, r.stderr
    assert mode(target) == 0o600
    restored = tmp_path / "restored.db"
    r = subprocess.run(
        [sys.executable, str(SCRIPT), "restore", str(target), str(restored)],
        capture_output=True,
        check=False,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert mode(restored) == 0o600
