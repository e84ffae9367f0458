"""The hub's VAPID key pair (RFC 8292), for Web Push (docs/notifications.md, "Web Push").

Generated once and kept in the state folder beside the database (`vapid.pem`, mode 0600),
never in the repository: browsers subscribe with the public key, and a new key would orphan
every subscription. The web app (which shows the public key to the board) and the notifier
(which signs with the private key) may start in different processes at the same moment, so
the file is created atomically: written under a temporary name, then linked into place; the
loser of a race reads the winner's key.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

_LOGGER = logging.getLogger(__name__)

FILENAME = "vapid.pem"


@dataclass(frozen=True, slots=True)
class VapidKeys:
    """The private key (PEM, PKCS#8) and the public key as browsers take it."""

    private_pem: bytes
    path: Path

    @property
    def private_key(self) -> ec.EllipticCurvePrivateKey:
        """The key object."""
        key = serialization.load_pem_private_key(self.private_pem, password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            msg = f"{self.path} does not hold an EC private key"
            raise ValueError(msg)
        return key

    @property
    def public_key(self) -> str:
        """The uncompressed P-256 point, base64url without padding: `applicationServerKey`."""
        raw = self.private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def vapid_path(db: Path | str) -> Path:
    """Where the key lives: beside the database, in the hub's state folder."""
    return Path(db).resolve().parent / FILENAME


def load_or_create(path: Path) -> VapidKeys:
    """The stored key pair, generated on first use (0600)."""
    if path.exists():
        return VapidKeys(path.read_bytes(), path)
    path.parent.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(pem)
            out.flush()
            os.fsync(out.fileno())
        try:
            os.link(tmp, path)  # fails if another process was first: then use its key
            _LOGGER.info("generated the Web Push VAPID key %s", path)
        except FileExistsError:
            pass
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return VapidKeys(path.read_bytes(), path)
