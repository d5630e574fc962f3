"""A user's Ed25519 identity: one key pair, kept owner-only in the config dir.

The X25519 twin of the same key (``box_private_key``) is what encrypts; the Ed25519
key signs. The file holds only the 32-byte seed, base64, under a versioned header.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import os
import stat
from pathlib import Path

import nacl.public
import nacl.signing

from .errors import IdentityError
from .paths import config_dir, private_dir

HEADER = "p2p2p-identity-ed25519-v1"
FILENAME = "identity.key"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def fingerprint(public_key: bytes) -> str:
    """A short, readable digest of a public key: ``ab12-cd34-ef56-7890``."""
    digest = hashlib.sha256(public_key).hexdigest()[:16]
    return "-".join(digest[i : i + 4] for i in range(0, 16, 4))


def box_public_key(ed25519_public_key: bytes) -> bytes:
    """The X25519 twin of someone's Ed25519 public key: what encrypts to them."""
    return bytes(nacl.signing.VerifyKey(ed25519_public_key).to_curve25519_public_key())


class Identity:
    def __init__(self, signing_key: nacl.signing.SigningKey, path: Path | None = None) -> None:
        self.signing_key = signing_key
        self.path = path

    @property
    def public_key(self) -> bytes:
        return bytes(self.signing_key.verify_key)

    @property
    def public_key_b64(self) -> str:
        return b64(self.public_key)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.public_key)

    @property
    def box_private_key(self) -> nacl.public.PrivateKey:
        return self.signing_key.to_curve25519_private_key()

    @functools.cached_property
    def box_keys(self) -> tuple[bytes, bytes]:
        """``(public, secret)`` of the X25519 twin, as raw bytes (derived once: the
        owner opens every request with it)."""
        private = self.box_private_key
        return bytes(private.public_key), bytes(private)

    def sign(self, message: bytes) -> bytes:
        return bytes(self.signing_key.sign(message).signature)

    @classmethod
    def generate(cls) -> Identity:
        return cls(nacl.signing.SigningKey.generate())

    @classmethod
    def load(cls, path: Path) -> Identity:
        try:
            info = path.stat()
        except FileNotFoundError:
            raise IdentityError(
                f"no identity key at {path}; create one with `p2p2p keys`"
            ) from None
        if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise IdentityError(
                f"refusing to use {path}: it is readable by other users "
                f"(mode {stat.S_IMODE(info.st_mode):04o}); run `chmod 600 {path}`"
            )
        if hasattr(os, "getuid") and info.st_uid != os.getuid():
            raise IdentityError(
                f"refusing to use {path}: it belongs to another user (uid {info.st_uid})"
            )
        lines = path.read_text().split()
        if len(lines) != 2 or lines[0] != HEADER:
            raise IdentityError(f"{path} is not a p2p2p identity file (expected a {HEADER} header)")
        try:
            seed = unb64(lines[1])
            return cls(nacl.signing.SigningKey(seed), path)
        except (ValueError, TypeError) as exc:
            raise IdentityError(f"{path} holds a damaged key: {exc}") from None

    @classmethod
    def load_or_create(cls, directory: Path | None = None) -> tuple[Identity, bool]:
        """The user's identity, creating it the first time. Returns ``(identity, created)``."""
        directory = private_dir(directory or config_dir())
        path = directory / FILENAME
        if path.exists():
            return cls.load(path), False
        identity = cls.generate()
        tmp = directory / f".{FILENAME}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(f"{HEADER}\n{b64(bytes(identity.signing_key))}\n")
                handle.flush()
                os.fsync(handle.fileno())
            try:
                # link() fails if another process created the key meanwhile: use theirs.
                os.link(tmp, path)
            except FileExistsError:
                return cls.load(path), False
        finally:
            tmp.unlink(missing_ok=True)
        identity.path = path
        return identity, True
