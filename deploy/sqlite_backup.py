"""Online backup and restore of CareHub's SQLite file (alarms, audit log, users, state).

The file is in WAL mode and written by three processes: copying it with `cp` can catch a
half-written page or miss what is still in the -wal file. SQLite's backup API copies a
consistent snapshot while the hub keeps running. Standard library only, so it runs in the
CareHub image without installing anything (docs/deployment.md):

    docker compose exec -T api python - backup /var/lib/carehub/carehub.db - \\
        < deploy/sqlite_backup.py > backups/carehub-$(date +%F).db
    python3 deploy/sqlite_backup.py restore BACKUP.db /var/lib/carehub/carehub.db  # hub stopped
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import sys
import tempfile
from pathlib import Path

BUSY_TIMEOUT_S = 30.0


class BackupError(Exception):
    """The backup or restore cannot be done safely; the message says why."""


def _check(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        result = conn.execute("PRAGMA integrity_check").fetchone()[0]
    conn.close()
    if result != "ok":
        msg = f"{path} failed its integrity check: {result}"
        raise BackupError(msg)


def _copy(source: Path, target: Path) -> None:
    """A consistent snapshot of `source` as a single self-contained file (no -wal)."""
    if not source.exists():
        msg = f"{source} does not exist"
        raise BackupError(msg)
    src = sqlite3.connect(source, timeout=BUSY_TIMEOUT_S)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)  # all pages in one step: one read transaction, one snapshot
        dst.execute("PRAGMA journal_mode=DELETE")
    finally:
        dst.close()
        src.close()
    _check(target)


def backup(source: Path, target: Path | None) -> None:
    """Copy `source` into `target`, or to standard output when `target` is None."""
    with tempfile.TemporaryDirectory(prefix="carehub-backup-") as tmp:
        snapshot = Path(tmp) / "carehub.db"
        _copy(source, snapshot)
        if target is None:
            with snapshot.open("rb") as fh:
                shutil.copyfileobj(fh, sys.stdout.buffer)
            sys.stdout.buffer.flush()
        else:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.fchmod(fd, 0o600)  # also when it existed with a wider mode
            with os.fdopen(fd, "wb") as out, snapshot.open("rb") as fh:
                shutil.copyfileobj(fh, out)


def restore(source: Path, target: Path, *, force: bool = False) -> None:
    """Replace `target` with the backup `source`. Every CareHub part must be stopped: a
    non-empty -wal beside the target means one is running (or crashed), and is refused."""
    wal = Path(f"{target}-wal")
    if wal.exists() and wal.stat().st_size > 0 and not force:
        msg = (
            f"{wal} is not empty: stop gateway, rules and api first "
            "(or pass --force to discard what it holds)"
        )
        raise BackupError(msg)
    _check(source)
    staged = target.with_name(f".{target.name}.restoring")
    staged.unlink(missing_ok=True)
    _copy(source, staged)
    for leftover in (wal, Path(f"{target}-shm")):
        leftover.unlink(missing_ok=True)
    staged.chmod(0o600)
    staged.replace(target)


def main(argv: list[str]) -> int:
    """`backup SRC DEST|-` or `restore SRC DEST [--force]`; exit status 2 on refusal.

    Every file it makes is 0600: a backup holds health data and password hashes."""
    os.umask(0o077)
    args = [a for a in argv if a != "--force"]
    if len(args) != 3 or args[0] not in ("backup", "restore"):
        print(__doc__, file=sys.stderr)
        return 2
    command, source, target = args
    try:
        if command == "backup":
            backup(Path(source), None if target == "-" else Path(target))
        else:
            restore(Path(source), Path(target), force="--force" in argv)
    except (BackupError, sqlite3.Error, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if command == "restore" or target != "-":
        print(f"{command}: {source} -> {target}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
