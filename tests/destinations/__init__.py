"""Destination tests: one conformance suite every kind passes, plus kind-specific tests."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path
from typing import Any

from syncd.destinations import ObjectInfo


def asset_file(directory: Path, data: bytes, **overrides: Any) -> tuple[Path, ObjectInfo]:
    """Write ``data`` as a downloaded file in ``directory``; returns it with its verified info."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"download-{uuid.uuid4().hex}.part"
    path.write_bytes(data)
    fields: dict[str, Any] = {
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "content_type": "image/jpeg",
        "source": "shutterstock",
        "media_type": "image",
        "media_id": "1079756147",
        "license_id": "i4117504982",
    }
    fields.update(overrides)
    return path, ObjectInfo(**fields)


def sha256_hex(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()
