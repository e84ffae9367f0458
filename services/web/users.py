"""Staff logins: who may see and change what (SPEC §1 staff user).

Passwords are hashed with Argon2id (argon2-cffi); the hash carries its own parameters, so
stronger settings later re-hash on the next successful login.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from carehub.errors import CareHubError

USERNAME = re.compile(r"^[A-Za-z0-9._@-]{2,64}$")
MIN_PASSWORD = 10


class Role(StrEnum):
    """Roles in rising order of what they may do."""

    STAFF = "staff"
    MANAGER = "manager"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        """Position in the order staff < manager < admin."""
        return list(Role).index(self)

    def allows(self, needed: Role) -> bool:
        """Whether this role includes what `needed` may do."""
        return self.rank >= needed.rank


class UserError(CareHubError):
    """A user could not be created or changed; the message says why."""


@dataclass(frozen=True, slots=True)
class User:
    """A staff login (never carries the hash out of the store)."""

    username: str
    role: Role


class UserStore:
    """Users in the hub's SQLite file (table `users`)."""

    def __init__(self, db: Path) -> None:
        db.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(db, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA busy_timeout=5000")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS users ("
            " username TEXT PRIMARY KEY, password_hash TEXT NOT NULL, role TEXT NOT NULL,"
            " created_at TEXT NOT NULL, updated_at TEXT NOT NULL,"
            " disabled INTEGER NOT NULL DEFAULT 0)"
        )
        self._lock = threading.Lock()
        self._hasher = PasswordHasher()
        # Verifying an unknown user still costs one hash, so timing does not reveal who exists.
        self._dummy_hash = self._hasher.hash("carehub-timing-equaliser")

    def upsert(self, username: str, password: str, role: Role) -> bool:
        """Create or update a login; answers True when it was created."""
        if not USERNAME.match(username):
            msg = f"username {username!r}: use 2-64 letters, digits, '.', '_', '@' or '-'"
            raise UserError(msg)
        if len(password) < MIN_PASSWORD:
            msg = f"password too short: use at least {MIN_PASSWORD} characters"
            raise UserError(msg)
        now = datetime.now(UTC).isoformat()
        digest = self._hasher.hash(password)
        with self._lock:
            existed = self._conn.execute(
                "SELECT 1 FROM users WHERE username = ?", (username,)
            ).fetchone()
            self._conn.execute(
                "INSERT INTO users (username, password_hash, role, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT(username) DO UPDATE SET"
                " password_hash = excluded.password_hash, role = excluded.role,"
                " updated_at = excluded.updated_at, disabled = 0",
                (username, digest, role.value, now, now),
            )
        return existed is None

    def authenticate(self, username: str, password: str) -> User | None:
        """The user when the password is right, else None (same cost either way)."""
        with self._lock:
            row = self._conn.execute(
                "SELECT password_hash, role FROM users WHERE username = ? AND disabled = 0",
                (username,),
            ).fetchone()
        if row is None:
            with contextlib.suppress(VerificationError):
                self._hasher.verify(self._dummy_hash, password)
            return None
        digest, role = row
        try:
            self._hasher.verify(digest, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return None
        if self._hasher.check_needs_rehash(digest):
            with self._lock:
                self._conn.execute(
                    "UPDATE users SET password_hash = ? WHERE username = ?",
                    (self._hasher.hash(password), username),
                )
        return User(username, Role(role))

    def get(self, username: str) -> User | None:
        """An enabled user by name."""
        with self._lock:
            row = self._conn.execute(
                "SELECT role FROM users WHERE username = ? AND disabled = 0", (username,)
            ).fetchone()
        return User(username, Role(row[0])) if row else None

    def list(self) -> list[User]:
        """All enabled users."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT username, role FROM users WHERE disabled = 0 ORDER BY username"
            ).fetchall()
        return [User(u, Role(r)) for u, r in rows]

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()
