"""Files that hold health data and password hashes are the hub's user's alone.

The SQLite file (alarms, audit log, users, events), its -wal and -shm, backups and exports
are created 0600 in folders created 0700 (docs/security.md, "Files"). `carehub` sets the
umask at start; the openers below also set the modes themselves, so a hub started from other
code (tests, a service manager with umask 022) is no less private.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

PRIVATE_UMASK = 0o077
FILE_MODE = 0o600
DIR_MODE = 0o700


def private_umask() -> int:
    """Make every file this process creates 0600 and every folder 0700; answers the old."""
    return os.umask(PRIVATE_UMASK)


def private_dir(path: Path) -> None:
    """Create `path` (and missing parents) as 0700; an existing folder keeps its mode, since
    it may be shared on purpose (the operator's choice, e.g. a volume)."""
    if not path.exists():
        path.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
        with contextlib.suppress(OSError):
            path.chmod(DIR_MODE)  # mkdir's mode is reduced by the umask, never widened


def private_db(path: Path) -> None:
    """Before SQLite opens `path`: create it 0600 if missing, and make it, its -wal and its
    -shm 0600. SQLite creates -wal and -shm with the mode of the database file, so they
    follow."""
    private_dir(path.parent)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
    for each in (path, Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}-journal")):
        with contextlib.suppress(FileNotFoundError, PermissionError):
            if each.stat().st_mode & 0o077:
                each.chmod(FILE_MODE)
