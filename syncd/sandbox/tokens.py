"""Signed, expiring download tokens: the ``<token>`` in ``/download/<token>/shutterstock_<id>.<ext>``."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass


class InvalidToken(Exception):
    """A download token that was tampered with, malformed or expired; ``reason`` says which."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class DownloadGrant:
    """What a valid token allows: one license's file in one size until ``expires_ms``."""

    license_id: str
    size: str
    expires_ms: int


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class UrlSigner:
    """Issues and checks tokens with an HMAC key derived from the seed.

    Deriving the key from the seed (not a random secret) keeps links valid across a
    restart of a sandbox with the same seed, as real links outlive an API process.
    """

    def __init__(self, seed: int) -> None:
        self._key = hashlib.sha256(f"syncd-sandbox/download-key/{seed}".encode()).digest()

    def sign(self, grant: DownloadGrant) -> str:
        payload = f"{grant.license_id}:{grant.size}:{grant.expires_ms}".encode()
        return f"{_b64encode(payload)}.{_b64encode(self._mac(payload))}"

    def verify(self, token: str, now_ms: int) -> DownloadGrant:
        """The grant a token carries; raises InvalidToken if it is forged or expired."""
        try:
            payload_text, mac_text = token.split(".")
            payload, mac = _b64decode(payload_text), _b64decode(mac_text)
        except (ValueError, binascii.Error) as error:
            raise InvalidToken("malformed download token") from error
        if not hmac.compare_digest(mac, self._mac(payload)):
            raise InvalidToken("download token signature does not match")
        license_id, size, expires = payload.decode().split(":")
        grant = DownloadGrant(license_id, size, int(expires))
        if now_ms >= grant.expires_ms:
            raise InvalidToken("download link expired")
        return grant

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()[:16]
