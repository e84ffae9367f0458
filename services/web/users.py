"""Staff logins: who may see and change what (docs/security.md).

Passwords are hashed with Argon2id (argon2-cffi); the hash carries its own parameters, so
stronger settings later re-hash on the next successful login. New passwords follow NIST
SP 800-63B (docs/security.md, "Passwords"): long enough, not common, no composition rules.

Each user has a generation that sessions and tokens carry: a password change, a logout and
`carehub user disable` increment it, which ends every session and token issued before.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from functools import cache
from importlib import resources
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from carehub.errors import CareHubError
from carehub.private import private_db
from carehub.walmode import enable_wal

USERNAME = re.compile(r"^[A-Za-z0-9._@-]{2,64}$")
MIN_PASSWORD = 12
MAX_PASSWORD = 1024
"""NIST asks to allow at least 64; a megabyte of "password" only costs the hasher time."""
MAX_LOGIN_NAME = 150
"""Login names longer than this are refused before any work (no hashing, no throttle entry)."""

_EDGES = "0123456789!#$%&*+-./:;=?@_~ "


@cache
def common_passwords() -> frozenset[str]:
    """The shipped list of common passwords (services/web/common-passwords.txt), lower case."""
    text = resources.files("services.web").joinpath("common-passwords.txt").read_text("utf-8")
    return frozenset(
        line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")
    )


def password_problem(password: str, username: str = "") -> str | None:
    """Why a new password is refused, or None (NIST SP 800-63B: length and a blocklist)."""
    if len(password) < MIN_PASSWORD:
        return f"password too short: use at least {MIN_PASSWORD} characters"
    if len(password) > MAX_PASSWORD:
        return f"password too long: use at most {MAX_PASSWORD} characters"
    folded = password.casefold()
    for period in (1, 2, 3):
        if folded == (folded[:period] * len(folded))[: len(folded)]:
            return "password is one character or a short pattern repeated; use a passphrase"
    common = common_passwords()
    stem = folded.strip(_EDGES)
    if folded in common or stem in common or (username and username.casefold() in folded):
        return "password is too common or contains the login name; use a passphrase"
    return None


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
    generation: int = 0
    """Raised by a password change, a logout or a disable: older sessions stop working."""


class UserStore:
    """Users in the hub's SQLite file (table `users`)."""

    def __init__(self, db: Path) -> None:
        private_db(db)
        self._conn = sqlite3.connect(db, check_same_thread=False, isolation_level=None)
        enable_wal(self._conn)
        self._conn.execute("PRAGMA busy_timeout=5000")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS users ("
            " username TEXT PRIMARY KEY, password_hash TEXT NOT NULL, role TEXT NOT NULL,"
            " created_at TEXT NOT NULL, updated_at TEXT NOT NULL,"
            " disabled INTEGER NOT NULL DEFAULT 0)"
        )
        columns = {row[1] for row in self._conn.execute("PRAGMA table_info(users)")}
        if "generation" not in columns:  # a file from before revocation
            self._conn.execute("ALTER TABLE users ADD COLUMN generation INTEGER NOT NULL DEFAULT 0")
        self._lock = threading.Lock()
        self._hasher = PasswordHasher()
        # Verifying an unknown user still costs one hash, so timing does not reveal who exists.
        self._dummy_hash = self._hasher.hash("carehub-timing-equaliser")

    def upsert(self, username: str, password: str, role: Role) -> bool:
        """Create or update a login; answers True when it was created."""
        if not USERNAME.match(username):
            msg = f"username {username!r}: use 2-64 letters, digits, '.', '_', '@' or '-'"
            raise UserError(msg)
        problem = password_problem(password, username)
        if problem is not None:
            raise UserError(problem)
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
                " updated_at = excluded.updated_at, disabled = 0,"
                " generation = users.generation + 1",
                (username, digest, role.value, now, now),
            )
        return existed is None

    def authenticate(self, username: str, password: str) -> User | None:
        """The user when the password is right, else None (same cost either way).

        Existing passwords keep working whatever the policy says now; only new ones are
        checked (`upsert`)."""
        if len(username) > MAX_LOGIN_NAME or len(password) > MAX_PASSWORD:
            return None
        with self._lock:
            row = self._conn.execute(
                "SELECT password_hash, role, generation FROM users"
                " WHERE username = ? AND disabled = 0",
                (username,),
            ).fetchone()
        if row is None:
            with contextlib.suppress(VerificationError):
                self._hasher.verify(self._dummy_hash, password)
            return None
        digest, role, generation = row
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
        return User(username, Role(role), generation)

    def get(self, username: str) -> User | None:
        """An enabled user by name."""
        with self._lock:
            row = self._conn.execute(
                "SELECT role, generation FROM users WHERE username = ? AND disabled = 0",
                (username,),
            ).fetchone()
        return User(username, Role(row[0]), row[1]) if row else None

    def revoke(self, username: str) -> None:
        """End every session and token of a user (logout: everywhere it is used)."""
        with self._lock:
            self._conn.execute(
                "UPDATE users SET generation = generation + 1 WHERE username = ?", (username,)
            )

    def set_disabled(self, username: str, disabled: bool) -> bool:
        """Disable (ending every session) or enable a login; False when there is none."""
        with self._lock:
            cur = self._conn.execute(
                "UPDATE users SET disabled = ?, generation = generation + 1,"
                " updated_at = ? WHERE username = ?",
                (int(disabled), datetime.now(UTC).isoformat(), username),
            )
        return cur.rowcount > 0

    def list(self) -> list[User]:
        """All enabled users."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT username, role, generation FROM users WHERE disabled = 0 ORDER BY username"
            ).fetchall()
        return [User(u, Role(r), g) for u, r, g in rows]

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()
